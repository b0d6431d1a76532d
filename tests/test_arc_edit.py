import json
import re

import pytest

from seal_kit.arc.augment import IDENTITY, Chain, Tile, Upscale, basic
from seal_kit.arc.edit import (BAD_JSON, INVALID_EDIT, OK, SELF_EDIT_SCHEMA, TTTConfig, parse_self_edit, step_budget,
                               transforms_for)

FLAT = {"use_basic_augmentations": True, "use_size_augmentations": False, "use_chain_augmentations": False,
        "use_repeat_augmentations": True, "strategy": "all_tokens", "learning_rate": 5e-5, "num_train_epochs": 3}
CONFIG = TTTConfig(True, False, False, True, "all_tokens", 5e-5, 3)
NESTED = CONFIG.as_self_edit()


def test_plain_flat_json():
    parsed = parse_self_edit(json.dumps(FLAT))
    assert (parsed.status, parsed.config, parsed.reason) == (OK, CONFIG, "")


def test_fenced_json_with_prose_and_braces_around():
    text = ("Let me think {briefly} about the task.\n```json\n" + json.dumps(NESTED, indent=2)
            + "\n```\nThis should work because {it rotates}.")
    assert parse_self_edit(text).config == CONFIG


def test_nested_paper_layout_round_trips():
    assert set(NESTED) == {"data_generation", "training"}
    assert NESTED["training"] == {"strategy": "all_tokens", "learning_rate": 5e-5, "num_train_epochs": 3}
    assert parse_self_edit(json.dumps(NESTED)).config == CONFIG


def test_braces_inside_strings_do_not_end_the_object():
    parsed = parse_self_edit(json.dumps({**FLAT, "strategy": "}{"}))
    assert parsed.status == INVALID_EDIT and "'strategy' must be one of 'all_tokens', 'output_only'" in parsed.reason


def drop(key):
    return {k: v for k, v in FLAT.items() if k != key}


@pytest.mark.parametrize("obj, reason", [
    (drop("learning_rate"), r"missing key 'learning_rate' \(a number in \[1e-06, 0.01\]\)"),
    ({**FLAT, "learning_rate": 0.5}, r"key 'learning_rate' must be a number in \[1e-06, 0.01\], got 0.5"),
    ({**FLAT, "learning_rate": "1e-4"}, r"key 'learning_rate' must be a number .*got \"1e-4\""),
    ({**FLAT, "num_train_epochs": 2.0}, r"key 'num_train_epochs' must be an integer in \[1, 10\], got 2.0"),
    ({**FLAT, "num_train_epochs": 11}, r"'num_train_epochs' must be an integer in \[1, 10\], got 11"),
    ({**FLAT, "num_train_epochs": True}, r"'num_train_epochs' must be an integer"),
    ({**FLAT, "use_size_augmentations": 1}, r"key 'use_size_augmentations' must be true or false, got 1"),
    ({**FLAT, "strategy": "outputs"}, r"key 'strategy' must be one of 'all_tokens', 'output_only', got \"outputs\""),
    ({**FLAT, "batch_size": 4}, r"unknown key 'batch_size'; accepted keys: use_basic_augmentations"),
    ({**NESTED, "training": {**NESTED["training"], "use_basic_augmentations": True}},
     r"unknown key 'use_basic_augmentations' in 'training'; it belongs in 'data_generation'"),
    ({"data_generation": NESTED["data_generation"]}, r"key 'training' is missing"),
    ({**NESTED, "training": "fast"}, r"key 'training' is a str"),
    ({**NESTED, "learning_rate": 1e-4}, r"key 'learning_rate' sits beside 'data_generation'"),
    ({**NESTED, "training": {**NESTED["training"], "learning_rate": 0}}, r"key 'learning_rate' must be a number"),
])
def test_invalid_edits_name_the_key(obj, reason):
    parsed = parse_self_edit("Here is my edit: " + json.dumps(obj))
    assert parsed.status == INVALID_EDIT and parsed.config is None
    assert re.search(reason, parsed.reason), parsed.reason


@pytest.mark.parametrize("text, reason", [
    ("I would rotate the grids and train for 3 epochs.", "no {...} object"),
    ('{"use_basic_augmentations": true,', "never closes"),
    ("{'strategy': 'all_tokens'}", "not valid JSON"),
    ('{"a": True}', "not valid JSON"),
    ("", "no {...} object"),
    ("{" * 5000 + "}" * 5000, "not valid JSON"),
    (None, "expected the self-edit as text, got NoneType"),
])
def test_unparseable_text_is_bad_json(text, reason):
    parsed = parse_self_edit(text)
    assert parsed.status == BAD_JSON and parsed.config is None and reason in parsed.reason


def test_a_broken_object_is_not_searched_for_a_smaller_one_inside():
    text = '{"data_generation": {"use_basic_augmentations": true}, "training": {,}}'
    assert parse_self_edit(text).status == BAD_JSON
    assert parse_self_edit("{oops} then " + json.dumps(FLAT)).config == CONFIG


def test_config_validates_itself():
    with pytest.raises(ValueError, match=r"TTTConfig: key 'learning_rate' must be a number in \[1e-06, 0.01\]"):
        TTTConfig(learning_rate=1.0)
    with pytest.raises(ValueError, match="'strategy' must be one of"):
        TTTConfig(strategy="everything")


def test_schema_describes_the_nested_layout():
    props = SELF_EDIT_SCHEMA["properties"]
    assert SELF_EDIT_SCHEMA["required"] == ["data_generation", "training"]
    assert props["data_generation"]["required"] == ["use_basic_augmentations", "use_size_augmentations",
                                                    "use_chain_augmentations", "use_repeat_augmentations"]
    training = props["training"]["properties"]
    assert training["learning_rate"] | {"description": ""} == {"type": "number", "minimum": 1e-6, "maximum": 1e-2,
                                                              "description": ""}
    assert training["num_train_epochs"]["type"] == "integer" and training["strategy"]["enum"] == ["all_tokens",
                                                                                                 "output_only"]
    assert all(p["description"] for group in props.values() for p in group["properties"].values())
    json.dumps(SELF_EDIT_SCHEMA)


def test_step_budget():
    config = TTTConfig(num_train_epochs=3)
    assert step_budget(config, n_examples=100, batch_size=2, max_steps=150) is None
    reason = step_budget(config, n_examples=101, batch_size=2, max_steps=150)
    assert reason == "3 epochs x ceil(101 examples / batch 2) = 153 steps exceeds the budget of 150"
    with pytest.raises(ValueError, match="batch_size >= 1"):
        step_budget(config, 10, 0, 10)


def test_transforms_for_follows_the_tools():
    assert transforms_for(TTTConfig(False, False, False, False)) == [IDENTITY]
    chosen = transforms_for(CONFIG)
    assert chosen == [IDENTITY, *basic(), Tile(1, 2), Tile(2, 1), Tile(2, 2)]
    every = transforms_for(TTTConfig())
    assert Upscale(2, 1) in every and Chain(basic()[0], Upscale(2, 2)) in every and len(every) == 1 + 7 + 3 + 7 + 3
