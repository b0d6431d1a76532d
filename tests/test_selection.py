"""Selection policies on plain numbers, and a person's decisions read without the review widget."""
import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from seal_kit.selection import DECISIONS, SELECTIONS, best_of_k, curated, improves, load_decisions, top_fraction


def table_of(rewards, baselines=None):
    rows = [{"context_id": c, "sample": s, "reward": r, "baseline": (baselines or {}).get(c, 0.2),
             "self_edit": f"{c}-{s}", "prompt": f"prompt {c}"}
            for c, rs in rewards.items() for s, r in enumerate(rs)]
    return pd.DataFrame(rows)


def test_selection_policies_on_hand_made_rewards():
    table = table_of({"a": [0.2, 0.6, 0.6], "b": [0.0, 0.0, 0.0], "c": [0.4, 1.0, 0.8]}, {"b": 0.0, "c": 0.4})
    assert best_of_k(table).self_edit.tolist() == ["a-1", "b-0", "c-1"]  # ties: first sample; b kept at 0
    assert sorted(improves(table).self_edit) == ["a-1", "a-2", "c-1", "c-2"]  # reward > its passage's baseline
    assert top_fraction(table, fraction=0.34).self_edit.tolist() == ["c-1", "c-2", "a-1"]  # 34% of 9 -> 3
    assert set(SELECTIONS) == {"best_of_k", "improves", "top_fraction"}


def test_top_fraction_keeps_at_least_one_and_defaults_to_a_quarter():
    table = table_of({"a": [0.1, 0.9], "b": [0.5, 0.3]})
    assert top_fraction(table, fraction=0.01).self_edit.tolist() == ["a-1"]
    assert top_fraction(table).self_edit.tolist() == ["a-1"]  # 25% of 4 -> 1
    assert top_fraction(table, fraction=1.0).self_edit.tolist() == ["a-1", "b-0", "b-1", "a-0"]


def test_load_decisions_of_an_unreviewed_run_is_empty_with_its_columns(tmp_path):
    empty = load_decisions(tmp_path)
    assert empty.empty and list(empty.columns) == ["round", "context_id", "sample", "decision", "text", "note",
                                                    "updated"]


def test_curated_reads_a_decisions_file_written_by_hand(tmp_path):
    """What the review widget writes, read back by the outer loop's "human" selection."""
    candidates = table_of({"a": [0.2, 0.6], "b": [0.9]}).assign(
        round=0, split="train", gain=0.0, status="ok", documents=[["d"]] * 3, context="c")
    candidates = pd.concat([candidates, candidates.iloc[:1].assign(split="eval", context_id="z")])
    (tmp_path / DECISIONS).write_text(json.dumps([
        {"round": 0, "context_id": "a", "sample": 1, "decision": "accept", "text": "rewritten", "note": "ok",
         "updated": "2025-01-01T00:00:00+00:00"},
        {"round": 0, "context_id": "b", "sample": 0, "decision": "reject", "text": None, "note": "",
         "updated": "2025-01-01T00:00:00+00:00"},
        {"round": 0, "context_id": "z", "sample": 0, "decision": "accept", "text": None, "note": "",  # held out
         "updated": "2025-01-01T00:00:00+00:00"}]))
    kept = curated(candidates, load_decisions(tmp_path), round=0)
    assert kept.self_edit.tolist() == ["rewritten"] and kept.edited.tolist() == [True]
    assert kept.note.tolist() == ["ok"] and curated(candidates, load_decisions(tmp_path), round=1).empty


def test_the_outer_loop_and_its_human_selection_need_no_widgets():
    code = ("import sys; sys.modules['ipywidgets'] = None  # any import of it fails\n"
            "import seal_kit.rest_em, seal_kit.selection")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("text, message", [
    ("[{\"round\": 0,", "is not valid JSON"),
    ("{\"round\": 0}", "holds a dict; a list of decision records"),
    ("[[0, \"a\", 1]]", "entry 0: a list, not a decision record"),
    ("[{\"round\": 0, \"sample\": 1}]", "entry 0: missing ['context_id']"),
    ("[{\"round\": \"0\", \"context_id\": \"a\", \"sample\": 1}]", "round and sample must be integers"),
    ("[{\"round\": 0, \"context_id\": \"a\", \"sample\": 1, \"decision\": \"accept\"},"
     " {\"round\": 0, \"context_id\": \"b\", \"sample\": 0, \"decision\": \"ACCEPT\"}]", "entry 1: decision 'ACCEPT'"),
    ("[{\"round\": 0, \"context_id\": \"a\", \"sample\": 1, \"decision\": \"\", \"text\": 3}]", "text must be"),
])
def test_a_damaged_decisions_file_is_refused_naming_the_file_and_entry(tmp_path, text, message):
    """A hand-edited file would otherwise train the generator on what nobody accepted, or drop a decision."""
    (tmp_path / DECISIONS).write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        load_decisions(tmp_path)
    assert DECISIONS in str(err.value)
