import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from seal_kit.review import EMPTY_VIEW, Review
from seal_kit.selection import DECISIONS, curated, load_decisions

# (round, context_id, sample, reward, baseline, status); rewards are distinct so every sort is unambiguous
ROWS = [(0, "c0", 0, 0.8, 0.5, "ok"), (0, "c0", 1, 0.2, 0.5, "ok"), (0, "c1", 0, 0.5, 0.1, "ok"),
        (0, "c1", 1, 0.0, 0.1, "empty_edit"), (1, "c0", 0, 0.6, 0.5, "ok"), (1, "c2", 0, 0.9, 0.3, "ok"),
        (1, "c2", 1, 0.4, 0.3, "ok")]
BY_REWARD = [(1, "c2", 0), (0, "c0", 0), (1, "c0", 0), (0, "c1", 0), (1, "c2", 1), (0, "c0", 1), (0, "c1", 1)]


def row(r, c, s, reward, baseline, status, split="train"):
    return {"round": r, "split": split, "context_id": c, "sample": s, "prompt": f"Passage {c}. Implications:",
            "self_edit": f"edit {r}-{c}-{s}", "reward": reward, "baseline": baseline, "gain": reward - baseline,
            "status": status, "documents": [f"doc A {c}", f"doc B {c} <i>"], "context": f"Title {c} & <Sub>\nbody"}


@pytest.fixture
def candidates():
    return pd.DataFrame([row(*r) for r in ROWS] + [row(0, "c9", 0, 1.0, 0.0, "ok", split="eval")])


def keys(frame):
    return list(zip(frame["round"], frame["context_id"], frame["sample"]))


def key(review):
    return keys(review.current.to_frame().T)[0]


def saved(run_dir):
    return {(d["round"], d["context_id"], d["sample"]): d for d in json.loads((run_dir / DECISIONS).read_text())}


def test_eval_rows_are_dropped_and_the_best_reward_is_shown_first(candidates, tmp_path):
    review = Review(candidates, tmp_path)
    assert len(review.table) == 7 and "c9" not in set(review.table.context_id)
    assert keys(review.view) == BY_REWARD and key(review) == (1, "c2", 0)
    assert review.position.value == "1 / 7" and review.text.value == "edit 1-c2-0"
    html = review.info.value
    assert "Title c2 &amp; &lt;Sub&gt;" in html and "<Sub>" not in html  # passage text is escaped
    assert html.count("<li>") == 2 and "doc B c2 &lt;i&gt;" in html
    assert "reward 0.900" in html and "gain +0.600" in html and "undecided" in html
    assert "application/vnd.jupyter.widget-view+json" in review._repr_mimebundle_()


def test_accept_reject_clear_buttons_change_table_and_file(candidates, tmp_path):
    review = Review(candidates, tmp_path)
    review.accept_button.click()
    review.next_button.click()
    review.reject_button.click()
    decision = dict(zip(keys(review.table), review.table.decision))
    assert decision[(1, "c2", 0)] == "accept" and decision[(0, "c0", 0)] == "reject"
    assert sum(d != "" for d in decision.values()) == 2
    assert {k: d["decision"] for k, d in saved(tmp_path).items()} == {(1, "c2", 0): "accept", (0, "c0", 0): "reject"}
    loaded = load_decisions(tmp_path)
    assert dict(zip(keys(loaded), loaded.decision)) == {(1, "c2", 0): "accept", (0, "c0", 0): "reject"}
    assert loaded["round"].dtype.kind == "i" and loaded.updated.str.match(r"\d{4}-\d\d-\d\dT").all()
    assert "decision <b>reject</b>" in review.info.value
    review.clear_button.click()
    assert saved(tmp_path)[(0, "c0", 0)]["decision"] == ""
    assert review.table.set_index(["round", "context_id", "sample"]).decision[(0, "c0", 0)] == ""


def test_edited_text_is_the_curated_completion_and_an_unchanged_save_stores_none(candidates, tmp_path):
    review = Review(candidates, tmp_path)
    review.text.value = "A rewritten implication."
    review.save_text_button.click()
    review.accept_button.click()
    assert saved(tmp_path)[(1, "c2", 0)]["text"] == "A rewritten implication."
    assert review.text.value == "A rewritten implication." and "(text edited)" in review.info.value
    kept = curated(candidates, load_decisions(tmp_path))
    assert kept.self_edit.tolist() == ["A rewritten implication."] and kept.edited.tolist() == [True]
    review.save_text("edit 1-c2-0")  # back to the original: no longer an edit
    assert saved(tmp_path)[(1, "c2", 0)]["text"] is None
    kept = curated(candidates, load_decisions(tmp_path))
    assert kept.self_edit.tolist() == ["edit 1-c2-0"] and kept.edited.tolist() == [False]


def test_notes_persist_from_the_box_and_the_method(candidates, tmp_path):
    review = Review(candidates, tmp_path)
    review.note.value = "too vague"
    review.save_text_button.click()
    assert saved(tmp_path)[(1, "c2", 0)]["note"] == "too vague" and saved(tmp_path)[(1, "c2", 0)]["text"] is None
    review.next_button.click()
    review.set_note("good one")
    assert review.note.value == "good one"
    notes = load_decisions(tmp_path)
    assert dict(zip(keys(notes), notes.note)) == {(1, "c2", 0): "too vague", (0, "c0", 0): "good one"}


def test_filters_and_sorts_select_and_order_the_view(candidates, tmp_path):
    review = Review(candidates, tmp_path)
    review.round_filter.value = 0
    assert keys(review.view) == [k for k in BY_REWARD if k[0] == 0]
    review.status_filter.value = "empty_edit"
    assert keys(review.view) == [(0, "c1", 1)]
    review.round_filter.value, review.status_filter.value = "all", "all"
    review.context_filter.value = "c2"
    assert keys(review.view) == [(1, "c2", 0), (1, "c2", 1)]
    review.context_filter.value = "all"
    review.min_reward.value = 0.5
    assert keys(review.view) == [(1, "c2", 0), (0, "c0", 0), (1, "c0", 0), (0, "c1", 0)]
    review.min_reward.value = review.min_reward.min
    review.sort.value = "reward ↑"
    assert keys(review.view) == BY_REWARD[::-1]
    review.sort.value = "gain ↓"  # gains 0.6, 0.4, 0.3, then ties at 0.1
    assert keys(review.view)[:3] == [(1, "c2", 0), (0, "c1", 0), (0, "c0", 0)]
    review.sort.value = "passage"
    assert keys(review.view) == sorted(keys(review.table), key=lambda k: (k[1], k[0], k[2]))


def test_decision_filters_follow_accepts(candidates, tmp_path):
    review = Review(candidates, tmp_path)
    review.accept()
    review.status_filter.value = "accepted"
    assert keys(review.view) == [(1, "c2", 0)]
    review.status_filter.value = "undecided"
    assert len(review.view) == 6 and (1, "c2", 0) not in keys(review.view)
    first = key(review)
    review.reject()  # leaves the "undecided" view, so the next undecided one is shown
    assert len(review.view) == 5 and key(review) != first and review.position.value == "1 / 5"
    review.status_filter.value = "rejected"
    assert keys(review.view) == [first]


def test_paging_stops_at_both_ends_and_a_filter_change_returns_to_the_first_row(candidates, tmp_path):
    review = Review(candidates, tmp_path)
    review.prev_button.click()
    assert key(review) == BY_REWARD[0] and review.position.value == "1 / 7"
    for _ in range(10):
        review.next_button.click()
    assert key(review) == BY_REWARD[-1] and review.position.value == "7 / 7"
    review.prev_button.click()
    assert key(review) == BY_REWARD[-2] and review.position.value == "6 / 7"
    review.sort.value = "reward ↑"
    assert review.position.value == "1 / 7" and key(review) == BY_REWARD[-1]


def test_page_size_lists_the_neighbours_of_the_current_candidate(candidates, tmp_path):
    review = Review(candidates, tmp_path, page_size=3)
    assert review.info.value.count("#") == 3 and "▶ c2 #0" in review.info.value
    with pytest.raises(ValueError, match="page_size"):
        Review(candidates, tmp_path, page_size=0)


def test_a_new_review_on_the_same_run_sees_the_same_decisions(candidates, tmp_path):
    review = Review(candidates, tmp_path)
    review.text.value, review.note.value = "Edited.", "kept after rewriting"
    review.save_text_button.click()
    review.accept()
    review.next_button.click()
    review.reject()
    again = Review(candidates, tmp_path)  # a kernel restart
    state = again.table.set_index(["round", "context_id", "sample"])
    columns = ["decision", "text", "note"]
    assert state.loc[(1, "c2", 0), columns].tolist() == ["accept", "Edited.", "kept after rewriting"]
    assert state.loc[(0, "c0", 0), columns].tolist() == ["reject", None, ""]
    assert again.text.value == "Edited." and again.note.value == "kept after rewriting"
    # Reviewing only round 0 must not erase the decisions already made on round 1.
    Review(candidates[candidates["round"] == 0], tmp_path).accept()
    assert set(saved(tmp_path)) == {(1, "c2", 0), (0, "c0", 0)}
    assert saved(tmp_path)[(0, "c0", 0)]["decision"] == "accept"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_curated_keeps_accepted_of_a_round_sorted_by_key(candidates, tmp_path):
    review = Review(candidates, tmp_path)
    for _ in range(4):  # accept the four best: (1,c2,0) (0,c0,0) (1,c0,0) (0,c1,0)
        review.accept()
        review.next_button.click()
    review.reject()
    decisions = load_decisions(tmp_path)
    assert keys(curated(candidates, decisions)) == [(0, "c0", 0), (0, "c1", 0), (1, "c0", 0), (1, "c2", 0)]
    round1 = curated(candidates, decisions, round=1)
    assert keys(round1) == [(1, "c0", 0), (1, "c2", 0)] and {"edited", "note", "prompt"} <= set(round1.columns)
    assert "decision" not in round1.columns


def test_export_writes_accepted_pairs_with_the_edited_completion(candidates, tmp_path):
    review = Review(candidates, tmp_path)
    review.save_text("Edited implication.")
    review.set_note("clearer")
    review.accept()
    review.next_button.click()
    review.accept()
    review.next_button.click()
    review.reject()
    review.export_button.click()
    lines = (tmp_path / "curated.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records == [
        {"prompt": "Passage c0. Implications:", "completion": "edit 0-c0-0", "context_id": "c0", "round": 0,
         "sample": 0, "reward": 0.8, "gain": pytest.approx(0.3), "edited": False, "note": ""},
        {"prompt": "Passage c2. Implications:", "completion": "Edited implication.", "context_id": "c2", "round": 1,
         "sample": 0, "reward": 0.9, "gain": pytest.approx(0.6), "edited": True, "note": "clearer"}]
    assert review.export(tmp_path / "elsewhere.jsonl").read_text() == "\n".join(lines) + "\n"
    assert "2 accepted" in review.message.value


def test_an_empty_view_says_so_and_its_buttons_do_nothing(candidates, tmp_path):
    review = Review(candidates, tmp_path)
    review.status_filter.value = "rejected"
    assert review.view.empty and review.current is None
    assert EMPTY_VIEW in review.info.value and review.position.value == "0 / 0" and review.text.value == ""
    for button in (review.accept_button, review.reject_button, review.clear_button, review.save_text_button,
                   review.next_button, review.prev_button):
        button.click()
    review.save_text("ignored")
    review.set_note("ignored")
    assert not (tmp_path / DECISIONS).exists() and (review.table.decision == "").all()
    review.status_filter.value = "all"
    assert key(review) == BY_REWARD[0]


def test_missing_columns_are_named(candidates, tmp_path):
    with pytest.raises(ValueError, match=r"lack columns \['documents', 'context'\].*needs \['round', 'split'"):
        Review(candidates.drop(columns=["context", "documents"]), tmp_path)
    with pytest.raises(ValueError, match="'prompt'"):
        curated(candidates.drop(columns=["prompt"]), load_decisions(tmp_path))


def test_accept_keeps_text_and_note_typed_but_not_saved(candidates, tmp_path):
    review = Review(candidates, tmp_path)
    review.text.value, review.note.value = "Typed, never saved.", "short and right"
    review.accept_button.click()
    kept = curated(candidates, load_decisions(tmp_path))
    assert kept.self_edit.tolist() == ["Typed, never saved."] and kept.note.tolist() == ["short and right"]
    assert kept.edited.tolist() == [True]


def test_a_one_round_export_is_named_after_its_round(candidates, tmp_path):
    review = Review(candidates[candidates["round"] == 1], tmp_path)
    review.accept()
    assert review.export() == tmp_path / "curated-round-1.jsonl"
    assert [json.loads(line)["round"] for line in (tmp_path / "curated-round-1.jsonl").read_text().splitlines()] == [1]


def test_two_reviews_of_one_run_in_two_kernels_keep_each_others_decisions(tmp_path):
    """Each click re-reads and rewrites the decisions file; under its lock two kernels clicking at the same
    time never lose a decision (without it, one kernel's write drops the other's latest clicks)."""
    many = pd.DataFrame([row(r, f"c{n}", 0, 0.5, 0.1, "ok") for r in (0, 1) for n in range(60)])
    many.to_pickle(tmp_path / "candidates.pkl")
    code = ("import pathlib, sys, time, pandas as pd\nfrom seal_kit.review import Review\n"
            "run, r = sys.argv[1], int(sys.argv[2])\n"
            "c = pd.read_pickle(run + '/candidates.pkl')\nreview = Review(c[c['round'] == r], run)\n"
            "pathlib.Path(run, f'ready{r}').touch()\n"  # both start clicking at the same time
            "while not all(pathlib.Path(run, f'ready{i}').exists() for i in (0, 1)):\n    time.sleep(0.01)\n"
            "for _ in range(len(review.view)):\n"
            "    review.accept() if r == 0 else review.reject()\n"
            "    review.next_button.click()\n")
    workers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(r)], stderr=subprocess.PIPE,
                                text=True) for r in (0, 1)]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stderr.read()
    decisions = {k: d["decision"] for k, d in saved(tmp_path).items()}
    assert decisions == {(r, f"c{n}", 0): "accept" if r == 0 else "reject" for r in (0, 1) for n in range(60)}


# Read-only browsing: the paper's judged self-edits, one row per (prompt, round, passage), as evidence.review_table
def card(prompt, rnd, c, reward, baseline):
    return {"prompt": prompt, "round": rnd, "context_id": c, "sample": 0, "title": f"Title {c}",
            "context": f"Passage {c} <b>", "self_edit": f"edit {prompt}-{rnd}-{c}", "reward": reward,
            "baseline": baseline, "gain": reward - baseline,
            "questions": [{"question": f"Who is {c}?", "answer": "Ada <A>", "before": "Bob", "after": "Ada",
                           "before_correct": False, "after_correct": True, "before_score": 0.125,
                           "after_score": 0.875}]}


@pytest.fixture
def cards():
    return pd.DataFrame([card("rewrite", "base", "c0", 0.5, 0.25), card("rewrite", "iter2", "c0", 1.0, 0.25),
                         card("self-qa", "base", "c0", 0.0, 0.5), card("self-qa", "iter2", "c1", 0.75, 0.5)])


def which(frame):
    return list(zip(frame["prompt"], frame["round"], frame["context_id"]))


def test_read_only_browsing_writes_nothing_and_has_no_decision_buttons(cards, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    review = Review(cards, read_only=True)
    for method, args in ((review.accept, ()), (review.reject, ()), (review.clear, ()), (review.save_text, ("x",)),
                         (review.set_note, ("x",)), (review.export, ())):
        with pytest.raises(RuntimeError, match="read-only"):
            method(*args)
    review.next_button.click()
    review.prompt_filter.value = "self-qa"
    assert list(tmp_path.iterdir()) == []  # no decisions file, no export, anywhere
    assert review.run_dir is None and not hasattr(review, "accept_button") and not hasattr(review, "text")
    buttons = [w.description for w in review.widget.children[2].children if hasattr(w, "on_click")]
    assert buttons == ["◀ prev", "next ▶"]
    assert len(review.table) == 4  # every row kept: no train/eval split to drop
    with pytest.raises(ValueError, match=r"lacks columns \['self_edit'\]"):
        Review(cards.drop(columns="self_edit"), read_only=True)
    with pytest.raises(ValueError, match="read_only=True"):
        Review(cards)  # deciding needs a run directory to save the decisions in


def test_read_only_card_shows_passage_edit_and_the_questions_with_both_answers_and_verdicts(cards):
    review = Review(cards, read_only=True)
    assert which(review.view)[0] == ("rewrite", "iter2", "c0") and review.sort.value == "gain ↓"  # best gain first
    html = review.info.value
    assert "rewrite · iter2 · passage c0 · sample 0 · Title c0" in html
    assert "Passage c0 &lt;b&gt;" in html and "edit rewrite-iter2-c0" in html and "<b>" not in html.replace("<b>rewrite", "")
    assert "reward 1.000 · baseline 0.250 · gain +0.750" in html
    assert "questions (1)" in html and "Ada &lt;A&gt;" in html
    header = re.findall(r"<th[^>]*>([^<]*)</th>", html)
    assert header == ["question", "gold", "before", "GPT-4.1", "grader", "after", "GPT-4.1", "grader"]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", html)
    assert cells == ["Who is c0?", "Ada &lt;A&gt;", "Bob", "✗", "0.12", "Ada", "✓", "0.88"]
    without = Review(cards.assign(questions=[[{k: q[k] for k in ("question", "answer", "before", "after")}
                                              for q in qs] for qs in cards.questions]), read_only=True)
    assert re.findall(r"<th[^>]*>([^<]*)</th>", without.info.value) == ["question", "gold", "before", "after"]
    assert "questions" not in Review(cards.drop(columns="questions"), read_only=True).info.value


def test_read_only_filters_by_prompt_and_round_and_sorts_by_gain(cards):
    review = Review(cards, read_only=True)
    assert [o[0] for o in review.prompt_filter.options] == ["all", "rewrite", "self-qa"]
    assert [o[0] for o in review.round_filter.options] == ["all", "base", "iter2"]
    assert review.status_filter is None  # the table has no status column
    review.prompt_filter.value = "self-qa"
    assert which(review.view) == [("self-qa", "iter2", "c1"), ("self-qa", "base", "c0")]
    review.round_filter.value = "base"
    assert which(review.view) == [("self-qa", "base", "c0")] and review.position.value == "1 / 1"
    review.prompt_filter.value = "all"
    assert which(review.view) == [("rewrite", "base", "c0"), ("self-qa", "base", "c0")]  # gains +0.25, -0.5
    review.round_filter.value = "all"
    review.sort.value = "gain ↑"
    assert which(review.view)[0] == ("self-qa", "base", "c0")
    review.min_reward.value = 0.7
    assert which(review.view) == [("self-qa", "iter2", "c1"), ("rewrite", "iter2", "c0")]
    review.min_reward.value = review.min_reward.min
    review.context_filter.value = "c1"
    assert which(review.view) == [("self-qa", "iter2", "c1")]
    review.context_filter.value = "all"
    review.prompt_filter.value, review.round_filter.value = "rewrite", "base"
    review.context_filter.value = "c1"
    assert review.view.empty and EMPTY_VIEW in review.info.value and review.position.value == "0 / 0"


def test_read_only_pages_list_prompt_round_and_gain(cards):
    review = Review(cards, read_only=True, page_size=4)
    assert "▶ rewrite iter2 c0 #0 · gain +0.75" in review.info.value and review.info.value.count("<li>") == 4


def test_a_strategys_stages_are_shown_under_its_edit(candidates, tmp_path):
    stages = [{"stage": "entities", "pass": 0, "item": None, "prompt": "p", "output": "Pellin Harbour\nSorrel <Sea>"},
              {"stage": "relations", "pass": 1, "item": "Pellin Harbour and Sorrel Sea", "prompt": "q",
               "output": "The harbour lies on the sea."}]
    staged = candidates.assign(stages=[stages] + [[]] * (len(candidates) - 1), reason="")
    for review in (Review(staged, tmp_path), Review(staged, read_only=True)):
        pages = []
        for _ in range(len(review.view)):
            pages.append(review.info.value)
            review._step(1)
        html = next(page for page in pages if "written in 2 generations" in page)
        assert "<b>entities</b>" in html and "Sorrel &lt;Sea&gt;" in html
        assert "<b>relations</b> (pass 2) · Pellin Harbour and Sorrel Sea" in html
        assert sum("generations" in page for page in pages) == 1  # a one-prompt edit shows no stages
