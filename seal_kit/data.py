"""Data: passages with their questions, SQuAD style.

    from seal_kit.data import load_passages
    passages = load_passages("builtin")                          # 36 invented passages shipped here
    passages = load_passages("../shared/data/squad/squad_val.json", limit=50)
    passages = load_passages("squad")                            # a HF dataset name (needs `datasets` + internet)
    passages = load_passages("seal-eval")                        # the SEAL paper's 200 evaluation passages

A file is a JSON list of `{"title", "context", "questions": [{"question", "answer"}, ...]}`
(an optional `"id"` per item). The built-in set describes invented places, people and things, so
the base model cannot know the answers and any gain is learned from the passage.
"seal-eval" and "seal-train" are the passages the SEAL authors evaluated and trained on, with ids
(seal-eval-000, ...) that match their published self-edits and verdicts (see `seal_kit.reference`).
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from .passages import QA, DataError, Passage, parse_passages  # noqa: F401 (QA: the type loaded passages hold)
from .reference import load_reference_passages

BUILTIN = "builtin"
REFERENCE_SETS = ("seal-eval", "seal-train")


def _from_hub(name: str, split: str) -> list[dict]:
    """Regroup a SQuAD-style HF dataset (one row per question) into one item per passage."""
    try:
        import datasets
    except ImportError as err:
        raise DataError(f"{name!r} is not a file; to load it as a Hugging Face dataset, `pip install datasets`") from err
    grouped: dict[str, dict] = {}
    for row in datasets.load_dataset(name, split=split):
        item = grouped.setdefault(row["context"], {"title": row["title"], "context": row["context"], "questions": []})
        answers = row["answers"]["text"]
        if answers:
            item["questions"].append({"question": row["question"], "answer": answers[0]})
    return list(grouped.values())


def load_passages(source: str | Path = BUILTIN, limit: int | None = None, split: str = "validation") -> list[Passage]:
    """Passages from "builtin", "seal-eval"/"seal-train", a SQuAD-by-passage JSON file, or a HF dataset name;
    first `limit` kept."""
    if limit is not None and limit < 1:
        raise DataError(f"limit must be a positive number of passages, got {limit}")
    if str(source) in REFERENCE_SETS:
        return load_reference_passages(str(source))[:limit]
    if str(source) == BUILTIN:
        text = resources.files("seal_kit").joinpath("data/builtin_passages.json").read_text(encoding="utf-8")
        items, name = json.loads(text), "builtin_passages.json"
    elif Path(source).expanduser().exists():
        name, path = str(source), Path(source).expanduser()
        if path.is_dir():
            raise DataError(f"{name} is a directory; DATA takes a SQuAD-by-passage JSON file (or 'builtin', "
                            "'seal-eval', 'seal-train', a HF dataset name)")
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{name}: not valid JSON ({err})") from err
        except UnicodeDecodeError as err:
            raise DataError(f"{name}: not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8 JSON") from None
    elif str(source).endswith((".json", ".jsonl")) or str(source).startswith((".", "/", "~")):
        raise DataError(f"{source}: no such file; give 'builtin', 'seal-eval', 'seal-train', a SQuAD-by-passage "
                        "JSON file or a HF dataset name")
    else:
        items, name = _from_hub(str(source), split), str(source)
    return parse_passages(items, name)[:limit]
