import dataclasses
import json

import pandas as pd
import pytest

from seal_kit import plots
from seal_kit.knowledge.data import load_passages
from seal_kit.generator import Generator, GeneratorConfig
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge.task import EvalConfig, KnowledgeTask
from seal_kit.models import load_model
from seal_kit.rest_em import RestEM, RestEMConfig
from seal_kit.runs import start_run
from seal_kit.self_edit import SamplingConfig
from test_selection import table_of

PASSAGES = load_passages("builtin", limit=5)
TRAIN, HELD_OUT = PASSAGES[:3], PASSAGES[3:]


def length_grader(predictions, answers, questions=None):
    """Depends on what the adapted model answers, so rewards vary between candidates (a random tiny
    model never says the gold answer)."""
    return [float(len(p) % 3 == 0) for p in predictions]


def config(**changes) -> RestEMConfig:
    base = RestEMConfig(rounds=2, seeds=1, eval_k=1,
                        sampling=SamplingConfig(k=2, max_new_tokens=12, batch_size=4),
                        generator=GeneratorConfig(rank=4, alpha=8, lr=5e-3, epochs=1))
    return dataclasses.replace(base, **changes)


def make_loop(run_dir, cfg, **kwargs) -> RestEM:
    model, tokenizer = load_model("tiny", seed=0)  # fresh weights: a merged update changes them in place
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, alpha=8, lr=1e-2, epochs=1),
                         EvalConfig(max_new_tokens=5), grader=length_grader)
    run = start_run("rest_em", run_dir, dataclasses.asdict(cfg))
    return RestEM(task, TRAIN, HELD_OUT, cfg, run, progress=False, **kwargs)


def assert_same_run(ours: RestEM, theirs: RestEM):
    """Same rounds (timings aside), same scored self-edits and rewards, same kept edits, same generator losses."""
    def rounds(loop):
        return [{k: v for k, v in s.items() if k not in ("seconds", "wall_seconds")} for s in loop.summaries]

    def kept(loop, r):
        return pd.read_parquet(loop.store.path / f"round-{r}" / "kept.parquet")[["context_id", "sample", "self_edit"]]

    assert rounds(ours) == rounds(theirs)
    columns = ["round", "split", "context_id", "sample", "self_edit", "reward", "gain"]
    pd.testing.assert_frame_equal(ours.candidates()[columns], theirs.candidates()[columns])
    for r in range(ours.config.rounds):
        pd.testing.assert_frame_equal(kept(ours, r), kept(theirs, r))
    assert ours.generator_losses == theirs.generator_losses


def test_two_rounds_on_a_tiny_model(tmp_path):
    loop = make_loop(tmp_path / "run", config())
    assert loop.run() is True
    rounds = loop.rounds
    assert rounds["round"].tolist() == [0, 1, 2]
    assert rounds["n_kept"].tolist() == [3, 3, 0]  # best_of_k: one per training passage; none after the last round
    assert rounds["updated"].tolist() == [True, True, False]
    assert rounds["n_candidates"].tolist() == [6, 6, 6]
    assert all(0.0 <= x <= 1.0 for x in rounds.eval_accuracy)
    table = loop.candidates()
    assert len(table) == 3 * (6 + 2) and set(table.split) == {"train", "eval"}
    for r in (0, 1):  # the generator changed between rounds: same prompts, same seed offsets, other edits
        assert (loop.store.path / f"round-{r}" / "generator" / "generator" / "adapter_model.safetensors").exists()
    assert (table[table["round"] == 0].self_edit.tolist() != table[table["round"] == 1].self_edit.tolist())
    metrics = loop.metrics()
    assert [set(m) >= {"round", "mean_reward", "eval_accuracy", "n_kept"} for m in metrics["rounds"]] == [True] * 3
    json.dumps(metrics, allow_nan=False)  # strict JSON: raises on NaN or numpy types
    held = pd.DataFrame(metrics["held_out_accuracy"])
    assert held["round"].tolist() == [0, 1, 2] and held.n_passages.tolist() == [2, 2, 2]
    per_passage = table[table.split == "eval"].pivot(index="context_id", columns="round", values="reward")
    assert held.accuracy.tolist() == pytest.approx(per_passage.mean().tolist())
    assert held.accuracy.tolist() == pytest.approx(rounds.eval_accuracy.tolist())
    gains = [(per_passage[r] - per_passage[0]).mean() for r in (0, 1, 2)]
    assert held.gain_over_round_0.tolist() == pytest.approx(gains) and held.gain_over_round_0[0] == 0
    assert (held.low <= held.accuracy + 1e-12).all() and (held.accuracy <= held.high + 1e-12).all()
    assert (held.gain_low <= held.gain_over_round_0 + 1e-12).all()
    assert loop.run() is True and len(loop.summaries) == 3  # nothing left to do


@pytest.mark.parametrize("update", ["stack", "merge"])
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, update):
    cfg = config(generator=dataclasses.replace(config().generator, update=update))
    whole = make_loop(tmp_path / "whole", cfg)
    whole.run()

    class Interrupt(Exception):
        pass

    seen = []

    def crash_mid_round_one(record):
        seen.append(record)
        if len(seen) == 11:  # round 0 has 8 (6 train + 2 held-out); this is the 3rd of round 1
            raise Interrupt

    with pytest.raises(Interrupt):
        make_loop(tmp_path / "cut", cfg, on_candidate=crash_mid_round_one).run()
    log = (tmp_path / "cut" / "candidates.jsonl").read_text().splitlines()
    assert len(log) == 11 and not (tmp_path / "cut" / "round-1" / "summary.json").exists()

    redone = []
    resumed = make_loop(tmp_path / "cut", cfg, on_candidate=redone.append)
    assert len(resumed.summaries) == 1  # round 0 came back from disk
    assert resumed.run() is True
    assert len(redone) == 24 - 11  # finished candidates were not scored again
    assert_same_run(resumed, whole)


@pytest.mark.parametrize("update", ["stack", "merge"])
def test_a_crash_inside_the_generator_update_resumes_to_the_same_result(tmp_path, monkeypatch, update):
    cfg = config(rounds=2, generator=dataclasses.replace(config().generator, update=update))
    whole = make_loop(tmp_path / "whole", cfg)
    whole.run()
    calls = []
    real_save = Generator.save

    def save_then_crash(self, path):  # round 1's update trained and saved, its summary not yet written
        real_save(self, path)
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Generator, "save", save_then_crash)
    cut = make_loop(tmp_path / "cut", cfg)
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    with pytest.raises(RuntimeError, match="load the model again"):
        cut.run()  # same object, weights mid-update: refused rather than silently wrong
    monkeypatch.setattr(Generator, "save", real_save)
    resumed = make_loop(tmp_path / "cut", cfg)
    assert [s["round"] for s in resumed.summaries] == [0] and resumed.run()
    assert_same_run(resumed, whole)


def test_a_model_gets_one_generator_and_runs_check_their_contexts(tmp_path):
    loop = make_loop(tmp_path / "run", config(rounds=0))
    with pytest.raises(ValueError, match="already carries a generator adapter"):
        RestEM(loop.task, TRAIN, HELD_OUT, loop.config, loop.store)

    def fresh_task():
        model, tokenizer = load_model("tiny", seed=0)
        return KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, epochs=1))

    with pytest.raises(ValueError, match=r"both training \(or warm-start\) and held-out"):
        RestEM(fresh_task(), TRAIN, [TRAIN[0]], loop.config, loop.store)
    with pytest.raises(ValueError, match="other contexts"):
        RestEM(fresh_task(), TRAIN[:2], HELD_OUT, loop.config, loop.store)
    edited = [dataclasses.replace(TRAIN[1], context=TRAIN[1].context + " Edited since.")]  # same id, other text
    with pytest.raises(ValueError, match=f"other text under the same ids \\(edited since: {TRAIN[1].id}\\)"):
        RestEM(fresh_task(), [TRAIN[0], *edited, *TRAIN[2:]], HELD_OUT, loop.config, loop.store)


def test_the_last_round_can_skip_the_training_contexts(tmp_path):
    loop = make_loop(tmp_path / "run", config(rounds=1, final_train=False))
    assert loop.run()
    last = loop.summaries[-1]
    assert last["n_candidates"] == 0 and last["mean_reward"] is None and last["eval_accuracy"] is not None
    assert set(loop.candidates(1).split) == {"eval"}
    json.dumps(loop.metrics(), allow_nan=False)


def test_a_warm_start_keeps_the_given_edits_and_needs_no_training_contexts(tmp_path):
    """Round 0 keeps the given (passage, edit) pairs instead of sampling its own: it scores the untrained
    generator on the held-out passages only, the generator is trained on the given edits, and round 1 scores
    the warm-started generator on the same held-out passages."""
    given = [(TRAIN[0], "1. A fact from the first passage."), (TRAIN[1], "1. Another fact.\n2. And one more.")]
    cfg = config(rounds=1, final_train=False)
    model, tokenizer = load_model("tiny", seed=0)
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, alpha=8, lr=1e-2, epochs=1),
                         EvalConfig(max_new_tokens=5), grader=length_grader)
    loop = RestEM(task, [], HELD_OUT, cfg, start_run("rest_em", tmp_path / "run", dataclasses.asdict(cfg)),
                  progress=False, warm_start=[given])
    assert loop.run()
    kept = pd.read_parquet(loop.store.path / "round-0" / "kept.parquet")
    assert dict(zip(kept.context_id, kept.self_edit)) == {p.id: edit for p, edit in given}
    assert dict(zip(kept.context_id, kept.prompt)) == {p.id: task.self_edit_prompt(p) for p, _ in given}  # as sampled
    assert [s["warm_start"] for s in loop.summaries[:1]] == [True] and loop.summaries[0]["updated"]
    assert loop.summaries[0]["n_candidates"] == 0  # no training edits sampled: the given ones stand in
    table = loop.candidates()
    assert set(table.split) == {"eval"} and table.groupby("round").context_id.apply(list).tolist() == \
        [[p.id for p in HELD_OUT]] * 2
    assert loop.generator_losses[0] and (loop.store.path / "round-0" / "generator" / "generator").is_dir()
    assert table[table["round"] == 0].self_edit.tolist() != table[table["round"] == 1].self_edit.tolist()

    def fresh_task():
        model, tokenizer = load_model("tiny", seed=0)
        return KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, alpha=8, lr=1e-2, epochs=1))

    with pytest.raises(ValueError, match="another warm start"):  # other kept edits are another experiment
        RestEM(fresh_task(), [], HELD_OUT, cfg, loop.store, warm_start=[given[:1]])
    with pytest.raises(ValueError, match="at least one training context"):  # round 1 would need its own edits
        RestEM(fresh_task(), [], HELD_OUT, config(rounds=2, final_train=False), loop.store, warm_start=[given])
    with pytest.raises(ValueError, match="warm-start\\) and held-out"):  # held out means never learned from
        RestEM(fresh_task(), [], [TRAIN[0]], cfg, loop.store, warm_start=[given])
    with pytest.raises(ValueError, match="kept edits for 2 rounds"):
        RestEM(fresh_task(), TRAIN, HELD_OUT, cfg, loop.store, warm_start=[given, given])


def test_resuming_with_another_config_is_refused(tmp_path):
    make_loop(tmp_path / "run", config(rounds=0)).run()
    with pytest.raises(ValueError, match=r"sampling.k: 2 -> 3"):
        make_loop(tmp_path / "run", config(rounds=0, sampling=SamplingConfig(k=3, max_new_tokens=12, batch_size=4)))


def test_human_selection_waits_for_decisions_and_uses_edited_text(tmp_path):
    from seal_kit.review import Review

    loop = make_loop(tmp_path / "run", config(rounds=1, selection="human"))
    assert loop.run() is False and loop.awaiting_review == 0
    assert not (tmp_path / "run" / "round-0" / "summary.json").exists()
    review = Review(loop.candidates(0), loop.store.path)
    review.text.value = "Pellin Harbour is the capital of Velmora Island."
    review.save_text_button.click()
    review.accept_button.click()
    review.next_button.click()
    review.reject_button.click()
    assert loop.run() is True
    kept = pd.read_parquet(tmp_path / "run" / "round-0" / "kept.parquet")
    assert kept.self_edit.tolist() == ["Pellin Harbour is the capital of Velmora Island."]
    assert loop.rounds.n_kept.tolist() == [1, 0]


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="selection must be one of"):
        RestEMConfig(selection="best")
    with pytest.raises(ValueError, match="top_fraction"):
        RestEMConfig(top_fraction=0)
    with pytest.raises(ValueError, match="update must be 'stack' or 'merge'"):
        GeneratorConfig(update="replace")
    with pytest.raises(ValueError, match="the last round would sample and score nothing"):
        RestEMConfig(final_train=False, eval_k=0)


def test_round_figures_have_the_expected_traces(tmp_path):
    rounds = pd.DataFrame({"round": [0, 1], "mean_reward": [0.2, 0.3], "best_reward": [0.4, 0.5],
                           "eval_accuracy": [0.1, 0.25], "baseline": [0.1, 0.1], "eval_baseline": [0.05, 0.05]})
    curve = plots.reward_curve(rounds)
    assert [t.name for t in curve.data] == ["mean reward (train)", "best of K (train)", "held-out accuracy",
                                            "baseline (train)", "baseline (held-out)"]
    assert list(curve.data[2].y) == [0.1, 0.25] and curve.data[2].error_y.array is None
    held = pd.DataFrame({"round": [1, 0], "accuracy": [0.25, 0.1], "low": [0.05, 0.0], "high": [0.5, 0.3]})
    bars = plots.reward_curve(rounds, held_out=held).data[2]  # matched by round, not by row order
    assert list(bars.error_y.array) == pytest.approx([0.2, 0.25])
    assert list(bars.error_y.arrayminus) == pytest.approx([0.1, 0.2]) and "interval" in bars.name
    diverse = plots.reward_curve(rounds, diversity=pd.Series({1: 0.4, 0: 0.7}))  # by round, on the right axis
    assert list(diverse.data[-1].y) == [0.7, 0.4] and diverse.data[-1].yaxis == "y2" and len(diverse.data) == 6
    candidates = table_of({"a": [0.2, 0.6], "b": [0.0, 1.0]}).assign(round=[0, 0, 1, 1], split="train")
    boxes = plots.reward_distribution(pd.concat([candidates, candidates.assign(split="eval")]))
    assert [t.name for t in boxes.data] == ["round 0", "round 1"] and list(boxes.data[1].y) == [0.0, 1.0]
    progress = plots.scoring_progress([{"round": 0, "split": "train", "reward": 0.5},
                                       {"round": 0, "split": "eval", "reward": 1.0}])
    assert sorted(t.name for t in progress.data) == ["round 0 eval", "round 0 train"]
    page = plots.save_html(curve, tmp_path / "run" / "reward_curve.html")
    assert "plotly.min.js" in page.read_text() and (tmp_path / "run" / "plotly.min.js").stat().st_size > 1e6


def test_live_figure_redraws_in_place_at_most_once_per_interval(monkeypatch):
    class Handle:
        def __init__(self):
            self.shown = []

        def update(self, figure):
            self.shown.append(figure)

    handle = Handle()
    displayed = []
    monkeypatch.setattr(plots, "display", lambda figure, display_id: displayed.append(figure) or handle)
    live = plots.LiveFigure(every=3600)
    build = lambda: plots.scoring_progress([{"round": 0, "split": "train", "reward": 0.5}])  # noqa: E731
    assert live.update(build) is True and live.update(build) is False  # throttled
    assert live.update(build, force=True) is True
    assert len(displayed) == 1 and len(handle.shown) == 1  # one output, redrawn in place
    assert plots.LiveFigure(enabled=False).update(build, force=True) is False


KILLED_JOB = """
import sys, dataclasses
sys.path.insert(0, {tests!r})
from test_rest_em import config, make_loop
make_loop({run_dir!r}, config()).run()
"""


def test_a_killed_process_resumes_to_the_same_result(tmp_path):
    """SIGKILL, as when a papermill job or a kernel dies: no exception handler runs."""
    import os
    import signal
    import subprocess
    import sys
    import time

    whole = make_loop(tmp_path / "whole", config())
    whole.run()
    log = tmp_path / "cut" / "candidates.jsonl"
    script = KILLED_JOB.format(tests=os.path.dirname(__file__), run_dir=str(tmp_path / "cut"))
    job = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 300
    while job.poll() is None and time.monotonic() < deadline:
        if log.exists() and len(log.read_bytes().splitlines()) >= 10:  # into round 1, past round 0's update
            job.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    assert job.wait(timeout=60) == -signal.SIGKILL, "the job finished before it could be killed"
    resumed = make_loop(tmp_path / "cut", config())
    assert resumed.run()
    assert_same_run(resumed, whole)


def test_empty_edits_are_not_kept_unless_asked(tmp_path):
    """Kept, an empty edit teaches the generator to write nothing (it scores as passage-only training)."""
    loop = make_loop(tmp_path / "run", config(rounds=0))
    table = table_of({"a": [0.9, 0.5], "b": [1.0]}).assign(status=["empty_edit", "ok", "empty_edit"])
    assert loop._select(0, table).self_edit.tolist() == ["a-1"]  # b has no usable edit: nothing kept for it
    loop.config = config(rounds=0, keep_empty_edits=True)
    assert loop._select(0, table).self_edit.tolist() == ["a-0", "b-0"]
