"""Catastrophic forgetting: self-edits applied one after another, every earlier passage re-asked after each.

    from seal_kit.knowledge.forgetting import ForgettingConfig, across_sequences, draw_sequences, matrix_table, sequential_edits
    result = sequential_edits(task, passages, edits, ForgettingConfig(update="merge"))
    result.matrix        # row 0: the base model on every passage; row i+1: after edit i (None for j > i)
    result.retention     # the first passage's accuracy after each edit
    result.table()       # the matrix as a DataFrame
    orders = draw_sequences(all_passages, n=8, sequences=8, seed=0)       # several passage orders
    mean, spread = across_sequences([sequential_edits(task, o, ...).matrix for o in orders])
    matrix_table(mean, spread)  # "0.40 ± 0.05" per cell

Updates: `merge` folds each edit's adapter into the base weights before the next edit (the paper's);
`stack` keeps training one adapter edit after edit. Mitigations, cheap to compare: `replay` mixes the
documents of up to N earlier edits into each step; `route` keeps one adapter per passage and answers
each question with the adapter of the passage its title names (no interference by construction, at the
cost of one adapter per passage). Edits are given up front (`edits_from="base"`) or written at each
step by the model as it stands (`"current"`, the reference's). The base weights are restored at the end.
"""
from __future__ import annotations

import contextlib
import dataclasses
import random
import statistics
import time
from dataclasses import dataclass, field

import pandas as pd
from tqdm.auto import tqdm

from ..adapters import base_weights_restored
from ..self_edit import SamplingConfig, training_documents
from ..strategies import generate_self_edits
from .passages import Passage
from .task import KnowledgeTask

UPDATES = ("merge", "stack", "route")
EDITS_FROM = ("base", "current")


@dataclass
class ForgettingConfig:
    update: str = field(default="merge", metadata={
        "help": "merge (each edit folded into the weights: the paper's), stack (one adapter trained on, edit "
                "after edit) or route (one adapter per passage, chosen by the question's title)"})
    replay: int = field(default=0, metadata={"help": "documents of up to this many earlier edits mixed into each step"})
    edits_from: str = field(default="base", metadata={
        "help": "who writes each self-edit: base (given up front, the base model's: every variant trains on the "
                "same edits) or current (sampled at its step from the model as it stands after the earlier "
                "edits: the reference's; route samples from the base, which it never changes)"})
    seed: int = field(default=0, metadata={"help": "adapter init, document order and replay choice"})

    def __post_init__(self):
        if self.update not in UPDATES or self.replay < 0 or self.edits_from not in EDITS_FROM:
            raise ValueError(f"ForgettingConfig: update must be one of {', '.join(UPDATES)}, replay >= 0 and "
                             f"edits_from one of {', '.join(EDITS_FROM)}; got {self.update!r}, {self.replay} "
                             f"and {self.edits_from!r}")


@dataclass
class ForgettingResult:
    matrix: list[list[float | None]]  # row 0: base on every passage; row i+1: after edit i, None for passage j > i
    steps: list[dict]                 # per edit: its self-edit, documents, write, train and eval seconds

    @property
    def base(self) -> list[float]:
        return self.matrix[0]

    @property
    def retention(self) -> list[float]:
        return [row[0] for row in self.matrix[1:]]

    def table(self) -> pd.DataFrame:
        return matrix_table(self.matrix)


def matrix_table(matrix: list[list[float | None]], spread: list[list[float | None]] | None = None) -> pd.DataFrame:
    """A forgetting matrix (base row first) as a DataFrame: rows `base`, `after edit i`; columns `passage j`.
    With `spread` (same shape, e.g. from `across_sequences`) each cell reads "mean ± spread"."""
    n = len(matrix) - 1
    if spread is not None:
        matrix = [["" if v is None else f"{v:.2f} ± {s:.2f}" for v, s in zip(row, spread_row)]
                  for row, spread_row in zip(matrix, spread)]
    return pd.DataFrame(matrix, index=["base"] + [f"after edit {i}" for i in range(n)],
                        columns=[f"passage {j}" for j in range(n)])


def sequential_edits(task: KnowledgeTask, passages: list[Passage], edits: dict[str, str] | None = None,
                     config: ForgettingConfig | None = None, progress: bool = True, on_step=None,
                     sampling: SamplingConfig | None = None) -> ForgettingResult:
    """Answer every passage's questions with the base model (row 0), then apply one self-edit per passage
    in order; after edit i, answer the questions of passages 0..i. `edits` maps passage id -> self-edit
    (edits_from="base"); with edits_from="current" it is None and each edit is sampled at its step
    (`sampling`, one per passage, its seed plus the step) with the task's prompt."""
    config = config or ForgettingConfig()
    sampling = dataclasses.replace(sampling or SamplingConfig(), k=1)
    _check_edits(task, passages, edits, config, sampling)
    inner, rng = task.inner, random.Random(config.seed)
    documents: list[list[str]] = []
    adapters: list[dict] = []
    steps = []
    bar = tqdm(total=len(passages), desc=f"sequential edits ({config.update})", disable=not progress)
    try:
        with base_weights_restored(inner.model):
            inner.reset(config.seed)  # the model as it stands before the first edit is the base
            with inner.base_model():
                matrix = [[r.accuracy for r in task.answer(passages)]]
            for i, passage in enumerate(passages):
                began = time.perf_counter()
                if config.edits_from == "current":
                    edit = _write_edit(task, passage, dataclasses.replace(sampling, seed=sampling.seed + i),
                                       from_base=config.update == "route")
                else:
                    edit = edits[passage.id]
                written = time.perf_counter()
                documents.append(training_documents(edit, passage, task.documents).texts)
                earlier = rng.sample(range(i), min(config.replay, i))
                docs = documents[i] + [d for j in sorted(earlier) for d in documents[j]]
                # stack: go on from the adapter as it stands; merge and route: a fresh adapter per edit
                trained = inner.train(docs, seed=config.seed + i, fresh=config.update != "stack" or i == 0)
                eval_began = time.perf_counter()
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
                steps.append({"edit": i, "passage_id": passage.id, "self_edit": edit, "n_documents": len(docs),
                              "replayed": sorted(earlier), "write_seconds": written - began,
                              "train_seconds": trained.seconds, "eval_seconds": time.perf_counter() - eval_began})
                bar.update(1)
                if on_step:
                    on_step(steps[-1], matrix[-1])
    finally:
        bar.close()
        inner.reset(config.seed)
    return ForgettingResult(matrix, steps)


def _check_edits(task, passages, edits, config, sampling) -> None:
    if config.edits_from == "current":
        if edits is not None:
            raise ValueError("ForgettingConfig(edits_from='current') samples each self-edit at its step from the "
                             "model as it stands: pass edits=None, or edits_from='base' to train on the edits given")
        if config.update == "merge" and sampling.backend == "vllm":
            raise ValueError("edits_from='current' with update='merge' needs SamplingConfig(backend='hf'): vLLM "
                             "loads the weights from disk and would not see the edits merged in memory")
    else:
        if edits is None:
            raise ValueError("sequential_edits: give one self-edit per passage (edits), or "
                             "ForgettingConfig(edits_from='current') to sample each at its step")
        missing = [p.id for p in passages if p.id not in edits]
        if missing:
            raise ValueError(f"no self-edit for passage(s) {missing[:5]}; give one per passage")
        wrong = [p.id for p in passages if not isinstance(edits[p.id], str)]
        if wrong:
            raise ValueError(f"edits must map each passage id to one self-edit string; passage {wrong[0]!r} has a "
                             f"{type(edits[wrong[0]]).__name__} (from cpt.read_edits, take one: "
                             "{k: v[0] for k, v in edits.items()})")
    if config.update == "merge" and task.evaluation.backend == "vllm":
        raise ValueError("update='merge' needs EvalConfig(backend='hf'): vLLM loads the weights from disk and "
                         "would answer without the edits merged in memory")


def _write_edit(task: KnowledgeTask, passage: Passage, sampling: SamplingConfig, from_base: bool) -> str:
    """One self-edit for `passage`, sampled from the model as it stands (adapter on), or from the base."""
    with task.inner.base_model() if from_base else contextlib.nullcontext(task.inner.model) as model:
        table = generate_self_edits(model, task.tokenizer, [passage], task.prompt, sampling, chat=task.chat,
                                    progress=False, layout=task.layout, budget=task.budget)
    return str(table.self_edit[0])


def draw_sequences(passages: list[Passage], n: int, sequences: int = 1, seed: int = 0) -> list[list[Passage]]:
    """`sequences` orders of `n` passages to edit: the first is `passages[:n]` as given, each further one
    `n` passages drawn at random from all of `passages`, in random order (as the reference drew every one)."""
    if not 1 <= n <= len(passages) or sequences < 1:
        raise ValueError(f"draw_sequences: need 1 <= n <= {len(passages)} passages and sequences >= 1; got n={n} "
                         f"and sequences={sequences}")
    rng = random.Random(seed)
    return [list(passages[:n])] + [rng.sample(passages, n) for _ in range(sequences - 1)]


def across_sequences(matrices: list[list[list[float | None]]]) -> tuple[list[list[float | None]],
                                                                       list[list[float | None]]]:
    """Cell by cell over sequences' matrices: the mean and the standard deviation across sequences (0 for
    one sequence; the reference reported it, the paper its standard error, std / sqrt(sequences))."""
    if not matrices or any(len(m) != len(matrices[0]) or len(m[0]) != len(matrices[0][0]) for m in matrices):
        raise ValueError("across_sequences: give one or more matrices of the same shape (sequences of equal length)")

    def cell(values, reduce):
        return None if values[0] is None else reduce(values)

    spread = statistics.stdev if len(matrices) > 1 else (lambda values: 0.0)
    cells = [[[m[i][j] for m in matrices] for j in range(len(matrices[0][0]))] for i in range(len(matrices[0]))]
    return ([[cell(v, statistics.fmean) for v in row] for row in cells],
            [[cell(v, spread) for v in row] for row in cells])
