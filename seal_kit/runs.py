"""Runs: one directory per run under `outputs/runs/`, written atomically, resumable, never silently overwritten.

    from seal_kit.runs import start_run
    run = start_run("quickstart", run_dir=None, config={"MODEL": "embedded", "K": 2})
    run.write_table("per_passage", table)                  # per_passage.jsonl (+ .parquet)
    log = run.log("candidates", key=("passage_id", "sample"))   # candidates.jsonl: one record per key
    row = log.once({"passage_id": "p0", "sample": 0}, lambda: task.score(passage, edit))  # computed once
    rows = log.many(keys, lambda todo: rows_for(todo))     # the keys not logged yet, computed together
    run.finish({"accuracy": {...}})                        # metrics.json marks the run finished

`run_dir=None` makes `outputs/runs/<timestamp>-<name>`; papermill jobs pass RUN_DIR instead. Starting a
run directory again with the config it was started with reopens it: whatever its logs hold is read back,
not computed again, so an interrupted run resumes and a finished one (metrics.json exists;
`run.finished_before`) shows its results in seconds. Another config is refused, naming the keys that
differ, unless `overwrite=True`. Every file is written to a temporary name and renamed, so a crash
never leaves a half-written file behind; logs drop a torn last line when read.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import secrets
import shutil
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from filelock import FileLock, Timeout

METRICS = "metrics.json"
PROVENANCE = "provenance.json"  # what produced the run, a session per entry (seal_kit.provenance)
TIMING = "execution.json"  # written by a headless run (seal_kit.sweep.execute): its seconds and parameters
_PACKAGE = Path(__file__).resolve().parent
# The notebooks and sweep files: inside an installed wheel (seal_kit/notebooks), else beside the package in a checkout.
NOTEBOOKS = next((d for d in (_PACKAGE / "notebooks", _PACKAGE.parent / "notebooks") if d.is_dir()), _PACKAGE / "notebooks")
INSTALLED = NOTEBOOKS.parent == _PACKAGE  # the notebooks came with the installed package, not a checkout
SWEEPS = next((d for d in (_PACKAGE / "sweeps", _PACKAGE.parent / "sweeps") if d.is_dir()), _PACKAGE / "sweeps")


def notebooks() -> list[Path]:
    """The kit's notebooks, in course order (the installed package's, or a checkout's)."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def project_root(start: str | Path | None = None) -> Path | None:
    """The project `start` (default: the cwd) is in: the nearest folder at or above it holding
    pyproject.toml and notebooks/ (notebooks run from notebooks/); None outside one."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def outputs_root() -> Path:
    """`$SEAL_KIT_OUTPUTS`, else the `outputs/` of the project the cwd is in, else `./outputs`."""
    if os.environ.get("SEAL_KIT_OUTPUTS"):
        return Path(os.environ["SEAL_KIT_OUTPUTS"])
    root = project_root()
    return (root or Path.cwd().resolve()) / "outputs"


def atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:  # mode 0666 through open(): the process umask applies, as to any file it writes
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (its entry, not only the file's bytes); a no-op where directories
    cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _plain(obj):
    """Dataclasses to dicts, tuples to lists, NaN to None: configs and records serialise as strict JSON/YAML."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):  # numpy scalars from pandas: plain Python numbers
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # strict JSON has no NaN: a loss that was never computed is null
    return obj


@dataclasses.dataclass
class Run:
    path: Path
    finished_before: bool = False  # start_run reopened a finished run: its results are read back
    tracker: object = None  # a seal_kit.tracking.Tracker the run's numbers also go to (start_run's `tracker`)

    def __str__(self) -> str:
        return str(self.path) + (" (finished before: its results are read back, nothing is computed again)"
                                 if self.finished_before else "")

    @property
    def finished(self) -> bool:
        return (self.path / METRICS).exists()

    def write_json(self, name: str, obj) -> Path:
        target = self.path / name
        atomic_write(target, json.dumps(_plain(obj), indent=2, default=float) + "\n")
        return target

    def write_yaml(self, name: str, obj) -> Path:
        target = self.path / name
        atomic_write(target, yaml.safe_dump(_plain(obj), sort_keys=False))
        return target

    def write_table(self, name: str, table: pd.DataFrame) -> Path:
        """`<name>.jsonl` (readable, diffable) and `<name>.parquet` (typed, fast)."""
        atomic_write(self.path / f"{name}.jsonl", table.to_json(orient="records", lines=True, force_ascii=False))
        atomic_write(self.path / f"{name}.parquet", table.to_parquet(index=False))
        return self.path / f"{name}.jsonl"

    def note_session(self) -> None:
        """Add this session's environment to `provenance.json` (seal_kit.provenance); a finished run shown
        again is not a session of it."""
        from .provenance import environment

        sessions = self._provenance()
        self.write_json(PROVENANCE, {"sessions": [*sessions, environment()]})

    def note_model(self, model) -> None:
        """The loaded model's facts (id, revision or weights hash, device, dtype) in this session's entry.
        The dtype is part of what makes a run one run: a resume that would compute in another dtype than
        the run's earlier sessions (DTYPE="auto" on a machine that decides otherwise) is refused."""
        from .provenance import model_facts

        if self.finished_before:  # a finished run shown again is not a session of it, and trains nothing
            return
        sessions = self._provenance()
        facts = model_facts(model)  # hashes the weights: only for a session that records them
        before = {s["model"]["dtype"] for s in sessions[:-1] if isinstance(s.get("model"), dict) and s["model"].get("dtype")}
        if before and facts["dtype"] not in before:
            raise ValueError(f"{self.path} computed in {', '.join(sorted(before))} before; this session loaded the model "
                             f"in {facts['dtype']} (DTYPE decides it, 'auto' by what the machine can do): give "
                             f"DTYPE={sorted(before)[0]!r} to resume this run, or start a new one")
        if sessions:
            sessions[-1]["model"] = facts
            self.write_json(PROVENANCE, {"sessions": sessions})

    def _provenance(self) -> list[dict]:
        try:
            return json.loads((self.path / PROVENANCE).read_text())["sessions"]
        except (OSError, ValueError, KeyError, TypeError):  # none yet, or damaged: a record, not an input
            return []

    def log(self, name: str, key: str | tuple[str, ...] | None = None) -> "AppendLog":
        """`<name>.jsonl` as an append-only log; with `key`, one record per key (see AppendLog)."""
        return AppendLog(self.path / f"{name}.jsonl", key)

    def finish(self, metrics: dict) -> Path:
        """Write metrics.json last: its presence is what marks the run finished. A reopened finished run
        recomputes its metrics from what its logs hold; should they differ from those saved, a warning
        names the keys."""
        saved = self.path / METRICS
        if self.finished_before and saved.exists():
            changes = config_changes(json.loads(saved.read_text()), json.loads(json.dumps(_plain(metrics), default=float)))
            if changes:
                warnings.warn(f"{self.path}: the metrics recomputed from this finished run's records differ from "
                              f"those saved: {'; '.join(changes)}", stacklevel=2)
        written = self.write_json(METRICS, metrics)
        if self.tracker is not None:
            self.tracker.log(metrics)
            self.tracker.finish()
            self.tracker = None
        run_lock(self.path).release(force=True)  # finished: others may open it to look
        return written

    def track(self, values: dict, step: int | None = None) -> None:
        """Send the numbers among `values` to the run's tracker, if it has one (see seal_kit.tracking)."""
        if self.tracker is not None:
            self.tracker.log(values, step=step)


class AppendLog:
    """A JSON-lines file that only grows. Each record is one line, written whole, flushed and fsynced
    before `append` returns, under a file lock, so two processes never interleave and whatever was
    appended survives a crash. Nothing complete is ever lost: an unterminated last line (a crash
    mid-write) is cut off when read; a complete line in the middle that is not a JSON object (a
    corrupted disk block, a hand edit) is moved aside into `<name>.jsonl.corrupt` with its line number,
    with a warning, and every record after it is kept; a write that fails (disk full) is truncated
    back to where it started before the error is raised, so the next append starts on a clean line.

    With `key` (the field, or fields, naming a record) it is a table computed once per key: `once` and
    `many` return the logged record of every key asked for and compute only the keys not logged yet,
    appending each record as it is done. A record for a key that is logged already (another process
    got there first) is not written again: the first one counts."""

    def __init__(self, path: str | Path, key: str | tuple[str, ...] | None = None):
        self.path = Path(path)
        self.key = None if key is None else (key,) if isinstance(key, str) else tuple(key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path.with_name(f".{self.path.name}.lock")))
        self._reset(None)
        self._sync()

    def _reset(self, inode) -> None:
        self.records: list[dict] = []
        self._index: dict[tuple, dict] = {}
        self._read_bytes, self._read_lines, self._inode = 0, 0, inode

    def _sync(self) -> None:
        """Read what was appended since the last read (by us, another session or another process)."""
        with self._lock:
            if not self.path.exists():
                return
            inode = self.path.stat().st_ino
            if inode != self._inode:  # first read, or another process moved a bad line aside: read it all
                self._reset(inode)
            with open(self.path, "rb") as f:
                f.seek(self._read_bytes)
                raw = f.read()
            lines = raw.splitlines(keepends=True)
            torn = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
            good, bad = [], []
            for n, line in enumerate(lines, self._read_lines + 1):
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if isinstance(record, dict):
                    good.append(line)
                    self._add(record)
                else:
                    bad.append((n, line))
            if bad:
                self._move_aside(bad, good, torn)
                return
            if torn:
                warnings.warn(f"{self.path}: dropped a partial last record ({len(torn)} bytes) left by an "
                              "interrupted write; it will be recomputed", stacklevel=3)
                with open(self.path, "r+b") as f:
                    f.truncate(self._read_bytes + len(raw) - len(torn))
            self._read_bytes += len(raw) - len(torn)
            self._read_lines += len(lines)

    def _move_aside(self, bad: list[tuple[int, bytes]], good: list[bytes], torn: bytes) -> None:
        """Keep the bad lines in `<name>.corrupt` (line number and bytes) and rewrite the log without them
        (and without a torn last line), atomically; called under the lock."""
        corrupt = self.path.with_name(self.path.name + ".corrupt")
        with open(corrupt, "a", encoding="utf-8") as f:
            for n, line in bad:
                f.write(json.dumps({"line": n, "text": line.decode("utf-8", "replace")}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with open(self.path, "rb") as f:
            head = f.read(self._read_bytes)
        atomic_write(self.path, head + b"".join(good))
        warnings.warn(f"{self.path}: line(s) {', '.join(str(n) for n, _ in bad)} were not JSON records and were "
                      f"moved to {corrupt.name}; the {len(good)} record(s) around them are kept"
                      + (f" (a partial last record, {len(torn)} bytes, was dropped)" if torn else ""), stacklevel=4)
        self._inode = self.path.stat().st_ino
        self._read_bytes += sum(len(line) for line in good)
        self._read_lines += len(good)

    def _add(self, record: dict) -> None:
        self.records.append(record)
        if self.key is not None:
            self._index.setdefault(self._key_of(record), record)

    def _key_of(self, record: dict) -> tuple:
        missing = [k for k in self.key if k not in record]
        if missing:
            raise KeyError(f"{self.path.name}: a record without {missing[0]!r}; its key is {', '.join(self.key)}")
        return tuple(json.dumps(_plain(record[k]), sort_keys=True) for k in self.key)

    def get(self, key: dict) -> dict | None:
        """The logged record under `key` (a dict holding the key fields), or None."""
        if self.key is None:
            raise TypeError(f"{self.path.name} was opened without a key: run.log(name, key=...) names the fields")
        return self._index.get(self._key_of(key))

    def append(self, record: dict) -> dict:
        """Write one record; returns it as logged (plain JSON: tuples as lists, NaN as None)."""
        line = json.dumps(_plain(record), default=float, ensure_ascii=False, allow_nan=False) + "\n"
        stored = json.loads(line)
        with self._lock:
            self._sync()
            if self.key is not None and (first := self._index.get(self._key_of(stored))) is not None:
                return first
            data = line.encode()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                start = os.lseek(fd, 0, os.SEEK_END)
                try:
                    written = 0
                    while written < len(data):
                        written += os.write(fd, data[written:])
                    os.fsync(fd)
                except BaseException:  # disk full, interrupted: leave no partial line behind
                    os.ftruncate(fd, start)
                    raise
            finally:
                os.close(fd)
            self._read_bytes += len(data)
            self._read_lines += 1
            self._add(stored)
        return stored

    def once(self, key: dict, compute: Callable[[], dict]) -> dict:
        """The record under `key`: read back if logged, else `compute()` with the key fields, logged."""
        self._sync()
        found = self.get(key)
        return found if found is not None else self.append({**key, **compute(), **key})

    def many(self, keys: list[dict], compute: Callable[[list[dict]], Iterable[dict] | pd.DataFrame],
             desc: str | None = None) -> list[dict]:
        """The records under `keys`, in their order. The keys not logged yet go to one `compute(todo)`
        call, which yields records (a DataFrame's rows, or dicts as an executor finishes them), each
        carrying its key fields; each is logged as it arrives, records of keys not asked for are
        dropped. `desc` shows a progress bar counting the keys done."""
        from tqdm.auto import tqdm

        self._sync()
        todo = list({self._key_of(k): k for k in keys if self.get(k) is None}.values())
        if todo:
            wanted = {self._key_of(k) for k in todo}
            bar = tqdm(total=len(keys), initial=len(keys) - len(todo), desc=desc, disable=desc is None)
            made = compute(todo)
            for record in made.to_dict("records") if isinstance(made, pd.DataFrame) else made:
                if (key := self._key_of(record)) in wanted:
                    wanted.discard(key)
                    self.append(record)
                    bar.update(1)
            bar.close()
            missing = [k for k in todo if self.get(k) is None]
            if missing:
                raise ValueError(f"{self.path.name}: compute returned no record for {len(missing)} key(s), "
                                 f"e.g. {({f: missing[0][f] for f in self.key})}")
        return [self.get(k) for k in keys]


def config_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """`key: old -> new` for every (nested, dotted) key whose value differs."""
    changes = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changes


def recorded_parameters(run_dir: str | Path | None) -> dict | None:
    """The parameters a finished headless run was made with (its execution.json), RUN_DIR left out; None
    where `run_dir` holds no finished run made headless (`seal-kit run`, a sweep, papermill)."""
    if not run_dir:
        return None
    path = Path(run_dir)
    try:
        record = json.loads((path / TIMING).read_text())
    except (OSError, ValueError):
        return None
    if not (path / METRICS).exists() or not isinstance(record.get("parameters"), dict):
        return None
    return {k: v for k, v in record["parameters"].items() if k != "RUN_DIR"}


def new_run_path(name: str, folder: str = "runs") -> Path:
    """`outputs/<folder>/<timestamp>-<name>`, claimed atomically; two started in the same second get -2, -3..."""
    base = outputs_root() / folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not claim a new run directory next to {base}")


_LOCKS: dict[str, FileLock] = {}  # this process's lock object per run directory (re-entrant)


class RunBusy(RuntimeError):
    """Another process is working in the run directory."""


def run_lock(path: str | Path) -> FileLock:
    """This process's lock on a run directory (`<run>/.lock`), one re-entrant object per directory, shared by
    everything here that writes into the run (start_run, the outer loop, the review widget)."""
    key = str(Path(path).resolve())
    if key not in _LOCKS:
        _LOCKS[key] = FileLock(str(Path(key) / ".lock"), timeout=0)
    return _LOCKS[key]


def claim(path: str | Path) -> FileLock:
    """Take the run directory's lock (again, if this process holds it) or raise RunBusy naming it."""
    lock = run_lock(path)
    try:
        lock.acquire()
    except Timeout:
        raise RunBusy(f"another process is working in {path} right now (a kernel or a `seal-kit run` that opened "
                      "it); wait for it to finish, or stop it (restart its kernel) before opening this run here") from None
    return lock


def fingerprint(items) -> dict[str, str]:
    """Each item's content hash under its id (passages, ARC tasks): kept in a run's config, so a resume onto
    data edited since (the same file, other text) is refused, naming the items that changed."""
    return {str(item.id): hashlib.sha256(json.dumps(_plain(item), sort_keys=True, ensure_ascii=False).encode())
            .hexdigest()[:12] for item in items}


def check_run_dir(run_dir: str | Path) -> Path:
    """The run directory, made if missing; a named error if it is a file or cannot be written."""
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"run directory {path} is a file; choose another RUN_DIR (or none for a new one)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(f"run directory {path} cannot be created: {err.strerror}; choose another RUN_DIR") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"run directory {path} is not writable; choose another RUN_DIR or make it writable")
    return path


def start_run(name: str, run_dir: str | Path | None = None, config: dict | None = None,
              overwrite: bool = False, tracker: str | None = None) -> Run:
    """Create a run directory and write its resolved config.yaml, or reopen one started with this config.

    Reopening resumes an unfinished run and shows a finished one (`finished_before`): the logs hold what
    was computed. Another config is refused with a ValueError listing the keys that differ (a run mixing
    two configs would compare nothing). `overwrite=True` starts the directory afresh with the new
    config, deleting the previous run's records (executed notebooks stay: papermill may be writing one
    there). `tracker` ("trackio", "wandb", "mlflow") also sends the run's numbers there (not when a
    finished run is only shown); it is not part of the config: where numbers are watched is not what ran."""
    if tracker is not None:
        from .tracking import TRACKERS

        if tracker not in TRACKERS:
            raise ValueError(f"TRACKER={tracker!r}: choose None or one of {', '.join(TRACKERS)}")
    path = check_run_dir(run_dir) if run_dir else new_run_path(name)
    claim(path)  # first: nothing here is read or written while another process works in the run
    try:
        run = _open_run(path, name, config, overwrite)
    except BaseException:
        run_lock(path).release()
        raise
    if run.finished_before:  # shown, not run: another process may look at it too
        run_lock(path).release()
    elif tracker is not None:
        from .tracking import Tracker

        try:
            run.tracker = Tracker(tracker, path.name, _plain(config or {}))
        except BaseException:
            run_lock(path).release()
            raise
    return run


def _open_run(path: Path, name: str, config: dict | None, overwrite: bool) -> Run:
    resolved = _plain({"name": name, **(config or {})})
    if overwrite and path.exists():
        for item in path.iterdir():  # papermill may be writing the executed notebook here right now
            if item.suffix != ".ipynb":
                shutil.rmtree(item) if item.is_dir() else item.unlink()
    run = Run(path)
    previous = path / "config.yaml"
    if previous.exists():
        try:
            saved = yaml.safe_load(previous.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ValueError(f"{previous} cannot be read ({type(err).__name__}: {err}); it records the config this run "
                             "was started with: restore it, or choose another RUN_DIR") from None
        if not isinstance(saved, dict):
            raise ValueError(f"{previous} holds a {type(saved).__name__}, not the mapping of parameters a run "
                             "starts with: restore it, or choose another RUN_DIR")
        changes = config_changes(saved, yaml.safe_load(yaml.safe_dump(resolved)))
        if changes:
            state = ("a finished run" if run.finished else
                     "an unfinished run; resuming it would mix two experiments")
            raise ValueError(f"{path} holds {state} started with another config. Changed: {'; '.join(changes)}. "
                             "Restore those values to reopen it, choose another RUN_DIR (or none for a new "
                             "timestamped one), or pass overwrite=True to start it afresh")
    elif run.finished:
        raise FileExistsError(f"{path} already holds a finished run ({METRICS}) without the config.yaml it was "
                              "started with; choose another RUN_DIR, or pass overwrite=True")
    run.finished_before = run.finished
    path.mkdir(parents=True, exist_ok=True)
    if not previous.exists():
        run.write_yaml("config.yaml", resolved)
    if not run.finished_before:
        run.note_session()
    return run
