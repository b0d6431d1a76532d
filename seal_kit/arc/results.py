"""ARC results as the paper reports them: success per method, over task sets, with the first draw or redrawn.

    from seal_kit.arc.results import first_draw, sampling_report, success_by_task_set
    rows = {"icl": icl, "oracle": oracle, "ttt_self_edit": round0, "ttt_self_edit_first_draw": first_draw(round0)}
    by_set = success_by_task_set(rows, {"all": None, "reference_8": REFERENCE_SCORED_IDS})  # set -> method -> share
    sampling_report(candidates)          # draws per self-edit, and how many never gave JSON that parses
    success_intervals(rows)              # per method: success with its 95% interval over tasks, valid configs

Success is the mean reward of a method's rows: one per task (in-context, oracle) or one per (task,
self-edit) pair (`ttt_self_edit`, `seal`), as the paper counts it. A self-edit drawn again until its
JSON parsed (`SamplingConfig.max_attempts`) is scored as drawn last; `first_draw` gives the result the
first draw would have had: the same where it was accepted, 0 where it was not (JSON that does not
parse is a failed edit).
"""
from __future__ import annotations

import pandas as pd

from ..stats import bootstrap_interval

INVALID = ("bad_json", "invalid_edit")  # statuses of a config that is not one: no JSON, or outside the schema


def first_draw(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` (with `reward` and `attempts`) as if every self-edit had been taken as first drawn."""
    attempts = rows["attempts"] if "attempts" in rows else pd.Series(1, index=rows.index)
    return rows.assign(reward=rows["reward"].where(attempts == 1, 0.0))


def success(rows: pd.DataFrame, ids=None) -> float | None:
    """Mean reward over the rows whose task (column `task`, else `context_id`) is in `ids` (None: all);
    None when no row is."""
    tasks = rows["task"] if "task" in rows else rows["context_id"]
    chosen = rows if ids is None else rows[tasks.isin(list(ids))]
    return float(chosen["reward"].mean()) if len(chosen) else None


def success_by_task_set(methods: dict[str, pd.DataFrame], task_sets: dict[str, object]) -> dict:
    """Task set name -> method -> success (None: no row), for task sets given as name -> task ids (None:
    every task). JSON as it is; `pd.DataFrame(...)` shows it as methods x task sets."""
    return {name: {method: success(rows, ids) for method, rows in methods.items()} for name, ids in task_sets.items()}


def success_intervals(methods: dict[str, pd.DataFrame], level: float = 0.95) -> pd.DataFrame:
    """One row per method with rows: `success` (mean reward over its rows, as `success`), its percentile
    bootstrap interval over tasks (a task's self-edits are averaged first: they share its test, so tasks
    are the independent draws), `n_tasks`, `n_rows`, and for rows with a status (sampled configs) the
    share of valid configs, `valid_configs` (JSON that parses and fits the schema; over-budget counts as valid)."""
    rows = []
    for method, frame in methods.items():
        if not len(frame):
            continue
        tasks = frame["task"] if "task" in frame else frame["context_id"]
        per_task = frame.groupby(tasks.to_numpy())["reward"].mean()
        low, high = bootstrap_interval(per_task.to_numpy(), level=level)
        valid = float((~frame["status"].isin(INVALID)).mean()) if "status" in frame else None
        rows.append({"method": method, "success": float(frame["reward"].mean()), "low": low, "high": high,
                     "n_tasks": len(per_task), "n_rows": len(frame), "valid_configs": valid})
    return pd.DataFrame(rows, columns=["method", "success", "low", "high", "n_tasks", "n_rows", "valid_configs"])


def sampling_report(candidates: pd.DataFrame) -> dict:
    """Per split: self-edits, draws made, self-edits drawn more than once, and those never accepted
    (every draw refused, so scored as a failed edit)."""
    report = {}
    for split, rows in candidates.groupby("split"):
        attempts = rows["attempts"] if "attempts" in rows else pd.Series(1, index=rows.index)
        accepted = rows["accepted"] if "accepted" in rows else pd.Series(True, index=rows.index)
        report[split] = {"self_edits": len(rows), "draws": int(attempts.sum()), "redrawn": int((attempts > 1).sum()),
                         "never_accepted": int((~accepted.astype(bool)).sum()),
                         "most_draws": int(attempts.max()) if len(rows) else 0}
    return report
