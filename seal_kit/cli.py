"""`seal-kit`: run the notebooks headless, sweep parameter grids, list runs.

    seal-kit run 03_rest_em -p K 2 -p ROUNDS 1                  # one run into outputs/runs/<time>-03_rest_em
    seal-kit run 02 --profile cpu-tiny --run-dir outputs/runs/ki # a profile's parameters (explicit -p wins)
    seal-kit run 02 -p SMOKE true                                # the smoke profile: tiny sizes, a check in seconds
    seal-kit sweep 02 -p PROMPT implications rewrite self-qa -p K 3 --jobs 2 --out outputs/sweeps/prompts
    seal-kit sweep --grid sweeps/prompt_ablation.yaml            # notebook, fixed parameters and grid from YAML
    seal-kit sweep --grid prompt_ablation                        # a sweep file the kit ships, by name
    seal-kit notebooks my-seal [--student]                       # copy the notebooks out (students': no solutions)
    seal-kit lab my-class --student                              # JupyterLab on students' copies, first-run prompts off
    seal-kit results                                             # the real runs shipped with the kit, name first
    seal-kit results open 03-workshop my-run                     # one as a finished run directory (then seal-kit run 03 --run-dir my-run)
    seal-kit export outputs/runs/<run> exported --merged         # a ReST-EM run's generator (peft) and self-edits (datasets)
    seal-kit runs                                                # every run under outputs/ with its status
    seal-kit report outputs/runs/<run> --markdown                # a finished run's tables with their 95% intervals
    seal-kit profiles                                            # the run profiles and what each is for
    seal-kit profiles show paper 03                              # the parameters 03 runs with under a profile, as YAML
    seal-kit grade-agreement iter2 --grader contains             # a grader against the paper's judge, one JSON line
    seal-kit doctor [--json]                                     # this machine: ISA, measured matmul peaks, what DTYPE=auto picks

Values are read as YAML: `-p K 3` is the integer 3, `-p SMOKE true` a boolean, `-p TASKS "[a, b]"` a list.
Running the same sweep (same --out) again skips finished runs and retries failed ones.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from . import profiles
from .knowledge.graders import DEFAULT_GRADER
from .paths import new_run_path, outputs_root
from .report import headline
from .runs import METRICS
from .headless import Refused, check_run, execute, find_notebook
from .sweep import grid_runs, list_runs, load_grid, sweep
from .workshop import copy_notebooks


def _value(text: str):
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string; a learning rate is meant
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _parameters_file(path: str | None) -> dict:
    """`-f params.yaml`: a mapping of parameter names to values; anything else is refused naming the file."""
    if path is None:
        return {}
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"-f {path}: cannot be read as YAML ({type(err).__name__}: {err})") from None
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ValueError(f"-f {path}: expected a mapping of parameter names to values, like `K: 3`")
    return values


def _with_profile(parameters: dict, profile: str | None, notebook: str) -> dict:
    """The profile's values for this notebook, and with `SMOKE: true` the smoke profile's over them, under
    the explicit ones: explicit wins, even when it equals the notebook's default (the notebook is not
    given PROFILE to apply again). A smoke run's notebook applies the smoke profile where a parameter
    holds its default, which it cannot tell from an explicit value equal to it: such a value that the
    smoke profile would change is refused, by name."""
    stem = find_notebook(notebook).stem
    smoke = parameters.get("SMOKE") is True
    if smoke:
        defaults = profiles.notebook_defaults(stem)
        lost = {k: v for k, v in profiles.parameters(profiles.SMOKE, stem).items()
                if k in parameters and parameters[k] == defaults.get(k) != v}
        if lost:
            raise ValueError(f"{stem}: " + "; ".join(f"-p {k} {parameters[k]!r} is the notebook's default, which "
                                                     f"SMOKE replaces by {v!r}" for k, v in lost.items())
                             + ". Leave it out for the smoke value, or run without SMOKE to keep it")
    return {**profiles.resolved(profile, stem, smoke), **parameters}


def _headline(run_dir: str | Path) -> str:
    """The run's main numbers in one line (report.headline of its metrics.json)."""
    try:
        metrics = json.loads((Path(run_dir) / METRICS).read_text())
    except (OSError, ValueError) as err:
        return f"  ({METRICS} cannot be read: {err})"
    return "  " + (headline(metrics) if isinstance(metrics, dict) else f"{METRICS} holds no mapping")


def _grade_agreement(file: str, grader: str, limit: int | None = None) -> dict:
    from .knowledge.agreement import agreement
    from .knowledge.graders import shipped_fitted
    from .knowledge.reference import load_graded

    graded = load_graded(file)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be a positive number of answers, got {limit}")
        graded = graded.sample(n=min(limit, len(graded)), random_state=0).sort_index()
    result = agreement(grader, graded)
    if grader == "fitted" and str(graded.condition.iloc[0]) in shipped_fitted().weights["fitted_on"]:
        result["note"] = ("in sample: the shipped weights were fitted on this file's verdicts; "
                          "`python -m seal_kit.knowledge.agreement table` scores each condition with weights fitted without it")
    return result


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seal-kit")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def run(args, parser) -> int:
    """One run. Everything that would refuse it (a parameter the notebook lacks, a finished run in --run-dir
    made with other parameters) is asked before a run directory is made: a refusal prints `refused: why`
    and exits 2, leaving nothing behind. A run ends with its directory and, on the last line, its headline
    numbers (report.headline)."""
    given = {**_parameters_file(args.parameters_file), **{k: _value(v) for k, v in args.parameter}}
    parameters = _with_profile(given, args.profile, args.notebook)
    try:
        check_run(args.notebook, args.run_dir, parameters)
    except Refused as err:
        print(f"refused: {err}", file=sys.stderr)
        return 2
    run_dir = args.run_dir or new_run_path(find_notebook(args.notebook).stem)
    result = execute(args.notebook, run_dir, parameters, progress=True, profile=args.profile)
    if result.status == "failed":
        where = f" in cell {result.failed_cell}" if result.failed_cell is not None else ""
        print(f"failed{where}: {result.error}\n  run directory: {result.run_dir}")
        return 1
    said = (f"finished in {result.seconds:.0f} s" if result.status == "finished"
            else "finished before (nothing run again)")
    print(f"{said}: {result.run_dir} (metrics.json, the executed notebook, the records)\n{_headline(result.run_dir)}")
    return 0


def sweep_grid(args, parser) -> int:
    notebook, sets = (load_grid(args.grid) if args.grid else (None, [{}]))
    notebook = args.notebook or notebook
    if not notebook:
        parser.error("sweep: name the notebook (argument or `notebook:` in the grid file)")
    bad = [p for p in args.parameter if len(p) < 2]
    if bad:
        parser.error(f"sweep: -p {bad[0][0]} needs at least one value")
    extra = grid_runs({p[0]: [_value(v) for v in p[1:]] for p in args.parameter})
    sets = [{**s, **e} for s in sets for e in extra]  # -p wins over the grid file's values
    sets = list({json.dumps(s, sort_keys=True, default=str): s for s in sets}.values())  # once each
    sets = [_with_profile(s, args.profile, notebook) for s in sets]
    out = args.out or new_run_path(find_notebook(notebook).stem, "sweeps")
    table = sweep(notebook, sets, out, jobs=args.jobs, profile=args.profile)
    shown = [c for c in table.columns if c not in ("run_dir", "error")]
    print(table[shown].to_string(index=False))
    failed = table[table.status == "failed"]
    for _, row in failed.iterrows():
        print(f"FAILED {row.run_dir} (cell {row.failed_cell}): {row.error}")
    print(f"summary: {Path(out) / 'summary.csv'}; run again with --out {out} to retry failures")
    return 1 if len(failed) else 0


def profiles_(args, parser) -> int:
    if args.action == "list":
        for name in profiles.names():
            print(f"{name:14s} {profiles.load(name).get('description', '')}")
        return 0
    if not (args.profile and args.notebook):
        parser.error("profiles show: name a profile and a notebook, e.g. `seal-kit profiles show paper 03`")
    print(profiles.show(args.profile, find_notebook(args.notebook).stem), end="")
    return 0


def notebooks_(args, parser) -> int:
    for path in copy_notebooks(args.folder, force=args.force, student_copy=args.student):
        print(path)
    print(f"open them with:  seal-kit lab {args.folder}   (runs go to {Path(args.folder) / 'outputs'})")
    return 0


def lab(args, parser) -> int:
    from .workshop import lab

    return lab(args.folder, student_copy=args.student, port=args.port)


def results(args, parser) -> int:
    from . import results

    if args.action == "list":
        for row in results.listing().itertuples():
            print(f"{row.name:22s} {row.notebook:28s} {row.shows} ({row.seconds} s on {row.machine}; {row.command})")
        return 0
    if not (args.name and args.folder):
        parser.error("results open: name a shipped run and a folder, e.g. `seal-kit results open 03-workshop my-run`")
    folder = results.open_run(args.name, args.folder)
    notebook = results.index()[args.name]["notebook"]
    print(f"{folder}: the finished run {args.name!r}\nshow it:  seal-kit run {notebook} --run-dir {folder}   "
          f"(or open {folder / (notebook + '.ipynb')} in JupyterLab)")
    return 0


def export(args, parser) -> int:
    from .export import export

    for what, where in export(args.run_dir, args.out, merged=args.merged, push_to_hub=args.push_to_hub).items():
        print(f"{what}: {where}")
    return 0


def doctor(args, parser) -> int:
    from .doctor import describe, examine

    facts = examine(measure=not args.no_measure)
    print(json.dumps(facts) if args.json else describe(facts))
    return 0


def grade_agreement(args, parser) -> int:
    print(json.dumps(_grade_agreement(args.file, args.grader, args.limit)))
    return 0


def runs(args, parser) -> int:
    table = list_runs(args.root or outputs_root())
    print(table.to_string(index=False) if len(table) else f"no runs under {args.root or outputs_root()}")
    return 0


def report_(args, parser) -> int:
    from . import report

    if args.markdown:
        print(report.markdown(args.run_dir, args.table or None))
        return 0
    for name, table in report.chosen(args.run_dir, args.table).items():
        print(f"{name}\n{table.to_string()}\n")
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line: one subparser per subcommand, each calling the function of its name above."""
    parser = argparse.ArgumentParser(prog="seal-kit", description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"seal-kit {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="run one notebook headless into a run directory")
    one.add_argument("notebook", help="a notebook name (03_rest_em, or just 03) or a path")
    one.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    one.add_argument("--run-dir", help="where the run goes (the same one again resumes it)")
    one.add_argument("--profile", help=f"a run profile: {', '.join(profiles.names())} or a YAML file")
    one.add_argument("-f", "--parameters-file", metavar="YAML",
                     help="parameters from a YAML mapping, as papermill's -f; -p values win over it")

    many = sub.add_parser("sweep", help="run a notebook once per parameter set of a grid")
    many.add_argument("notebook", nargs="?", help="a notebook name or path (or `notebook:` in the grid file)")
    many.add_argument("-p", "--parameter", nargs="+", action="append", default=[], metavar="KEY VALUE",
                      help="KEY and one or more values; several values vary, the product of all is run")
    many.add_argument("--grid", help="a YAML sweep file: notebook, parameters (fixed), grid (key: [values]), runs")
    many.add_argument("--jobs", type=int, default=1, help="runs at a time (each is its own kernel)")
    many.add_argument("--out", help="the sweep's directory; the same one again skips finished runs")
    many.add_argument("--profile", help=f"a run profile: {', '.join(profiles.names())} or a YAML file")

    agree = sub.add_parser("grade-agreement", help="how a grader agrees with GPT-4.1's verdicts in a graded file")
    agree.add_argument("file", help="a graded file of the paper's (base, naive, gpt4_1, iter2, cpt_base, ...) or a path")
    agree.add_argument("--grader", default=DEFAULT_GRADER,
                       help="contains, exact_match, f1, fitted, judge:<model> or local:<model> (e.g. local:embedded)")
    agree.add_argument("--limit", type=int, help="score a random sample of this many answers (seed 0), for slow judges")

    shown = sub.add_parser("profiles", help="list the run profiles, or show one notebook's parameters under one")
    shown.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    shown.add_argument("profile", nargs="?", help="show: a profile name or YAML file")
    shown.add_argument("notebook", nargs="?", help="show: a notebook name (03_rest_em, or just 03)")

    copy = sub.add_parser("notebooks", help="copy the kit's notebooks (and their README) into a folder for JupyterLab")
    copy.add_argument("folder", help="where to put them (created if missing)")
    copy.add_argument("--force", action="store_true", help="overwrite notebooks already there (your edits are lost)")
    copy.add_argument("--student", action="store_true", help="leave out the exercises' solution cells (the checks stay)")

    room = sub.add_parser("lab", help="JupyterLab for a class on copies of the notebooks (made if missing), prompts off")
    room.add_argument("folder", nargs="?", default="seal-kit-notebooks", help="the copies' folder (default: %(default)s)")
    room.add_argument("--student", action="store_true", help="copies without the solution cells")
    room.add_argument("--port", type=int, help="JupyterLab's port")

    shipped = sub.add_parser("results", help="the real runs shipped with the kit; `open NAME DIR` writes one as a run directory")
    shipped.add_argument("action", nargs="?", choices=["list", "open"], default="list")
    shipped.add_argument("name", nargs="?", help="open: a shipped run's name (`seal-kit results` lists them)")
    shipped.add_argument("folder", nargs="?", help="open: the run directory to write (new or empty)")

    out = sub.add_parser("export", help="a ReST-EM run's generator as a peft adapter, its self-edits as a dataset")
    out.add_argument("run_dir", help="the run directory of a 03_rest_em (or 04_arc_few_shot) run")
    out.add_argument("out", help="where adapter/, dataset/ (and merged/) go")
    out.add_argument("--merged", action="store_true", help="also the base model with the adapter folded in")
    out.add_argument("--push-to-hub", metavar="REPO", help="upload the adapter to REPO and the dataset to REPO-self-edits")

    tables = sub.add_parser("report", help="a finished run's tables (from its metrics.json), with their intervals")
    tables.add_argument("run_dir", help="a finished run directory (one holding metrics.json)")
    tables.add_argument("--markdown", action="store_true", help="pipe tables: shares in %%, gains in points, "
                        "each with its 95%% interval in brackets (as the docs show them)")
    tables.add_argument("--table", nargs="+", metavar="NAME", help="only these tables (e.g. conditions paired_gains)")

    listing = sub.add_parser("runs", help="list run directories with their status")
    listing.add_argument("root", nargs="?", help="where to look (default: the outputs folder)")

    checkup = sub.add_parser("doctor", help="what this machine is and what the kit will do on it (measured, a few seconds)")
    checkup.add_argument("--json", action="store_true", help="one JSON line instead of the report")
    checkup.add_argument("--no-measure", action="store_true", help="skip the matmul timings")
    one.set_defaults(handler=run)
    many.set_defaults(handler=sweep_grid)
    agree.set_defaults(handler=grade_agreement)
    shown.set_defaults(handler=profiles_)
    copy.set_defaults(handler=notebooks_)
    room.set_defaults(handler=lab)
    shipped.set_defaults(handler=results)
    out.set_defaults(handler=export)
    listing.set_defaults(handler=runs)
    tables.set_defaults(handler=report_)
    checkup.set_defaults(handler=doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    try:
        return args.handler(args, cli)
    except (FileNotFoundError, FileExistsError, ValueError, TypeError) as err:
        print(f"seal-kit: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
