"""Self-edit strategies: how a self-edit is written, as a small pipeline of generation stages.

    from seal_kit.strategies import Budget, Stage, Strategy, generate_self_edits, strategy_for
    edits = generate_self_edits(model, tokenizer, passages, "entigraph", SamplingConfig(k=2), budget=Budget(tokens=256))
    edits.stages[0]        # every generation that made the first self-edit: stage, pass, item, prompt, output
    mine = Strategy("qa-then-notes", (Stage("questions", ("List five questions about {title}:\n{context}\n",)),
                                      Stage("notes", ("Answer from the passage: {item}\n{context}\n",), each="questions")))
    strategy_for("my_strategy.yaml")                  # the same as YAML (docs/strategies.md)

SEAL samples one prompt once: its five prompts are one-stage strategies here, and with no budget they write
exactly what `self_edit.sample_self_edits` always wrote. The follow-up literature writes training text in
several steps, and `STRATEGIES` holds four of them in our words (the facts from the papers):
- `spa`: seven templates drawn from how people learn (key concepts, mind map, implications, critical
  questions, case study, discussion, teacher's explanation), applied to the passage again and again
  (SPA, arXiv 2603.22213); each pass writes `max_items` of the seven, rotating;
- `active-reading`: the model first lists study strategies for the passage, then applies each (Active
  Reading, arXiv 2508.09494);
- `entigraph`: the model lists the passage's entities, then writes how pairs of them relate (EntiGraph,
  synthetic continued pretraining, Yang et al. 2024);
- `model-proposed`: the model proposes the instruction, then follows it (search over self-edit strategies,
  arXiv 2601.14532).

A stage's template fills `{title}`, `{context}`, `{item}` (with `each`: one generation per line its earlier
stage listed, or per pair of them with `pairs`, at most `max_items` a pass) and any earlier stage's name
(its whole output). The self-edit is the final stage's outputs, one block each (`---` between), so the
kit's splitting makes them training documents as it does any self-edit. A stage that yields nothing ends
that self-edit early: it is empty, and `reason` says which stage gave nothing (the inner loop then trains on
the passage alone, status "empty_edit", as for any empty edit).

A `Budget` makes strategies comparable: the training text a self-edit gives is cut to `tokens` (its pieces
in order, the last one cut mid-way) or `documents`, and a self-edit under the budget is written again (a new
pass, new seeds) and appended, up to `passes` passes. `edit_tokens` is what it trains on; `tokens` and
`seconds` what writing it cost, every stage and pass counted.
"""
from __future__ import annotations

import itertools
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import yaml

from .prompts import SELF_EDIT_PROMPTS, SPA_PROMPTS, STAGE_PROMPTS, Context, render, template_for
from .self_edit import DocumentConfig, SamplingConfig, sample_self_edits, split_self_edit

MIN_DOCUMENT_TOKENS = 16  # a token budget below this cannot hold one document (a title and one statement)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ITEM = re.compile(r"^\s*(?:[-*\u2022>#]+|\d+[.)]|[a-z][.)])\s*|\*\*", re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    """Training text per self-edit: `tokens` (of the model's tokenizer) or `documents` (the kit's pieces), one of
    them; `passes`: how many times the strategy may write again to reach it."""
    tokens: int | None = None
    documents: int | None = None
    passes: int = 4

    def __post_init__(self):
        if (self.tokens is None) == (self.documents is None):
            raise ValueError(f"Budget takes tokens or documents, one of them; got tokens={self.tokens!r}, "
                             f"documents={self.documents!r}")
        if self.documents is not None and self.documents < 1:
            raise ValueError(f"budget of {self.documents} documents is below one document: give documents >= 1")
        if self.tokens is not None and self.tokens < MIN_DOCUMENT_TOKENS:
            raise ValueError(f"budget of {self.tokens} tokens is below one document: a document is a title and a "
                             f"statement, give tokens >= {MIN_DOCUMENT_TOKENS}")
        if self.passes < 1:
            raise ValueError(f"Budget.passes must be >= 1, got {self.passes}")

    @classmethod
    def parse(cls, value, name: str = "BUDGET") -> "Budget | None":
        """None, a Budget, a number of tokens, or text: "384 tokens", "12 documents" (an error names `name`)."""
        if value is None or isinstance(value, Budget):
            return value
        match = re.fullmatch(r"\s*(-?\d+)\s*(tokens?|documents?|docs?)?\s*", str(value))
        if isinstance(value, bool) or not match:
            raise ValueError(f"{name} {value!r}: give a number of tokens (384), \"384 tokens\" or \"12 documents\"")
        n, unit = int(match[1]), (match[2] or "tokens")
        try:
            return cls(tokens=n) if unit.startswith("token") else cls(documents=n)
        except ValueError as err:
            raise ValueError(f"{name} {value!r}: {err}") from None


@dataclass(frozen=True)
class Stage:
    name: str
    templates: tuple[str, ...]
    each: str | None = None          # an earlier stage whose listed lines are this stage's items
    pairs: bool = False              # items two at a time ("A and B"), as EntiGraph relates entities
    max_items: int | None = None     # generations per pass at most (templates x items), rotating over passes
    max_new_tokens: int | None = None  # this stage's longest output (None: the sampling config's)

    def __post_init__(self):
        object.__setattr__(self, "templates", (self.templates,) if isinstance(self.templates, str)
                           else tuple(self.templates))
        if not _NAME.match(self.name):
            raise ValueError(f"stage name {self.name!r}: lower-case letters, digits and _ (it is a template field)")
        if not self.templates:
            raise ValueError(f"stage {self.name!r} has no template")
        if self.pairs and not self.each:
            raise ValueError(f"stage {self.name!r}: pairs needs `each`, the stage whose items it pairs")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"stage {self.name!r}: max_items must be >= 1, got {self.max_items}")

    def work(self, outputs: dict, sample: int, pass_: int) -> list[tuple[str, str | None]]:
        """(template, item) pairs this stage generates for one self-edit on one pass."""
        items: list = [None]
        if self.each:
            listed = list_items(outputs[self.each])
            items = [" and ".join(p) for p in itertools.combinations(listed, 2)] if self.pairs else listed
        work = [(t, i) for i in items for t in self.templates]
        if self.max_items and len(work) > self.max_items:
            start = (sample + pass_) * self.max_items % len(work)
            work = (work[start:] + work[:start])[:self.max_items]
        return work


def list_items(text: str) -> list[str]:
    """The items a stage listed: its lines without bullets or numbering, headings and repeats left out; a list
    written on one line ("Velmora Island, Pellin Harbour, 1622") is split at its commas."""
    lines = [_ITEM.sub("", line).strip().strip("*").strip() for line in (text or "").splitlines()]
    lines = [line for line in lines if line and not line.endswith(":")]
    if len(lines) == 1 and "," in lines[0]:
        lines = [part.strip(" .") for part in lines[0].split(",")]
    return list(dict.fromkeys(line for line in lines if line and len(line) <= 200))


@dataclass(frozen=True)
class Strategy:
    """Stages run in order; the self-edit is the final stage's outputs. `budget`: see the module docstring."""
    name: str
    stages: tuple[Stage, ...]
    budget: Budget | None = None
    about: str = ""

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise ValueError(f"strategy {self.name!r} has no stage")
        seen: list[str] = []
        for stage in self.stages:
            if stage.name in seen:
                raise ValueError(f"strategy {self.name!r}: two stages are named {stage.name!r}")
            if stage.each and stage.each not in seen:
                raise ValueError(f"strategy {self.name!r}, stage {stage.name!r}: each={stage.each!r} is not an "
                                 f"earlier stage (earlier: {seen or 'none'})")
            known = {"title", "context", *seen, *(["item"] if stage.each else [])}
            for template in stage.templates:
                try:
                    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
                except ValueError as err:
                    raise ValueError(f"strategy {self.name!r}, stage {stage.name!r}: {err}; write a literal brace as "
                                     "{{ or }}") from None
                if unknown := sorted(fields - known):
                    raise ValueError(f"strategy {self.name!r}, stage {stage.name!r}: unknown field(s) {unknown}; "
                                     f"this stage can fill {sorted(known)}")
            seen.append(stage.name)

    @property
    def plain(self) -> bool:
        """One prompt sampled once, no budget: SEAL's own way (written exactly as before strategies existed)."""
        (first, *rest) = self.stages
        return not rest and len(first.templates) == 1 and not first.each and self.budget is None

    @classmethod
    def from_dict(cls, spec: dict, where: str = "strategy") -> "Strategy":
        if unknown := sorted(set(spec) - {"name", "stages", "budget", "about"}):
            raise ValueError(f"{where}: unknown key(s) {unknown}; a strategy has name, stages, budget and about")
        stages = []
        for n, stage in enumerate(spec.get("stages") or []):
            keys = {"name", "template", "templates", "each", "pairs", "max_items", "max_new_tokens"}
            if not isinstance(stage, dict) or set(stage) - keys:
                raise ValueError(f"{where}, stage {n + 1}: a stage is a mapping of {sorted(keys)}; got {stage!r}")
            templates = stage.get("templates") or stage.get("template") or ()
            stages.append(Stage(**{k: v for k, v in stage.items() if k not in ("template", "templates")},
                                templates=templates))
        return cls(spec.get("name") or where, tuple(stages), Budget.parse(spec.get("budget"), f"{where}: budget"),
                   spec.get("about", ""))

    def write(self, model, tokenizer, rows: list[dict], contexts: list[Context], config: SamplingConfig,
              render_prompt: Callable[[str], str] | None = None, progress: bool = True, desc: str = "self-edits",
              adapter: str | None = None) -> pd.DataFrame:
        """One self-edit per row (rows[n] about contexts[n]; each a dict with `sample`): the rows come back with
        prompt, self_edit, tokens, seconds, edit_tokens, passes, stages and reason added."""
        render_prompt = render_prompt or (lambda text: text)
        state = [{"blocks": [], "stages": [], "tokens": 0, "seconds": 0.0, "reason": "", "passes": 0} for _ in rows]
        todo = list(range(len(rows)))
        for pass_ in range(self.budget.passes if self.budget else 1):
            self._pass(model, tokenizer, [(n, rows[n], contexts[n]) for n in todo], state, config, render_prompt,
                       pass_, progress, desc, adapter)
            todo = [n for n in todo if not state[n]["ended"] and self._room(tokenizer, state[n]["blocks"])]
            if not todo:
                break
        out = []
        for row, context, s in zip(rows, contexts, state):
            text, edit_tokens = self.fit(tokenizer, "\n---\n".join(s["blocks"]))
            reason = "" if text.strip() else (s["reason"] or "the final stage wrote nothing")
            first = s["stages"][0]["prompt"] if s["stages"] else render_prompt(self._fill(
                self.stages[0].templates[0], context, {}, None))
            out.append({**row, "prompt": first, "self_edit": text, "tokens": s["tokens"], "seconds": s["seconds"],
                        "edit_tokens": edit_tokens, "passes": s["passes"], "strategy": self.name,
                        "stages": s["stages"], "reason": reason})
        return pd.DataFrame(out)

    @staticmethod
    def _fill(template: str, context: Context, outputs: dict, item: str | None) -> str:
        return template.format(title=context.title, context=context.context, **outputs,
                               **({"item": item} if item is not None else {}))

    def _pass(self, model, tokenizer, todo, state, config, render_prompt, pass_, progress, desc, adapter) -> None:
        """Every stage once for the self-edits in `todo`, each stage's generations in one batched call."""
        outputs: dict[int, dict] = {n: {} for n, _, _ in todo}
        alive = list(todo)
        for s, stage in enumerate(self.stages):
            requests = []
            for n, row, context in alive:
                work = stage.work(outputs[n], int(row.get("sample", 0)), pass_)
                if not work:
                    state[n]["reason"] = state[n]["reason"] or (
                        f"stage {stage.name!r} had nothing to work on: stage {stage.each!r} listed "
                        f"{'fewer than two items' if stage.pairs else 'no items'}")
                requests += [(n, item, render_prompt(self._fill(t, context, outputs[n], item))) for t, item in work]
            sampling = replace(config, seed=config.seed + 7919 * s + 104729 * pass_,
                               max_new_tokens=stage.max_new_tokens or config.max_new_tokens)
            written = sample_self_edits(model, tokenizer, [{"prompt": p} for _, _, p in requests], sampling, progress,
                                        desc=f"{desc}: {stage.name}" + (f" (pass {pass_ + 1})" if pass_ else ""),
                                        adapter=adapter) if requests else pd.DataFrame()
            texts: dict[int, list[str]] = {}
            for (n, item, prompt), w in zip(requests, written.to_dict("records")):
                state[n]["stages"].append({"stage": stage.name, "pass": pass_, "item": item, "prompt": prompt,
                                           "output": w["self_edit"], "tokens": int(w["tokens"]),
                                           "seconds": float(w["seconds"])})
                state[n]["tokens"] += int(w["tokens"])
                state[n]["seconds"] += float(w["seconds"])
                texts.setdefault(n, []).append(w["self_edit"].strip())
            still = []
            for n, row, context in alive:
                written_here = [t for t in texts.get(n, []) if t]
                if not written_here:
                    state[n]["reason"] = state[n]["reason"] or f"stage {stage.name!r} wrote nothing"
                    continue
                outputs[n][stage.name] = "\n".join(written_here)
                if s == len(self.stages) - 1:
                    state[n]["blocks"] += written_here
                still.append((n, row, context))
            alive = still
        for n, _, _ in todo:
            state[n]["passes"] = pass_ + 1
            state[n]["ended"] = not state[n]["blocks"]  # nothing at all yet: another pass would not be fair game
            if not state[n]["ended"]:
                state[n]["reason"] = ""

    def _room(self, tokenizer, blocks: list[str]) -> bool:
        """Whether the text written so far is under the budget (a pass more may be written)."""
        if self.budget is None:
            return False
        text = "\n---\n".join(blocks)
        if self.budget.documents is not None:
            return len(split_self_edit(text, DocumentConfig())) < self.budget.documents
        return training_tokens(tokenizer, text) < self.budget.tokens

    def fit(self, tokenizer, text: str) -> tuple[str, int]:
        """The self-edit cut to the budget, and its training tokens (the kit's pieces, without titles)."""
        if self.budget is None:
            return text, training_tokens(tokenizer, text)
        pieces = split_self_edit(text, DocumentConfig())
        if self.budget.documents is not None:
            kept = pieces[:self.budget.documents]
            return ("\n".join(kept) if len(pieces) > len(kept) else text), sum(_count(tokenizer, p) for p in kept)
        kept, used = [], 0
        for piece in pieces:
            ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
            room = self.budget.tokens - used
            if len(ids) > room:
                if room >= 4:  # a stub of a few tokens teaches nothing
                    kept.append(tokenizer.decode(ids[:room]).strip())
                    used += room
                return "\n".join(kept), used
            kept.append(piece)
            used += len(ids)
        return text, used


def _count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def training_tokens(tokenizer, self_edit: str) -> int:
    """The tokens a self-edit gives the inner loop to train on: its pieces under the kit's splitting (the title
    each document starts with and the passage document, alike for every strategy, left out)."""
    return sum(_count(tokenizer, p) for p in split_self_edit(self_edit or "", DocumentConfig()))


STRATEGIES = {
    "spa": Strategy("spa", (Stage("study", tuple(SPA_PROMPTS.values()), max_items=2),),
                    about="seven learning templates applied again and again (SPA, arXiv 2603.22213)"),
    "active-reading": Strategy("active-reading", (
        Stage("strategies", STAGE_PROMPTS["active-reading.strategies"], max_new_tokens=96),
        Stage("study", STAGE_PROMPTS["active-reading.study"], each="strategies", max_items=3)),
        about="the model lists study strategies, then applies each (Active Reading, arXiv 2508.09494)"),
    "entigraph": Strategy("entigraph", (
        Stage("entities", STAGE_PROMPTS["entigraph.entities"], max_new_tokens=96),
        Stage("relations", STAGE_PROMPTS["entigraph.relations"], each="entities", pairs=True, max_items=4)),
        about="entities, then texts relating pairs of them (EntiGraph, Yang et al. 2024)"),
    "model-proposed": Strategy("model-proposed", (
        Stage("proposal", STAGE_PROMPTS["model-proposed.proposal"], max_new_tokens=96),
        Stage("material", STAGE_PROMPTS["model-proposed.material"])),
        about="the model proposes the instruction, then follows it (arXiv 2601.14532)"),
}


def strategy_for(prompt: "str | Strategy", layout: str = "kit", budget=None) -> Strategy:
    """PROMPT as a Strategy: a Strategy, a name of STRATEGIES, a .yaml file of stages, or one of SEAL's prompts
    (or a template with {context}) as a one-stage strategy; `budget` (a Budget, tokens, or "N documents")."""
    budget = Budget.parse(budget)
    if isinstance(prompt, Strategy):
        found = prompt
    elif prompt in STRATEGIES:
        found = STRATEGIES[prompt]
    elif str(prompt).endswith((".yaml", ".yml")):
        if not Path(prompt).is_file():
            raise ValueError(f"self-edit strategy file {prompt!r} does not exist")
        found = Strategy.from_dict(yaml.safe_load(Path(prompt).read_text()) or {}, where=str(prompt))
    else:
        try:
            template = template_for(prompt, layout)
        except ValueError:
            raise ValueError(f"Unknown self-edit prompt {prompt!r}: use one of SEAL's prompts {sorted(SELF_EDIT_PROMPTS)}"
                             f", a strategy {sorted(STRATEGIES)}, a .yaml file of stages, or a template of your own "
                             "containing {context} (and optionally {title})") from None
        found = Strategy(prompt if prompt in SELF_EDIT_PROMPTS else "template", (Stage("self_edit", (template,)),))
    return replace(found, budget=budget) if budget is not None else found


def generate_self_edits(model, tokenizer, passages: list[Context], prompt: "str | Strategy" = "implications",
                        config: SamplingConfig | None = None, chat: bool | None = None, progress: bool = True,
                        layout: str = "kit", budget=None) -> pd.DataFrame:
    """K self-edits per passage: one row each (passage_id, title, sample, prompt, self_edit, tokens, seconds; a
    strategy of stages, or any under a budget, adds edit_tokens, passes, strategy, stages and reason)."""
    config = config or SamplingConfig()
    if config.k < 1:
        raise ValueError(f"SamplingConfig.k must be >= 1, got {config.k}")
    strategy = strategy_for(prompt, layout, budget)
    rows = [{"passage_id": p.id, "title": p.title, "sample": s} for p in passages for s in range(config.k)]
    contexts = [p for p in passages for _ in range(config.k)]
    if strategy.plain:  # the prompt as SEAL samples it (self_edit_prompt's text)
        template = strategy.stages[0].templates[0]
        rows = [{**r, "prompt": render(tokenizer, Strategy._fill(template, p, {}, None), chat)}
                for r, p in zip(rows, contexts)]
        return sample_self_edits(model, tokenizer, rows, config, progress)
    return strategy.write(model, tokenizer, rows, contexts, config, lambda text: render(tokenizer, text, chat), progress)


def training_pairs(kept: pd.DataFrame) -> list[tuple[str, str]]:
    """What the generator learns from kept self-edits: every stage's (prompt -> output) of a strategy's edit
    (so it learns to list entities as well as to relate them), or (prompt -> self-edit) of a one-prompt one and
    of one a reviewer rewrote (`edited`: its text is no stage's output)."""
    pairs = []
    for row in kept.to_dict("records"):
        stages = row.get("stages")
        stages = [] if stages is None or isinstance(stages, float) or row.get("edited") is True else list(stages)
        written = [(s["prompt"], s["output"]) for s in stages if str(s["output"]).strip()]
        pairs += written or [(row["prompt"], row["self_edit"])]
    return pairs
