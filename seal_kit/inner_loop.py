"""Inner loop: fine-tune a LoRA adapter on a self-edit's documents, `θ' = SFT(θ, SE)`.

    from seal_kit.inner_loop import InnerLoop, InnerLoopConfig
    inner = InnerLoop(model, tokenizer, InnerLoopConfig(epochs=10))   # wraps the base model once
    result = inner.train(docs.texts, seed=0)      # fresh adapter -> trained; result.losses per step
    with inner.base_model():                      # the frozen base, adapter switched off
        ...
    inner.save_adapter("outputs/runs/x/adapter")  # standard peft format

The base model is loaded once per process and wrapped once; every `train` call re-initialises the
same adapter's weights under its seed instead of reloading or copying the base. Batches are padded
only to their longest document, and pad positions never enter the loss (the reference padded every
document to 2048 tokens and trained on the pads: `pad_to=2048` emulates it for A/B studies). The
reference's Hugging Face Trainer defaults are switches too: `schedule` (constant here, linear decay
there, cosine with `warmup_ratio` for ARC), `max_grad_norm` (off here, 1.0 there) and
`grad_accumulation` (effective batch = batch_size x grad_accumulation). Examples are documents (loss on every token) or
(prompt, completion) pairs (loss on the completion only): `train_lora` is the one SFT mechanism,
shared with the outer loop's generator update.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .adapters import DEFAULT, AdapterSlot

ADAPTER = DEFAULT  # the inner loop's adapter slot; peft saves it at the top of a folder


SCHEDULES = ("constant", "linear", "cosine")


@dataclass
class InnerLoopConfig:
    rank: int = field(default=32, metadata={"help": "LoRA rank (paper: 32)"})
    alpha: int = field(default=64, metadata={"help": "LoRA alpha (paper: 64)"})
    dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (paper: 0)"})
    target_modules: str | list[str] = field(
        default="all-linear",
        metadata={"help": "modules to adapt: all-linear (every attention and MLP projection) or names, as a list "
                          "or comma-separated; the reference: q_proj,v_proj (it left this unset: peft's q/v)"})
    lr: float = field(default=1e-3, metadata={"help": "learning rate (paper: 1e-3)"})
    epochs: int = field(default=10, metadata={"help": "passes over the documents (paper: 10)"})
    batch_size: int = field(default=1, metadata={"help": "documents per step (paper: 1)"})
    max_length: int = field(default=512, metadata={
        "help": "longest training document in tokens, longer ones are cut (ours: 512; the reference: 2048)"})
    schedule: str = field(default="constant", metadata={
        "help": "learning-rate schedule over the optimiser steps: constant (ours), linear (decay to 0; the "
                "reference's Trainer default) or cosine (ARC's test-time training)"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "share of the optimiser steps spent warming up from 0"})
    max_grad_norm: float | None = field(default=None, metadata={
        "help": "clip the gradient to this norm before each step; None: no clipping (the reference's Trainer: 1.0)"})
    grad_accumulation: int = field(default=1, metadata={
        "help": "batches whose gradients are summed before each optimiser step (effective batch = batch_size x this)"})
    pad_to: int | None = field(default=None, metadata={
        "help": "the reference's padding, emulated for A/B studies: every example padded to this many tokens with "
                "the pads inside the loss (reference: 2048). None: pads never enter the loss"})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "recompute activations in the backward pass: less memory for long examples (ARC, 7B models), "
                "about a third more compute"})

    def __post_init__(self):
        name = type(self).__name__
        if isinstance(self.target_modules, str) and self.target_modules != "all-linear":
            self.target_modules = [m.strip() for m in self.target_modules.split(",") if m.strip()]
        if not self.target_modules:
            raise ValueError(f"{name}.target_modules: name the modules to adapt ('all-linear', 'q_proj,v_proj', ...)")
        if self.epochs < 1 or self.batch_size < 1 or self.rank < 1 or self.grad_accumulation < 1:
            raise ValueError(f"{name}: epochs, batch_size, grad_accumulation and rank must be >= 1, got {self.epochs}, "
                             f"{self.batch_size}, {self.grad_accumulation} and {self.rank} (the base model is the "
                             "no-training control)")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"{name}.schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"{name}.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError(f"{name}.max_grad_norm must be > 0 or None (no clipping), got {self.max_grad_norm}")
        if self.pad_to is not None and self.pad_to < 2:
            raise ValueError(f"{name}.pad_to must be a token count (reference: 2048) or None, got {self.pad_to}")


def lr_factor(config: InnerLoopConfig, step: int, total: int) -> float:
    """The learning rate of optimiser step `step` (0-based) of `total`, as a share of `config.lr`: the
    formulas of transformers' get_scheduler ("constant_with_warmup", "linear", "cosine"), so a run with the
    reference's Trainer settings follows the same curve."""
    warmup = math.ceil(config.warmup_ratio * total)
    if step < warmup:
        return step / max(1, warmup)
    if config.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if config.schedule == "linear":
        return max(0.0, 1.0 - progress)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


@dataclass
class InnerLoopResult:
    losses: list[float]  # one per optimiser step
    steps: int
    tokens: int  # real (non-pad) tokens trained on, summed over steps
    seconds: float


Example = tuple[list[int], list[int]]  # (input ids, labels); label -100 = no loss on that token


def encode_examples(tokenizer, examples: list[str | tuple[str, str]], max_length: int) -> list[Example]:
    """Token ids and labels for training. A string is a document: loss on every token. A (prompt,
    completion) pair gets loss on the completion only; prompt and completion are tokenized apart and
    joined, so the boundary is exact for any tokenizer (the reference hard-coded Llama-3 token ids)."""
    eos, bos = tokenizer.eos_token_id, tokenizer.bos_token
    encoded, cut = [], 0
    for example in examples:
        prompt, completion = ("", example) if isinstance(example, str) else example
        head = tokenizer(prompt, add_special_tokens=not (bos and prompt.startswith(bos)))["input_ids"] if prompt else []
        # a document may already begin with the BOS text (a chat rendering): it must not get a second BOS
        special = not prompt and not (bos and completion.startswith(bos))
        body = tokenizer(completion, add_special_tokens=special)["input_ids"] + [eos]  # EOS: where it ends
        ids, labels = head + body, [-100] * len(head) + body
        if len(ids) > max_length:  # keep the EOS, cut before it
            cut += 1
            ids, labels = ids[:max_length - 1] + [eos], labels[:max_length - 1] + [eos]
        encoded.append((ids, labels))
    if cut:
        warnings.warn(f"{cut} training example(s) longer than max_length={max_length} tokens were cut; what lies "
                      "past the cut cannot be learned (raise max_length)", stacklevel=3)
    return encoded


def collate(examples: list[Example], pad_id: int, pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example; labels are -100 on pads so they never enter the loss.
    `pad_to`: the reference's way instead: pad to that many tokens (at least), pads labelled as the pad
    token, so the loss averages over them too (attention still masks them)."""
    width = max(max(len(ids) for ids, _ in examples), pad_to or 0)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100 if pad_to is None else pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        ids[row, :len(x)], labels[row, :len(y)], mask[row, :len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}  # (B, T)


def adapter_parameters(model, adapter: str) -> list[torch.nn.Parameter]:
    """The LoRA weights of one named adapter, made trainable; every other LoRA weight is frozen."""
    chosen = []
    for name, param in model.named_parameters():
        if "lora_" in name:
            param.requires_grad_(f".{adapter}." in name)
            if param.requires_grad:
                chosen.append(param)
    return chosen


def base_parameters(model, trainable: bool) -> list[torch.nn.Parameter]:
    """Every weight that is not LoRA (full fine-tuning), made trainable or frozen again."""
    chosen = [param for name, param in model.named_parameters() if "lora_" not in name]
    for param in chosen:
        param.requires_grad_(trainable)
    return chosen


def train_lora(model, encoded: list[Example], pad_id: int, config: InnerLoopConfig, adapter: str | None,
               seed: int = 0, progress: bool = False, desc: str = "inner loop") -> InnerLoopResult:
    """SFT of one named LoRA adapter of a peft model (its current weights are the start) on encoded
    examples (`encode_examples`); `adapter=None` fine-tunes every base weight instead, with the adapters
    switched off (the caller restores them, see `adapters.base_weights_restored`).

    The one training mechanism of the kit: the inner loop trains its per-candidate adapter with it, the
    outer loop the generator's, continued pretraining optionally the whole model."""
    if not encoded:
        raise ValueError("training needs at least one example; got an empty list")
    if adapter is None:
        with model.disable_adapter():
            try:
                return _train(model, encoded, pad_id, config, base_parameters(model, True), seed, progress, desc)
            finally:
                base_parameters(model, False)
    model.set_adapter(adapter)
    return _train(model, encoded, pad_id, config, adapter_parameters(model, adapter), seed, progress, desc)


@contextlib.contextmanager
def checkpointing(model, enabled: bool):
    """Gradient checkpointing for the duration of one training run (generation wants it off)."""
    if not enabled:
        yield
        return
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        disable = model.activation_checkpointing_disable
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        disable = model.gradient_checkpointing_disable
    try:
        yield
    finally:
        disable()


def _train(model, encoded, pad_id, config, parameters, seed, progress, desc) -> InnerLoopResult:
    with checkpointing(model, config.gradient_checkpointing):
        return _train_steps(model, encoded, pad_id, config, parameters, seed, progress, desc)


def batch_order(n: int, batch_size: int, epochs: int, seed: int) -> list[list[int]]:
    """The example indices of each optimiser step: every epoch a fresh permutation of the `n` examples
    under `seed`, cut into batches. The one order both the one-at-a-time and the batched loop follow."""
    order_rng = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=order_rng).tolist()
        batches += [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return batches


def optimiser_steps(config: InnerLoopConfig, batches: list[list[int]]) -> list[list[list[int]]]:
    """The batches of each optimiser step: `grad_accumulation` consecutive batches (the last step may
    have fewer, as the Trainer's)."""
    n = config.grad_accumulation
    return [batches[i:i + n] for i in range(0, len(batches), n)]


def _train_steps(model, encoded, pad_id, config, parameters, seed, progress, desc) -> InnerLoopResult:
    began = time.perf_counter()
    torch.manual_seed(seed)  # dropout masks, if any, depend on the seed alone, not on what ran before
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=0.0)
    steps = optimiser_steps(config, batch_order(len(encoded), config.batch_size, config.epochs, seed))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, len(steps)))
    losses, tokens = [], 0
    bar = tqdm(total=len(steps), desc=desc, disable=not progress, leave=False)
    model.train()
    try:
        for step in steps:
            total = 0.0
            for indices in step:  # gradients summed over the step's batches, each loss scaled as the Trainer does
                batch = collate([encoded[i] for i in indices], pad_id, config.pad_to)
                batch = {k: v.to(model.device) for k, v in batch.items()}
                loss = model(**batch).loss / len(step)
                loss.backward()
                total += loss.item()
                tokens += int(batch["attention_mask"].sum())
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(total)
            bar.update(1)
    finally:
        bar.close()
        model.eval()
    return InnerLoopResult(losses, len(losses), tokens, time.perf_counter() - began)


class InnerLoop:
    """One base model, one LoRA adapter slot, re-initialised for every candidate."""

    def __init__(self, model, tokenizer, config: InnerLoopConfig | None = None):
        self.config = config or InnerLoopConfig()
        self.tokenizer = tokenizer
        if hasattr(model, "peft_config"):
            raise ValueError("this model already carries a LoRA adapter (an InnerLoop or KnowledgeTask was built on it "
                             "before): reuse that one, or load the model again for a different inner-loop config")
        self.slot = AdapterSlot.add(model, ADAPTER, self.config)
        self.model = self.slot.model
        self.model.eval()

    @property
    def device(self):
        return self.model.device

    def reset(self, seed: int) -> None:
        """A freshly initialised adapter (A random under `seed`, B zero): the adapted model equals the base."""
        self.slot.reset(seed)

    def encode(self, examples: list[str | tuple[str, str]]) -> list[Example]:
        return encode_examples(self.tokenizer, examples, self.config.max_length)

    def train(self, examples: list[str | tuple[str, str]], seed: int = 0, progress: bool = False,
              fresh: bool = True, **overrides) -> InnerLoopResult:
        """Reset the adapter under `seed` (`fresh=False`: go on from it as it stands), then SFT it on
        `examples` (documents, or (prompt, completion) pairs with loss on the completion only).
        `overrides` replace config fields for this call only (a self-edit may choose its lr or epochs)."""
        if not examples:
            raise ValueError("InnerLoop.train needs at least one document; got an empty list")
        config = dataclasses.replace(self.config, **overrides) if overrides else self.config
        if fresh:
            self.reset(seed)
        return train_lora(self.model, self.encode(examples), self.tokenizer.pad_token_id, config, ADAPTER, seed, progress)

    def merge(self) -> None:
        """Fold the current adapter into the base weights (the adapted model becomes the new base θ)."""
        self.slot.merge()

    @contextlib.contextmanager
    def base_model(self):
        """The base model θ with the adapter switched off (no copy, no reload)."""
        with self.model.disable_adapter():
            yield self.model

    def save_adapter(self, path) -> None:
        """The current adapter in standard peft format (`PeftModel.from_pretrained(base, path)` loads it),
        replacing what `path` held."""
        self.slot.save(path)
