import json
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from seal_kit.knowledge.passages import QA, Passage
from seal_kit.paths import notebooks, outputs_root, project_root
from seal_kit.storage import AppendLog
from seal_kit.report import headline
from seal_kit.runs import RunBusy, run_lock, start_run


@dataclass
class Cfg:
    lr: float = 1e-3
    modules: tuple = ("q_proj", "v_proj")


def test_new_run_gets_a_timestamped_directory_and_config(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAL_KIT_OUTPUTS", str(tmp_path))
    run = start_run("demo", config={"K": 2, "inner": Cfg()})
    assert run.path.parent == tmp_path / "runs" and run.path.name.endswith("-demo")
    config = yaml.safe_load((run.path / "config.yaml").read_text())
    assert config == {"name": "demo", "K": 2, "inner": {"lr": 1e-3, "modules": ["q_proj", "v_proj"]}}


def test_outputs_root_is_the_projects_outputs_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("SEAL_KIT_OUTPUTS", raising=False)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert outputs_root() == tmp_path / "outputs" and project_root() == tmp_path
    monkeypatch.chdir(tmp_path.parent)  # outside any project: ./outputs
    assert project_root() is None and outputs_root() == tmp_path.parent / "outputs"


def test_the_notebooks_are_listed_once_in_course_order():
    names = [p.stem for p in notebooks()]
    assert names[:2] == ["00_papers_evidence", "01_quickstart"] and names == sorted(names) and "06_forgetting" in names


def test_finished_run_is_never_silently_overwritten(tmp_path):
    run = start_run("x", tmp_path / "r", {"K": 2})
    run.finish({"accuracy": 0.5})
    with pytest.raises(ValueError, match=r"holds a finished run started with another config\. Changed: K: 2 -> 3"):
        start_run("x", tmp_path / "r", {"K": 3})
    assert json.loads((tmp_path / "r" / "metrics.json").read_text()) == {"accuracy": 0.5}
    again = start_run("x", tmp_path / "r", {"K": 3}, overwrite=True)
    assert not again.finished and not again.finished_before


def test_a_finished_run_reopens_with_its_config_and_reads_its_records_back(tmp_path):
    run = start_run("x", tmp_path / "r", {"K": 2})
    assert not run.finished_before and "finished before" not in str(run)
    run.log("scores", key="sample").once({"sample": 0}, lambda: {"reward": 0.5})
    run.finish({"accuracy": 0.5})
    again = start_run("x", tmp_path / "r", {"K": 2})  # Run All on a finished run: shown, not refused
    assert again.finished_before and "finished before" in str(again)
    assert again.log("scores", key="sample").once({"sample": 0}, lambda: pytest.fail("recomputed")) == {
        "sample": 0, "reward": 0.5}
    with pytest.warns(UserWarning, match=r"differ from those saved: accuracy: 0\.5 -> 0\.6"):
        again.finish({"accuracy": 0.6})


def test_a_finished_run_without_its_config_is_refused(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.json").write_text("{}")
    with pytest.raises(FileExistsError, match="finished run .* without the config.yaml"):
        start_run("x", tmp_path / "r")


def test_unfinished_run_can_be_reopened(tmp_path):
    start_run("x", tmp_path / "r").write_json("partial.json", {"done": 1})
    run = start_run("x", tmp_path / "r")
    assert json.loads((run.path / "partial.json").read_text()) == {"done": 1}


def test_tables_are_written_atomically_in_two_formats(tmp_path):
    run = start_run("x", tmp_path / "r")
    table = pd.DataFrame({"passage_id": ["a", "b"], "reward": [0.2, 0.8]})
    run.write_table("candidates", table)
    run.write_table("candidates", table.assign(reward=[0.3, 0.9]))
    assert pd.read_parquet(run.path / "candidates.parquet").reward.tolist() == [0.3, 0.9]
    assert pd.read_json(run.path / "candidates.jsonl", lines=True).passage_id.tolist() == ["a", "b"]
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAL_KIT_OUTPUTS", str(tmp_path))
    monkeypatch.setattr("time.strftime", lambda fmt: "20260101-000000")
    first, second = start_run("same"), start_run("same")
    assert first.path != second.path and second.path.name == "20260101-000000-same-2"


def test_written_files_follow_the_umask(tmp_path):
    import os

    run = start_run("x", tmp_path / "r")
    mode = (run.path / "config.yaml").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_resuming_with_a_changed_config_is_refused_naming_the_keys(tmp_path):
    start_run("x", tmp_path / "r", {"K": 2, "inner": Cfg(), "SEED": 0})
    start_run("x", tmp_path / "r", {"K": 2, "inner": Cfg(), "SEED": 0})  # same config: resumes
    with pytest.raises(ValueError, match=r"K: 2 -> 5; inner.lr: 0.001 -> 0.01") as error:
        start_run("x", tmp_path / "r", {"K": 5, "inner": Cfg(lr=1e-2), "SEED": 0})
    assert "SEED" not in str(error.value)
    run = start_run("x", tmp_path / "r", {"K": 5}, overwrite=True)  # afresh: old records go
    assert yaml.safe_load((run.path / "config.yaml").read_text()) == {"name": "x", "K": 5}


def test_append_log_survives_reopening_and_drops_a_torn_last_line(tmp_path):
    run = start_run("x", tmp_path / "r")
    log = run.log("candidates")
    log.append({"round": 0, "reward": 0.5})
    log.append({"round": 0, "reward": 1.0})
    with open(log.path, "ab") as f:
        f.write(b'{"round": 0, "rew')  # a crash in the middle of a write
    with pytest.warns(UserWarning, match="partial last record"):
        again = run.log("candidates")
    assert again.records == [{"round": 0, "reward": 0.5}, {"round": 0, "reward": 1.0}]
    again.append({"round": 1, "reward": 0.0})
    assert [r["round"] for r in run.log("candidates").records] == [0, 0, 1]


def test_a_bad_line_in_the_middle_is_moved_aside_and_every_record_after_it_kept(tmp_path):
    log = AppendLog(tmp_path / "candidates.jsonl", key="n")
    for n in range(3):
        log.append({"n": n})
    lines = log.path.read_bytes().splitlines(keepends=True)
    # a corrupted line, a blank line and a JSON value that is not a record, between good records
    log.path.write_bytes(lines[0] + b'{"n": 1, "rew\x00\x00\n' + b"\n" + b"[1, 2]\n" + lines[1] + lines[2])
    with pytest.warns(UserWarning, match=r"line\(s\) 2, 3, 4 were not JSON records"):
        again = AppendLog(log.path, key="n")
    assert [r["n"] for r in again.records] == [0, 1, 2]
    assert [r["n"] for r in map(json.loads, log.path.read_text().splitlines())] == [0, 1, 2]  # the log is clean
    aside = [json.loads(line) for line in (tmp_path / "candidates.jsonl.corrupt").read_text().splitlines()]
    assert [a["line"] for a in aside] == [2, 3, 4] and aside[2]["text"] == "[1, 2]\n"
    again.append({"n": 3})
    assert [r["n"] for r in AppendLog(log.path).records] == [0, 1, 2, 3]


def test_another_process_moving_a_line_aside_leaves_an_open_log_reading_right(tmp_path):
    first = AppendLog(tmp_path / "log.jsonl", key="n")
    first.append({"n": 0})
    with open(first.path, "ab") as f:
        f.write(b"not json\n")
    with pytest.warns(UserWarning, match="moved to log.jsonl.corrupt"):
        AppendLog(first.path, key="n").append({"n": 1})  # another opener cleans the file and appends
    first.append({"n": 2})
    assert [r["n"] for r in first.records] == [0, 1, 2]
    assert [r["n"] for r in AppendLog(first.path).records] == [0, 1, 2]


def test_a_failed_write_leaves_no_partial_line_and_the_next_append_is_whole(tmp_path, monkeypatch):
    """Disk full mid-append: the half-written bytes are cut back, the error reaches the caller, and
    appending again after space is freed (same object, same kernel) loses nothing."""
    import errno

    import seal_kit.runs as runs

    log = AppendLog(tmp_path / "candidates.jsonl", key="n")
    log.append({"n": 0})
    real_write = runs.os.write

    def full_disk(fd, data):
        real_write(fd, data[:len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs.os, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        log.append({"n": 1, "text": "x" * 100})
    monkeypatch.setattr(runs.os, "write", real_write)
    assert log.path.read_text() == '{"n": 0}\n'
    log.append({"n": 1})
    log.append({"n": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing torn, nothing moved aside
        assert [r["n"] for r in AppendLog(log.path).records] == [0, 1, 2]


def test_a_keyed_log_computes_each_key_once_across_reopenings(tmp_path):
    run = start_run("x", tmp_path / "r")
    calls = []

    def square(todo):
        calls.append([k["n"] for k in todo])
        return ({**k, "square": k["n"] ** 2} for k in reversed(todo))  # in any order, as an executor finishes

    log = run.log("squares", key="n")
    assert [r["square"] for r in log.many([{"n": 1}, {"n": 2}], square)] == [1, 4]
    again = run.log("squares", key="n")  # reopened: read back, only the new key computed
    assert [r["square"] for r in again.many([{"n": 2}, {"n": 3}, {"n": 1}], square)] == [4, 9, 1]
    assert calls == [[1, 2], [3]]
    assert [r["n"] for r in again.records] == [2, 1, 3]  # one record per key, in finishing order
    assert again.once({"n": 3}, lambda: pytest.fail("computed twice"))["square"] == 9
    assert again.once({"n": 4}, lambda: {"square": 16, "n": "ignored: the key wins"}) == {"n": 4, "square": 16}


def test_a_keyed_log_keeps_the_first_record_of_a_key_another_writer_logged(tmp_path):
    first, second = AppendLog(tmp_path / "log.jsonl", key=("a", "b")), AppendLog(tmp_path / "log.jsonl", key=("a", "b"))
    first.append({"a": 1, "b": [2], "v": "first"})
    assert second.append({"a": 1, "b": (2,), "v": "second"})["v"] == "first"  # it reads what the other appended
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1
    assert not (tmp_path / "log.jsonl.lock").exists() and (tmp_path / ".log.jsonl.lock").exists()


def test_a_keyed_log_names_what_is_wrong(tmp_path):
    log = AppendLog(tmp_path / "log.jsonl", key="task")
    with pytest.raises(KeyError, match="a record without 'task'; its key is task"):
        log.append({"name": "x"})
    with pytest.raises(ValueError, match=r"no record for 1 key\(s\), e.g. \{'task': 'b'\}"):
        log.many([{"task": "a"}, {"task": "b"}], lambda todo: [{"task": "a", "reward": 1.0}])
    assert log.get({"task": "a"})["reward"] == 1.0  # what did arrive is kept
    with pytest.raises(TypeError, match="without a key"):
        AppendLog(tmp_path / "plain.jsonl").get({"task": "a"})


def test_a_run_directory_that_is_a_file_is_refused_by_name(tmp_path):
    (tmp_path / "taken").write_text("not a run")
    with pytest.raises(NotADirectoryError, match=r"run directory .*taken is a file"):
        start_run("x", tmp_path / "taken", {"K": 1})
    with pytest.raises(PermissionError, match="cannot be created"):
        start_run("x", tmp_path / "taken" / "inside", {"K": 1})


def test_a_resume_onto_edited_data_is_refused_naming_the_passage(tmp_path):
    """The same DATA path with other text between a crash and the resume would mix two datasets."""
    from seal_kit.runs import fingerprint

    passages = [Passage("p0", "Velmora", "Velmora Island lies in the Sorrel Sea.", (QA("Where?", "Sorrel Sea"),)),
                Passage("p1", "Orlan", "The Orlan bridge opened in 1907.", (QA("When?", "1907"),))]
    start_run("x", tmp_path / "r", {"DATA": "mine.json", "data": fingerprint(passages)})
    start_run("x", tmp_path / "r", {"DATA": "mine.json", "data": fingerprint(list(passages))})  # same: resumes
    edited = [passages[0], Passage("p1", "Orlan", "The Orlan bridge opened in 1911.", (QA("When?", "1911"),))]
    with pytest.raises(ValueError, match=r"Changed: data\.p1: '[0-9a-f]{12}' -> '[0-9a-f]{12}'\.") as error:
        start_run("x", tmp_path / "r", {"DATA": "mine.json", "data": fingerprint(edited)})
    assert "p0" not in str(error.value)


def test_a_run_open_in_another_process_is_refused_until_that_process_ends(tmp_path, open_elsewhere):
    """Two kernels resuming one run would interleave two loops' records: the second is refused, naming the
    directory, and may open it once the first has ended (even killed: the OS drops its lock)."""
    run_dir = tmp_path / "run"
    with open_elsewhere(run_dir, "demo", {"K": 2}):
        with pytest.raises(RunBusy, match="another process is working in .*run"):
            start_run("demo", run_dir, config={"K": 2})
        assert yaml.safe_load((run_dir / "config.yaml").read_text()) == {"name": "demo", "K": 2}
    run = start_run("demo", run_dir, config={"K": 2})
    assert start_run("demo", run_dir, config={"K": 2}).path == run.path  # this process again: re-entrant
    run.finish({"accuracy": 1.0})
    shown = subprocess.run([sys.executable, "-c", "import sys\nfrom seal_kit.runs import start_run\n"
                            "print(start_run('demo', sys.argv[1], config={'K': 2}).finished_before)", str(run_dir)],
                           capture_output=True, text=True)
    assert shown.stdout.strip() == "True", shown.stderr  # a finished run's lock is let go: others may look


def test_a_damaged_config_is_named(tmp_path):
    (tmp_path / "config.yaml").write_text("K: [2\n")
    with pytest.raises(ValueError, match="config.yaml cannot be read"):
        start_run("demo", tmp_path, config={"K": 2})
    (tmp_path / "config.yaml").write_text("- 2\n")
    with pytest.raises(ValueError, match="holds a list, not the mapping"):
        start_run("demo", tmp_path, config={"K": 2})
    (tmp_path / "config.yaml").write_text("name: demo\nK: 2\n")
    assert start_run("demo", tmp_path, config={"K": 2}).path == tmp_path  # the failures released the lock


def test_provenance_records_each_session_and_the_model(tmp_path, tiny):
    """Versions, git state and the model a run used, one entry per session that opened it."""
    run = start_run("demo", tmp_path / "r", config={"K": 2})
    run.note_model(tiny[0])
    run_lock(run.path).release(force=True)  # as when the first kernel has ended
    again = start_run("demo", tmp_path / "r", config={"K": 2})  # a resume: a second session
    sessions = json.loads((again.path / "provenance.json").read_text())["sessions"]
    assert len(sessions) == 2 and "model" in sessions[0] and "model" not in sessions[1]
    first = sessions[0]
    assert first["versions"]["torch"] and first["versions"]["transformers"] and first["versions"]["peft"]
    checkout = Path(__file__).resolve().parents[1]  # the package's checkout: its commit, as git itself says
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True) \
        if shutil.which("git") and (checkout / ".git").exists() else None
    if head is not None and head.returncode == 0:
        assert first["git"]["commit"] == head.stdout.strip() and isinstance(first["git"]["dirty"], bool)
    else:  # no git, or no checkout (an installed wheel): nothing to record
        assert first["git"] is None
    assert first["torch_threads"] >= 1 and isinstance(first["cuda"], list)
    assert first["model"]["device"] == "cpu" and first["model"]["dtype"] == "float32"
    assert first["model"]["parameters"] == sum(p.numel() for p in tiny[0].parameters())
    assert "provenance" not in yaml.safe_load((again.path / "config.yaml").read_text())  # not part of the config


def test_a_local_model_folder_is_identified_by_its_weights(tmp_path):
    from seal_kit.provenance import weights_hash

    (tmp_path / "model.safetensors").write_bytes(b"weights")
    first = weights_hash(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert len(first) == 16 and weights_hash(tmp_path) != first
    (tmp_path / "empty").mkdir()
    assert weights_hash(tmp_path / "empty") is None


def test_the_headline_is_the_runs_main_numbers_with_their_intervals_in_one_line():
    """metrics.json's shapes differ by notebook: numbers with intervals first (`x_ci`, `x_low`/`x_high`,
    a record's `ci_low`/`ci_high` or `low`/`high`), then numbers named like results, then the top-level sizes;
    records in lists by their labels; views (`_by_`), interval bounds and non-numbers left out."""
    metrics = {
        "n_passages": 200, "accuracy": "what accuracy means (text)", "interval": {"level": 0.95, "seed": 0},
        "prompt_rl": {"rewrite": {"before": 0.4937, "after": 0.5555, "gain": 0.06185, "gain_ci": [0.01524, 0.108]}},
        "held_out_accuracy": [{"round": 1, "n_passages": 2, "accuracy": 0.60527, "low": 0.4209, "high": 0.7897,
                               "gain_over_round_0": -0.000286, "gain_low": -0.184, "gain_high": 0.1834}],
        "success_intervals": [{"method": "seal", "success": 0.25, "low": 0.0, "high": 0.5, "n_tasks": 4}],
        "success_by_task_set": {"all": {"seal": 0.25}},
        "variants": {"merge": {"retention": [0.5158, 0.0605, 0.1229], "matrix": [[0.1, None]]}},
        "rounds": [{"round": 0, "mean_reward": 0.6021, "updated": True, "eval_accuracy": float("nan")}],
        "flag": True, "mean_reward": None}
    assert headline(metrics, width=400) == (  # shares in %, gains in signed points
        "prompt_rl.rewrite.gain +6.2 pts [+1.5, +10.8]; held_out_accuracy[round 1].accuracy 60.5% [42.1, 79.0]; "
        "held_out_accuracy[round 1].gain_over_round_0 -0.0 pts [-18.4, +18.3]; "
        "success_intervals[seal].success 25.0% [0.0, 50.0]; variants.merge.retention [51.6, 6.0, 12.3]%; "
        "rounds[round 0].mean_reward 60.2%; n_passages 200")
    short = headline(metrics, width=60)
    assert short == "prompt_rl.rewrite.gain +6.2 pts [+1.5, +10.8]; +6 more in metrics.json"
    assert headline({"name": "x"}) == "no numbers in metrics.json"
    assert headline({"points": 2, "big": 123456.7}) == "points 2; big 123457"
