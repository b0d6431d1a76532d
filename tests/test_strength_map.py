"""The strength map's arithmetic: seeds averaged per passage, paired gains, the order verdict."""
import pandas as pd
import pytest

from seal_kit.strength_map import ordered, summarize


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
