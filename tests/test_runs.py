import json
from dataclasses import dataclass

import pandas as pd
import pytest
import yaml

from seal_kit.runs import METRICS, outputs_root, start_run


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
    assert outputs_root() == tmp_path / "outputs"


def test_finished_run_is_never_silently_overwritten(tmp_path):
    run = start_run("x", tmp_path / "r")
    run.finish({"accuracy": 0.5})
    with pytest.raises(FileExistsError, match="already holds a finished run"):
        start_run("x", tmp_path / "r")
    assert json.loads((tmp_path / "r" / METRICS).read_text()) == {"accuracy": 0.5}
    again = start_run("x", tmp_path / "r", overwrite=True)
    assert not again.finished


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
