"""Reward: what one self-edit is worth, `self-edit -> inner job -> adapter -> task score`.

    from seal_kit.reward import InnerJob, SelfEditTask
    class MyTask(SelfEditTask):                       # a setting (knowledge, ARC, ...) plugs in three steps
        def self_edit_prompt(self, context): ...      # what the generator is asked
        def inner_job(self, context, self_edit): ...  # -> InnerJob(examples, overrides, status)
        def evaluate(self, context): ...              # -> {"reward": float, ...} of the model as it stands
    task.score(context, self_edit, seed=0)            # {"reward", "baseline", "gain", "status", "losses", ...}

The outer loop (`rest_em`) only ever talks to this interface, so it knows nothing about SQuAD or ARC.
The baseline is `evaluate` on the base model (adapter off), computed once per context and cached.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .inner_loop import InnerLoop, InnerLoopResult


@dataclass
class InnerJob:
    """What a self-edit asks the inner loop to do."""
    examples: list  # documents (loss on every token) or (prompt, completion) pairs
    overrides: dict = field(default_factory=dict)  # InnerLoopConfig fields the self-edit chose (ARC: lr, epochs)
    status: str = "ok"  # "ok", "empty_edit" (degenerate but usable), or why it failed ("bad_json", ...)
    reason: str = ""    # what was wrong, for a failed edit (names the offending key or limit)
    documents: list[str] | None = None  # what a reviewer sees as the training data; None: the examples' texts

    @property
    def failed(self) -> bool:
        """A failed edit scores 0 without running the inner loop (the paper's unparseable ARC config)."""
        return self.status not in ("ok", "empty_edit")


class SelfEditTask:
    """A SEAL setting: contexts with an `id`, a prompt, a self-edit -> training job, and a score."""

    def __init__(self, inner: InnerLoop):
        self.inner = inner
        self._baselines: dict[str, dict] = {}

    def self_edit_prompt(self, context) -> str:
        raise NotImplementedError

    def inner_job(self, context, self_edit: str) -> InnerJob:
        raise NotImplementedError

    def evaluate(self, context) -> dict:
        """Score the model as it stands on the task tied to `context`: a dict with at least "reward"."""
        raise NotImplementedError

    def describe(self, context) -> str:
        """The context as a reviewer should read it."""
        return str(context)

    def baseline(self, context) -> dict:
        """`evaluate` on the base model, once per context id (the reference re-graded it for every candidate)."""
        if context.id not in self._baselines:
            with self.inner.base_model():
                self._baselines[context.id] = self.evaluate(context)
        return self._baselines[context.id]

    def clear_baselines(self) -> None:
        """Forget cached baselines: call after the base weights change (a merged generator update)."""
        self._baselines.clear()

    def score_job(self, context, job: InnerJob, seed: int = 0) -> dict:
        """Train a fresh adapter as `job` says, evaluate, and compare with the baseline."""
        base = self.baseline(context)["reward"]
        if job.failed or not job.examples:  # nothing to train on: θ' = θ, or a failure worth 0
            trained, eval_seconds = InnerLoopResult([], 0, 0, 0.0), 0.0
            scored = {"reward": 0.0} if job.failed else self.baseline(context)
        else:
            trained = self.inner.train(job.examples, seed=seed, **job.overrides)
            began = time.perf_counter()
            scored = self.evaluate(context)
            eval_seconds = time.perf_counter() - began
        return {**scored, "context_id": context.id, "seed": seed, "baseline": base, "gain": scored["reward"] - base,
                "status": job.status, "n_examples": len(job.examples),
                "reason": job.reason, "documents": job.documents if job.documents is not None else
                [e if isinstance(e, str) else e[1] for e in job.examples],  # what was trained on
                "steps": trained.steps,
                "tokens": trained.tokens, "final_loss": trained.losses[-1] if trained.losses else float("nan"),
                "losses": trained.losses, "train_seconds": trained.seconds, "eval_seconds": eval_seconds}

    def score(self, context, self_edit: str, seed: int = 0) -> dict:
        """The reward of one self-edit under one inner-loop seed."""
        return self.score_job(context, self.inner_job(context, self_edit), seed)
