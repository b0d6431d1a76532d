"""Constrained decoding: under the ARC self-edit schema even a random model writes only valid configs."""
import pytest

from seal_kit.arc.edit import DECODING_SCHEMA, OK, SELF_EDIT_SCHEMA, TTTConfig, parse_self_edit
from seal_kit.generation import generate
from seal_kit.self_edit import SamplingConfig, sample_self_edits

PROMPTS = ["Write the config:", "Config for task 2, as JSON:", "x", "Another one"]


def test_a_random_model_writes_valid_configs_only_under_the_schema(tiny):
    model, tokenizer = tiny
    options = dict(max_new_tokens=200, temperature=1.0, top_p=0.95, seed=0, progress=False)
    free = [parse_self_edit(o.text).status for o in generate(model, tokenizer, PROMPTS, **options)]
    held = generate(model, tokenizer, PROMPTS, json_schema=DECODING_SCHEMA, **options)
    assert OK not in free  # random weights: no JSON of their own
    assert [parse_self_edit(o.text).status for o in held] == [OK] * len(PROMPTS), [o.text for o in held]
    assert all(o.tokens < 200 for o in held)  # each ended on its own, at the end of the object


def test_sampling_passes_the_schema_only_when_constrained_and_needs_one(tiny):
    model, tokenizer = tiny
    rows = [{"prompt": p} for p in PROMPTS[:2]]
    config = SamplingConfig(k=1, max_new_tokens=200, constrained=True)
    table = sample_self_edits(model, tokenizer, rows, config, progress=False, schema=DECODING_SCHEMA)
    assert [parse_self_edit(t).status for t in table.self_edit] == [OK, OK]
    with pytest.raises(ValueError, match="constrained needs the task's self-edit schema"):
        sample_self_edits(model, tokenizer, rows, config, progress=False)


def test_the_decoding_schema_offers_only_valid_values_and_covers_each_range():
    training = DECODING_SCHEMA["properties"]["training"]["properties"]
    rates, epochs = training["learning_rate"]["enum"], training["num_train_epochs"]["enum"]
    assert rates[0] == 1e-6 and rates[-1] == 1e-2 and len(rates) == 13 and epochs == list(range(1, 11))
    for lr in rates:
        TTTConfig(learning_rate=lr)  # raises when out of range
    assert DECODING_SCHEMA["required"] == SELF_EDIT_SCHEMA["required"]
    assert "minimum" not in training["learning_rate"] and SELF_EDIT_SCHEMA["properties"]["training"][
        "properties"]["learning_rate"]["minimum"] == 1e-6  # the schema users read is unchanged
