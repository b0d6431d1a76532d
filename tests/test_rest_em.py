import dataclasses
import json

import pandas as pd
import pytest
import torch

from seal_kit import plots
from seal_kit.data import load_passages
from seal_kit.inner_loop import InnerLoopConfig, collate, encode_examples
from seal_kit.knowledge import EvalConfig, KnowledgeTask
from seal_kit.models import load_model
from seal_kit.rest_em import (SELECTIONS, Generator, GeneratorConfig, RestEM, RestEMConfig, best_of_k, improves,
                              top_fraction)
from seal_kit.runs import start_run
from seal_kit.self_edit import SamplingConfig

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


def comparable(loop):
    rounds = [{k: v for k, v in s.items() if k != "seconds"} for s in loop.summaries]
    table = loop.candidates()[["round", "split", "context_id", "sample", "self_edit", "reward", "gain"]]
    kept = [pd.read_parquet(loop.run_dir.path / f"round-{r}" / "kept.parquet")[["context_id", "sample", "self_edit"]]
            for r in range(loop.config.rounds)]
    return rounds, table, kept, loop.generator_losses


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
        assert (loop.run_dir.path / f"round-{r}" / "generator" / "generator" / "adapter_model.safetensors").exists()
    assert (table[table["round"] == 0].self_edit.tolist() != table[table["round"] == 1].self_edit.tolist())
    metrics = loop.metrics()
    assert [set(m) >= {"round", "mean_reward", "eval_accuracy", "n_kept"} for m in metrics["rounds"]] == [True] * 3
    assert json.loads(json.dumps(metrics))  # plain JSON
    assert loop.run() is True and len(loop.summaries) == 3  # nothing left to do


def test_generator_update_teaches_the_kept_edits_and_is_off_during_the_inner_loop(tmp_path):
    model, tokenizer = load_model("tiny", seed=0)
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, alpha=8, epochs=1))
    generator = Generator(task.inner, GeneratorConfig(rank=4, alpha=8, lr=1e-2, epochs=5))
    pair = (task.self_edit_prompt(TRAIN[0]), "Velmora Island has a capital called Pellin Harbour.")
    batch = collate(encode_examples(tokenizer, [pair], 1024), tokenizer.pad_token_id)

    def loss():
        with torch.no_grad(), generator.active():
            return model(**batch).loss.item()

    before = loss()
    with torch.no_grad():
        inner_before = model(**batch).loss.item()  # the inner loop's adapter is the active one
    generator.update([pair], seed=0, progress=False)
    assert loss() < before - 1.0
    with torch.no_grad():
        assert model(**batch).loss.item() == pytest.approx(inner_before)  # the student is untouched (stack)


def test_merge_moves_the_update_into_the_base_weights(tmp_path):
    model, tokenizer = load_model("tiny", seed=0)
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, alpha=8, epochs=1))
    generator = Generator(task.inner, GeneratorConfig(rank=4, alpha=8, lr=1e-2, epochs=3, update="merge"))
    pair = (task.self_edit_prompt(TRAIN[0]), "A statement about Velmora Island.")
    batch = collate(encode_examples(tokenizer, [pair], 1024), tokenizer.pad_token_id)
    generator.update([pair], seed=0, progress=False)
    with torch.no_grad(), generator.active():
        adapted = model(**batch).logits
    generator.merge()
    with torch.no_grad(), task.inner.base_model():  # adapters off: the merged base alone
        merged = model(**batch).logits
    assert torch.allclose(adapted, merged, atol=1e-4)


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
    for ours, theirs in zip(comparable(resumed), comparable(whole)):
        if isinstance(ours, pd.DataFrame):
            pd.testing.assert_frame_equal(ours, theirs)
        elif isinstance(ours, list) and ours and isinstance(ours[0], pd.DataFrame):
            for a, b in zip(ours, theirs):
                pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
        else:
            assert ours == theirs


def test_resuming_with_another_config_is_refused(tmp_path):
    make_loop(tmp_path / "run", config(rounds=0)).run()
    with pytest.raises(ValueError, match=r"sampling.k: 2 -> 3"):
        make_loop(tmp_path / "run", config(rounds=0, sampling=SamplingConfig(k=3, max_new_tokens=12, batch_size=4)))


def test_human_selection_waits_for_decisions_and_uses_edited_text(tmp_path):
    from seal_kit.review import Review

    loop = make_loop(tmp_path / "run", config(rounds=1, selection="human"))
    assert loop.run() is False and loop.awaiting_review == 0
    assert not (tmp_path / "run" / "round-0" / "summary.json").exists()
    review = Review(loop.candidates(0), loop.run_dir.path)
    review.text.value = "Pellin Harbour is the capital of Velmora Island."
    review.save_text_button.click()
    review.accept_button.click()
    review.next_button.click()
    review.reject_button.click()
    assert loop.run() is True
    kept = pd.read_parquet(tmp_path / "run" / "round-0" / "kept.parquet")
    assert kept.self_edit.tolist() == ["Pellin Harbour is the capital of Velmora Island."]
    assert loop.rounds.n_kept.tolist() == [1, 0]


def table_of(rewards, baselines=None):
    rows = [{"context_id": c, "sample": s, "reward": r, "baseline": (baselines or {}).get(c, 0.2),
             "self_edit": f"{c}-{s}", "prompt": f"prompt {c}"}
            for c, rs in rewards.items() for s, r in enumerate(rs)]
    return pd.DataFrame(rows)


def test_selection_policies_on_hand_made_rewards():
    table = table_of({"a": [0.2, 0.6, 0.6], "b": [0.0, 0.0, 0.0], "c": [0.4, 1.0, 0.8]}, {"b": 0.0, "c": 0.4})
    cfg = RestEMConfig(top_fraction=0.34)
    assert best_of_k(table, cfg).self_edit.tolist() == ["a-1", "b-0", "c-1"]  # ties: first sample; b kept at 0
    assert sorted(improves(table, cfg).self_edit) == ["a-1", "a-2", "c-1", "c-2"]  # reward > its passage's baseline
    assert top_fraction(table, cfg).self_edit.tolist() == ["c-1", "c-2", "a-1"]  # 34% of 9 -> 3
    assert set(SELECTIONS) == {"best_of_k", "improves", "top_fraction"}


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="selection must be one of"):
        RestEMConfig(selection="best")
    with pytest.raises(ValueError, match="top_fraction"):
        RestEMConfig(top_fraction=0)
    with pytest.raises(ValueError, match="update must be 'stack' or 'merge'"):
        GeneratorConfig(update="replace")


def test_round_figures_have_the_expected_traces(tmp_path):
    rounds = pd.DataFrame({"round": [0, 1], "mean_reward": [0.2, 0.3], "best_reward": [0.4, 0.5],
                           "eval_accuracy": [0.1, 0.25], "baseline": [0.1, 0.1], "eval_baseline": [0.05, 0.05]})
    curve = plots.reward_curve(rounds)
    assert [t.name for t in curve.data] == ["mean reward (train)", "best of K (train)", "held-out accuracy",
                                            "baseline (train)", "baseline (held-out)"]
    assert list(curve.data[2].y) == [0.1, 0.25]
    candidates = table_of({"a": [0.2, 0.6], "b": [0.0, 1.0]}).assign(round=[0, 0, 1, 1], split="train")
    boxes = plots.reward_distribution(pd.concat([candidates, candidates.assign(split="eval")]))
    assert [t.name for t in boxes.data] == ["round 0", "round 1"] and list(boxes.data[1].y) == [0.0, 1.0]
    progress = plots.scoring_progress([{"round": 0, "split": "train", "reward": 0.5},
                                       {"round": 0, "split": "eval", "reward": 1.0}])
    assert sorted(t.name for t in progress.data) == ["round 0 eval", "round 0 train"]
    page = plots.save_html(curve, tmp_path / "run" / "reward_curve.html")
    assert "plotly.min.js" in page.read_text() and (tmp_path / "run" / "plotly.min.js").stat().st_size > 1e6


def test_live_figure_redraws_at_most_once_per_interval():
    live = plots.LiveFigure(every=3600)
    built = []
    build = lambda: built.append(1) or plots.scoring_progress([])  # noqa: E731
    assert live.update(build) is True and live.update(build) is False
    assert live.update(build, force=True) is True and len(built) == 2
    assert plots.LiveFigure(enabled=False).update(build, force=True) is False
