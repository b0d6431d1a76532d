"""Continued pretraining (CPT): many passages' self-edits pooled into one training run, then every question.

    from seal_kit.knowledge.cpt import (CPTConfig, continued_pretraining, passage_documents, pooled_documents, read_edits,
                              trained_generator)
    edits = {p.id: [edit, ...] for p in passages}                              # all K self-edits of each passage
    docs = pooled_documents(passages, edits)                                   # each edit's lines + its passage
    docs = pooled_documents(passages, edits, DocumentConfig(split_lines=False))  # each edit whole (the reference's)
    result = continued_pretraining(task, passages, docs, CPTConfig())          # {"accuracy", "steps", "lr", ...}
    control = continued_pretraining(task, passages, passage_documents(passages), lr=1e-4)  # at its own lr
    edits = read_edits("teacher_edits.jsonl")                                 # passage_id -> [self_edit, ...]
    with trained_generator(task.inner, "outputs/runs/<a 03 run>") as model:   # the ReST-EM generator
        ...sample self-edits with `model`...

One adapter (LoRA, the task's inner-loop config) or, with `full=True`, every weight is trained on the
pool; the base weights are restored afterwards either way, so conditions can follow one another on one
loaded model. Every run trains as the task's inner-loop config says (epochs, batch size, gradient
accumulation, schedule, clipping, padding); only `lr` may differ per run (the reference trained its
passage-only control at 1e-4, the other pools at 1e-3). Questions are asked closed book, all passages'
questions in one batched pass.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..adapters import base_weights_restored
from ..generator import GENERATOR, Generator, saved_generator
from ..inner_loop import ADAPTER, train_lora
from ..self_edit import DocumentConfig, passage_document, training_documents
from .passages import Passage
from .task import KnowledgeTask


@dataclass
class CPTConfig:
    full: bool = field(default=False, metadata={"help": "fine-tune every weight instead of one LoRA adapter"})
    full_lr: float = field(default=1e-5, metadata={"help": "learning rate of the full fine-tune (LoRA uses the inner loop's)"})
    seed: int = field(default=0, metadata={"help": "adapter init and document order"})


def pooled_documents(passages: list[Passage], edits: dict[str, list[str]], config: DocumentConfig | None = None) -> list[str]:
    """Every self-edit's documents, each edit followed by its passage (the paper's CPT pool). `config`
    decides how an edit becomes documents: one per line by default; `split_lines=False` keeps each edit
    one document (cut only at `---`), as the reference's CPT did."""
    missing = [p.id for p in passages if p.id not in edits]
    if missing:
        raise ValueError(f"no self-edits for passage(s) {missing[:5]}; give edits for every passage")
    return [doc for p in passages for edit in edits[p.id] for doc in training_documents(edit, p, config).texts]


def passage_documents(passages: list[Passage], config: DocumentConfig | None = None) -> list[str]:
    """The passages alone: the 'train on passages only' control."""
    return [passage_document(p, config or DocumentConfig()) for p in passages]


def continued_pretraining(task: KnowledgeTask, passages: list[Passage], documents: list[str],
                          config: CPTConfig | None = None, progress: bool = True, lr: float | None = None) -> dict:
    """Train once on `documents` (none: the base model), answer all questions of `passages` closed book.
    `lr`: this run's learning rate (None: the inner loop's for LoRA, `config.full_lr` for a full fine-tune)."""
    config = config or CPTConfig()
    if lr is not None and lr <= 0:
        raise ValueError(f"continued_pretraining: lr must be > 0 or None (the config's), got {lr}")
    if not documents:
        lr = None  # the base model: nothing trains
    elif lr is None:
        lr = config.full_lr if config.full else task.inner.config.lr
    if not any(p.questions for p in passages):
        raise ValueError("continued_pretraining: the passages have no questions to score the model on")
    inner = task.inner
    if config.full and documents and next(inner.model.parameters()).dtype != torch.float32:
        warnings.warn("full fine-tuning in bf16/fp16 without fp32 master weights loses most small updates (a 1e-5 "
                      "step rounds away on most weights); load the model in fp32 for full=True, or use LoRA",
                      stacklevel=2)
    losses, steps, seconds = [], 0, 0.0
    restored = base_weights_restored(inner.model) if config.full and documents else contextlib.nullcontext()
    try:
        with restored:
            if documents and config.full:
                encoded = inner.encode(documents)
                trained = train_lora(inner.model, encoded, task.tokenizer.pad_token_id,
                                     dataclasses.replace(inner.config, lr=lr), None, config.seed, progress,
                                     desc="continued pretraining (full)")
            elif documents:
                trained = inner.train(documents, seed=config.seed, progress=progress, lr=lr)
            if documents:
                losses, steps, seconds = trained.losses, trained.steps, trained.seconds
            context = inner.base_model() if config.full or not documents else contextlib.nullcontext()
            with context:
                results = task.answer(passages)
    finally:
        inner.reset(config.seed)  # no trained adapter left active behind the caller's back
    scores = [s for r in results for s in r.scores]
    return {"accuracy": sum(scores) / len(scores), "per_passage": [r.accuracy for r in results],
            "n_documents": len(documents), "n_questions": len(scores), "steps": steps, "lr": lr, "losses": losses,
            "train_seconds": seconds}


def read_edits(path: str | Path) -> dict[str, list[str]]:
    """Self-edits from a jsonl file (one object per line with `passage_id` and `self_edit`), grouped by passage:
    a teacher's edits, or any run's self_edits.jsonl."""
    grouped: dict[str, list[str]] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            grouped.setdefault(str(row["passage_id"]), []).append(str(row["self_edit"]))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}, line {n}: expected an object with 'passage_id' and 'self_edit' ({err})") from None
    if not grouped:
        raise ValueError(f"{path}: no self-edits in it")
    return grouped


@contextlib.contextmanager
def trained_generator(inner, run_dir: str | Path):
    """The generator a ReST-EM run (notebook 03) ended with, on this model: its saved updates are loaded
    (stacked: the last one; merged: each merged in turn) and the base weights restored on exit."""
    config, updates = saved_generator(run_dir)
    if not updates:
        raise ValueError(f"{run_dir}: no generator update saved (round-<r>/generator/); run 03_rest_em there first")
    with base_weights_restored(inner.model) if config.update == "merge" else contextlib.nullcontext():
        generator = Generator(inner, config)
        try:
            for path in updates:  # as RestEM resumes: stacked, the last one stands; merged, each is folded in
                generator.restore(path)
            with generator.active() as model:
                yield model
        finally:
            inner.model.delete_adapter(GENERATOR)
            inner.model.set_adapter(ADAPTER)
