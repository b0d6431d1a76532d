import json
from pathlib import Path

import pytest

from seal_kit.data import DataError, load_passages

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
    with pytest.raises(DataError, match=f"{tmp_path} is a directory; DATA takes"):
        load_passages(tmp_path)


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
