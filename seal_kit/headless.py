"""One notebook run headless with papermill, into its run directory, checked before anything is made.

    from seal_kit.headless import execute, check_run
    parameters = check_run("03_rest_em", "outputs/runs/x", {"K": 2})  # refused (Refused) before a folder exists
    result = execute("03_rest_em", "outputs/runs/x", {"K": 2})         # -> RunResult(status, run_dir, error, ...)

A parameter the notebook does not have is refused naming the nearest one; a run directory holding a finished
run made with other parameters is refused naming the profile it was made with. The run records its seconds
and parameters (execution.json); a failure records the failing cell and its error (failed.json). Progress is
the notebook's own sections, one line each as it starts; the kernel's TCP warning is dropped.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from . import profiles
from .profiles import nearest, notebook_defaults
from .paths import INSTALLED, NOTEBOOKS, notebooks
from .runs import METRICS, TIMING, RunBusy, check_run_dir, claim, recorded_parameters
from .storage import atomic_write


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


class Refused(ValueError):
    """A run that must not start, refused before anything is made or run: a parameter the notebook lacks,
    or a run directory holding a run finished with other parameters."""


def check_parameters(notebook: str | Path, parameters: dict) -> None:
    """Refuse a parameter the notebook does not have, naming it and the nearest known name: a misspelled
    one would otherwise run every point with the default (and papermill injects names as code)."""
    known = notebook_parameters(notebook)
    for name in parameters:
        if name not in known:
            near = nearest(name, known)
            raise Refused(f"{find_notebook(notebook).stem} has no parameter {str(name)!r}"
                          + (f"; did you mean {near!r}?" if near else ".") + f" Its parameters: {', '.join(known)}")


def made_with(notebook: str | Path, run_dir: str | Path) -> str:
    """How the finished run in `run_dir` was made, for a message: `profile workshop`, with the values given
    beside it (`profile paper-replay and N_PASSAGES=4`), or `the notebook's defaults`. The profile is the
    one its execution.json records (`seal-kit run --profile`), or PROFILE among its parameters; a run
    recorded before profiles were is matched to the profile its values come closest to."""
    stem = find_notebook(notebook).stem
    try:
        record = json.loads((Path(run_dir) / TIMING).read_text())
    except (OSError, ValueError):
        record = {}
    values = {k: v for k, v in (record.get("parameters") or {}).items() if k != "RUN_DIR"}
    defaults = _plain(notebook_defaults(str(find_notebook(notebook))))
    full = {**defaults, **_plain(values)}
    smoke = full.get("SMOKE") is True

    def extras(profile):  # what the run holds beyond the profile's values over the defaults
        expected = {**defaults, **_plain(profiles.resolved(profile, stem, smoke))}
        return {k: v for k, v in full.items() if expected.get(k) != v and k not in ("PROFILE", "SMOKE")}

    said = lambda name, rest: " and ".join(filter(None, [  # noqa: E731
        f"profile {name}" + (" with SMOKE" if smoke else ""), ", ".join(f"{k}={v!r}" for k, v in rest.items())]))
    profile = record.get("profile") or values.get("PROFILE")
    if profile:
        try:
            return said(profile, extras(profile))
        except ValueError:  # a profile file since moved or renamed: its name is what is known
            return f"profile {profile}"
    if not extras(None):
        return "SMOKE (the smoke profile)" if smoke else "the notebook's defaults"
    changing = [(len(extras(n)), n) for n in profiles.names() if n != profiles.SMOKE and
                {k: v for k, v in _plain(profiles.resolved(n, stem)).items() if defaults.get(k) != v}]
    fewest, name = min(changing, default=(None, None))
    if name is not None and fewest < len(extras(None)):  # the profile explains some of the values
        alike = [n for count, n in changing if count == fewest and n != name]  # the same values for this notebook
        return said(name + (f" (or {', '.join(alike)}: the same values here)" if alike else ""), extras(name))
    return ", ".join(f"{k}={v!r}" for k, v in extras(None).items()) + (" with SMOKE" if smoke else "") + " (no profile)"


def _plain(values: dict) -> dict:
    return json.loads(json.dumps(values, default=str))


def refusal(notebook: str | Path, run_dir: str | Path, parameters: dict) -> str | None:
    """Why `run_dir` refuses to run `notebook` with `parameters`: it holds a run finished (its metrics.json,
    its execution.json) with other ones. A parameter left out means its default, whether it was given before
    or not. None where the run directory is new, unfinished, or finished with these parameters."""
    run_dir = Path(run_dir)
    before = recorded_parameters(run_dir)
    if before is None:  # new, unfinished, or finished in JupyterLab: nothing records what it was run with
        return None
    defaults = _plain(notebook_defaults(str(find_notebook(notebook))))
    before = {**defaults, **_plain(before)}
    plain = {**defaults, **_plain({k: v for k, v in parameters.items() if k != "RUN_DIR"})}
    changed = sorted(k for k in set(before) | set(plain) if before.get(k) != plain.get(k))
    if not changed:
        return None
    return (f"{run_dir} holds a run finished with {made_with(notebook, run_dir)}; these parameters differ (changed: "
            + ", ".join(f"{k} {before.get(k)!r} -> {plain.get(k)!r}" for k in changed)
            + "). Choose another run directory, or give no parameters (no -p, no --profile) to show it as it was made")


def check_run(notebook: str | Path, run_dir: str | Path | None, parameters: dict | None) -> dict:
    """The parameters `execute` would run `notebook` in `run_dir` with (a finished run's own when none are
    given; relative file paths resolved), or Refused naming why it would not run: a parameter the notebook
    lacks, or a finished run there made with other parameters. Nothing is created: `seal-kit run` asks
    this before it makes a new run directory."""
    path = find_notebook(notebook)
    run_dir = Path(run_dir).resolve() if run_dir else None
    if not parameters and (recorded := recorded_parameters(run_dir)) is not None:
        parameters = recorded  # none given: a finished run is shown with its own parameters
    parameters = resolve_paths(dict(parameters or {}))
    check_parameters(path, parameters)
    if run_dir is not None and run_dir.is_dir() and (why := refusal(path, run_dir, parameters)):
        raise Refused(why)
    return parameters


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
            progress: bool = False, placement: dict | None = None, profile: str | None = None) -> RunResult:
    """Run one notebook headless into `run_dir` (the executed copy is saved there); skip it if finished
    (with no `parameters`, a finished run's own: `runs.recorded_parameters`).
    Relative file paths among the parameters are taken from the current directory, as `run_dir` is.
    A parameter the notebook lacks is refused (ValueError) before anything runs; a run directory that is
    a file or cannot be written is a failed result naming it. `placement` (DEVICE, THREADS: where a sweep
    puts this run) is passed to the notebook beside `parameters` but is not part of what the run is.
    `profile` names the profile `parameters` came from (`seal-kit run --profile`), recorded beside them.
    With `progress`, one line on stderr per section of the notebook as it starts (see `_engine`)."""
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
        why = refusal(path, run_dir, parameters)
        if why:
            return RunResult(str(run_dir), parameters, "failed", 0.0, why)
        timing = run_dir / TIMING
        record = json.loads(timing.read_text()) if timing.exists() else {}
        return RunResult(str(run_dir), parameters, "skipped", record.get("seconds", 0.0))
    busy = f"another process is working in {run_dir} right now (a kernel or another `seal-kit run`); wait for it " \
           "or stop it, then run this again"
    try:  # held while papermill runs: a second `seal-kit run` on this directory must not overwrite its notebook
        with FileLock(str(run_dir / EXECUTING), timeout=0):
            try:  # a kernel (JupyterLab, or a run killed mid-way whose kernel lives on) holds the run's own lock
                claim(run_dir).release()
            except RunBusy:
                return RunResult(str(run_dir), parameters, "failed", 0.0, busy)
            return _execute(path, run_dir, parameters, progress, placement or {}, profile)
    except Timeout:
        return RunResult(str(run_dir), parameters, "failed", 0.0, busy)


def _execute(path: Path, run_dir: Path, parameters: dict, progress: bool, placement: dict,
             profile: str | None = None) -> RunResult:
    import papermill  # heavy import: only when a run starts

    (run_dir / FAILED).unlink(missing_ok=True)
    began = time.perf_counter()
    try:
        # A checkout's notebooks run in notebooks/ (as JupyterLab opens them); an installed kit's where it was called.
        cwd = Path.cwd() if INSTALLED and path.is_relative_to(NOTEBOOKS) else path.parent
        with _mirrored(run_dir, progress):
            papermill.execute_notebook(str(path), str(run_dir / path.name), cwd=str(cwd), progress_bar=False,
                                       engine_name=_engine(), sections=progress,
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
        record = {"seconds": result.seconds, "parameters": parameters, **({"profile": str(profile)} if profile else {})}
        atomic_write(run_dir / TIMING, json.dumps(record, default=str))
    return result


_drain = None  # while a run mirrors its progress: prints the lines it has appended so far (see _mirrored)


@contextlib.contextmanager
def _mirrored(run_dir: Path, on: bool):
    """With `on`: the kernel started inside reports its own work's progress (`seal_kit.progress.note`: candidates,
    rounds) into `<run>/.progress`, and each line it appends is printed on stderr under the section lines, with
    the seconds since the run began (a section's line first prints what came before it). Off (a sweep's runs,
    side by side): nothing changes."""
    global _drain
    if not on:
        yield
        return
    import sys
    import threading

    from . import progress

    path, began, stop, lock = run_dir / ".progress", time.perf_counter(), threading.Event(), threading.Lock()
    path.write_text("")
    before = os.environ.get(progress.ENV)
    os.environ[progress.ENV] = str(path)  # read by the kernel papermill starts now, which inherits it
    reading = open(path, "rb")

    def drain():
        with lock:
            while (line := reading.readline()).endswith(b"\n"):
                print(f"  [{time.perf_counter() - began:6.0f} s]     {line.decode().rstrip()}", file=sys.stderr, flush=True)
            reading.seek(-len(line), os.SEEK_CUR)  # a line still being written: read it whole later

    def tail():
        while not stop.wait(0.5):
            drain()

    reader = threading.Thread(target=tail, daemon=True)
    reader.start()
    _drain = drain
    try:
        yield
    finally:
        _drain = None
        if before is None:
            del os.environ[progress.ENV]
        else:
            os.environ[progress.ENV] = before
        stop.set()
        reader.join(timeout=2)
        drain()
        reading.close()
        path.unlink(missing_ok=True)


TCP_WARNING = "running over TCP without encryption"  # ipykernel's, on every local kernel papermill starts


def _engine():
    """papermill's nbclient engine, with two changes, registered as "seal-kit" (made on first use: papermill
    is a heavy import).

    Progress: papermill's own bar counts cells (`10/19 cells` says nothing of a run four seconds from done,
    or of one whose single training cell takes an hour), and the notebooks' own bars (tqdm.auto) are
    widgets in a kernel, shown nowhere in a terminal (streaming every cell's output instead would bury the
    terminal in tables and warnings). With `sections=True` (and papermill's bar off), this engine prints one
    line per section of the notebook as its first code cell starts: the markdown headings before that cell
    (`## 1. Run the rounds`) and the seconds since the run began, on stderr. The sections are the ones the
    notebook is read by, so the lines say where the run is in its own terms; their stamps, how long each
    section took.

    Quiet kernels: ipykernel warns on its stderr, which is the terminal's, that it is "running over TCP
    without encryption" (a local kernel always is). The kernel's stderr comes through a pipe, every line
    but that one passed on as it comes."""
    import sys
    import threading

    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    if "seal-kit" in papermill_engines._engines:
        return "seal-kit"

    class Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, sections=False,
                                     **kwargs):
            if sections:
                _announce_sections(nb_man)
            kwargs = remove_args(["input_path"], **kwargs)
            safe = remove_args(["timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(safe, timeout=execution_timeout or kwargs.get("timeout"),
                                 startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
                                 log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
            read, write = os.pipe()
            out = sys.stderr

            def relay():
                with open(read, "rb") as pipe:
                    for line in pipe:
                        text = line.decode(errors="replace")
                        if TCP_WARNING not in text:
                            out.write(text)
                            out.flush()

            relaying = threading.Thread(target=relay, daemon=True)
            relaying.start()
            try:
                with open(write, "wb", closefd=True) as kernel_stderr:  # the kernel holds its own copy
                    return PapermillNotebookClient(nb_man, **final).execute(stderr=kernel_stderr)
            finally:
                relaying.join(timeout=2)  # the kernel has exited: its end of the pipe is closed

    papermill_engines.register("seal-kit", Engine)
    return "seal-kit"


def _announce_sections(nb_man) -> None:
    """Print a line on stderr as the first code cell after markdown headings starts: the headings and the
    seconds since the run began (see `_engine`)."""
    import sys

    began, start = time.perf_counter(), nb_man.cell_start
    pending: list[str] = []  # the headings read since the last line printed

    def cell_start(cell, cell_index=None, **kwargs):
        if cell.cell_type == "markdown":  # papermill starts every cell, markdown ones too
            pending.extend(line.lstrip("#").strip() for line in cell.source.splitlines()
                           if line.startswith("#") and line.lstrip("#").strip())
        elif pending and cell.cell_type == "code":
            if _drain is not None:  # the work before this section, reported before it
                _drain()
            print(f"  [{time.perf_counter() - began:6.0f} s] {' / '.join(pending)}", file=sys.stderr, flush=True)
            pending.clear()
        return start(cell, cell_index, **kwargs)

    nb_man.cell_start = cell_start


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
