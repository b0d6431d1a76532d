"""The package's own metadata: one list of requirements, bounds where we use a library's internals."""
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {s.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip(): s for s in specs}


def test_environment_yml_installs_the_package_itself_not_a_second_list():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]
    assert pip == ["-e .[dev]"]


def test_libraries_whose_internals_we_use_are_bounded_above():
    found = requirements()
    for name in ("transformers", "peft", "lm-format-enforcer"):
        assert "<" in found[name], f"{name} needs an upper bound: {found[name]}"


@pytest.mark.slow
def test_the_wheel_works_on_its_own_outside_the_repository(tmp_path):
    """Build the wheel, install it into a fresh virtual environment outside the checkout (its dependencies
    lent from this environment by a path, not installed again), copy the notebooks out with `seal-kit
    notebooks`, and run the quickstart there with `seal-kit run`: no file of the checkout is used."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("seal_kit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("seal_kit/notebooks/01_quickstart.ipynb", "seal_kit/notebooks/README.md",
                    "seal_kit/sweeps/prompt_ablation.yaml", "seal_kit/profiles/workshop.yaml",
                    "seal_kit/data/notebook_times.csv", "seal_kit/data/results/index.yaml"):
        assert shipped in names

    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    lent = [p for p in sys.path if p.endswith("site-packages")]  # torch, transformers, ... (a plain path: the
    Path(site, "lent.pth").write_text("\n".join(lent) + "\n")    # checkout's editable finder is not run)
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    seal_kit = str(venv / "bin" / "seal-kit")

    def run(*args):
        done = subprocess.run([seal_kit, *args], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    where = subprocess.run([str(python), "-c", "import seal_kit; print(seal_kit.__file__)"], cwd=work, env=env,
                           check=True, capture_output=True, text=True).stdout
    assert where.startswith(site) and str(ROOT) not in where
    assert "prompt_ablation" in subprocess.run([seal_kit, "sweep", "--grid", "nothing-like-it"], cwd=work, env=env,
                                               capture_output=True, text=True).stderr
    run("notebooks", "nb")
    assert sorted(p.name for p in (work / "nb").iterdir())[:3] == ["00_papers_evidence.ipynb", "01_quickstart.ipynb",
                                                                   "02_knowledge_incorporation.ipynb"]
    assert len(run("results").splitlines()) >= 5  # the results pack came with the wheel
    run("results", "open", "01-workshop", "shipped")
    assert json.loads((work / "shipped" / "metrics.json").read_text())
    run("notebooks", "students", "--student")
    assert "solution" not in (work / "students" / "01_quickstart.ipynb").read_text()
    said = run("run", "nb/01_quickstart.ipynb", "-p", "SMOKE", "true", "-p", "MODEL", "tiny", "--run-dir", "runs/quick")
    assert "finished" in said
    assert json.loads((work / "runs" / "quick" / "metrics.json").read_text())
    assert not list(work.glob("nb/outputs")) and not (ROOT / "runs").exists()


def test_the_readme_opens_with_its_pictures_small_and_present():
    readme = (ROOT / "README.md").read_text()
    front = readme.split("## Quickstart")[0]
    pictures = [line.split("](")[1].rstrip(")") for line in front.splitlines() if line.startswith("![")]
    assert pictures == ["docs/img/review-widget.png", "docs/img/reward-curve.png", "docs/img/quickstart-workshop.png"]
    for picture in pictures:
        data = (ROOT / picture).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 100_000, picture
    assert "@article{zweiger2025seal" in front and "arxiv.org/abs/2506.10943" in front
    assert "../shared" not in readme  # no path that only exists beside our checkout


def test_the_environment_has_no_broken_requirements():
    """The embedded model's wheel is a file in the cache, not an installed package whose llama.cpp
    requirements `pip check` would miss."""
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
