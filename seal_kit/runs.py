"""Runs: one directory per run under `outputs/runs/`, written atomically, resumable, never silently overwritten.

    from seal_kit.runs import start_run
    run = start_run("01_quickstart", run_dir=None, config={"MODEL": "embedded", "K": 2})
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
import os
import shutil
import warnings
from pathlib import Path

import pandas as pd
import yaml
from filelock import FileLock, Timeout

from .paths import new_run_path
from .storage import AppendLog, atomic_write, plain

METRICS = "metrics.json"
PROVENANCE = "provenance.json"  # what produced the run, a session per entry (seal_kit.provenance)
TIMING = "execution.json"  # written by a headless run (seal_kit.headless.execute): its seconds and parameters


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
        atomic_write(target, json.dumps(plain(obj), indent=2, default=float) + "\n")
        return target

    def write_yaml(self, name: str, obj) -> Path:
        target = self.path / name
        atomic_write(target, yaml.safe_dump(plain(obj), sort_keys=False))
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

    def log(self, name: str, key: str | tuple[str, ...] | None = None) -> AppendLog:
        """`<name>.jsonl` as an append-only log; with `key`, one record per key (see AppendLog)."""
        return AppendLog(self.path / f"{name}.jsonl", key)

    def finish(self, metrics: dict) -> Path:
        """Write metrics.json last: its presence is what marks the run finished. A reopened finished run
        recomputes its metrics from what its logs hold; should they differ from those saved, a warning
        names the keys."""
        saved = self.path / METRICS
        if self.finished_before and saved.exists():
            changes = config_changes(json.loads(saved.read_text()), json.loads(json.dumps(plain(metrics), default=float)))
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
    if not (path / METRICS).exists() or not isinstance(record, dict) or not isinstance(record.get("parameters"), dict):
        return None
    return {k: v for k, v in record["parameters"].items() if k != "RUN_DIR"}


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
    return {str(item.id): hashlib.sha256(json.dumps(plain(item), sort_keys=True, ensure_ascii=False).encode())
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
    try:  # write, not os.access: root passes every permission check, yet a read-only mount or /sys refuses it
        probe = path / f".write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"run directory {path} is not writable ({err.strerror}); choose another RUN_DIR "
                              "or make it writable") from None
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
            run.tracker = Tracker(tracker, path.name, plain(config or {}))
        except BaseException:
            run_lock(path).release()
            raise
    return run


def _open_run(path: Path, name: str, config: dict | None, overwrite: bool) -> Run:
    resolved = plain({"name": name, **(config or {})})
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
        # `name` labels the run, it is not what ran: runs the notebooks named "quickstart" before they used their
        # stem ("01_quickstart", as `seal-kit run` names the folder) reopen under the new name
        changes = config_changes({**saved, "name": name}, yaml.safe_load(yaml.safe_dump(resolved)))
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
