"""A headless run's progress in its own work: "round 1: scoring self-edits 3/8" on the terminal of `seal-kit run`.

    from seal_kit import progress
    progress.note("candidates", done, total)      # in the kit's loops, beside their tqdm bars

In JupyterLab the kit's loops show tqdm bars. A headless kernel's bars are widgets nobody sees, so
`seal_kit.headless` names a file in `$SEAL_KIT_PROGRESS` for the kernel it starts and prints each line the kernel
appends to it. Lines are throttled (one per `desc` every few seconds, and the last); without the variable
`note` does nothing.
"""
from __future__ import annotations

import os
import time

ENV = "SEAL_KIT_PROGRESS"
EVERY = 5.0  # seconds between two lines of one piece of work
_last: dict[str, float] = {}


def note(desc: str | None, done: int, total: int, detail: str = "") -> None:
    """Append `desc done/total` (and `detail`) to the file `$SEAL_KIT_PROGRESS` names, at most every EVERY
    seconds per `desc` unless it is the first or the last step; a no-op without `desc` or the variable."""
    path = os.environ.get(ENV)
    if not path or not desc:
        return
    now = time.monotonic()
    if desc in _last and done < total and now - _last[desc] < EVERY:
        return
    _last[desc] = now
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{desc} {done}/{total}" + (f" ({detail})" if detail else "") + "\n")
