"""Data: passages with their questions, SQuAD style, from wherever they are.

    from seal_kit.knowledge.data import load_passages
    passages = load_passages("builtin")                          # 36 invented passages shipped here
    passages = load_passages("seal-eval")                        # the SEAL paper's 200 evaluation passages
    passages = load_passages("squad", limit=50)                  # SQuAD v1.1 validation, grouped by passage
    passages = load_passages("my_questions.csv")                 # also .json, .jsonl, .parquet
    passages = load_passages("org/dataset:test?context=passage&answer=gold")   # a HF dataset: split, columns

Two shapes are read. **By passage**: a JSON list (or JSON lines) of `{"title", "context", "questions":
[{"question", "answer"}, ...]}`, an optional `"id"` per item. **By question** (SQuAD's own, and any table):
one row per question with `context`, `question` and `answer` columns (`answers` as SQuAD's
`{"text": [...]}` or a list also works: the first answer is kept, rows without one dropped) and an optional
`title`; rows are grouped by their context, in order. `?context=...&question=...&answer=...&title=...`
after a source (or `columns=`) names the columns a dataset uses instead.

A source is: "builtin"; "seal-eval" / "seal-train", the passages the SEAL authors evaluated and trained on,
with ids (seal-eval-000, ...) that match their published self-edits and verdicts (`seal_kit.knowledge.reference`);
"squad" (a `shared/data/squad/squad_val.json` beside the project when there is one, else the hub's
rajpurkar/squad); a file (.json, .jsonl, .csv, .parquet); a folder a Hugging Face dataset was saved to or
holds its data files; or a hub dataset id, `:split` after it (default: validation, else train).
Hub datasets need the `[hub]` extra (`datasets`) and, the first time, the internet.
The built-in set describes invented places, people and things, so the base model cannot know the answers
and any gain is learned from the passage.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qsl

from .passages import QA, DataError, Passage, parse_passages  # noqa: F401 (QA: the type loaded passages hold)
from .reference import load_reference_passages

BUILTIN = "builtin"
REFERENCE_SETS = ("seal-eval", "seal-train")
SQUAD = "rajpurkar/squad"  # what "squad" names on the hub (v1.1; the local copy is its validation split)
FIELDS = ("context", "question", "answer", "title")
FILES = (".json", ".jsonl", ".csv", ".parquet")
ACCEPTED = ("'builtin', 'seal-eval', 'seal-train', 'squad', a .json/.jsonl/.csv/.parquet file, a dataset folder "
            "or a Hugging Face dataset id (optionally :split)")


def _answer(value):
    """The first answer of an `answer` cell: a string, a list of them, or SQuAD's {"text": [...]}."""
    if isinstance(value, dict):
        value = value.get("text")
    if hasattr(value, "tolist"):  # numpy arrays from parquet
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) else None
    return value


def group_rows(rows, source: str, columns: dict[str, str] | None = None) -> list[dict]:
    """One row per question -> one item per passage (grouped by context, in order of first appearance)."""
    names = {field: field for field in FIELDS} | (columns or {})
    grouped: dict[str, dict] = {}
    for i, row in enumerate(rows):
        answer_column = names["answer"] if names["answer"] in row or "answers" not in row else "answers"
        missing = [names[f] for f in ("context", "question") if names[f] not in row] + \
                  ([names["answer"]] if answer_column not in row else [])
        if missing:
            raise DataError(f"{source}: row {i} has no column {missing[0]!r} (columns: {', '.join(map(str, row))}); "
                            f"name the columns to use, e.g. {source}?context=...&question=...&answer=...")
        context = row[names["context"]]
        title = row.get(names["title"]) or " ".join(str(context).split()[:8])
        item = grouped.setdefault(context, {"title": title, "context": context, "questions": []})
        answer = _answer(row[answer_column])
        if answer is not None and str(answer).strip():
            item["questions"].append({"question": row[names["question"]], "answer": answer})
    return [item for item in grouped.values() if item["questions"]]


def _items(records: list, source: str, columns: dict | None, table: bool = False) -> list:
    """By-passage items as they are; by-question rows (a table's always; JSON's when they have a question) grouped."""
    question = (columns or {}).get("question", "question")
    by_question = table or (isinstance(records, list) and records and all(
        isinstance(r, dict) and "questions" not in r for r in records) and any(question in r for r in records))
    return group_rows(records, source, columns) if by_question else records


def _read_file(path: Path, name: str) -> list:
    try:
        if path.suffix in (".csv", ".parquet"):
            import pandas as pd

            table = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
            return table.where(table.notna(), None).to_dict("records")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{name}: not valid JSON ({err})") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{name}: not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8") from None
    except (OSError, ValueError) as err:
        raise DataError(f"{name}: could not be read as {path.suffix} ({err})") from err


def _datasets():
    try:
        import datasets
    except ImportError as err:
        raise DataError("Hugging Face datasets need the `datasets` library: pip install 'seal-kit[hub]'") from err
    return datasets


def _read_dataset(name: str, split: str | None) -> list[dict]:
    """Rows of a saved dataset folder (save_to_disk), a folder of data files, or a hub dataset."""
    datasets = _datasets()
    folder = Path(name).expanduser()
    try:
        if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
            loaded = datasets.load_from_disk(str(folder))
        else:
            loaded = datasets.load_dataset(str(folder) if folder.is_dir() else name, split=split)
    except Exception as err:  # datasets raises its own kinds (DataFilesNotFoundError, DatasetGenerationError, ...)
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        raise DataError(f"{name}: no dataset could be read there ({reason}); DATA takes {ACCEPTED}") from err
    if isinstance(loaded, dict):  # every split: the one asked for, else validation, else train, else the first
        if split is not None and split not in loaded:
            raise DataError(f"{name}: no split {split!r}; it has {', '.join(loaded)}")
        loaded = loaded[split or next((s for s in ("validation", "train") if s in loaded), next(iter(loaded)))]
    return list(loaded)


def _local_squad() -> Path | None:
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (found := folder / "shared" / "data" / "squad" / "squad_val.json").is_file():
                return found
    return None


def parse_source(source: str | Path) -> tuple[str, str | None, dict[str, str]]:
    """"name:split?column=name&..." -> (name, split, columns). A file's own name keeps any colon in it."""
    text = str(source)
    text, _, query = text.partition("?")
    columns = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    if unknown := [k for k in columns if k not in FIELDS]:
        raise DataError(f"{source}: unknown column role {unknown[0]!r}; name columns for {', '.join(FIELDS)}")
    name, split = text, None
    if not Path(text).expanduser().exists() and ":" in text.rsplit("/", 1)[-1]:
        name, _, split = text.rpartition(":")
    return name, split or None, columns


def load_passages(source: str | Path = BUILTIN, limit: int | None = None, split: str | None = None,
                  columns: dict[str, str] | None = None, start: int = 0) -> list[Passage]:
    """Passages from a named set, a file, a dataset folder or a hub dataset (see the module docstring);
    `limit` of them kept from the `start`-th on (0: the first), so `start` holds out the passages before it.
    `split` and `columns` may also be given in the source string."""
    if limit is not None and limit < 1:
        raise DataError(f"limit must be a positive number of passages, got {limit}")
    if start < 0:
        raise DataError(f"start={start}: start is the index of the first passage to use (0 or more)")
    passages = _all_passages(source, split, columns)
    if start and start >= len(passages):
        raise DataError(f"start={start}: {str(source).partition('?')[0]} holds {len(passages)} passages "
                        f"(indices 0 to {len(passages) - 1})")
    return passages[start:None if limit is None else start + limit]


def _all_passages(source: str | Path, split: str | None, columns: dict[str, str] | None) -> list[Passage]:
    name, given_split, given_columns = parse_source(source)
    split, columns = split or given_split, {**given_columns, **(columns or {})}
    if name in REFERENCE_SETS:
        return load_reference_passages(name)
    if name == BUILTIN:
        text = resources.files("seal_kit").joinpath("data/builtin_passages.json").read_text(encoding="utf-8")
        return parse_passages(json.loads(text), "builtin_passages.json")
    if name == "squad" and split in (None, "validation") and (local := _local_squad()):
        name = str(local)
    elif name == "squad":
        name, split = SQUAD, split or "validation"
    path = Path(name).expanduser()
    table = True  # a dataset's rows are one per question
    if path.is_dir():
        records = _read_dataset(name, split)
    elif path.exists():
        if path.suffix not in FILES:
            raise DataError(f"{name}: a {path.suffix or 'suffix-less'} file; DATA takes {ACCEPTED}")
        records, table = _read_file(path, name), path.suffix in (".csv", ".parquet")
    elif name.endswith(FILES) or name.startswith((".", "/", "~")):
        raise DataError(f"{name}: no such file; DATA takes {ACCEPTED}")
    else:
        records = _read_dataset(name, split)
    label = str(source).partition("?")[0]
    return parse_passages(_items(records, label, columns, table), label)
