"""Reward: what one self-edit is worth, `self-edit -> inner job -> adapter -> task score`.

    from seal_kit.reward import InnerJob, SelfEditTask
    class MyTask(SelfEditTask):                       # a setting (knowledge, ARC, ...) plugs in three steps
        def self_edit_prompt(self, context): ...      # what the generator is asked
        def inner_job(self, context, self_edit): ...  # -> InnerJob(examples, overrides, status)
        def evaluate(self, context): ...              # -> {"reward": float, ...} of the model as it stands
    task.score(context, self_edit, seed=0)            # {"reward", "baseline", "gain", "status", "losses", ...}
    task.score_many(items, BatchedLoRA(task.inner))   # many (context, edit, seed) trained together

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

    self_edit_schema: dict | None = None  # a JSON schema a self-edit must match (ARC), for constrained decoding
    strategy = None  # a `strategies.Strategy` of several stages writes the self-edits (None: self_edit_prompt, once)

    def __init__(self, inner: InnerLoop):
        self.inner = inner
        self._baselines: dict[str, dict] = {}

    def self_edit_prompt(self, context) -> str:
        raise NotImplementedError

    def inner_job(self, context, self_edit: str) -> InnerJob:
        raise NotImplementedError

    def render(self, text: str) -> str:
        """A strategy stage's filled template as the generator is given it (KnowledgeTask: a chat turn)."""
        return text

    def evaluate(self, context) -> dict:
        """Score the model as it stands on the task tied to `context`: a dict with at least "reward"."""
        raise NotImplementedError

    def describe(self, context) -> str:
        """The context as a reviewer should read it."""
        return str(context)

    def accepts(self, self_edit: str) -> bool:
        """Whether a sampled self-edit is usable at all; `SamplingConfig.max_attempts` > 1 draws again until it
        is (ARC: until its JSON parses). Here every edit is."""
        return True

    def baseline(self, context) -> dict:
        """`evaluate` on the base model, once per context id (the reference re-graded it for every candidate)."""
        if context.id not in self._baselines:
            with self.inner.base_model():
                self._baselines[context.id] = self.evaluate(context)
        return self._baselines[context.id]

    def clear_baselines(self) -> None:
        """Forget cached baselines: call after the base weights change (a merged generator update)."""
        self._baselines.clear()

    def evaluate_many(self, context, lora, adapters: list[int]) -> list[dict]:
        """`evaluate` under each of a BatchedLoRA's `adapters` (all trained on this context's edits).
        This default loads each into the model's adapter slot in turn, so scores equal the one-at-a-time
        loop's exactly; a task may override it with one batched pass (KnowledgeTask does)."""
        scored = []
        for k in adapters:
            lora.load(k)
            scored.append(self.evaluate(context))
        return scored

    def score_job(self, context, job: InnerJob, seed: int = 0) -> dict:
        """Train a fresh adapter as `job` says, evaluate, and compare with the baseline."""
        if job.failed or not job.examples:
            return self._untrained(context, job, seed)
        trained = self.inner.train(job.examples, seed=seed, **job.overrides)
        began = time.perf_counter()
        scored = self.evaluate(context)
        return self._record(context, job, seed, scored, trained, time.perf_counter() - began)

    def score_many(self, items: list[tuple], lora=None) -> list[dict]:
        """`score` for many (context, self_edit, seed) items. With a BatchedLoRA (`seal_kit.batched`)
        their adapters are trained together and each context's are evaluated together; the rows equal
        those of `score` one item at a time, within float tolerance."""
        jobs = [(context, self.inner_job(context, edit), seed) for context, edit, seed in items]
        if lora is None:
            return [self.score_job(*job) for job in jobs]
        results: list[dict | None] = [None] * len(jobs)
        train = [n for n, (_, job, _) in enumerate(jobs) if not job.failed and job.examples]
        for n, (context, job, seed) in enumerate(jobs):
            if n not in train:
                results[n] = self._untrained(context, job, seed)
        if not train:
            return results
        for context, _, _ in jobs:
            self.baseline(context)  # before training: baselines use the base model
        trained = lora.train([(jobs[n][1].examples, jobs[n][2], jobs[n][1].overrides) for n in train])
        groups: dict = {}
        for k, n in enumerate(train):
            groups.setdefault(jobs[n][0].id, []).append((k, n))
        for members in groups.values():
            context = jobs[members[0][1]][0]
            began = time.perf_counter()
            scored = self.evaluate_many(context, lora, [k for k, _ in members])
            share = (time.perf_counter() - began) / len(members)
            for (k, n), one in zip(members, scored):
                results[n] = self._record(context, jobs[n][1], jobs[n][2], one, trained[k], share)
        return results

    def _untrained(self, context, job: InnerJob, seed: int) -> dict:
        """Nothing to train on: θ' = θ (an empty job), or a failed edit worth 0."""
        scored = {"reward": 0.0} if job.failed else self.baseline(context)
        return self._record(context, job, seed, scored, InnerLoopResult([], 0, 0, 0.0), 0.0)

    def _record(self, context, job: InnerJob, seed: int, scored: dict, trained: InnerLoopResult,
                eval_seconds: float) -> dict:
        base = self.baseline(context)["reward"]
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
