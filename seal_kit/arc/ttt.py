"""Test-time training data and augmented inference for ARC (text only: no torch here).

    from seal_kit.arc.ttt import task_text, training_examples, inference_transforms, read_prediction, vote
    prompt = task_text(task.train, task.test[0].input)       # demonstrations, then the query; ends "Output:\\n"
    examples = training_examples(augmented, "output_only")   # (prompt, answer) pairs: loss on the answer only
    examples = training_examples(augmented, "all_tokens")    # whole texts: loss on every token
    grid = read_prediction(transform, model_text)            # the answer mapped back by the inverse, or None
    attempts = vote([grid, ...], attempts=2)                 # most frequent first; ties keep the first seen

The training example of an augmented task ends with its query's output grid, so the output-only
loss mask is the boundary between `prompt` and `answer`, found by tokenizing them apart
(`inner_loop.encode_examples`), never by looking for particular token ids.
"""
from __future__ import annotations

from collections import Counter

from .augment import IDENTITY, InverseError, Transform, basic
from .data import ArcDataError, ArcTask, Example, Grid, grid_to_text, text_to_grid

STRATEGIES = ("all_tokens", "output_only")  # what the loss covers; a self-edit picks one (edit.TTTConfig.strategy)
INSTRUCTION = "Find the rule that turns each input grid into its output grid, then apply it to the last input."


def task_text(demos: tuple[Example, ...], query: Grid) -> str:
    """The demonstrations and the query as the model reads them; the answer grid follows the last line."""
    parts = [INSTRUCTION]
    for ex in demos:
        parts.append(f"Input:\n{grid_to_text(ex.input)}\nOutput:\n{grid_to_text(ex.output)}")
    parts.append(f"Input:\n{grid_to_text(query)}\nOutput:\n")
    return "\n\n".join(parts)


def training_examples(tasks: list[ArcTask], strategy: str) -> list[str | tuple[str, str]]:
    """One training example per query of each (augmented) task: a (prompt, answer) pair under
    "output_only", the joined text under "all_tokens"."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    examples = []
    for task in tasks:
        for query in task.test:
            if query.output is None:
                raise ArcDataError(f"task {task.id}: a training query has no output grid")
            prompt, answer = task_text(task.train, query.input), grid_to_text(query.output)
            examples.append((prompt, answer) if strategy == "output_only" else prompt + answer)
    return examples


def inference_transforms(n: int) -> list[Transform]:
    """The views of a task the model answers at inference: the task itself, then up to 7 rotations/flips."""
    views = [IDENTITY] + basic()
    if not 1 <= n <= len(views):
        raise ValueError(f"inference_transforms: n must be in 1..{len(views)} (identity + the dihedral group); got {n}")
    return views[:n]


def read_prediction(transform: Transform, text: str) -> Grid | None:
    """The grid at the start of the model's answer, mapped back to the task's own frame; None when the
    text is no grid or the inverse does not apply to it."""
    grid = text_to_grid(text)
    if grid is None:
        return None
    try:
        return transform.invert(grid)
    except (InverseError, ArcDataError, ValueError):
        return None


def vote(predictions: list[Grid | None], attempts: int = 2) -> list[Grid]:
    """The `attempts` most frequent valid predictions, most frequent first; a tie goes to the one seen first."""
    if attempts < 1:
        raise ValueError(f"vote: attempts must be >= 1, got {attempts}")
    counts = Counter(p for p in predictions if p is not None)  # keeps first-seen order, most_common is stable
    return [grid for grid, _ in counts.most_common(attempts)]
