import pytest

from seal_kit.generation import generate


def test_output_stops_at_first_eos_and_counts_only_real_tokens(tiny):
    model, tokenizer = tiny
    prompts = ["Velmora Island lies in", "Thornite is a"]
    free = generate(model, tokenizer, prompts, max_new_tokens=8, progress=False)
    assert all(o.tokens == 8 for o in free)  # a random model never says EOS by itself
    batch = tokenizer(prompts[:1], return_tensors="pt")
    new = model.generate(**batch, max_new_tokens=8, do_sample=False)[0, batch["input_ids"].shape[1]:].tolist()
    k = next(i for i in range(1, len(new)) if new[i] not in new[:i])  # a token not seen before position k
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [old, new[k]]  # ... now ends the sequence
    try:
        cut = generate(model, tokenizer, prompts, max_new_tokens=8, progress=False)
    finally:
        model.generation_config.eos_token_id = old
    assert cut[0].tokens == k
    assert cut[0].text == tokenizer.decode(new[:k], skip_special_tokens=True).strip()


def test_batching_and_order_do_not_change_greedy_outputs(tiny):
    model, tokenizer = tiny
    prompts = ["a", "a much longer prompt about Velmora Island", "mid length prompt"]
    one = [o.text for o in generate(model, tokenizer, prompts, max_new_tokens=6, batch_size=1, progress=False)]
    three = [o.text for o in generate(model, tokenizer, prompts, max_new_tokens=6, batch_size=3, progress=False)]
    assert one == three


def test_bad_sizes_are_rejected(tiny):
    with pytest.raises(ValueError, match="batch_size"):
        generate(*tiny, ["x"], max_new_tokens=4, batch_size=0)
