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
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

BUILTIN = "builtin"
REFERENCE_SETS = ("seal-eval", "seal-train")


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    context: str
    questions: tuple[QA, ...]


class DataError(ValueError):
    """A data file that does not have the SQuAD-by-passage shape; the message names file, item and field."""


def _field(where: str, obj: dict, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value.strip():
        state = "missing" if not isinstance(obj, dict) or key not in obj else f"invalid ({value!r})"
        raise DataError(f"{where}: field {key!r} is {state}; expected a non-empty string")
    return value.strip()


def parse_passages(items, source: str) -> list[Passage]:
    """Validate a list of SQuAD-by-passage dicts; `source` names the file in error messages."""
    if not isinstance(items, list) or not items:
        raise DataError(f"{source}: expected a non-empty JSON list of passages, got {type(items).__name__}")
    passages, seen = [], set()
    for i, item in enumerate(items):
        where = f"{source}: item {i}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected an object with title/context/questions, got {type(item).__name__}")
        title = _field(where, item, "title")
        where = f"{source}: item {i} ({title!r})"
        context = _field(where, item, "context")
        questions = item.get("questions")
        if not isinstance(questions, list) or not questions:
            state = "missing" if "questions" not in item else "invalid"
            raise DataError(f"{where}: field 'questions' is {state}; expected a non-empty list of {{question, answer}}")
        qas = tuple(QA(_field(f"{where}, questions[{j}]", q, "question"), _field(f"{where}, questions[{j}]", q, "answer"))
                    for j, q in enumerate(questions))
        pid = str(item.get("id") or i)
        if pid in seen:
            raise DataError(f"{where}: duplicate id {pid!r}; ids must be unique")
        seen.add(pid)
        passages.append(Passage(pid, title, context, qas))
    return passages


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
        from .reference import load_reference_passages  # imported here: reference builds on this module
        return load_reference_passages(str(source))[:limit]
    if str(source) == BUILTIN:
        text = resources.files("seal_kit").joinpath("data/builtin_passages.json").read_text(encoding="utf-8")
        items, name = json.loads(text), "builtin_passages.json"
    elif Path(source).expanduser().exists():
        name = str(source)
        try:
            items = json.loads(Path(source).expanduser().read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{name}: not valid JSON ({err})") from err
    elif str(source).endswith((".json", ".jsonl")) or str(source).startswith((".", "/", "~")):
        raise DataError(f"{source}: no such file; give 'builtin', 'seal-eval', 'seal-train', a SQuAD-by-passage "
                        "JSON file or a HF dataset name")
    else:
        items, name = _from_hub(str(source), split), str(source)
    return parse_passages(items, name)[:limit]
