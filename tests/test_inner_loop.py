import numpy as np
import pytest
import torch
from peft import PeftModel

from seal_kit.inner_loop import InnerLoop, InnerLoopConfig, batch_order, collate, lr_factor
from seal_kit.models import load_model

FACT = "Velmora Island\nThe capital of Velmora Island is Pellin Harbour, founded in 1622."
OTHER = "Thornite\nThornite is a blue crystal mined near Dunhaven since 1790 by the Karvonen family."


@pytest.fixture
def inner():
    model, tokenizer = load_model("tiny", seed=0)  # fresh per test: peft wraps the model in place
    return InnerLoop(model, tokenizer, InnerLoopConfig(rank=8, alpha=16, lr=1e-2, epochs=15))


def nll(inner, text):
    batch = collate(inner.encode([text]), inner.tokenizer.pad_token_id)
    with torch.no_grad():
        return inner.model(**batch).loss.item()


def logits(model, text, tokenizer):
    with torch.no_grad():
        return model(**tokenizer([text], return_tensors="pt")).logits


def test_collate_pads_right_and_masks_pads_out_of_the_labels():
    batch = collate([([5, 6, 7], [5, 6, 7]), ([8], [8])], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7], [8, -100, -100]]


def test_batch_order_permutes_every_epoch_under_the_seed_and_cuts_batches():
    steps = batch_order(5, batch_size=2, epochs=3, seed=0)
    assert [len(b) for b in steps] == [2, 2, 1] * 3
    epochs = [sum(steps[i:i + 3], []) for i in (0, 3, 6)]
    assert all(sorted(e) == list(range(5)) for e in epochs) and len({tuple(e) for e in epochs}) > 1
    assert batch_order(5, 2, 3, seed=0) == steps and batch_order(5, 2, 3, seed=1) != steps


def test_prompt_completion_pairs_put_the_loss_on_the_completion_only(inner):
    tok = inner.tokenizer
    (ids, labels), = inner.encode([("Title: Velmora\nImplications:", " The capital is Pellin Harbour.")])
    head = tok("Title: Velmora\nImplications:")["input_ids"]
    body = tok(" The capital is Pellin Harbour.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ids == head + body  # tokenized apart: the boundary is exact whatever the tokenizer merges
    assert labels == [-100] * len(head) + body
    doc_ids, doc_labels = inner.encode([FACT])[0]
    assert doc_ids == doc_labels and doc_ids[-1] == tok.eos_token_id


def test_completion_only_training_learns_the_completion_not_the_prompt(inner):
    pair = ("Velmora Island facts:", " Pellin Harbour is the capital.")
    batch = collate(inner.encode([pair]), inner.tokenizer.pad_token_id)
    prompt_only = collate(inner.encode([pair[0]]), inner.tokenizer.pad_token_id)
    with torch.no_grad():
        before, prompt_before = inner.model(**batch).loss.item(), inner.model(**prompt_only).loss.item()
    inner.train([pair], seed=0)
    with torch.no_grad():
        after, prompt_after = inner.model(**batch).loss.item(), inner.model(**prompt_only).loss.item()
    assert after < before - 1.0
    assert abs(prompt_after - prompt_before) < abs(after - before) / 2  # the prompt was not the target


def test_overrides_change_one_call_only(inner):
    assert inner.train([FACT], seed=0, epochs=2).steps == 2
    assert inner.train([FACT], seed=0).steps == 15


def test_pads_do_not_change_the_loss(inner):
    short, long = inner.encode(["Velmora", OTHER])
    with torch.no_grad():
        together = inner.model(**collate([short, long], inner.tokenizer.pad_token_id)).loss.item()
        alone = [inner.model(**collate([x], inner.tokenizer.pad_token_id)).loss.item() for x in (short, long)]
    predicted = [len(short[0]) - 1, len(long[0]) - 1]  # tokens that get a next-token loss in each example
    weighted = sum(loss * n for loss, n in zip(alone, predicted)) / sum(predicted)
    assert together == pytest.approx(weighted, rel=1e-4)


def test_inner_loop_learns_the_fact(inner):
    with inner.base_model():
        before = nll(inner, FACT)
    result = inner.train([FACT, OTHER], seed=0)
    assert result.steps == 30 and len(result.losses) == 30
    assert sum(result.losses[-4:]) / 4 < 0.5 * sum(result.losses[:4]) / 4  # loss falls
    assert nll(inner, FACT) < before - 1.0  # the trained fact became much more likely
    with inner.base_model():
        assert nll(inner, FACT) == pytest.approx(before)  # the base model is untouched


def test_fresh_adapter_per_candidate_and_determinism(inner):
    base = logits(inner.model.get_base_model(), FACT, inner.tokenizer)
    first = inner.train([FACT], seed=3)
    weights = {k: v.clone() for k, v in inner.model.state_dict().items() if "lora_" in k}
    inner.train([OTHER], seed=9)
    inner.reset(seed=3)  # a fresh adapter is the identity: B = 0
    assert torch.allclose(logits(inner.model, FACT, inner.tokenizer), base)
    again = inner.train([FACT], seed=3)
    assert again.losses == first.losses
    for k, v in inner.model.state_dict().items():
        if "lora_" in k:
            assert torch.equal(v, weights[k]), k
    other_seed = inner.train([FACT], seed=4)
    assert other_seed.losses != first.losses


def test_batch_size_and_empty_input(inner):
    inner.config.batch_size = 2
    assert inner.train([FACT, OTHER, FACT + " Again."], seed=0).steps == 15 * 2
    with pytest.raises(ValueError, match="at least one document"):
        inner.train([], seed=0)


def test_saved_adapter_loads_with_plain_peft(inner, tmp_path):
    inner.train([FACT], seed=0)
    inner.save_adapter(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    fresh, tokenizer = load_model("tiny", seed=0)
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter")
    assert torch.allclose(logits(loaded, FACT, tokenizer), logits(inner.model, FACT, tokenizer), atol=1e-5)


def test_default_targets_cover_attention_and_mlp(inner):
    adapted = {name.split(".")[-1] for name, m in inner.model.named_modules() if hasattr(m, "lora_A")}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_nested_base_model_contexts_keep_the_adapter_off(inner):
    base = logits(inner.model.get_base_model(), FACT, inner.tokenizer)
    with inner.base_model():
        pass
    inner.train([FACT], seed=0)
    with inner.base_model():
        with inner.base_model():
            pass
        assert torch.allclose(logits(inner.model, FACT, inner.tokenizer), base)
    assert not torch.allclose(logits(inner.model, FACT, inner.tokenizer), base)


def test_bad_epochs_and_truncation_are_reported():
    model, tokenizer = load_model("tiny", seed=0)
    with pytest.raises(ValueError, match="epochs"):
        InnerLoop(model, tokenizer, InnerLoopConfig(epochs=0))
    short = InnerLoop(model, tokenizer, InnerLoopConfig(max_length=8))
    with pytest.warns(UserWarning, match="were cut"):
        ids = short.encode([OTHER])
    assert len(ids[0][0]) == 8 and ids[0][0][-1] == tokenizer.eos_token_id


# The reference's Trainer settings, as switches (paper mode).

def lora_weights(model):
    return torch.cat([p.detach().flatten() for n, p in model.named_parameters() if "lora_" in n])


@pytest.mark.parametrize("schedule,warmup", [("constant", 0.0), ("constant", 0.3), ("linear", 0.0), ("linear", 0.1),
                                             ("cosine", 0.1)])
def test_lr_schedules_follow_transformers_get_scheduler(schedule, warmup):
    from transformers import get_scheduler

    total = 23
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    name = "constant_with_warmup" if schedule == "constant" else schedule
    reference = get_scheduler(name, optimizer, num_warmup_steps=int(np.ceil(warmup * total)), num_training_steps=total)
    config = InnerLoopConfig(schedule=schedule, warmup_ratio=warmup)
    for step in range(total):
        assert lr_factor(config, step, total) == pytest.approx(optimizer.param_groups[0]["lr"], abs=1e-9), step
        optimizer.step()
        reference.step()


def test_bad_switch_values_are_named():
    for bad, match in [({"schedule": "step"}, "schedule must be one of constant, linear, cosine"),
                       ({"warmup_ratio": 1.0}, "warmup_ratio"), ({"max_grad_norm": 0}, "max_grad_norm"),
                       ({"grad_accumulation": 0}, "grad_accumulation"), ({"pad_to": 0}, "pad_to")]:
        with pytest.raises(ValueError, match=match):
            InnerLoopConfig(**bad)


def test_linear_decay_changes_the_update(inner):
    inner.train([FACT, OTHER, FACT + " Again."], seed=0, epochs=1, schedule="linear")
    decayed = lora_weights(inner.model)
    inner.train([FACT, OTHER, FACT + " Again."], seed=0, epochs=1)
    assert not torch.allclose(decayed, lora_weights(inner.model))  # the schedule changed the update


def test_gradient_clipping_bounds_the_first_update(inner):
    """With Adam the first step's size does not depend on the gradient's scale, so clip at a tiny norm and
    compare the gradient that reached the optimiser: it has norm <= the limit."""
    seen = []
    original = torch.optim.AdamW.step

    def record(self, *args, **kwargs):
        seen.append(torch.cat([p.grad.flatten() for g in self.param_groups for p in g["params"]
                               if p.grad is not None]).norm().item())
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = record
    try:
        inner.train([FACT], seed=0, epochs=2, max_grad_norm=1e-3)
        clipped = list(seen)
        seen.clear()
        inner.train([FACT], seed=0, epochs=2)
    finally:
        torch.optim.AdamW.step = original
    assert max(clipped) <= 1e-3 * 1.0001
    assert min(seen) > 1e-3  # unclipped, the same steps' gradients were larger: the clip did something


def test_gradient_accumulation_equals_the_larger_batch(inner):
    """Two documents of equal length: accumulating 2 batches of 1 (each loss halved) is one step on the
    batch of 2, so the trained adapters agree."""
    docs = ["Alpha beta gamma delta.", "Omega psi chi phi."]
    assert len(set(len(ids) for ids, _ in inner.encode(docs))) == 1
    together = inner.train(docs, seed=0, epochs=3, batch_size=2)
    big_batch = lora_weights(inner.model)
    accumulated = inner.train(docs, seed=0, epochs=3, batch_size=1, grad_accumulation=2)
    assert accumulated.steps == together.steps == 3
    assert (lora_weights(inner.model) - big_batch).norm() / big_batch.norm() < 1e-4
    assert accumulated.losses == pytest.approx(together.losses, rel=1e-4)


def test_reference_padding_puts_pads_in_the_loss():
    batch = collate([([5, 6, 7], [5, 6, 7]), ([8], [8])], pad_id=0, pad_to=5)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0, 0], [8, 0, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7, 0, 0], [8, 0, 0, 0, 0]]  # pads are targets too


def test_reference_padding_dilutes_the_document_loss(inner):
    """Padded to 64 with pads in the loss, the loss is an average over 63 predictions, most of them pads:
    a different number from the document's own loss, and a different trained adapter."""
    pad = inner.tokenizer.pad_token_id
    (example,) = inner.encode([FACT])
    with torch.no_grad():
        own = inner.model(**collate([example], pad)).loss.item()
        padded = inner.model(**collate([example], pad, pad_to=64)).loss.item()
    assert padded != pytest.approx(own, rel=1e-3)
    result = inner.train([FACT], seed=0, epochs=2, pad_to=64)
    assert result.tokens == 2 * len(example[0])  # tokens counts real tokens, not pads
    emulated = lora_weights(inner.model)
    inner.train([FACT], seed=0, epochs=2)
    assert not torch.allclose(emulated, lora_weights(inner.model))


def test_reference_targets_adapt_q_and_v_only():
    model, tokenizer = load_model("tiny", seed=0)
    config = InnerLoopConfig(rank=4, target_modules="q_proj, v_proj")
    assert config.target_modules == ["q_proj", "v_proj"]
    inner = InnerLoop(model, tokenizer, config)
    adapted = {n.split(".")[-1] for n, m in inner.model.named_modules() if hasattr(m, "lora_A")}
    assert adapted == {"q_proj", "v_proj"}
    with pytest.raises(ValueError, match="name the modules"):
        InnerLoopConfig(target_modules=" , ")
