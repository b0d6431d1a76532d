import json
from pathlib import Path

import pandas as pd
import pytest

from seal_kit.knowledge import agreement as agreement_module
from seal_kit.knowledge.agreement import CONDITIONS, HELD_OUT, agreement, agreement_table, fit
from seal_kit.cli import main
from seal_kit.knowledge.graders import FEATURES, FittedGrader, answer_features, first_answer, get_grader

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "seal_reference"
needs_reference = pytest.mark.skipif(not SHARED.exists(), reason=f"the paper's graded files are not at {SHARED}")


def graded_frame(rows):
    """A small table shaped like reference.load_graded's: (passage, kind, question, answer, prediction, verdict)."""
    return pd.DataFrame([{"condition": "toy", "passage": p, "kind": k, "question": q, "answer": a, "prediction": pr,
                          "reference_correct": v} for p, k, q, a, pr, v in rows])


TOY = graded_frame([
    (0, "adapter", "Capital?", "Paris", "Paris", True),
    (0, "adapter", "River?", "Seine", "The Loire", False),
    (1, "adapter", "Year?", "1622", "It was 1622.", False),   # contains accepts, the judge did not
    (1, "baseline", "Who?", "Aldric Moye", "Moye", True),     # contains rejects, the judge accepted
])


def test_agreement_counts_by_hand():
    result = agreement("contains", TOY)
    # contains: [1, 0, 1, 0] against [1, 0, 0, 1]: 2 of 4 agree; one of two rejected answers accepted
    assert result["n"] == 4 and result["agreement"] == 0.5
    assert result["false_accept"] == 0.5 and result["false_reject"] == 0.5
    assert result["kappa"] == 0.0  # both say yes half the time: agreement equals chance
    # adapter accuracy is a mean of per-passage means: passage 0 (1+0)/2, passage 1 1/1 -> 0.75
    assert result["accuracy"]["adapter"] == {"grader": 0.75, "reference": 0.25}
    assert list(result["accuracy"]) == ["adapter", "baseline"]


def test_a_grader_that_repeats_the_verdicts_agrees_perfectly():
    verdicts = dict(zip(TOY.prediction, TOY.reference_correct))
    perfect = lambda preds, answers, questions=None: [float(verdicts[p]) for p in preds]  # noqa: E731
    result = agreement(perfect, TOY, "perfect")
    assert (result["agreement"], result["kappa"], result["false_accept"], result["false_reject"]) == (1.0, 1.0, 0.0, 0.0)


def test_first_answer_cuts_a_run_on():
    assert first_answer("Otrar.\nQuestion: Topic: Mongols What else?") == "Otrar."
    assert first_answer("It is Paris.  Q:Topic: France") == "It is Paris."
    assert len(answer_features("Capital?", "Paris", "Paris")) == len(FEATURES)


def test_fit_learns_which_way_the_evidence_points_and_an_empty_answer_is_wrong():
    rows = []
    for n in range(30):
        rows += [(n, "adapter", "Which city?", "Pellin Harbour", "The capital is Pellin Harbour.", True),
                 (n, "adapter", "Which city?", "Pellin Harbour", "It is Sorrel Bay, I think.", False)]
    grader = FittedGrader(fit([graded_frame(rows)]))
    right, wrong, empty = grader(["Pellin Harbour is the capital.", "It is Sorrel Bay, I believe.", "  "], ["Pellin Harbour"] * 3,
                                 ["Which city?"] * 3)
    assert right > 0.9 and wrong < 0.1 and empty == 0.0


def test_weights_for_other_features_are_refused():
    with pytest.raises(ValueError, match="refit"):
        FittedGrader({"features": ["contains"], "intercept": 0.0, "coef": [1.0], "mean": [0.0], "scale": [1.0]})


def test_fitted_is_the_default_knowledge_grader():
    from seal_kit.knowledge.task import EvalConfig

    assert EvalConfig().grader == "fitted"
    scores = get_grader("fitted")(["The metal was silver.", "", "Iron"], ["silver", "silver", "silver"],
                                  ["What metal?"] * 3)
    assert scores[0] > 0.5 and scores[1] == 0.0 and scores[2] < 0.5


def test_features_read_an_answer_in_other_forms():
    features = lambda q, a, p: dict(zip(FEATURES, answer_features(q, a, p)))  # noqa: E731
    # another form of the gold's word, a hyphenated compound, an ordinal in figures: near, where exact recall is not
    assert features("What do FtsZ1 and FtsZ2 combine into?", "filaments", "A filamental structure")["near_new"] == 1.0
    assert features("What do FtsZ1 and FtsZ2 combine into?", "filaments", "A filamental structure")["recall_new"] == 0.0
    assert features("What shape are they?", "pancake-shaped circular disks", "Disk-shaped.")["near_new"] == 0.5
    assert features("Which Doctor?", "the Eleventh Doctor", "The 11th Doctor.")["recall_new"] == 1.0
    wrong_sum = features("How much did it cost?", "$20.4 billion", "$25.4 billion")
    assert wrong_sum["number_extra"] == 1.0 and wrong_sum["number_miss"] == 0.0  # "4" is shared; 25.4 is not 20.4
    run_on = features("Who missed?", "Graham Gano", "Graham Gano\n\nQ: Passage: The 2017 season")
    assert run_on["run_on_hit"] == 1.0 and features("Who missed?", "Graham Gano", "Graham Gano")["run_on_hit"] == 0.0
    assert features("How often?", "annually", "There is no specific mention of an annual renewal.")["hedge"] == 1.0


@pytest.fixture(scope="module")
def graded():
    from seal_kit.knowledge.reference import load_graded

    return {name: load_graded(name) for name in CONDITIONS + HELD_OUT}


@needs_reference
def test_shipped_weights_are_what_the_fit_command_writes(graded):
    shipped = FittedGrader().weights
    refit = fit([graded[c] for c in CONDITIONS])
    assert len(CONDITIONS) == 12 and shipped["fitted_on"] == sorted(CONDITIONS) and shipped["n"] == refit["n"]
    assert not set(shipped["fitted_on"]) & set(HELD_OUT)  # the CPT runs stay a check, never fitted
    assert shipped["coef"] == pytest.approx(refit["coef"], abs=1e-6)
    assert shipped["intercept"] == pytest.approx(refit["intercept"], abs=1e-6)


@needs_reference
def test_fitted_grader_on_each_condition_it_never_saw_reads_accuracy_within_two_points(graded):
    """The README's table: each single-passage condition scored by weights fitted on the other eleven, the
    CPT runs by the shipped weights (fitted on none of them)."""
    table = agreement_table(("contains",), graded)
    fitted, contains = (table[table.grader.str.startswith(g)].set_index("condition") for g in ("fitted", "contains"))
    assert list(fitted.index) == list(CONDITIONS + HELD_OUT)
    assert (fitted.loc[list(CONDITIONS)].grader == "fitted (held out)").all()
    assert (fitted.loc[list(HELD_OUT)].grader == "fitted (shipped)").all()
    # accuracy after the edits and before (the no-edit baseline each run judged again): within 2 points of GPT-4.1's
    assert (fitted.adapter_grader - fitted.adapter_reference).abs().max() <= 0.02
    assert (fitted.baseline_grader - fitted.baseline_reference).abs().max() <= 0.02
    # verdicts: better than contains on every condition; 0.90 or more on most held-out conditions, not all
    assert (fitted.agreement - contains.agreement).min() >= 0.02 and (fitted.kappa > contains.kappa).all()
    held_out = fitted.loc[list(CONDITIONS)]
    assert held_out.agreement.min() >= 0.875 and held_out.agreement.mean() >= 0.90
    assert (held_out.agreement >= 0.90).sum() >= 7
    assert fitted.loc[list(HELD_OUT)].agreement.min() >= 0.88


@needs_reference
def test_grade_agreement_prints_one_json_line(capsys):
    assert main(["grade-agreement", "naive", "--grader", "contains"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["grader"] == "contains" and result["n"] == 1948
    assert set(result["accuracy"]) == {"adapter", "baseline"}
    assert result["accuracy"]["adapter"]["reference"] == pytest.approx(0.3351, abs=1e-3)  # the paper's 33.5
    assert main(["grade-agreement", "naive"]) == 0
    assert "in sample" in json.loads(capsys.readouterr().out)["note"]


def test_grade_agreement_names_a_missing_file(capsys):
    assert main(["grade-agreement", "no-such-run.json"]) == 2
    assert "no-such-run.json" in capsys.readouterr().err


def test_module_command_refuses_unknown_verbs(capsys):
    assert agreement_module.main(["bogus"]) == 2
    assert "fit | table" in capsys.readouterr().err


def test_judge_consistency_counts_repeated_answers():
    again = TOY.assign(reference_correct=[True, False, True, True])  # the "1622" answer judged the other way
    result = agreement_module.judge_consistency([TOY, again])
    assert result == {"repeated_answers": 4, "same_verdict": 0.75}


@needs_reference
def test_grade_agreement_on_a_sample_with_a_local_judge(capsys):
    # the tiny random model is no judge: this checks the plumbing (a model-backed grader by name, --limit)
    assert main(["grade-agreement", "iter2", "--grader", "local:tiny", "--limit", "12"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["grader"] == "local:tiny" and result["n"] == 12
    assert main(["grade-agreement", "iter2", "--limit", "0"]) == 2
    assert "--limit" in capsys.readouterr().err
