"""Knowledge incorporation (SEAL setting A): self-edit -> documents -> adapter -> answers -> reward.

    from seal_kit.knowledge.task import KnowledgeTask
    task = KnowledgeTask(model, tokenizer)                  # wraps the model with one LoRA slot
    task.baseline(passage)["reward"]                        # base model, closed book; cached per passage
    cand = task.score(passage, self_edit, seed=0)           # {"reward", "gain", "status", "losses", ...}
    task.self_edit_prompt(passage)                          # what the generator is asked (prompt="implications")
    task.score(passage, PassageOnly(repeats=6), seed=0)     # the passage alone, 6 documents: a self-edit's steps
    jobs = passage_jobs(passages) + matched_jobs(task, by_id, edits)   # the controls of a table of self-edits
    rows = list(score_jobs(executor, task, by_id, jobs, seed=0))       # each job with its reward, as it finishes

Questions are asked without the passage ("Topic: <title>" + question), greedy, all questions of a
call in one batched generation. Reward = the adapted model's accuracy; gain = reward - baseline.
"""
from __future__ import annotations

import contextlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..backends import check_backend, generate_with
from ..inner_loop import InnerLoop, InnerLoopConfig
from ..prompts import check_layout, question_prompt, render
from ..reward import InnerJob, SelfEditTask
from ..self_edit import DocumentConfig, Documents, passage_document, training_documents
from ..strategies import Strategy, strategy_for
from .graders import Grader, get_grader
from .passages import Passage


@dataclass(frozen=True)
class PassageOnly:
    """The passage-only control, given where a self-edit would be: the passage as the only training text,
    `repeats` times. 1 is the paper's control. A self-edit of n documents (its lines and the passage) trains
    for n times the optimiser steps, so `repeats=n` is the control with the same steps: what more training on
    the passage alone does, against what the self-edit's text does."""
    repeats: int = 1

    def __post_init__(self):
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"PassageOnly.repeats must be a whole number >= 1, got {self.repeats!r}")


def matched_condition(condition: str) -> str:
    """The name of `condition`'s step-matched passage-only control (notebook 02's MATCHED_CONTROL)."""
    return f"passage_matched:{condition}"


# What a scored job keeps of the task's result (02's candidates.jsonl, 03's controls.jsonl).
SCORED_COLUMNS = ["reward", "baseline", "gain", "status", "n_examples", "steps", "final_loss", "train_seconds",
                  "eval_seconds", "answers"]


def passage_jobs(passages) -> list[dict]:
    """The paper's passage-only control, one job per passage: the passage trained once, nothing else."""
    return [{"condition": "passage", "passage_id": p.id, "sample": -1, "self_edit": None} for p in passages]


def matched_jobs(task: "KnowledgeTask", by_id: dict, edits) -> list[dict]:
    """Each self-edit's step-matched control: the passage alone, as many documents as the edit gives (the same
    optimiser steps), named `matched_condition(edit's condition)`. `edits`: rows with condition, passage_id,
    sample and self_edit (a DataFrame or dicts)."""
    rows = edits.to_dict("records") if hasattr(edits, "to_dict") else list(edits)
    return [{"condition": matched_condition(r["condition"]), "passage_id": r["passage_id"], "sample": r["sample"],
             "self_edit": None, "repeats": task.documents_of(by_id[r["passage_id"]], r["self_edit"])} for r in rows]


def score_jobs(executor, task: "KnowledgeTask", by_id: dict, todo: list[dict], seed: int):
    """Inner loop and answers of every job through the executor, yielded as each finishes, with SCORED_COLUMNS
    added. A job without a self-edit trains on the passage alone (`repeats` times, default once)."""
    items = [(by_id[job["passage_id"]], PassageOnly(job.get("repeats", 1)) if job["self_edit"] is None
              else job["self_edit"], seed) for job in todo]
    for n, row in executor.score(task, items):
        yield {**todo[n], **{k: row[k] for k in SCORED_COLUMNS}}


@dataclass
class EvalConfig:
    grader: str = field(default="fitted", metadata={
        "help": "how answers are graded: fitted (agrees best with the paper's GPT-4.1 judge, offline), contains, "
                "exact_match, f1, judge:<model> (an OpenAI-compatible endpoint, OPENAI_BASE_URL), local:<model> (a "
                "local yes/no judge, e.g. local:embedded), or a callable"})
    max_new_tokens: int = field(default=64, metadata={"help": "longest answer, in tokens (paper: 64)"})
    batch_size: int = field(default=16, metadata={"help": "questions answered together"})
    backend: str = field(default="hf", metadata={
        "help": "what every answer is generated with: hf, or vllm (GPU, the [vllm] extra; a batched inner "
                "loop's adapters are then answered in one call)"})
    merged_answers: bool | None = field(default=None, metadata={
        "help": "answer with the candidate's adapter folded into the weights (the same model, fewer matmuls per "
                "token); None: where it pays, a CPU computing in float32 (in bf16 the fold would round the small "
                "update away; on a GPU the copy costs memory)"})

    def __post_init__(self):
        check_backend(self.backend, "EvalConfig")


@dataclass(frozen=True)
class QAResult:
    answers: list[str]
    scores: list[float]

    @property
    def accuracy(self) -> float:
        return sum(self.scores) / len(self.scores)


class KnowledgeTask(SelfEditTask):
    def __init__(self, model, tokenizer, inner: InnerLoopConfig | InnerLoop | None = None,
                 evaluation: EvalConfig | None = None, documents: DocumentConfig | None = None,
                 grader: Grader | None = None, prompt: "str | Strategy" = "implications", chat: bool | None = None,
                 layout: str = "kit", budget=None):
        # An InnerLoop built on `model` may be passed instead of its config (a variant, as in bench/).
        super().__init__(inner if isinstance(inner, InnerLoop) else InnerLoop(model, tokenizer, inner))
        self.tokenizer = tokenizer
        self.evaluation = evaluation or EvalConfig()
        self.documents = documents or DocumentConfig()
        self.grader = get_grader(grader or self.evaluation.grader)
        self.prompt, self.chat, self.layout = prompt, chat, check_layout(layout)
        self.budget = budget  # training text per self-edit (strategies.Budget, tokens, or "N documents")
        written = strategy_for(prompt, self.layout, budget)  # SEAL's prompts are one-stage strategies
        self.strategy = None if written.plain else written
        self._first = written.stages[0].templates[0]

    def answer(self, passages: list[Passage], lora=None, adapters: list[int] | None = None) -> list[QAResult]:
        """Closed-book answers of the model as it stands (adapter on) to every question of `passages`;
        with a BatchedLoRA, passage n is answered through adapter `adapters[n]`, all in one pass."""
        items = [(p.title, qa) for p in passages for qa in p.questions]
        prompts = [question_prompt(self.tokenizer, t, qa.question, self.chat, self.layout) for t, qa in items]
        if lora is None:
            with self.inner.slot.merged() if self._merge_answers() else contextlib.nullcontext():
                outs = self._generate(prompts, batch_size=self.evaluation.batch_size)
        else:
            owners = [k for p, k in zip(passages, adapters) for _ in p.questions]
            outs = self._answer_routed(prompts, owners, lora)
        answers = [o.text for o in outs]
        with self.inner.base_model():  # a judge sharing our weights must not see the adapter
            scores = self.grader(answers, [qa.answer for _, qa in items], [qa.question for _, qa in items])
        results, start = [], 0
        for p in passages:
            n = len(p.questions)
            results.append(QAResult(answers[start:start + n], scores[start:start + n]))
            start += n
        return results

    def _merge_answers(self) -> bool:
        """Whether answers fold the inner loop's adapter in: only when it is the adapter answering (another
        slot active, as the generator's while it writes, is left as peft runs it)."""
        if self.inner.model.active_adapter != self.inner.slot.name:
            return False
        choice = self.evaluation.merged_answers
        if choice is None:
            weight = self.inner.slot.layers()[0].get_base_layer().weight
            choice = weight.device.type == "cpu" and weight.dtype == torch.float32
        return choice and self.evaluation.backend == "hf"

    def _generate(self, prompts: list[str], **options):
        """Every answer comes from here: the model as it stands, under EvalConfig.backend."""
        return generate_with(self.evaluation.backend, self.inner.model, self.tokenizer, prompts,
                             max_new_tokens=self.evaluation.max_new_tokens, max_lora_rank=self.inner.config.rank,
                             desc="answering", progress=False, **options)

    def _answer_routed(self, prompts: list[str], owners: list[int], lora):
        """Prompt n answered by BatchedLoRA adapter owners[n]: rows routed in one HF generation, or each
        adapter saved and served by vLLM (EvalConfig.backend)."""
        if self.evaluation.backend == "vllm":
            with tempfile.TemporaryDirectory() as tmp:
                folders = {}
                for k in sorted(set(owners)):
                    lora.load(k)
                    folders[k] = str(Path(tmp) / f"candidate-{k}")
                    self.inner.save_adapter(folders[k])
                return self._generate(prompts, adapters=[folders[k] for k in owners])
        batch = self.evaluation.batch_size * len(set(owners))  # each question's copies together
        return self._generate(prompts, batch_size=batch, route=lambda chunk: lora.rows([owners[i] for i in chunk]))

    # The three steps the outer loop needs (see reward.SelfEditTask).
    def self_edit_prompt(self, passage: Passage) -> str:
        """The prompt of a one-stage strategy (a strategy of stages: its first stage's first prompt)."""
        return self.render(Strategy._fill(self._first, passage, {}, None))

    def render(self, text: str) -> str:
        return render(self.tokenizer, text, self.chat)

    def inner_job(self, passage: Passage, self_edit: str | PassageOnly) -> InnerJob:
        """An empty or degenerate edit gets status 'empty_edit' and trains on the passage alone; a
        PassageOnly trains on the passage alone, as many times as it says."""
        if isinstance(self_edit, PassageOnly):
            return InnerJob([passage_document(passage, self.documents)] * self_edit.repeats)
        docs: Documents = training_documents(self_edit, passage, self.documents)
        return InnerJob(docs.texts, status="empty_edit" if docs.empty_edit else "ok")

    def evaluate(self, passage: Passage) -> dict:
        """Each passage is answered on its own, in the same batch for base and adapted model: in bf16
        the batch's make-up alone can change greedy answers, which would show up as a fake gain."""
        result = self.answer([passage])[0]
        return {"reward": result.accuracy, "answers": result.answers, "scores": result.scores}

    def evaluate_many(self, passage: Passage, lora, adapters: list[int]) -> list[dict]:
        """`evaluate` for several adapters of a BatchedLoRA in one batched generation: each question is
        asked once per adapter, each row through its own adapter, padded as in `evaluate`."""
        results = self.answer([passage] * len(adapters), lora, adapters)
        return [{"reward": r.accuracy, "answers": r.answers, "scores": r.scores} for r in results]

    def describe(self, passage: Passage) -> str:
        return f"{passage.title}\n{passage.context}"

    def score_documents(self, passage: Passage, documents: list[str], seed: int = 0) -> dict:
        """Train a fresh adapter on `documents` as they are, answer closed-book, return reward and gain."""
        return self.score_job(passage, InnerJob(list(documents)), seed)

    def score_passage_only(self, passage: Passage, seed: int = 0, repeats: int = 1) -> dict:
        """The 'train on the passage only' control of the paper (the passage is included whatever the config);
        `repeats` > 1 trains on it that many times per epoch (see PassageOnly)."""
        return self.score(passage, PassageOnly(repeats), seed)

    def documents_of(self, passage: Passage, self_edit: str) -> int:
        """How many training documents `self_edit` gives (its pieces and the passage): the PassageOnly
        repeats that match its optimiser steps."""
        return len(self.inner_job(passage, self_edit).examples)


def load_task(model: str = "embedded", device: str | None = None, seed: int = 0, model_options: dict | None = None,
              dtype: str = "auto",
              **options) -> KnowledgeTask:
    """Load `model` (a spec for `models.load_model`, with its `model_options`) and build a KnowledgeTask on
    it: a picklable recipe for executors whose workers build their own task, `partial(load_task, "embedded",
    inner=...)`."""
    from ..models import load_model

    loaded, tokenizer = load_model(model, device=device, seed=seed, options=model_options, dtype=dtype)
    return KnowledgeTask(loaded, tokenizer, **options)


RECITE_WORDS = 12  # a run this long shared with the passage is recitation, not an answer


def answer_style(answers: list[str], context: str, span: int = RECITE_WORDS) -> dict:
    """How a model answers, beside whether it is right: `words`, the mean answer length in words, and
    `recites`, the share of answers that repeat the passage verbatim (share a run of `span` or more
    consecutive words with it, case and punctuation aside). A model that answers "Who designed the
    lighthouse?" by reciting the passage from its first sentence scores high on `recites` and may
    still be graded right by a lenient grader."""
    def words(text: str) -> list[str]:
        return re.findall(r"\w+", text.lower())

    source = words(context)
    runs = {tuple(source[i:i + span]) for i in range(len(source) - span + 1)}
    said = [words(a) for a in answers]
    recited = [any(tuple(w[i:i + span]) in runs for i in range(len(w) - span + 1)) for w in said]
    n = max(len(answers), 1)
    return {"words": sum(map(len, said)) / n, "recites": sum(recited) / n}
