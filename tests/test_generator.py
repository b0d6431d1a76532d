"""The generator: its SFT update, merging, and reading a ReST-EM run's saved generator back."""
import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from seal_kit.adapters import AdapterSlot
from seal_kit.knowledge.cpt import trained_generator
from seal_kit.generator import CONFIG_FILE, GENERATOR, Generator, GeneratorConfig, saved_generator
from seal_kit.inner_loop import InnerLoopConfig, collate, encode_examples
from seal_kit.knowledge.task import KnowledgeTask
from seal_kit.models import load_model
from seal_kit.rest_em import RestEM
from test_rest_em import HELD_OUT, TRAIN, config, make_loop


def test_generator_update_teaches_the_kept_edits_and_is_off_during_the_inner_loop(tmp_path):
    model, tokenizer = load_model("tiny", seed=0)
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, alpha=8, epochs=1))
    generator = Generator(task.inner, GeneratorConfig(rank=4, alpha=8, lr=1e-2, epochs=5))
    pair = (task.self_edit_prompt(TRAIN[0]), "Velmora Island has a capital called Pellin Harbour.")
    batch = collate(encode_examples(tokenizer, [pair], 1024), tokenizer.pad_token_id)

    def loss():
        with torch.no_grad(), generator.active():
            return model(**batch).loss.item()

    before = loss()
    with torch.no_grad():
        inner_before = model(**batch).loss.item()  # the inner loop's adapter is the active one
    generator.update([pair], seed=0, progress=False)
    assert loss() < before - 1.0
    with torch.no_grad():
        assert model(**batch).loss.item() == pytest.approx(inner_before)  # the student is untouched (stack)


def test_merge_moves_the_update_into_the_base_weights(tmp_path):
    model, tokenizer = load_model("tiny", seed=0)
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, alpha=8, epochs=1))
    generator = Generator(task.inner, GeneratorConfig(rank=4, alpha=8, lr=1e-2, epochs=3, update="merge"))
    pair = (task.self_edit_prompt(TRAIN[0]), "A statement about Velmora Island.")
    batch = collate(encode_examples(tokenizer, [pair], 1024), tokenizer.pad_token_id)
    generator.update([pair], seed=0, progress=False)
    with torch.no_grad(), generator.active():
        adapted = model(**batch).logits
    generator.merge()
    with torch.no_grad(), task.inner.base_model():  # adapters off: the merged base alone
        merged = model(**batch).logits
    assert torch.allclose(adapted, merged, atol=1e-4)


@pytest.mark.parametrize("update", ["stack", "merge"])
def test_a_rest_em_run_is_read_back_config_and_updates(tmp_path, update):
    cfg = config(generator=dataclasses.replace(config().generator, update=update))
    loop = make_loop(tmp_path / "run", cfg)
    assert loop.run()
    assert json.loads((tmp_path / "run" / CONFIG_FILE).read_text()) == dataclasses.asdict(cfg.generator)
    saved, updates = saved_generator(tmp_path / "run")
    assert saved == cfg.generator
    assert updates == [tmp_path / "run" / f"round-{r}" / "generator" for r in (0, 1)]
    if update == "stack":  # CPT finds the generator the loop ended with (config.yaml has no rest_em key here)
        def generator_weights(model):
            return {n: p.detach().clone() for n, p in model.named_parameters() if ".generator." in n}

        ended = generator_weights(loop.task.inner.model)
        model, tokenizer = load_model("tiny", seed=0)
        inner = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, alpha=8)).inner
        with trained_generator(inner, tmp_path / "run") as generator:
            found = generator_weights(generator)
        assert found.keys() == ended.keys() and all(torch.equal(found[n], ended[n]) for n in ended)


def test_an_update_counts_once_its_round_finished_and_a_changed_config_is_refused(tmp_path):
    loop = make_loop(tmp_path / "run", config(rounds=1))
    assert loop.run()
    assert len(saved_generator(tmp_path / "run")[1]) == 1
    (tmp_path / "run" / "round-0" / "summary.json").unlink()  # as if cut between the update and its summary
    assert saved_generator(tmp_path / "run")[1] == []
    other = config(rounds=1, generator=GeneratorConfig(rank=8, alpha=16, epochs=1))
    with pytest.raises(ValueError, match="another generator config"):
        RestEM(loop.task, TRAIN, HELD_OUT, other, loop.store)


def test_a_folder_that_is_no_rest_em_run_is_named(tmp_path):
    with pytest.raises(ValueError, match="not a ReST-EM run directory"):
        saved_generator(tmp_path)


@pytest.mark.parametrize("update", ["stack", "merge"])
def test_each_update_starts_fresh_on_merged_weights_or_from_the_last_update_when_stacked(tmp_path, monkeypatch, update):
    """merge (the reference's way): every round's update trains a fresh generator adapter, initialised
    under the round's seed, on base weights holding the earlier updates; stack: it continues the last
    saved update on the untouched base."""
    import seal_kit.generator

    class SeenRoundOne(Exception):
        pass

    starts, real_train = [], seal_kit.generator.train_lora

    def record_start(model, *args, **kwargs):  # what each update trains from; round 1's is not trained
        starts.append({"adapter": AdapterSlot(model, GENERATOR).state(),
                       "base": {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}})
        if len(starts) == 2:
            raise SeenRoundOne
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(seal_kit.generator, "train_lora", record_start)
    cfg = config(rounds=2, eval_k=0, generator=dataclasses.replace(config().generator, update=update))
    loop = make_loop(tmp_path / "run", cfg)
    with pytest.raises(SeenRoundOne):
        loop.run()

    def same(a, b):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    model, tokenizer = load_model("tiny", seed=0)  # a fresh generator adapter, initialised as round r's is
    fresh = Generator(KnowledgeTask(model, tokenizer, loop.task.inner.config).inner, cfg.generator).slot

    def fresh_init(seed):
        fresh.reset(seed)
        return fresh.state()

    round_0 = load_file(str(tmp_path / "run" / "round-0" / "generator" / GENERATOR / "adapter_model.safetensors"))
    assert same(starts[0]["adapter"], fresh_init(cfg.seed + 0))
    if update == "merge":
        assert same(starts[1]["adapter"], fresh_init(cfg.seed + 1)) and not same(starts[1]["adapter"], round_0)
        assert not same(starts[1]["base"], starts[0]["base"])  # round 0's update is in the base weights
    else:
        assert same(starts[1]["adapter"], round_0) and not same(starts[1]["adapter"], fresh_init(cfg.seed + 1))
        assert same(starts[1]["base"], starts[0]["base"])
