"""The generator: the model writing self-edits, a second LoRA adapter beside the inner loop's on one base.

    from seal_kit.generator import Generator, GeneratorConfig, saved_generator
    generator = Generator(task.inner, GeneratorConfig(rank=64, alpha=128))
    table = generator.sample(rows, SamplingConfig(k=5))   # one self-edit per row {"prompt": ...}
    generator.update(list(zip(prompts, edits)), seed=0)   # SFT on kept (prompt -> self-edit) pairs
    generator.save(round_dir(run.path, 0) / "generator")
    config, updates = saved_generator(run.path)           # what a ReST-EM run directory holds
    for path in updates:
        generator.restore(path)                           # stacked: the last one stands; merged: each folded in

Two ways to accumulate updates (`GeneratorConfig.update`): "stack" continues one adapter from its last
saved state each round; "merge", the reference's, folds each update into the base weights and trains
the next one as a fresh adapter, initialised under that round's seed, on the merged model.

The outer loop (`seal_kit.rest_em`) trains it; continued pretraining (`cpt.trained_generator`) and
the Ray workers (`executors`) rebuild it from a run directory through `saved_generator`, which reads
only what RestEM writes: `generator.json` (this config, written when the run starts) and, per finished
round, `round-<r>/summary.json` (whether it updated) and `round-<r>/generator/` (the update).
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from .adapters import AdapterSlot
from .inner_loop import ADAPTER, InnerLoop, InnerLoopConfig, encode_examples, train_lora
from .self_edit import SamplingConfig, sample_self_edits
from .strategies import Strategy

GENERATOR = "generator"  # the adapter's name, and its saved folder inside round-<r>/generator/
CONFIG_FILE = "generator.json"


@dataclass
class GeneratorConfig(InnerLoopConfig):
    """LoRA SFT of the generator on kept (prompt -> self-edit) pairs (paper: r 64, alpha 128, lr 3e-4, 2 epochs)."""
    rank: int = field(default=64, metadata={"help": "generator LoRA rank (paper: 64)"})
    alpha: int = field(default=128, metadata={"help": "generator LoRA alpha (paper: 128)"})
    lr: float = field(default=3e-4, metadata={"help": "generator learning rate (paper: 3e-4)"})
    epochs: int = field(default=2, metadata={"help": "passes over the kept pairs (paper: 2)"})
    batch_size: int = field(default=1, metadata={
        "help": "kept pairs per batch (the reference: an effective batch of 10 = batch_size x grad_accumulation)"})
    max_length: int = field(default=1024, metadata={"help": "prompt + self-edit tokens kept"})
    update: str = field(default="stack", metadata={
        "help": "'stack': one generator adapter trained on round after round, off during the inner loop; "
                "'merge' (the paper's): each update merged into the base weights, and the next round's update a "
                "fresh adapter (initialised under its round's seed) trained on the merged weights; the inner loop "
                "then adapts the merged weights too"})

    def __post_init__(self):
        super().__post_init__()
        if self.update not in ("stack", "merge"):
            raise ValueError(f"GeneratorConfig.update must be 'stack' or 'merge', got {self.update!r}")


class Generator:
    """The self-edit writer: a LoRA adapter named "generator" beside the inner loop's on one base model."""

    def __init__(self, inner: InnerLoop, config: GeneratorConfig):
        self.inner, self.config = inner, config
        self.model = inner.model
        if GENERATOR in self.model.peft_config:
            raise ValueError("this model already carries a generator adapter (a RestEM was built on it before, and a "
                             "merged update may already be in its weights): load the model again to resume a run")
        self.slot = AdapterSlot.add(self.model, GENERATOR, config)
        self.model.set_adapter(ADAPTER)

    @contextlib.contextmanager
    def active(self):
        """Sample self-edits from the generator; the inner loop's adapter is off meanwhile."""
        self.model.set_adapter(GENERATOR)
        try:
            yield self.model
        finally:
            self.model.set_adapter(ADAPTER)

    def sample(self, rows: list[dict], sampling: SamplingConfig, saved: Path | None = None, progress: bool = True,
               desc: str = "sampling self-edits", accept=None, schema: dict | None = None,
               strategy: Strategy | None = None, contexts: list | None = None, render=None) -> pd.DataFrame:
        """One self-edit per row (`self_edit.sample_self_edits`, drawn again while `accept` refuses it) from the
        generator as it stands; with a `strategy` of stages, written by it (`Strategy.write`: rows[n] about
        contexts[n], each stage's text given to the model through `render`). The vllm backend serves the base
        weights plus the saved generator update `saved` (None: none yet)."""
        adapter = None
        if sampling.backend == "vllm" and saved is not None:
            if self.config.update == "merge":
                raise ValueError("the vllm sampling backend serves the base weights plus the saved generator "
                                 "adapter: use generator.update='stack' with it")
            adapter = str(Path(saved) / GENERATOR)
        with self.active() as model:
            if strategy is not None:
                return strategy.write(model, self.inner.tokenizer, rows, contexts, sampling, render, progress, desc,
                                      adapter)
            return sample_self_edits(model, self.inner.tokenizer, rows, sampling, progress, desc=desc, adapter=adapter,
                                     accept=accept, schema=schema)

    def update(self, pairs: list[tuple[str, str]], seed: int, start: Path | None = None, progress: bool = True):
        """SFT on (prompt, self-edit) pairs, loss on the self-edit only, from a fresh adapter or from the
        saved state `start` (a stacked generator's last update): never from whatever is in memory, so
        an update cut short and run again starts where the first attempt did."""
        if start is None:
            self.slot.reset(seed)
        else:
            self.slot.load(start)
        encoded = encode_examples(self.inner.tokenizer, pairs, self.config.max_length)
        try:
            result = train_lora(self.model, encoded, self.inner.tokenizer.pad_token_id, self.config, GENERATOR, seed,
                                progress, desc="generator SFT")
        finally:
            self.model.set_adapter(ADAPTER)
        return result

    def save(self, path: Path) -> None:
        """Standard peft format in `path/generator/`, swapped into place (`AdapterSlot.save`)."""
        self.slot.save(path)

    def merge(self) -> None:
        """Add the update into the base weights and zero the adapter."""
        self.slot.merge()

    def restore(self, path: Path) -> bool:
        """Replay one saved update: load it, and fold it into the base weights if updates merge.
        Returns whether the base weights changed."""
        self.slot.load(path)
        if self.config.update == "merge":
            self.merge()
            return True
        return False


def round_dir(run_dir: str | Path, r: int) -> Path:
    """Where a ReST-EM run keeps round r's files (edits, kept, summary, generator update)."""
    return Path(run_dir) / f"round-{r}"


def saved_generator(run_dir: str | Path) -> tuple[GeneratorConfig, list[Path]]:
    """The generator a ReST-EM run directory holds: its config and the folders of its updates in round
    order, over the rounds finished so far (an update counts once its round's summary says so)."""
    run_dir = Path(run_dir)
    updates = []
    r = 0
    while (summary := round_dir(run_dir, r) / "summary.json").exists():
        if json.loads(summary.read_text()).get("updated"):
            updates.append(round_dir(run_dir, r) / "generator")
        r += 1
    return _saved_config(run_dir), updates


def _saved_config(run_dir: Path) -> GeneratorConfig:
    if (run_dir / CONFIG_FILE).exists():
        return GeneratorConfig(**json.loads((run_dir / CONFIG_FILE).read_text()))
    # Runs started before RestEM wrote generator.json: notebook 03 put the config into config.yaml.
    config = run_dir / "config.yaml"
    saved = (yaml.safe_load(config.read_text()) or {}).get("rest_em", {}) if config.exists() else {}
    if "generator" not in saved:
        raise ValueError(f"{run_dir} holds no {CONFIG_FILE} (nor, as older runs, a config.yaml with rest_em.generator):"
                         " not a ReST-EM run directory; give the RUN_DIR of a 03_rest_em run")
    return GeneratorConfig(**saved["generator"])
