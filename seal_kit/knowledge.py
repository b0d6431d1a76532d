"""Knowledge incorporation (SEAL setting A): self-edit -> documents -> adapter -> answers -> reward.

    from seal_kit.knowledge import KnowledgeTask
    task = KnowledgeTask(model, tokenizer)                  # wraps the model with one LoRA slot
    task.baseline(passage).accuracy                         # base model, closed book; cached per passage
    cand = task.score_self_edit(passage, self_edit, seed=0) # {"reward", "gain", "status", "losses", ...}

Questions are asked without the passage ("Topic: <title>" + question), greedy, all questions of a
call in one batched generation. Reward = the adapted model's accuracy; gain = reward - baseline.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .data import Passage
from .generation import generate
from .graders import Grader, get_grader
from .inner_loop import InnerLoop, InnerLoopConfig, InnerLoopResult
from .prompts import question_prompt
from .self_edit import DocumentConfig, Documents, passage_document, training_documents


@dataclass
class EvalConfig:
    grader: str = field(default="contains", metadata={"help": "exact_match, f1 or contains (or pass a callable)"})
    max_new_tokens: int = field(default=64, metadata={"help": "longest answer (paper: 64)"})
    batch_size: int = field(default=16, metadata={"help": "questions answered together"})


@dataclass(frozen=True)
class QAResult:
    answers: list[str]
    scores: list[float]

    @property
    def accuracy(self) -> float:
        return sum(self.scores) / len(self.scores)


class KnowledgeTask:
    def __init__(self, model, tokenizer, inner: InnerLoopConfig | InnerLoop | None = None,
                 evaluation: EvalConfig | None = None, documents: DocumentConfig | None = None,
                 grader: Grader | None = None):
        # An InnerLoop built on `model` may be passed instead of its config (a variant, as in bench/).
        self.inner = inner if isinstance(inner, InnerLoop) else InnerLoop(model, tokenizer, inner)
        self.tokenizer = tokenizer
        self.evaluation = evaluation or EvalConfig()
        self.documents = documents or DocumentConfig()
        self.grader = get_grader(grader or self.evaluation.grader)
        self._baselines: dict[str, QAResult] = {}

    def answer(self, passages: list[Passage]) -> list[QAResult]:
        """Closed-book answers of the model as it stands (adapter on) to every question of `passages`."""
        items = [(p.title, qa) for p in passages for qa in p.questions]
        outs = generate(self.inner.model, self.tokenizer, [question_prompt(self.tokenizer, t, qa.question) for t, qa in items],
                        max_new_tokens=self.evaluation.max_new_tokens, batch_size=self.evaluation.batch_size,
                        desc="answering", progress=False)
        answers = [o.text for o in outs]
        with self.inner.base_model():  # a judge sharing our weights must not see the adapter
            scores = self.grader(answers, [qa.answer for _, qa in items], [qa.question for _, qa in items])
        results, start = [], 0
        for p in passages:
            n = len(p.questions)
            results.append(QAResult(answers[start:start + n], scores[start:start + n]))
            start += n
        return results

    def baselines(self, passages: list[Passage]) -> list[QAResult]:
        """The base model's closed-book results, computed once per passage id and then cached.

        Each passage is answered on its own, in the same batch an adapted model will get: in bf16 the
        batch's make-up alone can change greedy answers, which would show up as a fake gain."""
        with self.inner.base_model():
            for p in passages:
                if p.id not in self._baselines:
                    self._baselines[p.id] = self.answer([p])[0]
        return [self._baselines[p.id] for p in passages]

    def baseline(self, passage: Passage) -> QAResult:
        return self.baselines([passage])[0]

    def score_documents(self, passage: Passage, documents: list[str], seed: int = 0) -> dict:
        """Train a fresh adapter on `documents`, answer closed-book, and return reward, gain and timings."""
        base = self.baseline(passage)
        if documents:
            trained = self.inner.train(documents, seed=seed)
            began = time.perf_counter()
            result = self.answer([passage])[0]
            eval_seconds = time.perf_counter() - began
        else:  # nothing to train on (an empty edit with include_passage=False): θ' = θ
            trained, result, eval_seconds = InnerLoopResult([], 0, 0, 0.0), base, 0.0
        return {"passage_id": passage.id, "seed": seed, "reward": result.accuracy, "baseline": base.accuracy,
                "gain": result.accuracy - base.accuracy, "n_documents": len(documents), "steps": trained.steps,
                "tokens": trained.tokens, "final_loss": trained.losses[-1] if trained.losses else float("nan"),
                "losses": trained.losses, "answers": result.answers, "scores": result.scores,
                "train_seconds": trained.seconds, "eval_seconds": eval_seconds}

    def score_self_edit(self, passage: Passage, self_edit: str, seed: int = 0) -> dict:
        """The reward of one self-edit. An empty or degenerate edit is reported as status 'empty_edit'
        and scored on the passage alone (what training on it amounts to)."""
        docs: Documents = training_documents(self_edit, passage, self.documents)
        scored = self.score_documents(passage, docs.texts, seed)
        return {**scored, "status": "empty_edit" if docs.empty_edit else "ok", "documents": docs.texts}

    def score_passage_only(self, passage: Passage, seed: int = 0) -> dict:
        """The 'train on the passage only' control of the paper (the passage is included whatever the config)."""
        return self.score_documents(passage, [passage_document(passage, self.documents)], seed)
