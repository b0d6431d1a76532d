"""The paper's evidence as tables: the prompt x RL table must reproduce the figures the graded runs report."""
from pathlib import Path

import pytest

from seal_kit.knowledge import evidence
from seal_kit.knowledge.reference import PROMPT_SETS, PROMPTS, load_graded, load_reference_passages

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "seal_reference"
pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"SEAL reference data not found at {REFERENCE}; "
                                "the evidence tables read the paper's judged answers and self-edits")


@pytest.fixture(scope="module")
def judged():
    return evidence.load_judged()


def test_the_prompt_rl_table_reproduces_the_reported_accuracies_with_paired_gains(judged):
    table = evidence.prompt_rl(judged, seed=0)
    assert table.index.tolist() == list(PROMPTS)
    for prompt, row in table.iterrows():
        for side, rnd in (("before", "base"), ("after", "iter2")):
            overall = load_graded(PROMPT_SETS[prompt, rnd]).attrs["overall"]
            assert row[side] == pytest.approx(overall["adapter_mean_accuracy"], abs=5e-5), (prompt, side)
            assert row[f"baseline_{side}"] == pytest.approx(overall["baseline_mean_accuracy"], abs=5e-5)
            assert row[f"{side}_low"] < row[side] < row[f"{side}_high"]
        assert row.n_passages == 200 and row.gain == pytest.approx(row.after - row.before)
        assert 0 < row.gain_low < row.gain < row.gain_high  # RL helped under every prompt, told apart from zero
    assert table.loc["rewrite", "before"] > table.loc["implications", "after"]  # untrained rewrite beats SEAL's headline
    assert evidence.prompt_rl(judged, seed=1).gain_low.tolist() != table.gain_low.tolist()  # the seed is used


def test_the_review_table_holds_one_card_per_judged_edit_with_its_questions(judged):
    passages = load_reference_passages("seal-eval")[:3]
    ids = [p.id for p in passages]
    some = evidence.grade(judged[judged.passage_id.isin(ids)], "contains")
    cards = evidence.review_table(some, evidence.load_edits(ids, sample=0), passages)
    assert len(cards) == 10 * 3 and set(cards["sample"]) == {0} and cards.self_edit.notna().all()
    card = cards[(cards.condition == "rewrite-iter2") & (cards.passage_id == ids[1])].iloc[0]
    rows = some[(some.condition == "rewrite-iter2") & (some.passage_id == ids[1])]
    after = rows[rows.kind == "adapter"]
    assert [q["after"] for q in card.questions] == after.prediction.tolist()
    assert [q["after_correct"] for q in card.questions] == after.reference_correct.tolist()
    assert [q["before"] for q in card.questions] == rows[rows.kind == "baseline"].prediction.tolist()
    assert card.reward == pytest.approx(after.reference_correct.mean()) and card.context == passages[1].context
    assert set(card.questions[0]) == {"question", "answer", "before", "after", "before_correct", "after_correct",
                                      "before_score", "after_score"}
    with pytest.raises(ValueError, match="no judged answers for passage id"):
        evidence.load_judged(["seal-eval-999"])


def test_agreement_and_disagreements_come_from_one_grading_of_each_answer(judged):
    some = judged[judged.passage_id.isin([f"seal-eval-{i:03d}" for i in range(5)])]
    scored = evidence.grade(some, "contains")
    table = evidence.agreement_table(scored, "contains")
    assert table.condition.tolist() == list(PROMPT_SETS.values()) and not table.in_sample.any()
    differ = evidence.disagreements(scored)
    per_run = differ.groupby("condition").size().reindex(table.condition, fill_value=0)
    assert (per_run.to_numpy() == (table.n * (1 - table.agreement)).round().astype(int).to_numpy()).all()
    assert set(differ.which) <= {"grader accepts, GPT-4.1 rejects", "grader rejects, GPT-4.1 accepts"}
    spread = evidence.baseline_spread(some)
    assert spread["n_runs"] == 10 and spread["low"] <= min(spread["per_run"].values()) <= spread["high"]
