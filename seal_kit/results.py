"""The results pack: real runs made with the kit on the embedded model, shipped compact with the package.

    seal-kit results                               # the shipped runs, one per line, name first
    seal-kit results open 03-workshop my-run       # a finished run directory, written from the pack
    seal-kit run 03 --run-dir my-run               # shows it with its own parameters, in seconds (nothing retrained)

    from seal_kit import results
    results.listing()                              # a table: name, notebook, what it shows, command, seconds, machine
    results.open_run("03-workshop", "my-run")      # the same as `seal-kit results open`

Each shipped run is one `<name>.tar.xz` in `seal_kit/data/results/` holding the run directory as the kit wrote
it (logs, tables, metrics, figures, the executed notebook, `provenance.json` and `execution.json`) without
adapters, model weights or plotly.js (written again on opening). `index.yaml` beside them names each run's
notebook, what it shows and the command that made it; how long it took and on which machine come from the
run's own files. `pack` (used by `python -m seal_kit.results pack RUN_DIR NAME ...`) makes one.

Opening writes a finished run directory: running its notebook there with no parameters (`seal-kit run`, or
Run All in JupyterLab with only `RUN_DIR` set) shows the run with the parameters it was made with
(`runs.recorded_parameters`): every record is read back, so the review widget, curves and tables appear
in seconds. The executed notebook inside is the run as it ran, its outputs included.
"""
from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pandas as pd
import yaml

from .runs import METRICS, TIMING
from .storage import atomic_write

PACK = Path(__file__).resolve().parent / "data" / "results"
INDEX = PACK / "index.yaml"
LEFT_OUT = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".lock")  # weights and locks stay behind
PLOTLY = "plotly.min.js"  # 4.8 MB per run: written again from the installed plotly on opening


def index() -> dict:
    return yaml.safe_load(INDEX.read_text()) if INDEX.exists() else {}


def names() -> list[str]:
    return list(index())


def _check(name: str) -> Path:
    if name not in index():
        shipped = ", ".join(names()) or "none"
        raise ValueError(f"unknown results name {name!r}; the shipped runs are: {shipped} (`seal-kit results` lists them)")
    return PACK / f"{name}.tar.xz"


def _read(archive: Path, member: str) -> bytes | None:
    """One file of a packed run; `*/name` the first of that name in any folder (a map's runs)."""
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        if member.startswith("*/"):
            member = next((n for n in names if n == member[2:] or n.endswith(member[1:])), None)
        return tar.extractfile(member).read() if member in names else None


def listing() -> pd.DataFrame:
    """One row per shipped run: name first, then its notebook, what it shows, the command that made it,
    the seconds it took and the machine (from the run's execution.json and provenance.json)."""
    rows = []
    for name, entry in index().items():
        archive = _check(name)
        timing = json.loads(_read(archive, TIMING) or b"{}")
        sessions = json.loads(_read(archive, "*/provenance.json") or b"{}").get("sessions") or [{}]
        first = sessions[0]  # the session that started the run (a map: its first run's)
        cpu = ", ".join(filter(None, [first.get("cpu"), f"{first['cpu_count']} cores" if first.get("cpu_count") else ""]))
        rows.append({"name": name, "notebook": entry["notebook"], "shows": entry["shows"],
                     "command": entry["command"], "seconds": round(timing.get("seconds", float("nan"))),
                     "machine": cpu or "not recorded", "size_kb": round(archive.stat().st_size / 1024)})
    return pd.DataFrame(rows, columns=["name", "notebook", "shows", "command", "seconds", "machine", "size_kb"])


def open_run(name: str, folder: str | Path) -> Path:
    """Write the shipped run `name` into `folder` as a finished run directory and return it. A folder that
    is not empty is refused unless it already holds this run (then it is left as it is)."""
    archive, folder = _check(name), Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; give a folder for the run (created if missing)")
    if folder.exists() and any(folder.iterdir()):
        if (folder / TIMING).exists() and (folder / TIMING).read_bytes() == _read(archive, TIMING):
            return folder  # the same run, opened before: nothing to write
        raise FileExistsError(f"{folder} is not empty and holds another run (or other files); choose an empty or "
                              f"new folder for {name!r}")
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    from plotly.offline import get_plotlyjs

    for page in folder.rglob("*.html"):  # the figures load plotly.js from their own folder, offline
        if not (page.parent / PLOTLY).exists() and PLOTLY in page.read_text(errors="ignore"):
            atomic_write(page.parent / PLOTLY, get_plotlyjs())
    for notebook in folder.rglob("*.ipynb"):  # its RUN_DIR points here now, so Run All shows this copy
        _point_at(notebook, notebook.parent)
    return folder


def _point_at(notebook: Path, run_dir: Path) -> None:
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            lines = "".join(cell["source"]).splitlines(keepends=True)
            cell["source"] = [f"RUN_DIR = {str(run_dir.resolve())!r}\n" if line.startswith("RUN_DIR = ") else line
                              for line in lines]
    nb.get("metadata", {}).get("papermill", {}).get("parameters", {}).pop("RUN_DIR", None)
    atomic_write(notebook, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _kept(path: Path) -> bool:
    return path.suffix not in LEFT_OUT and path.name != PLOTLY and not path.name.startswith(".")


def pack(run_dir: str | Path, name: str, notebook: str, shows: str, command: str) -> Path:
    """Pack a finished run directory as the shipped run `name` and record it in the index."""
    run_dir = Path(run_dir)
    if not (run_dir / METRICS).exists() and not any(run_dir.glob(f"*/{METRICS}")):
        raise ValueError(f"{run_dir} holds no finished run ({METRICS}); pack a finished run")
    PACK.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for path in sorted(run_dir.rglob("*")):
            relative = path.relative_to(run_dir)
            if path.is_file() and all(_kept(Path(part)) for part in relative.parts):
                tar.add(path, arcname=str(relative), filter=_plain_member)
    atomic_write(PACK / f"{name}.tar.xz", buffer.getvalue())
    entries = index()
    entries[name] = {"notebook": notebook, "shows": shows, "command": command}
    atomic_write(INDEX, "# The shipped runs (seal_kit.results): name -> notebook, what it shows, the command that made it.\n"
                 + yaml.safe_dump(dict(sorted(entries.items())), sort_keys=False, width=120, allow_unicode=True))
    return PACK / f"{name}.tar.xz"


def _plain_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


if __name__ == "__main__":  # python -m seal_kit.results pack RUN_DIR NAME NOTEBOOK SHOWS COMMAND
    if len(sys.argv) != 7 or sys.argv[1] != "pack":
        sys.exit("usage: python -m seal_kit.results pack RUN_DIR NAME NOTEBOOK SHOWS COMMAND")
    print(pack(*sys.argv[2:]))
