"""Runs: one directory per run under `outputs/runs/`, written atomically, never silently overwritten.

    from seal_kit.runs import start_run
    run = start_run("quickstart", run_dir=None, config={"MODEL": "embedded", "K": 2})
    run.write_table("self_edits", edits_df)     # self_edits.jsonl (+ .parquet)
    log = run.log("candidates")                 # candidates.jsonl, appended and fsynced record by record
    run.finish({"accuracy": {...}})             # metrics.json marks the run finished

`run_dir=None` makes `outputs/runs/<timestamp>-<name>`; papermill jobs pass RUN_DIR instead. A run
directory that already holds a metrics.json is finished: starting it again raises unless
`overwrite=True`; reopening an unfinished one (to resume it) with a different config is refused,
naming the keys that differ. Every file is written to a temporary name and renamed, so a crash never
leaves a half-written file behind; append-only logs drop a torn last line when reopened.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

METRICS = "metrics.json"
_UMASK = os.umask(0)
os.umask(_UMASK)


def outputs_root() -> Path:
    """`$SEAL_KIT_OUTPUTS`, else the `outputs/` of the project the cwd is in (notebooks run from
    `notebooks/`), else `./outputs`."""
    if os.environ.get("SEAL_KIT_OUTPUTS"):
        return Path(os.environ["SEAL_KIT_OUTPUTS"])
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "outputs").is_dir() and (folder / "pyproject.toml").exists():
            return folder / "outputs"
    return here / "outputs"


def atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results should read like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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

    def log(self, name: str) -> "AppendLog":
        return AppendLog(self.path / f"{name}.jsonl")

    def finish(self, metrics: dict) -> Path:
        """Write metrics.json last: its presence is what marks the run finished."""
        return self.write_json(METRICS, metrics)


class AppendLog:
    """A JSON-lines file that only grows: each record is one write of one line, flushed and fsynced
    before `append` returns, so whatever was appended survives a crash. A torn last line (a crash
    mid-write) is cut off when the log is reopened."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: list[dict] = []
        if self.path.exists():
            raw = self.path.read_bytes()
            good = 0
            for line in raw.splitlines(keepends=True):
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("no newline")
                    self.records.append(json.loads(line))
                except ValueError:
                    break
                good += len(line)
            if good < len(raw):
                warnings.warn(f"{self.path}: dropped a partial last record ({len(raw) - good} bytes) left by an "
                              "interrupted write; it will be recomputed", stacklevel=2)
                with open(self.path, "r+b") as f:
                    f.truncate(good)

    def append(self, record: dict) -> None:
        line = json.dumps(_plain(record), default=float, ensure_ascii=False, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())
        self.records.append(json.loads(line))


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


def start_run(name: str, run_dir: str | Path | None = None, config: dict | None = None,
              overwrite: bool = False) -> Run:
    """Create (or reopen an unfinished) run directory and write its resolved config.yaml.

    Reopening resumes: the config must be the one the run was started with, else ValueError lists the
    keys that differ (a resumed run mixing two configs would compare nothing). `overwrite=True` starts
    the directory afresh with the new config, deleting the previous run's records (executed notebooks
stay: papermill may be writing one there)."""
    path = Path(run_dir) if run_dir else new_run_path(name)
    run = Run(path)
    resolved = _plain({"name": name, **(config or {})})
    if run.finished and not overwrite:
        raise FileExistsError(f"{path} already holds a finished run ({METRICS} exists); choose another RUN_DIR, "
                              "leave RUN_DIR empty for a new timestamped one, or pass overwrite=True")
    if overwrite and path.exists():
        for item in path.iterdir():  # papermill may be writing the executed notebook here right now
            if item.suffix != ".ipynb":
                shutil.rmtree(item) if item.is_dir() else item.unlink()
    previous = path / "config.yaml"
    if previous.exists():
        changes = config_changes(yaml.safe_load(previous.read_text()) or {}, yaml.safe_load(yaml.safe_dump(resolved)))
        if changes:
            raise ValueError(f"{path} holds an unfinished run started with another config; resuming it would mix "
                             f"two experiments. Changed: {'; '.join(changes)}. Restore those values to resume, "
                             "choose another RUN_DIR, or pass overwrite=True to start it afresh")
    path.mkdir(parents=True, exist_ok=True)
    run.write_yaml("config.yaml", resolved)
    return run
