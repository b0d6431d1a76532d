"""Where the kit's files are: its notebooks and sweep files (in the installed wheel, or beside the package in
a checkout), the project a working directory belongs to, and the `outputs/` folder runs are written under.

    from seal_kit.paths import NOTEBOOKS, notebooks, outputs_root, new_run_path
    new_run_path("01_quickstart")     # outputs/runs/<timestamp>-01_quickstart, claimed atomically
"""
from __future__ import annotations

import os
import time
from pathlib import Path

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
