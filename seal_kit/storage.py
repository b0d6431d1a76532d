"""Writing that survives a crash: files replaced atomically (`atomic_write`) and append-only JSON-lines logs
(`AppendLog`), the two ways a run directory is written. `plain` turns configs and records into strict JSON.

    from seal_kit.storage import AppendLog, atomic_write
    atomic_write(path, text)                           # a temporary name, fsynced, renamed over `path`
    log = AppendLog(path, key=("passage_id", "sample"))
    row = log.once({"passage_id": "p0", "sample": 0}, compute)   # computed once, read back after
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from . import progress

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


def plain(obj):
    """Dataclasses to dicts, tuples to lists, NaN to None: configs and records serialise as strict JSON/YAML."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):  # numpy scalars from pandas: plain Python numbers
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # strict JSON has no NaN: a loss that was never computed is null
    return obj


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
        return tuple(json.dumps(plain(record[k]), sort_keys=True) for k in self.key)

    def get(self, key: dict) -> dict | None:
        """The logged record under `key` (a dict holding the key fields), or None."""
        if self.key is None:
            raise TypeError(f"{self.path.name} was opened without a key: run.log(name, key=...) names the fields")
        return self._index.get(self._key_of(key))

    def append(self, record: dict) -> dict:
        """Write one record; returns it as logged (plain JSON: tuples as lists, NaN as None)."""
        line = json.dumps(plain(record), default=float, ensure_ascii=False, allow_nan=False) + "\n"
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
            progress.note(desc, bar.n, len(keys))
            made = compute(todo)
            for record in made.to_dict("records") if isinstance(made, pd.DataFrame) else made:
                if (key := self._key_of(record)) in wanted:
                    wanted.discard(key)
                    self.append(record)
                    bar.update(1)
                    progress.note(desc, bar.n, len(keys))
            bar.close()
            missing = [k for k in todo if self.get(k) is None]
            if missing:
                raise ValueError(f"{self.path.name}: compute returned no record for {len(missing)} key(s), "
                                 f"e.g. {({f: missing[0][f] for f in self.key})}")
        return [self.get(k) for k in keys]
