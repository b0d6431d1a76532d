"""The workshop: students' copies, solutions, time budgets, the classroom launcher, the shipped results."""
import json
import os
import tarfile
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from seal_kit import profiles, results, workshop
from seal_kit.cli import main
from seal_kit.paths import NOTEBOOKS, notebooks

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "seal_reference"


def tagged(nb: dict, tag: str) -> list[dict]:
    return [c for c in nb["cells"] if tag in c.get("metadata", {}).get("tags", [])]


def test_every_exercise_has_one_solution_that_changes_its_parameters():
    with_check = [p for p in notebooks() if tagged(json.loads(p.read_text()), workshop.CHECK_TAG)]
    assert len(with_check) == 7
    for path in with_check:
        nb = json.loads(path.read_text())
        assert len(tagged(nb, workshop.SOLUTION_TAG)) == 1, path.name
        values, defaults = workshop.solution(path.stem), profiles.notebook_defaults(path.stem)
        assert values and set(values) <= set(defaults), path.name
        assert any(defaults[k] != v for k, v in values.items()), f"{path.name}: the solution changes nothing"


def test_student_copies_leave_out_the_solutions_and_keep_everything_else(tmp_path, capsys):
    assert main(["notebooks", str(tmp_path / "students"), "--student"]) == 0
    assert main(["notebooks", str(tmp_path / "teacher")]) == 0
    for path in notebooks():
        source = json.loads(path.read_text())
        copy = json.loads((tmp_path / "students" / path.name).read_text())
        assert tagged(copy, workshop.SOLUTION_TAG) == []
        assert len(tagged(copy, workshop.CHECK_TAG)) == len(tagged(source, workshop.CHECK_TAG))
        assert copy["cells"] == [c for c in source["cells"] if c not in tagged(source, workshop.SOLUTION_TAG)]
        assert json.loads((tmp_path / "teacher" / path.name).read_text()) == source
        nbformat.validate(nbformat.reads(json.dumps(copy), as_version=4))
    # An edited student copy is never overwritten without --force.
    edited = tmp_path / "students" / "01_quickstart.ipynb"
    edited.write_text(edited.read_text().replace("implications", "self-qa", 1))
    assert main(["notebooks", str(tmp_path / "students"), "--student"]) == 2
    assert "already exist; --force overwrites them" in capsys.readouterr().err
    assert "self-qa" in edited.read_text()


def test_the_time_budgets_are_generated_from_the_times_table():
    for path in notebooks():
        cells = tagged(json.loads(path.read_text()), workshop.BUDGET_TAG)
        assert len(cells) == 1, path.name
        assert "".join(cells[0]["source"]) == workshop.budget(path.stem), \
            f"{path.name}: run `python -m seal_kit.workshop budgets` (the budget is generated, not edited)"
    guide = workshop.DOCS.read_text()
    assert f"{workshop.AGENDA_BEGIN}\n{workshop.agenda()}\n{workshop.AGENDA_END}" in guide
    measured = workshop.times()
    under = measured[(measured.profile == workshop.PROFILE) & (measured.status == "finished")]
    assert sorted(under.notebook) == [p.stem for p in notebooks()]  # every notebook measured under the profile
    assert (under.seconds <= 8 * 60).all(), under[["notebook", "seconds"]]  # the class-period target, as measured


def test_the_lab_launcher_turns_the_first_run_prompts_off(tmp_path):
    command, env = workshop.lab_command(tmp_path, port=None)
    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen([*command, "--no-browser", "--allow-root", f"--ServerApp.port={port}",
                               "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.ip=127.0.0.1"],
                              env={**env, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/lab/api/settings/@jupyterlab/apputils-extension:notification"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    settings = json.loads(answer.read())
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "JupyterLab did not start"
                time.sleep(0.5)
        assert settings["settings"]["fetchNews"] == "false" and settings["settings"]["checkForUpdates"] is False
    finally:
        server.terminate()
        server.wait(30)


def test_the_results_pack_lists_its_runs_and_refuses_bad_input(tmp_path, capsys):
    table = results.listing()
    assert len(table) >= 5 and table.name.is_unique
    assert (table["size_kb"].sum() < 8 * 1024), "the pack is meant to be a few MB"
    assert main(["results"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(table.name)  # one per line, name first
    for name in table.name:
        with tarfile.open(results.PACK / f"{name}.tar.xz") as tar:
            names = tar.getnames()
        assert "provenance.json" in names or any(n.endswith("/provenance.json") for n in names), name
        assert not [n for n in names if n.endswith(results.LEFT_OUT) or n.endswith(results.PLOTLY)], name
    assert main(["results", "open", "no-such-run", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown results name 'no-such-run'" in err and table.name.iloc[0] in err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        results.open_run(table.name.iloc[0], tmp_path / "busy")
    first = results.open_run(table.name.iloc[0], tmp_path / "run")
    assert results.open_run(table.name.iloc[0], first) == first  # the same run again: left as it is
    with pytest.raises(FileExistsError, match="holds another run"):
        results.open_run(table.name.iloc[1], first)


@pytest.mark.slow
@pytest.mark.parametrize("name", results.names())
def test_a_shipped_run_opens_and_its_notebook_shows_it_with_its_own_parameters(tmp_path, name):
    """Written out with `seal-kit results open`, the run is finished; its notebook given only RUN_DIR reads
    every record back (no log grows, the metrics stay) with the parameters it was made with."""
    run_dir = results.open_run(name, tmp_path / name)
    notebook = results.index()[name]["notebook"]
    if "seal-" in (run_dir / "execution.json").read_text() and not REFERENCE.is_dir():
        pytest.skip(f"{name} reads the paper's passages: SEAL reference data not found at {REFERENCE}")
    logs = {p: p.read_bytes() for p in run_dir.rglob("*.jsonl")}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = run_dir / ("config.yaml" if (run_dir / "config.yaml").exists() else "execution.json")  # 07: a sweep folder
    recorded = yaml.safe_load(config.read_text())
    papermill.execute_notebook(str(NOTEBOOKS / f"{notebook}.ipynb"), str(tmp_path / "shown.ipynb"), cwd=str(NOTEBOOKS),
                               progress_bar=False, parameters={"RUN_DIR": str(run_dir)})
    assert {p: p.read_bytes() for p in run_dir.rglob("*.jsonl")} == logs
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    assert yaml.safe_load(config.read_text()) == recorded
    shown = "".join(o.get("text", "") for c in nbformat.read(tmp_path / "shown.ipynb", as_version=4).cells
                    if c.cell_type == "code" for o in c.outputs if o.output_type == "stream")
    assert "holds a finished run: shown with its own parameters" in shown
    # Headless, `seal-kit run` with no parameters takes the run's own too, and runs nothing again.
    assert main(["run", notebook, "--run-dir", str(run_dir)]) == 0
    assert {p: p.read_bytes() for p in run_dir.rglob("*.jsonl")} == logs


def _printed_by(saved, tag: str) -> str:
    cells = [c for c in nbformat.read(saved, as_version=4).cells if tag in c.metadata.get("tags", [])]
    assert len(cells) == 1, (saved.name, tag)
    return "".join(o.get("text", "") for o in cells[0].outputs if o.output_type == "stream")


@pytest.mark.slow
@pytest.mark.parametrize("stem", [p.stem for p in notebooks() if workshop.solution(p.stem)
                                  and p.stem != "02_knowledge_incorporation"])  # 02's: tests/test_notebooks.py
def test_the_instructors_copy_passes_its_check_once_solved(tmp_path, stem):
    """The instructor's notebook run headless with its solution's values (smoke sizes): the check prints ✓
    and the solution cell says the run is the solved one. The students' copies run to the unsolved check in
    tests/test_notebooks.py."""
    saved = tmp_path / f"{stem}.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / saved.name), str(saved), cwd=str(NOTEBOOKS), progress_bar=False,
                               parameters={"SMOKE": True, "RUN_DIR": str(tmp_path / "run"), **workshop.solution(stem)})
    check = _printed_by(saved, workshop.CHECK_TAG)
    assert check.startswith("✓"), check
    assert _printed_by(saved, workshop.SOLUTION_TAG).startswith("✓ this run is the solved one")
