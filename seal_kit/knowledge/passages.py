"""Passages: the contexts of knowledge incorporation, each with its closed-book questions, validated.

    from seal_kit.knowledge.passages import QA, Passage, parse_passages
    passages = parse_passages([{"title": "T", "context": "...", "questions": [{"question": "?", "answer": "A"}]}],
                              source="my_file.json")      # errors name the source, item and field

The kit's own types: `seal_kit.knowledge.data` loads them from files, the built-in set or a hub dataset, and
`seal_kit.knowledge.reference` from the SEAL authors' published files.
"""
from __future__ import annotations

from dataclasses import dataclass


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
