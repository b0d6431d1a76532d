"""TRACKER: a run's numbers also go to trackio, wandb or mlflow (fakes here: none is a test dependency)."""
import json
import sys
import types

import pytest

from seal_kit import runs
from seal_kit.tracking import scalars


def fake_library(kind, calls):
    """A stand-in with the calls seal_kit makes of each library, recording them."""
    def record(name):
        return lambda *args, **kwargs: calls.append((name, args, kwargs))
    module = types.ModuleType(kind)
    if kind == "wandb":
        handle = types.SimpleNamespace(log=record("log"), finish=record("finish"))
        module.init = lambda **kwargs: calls.append(("init", (), kwargs)) or handle
    else:
        for name in ("init", "log", "finish", "set_experiment", "start_run", "log_params", "log_metrics", "end_run"):
            setattr(module, name, record(name))
    return module


@pytest.mark.parametrize("kind", ["trackio", "wandb", "mlflow"])
def test_a_run_sends_its_rounds_and_final_metrics_to_the_tracker(kind, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, kind, fake_library(kind, calls))
    run = runs.start_run("rest_em", tmp_path / "run", config={"K": 2, "inner": {"lr": 1e-3}}, tracker=kind)
    run.track({"round": 0, "held_out_accuracy": 0.25, "note": "text", "nested": {"gain": 0.1}}, step=0)
    run.finish({"accuracy": {"base": 0.1, "passage": 0.4}, "n": 8, "ok": True})
    names = [c[0] for c in calls]
    logged = [c for c in calls if c[0] in ("log", "log_metrics")]
    assert [c[1][0] for c in logged] == [{"round": 0.0, "held_out_accuracy": 0.25, "nested.gain": 0.1},
                                         {"accuracy.base": 0.1, "accuracy.passage": 0.4, "n": 8.0}]
    assert logged[0][2] == {"step": 0}
    assert names[-1] == ("end_run" if kind == "mlflow" else "finish")
    params = calls[names.index("log_params")][1][0] if kind == "mlflow" else calls[0][2]["config"]
    assert params["inner.lr"] == "0.001" and params["K"] == "2"
    assert "tracker" not in (tmp_path / "run" / "config.yaml").read_text()  # not part of what the run is
    calls.clear()
    shown = runs.start_run("rest_em", tmp_path / "run", config={"K": 2, "inner": {"lr": 1e-3}}, tracker=kind)
    assert shown.finished_before and shown.tracker is None and calls == []  # a finished run shown: nothing sent


def test_a_tracker_that_is_unknown_or_not_installed_is_named(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="TRACKER='tensorboard': choose None or one of trackio, wandb, mlflow"):
        runs.start_run("x", tmp_path / "a", tracker="tensorboard")
    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails
    with pytest.raises(ImportError, match="TRACKER='wandb' needs the wandb library: pip install wandb"):
        runs.start_run("x", tmp_path / "b", tracker="wandb")
    runs.start_run("x", tmp_path / "b")  # the lock was released: the run can be opened again


def test_scalars_keep_finite_numbers_only():
    assert scalars({"a": 1, "b": float("nan"), "c": True, "d": [1], "e": {"f": 2.5}}) == {"a": 1.0, "e.f": 2.5}


@pytest.mark.slow
def test_notebook_03_feeds_the_tracker_from_its_round_callback(tmp_path, monkeypatch):
    """The kernel imports a recording `wandb` from PYTHONPATH: every round and the final metrics reach it."""
    from test_notebooks import run_notebook

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "wandb.py").write_text(
        "import json, os\n"
        "def _write(*record):\n"
        "    with open(os.environ['FAKE_WANDB_LOG'], 'a') as f: f.write(json.dumps(record) + '\\n')\n"
        "class _Run:\n"
        "    def log(self, values, step=None): _write('log', values, step)\n"
        "    def finish(self): _write('finish')\n"
        "def init(project, name, config): _write('init', project, name); return _Run()\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "lib"))
    monkeypatch.setenv("FAKE_WANDB_LOG", str(tmp_path / "wandb.jsonl"))
    (tmp_path / "run").mkdir()
    metrics = run_notebook("03_rest_em.ipynb", tmp_path / "run", MODEL="tiny", ROUNDS=1, TRACKER="wandb")
    records = [json.loads(line) for line in (tmp_path / "wandb.jsonl").read_text().splitlines()]
    assert records[0] == ["init", "seal-kit", "run"] and records[-1] == ["finish"]
    rounds = [r for r in records if r[0] == "log" and r[2] is not None]
    assert [r[2] for r in rounds] == [0, 1] and all("mean_reward" in r[1] for r in rounds)
    final = [r for r in records if r[0] == "log" and r[2] is None]
    assert len(final) == 1 and final[0][1]["n_train"] == metrics["n_train"] == 2
