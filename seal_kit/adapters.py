"""Adapter slots: one named LoRA adapter on a peft model, and base weights put back after a merge.

    from seal_kit.adapters import AdapterSlot, base_weights_restored
    slot = AdapterSlot.add(model, "generator", config)   # config: rank, alpha, dropout, target_modules
    slot.model                    # the peft model (a plain model is wrapped, its first slot named "default")
    slot.reset(seed=0)            # A random under the seed, B zero: the adapted model equals the base
    slot.save("round-0/generator")   # standard peft format, swapped into place: a crash leaves old or new
    slot.load("round-0/generator")   # what `save` wrote, back into this slot
    slot.merge()                  # θ <- θ + Δ; the adapter is zero again
    with slot.merged():           # answer with θ + Δ folded in (fast on a CPU); θ put back on exit
    with base_weights_restored(model):   # merges and full fine-tunes inside are undone on exit
        ...

The inner loop owns the "default" slot (re-initialised for every candidate), the outer loop's
generator a second one on the same base; both go through this one mechanism for init, files and merging.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file

DEFAULT = "default"  # peft saves this adapter at the top of a folder, any other in <folder>/<name>/


class AdapterSlot:
    """The LoRA adapter `name` of peft model `model`."""

    def __init__(self, model, name: str):
        self.model, self.name = model, name

    @classmethod
    def add(cls, model, name: str, config) -> AdapterSlot:
        """A new adapter from `config`'s rank, alpha, dropout and target_modules: a plain model is wrapped
        into a peft model (then `slot.model`), a peft model gets one more adapter, left inactive."""
        lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                          target_modules=config.target_modules, task_type="CAUSAL_LM")
        if hasattr(model, "peft_config"):
            model.add_adapter(name, lora)
        else:
            model = get_peft_model(model, lora, adapter_name=name)
        return cls(model, name)

    def layers(self) -> list[LoraLayer]:
        return [m for m in self.model.modules() if isinstance(m, LoraLayer) and self.name in m.lora_A]

    def reset(self, seed: int) -> None:
        """A freshly initialised adapter (A random under `seed`, B zero): the adapted model equals the base."""
        torch.manual_seed(seed)
        for layer in self.layers():
            layer.reset_lora_parameters(self.name, init_lora_weights=True)

    def state(self) -> dict[str, torch.Tensor]:
        """A copy of the adapter's weights (`set_state` puts them back)."""
        return {k: v.clone() for k, v in get_peft_model_state_dict(self.model, adapter_name=self.name).items()}

    def set_state(self, weights: dict[str, torch.Tensor], source: str = "these weights") -> None:
        result = set_peft_model_state_dict(self.model, weights, adapter_name=self.name)
        if result.unexpected_keys:
            raise ValueError(f"{source} do not fit this model's {self.name!r} adapter (unexpected weights such as "
                             f"{result.unexpected_keys[0]}): saved from another model or LoRA config?")

    def save(self, path: str | Path) -> None:
        """The adapter in standard peft format at `path`. Written beside, then swapped in: the old folder
        is renamed aside before the new one is renamed into place, so a crash at any moment leaves the
        old or the new adapter on disk (`load` finds an old one left aside), never none."""
        path = Path(path)
        tmp, aside = path.with_name(f".{path.name}.tmp"), _aside(path)
        if aside.exists() and not path.exists():  # an earlier save was cut between its two renames
            aside.rename(path)
        shutil.rmtree(aside, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(str(tmp), selected_adapters=[self.name])
        _fsync_tree(tmp)
        if path.exists():
            path.rename(aside)
        tmp.rename(path)
        _fsync(path.parent)
        shutil.rmtree(aside, ignore_errors=True)

    def load(self, path: str | Path) -> None:
        """Weights that `save` wrote (from a model with the same LoRA config) into this slot."""
        path = Path(path)
        if not path.exists() and _aside(path).exists():
            path = _aside(path)
        file = path / ("" if self.name == DEFAULT else self.name) / "adapter_model.safetensors"
        if not file.exists():
            raise FileNotFoundError(f"{file} does not exist: {path} holds no saved {self.name!r} adapter")
        self.set_state(load_file(str(file), device=str(self.model.device)), source=str(path))

    @contextlib.contextmanager
    def merged(self):
        """Context: the model answers with this adapter folded into copies of the base weights (W + BA
        computed once), peft's per-layer LoRA matmuls off; on exit the original weights are put back as
        they were (swapped, never subtracted, so they come back bit for bit). On a CPU in float32 this
        makes generation with an adapter as fast as without (the LoRA matmuls of a decode step cost more
        than the base's); it holds a second copy of the adapted weights while inside."""
        if self.model.active_adapter != self.name:
            raise RuntimeError(f"adapter {self.name!r} is not the active one ({self.model.active_adapter!r}); "
                               "merging it would answer with another model than the one standing")
        layers = self.layers()
        if any(layer.disable_adapters for layer in layers):  # adapters switched off: the model standing is the base
            yield self.model
            return
        swapped = []
        try:
            with torch.no_grad():
                for layer in layers:
                    weight = layer.get_base_layer().weight
                    swapped.append((weight, weight.data))
                    weight.data = weight.data + layer.get_delta_weight(self.name).to(weight.dtype)
            with self.model.disable_adapter():
                yield self.model
        finally:
            for weight, data in swapped:
                weight.data = data

    @torch.no_grad()
    def merge(self) -> None:
        """Add the adapter's update into the base weights and zero the adapter. Done by hand: peft's own
        merge is undone whenever adapters are disabled, and baselines disable them."""
        for layer in self.layers():
            weight = layer.get_base_layer().weight
            weight += layer.get_delta_weight(self.name).to(weight.dtype)
            torch.nn.init.zeros_(layer.lora_B[self.name].weight)


def _aside(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Every file and folder under `folder` on disk before a rename makes it the saved adapter."""
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(root) / name)
        _fsync(Path(root))


@contextlib.contextmanager
def base_weights_restored(model):
    """Every base (non-LoRA) weight copied to the CPU on entry and copied back on exit, exception or not:
    merged adapters and full fine-tunes inside leave the model as it was."""
    with torch.no_grad():
        saved = [(p, p.detach().to("cpu", copy=True)) for n, p in model.named_parameters() if "lora_" not in n]
    try:
        yield model
    finally:
        with torch.no_grad():
            for param, copy in saved:
                param.copy_(copy)
