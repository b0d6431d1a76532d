"""The inner-loop strength map: where do self-edits help? Reads a sweep of knowledge runs (notebook 02).

    from seal_kit.knowledge.strength_map import read_map, summarize
    per_passage = read_map("outputs/sweeps/inner-loop-map")   # one row per (setting, seed, condition, passage)
    table = summarize(per_passage)                             # accuracy [95% CI] per setting and condition,
                                                               # and each condition's paired gain over passage-only

A setting is an inner loop (learning rate, epochs, target modules, schedule, padding: what the sweep
varied besides SEED and SELF_EDITS). Each run of the sweep scores base, passage-only and one self-edit
condition (its SELF_EDITS: the model's own, or the paper's GPT-4.1 edits) on the same passages with the
same seed; base and passage-only come from every run of a setting and seed alike (same inner loop, same
seed), so they are read from the first. Seeds are averaged per passage before the bootstrap over passages.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import report

SETTING = ["DATA", "INNER_LR", "EPOCHS", "INNER_TARGETS", "LR_SCHEDULE", "PAD_TO", "MAX_GRAD_NORM", "BATCH_SIZE"]
EDITS = {"self_edit": "own self-edit", "seal-reference:gpt4_1": "GPT-4.1 self-edit",
         "seal-reference:base": "Qwen-7B self-edit", "seal-reference:iter2": "SEAL self-edit"}
MATCHED = {name: f"passage, {name}'s steps" for name in EDITS.values()}  # a self-edit -> its 02 MATCHED_CONTROL
NAMES = EDITS | {f"passage_matched:{c}": MATCHED[name] for c, name in EDITS.items()}  # as
# knowledge.matched_condition names them (not imported: reading a map needs no torch)
ORDER = ["base", "passage", *MATCHED.values(), *EDITS.values()]


def _setting(parameters: dict) -> str:
    shown = []
    for key in SETTING:
        if key in parameters:
            value = parameters[key]
            shown.append(f"lr {float(value):g}" if key == "INNER_LR" else f"{value} epochs" if key == "EPOCHS"
                         else str(value) if key == "DATA" else f"{key.lower()} {value}")
    return ", ".join(shown) or "defaults"


def _strength(parameters: dict) -> tuple[float, float]:
    """The order settings are shown in: the strongest inner loop first (a higher learning rate, then more
    epochs), as the tables of docs/results-measured.md read; settings alike in both keep the order of their folders."""
    return -float(parameters.get("INNER_LR", 0.0)), -float(parameters.get("EPOCHS", 0))


def read_map(folder: str | Path) -> pd.DataFrame:
    """Every finished knowledge run below `folder`, as rows (setting, seed, condition, passage_id, accuracy,
    answer_words, recites_passage), the strongest setting first; runs of other notebooks and unfinished ones
    are left out."""
    runs = []
    for metrics_path in sorted(Path(folder).rglob("metrics.json")):
        run = metrics_path.parent
        table_path = run / "per_passage_accuracy.parquet"
        timing = run / "execution.json"
        if not table_path.exists() or not timing.exists():
            continue
        parameters = json.loads(timing.read_text())["parameters"]
        metrics = json.loads(metrics_path.read_text())
        table = pd.read_parquet(table_path)
        rows = []
        for condition in [c for c in table.columns if c != "passage_id" and not c.endswith("_best")]:
            style = metrics.get("conditions", {}).get(condition, {})
            rows += [{"setting": _setting(parameters), "seed": parameters.get("SEED", 0), "run": run.name,
                      "condition": NAMES.get(condition, condition), "passage_id": pid, "accuracy": float(acc),
                      "answer_words": style.get("answer_words"), "recites_passage": style.get("recites_passage")}
                     for pid, acc in zip(table.passage_id, table[condition])]
        runs.append((_strength(parameters), rows))
    rows = [row for _, part in sorted(runs, key=lambda run: run[0]) for row in part]  # sorted() is stable
    if not rows:
        raise FileNotFoundError(f"{folder}: no finished knowledge runs (metrics.json with per_passage_accuracy) "
                                "below it; run the sweep first (seal-kit sweep --grid inner_loop_map --out ...)")
    frame = pd.DataFrame(rows)
    # base and passage-only are in every run of a setting and seed: keep the first run's
    first = frame.groupby(["setting", "seed", "condition"]).run.transform("first")
    return frame[frame.run == first].reset_index(drop=True)


def summarize(per_passage: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per setting and condition: accuracy (seeds averaged per passage, then the mean over passages) with
    its bootstrap interval over passages, the paired gain over passage-only with its interval, the number
    of passages and seeds, words per answer and the share of answers reciting the passage. Where the runs had
    02's MATCHED_CONTROL, a self-edit also gets its paired gain over the passage trained for as many steps
    (`gain_over_matched`, `matched_low`, `matched_high`). The numbers are `report.conditions` and
    `report.paired_gains`, as notebook 02 computes them for one run."""
    out = []
    for setting, group in per_passage.groupby("setting", sort=False):
        wide = group.pivot_table(index="passage_id", columns="condition", values="accuracy", aggfunc="mean")
        names = [c for c in ORDER if c in wide.columns] + [c for c in wide.columns if c not in ORDER]
        table = report.conditions(wide[names], level=level)
        edits = [c for c in names if c not in ("base", "passage") and "passage" in wide.columns]
        over_passage = report.paired_gains(wide, [(c, "passage") for c in edits], level=level).set_index("self-edits")
        matched = [c for c in names if MATCHED.get(c) in wide.columns]  # against the passage trained for as many steps
        over_matched = report.paired_gains(wide, [(c, MATCHED[c]) for c in matched], level=level).set_index("self-edits")
        seeds = group.groupby("condition").seed.nunique()
        for condition in names:
            row = {"setting": setting, "condition": condition, **table.loc[condition, ["accuracy", "ci_low", "ci_high"]],
                   "n_passages": int(table.at[condition, "n_passages"]), "n_seeds": int(seeds[condition])}
            if condition in over_passage.index:
                row["gain_over_passage"], row["gain_low"], row["gain_high"] = over_passage.loc[condition, ["gain", "ci_low", "ci_high"]]
            if condition in over_matched.index:
                row["gain_over_matched"], row["matched_low"], row["matched_high"] = over_matched.loc[condition, ["gain", "ci_low", "ci_high"]]
            style = group[group.condition == condition]
            row["answer_words"] = style.answer_words.astype(float).mean()
            row["recites_passage"] = style.recites_passage.astype(float).mean()
            out.append(row)
    return pd.DataFrame(out)


def ordered(summary: pd.DataFrame) -> pd.DataFrame:
    """Per setting: whether base < passage < self-edit holds with intervals that do not overlap, and where
    the run had MATCHED_CONTROL, whether the self-edit beats the passage trained for as many steps."""
    rows = []
    for setting, group in summary.groupby("setting", sort=False):
        by = group.set_index("condition")
        for condition in [c for c in by.index if c not in ("base", "passage", *MATCHED.values())]:
            if {"base", "passage"} <= set(by.index):
                separated = (by.at["base", "ci_high"] < by.at["passage", "ci_low"]
                             and by.at["passage", "ci_high"] < by.at[condition, "ci_low"])
                rows.append({"setting": setting, "self-edits": condition,
                             "base < passage < self-edit": bool(by.at["base", "accuracy"] < by.at["passage", "accuracy"]
                                                                < by.at[condition, "accuracy"]),
                             "intervals apart": bool(separated),
                             "self-edit beats passage (paired CI above 0)": bool(by.at[condition, "gain_low"] > 0)
                             if not np.isnan(by.at[condition, "gain_low"]) else False,
                             **({"beats the step-matched passage (paired CI above 0)": bool(by.at[condition, "matched_low"] > 0)}
                                if not np.isnan(by.get("matched_low", {}).get(condition, np.nan)) else {})})
    return pd.DataFrame(rows)
