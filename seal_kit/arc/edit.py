"""The ARC self-edit: a JSON config choosing augmentation tools and test-time training hyperparameters.

    from seal_kit.arc.augment import augmented_tasks
    from seal_kit.arc.edit import SELF_EDIT_SCHEMA, parse_self_edit, step_budget, transforms_for
    parsed = parse_self_edit(model_text)         # ParsedEdit(config, status, reason); never raises
    if parsed.status == "ok":
        tasks = augmented_tasks(task, transforms_for(parsed.config), color_permutations=1)
        too_long = step_budget(parsed.config, len(tasks), batch_size=2, max_steps=375)  # None, or why it is over

The paper's layout nests the keys, and that is what SELF_EDIT_SCHEMA describes and `as_self_edit` writes:

    {"data_generation": {"use_basic_augmentations": true, "use_size_augmentations": false,
                         "use_chain_augmentations": false, "use_repeat_augmentations": true},
     "training": {"strategy": "output_only", "learning_rate": 1e-4, "num_train_epochs": 3}}

A flat object with the same seven keys is accepted too. Parsing is tolerant of what surrounds the
object (code fences, prose) and strict about the object itself: every key present, none unknown,
types exact, values in range. Each failure is a failed edit with reward 0, so its status says why
(`bad_json`, `invalid_edit`; `over_budget` when step_budget refuses it) and the reason names the key.
The reference instead trained an over-budget config for 0 epochs (`ArcConfig.over_budget`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields

from .augment import IDENTITY, basic, chain, repeat, size
from .ttt import STRATEGIES

OK, BAD_JSON, INVALID_EDIT, OVER_BUDGET = "ok", "bad_json", "invalid_edit", "over_budget"
DATA_GENERATION, TRAINING = "data_generation", "training"


def _tool(text: str):
    return field(default=True, metadata={"help": text, "group": DATA_GENERATION})


@dataclass(frozen=True)
class TTTConfig:
    """What a self-edit chooses: the augmentation tools that build the training tasks, and how to train."""
    use_basic_augmentations: bool = _tool("rotations, flips, transpose and anti-transpose of every grid")
    use_size_augmentations: bool = _tool("grids upscaled x2 in height, in width, in both")
    use_chain_augmentations: bool = _tool("each basic transform followed by a x2 upscale")
    use_repeat_augmentations: bool = _tool("grids tiled 1x2, 2x1 and 2x2")
    strategy: str = field(default="output_only", metadata={
        "help": "loss on all tokens of each training example, or only on the tokens of its output grid",
        "group": TRAINING, "choices": STRATEGIES})
    learning_rate: float = field(default=1e-4, metadata={
        "help": "LoRA learning rate of the test-time training", "group": TRAINING, "range": (1e-6, 1e-2)})
    num_train_epochs: int = field(default=2, metadata={
        "help": "passes over the augmented tasks", "group": TRAINING, "range": (1, 10)})

    def __post_init__(self):
        for f in fields(self):
            problem = _problem(f, getattr(self, f.name))
            if problem:
                raise ValueError(f"TTTConfig: {problem}")

    def as_self_edit(self) -> dict:
        """The config in the paper's nested layout: what a correct self-edit looks like."""
        return {group: {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["group"] == group}
                for group in (DATA_GENERATION, TRAINING)}


GROUP_KEYS = {group: tuple(f.name for f in fields(TTTConfig) if f.metadata["group"] == group)
              for group in (DATA_GENERATION, TRAINING)}


def _accepted(f) -> str:
    kind = type(f.default)
    if kind is bool:
        return "true or false"
    if "choices" in f.metadata:
        return "one of " + ", ".join(map(repr, f.metadata["choices"]))
    lo, hi = f.metadata["range"]
    return f"{'a number' if kind is float else 'an integer'} in [{lo:g}, {hi:g}]"


def _problem(f, value) -> str | None:
    """Why `value` is not acceptable for field `f`, or None; JSON's true/false are not numbers here."""
    kind = type(f.default)
    if kind is bool:
        fine = type(value) is bool
    elif "choices" in f.metadata:
        fine = isinstance(value, str) and value in f.metadata["choices"]
    else:
        lo, hi = f.metadata["range"]
        number = type(value) is int or (kind is float and type(value) is float)
        fine = number and lo <= value <= hi  # NaN fails the comparison
    return None if fine else f"key {f.name!r} must be {_accepted(f)}, got {json.dumps(value, default=repr)}"


def _schema(f) -> dict:
    kind = type(f.default)
    if kind is bool:
        return {"type": "boolean", "description": f.metadata["help"]}
    if "choices" in f.metadata:
        return {"type": "string", "enum": list(f.metadata["choices"]), "description": f.metadata["help"]}
    lo, hi = f.metadata["range"]
    return {"type": "number" if kind is float else "integer", "minimum": lo, "maximum": hi,
            "description": f.metadata["help"]}


SELF_EDIT_SCHEMA = {
    "type": "object",
    "description": "An ARC self-edit: which augmentation tools build the training data, and how to train on it",
    "properties": {group: {"type": "object", "additionalProperties": False, "required": list(keys),
                           "properties": {f.name: _schema(f) for f in fields(TTTConfig) if f.name in keys}}
                   for group, keys in GROUP_KEYS.items()},
    "required": list(GROUP_KEYS),
    "additionalProperties": False,
}


def _choices(lo: float, hi: float, kind: type) -> list:
    """The values a constrained decoder offers in [lo, hi]: every integer, or numbers 1, 2 and 5 per decade."""
    if kind is int:
        return list(range(int(lo), int(hi) + 1))
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    return [v for e in decades for v in (float(f"{m}e{e}") for m in (1, 2, 5)) if lo <= v <= hi]


# What constrained decoding (`SamplingConfig.constrained`) holds a sampled config to: SELF_EDIT_SCHEMA with each
# numeric range as a list of choices (lm-format-enforcer does not enforce minimum/maximum), so every finished
# config is valid. The learning rate is then one of 13 values from 1e-6 to 1e-2.
DECODING_SCHEMA = {**SELF_EDIT_SCHEMA, "properties": {
    group: {**spec, "properties": {
        name: ({k: v for k, v in value.items() if k not in ("minimum", "maximum")}
               | {"enum": _choices(value["minimum"], value["maximum"], int if value["type"] == "integer" else float)}
               if "minimum" in value else value) for name, value in spec["properties"].items()}}
    for group, spec in SELF_EDIT_SCHEMA["properties"].items()}}


@dataclass(frozen=True)
class ParsedEdit:
    config: TTTConfig | None  # None unless status is "ok"
    status: str               # "ok", "bad_json" or "invalid_edit"
    reason: str               # empty when ok; otherwise what was wrong, naming the key


def _first_object(text: str) -> tuple[dict | None, str]:
    """The first top-level {...} span that parses as JSON, or None and why not. Spans are matched by braces
    outside JSON strings, so fences and prose around the object are skipped, and an object whose JSON is
    broken is skipped whole rather than searched for a smaller object inside it."""
    start, first_error = text.find("{"), ""
    while start != -1:
        depth, in_string, escaped, end = 0, False, False, -1
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
            elif ch == '"':
                in_string = True
            elif ch in "{}":
                depth += 1 if ch == "{" else -1
                if depth == 0:
                    end = i
                    break
        if end == -1:
            return None, first_error or f"the object starting at character {start} never closes (unbalanced braces)"
        try:
            value = json.loads(text[start:end + 1])
            return value, ""
        except (ValueError, RecursionError) as err:
            first_error = first_error or f"not valid JSON: {err}"
        start = text.find("{", end + 1)
    return None, first_error or "no {...} object in the text"


def _flatten(obj: dict) -> tuple[dict | None, str]:
    """The seven keys from either layout, or None and why the nesting is wrong."""
    groups = [k for k in obj if k in GROUP_KEYS]
    if not groups:
        return obj, ""
    stray = [k for k in obj if k not in GROUP_KEYS]
    if stray:
        return None, (f"key {stray[0]!r} sits beside {groups[0]!r}; use the nested layout "
                      f"{{'data_generation': {{...}}, 'training': {{...}}}} or a flat object, not both")
    flat = {}
    for group, keys in GROUP_KEYS.items():
        part = obj.get(group)
        if not isinstance(part, dict):
            state = "missing" if group not in obj else f"a {type(part).__name__}"
            return None, f"key {group!r} is {state}; expected an object with keys {', '.join(keys)}"
        for key, value in part.items():
            if key not in keys:
                other = [g for g, ks in GROUP_KEYS.items() if key in ks]
                where = f"; it belongs in {other[0]!r}" if other else ""
                return None, f"unknown key {key!r} in {group!r}{where}; accepted there: {', '.join(keys)}"
            flat[key] = value
    return flat, ""


def parse_self_edit(text) -> ParsedEdit:
    """A model's self-edit as a TTTConfig; never raises: failures come back as a status and a reason."""
    if not isinstance(text, str):
        return ParsedEdit(None, BAD_JSON, f"expected the self-edit as text, got {type(text).__name__}")
    obj, why = _first_object(text)
    if not isinstance(obj, dict):
        return ParsedEdit(None, BAD_JSON, why)
    flat, why = _flatten(obj)
    if flat is None:
        return ParsedEdit(None, INVALID_EDIT, why)
    known = {f.name: f for f in fields(TTTConfig)}
    unknown = [k for k in flat if k not in known]
    if unknown:
        return ParsedEdit(None, INVALID_EDIT, f"unknown key {unknown[0]!r}; accepted keys: {', '.join(known)}")
    for name, f in known.items():
        if name not in flat:
            return ParsedEdit(None, INVALID_EDIT, f"missing key {name!r} ({_accepted(f)})")
        problem = _problem(f, flat[name])
        if problem:
            return ParsedEdit(None, INVALID_EDIT, problem)
    return ParsedEdit(TTTConfig(**flat), OK, "")


def step_budget(config: TTTConfig, n_examples: int, batch_size: int, max_steps: int) -> str | None:
    """Why training `n_examples` under `config` would take more than `max_steps` optimizer steps, or None.
    What happens to a config over budget is the caller's choice (`ArcConfig.over_budget`): a failed edit
    (status "over_budget", ours), or no training at all (the reference: 0 epochs, the model answers as is)."""
    if n_examples < 0 or batch_size < 1 or max_steps < 1:
        raise ValueError(f"step_budget: need n_examples >= 0, batch_size >= 1 and max_steps >= 1; got "
                         f"{n_examples}, {batch_size} and {max_steps}")
    steps = config.num_train_epochs * math.ceil(n_examples / batch_size)
    if steps <= max_steps:
        return None
    return (f"{config.num_train_epochs} epochs x ceil({n_examples} examples / batch {batch_size}) = {steps} steps "
            f"exceeds the budget of {max_steps}")


def transforms_for(config: TTTConfig, families: str = "kit") -> list:
    """The transforms a config's tools switch on, from the "kit" or the "reference" version of each tool
    family (`augment.FAMILIES`); the untransformed tasks are always included."""
    tools = [(config.use_basic_augmentations, basic), (config.use_size_augmentations, size),
             (config.use_chain_augmentations, chain), (config.use_repeat_augmentations, repeat)]
    return [IDENTITY] + [t for on, family in tools if on for t in family(families)]


def edit_form() -> str:
    """The self-edit's shape as a model should be asked for it: every key with what it accepts, and what each tool does."""
    def slot(f) -> str:
        return "<" + _accepted(f).replace("'", '"') + ">"
    groups = ", ".join(f'"{group}": {{' + ", ".join(f'"{f.name}": {slot(f)}' for f in fields(TTTConfig)
                                                  if f.metadata["group"] == group) + "}"
                       for group in GROUP_KEYS)
    tools = "\n".join(f"- {f.name}: {f.metadata['help']}" for f in fields(TTTConfig))
    return "{" + groups + "}\n" + tools
