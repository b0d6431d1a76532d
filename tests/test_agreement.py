import json
from pathlib import Path

import pandas as pd
import pytest

from seal_kit import agreement as agreement_module
from seal_kit.agreement import CONDITIONS, agreement, fit
from seal_kit.cli import main
from seal_kit.graders import FEATURES, FittedGrader, answer_features, first_answer, get_grader

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
    grader = FittedGrader(fit([graded_frame(rows)], steps=500))
    right, wrong, empty = grader(["Pellin Harbour is the capital.", "It is Sorrel Bay, I believe.", "  "], ["Pellin Harbour"] * 3,
                                 ["Which city?"] * 3)
    assert right > 0.9 and wrong < 0.1 and empty == 0.0


def test_weights_for_other_features_are_refused():
    with pytest.raises(ValueError, match="refit"):
        FittedGrader({"features": ["contains"], "intercept": 0.0, "coef": [1.0], "mean": [0.0], "scale": [1.0]})


def test_fitted_is_the_default_knowledge_grader():
    from seal_kit.knowledge import EvalConfig

    assert EvalConfig().grader == "fitted"
    scores = get_grader("fitted")(["The metal was silver.", "", "Iron"], ["silver", "silver", "silver"],
                                  ["What metal?"] * 3)
    assert scores[0] > 0.5 and scores[1] == 0.0 and scores[2] < 0.5


@needs_reference
def test_shipped_weights_are_what_the_fit_command_writes():
    from seal_kit.reference import load_graded

    shipped = FittedGrader().weights
    refit = fit([load_graded(c) for c in CONDITIONS])
    assert shipped["fitted_on"] == sorted(CONDITIONS)
    assert shipped["coef"] == pytest.approx(refit["coef"], abs=1e-6)
    assert shipped["intercept"] == pytest.approx(refit["intercept"], abs=1e-6)


@needs_reference
def test_fitted_grader_on_a_condition_it_never_saw_beats_contains_and_reads_accuracy_within_two_points():
    from seal_kit.reference import load_graded

    frames = {c: load_graded(c) for c in CONDITIONS}
    held_out = frames["gpt4_1"]  # the condition where contains disagrees most
    grader = FittedGrader(fit([frames[c] for c in CONDITIONS if c != "gpt4_1"]))
    fitted, contains = agreement(grader, held_out), agreement("contains", held_out)
    assert fitted["agreement"] > contains["agreement"] and fitted["kappa"] > contains["kappa"]
    adapter = fitted["accuracy"]["adapter"]
    assert abs(adapter["grader"] - adapter["reference"]) <= 0.02


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
