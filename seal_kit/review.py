"""Review: a person accepts, rejects or rewrites each sampled self-edit; the kept ones train the generator.

    from seal_kit.review import Review
    review = Review(loop.candidates(r), run.path)   # eval rows dropped; earlier decisions reloaded
    display(review)                                  # filter, sort, page; accept / reject / edit / note
    review.accept(); review.save_text("A shorter implication."); review.set_note("too vague")  # as the buttons do
    review.export()                                  # run.path / "curated[-round-<r>].jsonl": prompt -> completion pairs

    Review(cards, read_only=True)                    # browse only: no buttons, no run directory, nothing written

Every change is written at once to `run.path / review_decisions.json` (its records: `seal_kit.selection`),
so a kernel restart (or another Review on the same run) sees the same decisions, and the outer loop's
"human" selection keeps what was accepted (`selection.curated`). Nothing here waits for a click:
buttons only call the methods above.

`read_only=True` browses any table of self-edits with `context_id`, `self_edit` and `context` columns (the
paper's judged edits: `seal_kit.knowledge.evidence.review_table`), every row kept. Filters appear for the columns
it has: `prompt` (a prompt's name), `round`, `status`, a minimum `reward`; sorts by `gain` and `reward`
where present. A row's `questions` (a list of dicts: question, gold `answer`, the answers `before` and
`after` training, `before_correct` / `after_correct` verdicts, `before_score` / `after_score` grader
scores; whichever it holds) show as a table under the edit.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import ipywidgets as widgets
import pandas as pd
from filelock import FileLock

from .storage import atomic_write
from .selection import DECISION_COLUMNS, DECISIONS, KEY, accepted, decision_records, load_decisions, with_decisions

CURATED = "curated.jsonl"
# status filter choices that look at the reviewer's decision rather than the scorer's status
BY_DECISION = {"undecided": "", "accepted": "accept", "rejected": "reject"}
SORTS = {"reward ↓": ("reward", False), "reward ↑": ("reward", True), "gain ↓": ("gain", False),
         "gain ↑": ("gain", True), "passage": ("context_id", True)}
EMPTY_VIEW = "no self-edits match these filters"
BROWSE_REQUIRED = ("context_id", "self_edit", "context")  # what a read-only review needs
# a question's fields as the card's table shows them (column title, how a value is written)
QUESTION_COLUMNS = {"question": ("question", str), "answer": ("gold", str), "before": ("before", str),
                    "before_correct": ("GPT-4.1", lambda v: "✓" if v else "✗"),
                    "before_score": ("grader", lambda v: f"{v:.2f}"), "after": ("after", str),
                    "after_correct": ("GPT-4.1", lambda v: "✓" if v else "✗"),
                    "after_score": ("grader", lambda v: f"{v:.2f}")}


def _choices(values: pd.Series) -> list:
    """A filter's options: "all", then each value once in order (rounds 0, 1, ... or "base", "iter2")."""
    return [("all", "all"), *((str(v), v) for v in sorted(pd.unique(values.dropna()).tolist()))]


class Review:
    """The review widget over one table of candidates; `table` is its state, `widget` what is shown.
    `read_only=True` only browses: no decision buttons, no run directory, nothing written."""

    def __init__(self, candidates: pd.DataFrame, run_dir=None, page_size: int = 1, read_only: bool = False):
        if page_size < 1:
            raise ValueError(f"page_size must be a positive number of candidates per page, got {page_size!r}")
        self.read_only, self.page_size = read_only, page_size
        if read_only:
            if missing := [c for c in BROWSE_REQUIRED if c not in candidates.columns]:
                raise ValueError(f"a read-only review's table lacks columns {missing}; it needs {list(BROWSE_REQUIRED)}")
            self.run_dir = self.path = None
            self.table = candidates.reset_index(drop=True)  # every row: nothing here trains on them
        else:
            if run_dir is None:
                raise ValueError("Review needs the run directory its decisions are saved in (run.path); "
                                 "pass read_only=True to browse a table without deciding anything")
            self.run_dir = Path(run_dir)
            self.path = self.run_dir / DECISIONS
            self.table = with_decisions(candidates, load_decisions(self.run_dir))
        self._pos = 0
        t = self.table
        has = set(t.columns)
        # Filters for the columns the table has (a candidates table has them all but prompt's name).
        self.prompt_filter = widgets.Dropdown(description="prompt", options=_choices(t["prompt"])) \
            if read_only and "prompt" in has else None
        self.round_filter = widgets.Dropdown(description="round", options=_choices(t["round"])) \
            if "round" in has else None
        self.status_filter = widgets.Dropdown(description="status", options=[
            "all", *sorted({*t["status"]}), *([] if read_only else BY_DECISION)]) if "status" in has else None
        self.context_filter = widgets.Dropdown(description="passage", options=["all", *sorted({*t["context_id"]})])
        self.min_reward = None
        if "reward" in has:
            rewards = t["reward"].dropna().tolist()
            low = min([0.0, *rewards])
            self.min_reward = widgets.FloatSlider(description="min reward", min=low, max=max([1.0, *rewards]),
                                                  value=low, step=0.05)
        sorts = [name for name, (column, _) in SORTS.items() if column in has]  # "passage" always
        if read_only:  # browsing asks first which edits helped most
            sorts.sort(key=lambda name: SORTS[name][0] != "gain")
        self.sort = widgets.Dropdown(description="sort", options=sorts)
        self.prev_button, self.next_button = widgets.Button(description="◀ prev"), widgets.Button(description="next ▶")
        self.position = widgets.Label()
        self.info = widgets.HTML()
        filters = [self.prompt_filter, self.round_filter, self.status_filter, self.context_filter, self.min_reward,
                   self.sort]
        for control in filter(None, filters):
            control.observe(self._refilter, names="value")
        self.prev_button.on_click(lambda _: self._step(-1))
        self.next_button.on_click(lambda _: self._step(+1))
        navigation = widgets.HBox([self.prev_button, self.position, self.next_button])
        if read_only:
            self.widget = widgets.VBox([widgets.HBox(list(filter(None, filters[:4]))),
                                        widgets.HBox(list(filter(None, filters[4:]))), navigation, self.info])
            self._show()
            return
        self.text = widgets.Textarea(description="self-edit", rows=8, layout=widgets.Layout(width="100%"))
        self.note = widgets.Text(description="note", layout=widgets.Layout(width="100%"))
        self.accept_button = widgets.Button(description="accept", button_style="success")
        self.reject_button = widgets.Button(description="reject", button_style="danger")
        self.clear_button = widgets.Button(description="undo decision")
        self.save_text_button = widgets.Button(description="save text & note")
        self.export_button = widgets.Button(description="export accepted")
        self.message = widgets.Label()
        self.accept_button.on_click(lambda _: self.accept())
        self.reject_button.on_click(lambda _: self.reject())
        self.clear_button.on_click(lambda _: self.clear())
        # One button for both fields, so typing a note and then saving the text does not drop the note.
        self.save_text_button.on_click(lambda _: self._update(text=self.text.value, note=self.note.value))
        self.export_button.on_click(lambda _: self.export())
        self.widget = widgets.VBox([
            widgets.HBox([self.round_filter, self.status_filter, self.context_filter]),
            widgets.HBox([self.min_reward, self.sort]),
            navigation, self.info, self.text, self.note,
            widgets.HBox([self.accept_button, self.reject_button, self.clear_button, self.save_text_button,
                          self.export_button]),
            self.message])
        self._show()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    @property
    def view(self) -> pd.DataFrame:
        t = self.table
        keep = pd.Series(True, index=t.index)
        for control, column in ((self.prompt_filter, "prompt"), (self.round_filter, "round"),
                                (self.context_filter, "context_id")):
            if control is not None and control.value != "all":
                keep &= t[column] == control.value
        status = self.status_filter.value if self.status_filter is not None else "all"
        if status in BY_DECISION and not self.read_only:
            keep &= t["decision"] == BY_DECISION[status]
        elif status != "all":
            keep &= t["status"] == status
        # At its lowest the slider filters nothing, so candidates without a reward stay visible.
        if self.min_reward is not None and self.min_reward.value > self.min_reward.min:
            keep &= t["reward"] >= self.min_reward.value
        ties = [k for k in ("prompt", *KEY) if k in t.columns] if self.read_only else KEY
        column, ascending = SORTS[self.sort.value]
        by = [column, *(k for k in ties if k != column)]
        return t[keep].sort_values(by, ascending=[ascending] + [True] * (len(by) - 1), kind="stable")

    @property
    def current(self) -> pd.Series | None:
        view = self.view
        return view.iloc[self._pos] if len(view) else None

    def accept(self) -> None:
        """Accept the shown edit, with whatever text and note the boxes hold (typed but unsaved included)."""
        self._writable()
        self._update(decision="accept", text=self.text.value, note=self.note.value)

    def reject(self) -> None:
        self._writable()
        self._update(decision="reject", text=self.text.value, note=self.note.value)

    def clear(self) -> None:
        self._update(decision="")

    def save_text(self, text: str | None = None) -> None:
        """Store `text` (default: what the text box holds) as the edited self-edit."""
        self._writable()
        self._update(text=self.text.value if text is None else text)

    def set_note(self, note: str) -> None:
        self._update(note=note)

    def _writable(self) -> None:
        if self.read_only:
            raise RuntimeError("this review is read-only (read_only=True): it shows self-edits but records no "
                               "decision, text or note; open Review(candidates, run.path) to decide")

    def export(self, path=None) -> Path:
        """The accepted self-edits as SFT pairs, one JSON object a line. By default `curated.jsonl`, or
        `curated-round-<r>.jsonl` when this review holds one round, so reviewing round by round never
        overwrites an earlier round's export."""
        self._writable()
        rounds = sorted({int(r) for r in self.table["round"]})
        default = f"curated-round-{rounds[0]}.jsonl" if len(rounds) == 1 else CURATED
        target = self.run_dir / default if path is None else Path(path)
        kept = accepted(self.table, None)
        lines = [json.dumps({"prompt": r["prompt"], "completion": r["self_edit"], "context_id": r["context_id"],
                             "round": int(r["round"]), "sample": int(r["sample"]), "reward": float(r["reward"]),
                             "gain": float(r["gain"]), "edited": bool(r["edited"]), "note": r["note"]},
                            ensure_ascii=False) + "\n" for r in kept.to_dict("records")]
        atomic_write(target, "".join(lines))
        self.message.value = f"wrote {len(lines)} accepted self-edits to {target.name}"
        return target

    def _update(self, **fields) -> None:
        self._writable()
        row = self.current
        if row is None:
            return
        if "text" in fields and fields["text"] == row["self_edit"]:
            fields["text"] = None  # saving the original is not an edit: `edited` stays False downstream
        i = row.name
        for column, value in {**fields, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}.items():
            self.table.at[i, column] = value
        key = (int(row["round"]), str(row["context_id"]), int(row["sample"]))
        # Re-read the file so decisions on candidates outside this table (other rounds, another open review of
        # the same run) are kept; the lock makes two reviews' read-modify-write one after the other.
        with FileLock(str(self.path.parent / f".{self.path.name}.lock"), timeout=30):
            records = decision_records(self.path)
            records[key] = {"round": key[0], "context_id": key[1], "sample": key[2],
                            **{c: self.table.at[i, c] for c in DECISION_COLUMNS[3:]}}
            atomic_write(self.path, json.dumps([records[k] for k in sorted(records)], indent=1,
                                               ensure_ascii=False) + "\n")
        self._show()

    def _refilter(self, _change) -> None:
        self._pos = 0
        self._show()

    def _step(self, by: int) -> None:
        self._pos = max(0, min(self._pos + by, len(self.view) - 1))
        self._show()

    def _show(self) -> None:
        view = self.view
        self._pos = max(0, min(self._pos, len(view) - 1))
        self.position.value = f"{self._pos + 1 if len(view) else 0} / {len(view)}"
        if self.read_only:
            self.info.value = self._page(view) + _card(view.iloc[self._pos], True) if len(view) else f"<b>{EMPTY_VIEW}</b>"
            return
        for button in (self.accept_button, self.reject_button, self.clear_button, self.save_text_button):
            button.disabled = view.empty
        if view.empty:
            self.info.value, self.text.value, self.note.value = f"<b>{EMPTY_VIEW}</b>", "", ""
            return
        row = view.iloc[self._pos]
        self.text.value = row["text"] if isinstance(row["text"], str) else row["self_edit"]
        self.note.value = row["note"]
        self.info.value = self._page(view) + _card(row)

    def _page(self, view: pd.DataFrame) -> str:
        """With page_size > 1, the current candidate's neighbours as one-line summaries."""
        if self.page_size == 1:
            return ""
        start = self._pos // self.page_size * self.page_size
        lines = [f"<li>{'▶ ' if start + n == self._pos else ''}{_line(r, self.read_only)}</li>"
                 for n, r in enumerate(view.iloc[start:start + self.page_size].to_dict("records"))]
        return f"<ol start='{start + 1}'>{''.join(lines)}</ol><hr>"


def _line(r: dict, read_only: bool) -> str:
    """One candidate in a line: which it is, its reward (a read-only table's gain) and its decision, its start."""
    if not read_only:
        return (f"{escape(str(r['context_id']))} #{r['sample']} · reward {r['reward']:.2f} · "
                f"{r['decision'] or 'undecided'} · {escape(str(r['self_edit'])[:80])}")
    which = " ".join(escape(str(r[k])) for k in ("prompt", "round", "context_id") if k in r)
    sample = f" #{r['sample']}" if "sample" in r else ""
    gain = f" · gain {r['gain']:+.2f}" if "gain" in r else ""
    return f"{which}{sample}{gain} · {escape(str(r['self_edit'])[:80])}"


def _questions(questions) -> str:
    """The questions of a card as a table: question, gold, each answer beside its verdict and score."""
    if not isinstance(questions, (list, tuple)) or not questions:
        return ""
    fields = [f for f in QUESTION_COLUMNS if any(f in q for q in questions)]
    head = "".join(f"<th style='text-align:left'>{QUESTION_COLUMNS[f][0]}</th>" for f in fields)
    body = "".join("<tr>" + "".join(
        f"<td style='text-align:left;vertical-align:top'>"
        f"{escape(QUESTION_COLUMNS[f][1](q[f])) if q.get(f) is not None else '–'}</td>" for f in fields) + "</tr>"
        for q in questions)
    return f"<div>questions ({len(questions)}), asked without the passage:</div><table><tr>{head}</tr>{body}</table>"


def _stages(row: pd.Series) -> str:
    """A strategy's stages (`seal_kit.strategies`): each generation's stage, pass and item, and what it wrote."""
    stages = row["stages"] if "stages" in row.index else None
    if stages is None or isinstance(stages, float) or len(stages) == 0:
        return ""
    why = f" · empty: {escape(str(row['reason']))}" if "reason" in row.index and row["reason"] else ""
    items = []
    for s in stages:
        where = (f" (pass {int(s['pass']) + 1})" if s.get("pass") else "") + (
            f" · {escape(str(s['item']))}" if s.get("item") else "")
        items.append(f"<li><b>{escape(str(s['stage']))}</b>{where}<pre style='white-space:pre-wrap'>"
                     f"{escape(str(s['output']))}</pre></li>")
    return f"<div>written in {len(stages)} generations{why}:</div><ol>{''.join(items)}</ol>"


def _card(row: pd.Series, read_only: bool = False) -> str:
    pre = "<pre style='white-space:pre-wrap'>"
    has = set(row.index)
    questions = _stages(row) + (_questions(row["questions"]) if "questions" in has else "")
    if read_only:
        which = " · ".join([*(escape(str(row[k])) for k in ("prompt", "round") if k in has),
                            f"passage {escape(str(row['context_id']))}",
                            *([f"sample {row['sample']}"] if "sample" in has else []),
                            *([escape(str(row["title"]))] if "title" in has else [])])
        numbers = " · ".join(f"{k} {row[k]:{'+.3f' if k == 'gain' else '.3f'}}"
                             for k in ("reward", "baseline", "gain") if k in has)
        documents = ("".join(f"<li>{pre}{escape(str(d))}</pre></li>" for d in row["documents"])
                     if "documents" in has else "")
        return (f"<b>{which}</b><div>passage:</div>{pre}{escape(str(row['context']))}</pre>"
                f"<div>self-edit:</div>{pre}{escape(str(row['self_edit']))}</pre>"
                + (f"<div>{numbers}</div>" if numbers else "")
                + (f"<div>training documents ({len(row['documents'])}):</div><ol>{documents}</ol>" if documents else "")
                + questions)
    documents = "".join(f"<li>{pre}{escape(str(d))}</pre></li>" for d in row["documents"])
    edited = " (text edited)" if isinstance(row["text"], str) else ""
    return (f"<b>round {row['round']} · passage {escape(str(row['context_id']))} · sample {row['sample']}</b>"
            f"{pre}{escape(str(row['context']))}</pre>"
            f"<div>reward {row['reward']:.3f} · baseline {row['baseline']:.3f} · gain {row['gain']:+.3f} · "
            f"status {escape(str(row['status']))} · decision <b>{row['decision'] or 'undecided'}</b>{edited}</div>"
            f"<div>training documents ({len(row['documents'])}):</div><ol>{documents}</ol>{questions}")
