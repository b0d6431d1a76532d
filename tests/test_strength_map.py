"""The strength map's arithmetic: seeds averaged per passage, paired gains, the order verdict."""
import pandas as pd
import pytest

from seal_kit.knowledge.strength_map import ordered, summarize


def rows(setting, condition, accuracies, seed=0):
    return [{"setting": setting, "seed": seed, "condition": condition, "passage_id": f"p{i}", "accuracy": a,
             "answer_words": 5.0, "recites_passage": 0.0} for i, a in enumerate(accuracies)]


def test_paired_gain_and_order_verdict():
    frame = pd.DataFrame(rows("gentle", "base", [0.0, 0.1, 0.0, 0.1]) + rows("gentle", "passage", [0.3, 0.4, 0.3, 0.4])
                         + rows("gentle", "GPT-4.1 self-edit", [0.7, 0.8, 0.7, 0.8])
                         + rows("hard", "base", [0.0, 0.1, 0.0, 0.1]) + rows("hard", "passage", [0.9, 0.2, 0.9, 0.2])
                         + rows("hard", "GPT-4.1 self-edit", [0.8, 0.1, 0.8, 0.1]))
    summary = summarize(frame)
    gentle = summary[summary.setting == "gentle"].set_index("condition")
    assert gentle.at["GPT-4.1 self-edit", "gain_over_passage"] == pytest.approx(0.4)
    assert gentle.at["GPT-4.1 self-edit", "gain_low"] == pytest.approx(0.4)  # the same gain on every passage
    verdicts = ordered(summary).set_index("setting")
    assert verdicts.at["gentle", "intervals apart"] and verdicts.at["gentle", "self-edit beats passage (paired CI above 0)"]
    assert not verdicts.at["hard", "base < passage < self-edit"]
    assert not verdicts.at["hard", "self-edit beats passage (paired CI above 0)"]


def test_seeds_are_averaged_per_passage_before_the_bootstrap():
    frame = pd.DataFrame(rows("s", "base", [0.0, 1.0], seed=0) + rows("s", "base", [1.0, 0.0], seed=1))
    row = summarize(frame).iloc[0]
    assert row.accuracy == 0.5 and row.ci_low == row.ci_high == 0.5 and row.n_seeds == 2 and row.n_passages == 2


def test_a_self_edit_is_compared_with_the_passage_trained_for_as_many_steps():
    frame = pd.DataFrame(rows("s", "base", [0.0, 0.1, 0.0]) + rows("s", "passage", [0.2, 0.2, 0.3])
                         + rows("s", "passage, own self-edit's steps", [0.5, 0.6, 0.5])
                         + rows("s", "own self-edit", [0.4, 0.5, 0.4]))
    summary = summarize(frame).set_index("condition")
    assert list(summary.index) == ["base", "passage", "passage, own self-edit's steps", "own self-edit"]
    assert summary.at["own self-edit", "gain_over_passage"] == pytest.approx(0.2)
    assert summary.at["own self-edit", "gain_over_matched"] == pytest.approx(-0.1)
    assert summary.at["own self-edit", "matched_high"] == pytest.approx(-0.1)  # the same on every passage
    verdict = ordered(summary.reset_index()).set_index("self-edits")
    assert list(verdict.index) == ["own self-edit"]  # the matched control is a control, not a self-edit
    assert verdict.at["own self-edit", "self-edit beats passage (paired CI above 0)"]
    assert not verdict.at["own self-edit", "beats the step-matched passage (paired CI above 0)"]


def test_the_map_names_every_step_matched_control_02_writes():
    from seal_kit.knowledge.task import matched_condition
    from seal_kit.knowledge.strength_map import EDITS, MATCHED, NAMES

    assert {NAMES[matched_condition(c)] for c in EDITS} == set(MATCHED.values())


def test_a_map_reads_its_runs_strongest_setting_first(tmp_path):
    import json

    from seal_kit.knowledge.strength_map import read_map

    def run(name, lr, epochs, passage):  # what 02 leaves in a finished run folder
        folder = tmp_path / name
        folder.mkdir()
        (folder / "execution.json").write_text(json.dumps({"parameters": {"INNER_LR": lr, "EPOCHS": epochs}}))
        (folder / "metrics.json").write_text(json.dumps({"conditions": {}}))
        pd.DataFrame({"passage_id": ["p0", "p1"], "base": [0.0, 0.1], "passage": passage}).to_parquet(
            folder / "per_passage_accuracy.parquet")

    run("a-light", 1e-4, 3, [0.1, 0.2])   # folders sort lightest first
    run("b-default", 1e-3, 10, [0.8, 0.9])
    run("c-short", 1e-3, 3, [0.2, 0.3])
    frame = read_map(tmp_path)
    assert list(dict.fromkeys(frame.setting)) == ["lr 0.001, 10 epochs", "lr 0.001, 3 epochs", "lr 0.0001, 3 epochs"]
    passage = frame[frame.condition == "passage"].groupby("setting", sort=False).accuracy.mean()
    assert passage.to_dict() == pytest.approx({"lr 0.001, 10 epochs": 0.85, "lr 0.001, 3 epochs": 0.25,
                                               "lr 0.0001, 3 epochs": 0.15})
