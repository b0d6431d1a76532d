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
document to 2048 tokens and trained on the pads).
"""
from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field

import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from tqdm.auto import tqdm

ADAPTER = "default"  # peft saves the "default" adapter at the top of a folder


@dataclass
class InnerLoopConfig:
    rank: int = field(default=32, metadata={"help": "LoRA rank (paper: 32)"})
    alpha: int = field(default=64, metadata={"help": "LoRA alpha (paper: 64)"})
    dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (paper: 0)"})
    target_modules: str | list[str] = field(
        default="all-linear",
        metadata={"help": "modules to adapt; 'all-linear' = every attention and MLP projection "
                          "(the reference left this unset and adapted only q/v)"})
    lr: float = field(default=1e-3, metadata={"help": "learning rate (paper: 1e-3)"})
    epochs: int = field(default=10, metadata={"help": "passes over the documents (paper: 10)"})
    batch_size: int = field(default=1, metadata={"help": "documents per step (paper: 1)"})
    max_length: int = field(default=512, metadata={"help": "documents are truncated to this many tokens"})


@dataclass
class InnerLoopResult:
    losses: list[float]  # one per optimiser step
    steps: int
    tokens: int  # real (non-pad) tokens trained on, summed over steps
    seconds: float


def collate(examples: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example; labels are -100 on pads so they never enter the loss."""
    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, :len(e)] = torch.tensor(e)
        mask[row, :len(e)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}  # (B, T)


class InnerLoop:
    """One base model, one LoRA adapter slot, re-initialised for every candidate."""

    def __init__(self, model, tokenizer, config: InnerLoopConfig | None = None):
        self.config = config or InnerLoopConfig()
        self.tokenizer = tokenizer
        if hasattr(model, "peft_config"):
            raise ValueError("this model already carries a LoRA adapter (an InnerLoop or KnowledgeTask was built on it "
                             "before): reuse that one, or load the model again for a different inner-loop config")
        if self.config.epochs < 1 or self.config.batch_size < 1:
            raise ValueError(f"InnerLoopConfig.epochs and batch_size must be >= 1, got {self.config.epochs} and "
                             f"{self.config.batch_size} (the base model's baseline is the no-training control)")
        lora = LoraConfig(r=self.config.rank, lora_alpha=self.config.alpha, lora_dropout=self.config.dropout,
                          target_modules=self.config.target_modules, task_type="CAUSAL_LM")
        self.model = get_peft_model(model, lora, adapter_name=ADAPTER)
        self.model.eval()

    @property
    def device(self):
        return self.model.device

    def reset(self, seed: int) -> None:
        """A freshly initialised adapter (A random under `seed`, B zero): the adapted model equals the base."""
        torch.manual_seed(seed)
        for module in self.model.modules():
            if isinstance(module, LoraLayer):
                module.reset_lora_parameters(ADAPTER, init_lora_weights=True)

    def encode(self, documents: list[str]) -> list[list[int]]:
        eos = self.tokenizer.eos_token_id
        limit = self.config.max_length - 1
        ids = self.tokenizer(documents, add_special_tokens=True)["input_ids"]
        if any(len(x) > limit for x in ids):
            warnings.warn(f"{sum(len(x) > limit for x in ids)} training document(s) longer than "
                          f"InnerLoopConfig.max_length={self.config.max_length} tokens were cut; facts past the cut "
                          "cannot be learned (raise max_length)", stacklevel=2)
        return [x[:limit] + [eos] for x in ids]  # EOS teaches where a document ends

    def train(self, documents: list[str], seed: int = 0, progress: bool = False) -> InnerLoopResult:
        """Reset the adapter under `seed`, then SFT it on `documents` (causal-LM loss on every real token)."""
        if not documents:
            raise ValueError("InnerLoop.train needs at least one document; got an empty list")
        cfg = self.config
        began = time.perf_counter()
        self.reset(seed)
        examples = self.encode(documents)
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        order_rng = torch.Generator().manual_seed(seed)
        losses, tokens = [], 0
        steps_per_epoch = -(-len(examples) // cfg.batch_size)
        bar = tqdm(total=cfg.epochs * steps_per_epoch, desc="inner loop", disable=not progress, leave=False)
        self.model.train()
        for _ in range(cfg.epochs):
            order = torch.randperm(len(examples), generator=order_rng).tolist()
            for start in range(0, len(order), cfg.batch_size):
                batch = collate([examples[i] for i in order[start:start + cfg.batch_size]], self.tokenizer.pad_token_id)
                batch = {k: v.to(self.device) for k, v in batch.items()}
                loss = self.model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
                tokens += int(batch["attention_mask"].sum())
                bar.update(1)
        bar.close()
        self.model.eval()
        return InnerLoopResult(losses, len(losses), tokens, time.perf_counter() - began)

    @contextlib.contextmanager
    def base_model(self):
        """The base model θ with the adapter switched off (no copy, no reload)."""
        with self.model.disable_adapter():
            yield self.model

    def save_adapter(self, path) -> None:
        """The current adapter in standard peft format (`PeftModel.from_pretrained(base, path)` loads it)."""
        self.model.save_pretrained(str(path), selected_adapters=[ADAPTER])
