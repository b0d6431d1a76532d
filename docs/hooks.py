"""mkdocs hooks: the notebooks as pages of the site, never executed by the build.

    make docs                          # .venv/bin/mkdocs build --strict, into site/

Each notebook becomes `notebooks/<name>/`. Where the kit ships a finished run for it (`NN-workshop` in
`seal_kit/data/results/`, `seal-kit results`), the page is that run's executed notebook, outputs included;
else the notebook as committed in `notebooks/`. Executed copies are read out of the packed runs into a
temporary folder for the build only, so no notebook is stored twice in the repository. mkdocs-jupyter
(`execute: false` in mkdocs.yml) renders them. `notebooks/README.md`, the course overview shipped with
the wheel, becomes `notebooks/index.md`, its links to `../docs/` pointed at the site's own pages.
"""
from __future__ import annotations

import re
import tarfile
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

from seal_kit import results

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
COURSE = "notebooks/index.md"
_extracted = tempfile.TemporaryDirectory(prefix="seal-kit-docs-")  # removed when the build's process ends


def executed_copy(notebook: Path, folder: Path) -> Path | None:
    """The executed `notebook` of its shipped `NN-workshop` run, written into `folder`; None without one."""
    name = f"{notebook.name[:2]}-workshop"
    if results.index().get(name, {}).get("notebook") != notebook.stem:
        return None
    with tarfile.open(results.PACK / f"{name}.tar.xz") as tar:
        if notebook.name not in tar.getnames():
            return None
        copy = folder / notebook.name
        copy.write_bytes(tar.extractfile(notebook.name).read())
    return copy


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns .ipynb files into pages
def on_files(files, config):
    extracted = Path(_extracted.name)
    (extracted / "notebooks").mkdir(exist_ok=True)
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        # a File read from src_dir/notebooks/<name>: mkdocs-jupyter reads its abs_src_path, which a generated
        # File (content in memory) does not have
        src_dir = extracted if executed_copy(notebook, extracted / "notebooks") else ROOT
        files.append(File(f"notebooks/{notebook.name}", str(src_dir), config["site_dir"], config["use_directory_urls"]))
    course = (NOTEBOOKS / "README.md").read_text()  # written for the repository: ../docs/x.md is ../x.md here
    files.append(File.generated(config, COURSE, content=re.sub(r"\]\(\.\./docs/", "](../", course)))
    return files
