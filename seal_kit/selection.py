"""Selection: which scored self-edits of a round train the generator (ReST-EM's "keep the good ones").

    from seal_kit.selection import SELECTIONS, best_of_k, curated, improves, load_decisions, top_fraction
    best_of_k(candidates)                    # the best edit per context (the paper's, even without gain)
    improves(candidates)                     # every edit whose reward beats its context's baseline
    top_fraction(candidates, fraction=0.25)  # the best quarter of all candidates
    kept = curated(candidates, load_decisions(run_dir), round=r)   # what a person accepted (seal_kit.review)

`candidates` is a round's table, one row per self-edit (`RestEM.candidates`): context_id, sample,
reward, baseline, and for `curated` the prompt, edit and documents a reviewer saw. A person's
decisions live in `run_dir / review_decisions.json`, a JSON list of records `{"round", "context_id",
"sample", "decision": "accept"|"reject"|"", "text": edited self-edit or null, "note", "updated"}`;
the review widget writes them, this module only reads them (no widgets needed to resume a run).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

DECISIONS = "review_decisions.json"
KEY = ["round", "context_id", "sample"]
REQUIRED = ("round", "split", "context_id", "sample", "prompt", "self_edit", "reward", "baseline", "gain", "status",
            "documents", "context")
DECISION_COLUMNS = [*KEY, "decision", "text", "note", "updated"]


def best_of_k(candidates: pd.DataFrame) -> pd.DataFrame:
    ranked = candidates.sort_values(["context_id", "reward", "sample"], ascending=[True, False, True])
    return ranked.groupby("context_id", sort=False).head(1)


def improves(candidates: pd.DataFrame) -> pd.DataFrame:
    return candidates[candidates.reward > candidates.baseline]


def top_fraction(candidates: pd.DataFrame, fraction: float = 0.25) -> pd.DataFrame:
    n = max(1, round(len(candidates) * fraction))
    return candidates.sort_values(["reward", "context_id", "sample"], ascending=[False, True, True]).head(n)


SELECTIONS: dict[str, Callable[..., pd.DataFrame]] = {
    "best_of_k": best_of_k, "improves": improves, "top_fraction": top_fraction}


DECISIONS_ALLOWED = ("accept", "reject", "")


def decision_records(path: Path) -> dict[tuple, dict]:
    """The decisions file as {(round, context_id, sample): record}; empty when nothing was reviewed. A file
    that is not such a list (hand-edited, cut short) is refused naming the file and the entry: the loop
    would otherwise train on, or silently drop, what a person decided."""
    if not path.exists():
        return {}
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); it holds the review's decisions: fix or restore it "
                         "(or delete it to review again)") from None
    if not isinstance(records, list):
        raise ValueError(f"{path} holds a {type(records).__name__}; a list of decision records is expected")
    found = {}
    for n, r in enumerate(records):
        where = f"{path}, entry {n}"
        if not isinstance(r, dict):
            raise ValueError(f"{where}: a {type(r).__name__}, not a decision record {{round, context_id, sample, "
                             "decision, text, note, updated}")
        if missing := [k for k in KEY if k not in r]:
            raise ValueError(f"{where}: missing {missing}")
        if not isinstance(r["round"], int) or not isinstance(r["sample"], int) or isinstance(r["round"], bool):
            raise ValueError(f"{where}: round and sample must be integers, got {r['round']!r} and {r['sample']!r}")
        if r.get("decision", "") not in DECISIONS_ALLOWED:
            raise ValueError(f"{where}: decision {r.get('decision')!r}; accepted: \"accept\", \"reject\" or \"\" "
                             "(undecided)")
        if r.get("text") is not None and not isinstance(r["text"], str):
            raise ValueError(f"{where}: text must be the rewritten self-edit (a string) or null, got "
                             f"{type(r['text']).__name__}")
        found[(r["round"], str(r["context_id"]), r["sample"])] = r
    return found


def load_decisions(run_dir) -> pd.DataFrame:
    """The saved decisions, one row per reviewed candidate; no rows when nothing was reviewed yet."""
    table = pd.DataFrame(list(decision_records(Path(run_dir) / DECISIONS).values()), columns=DECISION_COLUMNS)
    table = table.astype({"round": int, "sample": int, "context_id": str, "decision": str, "note": str,
                          "updated": str})
    # None, not NaN, means "unchanged": pandas would otherwise turn a missing edit into a float.
    table["text"] = pd.Series([t if isinstance(t, str) else None for t in table["text"]], index=table.index,
                              dtype=object)
    return table


def with_decisions(candidates: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """Train candidates with the decision, text, note and updated columns of their saved decision."""
    missing = [c for c in REQUIRED if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates lack columns {missing}; a candidates table (RestEM.candidates) needs "
                         f"{list(REQUIRED)}")
    # Held-out passages measure the generator; training on edits chosen for them would leak the test set.
    table = candidates[candidates["split"] == "train"].reset_index(drop=True)
    saved = {(int(d["round"]), str(d["context_id"]), int(d["sample"])): d for d in decisions.to_dict("records")}
    found = [saved.get((int(r), str(c), int(s)), {}) for r, c, s in zip(*(table[k] for k in KEY))]
    table["decision"] = [f.get("decision", "") for f in found]
    table["text"] = pd.Series([f.get("text") if isinstance(f.get("text"), str) else None for f in found],
                              index=table.index, dtype=object)
    table["note"] = [f.get("note", "") for f in found]
    table["updated"] = [f.get("updated", "") for f in found]
    return table


def accepted(table: pd.DataFrame, round: int | None) -> pd.DataFrame:
    """The accepted rows of a `with_decisions` table, the reviewer's text in `self_edit` where edited."""
    kept = table[table["decision"] == "accept"]
    if round is not None:
        kept = kept[kept["round"] == round]
    edited = kept["text"].map(lambda t: isinstance(t, str)).astype(bool)
    kept = kept.assign(self_edit=[t if e else s for t, e, s in zip(kept["text"], edited, kept["self_edit"])],
                       edited=edited)
    return kept.drop(columns=["decision", "text", "updated"]).sort_values(KEY).reset_index(drop=True)


def curated(candidates: pd.DataFrame, decisions: pd.DataFrame, round: int | None = None) -> pd.DataFrame:
    """Accepted candidates (of one round if given), `self_edit` being the reviewer's text where they
    rewrote it, with `edited` and `note` columns; sorted by round, context_id, sample."""
    return accepted(with_decisions(candidates, decisions), round)
