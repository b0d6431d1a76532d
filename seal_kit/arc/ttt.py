"""Test-time training data and augmented inference for ARC (text only: no torch here).

    from seal_kit.arc.ttt import task_text, training_examples, dihedral_views, read_prediction, vote
    prompt = task_text(task.train, task.test[0].input)       # demonstrations, then the query; ends "Output:\\n"
    examples = training_examples(augmented, "output_only")   # (prompt, answer) pairs: loss on the answer only
    examples = training_examples(augmented, "all_tokens")    # whole texts: loss on every token
    views = dihedral_views(task.train, 8)        # or leave_one_out_views(task.train, task.test[0].input, rng)
    grid = read_prediction(views[1].transform, model_text)   # the answer mapped back by the inverse, or None
    attempts = vote([grid, ...], attempts=2)                 # most frequent first; ties keep the first seen
    attempts = hierarchical_vote([(view.group, grid), ...])  # the reference's vote: per group, then across

Two grid formats (`data.GRID_FORMATS`). "rows" (ours): one plain-text prompt, grids as rows of
digits under "Input:"/"Output:". "python_lists" (the reference's): a chat whose system turn holds the
instruction and the demonstrations as `[[...]] -> [[...]]#` lines, whose user turn is the query
`[[...]] -> `, and whose answer is `[[...]]#` (`task_messages`; `task_text` joins the two turns for
models without a chat template). Our wording, the reference's arrangement.

The training example of an augmented task ends with its query's output grid, so the output-only
loss mask is the boundary between `prompt` and `answer`, found by tokenizing them apart
(`inner_loop.encode_examples`), never by looking for particular token ids.

Inference views (`VIEWS`): "dihedral" (ours) answers the task with all its demonstrations, as is and
rotated/flipped; "leave_one_out" (the reference's) answers it with each demonstration left out in
turn, in its order and `permutations` shuffled orders, plus five rotated/flipped views each built on
one of those sets drawn at random. Votes (`VOTINGS`): "majority" counts every answer once;
"hierarchical" is the reference's two-stage vote, described at `hierarchical_vote`.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from .augment import IDENTITY, Dihedral, InverseError, Transform, basic
from .data import GRID_FORMATS, ArcDataError, ArcTask, Example, Grid, check_grid_format

STRATEGIES = ("all_tokens", "output_only")  # what the loss covers; a self-edit picks one (edit.TTTConfig.strategy)
VIEWS = ("dihedral", "leave_one_out")
VOTINGS = ("majority", "hierarchical")
INSTRUCTION = "Find the rule that turns each input grid into its output grid, then apply it to the last input."
LIST_INSTRUCTION = ("Find the rule that turns each input grid below into its output grid, then apply it to the test "
                    "input. The grids are Python lists of rows; answer with a grid in the same form.")


def answer_text(grid: Grid, grid_format: str = "rows") -> str:
    """What the model is taught to write for `grid`: its rows, or its Python list closed by "#"."""
    text = GRID_FORMATS[check_grid_format(grid_format)][0](grid)
    return text + "#" if grid_format == "python_lists" else text


def task_messages(demos: tuple[Example, ...], query: Grid) -> list[dict]:
    """The reference's chat layout (grids as Python lists): a system turn with the instruction and one
    `input -> output#` line per demonstration, then the query as the user turn."""
    encode = GRID_FORMATS["python_lists"][0]
    lines = "".join(f"{encode(ex.input)} -> {answer_text(ex.output, 'python_lists')}\n" for ex in demos)
    return [{"role": "system", "content": f"{LIST_INSTRUCTION}\n{lines}"},
            {"role": "user", "content": f"{encode(query)} -> "}]


def task_text(demos: tuple[Example, ...], query: Grid, grid_format: str = "rows") -> str:
    """The demonstrations and the query as one plain text; the answer follows its last character."""
    if check_grid_format(grid_format) == "python_lists":
        return "".join(m["content"] for m in task_messages(demos, query))
    encode = GRID_FORMATS["rows"][0]
    parts = [INSTRUCTION]
    for ex in demos:
        parts.append(f"Input:\n{encode(ex.input)}\nOutput:\n{encode(ex.output)}")
    parts.append(f"Input:\n{encode(query)}\nOutput:\n")
    return "\n\n".join(parts)


def training_examples(tasks: list[ArcTask], strategy: str, prompt=task_text,
                      grid_format: str = "rows") -> list[str | tuple[str, str]]:
    """One training example per query of each (augmented) task: a (prompt, answer) pair under
    "output_only", the joined text under "all_tokens". `prompt(demos, query)` writes the prompt (a chat
    rendering, say); the answer is `answer_text` in `grid_format`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    examples = []
    for task in tasks:
        for query in task.test:
            if query.output is None:
                raise ArcDataError(f"task {task.id}: a training query has no output grid")
            text, answer = prompt(task.train, query.input), answer_text(query.output, grid_format)
            examples.append((text, answer) if strategy == "output_only" else text + answer)
    return examples


def read_prediction(transform: Transform, text: str, grid_format: str = "rows") -> Grid | None:
    """The grid at the start of the model's answer, mapped back to the task's own frame; None when the
    text is no grid or the inverse does not apply to it."""
    grid = GRID_FORMATS[check_grid_format(grid_format)][1](text)
    if grid is None:
        return None
    try:
        return transform.invert(grid)
    except (InverseError, ArcDataError, ValueError):
        return None


@dataclass(frozen=True)
class View:
    """One way of asking the model a test input: these demonstrations, everything under `transform`."""
    demos: tuple[Example, ...]
    transform: Transform

    @property
    def group(self) -> str:
        """What the hierarchical vote groups answers by: the transform (so its inverse)."""
        return self.transform.name


def inference_transforms(n: int) -> list[Transform]:
    """The transforms of the "dihedral" views: the task itself, then up to 7 rotations/flips."""
    views = [IDENTITY] + basic()
    if not 1 <= n <= len(views):
        raise ValueError(f"inference_transforms: n must be in 1..{len(views)} (identity + the dihedral group); got {n}")
    return views[:n]


def dihedral_views(demos: tuple[Example, ...], n: int) -> list[View]:
    """Ours: every demonstration, under the first `n` of identity and the seven rotations/flips."""
    return [View(tuple(demos), t) for t in inference_transforms(n)]


# The reference's five transformed views: transpose, the two flips, a quarter turn and a half turn.
LEAVE_ONE_OUT_TRANSFORMS = ("transpose", "flip_vertical", "flip_horizontal", "rot270", "rot180")


def leave_one_out_views(demos: tuple[Example, ...], query: Grid, rng: random.Random,
                        permutations: int = 2) -> list[View]:
    """The reference's views of one test input: each demonstration left out in turn (with a single
    demonstration, the set itself), each set in its own order and in `permutations` shuffled orders,
    identical ones kept once; then, for each of LEAVE_ONE_OUT_TRANSFORMS, one of those sets drawn at
    random under that transform, unless that gives a view already there (a symmetric task and query)."""
    if permutations < 0:
        raise ValueError(f"leave_one_out_views: permutations must be >= 0, got {permutations}")
    demos = tuple(demos)
    subsets = [demos[:i] + demos[i + 1:] for i in range(len(demos))] if len(demos) > 1 else [demos]
    sets = []
    for subset in subsets:
        for order in [subset] + [tuple(rng.sample(subset, len(subset))) for _ in range(permutations)]:
            if order not in sets:
                sets.append(order)
    views = [View(s, IDENTITY) for s in sets]
    for kind in LEAVE_ONE_OUT_TRANSFORMS:
        chosen, transform = rng.choice(sets), Dihedral(kind)
        moved = tuple(Example(transform.apply(ex.input), transform.apply(ex.output)) for ex in chosen)
        if not (moved in sets and transform.apply(query) == query):
            views.append(View(chosen, transform))
    return views


def _ranked(answers: list[Grid]) -> list[Grid]:
    return [grid for grid, _ in Counter(answers).most_common()]  # most frequent first; ties: first seen


def vote(predictions: list[Grid | None], attempts: int = 2) -> list[Grid]:
    """The `attempts` most frequent valid predictions, most frequent first; a tie goes to the one seen first."""
    if attempts < 1:
        raise ValueError(f"vote: attempts must be >= 1, got {attempts}")
    return _ranked([p for p in predictions if p is not None])[:attempts]


def _transpose(grid: Grid) -> Grid:
    return tuple(zip(*grid))


def composite(answers: list[Grid], by_columns: bool = False) -> Grid:
    """A grid voted line by line: the most common shape among `answers`, each of its rows the most common
    row of that width at that height among all answers (ties: first seen); `by_columns` votes columns."""
    if by_columns:
        return _transpose(composite([_transpose(a) for a in answers]))
    height, width = Counter((len(a), len(a[0])) for a in answers).most_common(1)[0][0]
    return tuple(Counter(a[r] for a in answers if len(a) > r and len(a[r]) == width).most_common(1)[0][0]
                 for r in range(height))


def _nominees(answers: list[Grid]) -> list[Grid]:
    """Three nominations: the three most frequent answers; nominations a group cannot fill with distinct
    answers go to its row-voted composite, or when that is taken, to its column-voted one."""
    ranked = _ranked(answers)
    rows, columns = composite(answers), composite(answers, by_columns=True)
    first = ranked[0]
    second = ranked[1] if len(ranked) > 1 else rows if rows != first else columns
    third = ranked[2] if len(ranked) > 2 else rows if rows not in (first, second) else columns
    return [first, second, third]


def hierarchical_vote(predictions: list[tuple[str, Grid | None]], attempts: int = 2) -> list[Grid]:
    """The reference's two-stage vote over (group, prediction) pairs, in our words:

    1. Unreadable predictions (None) are dropped. Answers are grouped by the view's transform (one group
       per transform, "identity" for untransformed views), and one more group, "all", pools every answer.
    2. Each group nominates three grids (`_nominees`): its most, second and third most frequent answers
       (ties: first seen); a group with fewer distinct answers fills the rest with the composite grids
       voted row by row, then column by column (`composite`), which may repeat its top answer: a
       unanimous group nominates its answer three times. So a group weighs the same whatever its size.
    3. All nominations are pooled and ranked the same way (`_nominees` again). The first attempt is the
       most nominated grid; the second is the next one, except that when the second and third are
       nominated equally often, the one more frequent among the untransformed views' answers goes
       first (equal: the second stays). A third attempt, if asked for, is the remaining nominee.
    Repeated grids are given once, so fewer than `attempts` may come back."""
    if attempts < 1:
        raise ValueError(f"hierarchical_vote: attempts must be >= 1, got {attempts}")
    groups: dict[str, list[Grid]] = {"all": []}
    for group, grid in predictions:
        if grid is not None:
            groups["all"].append(grid)
            groups.setdefault(group, []).append(grid)
    if not groups["all"]:
        return []
    pooled = [grid for answers in groups.values() for grid in _nominees(answers)]
    first, second, third = _nominees(pooled)
    counts, untransformed = Counter(pooled), Counter(groups.get(IDENTITY.name, []))
    if counts[second] == counts[third] and untransformed[third] > untransformed[second]:
        second, third = third, second
    return list(dict.fromkeys([first, second, third]))[:attempts]
