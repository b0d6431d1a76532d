"""Catastrophic forgetting: self-edits applied one after another, every earlier passage re-asked after each.

    from seal_kit.forgetting import ForgettingConfig, sequential_edits
    result = sequential_edits(task, passages, edits, ForgettingConfig(update="merge"))
    result.matrix        # matrix[i][j]: accuracy on passage j after edit i (None for j > i: not yet edited)
    result.retention     # the first passage's accuracy after each edit
    result.table()       # the matrix as a DataFrame

Updates: `merge` folds each edit's adapter into the base weights before the next edit (the paper's);
`stack` keeps training one adapter edit after edit. Mitigations, cheap to compare: `replay` mixes the
documents of up to N earlier edits into each step; `route` keeps one adapter per passage and answers
each question with the adapter of the passage its title names (no interference by construction, at the
cost of one adapter per passage). The base weights are restored at the end.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import pandas as pd
from tqdm.auto import tqdm

from .adapters import base_weights_restored
from .passages import Passage
from .knowledge import KnowledgeTask
from .self_edit import training_documents

UPDATES = ("merge", "stack", "route")


@dataclass
class ForgettingConfig:
    update: str = field(default="merge", metadata={
        "help": "merge (each edit folded into the weights: the paper's), stack (one adapter trained on, edit "
                "after edit) or route (one adapter per passage, chosen by the question's title)"})
    replay: int = field(default=0, metadata={"help": "documents of up to this many earlier edits mixed into each step"})
    seed: int = field(default=0, metadata={"help": "adapter init, document order and replay choice"})

    def __post_init__(self):
        if self.update not in UPDATES or self.replay < 0:
            raise ValueError(f"ForgettingConfig: update must be one of {', '.join(UPDATES)} and replay >= 0; got "
                             f"{self.update!r} and {self.replay}")


@dataclass
class ForgettingResult:
    matrix: list[list[float | None]]  # [edit i][passage j], None above the diagonal
    steps: list[dict]                 # per edit: documents, train seconds, eval seconds

    @property
    def retention(self) -> list[float]:
        return [row[0] for row in self.matrix]

    def table(self) -> pd.DataFrame:
        n = len(self.matrix)
        return pd.DataFrame(self.matrix, index=[f"after edit {i}" for i in range(n)],
                            columns=[f"passage {j}" for j in range(n)])


def sequential_edits(task: KnowledgeTask, passages: list[Passage], edits: dict[str, str],
                     config: ForgettingConfig | None = None, progress: bool = True, on_step=None) -> ForgettingResult:
    """Apply the edits of `passages` in order; after edit i, answer the questions of passages 0..i."""
    config = config or ForgettingConfig()
    missing = [p.id for p in passages if p.id not in edits]
    if missing:
        raise ValueError(f"no self-edit for passage(s) {missing[:5]}; give one per passage")
    wrong = [p.id for p in passages if not isinstance(edits[p.id], str)]
    if wrong:
        raise ValueError(f"edits must map each passage id to one self-edit string; passage {wrong[0]!r} has a "
                         f"{type(edits[wrong[0]]).__name__} (from cpt.read_edits, take one: {{k: v[0] for k, v in edits.items()}})")
    inner, rng = task.inner, random.Random(config.seed)
    documents = [training_documents(edits[p.id], p, task.documents).texts for p in passages]
    adapters: list[dict] = []
    matrix, steps = [], []
    bar = tqdm(total=len(passages), desc=f"sequential edits ({config.update})", disable=not progress)
    try:
        with base_weights_restored(inner.model):
            for i, passage in enumerate(passages):
                earlier = rng.sample(range(i), min(config.replay, i))
                docs = documents[i] + [d for j in sorted(earlier) for d in documents[j]]
                # stack: go on from the adapter as it stands; merge and route: a fresh adapter per edit
                trained = inner.train(docs, seed=config.seed + i, fresh=config.update != "stack" or i == 0)
                began = time.perf_counter()
                if config.update == "merge":
                    inner.merge()  # θ <- θ + Δ_i; the adapter is zero again
                if config.update == "route":
                    adapters.append(inner.slot.state())
                    by_title = {p.title: k for k, p in enumerate(passages[:i + 1])}  # a repeated title: the latest
                    row = []
                    for j in range(i + 1):  # each passage's questions go to the adapter its title names
                        inner.slot.set_state(adapters[by_title[passages[j].title]])
                        row.append(task.answer([passages[j]])[0].accuracy)
                else:
                    row = [r.accuracy for r in task.answer(passages[:i + 1])]
                matrix.append(row + [None] * (len(passages) - i - 1))
                steps.append({"edit": i, "passage_id": passage.id, "n_documents": len(docs),
                              "replayed": sorted(earlier), "train_seconds": trained.seconds,
                              "eval_seconds": time.perf_counter() - began})
                bar.update(1)
                if on_step:
                    on_step(steps[-1], matrix[-1])
    finally:
        bar.close()
        inner.reset(config.seed)
    return ForgettingResult(matrix, steps)

