"""Adapter slots (reset, atomic save, load, merge) and restoring base weights, on a small random Llama."""
import shutil
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from seal_kit import adapters
from seal_kit.adapters import AdapterSlot, base_weights_restored
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.models import tiny_config

IDS = torch.tensor([[1, 5, 9, 13, 2, 7]])


def slots():
    """A plain model wrapped with its "default" slot, and a second slot "generator" beside it."""
    torch.manual_seed(0)
    default = AdapterSlot.add(LlamaForCausalLM(tiny_config(vocab_size=32)), "default", InnerLoopConfig(rank=4, alpha=8))
    return default, AdapterSlot.add(default.model, "generator", InnerLoopConfig(rank=2, alpha=4))


def weights(slot):
    return torch.cat([v.flatten() for v in slot.state().values()])


def randomize(slot, seed):
    """Some nonzero update in the slot (B too, so the adapter changes the model)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in slot.layers():
            for module in (layer.lora_A[slot.name], layer.lora_B[slot.name]):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.1)


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


def base_weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}


def test_reset_is_the_identity_and_depends_on_the_seed_only():
    default, generator = slots()
    model = default.model
    with model.disable_adapter():
        base = logits(model)
    randomize(default, 1)
    randomize(generator, 5)
    beside = weights(generator)
    assert not torch.allclose(logits(model), base)
    default.reset(seed=3)
    first = weights(default)
    assert torch.allclose(logits(model), base)  # B = 0
    randomize(default, 2)
    default.reset(seed=3)
    assert torch.equal(weights(default), first)
    assert torch.equal(weights(generator), beside)  # the other slot is left alone


@pytest.mark.parametrize("name", ["default", "generator"])
def test_save_then_load_gives_the_same_weights(tmp_path, name):
    slot = dict(zip(["default", "generator"], slots()))[name]
    randomize(slot, 1)
    saved = weights(slot)
    slot.save(tmp_path / "adapter")
    assert (tmp_path / "adapter" / ("" if name == "default" else name) / "adapter_model.safetensors").exists()
    randomize(slot, 2)
    slot.load(tmp_path / "adapter")
    assert torch.equal(weights(slot), saved)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # nothing left beside it


def test_loading_another_configs_adapter_is_refused(tmp_path):
    default, generator = slots()
    randomize(default, 1)
    default.save(tmp_path / "inner")
    (tmp_path / "inner" / "generator").mkdir()
    shutil.copy(tmp_path / "inner" / "adapter_model.safetensors", tmp_path / "inner" / "generator")
    with pytest.raises((ValueError, RuntimeError)):  # rank 4 weights into a rank 2 slot
        generator.load(tmp_path / "inner")
    with pytest.raises(FileNotFoundError, match="holds no saved 'generator' adapter"):
        generator.load(tmp_path / "nothing")


class Crash(Exception):
    pass


def crash_at(monkeypatch, step: int | None) -> list[str]:
    """Count every filesystem step of `save` (write, fsync, rename, delete) and raise before step `step`."""
    done = []

    def counted(name, real):
        def run(*args, **kwargs):
            if len(done) == step:
                raise Crash(name)
            done.append(name)
            return real(*args, **kwargs)
        return run

    monkeypatch.setattr(adapters, "_fsync", counted("fsync", adapters._fsync))
    monkeypatch.setattr(adapters.shutil, "rmtree", counted("rmtree", shutil.rmtree))
    monkeypatch.setattr(Path, "rename", counted("rename", Path.rename))
    return done


def test_a_save_cut_at_any_step_leaves_the_old_or_the_new_adapter(tmp_path, monkeypatch):
    default, _ = slots()
    randomize(default, 1)
    default.save(tmp_path / "adapter")
    old = weights(default)
    randomize(default, 2)
    new = weights(default)
    with monkeypatch.context() as m:  # an uncut save over the old one, to count its steps
        steps = crash_at(m, None)
        default.save(tmp_path / "adapter")
    assert steps.count("rename") == 2  # the old folder aside, the new one into place
    randomize(default, 1)
    default.save(tmp_path / "adapter")
    randomize(default, 2)
    for step in range(len(steps)):
        with monkeypatch.context() as m:
            crash_at(m, step)
            with pytest.raises(Crash):
                default.save(tmp_path / "adapter")
        randomize(default, 3)
        default.load(tmp_path / "adapter")  # a restarted process finds a whole adapter
        found = weights(default)
        assert torch.equal(found, old) or torch.equal(found, new), f"crash before step {step}"
        default.save(tmp_path / "adapter")  # and the next save cleans up after the cut one
        assert [p.name for p in tmp_path.iterdir()] == ["adapter"]
        randomize(default, 1)
        default.save(tmp_path / "adapter")
        randomize(default, 2)


def test_merge_moves_the_update_into_the_base_and_zeroes_the_adapter():
    default, _ = slots()
    randomize(default, 1)
    adapted = logits(default.model)
    default.merge()
    assert torch.allclose(logits(default.model), adapted, atol=1e-5)  # base + zero adapter
    with default.model.disable_adapter():
        assert torch.allclose(logits(default.model), adapted, atol=1e-5)  # the base alone carries it
    assert all(torch.count_nonzero(layer.lora_B["default"].weight) == 0 for layer in default.layers())


def test_base_weights_are_restored_after_a_merge_and_on_an_exception():
    default, _ = slots()
    model = default.model
    before = base_weights(model)
    with base_weights_restored(model):
        randomize(default, 1)
        default.merge()
        assert any(not torch.equal(p, before[n]) for n, p in base_weights(model).items())
    assert all(torch.equal(p, before[n]) for n, p in base_weights(model).items())
    with pytest.raises(Crash):
        with base_weights_restored(model):
            randomize(default, 2)
            default.merge()
            raise Crash
    assert all(torch.equal(p, before[n]) for n, p in base_weights(model).items())


def test_only_the_active_adapter_is_folded_in():
    model = LlamaForCausalLM(tiny_config(64))
    first = AdapterSlot.add(model, "default", InnerLoopConfig(rank=4))
    second = AdapterSlot.add(first.model, "other", InnerLoopConfig(rank=4))
    with pytest.raises(RuntimeError, match="adapter 'other' is not the active one"):
        with second.merged():
            pass
