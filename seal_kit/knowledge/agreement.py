"""Agreement: how closely a grader reads answers as the paper's judge (GPT-4.1) did, and the fitted grader.

    from seal_kit.knowledge.agreement import agreement, agreement_table
    from seal_kit.knowledge.reference import load_graded
    agreement("contains", load_graded("iter2"))   # {"grader", "n", "agreement", "kappa", "false_accept", ...}
    agreement_table()                             # every grader on every published condition (fitted: held out)

    python -m seal_kit.knowledge.agreement fit              # refit seal_kit/data/fitted_grader.json on the verdicts
    python -m seal_kit.knowledge.agreement table            # the table in docs/comparing-with-the-paper.md, as CSV-like text
    seal-kit grade-agreement iter2 --grader fitted   # one JSON line for any grader and graded file

A grader's score >= 0.5 counts as its verdict "correct". Accuracies are means over passages of each
passage's accuracy, as the paper's Table 2 reports them (`adapter_mean_accuracy`), from the grader's
scores (for the fitted grader: a mean of probabilities, which estimates the judge's accuracy).

The fitted grader is fitted on the 12 single-passage runs in CONDITIONS: Table 2's four (base, passage
only, GPT-4.1 and SEAL iter2 self-edits) and the paper's other self-edit prompts (longer implications,
very long implications, rewrite, self-QA), each before RL and after two ReST-EM rounds; 22,396 non-empty
judged answers in all. It is checked honestly: for each of the 12 it is refitted on the other eleven and
scored on the one it never saw; the 4 CPT runs' verdicts are never used for fitting at all.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .graders import FEATURES, FittedGrader, Grader, answer_features, get_grader

# the single-passage runs: Table 2's four, then the paper's other self-edit prompts before RL and after two rounds
CONDITIONS = ("base", "naive", "gpt4_1", "iter2", "implications-long-base", "implications-long-iter2",
              "implications-very-long-base", "implications-very-long-iter2", "rewrite-base", "rewrite-iter2",
              "self-qa-base", "self-qa-iter2")
HELD_OUT = ("cpt_base", "cpt_naive", "cpt_gpt4_1", "cpt_iter2")  # never used for fitting
WEIGHTS = Path(__file__).resolve().parent.parent / "data" / "fitted_grader.json"


def _accuracy(frame: pd.DataFrame, column: str) -> float:
    return float(frame.groupby("passage")[column].mean().mean())


def agreement(grader: str | Grader, graded: pd.DataFrame, name: str | None = None) -> dict:
    """Compare `grader` with the reference verdicts of a `load_graded` table."""
    grade = get_grader(grader)
    scores = np.asarray(grade(list(graded.prediction.fillna("")), list(graded.answer), list(graded.question)), float)
    verdict, reference = scores >= 0.5, graded.reference_correct.to_numpy(bool)
    observed = float((verdict == reference).mean())
    p_yes, r_yes = verdict.mean(), reference.mean()
    chance = p_yes * r_yes + (1 - p_yes) * (1 - r_yes)
    frame = graded.assign(grader_score=scores, reference_score=reference.astype(float))
    return {
        "grader": name or (grader if isinstance(grader, str) else getattr(grader, "__name__", type(grader).__name__)),
        "n": int(len(graded)), "agreement": round(observed, 4),
        "kappa": round(float((observed - chance) / (1 - chance)) if chance < 1 else 1.0, 4),
        # false accept: share of the answers GPT-4.1 rejected that the grader accepts; false reject: the converse
        "false_accept": round(float(verdict[~reference].mean()) if (~reference).any() else 0.0, 4),
        "false_reject": round(float((~verdict[reference]).mean()) if reference.any() else 0.0, 4),
        "accuracy": {kind: {"grader": round(_accuracy(part, "grader_score"), 4),
                            "reference": round(_accuracy(part, "reference_score"), 4)}
                     for kind, part in sorted(frame.groupby("kind"), key=lambda kp: kp[0] != "adapter")},
    }


def _design(graded: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Features and verdicts of the non-empty answers (an empty answer is wrong by rule, not by fit)."""
    rows = graded[graded.prediction.fillna("").str.strip() != ""]
    features = np.array([answer_features(q, a, p) for q, a, p in zip(rows.question, rows.answer, rows.prediction)])
    return features, rows.reference_correct.to_numpy(float)


def fit(graded: list[pd.DataFrame], l2: float = 1e-2, iterations: int = 50) -> dict:
    """Logistic weights for FittedGrader from judged answers: the mean log loss plus l2/2 times the squared
    weights (the intercept unpenalised), on standardised features, minimised by Newton's method (exact,
    deterministic, no extra dependency; converges in a handful of iterations)."""
    fitted_on = sorted({str(g.condition.iloc[0]) for g in graded})
    return _fit_designs([_design(g) for g in graded], fitted_on, l2, iterations)


def _fit_designs(designs: list[tuple[np.ndarray, np.ndarray]], fitted_on: list[str], l2: float = 1e-2,
                 iterations: int = 50) -> dict:
    x, y = np.vstack([d[0] for d in designs]), np.concatenate([d[1] for d in designs])
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-6] = 1.0  # a feature constant here must not explode where it varies
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])  # the last column carries the intercept
    penalty = l2 * np.eye(z.shape[1])
    penalty[-1, -1] = 0.0
    theta = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(z @ theta)))
        gradient = z.T @ (p - y) / len(y) + penalty @ theta
        hessian = (z * (p * (1 - p))[:, None]).T @ z / len(y) + penalty
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return {"features": list(FEATURES), "intercept": float(theta[-1]), "coef": theta[:-1].tolist(),
            "mean": mean.tolist(), "scale": scale.tolist(), "fitted_on": fitted_on, "n": int(len(y))}


def agreement_table(graders=("contains", "exact_match", "f1"),
                    graded: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Every grader on every published condition; "fitted" is scored on each single-passage condition
    by weights fitted on the other eleven (leave one condition out), and on the CPT runs by the shipped
    weights. `graded` (name -> `load_graded` table) saves loading the 16 runs again."""
    from .reference import load_graded

    graded = graded if graded is not None else {name: load_graded(name) for name in CONDITIONS + HELD_OUT}
    designs = {name: _design(graded[name]) for name in CONDITIONS}  # each condition's features, computed once
    rows = []
    for condition in CONDITIONS + HELD_OUT:
        frame = graded[condition]
        for grader in graders:
            rows.append({"condition": condition, **agreement(grader, frame)})
        if condition in CONDITIONS:
            others = [c for c in CONDITIONS if c != condition]
            weights = _fit_designs([designs[c] for c in others], sorted(others))
            rows.append({"condition": condition, **agreement(FittedGrader(weights), frame, "fitted (held out)")})
        else:
            rows.append({"condition": condition, **agreement("fitted", frame, "fitted (shipped)")})
    table = pd.DataFrame(rows)
    for kind in ("adapter", "baseline"):
        table[f"{kind}_grader"] = table.accuracy.map(lambda a: a[kind]["grader"])
        table[f"{kind}_reference"] = table.accuracy.map(lambda a: a[kind]["reference"])
    return table.drop(columns="accuracy")


def judge_consistency(graded: list[pd.DataFrame]) -> dict:
    """How often the paper's judge gave the same verdict to the same (question, gold, answer) judged more
    than once across runs: a ceiling for any grader's agreement with it."""
    seen = pd.concat(graded).groupby(["question", "answer", "prediction"]).reference_correct.agg(["nunique", "size"])
    repeated = seen[seen["size"] > 1]
    return {"repeated_answers": int(len(repeated)), "same_verdict": round(float((repeated["nunique"] == 1).mean()), 4)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fit"]:
        from .reference import load_graded

        weights = fit([load_graded(c) for c in CONDITIONS])
        WEIGHTS.write_text(json.dumps(weights, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {WEIGHTS} ({weights['n']} judged answers of {', '.join(weights['fitted_on'])})")
        return 0
    if argv[:1] == ["table"]:
        from .reference import load_graded

        print(agreement_table().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print("GPT-4.1 on answers it judged more than once:", judge_consistency([load_graded(c) for c in CONDITIONS]))
        return 0
    print("usage: python -m seal_kit.knowledge.agreement fit | table", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
