import json
from pathlib import Path

import pytest

from seal_kit.knowledge.data import DataError, load_passages

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "squad_val.json"


def test_builtin_set_is_invented_and_answerable():
    passages = load_passages("builtin")
    assert len(passages) >= 30
    assert len({p.id for p in passages}) == len(passages)
    for p in passages:
        assert len(p.questions) >= 4
        for qa in p.questions:
            assert qa.answer.lower() in p.context.lower(), (p.id, qa.answer)


def test_limit():
    assert len(load_passages("builtin", limit=3)) == 3
    with pytest.raises(DataError, match="limit"):
        load_passages("builtin", limit=0)


def test_start_holds_out_the_passages_before_it():
    every = load_passages("builtin")
    window = load_passages("builtin", limit=3, start=8)
    assert [p.id for p in window] == [p.id for p in every[8:11]]
    assert [p.id for p in load_passages("builtin", start=len(every) - 1)] == [every[-1].id]  # no limit: to the end
    with pytest.raises(DataError, match=r"start=-1: .*index of the first passage"):
        load_passages("builtin", start=-1)
    with pytest.raises(DataError, match=rf"start={len(every)}: builtin holds {len(every)} passages"):
        load_passages("builtin", start=len(every))


@pytest.mark.parametrize("items, message", [
    ({"title": "x"}, "expected a non-empty JSON list"),
    ([{"context": "c", "questions": [{"question": "q", "answer": "a"}]}], r"item 0: field 'title' is missing"),
    ([{"title": "T", "context": "", "questions": [{"question": "q", "answer": "a"}]}],
     r"item 0 \('T'\): field 'context' is invalid"),
    ([{"title": "T", "context": "c", "questions": []}], r"item 0 \('T'\): field 'questions' is invalid"),
    ([{"title": "T", "context": "c"}], r"field 'questions' is missing"),
    ([{"title": "T", "context": "c", "questions": [{"question": "q", "answer": "a"}]},
      {"title": "U", "context": "c", "questions": [{"question": "q", "answer": 3}]}],
     r"item 1 \('U'\), questions\[0\]: field 'answer' is invalid \(3\)"),
    (["just text"], r"item 0: expected an object"),
])
def test_bad_files_are_rejected_naming_file_item_and_field(tmp_path, items, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(items))
    with pytest.raises(DataError, match=message) as err:
        load_passages(path)
    assert str(path) in str(err.value)


def test_invalid_json_and_missing_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("[{")
    with pytest.raises(DataError, match="broken.json: not valid JSON"):
        load_passages(path)
    with pytest.raises(DataError, match="no such file"):
        load_passages(tmp_path / "absent.json")
    latin = tmp_path / "latin1.json"
    latin.write_bytes('[{"title": "Caf\u00e9"}]'.encode("latin-1"))
    with pytest.raises(DataError, match="latin1.json: not UTF-8 text"):
        load_passages(latin)
    with pytest.raises(DataError, match=f"{tmp_path}: no dataset could be read there .*; DATA takes 'builtin'"):
        load_passages(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"notes.txt: a .txt file; DATA takes .*\.csv"):
        load_passages(tmp_path / "notes.txt")


@pytest.mark.skipif(not SQUAD.exists(), reason=f"shared SQuAD data not found at {SQUAD}")
def test_real_squad_file_loads():
    passages = load_passages(SQUAD, limit=5)
    assert len(passages) == 5
    assert all(p.questions and p.title for p in passages)


def test_hub_dataset_rows_are_regrouped_by_passage(monkeypatch):
    """A SQuAD-style HF dataset has one row per question; the loader groups them per context."""
    import sys
    import types

    rows = [{"title": "T1", "context": "C1", "question": "q1", "answers": {"text": ["a1", "alt"]}},
            {"title": "T1", "context": "C1", "question": "q2", "answers": {"text": ["a2"]}},
            {"title": "T2", "context": "C2", "question": "q3", "answers": {"text": ["a3"]}},
            {"title": "T2", "context": "C2", "question": "unanswerable", "answers": {"text": []}}]
    asked = []
    fake = types.SimpleNamespace(load_dataset=lambda name, split: asked.append((name, split)) or rows)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    passages = load_passages("some-org/squad-like", split="validation")
    assert asked == [("some-org/squad-like", "validation")]
    assert [(p.title, [(q.question, q.answer) for q in p.questions]) for p in passages] == [
        ("T1", [("q1", "a1"), ("q2", "a2")]), ("T2", [("q3", "a3")])]


def test_home_relative_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "mine.json").write_text(json.dumps([{"title": "T", "context": "C", "questions": [
        {"question": "q", "answer": "a"}]}]))
    assert load_passages("~/mine.json")[0].title == "T"


ROWS = [{"title": "T1", "context": "C1", "question": "q1", "answer": "a1"},
        {"title": "T1", "context": "C1", "question": "q2", "answer": "a2"},
        {"title": "T2", "context": "C2", "question": "q3", "answer": "a3"}]
GROUPED = [("T1", "C1", [("q1", "a1"), ("q2", "a2")]), ("T2", "C2", [("q3", "a3")])]


def shape(passages):
    return [(p.title, p.context, [(q.question, q.answer) for q in p.questions]) for p in passages]


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".parquet"])
def test_one_row_per_question_files_are_grouped_by_passage(tmp_path, suffix):
    import pandas as pd

    path = tmp_path / f"questions{suffix}"
    table = pd.DataFrame(ROWS)
    {".json": lambda: path.write_text(json.dumps(ROWS)), ".jsonl": lambda: table.to_json(path, orient="records", lines=True),
     ".csv": lambda: table.to_csv(path, index=False), ".parquet": lambda: table.to_parquet(path)}[suffix]()
    assert shape(load_passages(path)) == GROUPED
    assert len(load_passages(path, limit=1)) == 1


def test_by_passage_json_lines_and_renamed_columns(tmp_path):
    nested = tmp_path / "passages.jsonl"
    nested.write_text("\n".join(json.dumps({"title": t, "context": c, "questions": [{"question": q, "answer": a}
                                                                                   for q, a in qa]})
                                for t, c, qa in GROUPED) + "\n")
    assert shape(load_passages(nested)) == GROUPED
    renamed = tmp_path / "mine.csv"
    import pandas as pd

    pd.DataFrame([{"passage": r["context"], "q": r["question"], "gold": r["answer"]} for r in ROWS]).to_csv(renamed, index=False)
    got = load_passages(f"{renamed}?context=passage&question=q&answer=gold")
    assert [(c, qa) for _, c, qa in shape(got)] == [(c, qa) for _, c, qa in GROUPED]
    assert got[0].title == "C1"  # no title column: the context's first words
    with pytest.raises(DataError, match=r"mine.csv: row 0 has no column 'context' \(columns: passage, q, gold\); name the"):
        load_passages(renamed)
    with pytest.raises(DataError, match="unknown column role 'gold'; name columns for context, question, answer, title"):
        load_passages(f"{renamed}?gold=answer")


def test_a_saved_hugging_face_dataset_with_a_split_and_squads_answers(tmp_path):
    datasets = pytest.importorskip("datasets")
    squad_like = [{"title": r["title"], "context": r["context"], "question": r["question"],
                   "answers": {"text": [r["answer"]], "answer_start": [0]}} for r in ROWS]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(squad_like[:1]),
                          "validation": datasets.Dataset.from_list(squad_like)}).save_to_disk(tmp_path / "saved")
    assert shape(load_passages(tmp_path / "saved")) == GROUPED  # validation when no split is named
    assert [p.title for p in load_passages(f"{tmp_path / 'saved'}:train")] == ["T1"]
    with pytest.raises(DataError, match="no split 'test'; it has train, validation"):
        load_passages(f"{tmp_path / 'saved'}:test")
    files = tmp_path / "files"
    files.mkdir()
    datasets.Dataset.from_list(squad_like).to_parquet(str(files / "train.parquet"))
    assert shape(load_passages(files)) == GROUPED  # a folder of data files, as load_dataset reads it


def test_squad_is_a_name_not_a_path(monkeypatch, tmp_path):
    import seal_kit.knowledge.data as data

    asked = []
    monkeypatch.setattr(data, "_local_squad", lambda: None)
    monkeypatch.setattr(data, "_read_dataset", lambda name, split: asked.append((name, split)) or ROWS)
    assert shape(load_passages("squad")) == GROUPED and asked == [("rajpurkar/squad", "validation")]
    load_passages("squad:train")
    assert asked[-1] == ("rajpurkar/squad", "train")
