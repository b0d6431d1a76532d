"""Batch runs: one notebook run, grids, failures recorded without stopping the sweep, skip on re-run, the CLI."""
import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from filelock import FileLock
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from seal_kit import cli, results
from seal_kit.headless import execute, find_notebook, resolve_paths
from seal_kit.sweep import grid_runs, list_runs, load_grid, run_name, sweep


@pytest.fixture
def notebook(tmp_path):
    """A two-second notebook: writes metrics.json from X, or raises in its third cell when X < 0."""
    params = new_code_cell("X = 1  # the input\nTAG = None  # a label\nRUN_DIR = None  # where metrics go")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[
        params,
        new_code_cell("import json, pathlib"),
        new_code_cell("if X < 0:\n    raise ValueError(f'X must be >= 0, got {X}')"),
        new_code_cell("pathlib.Path(RUN_DIR, 'metrics.json').write_text(json.dumps("
                      "{'square': X * X, 'nested': {'half': X / 2}, 'list': [X]}))"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = tmp_path / "square.ipynb"
    nbformat.write(nb, path)
    return path


def test_grid_is_the_product_with_fixed_parameters():
    assert grid_runs({"A": [1, 2], "B": ["x"]}, {"C": 0}) == [{"C": 0, "A": 1, "B": "x"}, {"C": 0, "A": 2, "B": "x"}]
    with pytest.raises(ValueError, match="'A' must be a non-empty list"):
        grid_runs({"A": 3})


def test_grid_file(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("notebook: 02\nparameters: {K: 3}\ngrid: {PROMPT: [implications, rewrite]}\nruns: [{PROMPT: self-qa, K: 1}]\n")
    notebook, sets = load_grid(path)
    assert notebook == "02" and find_notebook(notebook).name == "02_knowledge_incorporation.ipynb"
    assert sets == [{"K": 3, "PROMPT": "implications"}, {"K": 3, "PROMPT": "rewrite"}, {"K": 1, "PROMPT": "self-qa"}]
    path.write_text("grids: {K: [1]}\n")
    with pytest.raises(ValueError, match="unknown key.*'grids'"):
        load_grid(path)


def test_find_notebook_by_name_prefix_or_path(notebook):
    assert find_notebook("03").name == "03_rest_em.ipynb" == find_notebook("03_rest_em").name
    assert find_notebook(notebook) == notebook
    with pytest.raises(FileNotFoundError, match="03_rest_em"):
        find_notebook("99_nothing")


def test_run_names_are_stable_and_distinct():
    a, b = run_name({"K": 1, "P": "x y"}, ["K"]), run_name({"K": 2, "P": "x y"}, ["K"])
    assert a.startswith("K=1-") and b.startswith("K=2-") and a != b
    assert a == run_name({"P": "x y", "K": 1}, ["K"])


def test_sweep_records_a_failure_and_goes_on_then_skips_finished_runs(notebook, tmp_path):
    out = tmp_path / "sweep"
    table = sweep(notebook, [{"X": 3}, {"X": -1}], out, jobs=2, progress=False)
    ok, bad = table.iloc[0], table.iloc[1]
    assert (ok.status, ok["metrics.square"], ok["metrics.nested.half"]) == ("finished", 9, 1.5)
    assert bad.status == "failed" and bad.failed_cell == 3 and "X must be >= 0, got -1" in bad.error
    assert "metrics.list" not in table  # only scalar metrics are columns
    saved = pd.read_csv(out / "summary.csv")
    assert list(saved.status) == ["finished", "failed"] and (out / "summary.parquet").exists()
    assert (out / "summary.html").exists()
    assert json.loads((p := next(out.glob("X=-1-*")) / "failed.json").read_text())["failed_cell"] == 3, p
    again = sweep(notebook, [{"X": 3}, {"X": -1}], out, jobs=1, progress=False)
    assert list(again.status) == ["skipped", "failed"]  # finished run not redone, failed one retried
    assert again.iloc[0]["metrics.square"] == 9 and again.iloc[0].seconds == ok.seconds > 0


def test_list_runs_reports_status(notebook, tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "config.yaml").write_text("name: quickstart\n")
    finished = execute(notebook, tmp_path / "runs" / "b", {"X": 2})
    (tmp_path / "runs" / "b" / "config.yaml").write_text("name: square\n")
    failed = execute(notebook, tmp_path / "runs" / "c", {"X": -2})
    (tmp_path / "runs" / "c" / "config.yaml").write_text("name: square\n")
    assert (finished.status, failed.status) == ("finished", "failed")
    table = list_runs(tmp_path / "runs")
    assert list(table.status) == ["unfinished", "finished", "failed"]
    assert "got -2" in table.iloc[2].error


def test_cli_sweep_run_and_runs(notebook, tmp_path, capsys):
    out = tmp_path / "cli-sweep"
    assert cli.main(["sweep", str(notebook), "-p", "X", "1", "2", "--out", str(out), "--jobs", "2"]) == 0
    assert sorted(pd.read_csv(out / "summary.csv")["metrics.square"]) == [1, 4]
    assert cli.main(["sweep", str(notebook), "-p", "X", "-5", "--out", str(tmp_path / "s2")]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert cli.main(["run", str(notebook), "-p", "X", "4", "--run-dir", str(tmp_path / "one")]) == 0
    assert json.loads((tmp_path / "one" / "metrics.json").read_text())["square"] == 16
    said = capsys.readouterr().out
    assert "finished in " in said and str(tmp_path / "one") in said
    assert said.splitlines()[-1] == "  square 16"  # the headline: metrics.json's numbers, not a file list
    assert cli.main(["run", str(notebook), "-p", "X", "4", "--run-dir", str(tmp_path / "one")]) == 0
    assert "finished before (nothing run again)" in capsys.readouterr().out
    assert cli.main(["run", "99_nothing"]) == 2
    assert "no notebook" in capsys.readouterr().err
    assert cli.main(["run", str(notebook), "--profile", "nope"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err


def test_cli_p_narrows_a_grid_file_and_each_point_runs_once(notebook, tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"notebook: {notebook}\ngrid: {{X: [1, 2], TAG: [a]}}\n")
    out = tmp_path / "narrowed"
    assert cli.main(["sweep", "--grid", str(grid), "-p", "X", "2", "--out", str(out)]) == 0  # e.g. one seed of a map
    summary = pd.read_csv(out / "summary.csv")
    assert summary["metrics.square"].tolist() == [4] and summary.status.tolist() == ["finished"]


def test_cli_values_and_profile_merge():
    assert cli._value("1e-3") == 0.001 and cli._value("3") == 3 and cli._value("true") is True
    assert cli._value("[a, b]") == ["a", "b"] and cli._value("rewrite") == "rewrite"
    merged = cli._with_profile({"K": 3}, "cpu-tiny", "03")  # explicit, even at the notebook's default, wins
    assert merged["K"] == 3 and merged["N_TRAIN"] == 3 and "PROFILE" not in merged
    smoke = cli._with_profile({"SMOKE": True, "K": 0}, "cpu-tiny", "03")  # smoke over the profile, under -p
    assert (smoke["K"], smoke["N_TRAIN"], smoke["ROUNDS"], smoke["EPOCHS"]) == (0, 2, 1, 1)
    with pytest.raises(ValueError, match=r"-p EPOCHS 10 is the notebook's default, which SMOKE replaces by 1"):
        cli._with_profile({"SMOKE": True, "EPOCHS": 10}, None, "03")


def test_finished_run_dir_with_other_parameters_is_refused(notebook, tmp_path):
    assert execute(notebook, tmp_path / "r", {"X": 2}).status == "finished"
    again = execute(notebook, tmp_path / "r", {"X": 5})
    assert again.status == "failed" and "changed: X" in again.error
    assert execute(notebook, tmp_path / "r", {"X": 2}).status == "skipped"
    # Leaving out a parameter at its default, or giving its default, is the same run (X's default is 1).
    assert execute(notebook, tmp_path / "d", {"X": 1, "TAG": "a"}).status == "finished"
    assert execute(notebook, tmp_path / "d", {"TAG": "a"}).status == "skipped"
    assert "changed: TAG" in execute(notebook, tmp_path / "d", {"X": 1}).error


def test_summary_parquet_takes_mixed_columns(notebook, tmp_path):
    table = sweep(notebook, [{"X": 1, "TAG": "a"}, {"X": 2, "TAG": ["b", "c"]}], tmp_path / "mixed", progress=False)
    assert list(table.status) == ["finished", "finished"]
    assert list(pd.read_parquet(tmp_path / "mixed" / "summary.parquet").TAG) == ["a", '["b", "c"]']


def test_a_misspelled_parameter_is_refused_before_anything_runs(notebook, tmp_path, capsys):
    """A typo in a grid would run every point with the default and report success; a name that is code
    would reach papermill as code. Both are refused, naming the nearest known parameter."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"notebook: {notebook}\ngrid:\n  XX: [1, 2]\n")
    assert cli.main(["sweep", "--grid", str(grid), "--out", str(tmp_path / "s")]) == 2
    said = capsys.readouterr().err
    assert "square has no parameter 'XX'; did you mean 'X'?" in said and "TAG" in said
    assert not (tmp_path / "s").exists()  # nothing ran
    injected = "X=1;open('pwned','w').write('x');Y"
    assert cli.main(["run", str(notebook), "-p", injected, "1", "--run-dir", str(tmp_path / "r")]) == 2
    assert "has no parameter" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not list(tmp_path.rglob("pwned"))
    with pytest.raises(ValueError, match="no parameter 'x'; did you mean 'X'"):
        execute(notebook, tmp_path / "r", {"x": 1})


def test_a_run_directory_that_cannot_be_one_fails_that_point_alone(notebook, tmp_path):
    out = tmp_path / "sweep"
    sets = [{"X": 1}, {"X": 2}, {"X": 3}]
    out.mkdir()
    (out / run_name(sets[1], ["X"])).write_text("a file where the run directory goes")
    table = sweep(notebook, sets, out, progress=False)
    assert list(table.status) == ["finished", "failed", "finished"]
    assert "is a file" in table.error[1]
    assert list(pd.read_csv(out / "summary.csv").status) == ["finished", "failed", "finished"]
    (tmp_path / "a-file").write_text("")
    blocked = execute(notebook, tmp_path / "a-file" / "run", {"X": 1})
    assert blocked.status == "failed" and "cannot be created" in blocked.error


def _refuses_writes(folder) -> bool:
    try:
        (folder / ".probe").write_bytes(b"")
    except OSError:
        return True
    (folder / ".probe").unlink()
    return False


def test_a_read_only_run_directory_is_a_named_failure(notebook, tmp_path):
    """Root passes every permission check (os.access says yes), so a directory root cannot write into is
    needed to see the probe write at work: /sys on Linux; as another user, a folder without write permission."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if not _refuses_writes(folder):  # root: the mode does not stop it
            folder = Path("/sys")
        if not folder.is_dir() or not _refuses_writes(folder):
            pytest.skip("no directory here refuses this user's writes")
        before = sorted(p.name for p in folder.iterdir())
        result = execute(notebook, folder, {"X": 1})
        assert sorted(p.name for p in folder.iterdir()) == before
    finally:
        (tmp_path / "ro").chmod(0o700)
    assert result.status == "failed" and f"run directory {folder} is not writable" in result.error


def test_a_run_another_process_is_working_in_is_refused_and_left_untouched(notebook, tmp_path, open_elsewhere):
    """A JupyterLab kernel (or another `seal-kit run`) has the run open: running it headless now would overwrite
    its executed notebook and interleave records, so the run is refused and nothing in it is written."""
    run_dir = tmp_path / "run"
    with open_elsewhere(run_dir, "square", {"X": 1}):
        files = lambda: sorted(p.name for p in run_dir.iterdir() if not p.name.endswith(".lock"))  # noqa: E731
        before = files()
        busy = execute(notebook, run_dir, {"X": 1})
        assert busy.status == "failed" and f"another process is working in {run_dir}" in busy.error
        assert files() == before  # no failed.json, no executed notebook
    with FileLock(str(run_dir / ".execute.lock")):  # a `seal-kit run` of this directory in progress
        assert "another process is working" in execute(notebook, run_dir, {"X": 1}).error
    assert execute(notebook, run_dir, {"X": 1}).status == "finished"


def test_relative_data_paths_are_read_from_the_shells_directory_like_the_run_dir(notebook, tmp_path, monkeypatch):
    """The notebook runs in its own folder: DATA=data/in.json must still mean the file beside the user."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.json").write_text("[]")
    result = execute(notebook, "runs/r", {"TAG": "data/in.json"})
    assert result.status == "finished" and result.run_dir == str(tmp_path / "runs" / "r")
    assert result.parameters["TAG"] == str(tmp_path / "data" / "in.json")
    injected = nbformat.read(tmp_path / "runs" / "r" / notebook.name, as_version=4).cells[1].source
    assert f"TAG = \"{tmp_path / 'data' / 'in.json'}\"" in injected
    assert resolve_paths({"DATA": "seal-eval", "X": 1, "M": "data/absent.json", "N": "~/in.json"}) == \
        {"DATA": "seal-eval", "X": 1, "M": "data/absent.json", "N": "~/in.json"}  # no such file: left as given
    assert resolve_paths({"DATA": "data/in.json?context=text", "H": "org/set:test?context=c"}) == \
        {"DATA": f"{tmp_path / 'data' / 'in.json'}?context=text", "H": "org/set:test?context=c"}  # columns kept


@pytest.mark.slow
def test_a_sweep_killed_mid_run_resumes_where_it_stopped(tmp_path):
    """SIGKILL of `seal-kit sweep` while a point runs: the finished point is kept, the killed one and the rest
    run on the next `seal-kit sweep` with the same --out, and the summary then holds every point."""
    params = new_code_cell("X = 1\nRUN_DIR = None")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell(
        "import json, pathlib, time\npathlib.Path(RUN_DIR, 'started').touch()\ntime.sleep(3 * X)\n"
        "pathlib.Path(RUN_DIR, 'metrics.json').write_text(json.dumps({'x': X}))")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, tmp_path / "slow.ipynb")
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "seal_kit.cli", "sweep", str(tmp_path / "slow.ipynb"), "-p", "X", "0", "5", "1",
               "--out", str(out)]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    point = lambda x: next(iter(out.glob(f"X={x}-*")), out / "none")  # noqa: E731
    while not (point(5) / "started").exists():  # the second point is running
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    first.kill()
    first.wait()
    assert (point(0) / "metrics.json").exists() and not (point(5) / "metrics.json").exists()
    assert not (out / "summary.csv").exists()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    table = pd.read_csv(out / "summary.csv")
    assert list(table.status) == ["skipped", "finished", "finished"] and list(table["metrics.x"]) == [0, 5, 1]


def test_cli_version_is_the_installed_packages(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"seal-kit {version('seal-kit')}"


def test_run_takes_parameters_from_a_yaml_file_under_explicit_values(notebook, tmp_path, capsys):
    (tmp_path / "params.yaml").write_text("X: 3\nTAG: from-file\n")
    assert cli.main(["run", str(notebook), "-f", str(tmp_path / "params.yaml"), "-p", "TAG", "explicit",
                     "--run-dir", str(tmp_path / "r")]) == 0
    record = json.loads((tmp_path / "r" / "execution.json").read_text())
    assert record["parameters"] == {"X": 3, "TAG": "explicit"}
    (tmp_path / "bad.yaml").write_text("- X\n")
    assert cli.main(["run", str(notebook), "-f", str(tmp_path / "bad.yaml")]) == 2
    assert "bad.yaml: expected a mapping of parameter names" in capsys.readouterr().err


def test_jobs_run_side_by_side_get_their_share_of_the_cores_or_a_gpu_each(tmp_path, monkeypatch):
    import torch

    from seal_kit import sweep as sweeping

    params = new_code_cell("X = 1\nDEVICE = None\nTHREADS = None\nRUN_DIR = None")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell(
        "import json, pathlib\npathlib.Path(RUN_DIR, 'metrics.json').write_text(json.dumps({'device': DEVICE, 'threads': THREADS}))")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    placed = tmp_path / "placed.ipynb"
    nbformat.write(nb, placed)
    monkeypatch.setattr(sweeping.os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    table = sweep(placed, [{"X": 1}, {"X": 2}, {"X": 3, "THREADS": 1}], tmp_path / "cpu", jobs=2, progress=False)
    assert list(table["metrics.threads"]) == [2, 2, 1]  # 4 cores, 2 at a time; a THREADS given wins
    assert table["metrics.device"].isna().all()
    again = sweep(placed, [{"X": 1}, {"X": 2}, {"X": 3, "THREADS": 1}], tmp_path / "cpu", jobs=1, progress=False)
    assert list(again.status) == ["skipped"] * 3  # where a run ran is not what it is
    assert sweeping.placements(1, placed) == [{}]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    table = sweep(placed, [{"X": 1}, {"X": 2}], tmp_path / "gpu", jobs=2, progress=False)
    assert sorted(table["metrics.device"]) == ["cuda:0", "cuda:1"] and table["metrics.threads"].isna().all()
    assert sweeping.placements(3, placed) == [{"DEVICE": "cuda:0"}, {"DEVICE": "cuda:1"}, {"DEVICE": "cuda:0"}]


def test_a_run_ends_with_its_headline_numbers_in_one_line(notebook, tmp_path, capsys):
    """A finished run shown again (nothing runs: its metrics.json is read) ends with one line of its main
    numbers, their intervals beside them, whatever shape the notebook gave metrics.json."""
    run_dir = tmp_path / "done"
    run_dir.mkdir()
    (run_dir / "execution.json").write_text(json.dumps({"seconds": 3.0, "parameters": {"X": 2}}))
    (run_dir / "metrics.json").write_text(json.dumps({
        "n_passages": 3, "prompt": "implications",
        "accuracy": {"base": 0.0678, "passage": 0.8373},
        "conditions": {"passage": {"accuracy": 0.83734, "ci_low": 0.5912, "ci_high": 0.9606, "answer_words": 33.7}},
        "rounds": [{"round": 0, "mean_reward": 0.60209, "n_kept": 2}, {"round": 1, "mean_reward": None}],
        "accuracy_by_question": {"base": 0.07}, "seconds_per_candidate": 27.18}))
    assert cli.main(["run", str(notebook), "--run-dir", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"finished before (nothing run again): {run_dir}")
    assert lines[-1] == ("  conditions.passage.accuracy 83.7% [59.1, 96.1]; accuracy.base 6.8%; "
                         "accuracy.passage 83.7%; rounds[round 0].mean_reward 60.2%; n_passages 3; "
                         "seconds_per_candidate 27.2")


def test_progress_is_the_notebooks_sections_and_the_kernels_tcp_warning_is_gone(tmp_path, capfd):
    """One line per headed section as its first cell starts, not papermill's cell counter, and under it the
    run's own work (candidates, rounds: `seal_kit.progress`); ipykernel's
    "running over TCP without encryption" (on the terminal's stderr, the kernel's own) is filtered out,
    the kernel's other stderr lines passed on."""
    params = new_code_cell("RUN_DIR = None")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[
        new_markdown_cell("# 99 · A headed notebook\nintroduction"), params,
        new_code_cell("import json, os, pathlib"),
        new_markdown_cell("## 1. Work\nwhat it does"), new_code_cell("os.write(2, b'kernel stderr line\\n')"),
        new_code_cell("from seal_kit import progress\nfor i in range(1, 4):\n    progress.note('candidates', i, 3)"),
        new_markdown_cell("## 2. Save the run"),
        new_code_cell("pathlib.Path(RUN_DIR, 'metrics.json').write_text(json.dumps({'accuracy': 0.5}))"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, tmp_path / "headed.ipynb")
    assert execute(tmp_path / "headed.ipynb", tmp_path / "r", progress=True).status == "finished"
    err = capfd.readouterr().err
    stamped = [line.split("] ", 1)[1] for line in err.splitlines() if line.startswith("  [")]
    assert [line for line in stamped if not line.startswith(" ")] == ["99 · A headed notebook", "1. Work", "2. Save the run"]
    # the run's own work (seal_kit.progress, as the kit's loops report it): the first step and the last, throttled
    assert [line.strip() for line in stamped if line.startswith(" ")] == ["candidates 1/3", "candidates 3/3"]
    assert "kernel stderr line" in err and "without encryption" not in err and "cell/s" not in err
    assert not (tmp_path / "r" / ".progress").exists()


def test_a_misspelled_parameter_leaves_no_run_folder_behind(notebook, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEAL_KIT_OUTPUTS", str(tmp_path / "outputs"))
    assert cli.main(["run", str(notebook), "-p", "XX", "1"]) == 2
    said = capsys.readouterr().err
    assert said.startswith("refused: square has no parameter 'XX'; did you mean 'X'?")
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*square*"))


def test_a_finished_run_asked_with_other_parameters_is_refused_naming_its_profile(notebook, tmp_path, monkeypatch,
                                                                                    capsys):
    monkeypatch.setenv("SEAL_KIT_OUTPUTS", str(tmp_path / "outputs"))
    shipped = results.open_run("03-workshop", tmp_path / "shipped")  # a finished run of 03, made with `--profile workshop`
    files = lambda folder: sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))  # noqa: E731
    before = files(shipped)
    assert cli.main(["run", "03", "--run-dir", str(shipped), "-p", "K", "3"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"refused: {shipped} holds a run finished with profile workshop;") and "K 2 -> 3" in err
    assert "failed" not in out + err and "cell None" not in out + err
    assert files(shipped) == before and not (tmp_path / "outputs").exists()  # nothing written, nothing made

    # A run made by `seal-kit run --profile` records the profile; asked otherwise, the refusal names it.
    assert execute(notebook, tmp_path / "mine", {"X": 2}, profile="my-profile").status == "finished"
    assert json.loads((tmp_path / "mine" / "execution.json").read_text())["profile"] == "my-profile"
    assert cli.main(["run", str(notebook), "--run-dir", str(tmp_path / "mine"), "-p", "X", "3"]) == 2
    assert "holds a run finished with profile my-profile; these parameters differ (changed: X 2 -> 3)" in \
        capsys.readouterr().err
