"""Batch runs of the notebooks with papermill: one run, a grid of runs, and the table of their results.

    from seal_kit.sweep import execute, grid_runs, sweep, list_runs
    result = execute("03_rest_em", "outputs/runs/x", {"K": 2})        # -> RunResult(status, run_dir, error, ...)
    sets = grid_runs({"PROMPT": ["implications", "rewrite"], "K": [3]})  # the cartesian product, as dicts
    table = sweep("02_knowledge_incorporation", sets, "outputs/sweeps/prompts", jobs=2)   # a DataFrame
    list_runs("outputs/runs")                                          # every run directory with its status

A sweep gives every parameter set its own run directory, named after the parameters that vary, so
running the same sweep again skips the runs that finished (their metrics.json exists) and retries the
others: a failed run is recorded with the failing cell and its error and never stops the rest. The
summary (parameters + flattened metrics + status) is saved as summary.csv / summary.parquet and as a
plotly table in summary.html.
"""
from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import os
import queue
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import yaml
from filelock import FileLock, Timeout

from .profiles import notebook_defaults
from .runs import (INSTALLED, METRICS, NOTEBOOKS, SWEEPS, TIMING, RunBusy, atomic_write, check_run_dir, claim,
                   notebooks, recorded_parameters)
from .tracking import flatten

FAILED = "failed.json"
EXECUTING = ".execute.lock"  # held by the process running papermill into a run directory


def find_notebook(name: str | Path) -> Path:
    """A notebook by path, or by name ("03_rest_em", "03_rest_em.ipynb", or the prefix "03") in notebooks/."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path.resolve()
    known = notebooks()
    stem = path.name.removesuffix(".ipynb")
    matches = [p for p in known if p.stem == stem] or [p for p in known if p.stem.startswith(stem + "_")]
    if len(matches) != 1:
        raise FileNotFoundError(f"no notebook {str(name)!r}; give a path to an .ipynb file or one of: "
                                f"{', '.join(p.stem for p in known)}")
    return matches[0]


def notebook_parameters(notebook: str | Path) -> list[str]:
    """The names in a notebook's parameters cell, in order (papermill's reading of it)."""
    import papermill

    return list(papermill.inspect_notebook(str(find_notebook(notebook))))


def check_parameters(notebook: str | Path, parameters: dict) -> None:
    """Refuse a parameter the notebook does not have, naming it and the nearest known name: a misspelled
    one would otherwise run every point with the default (and papermill injects names as code)."""
    known = notebook_parameters(notebook)
    for name in parameters:
        if name not in known:
            folded = {k.lower(): k for k in known}
            near = difflib.get_close_matches(str(name).lower(), list(folded), n=1, cutoff=0.6)
            raise ValueError(f"{find_notebook(notebook).stem} has no parameter {str(name)!r}"
                             + (f"; did you mean {folded[near[0]]!r}?" if near else ".")
                             + f" Its parameters: {', '.join(known)}")


PATHLIKE = (".json", ".jsonl", ".yaml", ".yml", ".csv", ".parquet", ".txt")


def resolve_paths(parameters: dict, base: str | Path | None = None) -> dict:
    """Relative file paths among the values made absolute from `base` (the shell's directory), as --run-dir
    is: the notebook runs in its own folder, where `DATA=my.json` would name another file, or none.
    A file's `?column=...` query (`DATA = "my.csv?context=text"`) stays on the resolved path."""
    base = Path(base or Path.cwd())
    resolved = {}
    for key, value in parameters.items():
        path, mark, query = value.partition("?") if isinstance(value, str) else ("", "", "")
        if path and not Path(path).is_absolute() and (
                "/" in path or path.startswith("~") or path.lower().endswith(PATHLIKE)):
            candidate = Path(path).expanduser()
            candidate = candidate if candidate.is_absolute() else base / candidate
            value = str(candidate.resolve()) + mark + query if candidate.exists() else value
        resolved[key] = value
    return resolved


@dataclass
class RunResult:
    run_dir: str
    parameters: dict
    status: str          # "finished", "failed", "skipped" (finished before)
    seconds: float
    error: str = ""      # the exception of a failed run
    failed_cell: int | None = None  # index of the cell that raised (papermill's execution order)


def execute(notebook: str | Path, run_dir: str | Path, parameters: dict | None = None,
            progress: bool = False, placement: dict | None = None) -> RunResult:
    """Run one notebook headless into `run_dir` (the executed copy is saved there); skip it if finished
    (with no `parameters`, a finished run's own: `runs.recorded_parameters`).
    Relative file paths among the parameters are taken from the current directory, as `run_dir` is.
    A parameter the notebook lacks is refused (ValueError) before anything runs; a run directory that is
    a file or cannot be written is a failed result naming it. `placement` (DEVICE, THREADS: where a sweep
    puts this run) is passed to the notebook beside `parameters` but is not part of what the run is."""
    path, run_dir = find_notebook(notebook), Path(run_dir).resolve()
    if not parameters and (recorded := recorded_parameters(run_dir)) is not None:
        parameters = recorded  # none given: a finished run is shown with its own parameters
    parameters = resolve_paths(dict(parameters or {}))
    check_parameters(path, parameters)
    try:
        check_run_dir(run_dir)
    except OSError as err:
        return RunResult(str(run_dir), parameters, "failed", 0.0, f"{type(err).__name__}: {err}")
    if (run_dir / METRICS).exists():  # finished before: keep the time it took then
        timing = run_dir / TIMING
        record = json.loads(timing.read_text()) if timing.exists() else {}
        before = record.get("parameters")
        if before is not None:  # a parameter left out means its default, whether it was given before or not
            defaults = json.loads(json.dumps(notebook_defaults(path), default=str))
            before, plain = {**defaults, **before}, {**defaults, **json.loads(json.dumps(parameters, default=str))}
        if before is not None and before != plain:
            changed = sorted(k for k in set(before) | set(plain) if before.get(k) != plain.get(k))
            return RunResult(str(run_dir), parameters, "failed", 0.0,
                             f"{run_dir} already holds a run finished with other parameters (changed: "
                             f"{', '.join(changed)}); choose another run directory")
        return RunResult(str(run_dir), parameters, "skipped", record.get("seconds", 0.0))
    busy = f"another process is working in {run_dir} right now (a kernel or another `seal-kit run`); wait for it " \
           "or stop it, then run this again"
    try:  # held while papermill runs: a second `seal-kit run` on this directory must not overwrite its notebook
        with FileLock(str(run_dir / EXECUTING), timeout=0):
            try:  # a kernel (JupyterLab, or a run killed mid-way whose kernel lives on) holds the run's own lock
                claim(run_dir).release()
            except RunBusy:
                return RunResult(str(run_dir), parameters, "failed", 0.0, busy)
            return _execute(path, run_dir, parameters, progress, placement or {})
    except Timeout:
        return RunResult(str(run_dir), parameters, "failed", 0.0, busy)


def _execute(path: Path, run_dir: Path, parameters: dict, progress: bool, placement: dict) -> RunResult:
    import papermill  # heavy import: only when a run starts

    (run_dir / FAILED).unlink(missing_ok=True)
    began = time.perf_counter()
    try:
        # A checkout's notebooks run in notebooks/ (as JupyterLab opens them); an installed kit's where it was called.
        cwd = Path.cwd() if INSTALLED and path.is_relative_to(NOTEBOOKS) else path.parent
        papermill.execute_notebook(str(path), str(run_dir / path.name), cwd=str(cwd), progress_bar=progress,
                                   parameters={**placement, **parameters, "RUN_DIR": str(run_dir)})
    except Exception as err:  # a failed run is a result, not the end of the sweep
        cell = getattr(err, "cell_index", None)  # papermill's PapermillExecutionError knows it
        cell = _failed_cell(run_dir / path.name) if cell is None else cell
        message = (f"{err.ename}: {err.evalue}" if hasattr(err, "ename")
                   else f"{type(err).__name__}: {err}")
        result = RunResult(str(run_dir), parameters, "failed", time.perf_counter() - began, message, cell)
        atomic_write(run_dir / FAILED, json.dumps(asdict(result), indent=2, default=str))
        return result
    status = "finished" if (run_dir / METRICS).exists() else "failed"
    error = "" if status == "finished" else f"the notebook ended without writing {METRICS}"
    result = RunResult(str(run_dir), parameters, status, time.perf_counter() - began, error)
    if status == "finished":
        atomic_write(run_dir / TIMING, json.dumps({"seconds": result.seconds, "parameters": parameters}, default=str))
    return result


def _failed_cell(executed: Path) -> int | None:
    """Index of the first code cell whose output is an error, in the executed notebook papermill saved."""
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return None
    for i, cell in enumerate(cells):
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return i
    return None


def grid_runs(grid: dict[str, list], fixed: dict | None = None) -> list[dict]:
    """Every combination of the grid's values (in the order given), each with the fixed parameters."""
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid: {key!r} must be a non-empty list of values, got {values!r}")
    keys = list(grid)
    return [{**(fixed or {}), **dict(zip(keys, combo))} for combo in itertools.product(*(grid[k] for k in keys))]


def load_grid(path: str | Path, grid: dict | None = None, overrides: dict | None = None) -> tuple[str | None, list[dict]]:
    """A sweep file: `notebook` (optional), `parameters` (fixed), and `grid` (key -> list, the product)
    and/or `runs` (a list of parameter dicts), by path or by the name of one the kit ships ("prompt_ablation").
    `grid` replaces the file's grid; `overrides` go into every set. Returns (notebook, parameter sets)."""
    shipped = SWEEPS / f"{Path(path).name.removesuffix('.yaml')}.yaml"
    if not Path(path).is_file():
        if not shipped.is_file():
            raise FileNotFoundError(f"no sweep file {str(path)!r}; give a path to a YAML file or one of: "
                                    f"{', '.join(sorted(p.stem for p in SWEEPS.glob('*.yaml')))}")
        path = shipped
    spec = yaml.safe_load(Path(path).read_text()) or {}
    known = {"notebook", "parameters", "grid", "runs"}
    unknown = sorted(set(spec) - known) if isinstance(spec, dict) else ["(not a mapping)"]
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; a sweep file has {', '.join(sorted(known))}")
    fixed = {**(spec.get("parameters") or {}), **(overrides or {})}
    grid = spec.get("grid") if grid is None else grid
    sets = grid_runs(grid, fixed) if grid else []
    sets += [{**fixed, **r, **(overrides or {})} for r in spec.get("runs") or []]
    if not sets:
        raise ValueError(f"{path}: no runs; give `grid:` (key: [values]) and/or `runs:` (a list of parameter sets)")
    notebook = spec.get("notebook")
    if isinstance(notebook, int):  # YAML reads `notebook: 02` as the number 2
        notebook = f"{notebook:02d}"
    return notebook, sets


def run_name(parameters: dict, varying: list[str]) -> str:
    """A stable directory name from the varying parameters (a short hash keeps long values unique)."""
    shown = "_".join(f"{k}={parameters[k]}" for k in varying if k in parameters) or "run"
    slug = re.sub(r"[^A-Za-z0-9=.+-]+", "-", shown).strip("-")[:80]
    digest = hashlib.sha1(json.dumps(parameters, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"{slug}-{digest}"


def summarize(results: list[RunResult]) -> pd.DataFrame:
    """One row per run: its parameters, status, seconds, error, and every scalar metric (nested keys dotted)."""
    rows = []
    for r in results:
        metrics_path = Path(r.run_dir) / METRICS
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        scalar = {k: v for k, v in flatten(metrics, "metrics.").items()
                  if v is None or isinstance(v, (int, float, str, bool))}  # lists (per-task tables) left out
        rows.append({**r.parameters, "status": r.status, "seconds": r.seconds, "error": r.error,
                     "failed_cell": r.failed_cell, "run_dir": r.run_dir, **scalar})
    return pd.DataFrame(rows)


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """Columns parquet can store: a column mixing types (a list beside a string, 1e-3 beside 0.5) as text."""
    table = table.copy()
    for column in table.columns:
        if table[column].dtype == object:
            kinds = {type(v) for v in table[column] if v is not None}
            if len(kinds) > 1 or kinds & {list, dict, tuple}:
                table[column] = [None if v is None else json.dumps(v, default=str) if isinstance(v, (list, dict, tuple))
                                 else str(v) for v in table[column]]
    return table


def placements(jobs: int, notebook: str | Path) -> list[dict]:
    """Where each of `jobs` runs at a time goes: a GPU each in turn (DEVICE cuda:i) when there are GPUs,
    else an equal share of the CPU cores (THREADS), so that the kernels do not fight over them. Empty for
    one job at a time, or a notebook without these parameters."""
    known = set(notebook_parameters(notebook))
    if jobs == 1 or not {"DEVICE", "THREADS"} <= known:
        return [{}] * jobs
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        return [{"DEVICE": f"cuda:{i % gpus}"} for i in range(jobs)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return [{"THREADS": max(1, cores // jobs)} for _ in range(jobs)]


def sweep(notebook: str | Path, parameter_sets: list[dict], out_dir: str | Path, jobs: int = 1,
          progress: bool = True) -> pd.DataFrame:
    """Run `notebook` once per parameter set (`jobs` at a time, each placed by `placements` unless its
    parameters say DEVICE or THREADS), each in `out_dir/<name>`; finished runs are skipped. Writes and
    returns the summary table."""
    if jobs < 1 or not parameter_sets:
        raise ValueError(f"sweep needs jobs >= 1 and at least one parameter set; got {jobs} and {len(parameter_sets)}")
    from tqdm.auto import tqdm

    for parameters in parameter_sets:  # a misspelled name refuses the sweep before any point runs
        check_parameters(notebook, parameters)
    out_dir = Path(out_dir).resolve()
    varying = [k for k in dict.fromkeys(k for p in parameter_sets for k in p)
               if len({json.dumps(p.get(k), sort_keys=True, default=str) for p in parameter_sets}) > 1]
    dirs = [out_dir / run_name(p, varying) for p in parameter_sets]
    if len(set(dirs)) < len(dirs):
        raise ValueError("sweep: two parameter sets are identical; each run needs its own parameters")
    bar = tqdm(total=len(dirs), desc=f"sweep {find_notebook(notebook).stem}", disable=not progress)

    slots = queue.Queue()
    for place in placements(jobs, notebook):
        slots.put(place)

    def one(args):
        place = slots.get()  # a free device or share of cores, given back when the run ends
        try:
            result = execute(notebook, *args, placement={k: v for k, v in place.items() if k not in args[1]})
        except Exception as err:  # one point's trouble fails that point alone; the summary is still written
            result = RunResult(str(args[0]), args[1], "failed", 0.0, f"{type(err).__name__}: {err}")
        finally:
            slots.put(place)
        bar.update(1)
        bar.set_postfix(last=result.status)
        return result

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each run is its own kernel process
        results = list(pool.map(one, zip(dirs, parameter_sets)))
    bar.close()
    table = summarize(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "summary.csv", table.to_csv(index=False))
    atomic_write(out_dir / "summary.parquet", _typed(table).to_parquet(index=False))
    from .plots import save_html, summary_table

    save_html(summary_table(table, f"sweep of {find_notebook(notebook).name}"), out_dir / "summary.html")
    return table


def list_runs(root: str | Path) -> pd.DataFrame:
    """Every run directory below `root` (a folder holding config.yaml) with its status and main facts."""
    rows = []
    for config in sorted(Path(root).rglob("config.yaml")):
        run_dir = config.parent
        failed = run_dir / FAILED
        status = "finished" if (run_dir / METRICS).exists() else "failed" if failed.exists() else "unfinished"
        name = (yaml.safe_load(config.read_text()) or {}).get("name", "")
        error = json.loads(failed.read_text()).get("error", "") if status == "failed" else ""
        rows.append({"run_dir": str(run_dir), "name": name, "status": status, "error": error,
                     "modified": pd.Timestamp(max(p.stat().st_mtime for p in run_dir.iterdir()), unit="s")})
    return pd.DataFrame(rows, columns=["run_dir", "name", "status", "error", "modified"])
