import random

import pytest

from seal_kit.arc.augment import (IDENTITY, Chain, ColorPermutation, Dihedral, InverseError, RandomTranslate, Reflect,
                                  Tile, Translate, Upscale, augmented_tasks, basic, chain, leave_one_out, leave_two_out,
                                  random_color_permutation, repeat, size, transform_task)
from seal_kit.arc.data import ArcTask, Example

GRID = ((1, 2, 3), (4, 5, 6))  # asymmetric, so every symmetry gives a different grid


def random_grid(rng: random.Random, max_side: int = 10) -> tuple:
    h, w = rng.randint(1, max_side), rng.randint(1, max_side)
    return tuple(tuple(rng.randint(0, 9) for _ in range(w)) for _ in range(h))


def task_with(n: int, side: int = 2, task_id: str = "t") -> ArcTask:
    """n demonstrations, all distinct and free of symmetry (so transforms never create duplicates)."""
    demos = tuple(Example(tuple(tuple((i + r * side + c) % 10 for c in range(side + 1)) for r in range(side)),
                          ((i % 10,),)) for i in range(n))
    return ArcTask(task_id, demos, (Example(((0,),), None),))


ALL = [*basic(), *size(), *chain(), *repeat(), IDENTITY, Upscale(3, 1), Tile(3, 2),
       ColorPermutation((0, 2, 1, 3, 4, 5, 6, 7, 8, 9)), Chain(Upscale(1, 2), Chain(Tile(2, 1), Dihedral("rot90"))),
       *[t for t in basic("reference") if not isinstance(t, RandomTranslate)], *chain("reference"), Translate(2, 5),
       Translate(-1, 13), Chain(Reflect("horizontal", True), Translate(1, 1))]


@pytest.mark.parametrize("transform", ALL, ids=lambda t: t.name)
def test_every_transform_inverts_on_random_grids(transform):
    rng = random.Random(0)
    for _ in range(100):
        grid = random_grid(rng)
        out = transform.apply(grid)
        assert transform.invert(out) == grid
        assert all(len(row) == len(out[0]) for row in out) and isinstance(out[0], tuple)


def test_dihedral_moves_cells_as_named():
    expected = {"identity": GRID, "rot90": ((4, 1), (5, 2), (6, 3)), "rot180": ((6, 5, 4), (3, 2, 1)),
                "rot270": ((3, 6), (2, 5), (1, 4)), "flip_horizontal": ((3, 2, 1), (6, 5, 4)),
                "flip_vertical": ((4, 5, 6), (1, 2, 3)), "transpose": ((1, 4), (2, 5), (3, 6)),
                "anti_transpose": ((6, 3), (5, 2), (4, 1))}
    assert {kind: Dihedral(kind).apply(GRID) for kind in expected} == expected
    with pytest.raises(ValueError, match="'rot45' is unknown; accepted: identity, rot90"):
        Dihedral("rot45")


def test_upscale_and_tile_shapes():
    assert Upscale(2, 1).apply(((1, 2),)) == ((1, 2), (1, 2))
    assert Upscale(1, 2).apply(((1, 2),)) == ((1, 1, 2, 2),)
    assert Tile(2, 2).apply(((1, 2),)) == ((1, 2, 1, 2), (1, 2, 1, 2))


def test_downsample_of_a_grid_that_is_not_an_upscale_raises():
    with pytest.raises(InverseError, match="upscale_2x2: the grid is not made of uniform 2x2 blocks"):
        Upscale(2, 2).invert(((1, 1), (1, 2)))
    with pytest.raises(InverseError, match="upscale_2x1: a 3x2 grid is not a multiple of 2x1"):
        Upscale(2, 1).invert(((1, 1), (1, 1), (1, 1)))
    with pytest.raises(InverseError, match="tile_1x2: a 1x3 grid"):
        Tile(1, 2).invert(((1, 2, 3),))


def test_chain_inverts_in_reverse_order():
    t = Chain(Dihedral("rot90"), Upscale(2, 1))
    out = t.apply(GRID)
    assert out == Upscale(2, 1).apply(Dihedral("rot90").apply(GRID))
    assert t.invert(out) == GRID
    # undoing in the wrong order (rot90 first) would not even reach a block upscale
    with pytest.raises(InverseError):
        Upscale(2, 1).invert(Dihedral("rot270").apply(out))
    assert t.name == "rot90+upscale_2x1"


def test_color_permutation_inverse_and_validation():
    rng = random.Random(1)
    for _ in range(50):
        perm = random_color_permutation(rng)
        assert perm.mapping[0] == 0
        grid = random_grid(rng)
        assert perm.invert(perm.apply(grid)) == grid
    assert {random_color_permutation(rng, keep_background=False).mapping[0] for _ in range(60)} != {0}
    assert ColorPermutation([1, 0, 2, 3, 4, 5, 6, 7, 8, 9]).apply(((0, 1, 2),)) == ((1, 0, 2),)
    with pytest.raises(ValueError, match="must be a permutation of 0..9"):
        ColorPermutation((0, 0, 1, 2, 3, 4, 5, 6, 7, 8))


def test_bad_factors_are_rejected():
    with pytest.raises(ValueError, match=r"Upscale factors must be ints >= 1, got \(0, 2\)"):
        Upscale(0, 2)
    with pytest.raises(ValueError, match="Tile factors"):
        Tile(2, 1.5)


def test_reflect_joins_the_grid_with_its_mirror_image():
    assert Reflect("vertical").apply(GRID) == GRID + ((4, 5, 6), (1, 2, 3))
    assert Reflect("vertical", mirror_first=True).apply(GRID) == ((4, 5, 6), (1, 2, 3)) + GRID
    assert Reflect("horizontal").apply(GRID) == ((1, 2, 3, 3, 2, 1), (4, 5, 6, 6, 5, 4))
    assert Reflect("horizontal", mirror_first=True).apply(((1, 2),)) == ((2, 1, 1, 2),)
    with pytest.raises(InverseError, match="reflect_vertical: the two halves of the grid are not mirror images"):
        Reflect("vertical").invert(((1, 2), (3, 4)))
    with pytest.raises(InverseError, match="reflect_horizontal: a 1x3 grid is not a multiple of 1x2"):
        Reflect("horizontal").invert(((1, 2, 1),))
    with pytest.raises(ValueError, match="axis must be 'vertical' or 'horizontal'"):
        Reflect("diagonal")


def test_translate_rolls_the_content_around_the_edges():
    assert Translate(1, 0).apply(GRID) == ((4, 5, 6), (1, 2, 3))
    assert Translate(0, 1).apply(GRID) == ((3, 1, 2), (6, 4, 5))
    assert Translate(3, 4).apply(GRID) == Translate(1, 1).apply(GRID)  # shifts wrap at the grid's sides
    assert Translate(2, 3).apply(GRID) == GRID and Translate(1, 1).name == "translate_1x1"
    rng = random.Random(3)
    draws = {RandomTranslate().draw(rng) for _ in range(200)}
    assert draws == {Translate(dy, dx) for dy in range(4) for dx in range(4)}


def test_reference_families_are_the_reference_tools():
    names = [t.name for t in basic("reference")]
    assert names == ["rot90", "rot270", "rot180", "flip_vertical", "flip_horizontal", "reflect_vertical_mirror_first",
                     "reflect_horizontal_mirror_first", "reflect_vertical", "reflect_horizontal", "random_translate_3",
                     "transpose"]
    assert [t.first.name for t in chain("reference")] == ["rot90", "rot270", "rot180", "flip_vertical",
                                                          "flip_horizontal", "transpose"]
    assert size("reference") == size() and repeat("reference") == repeat()
    with pytest.raises(ValueError, match="'kit' or 'reference'; got 'paper'"):
        basic("paper")


def test_families_are_the_paper_tools():
    assert [t.name for t in basic()] == ["rot90", "rot180", "rot270", "flip_horizontal", "flip_vertical",
                                         "transpose", "anti_transpose"]
    assert [t.name for t in size()] == ["upscale_2x1", "upscale_1x2", "upscale_2x2"]
    assert all(isinstance(t, Chain) and t.second == Upscale(2, 2) for t in chain()) and len(chain()) == 7
    assert [t.name for t in repeat()] == ["tile_1x2", "tile_2x1", "tile_2x2"]


def test_leave_one_out_and_leave_two_out_counts():
    task = task_with(4)
    loo = leave_one_out(task)
    assert len(loo) == 4
    assert all(len(t.train) == 3 and len(t.test) == 1 and t.test[0] not in t.train for t in loo)
    assert [t.test[0] for t in loo] == list(task.train)
    lto = leave_two_out(task)
    assert len(lto) == 6 and all(len(t.train) == 2 and len(t.test) == 2 for t in lto)
    assert {frozenset(t.test) for t in lto} == {frozenset((a, b)) for i, a in enumerate(task.train)
                                                for b in task.train[i + 1:]}
    assert leave_one_out(task_with(1)) == [] and len(leave_one_out(task_with(2))) == 2
    assert leave_two_out(task_with(2)) == []


def test_transform_task_keeps_missing_outputs():
    out = transform_task(task_with(2), Dihedral("transpose"))
    assert out.id == "t|transpose" and out.test[0].output is None
    assert out.train[0].input == Dihedral("transpose").apply(task_with(2).train[0].input)


def test_augmented_tasks_counts_and_ids():
    task = task_with(3)  # 3 leave-one-out + 3 leave-two-out tasks
    tasks = augmented_tasks(task, [IDENTITY, *basic()])
    assert len(tasks) == 6 * 8
    assert {t.id.split("|")[1] for t in tasks} == {"identity", *(t.name for t in basic())}
    with_colors = augmented_tasks(task, [IDENTITY], color_permutations=2)
    assert len(with_colors) == 6 * 3 and sum("+colors_" in t.id for t in with_colors) == 12


def test_augmented_tasks_dedupes_identical_tasks():
    uniform = tuple(Example(((c, c), (c, c)), ((c,),)) for c in range(3))  # every symmetry leaves them unchanged
    tasks = augmented_tasks(ArcTask("u", uniform, ()), [IDENTITY, *basic()])
    assert len(tasks) == 6
    assert len({(t.train, t.test) for t in tasks}) == len(tasks)


def test_augmented_tasks_drops_grids_over_max_size():
    task = task_with(2, side=9)  # 9x10 grids: x2 upscale in height gives 18 rows
    kept = augmented_tasks(task, [IDENTITY, *size()], max_size=15)
    assert sorted(t.id.split("|")[1] for t in kept) == ["identity"] * 2
    assert len(augmented_tasks(task, [IDENTITY, *size()], max_size=30)) == 2 * 4


def test_augmented_tasks_cap_and_determinism():
    task = task_with(5)
    transforms = [IDENTITY, *basic(), *size(), *chain(), *repeat()]
    a = augmented_tasks(task, transforms, color_permutations=1, rng_seed=7, max_examples=40)
    assert len(a) == 40
    assert a == augmented_tasks(task, transforms, color_permutations=1, rng_seed=7, max_examples=40)
    assert a != augmented_tasks(task, transforms, color_permutations=1, rng_seed=8, max_examples=40)
    # without colour permutations the seed only reorders: the same tasks, shuffled differently
    one, two = (augmented_tasks(task, transforms, rng_seed=s, max_examples=10_000) for s in (1, 2))
    assert sorted(t.id for t in one) == sorted(t.id for t in two) and one != two
    with pytest.raises(ValueError, match="transforms is empty"):
        augmented_tasks(task, [])
    with pytest.raises(ValueError, match="max_examples >= 1"):
        augmented_tasks(task, [IDENTITY], max_examples=0)


def test_a_task_with_many_demonstrations_is_capped_before_augmenting_and_says_so():
    """24 demonstrations of 15x15 grids built 300 leave-out tasks under every transform before the cap
    (523 MB, 5 s to keep 12); now only the first 10 demonstrations are augmented, and a warning says so."""
    big = task_with(24, side=14, task_id="big")
    with pytest.warns(UserWarning, match=r"ARC task big: 24 demonstrations; test-time training uses the first 10"):
        tasks = augmented_tasks(big, [IDENTITY, *basic()], color_permutations=1, max_examples=12)
    assert len(tasks) == 12 and all(len(t.train) + len(t.test) == 10 for t in tasks)
    with pytest.warns(UserWarning):
        plain = augmented_tasks(big, [IDENTITY], max_examples=10_000)
    assert len(plain) == 10 + 45  # leave-one-out and leave-two-out of the first 10
    assert {ex.input for t in plain for ex in t.train + t.test} == {ex.input for ex in big.train[:10]}
    assert len(augmented_tasks(big, [IDENTITY], max_examples=10_000, max_demonstrations=24)) == 24 + 276
    with pytest.raises(ValueError, match="max_demonstrations must be at least 2"):
        augmented_tasks(big, [IDENTITY], max_demonstrations=1)


def test_reference_families_keep_grids_within_30x30_and_draw_a_translation_per_task():
    rng = random.Random(5)
    grid = lambda: tuple(tuple(rng.randint(0, 9) for _ in range(16)) for _ in range(15))  # noqa: E731
    task = ArcTask("big", tuple(Example(grid(), grid()) for _ in range(3)), ())
    tasks = augmented_tasks(task, [IDENTITY, *basic("reference")], max_examples=10_000)
    grids = [g for t in tasks for ex in t.train + t.test for g in (ex.input, ex.output)]
    assert all(len(g) <= 30 and len(g[0]) <= 30 for g in grids)
    kinds = {t.id.split("|")[1] for t in tasks}
    assert {"reflect_vertical", "reflect_vertical_mirror_first"} <= kinds  # 30 rows: kept
    assert not kinds & {"reflect_horizontal", "reflect_horizontal_mirror_first"}  # 32 columns: dropped
    translations = [t.id.split("|")[1] for t in tasks if "|translate_" in t.id]
    assert len(translations) == 6 and len(set(translations)) > 1  # one draw per leave-out task (3 + 3 of them)


def test_permute_examples_shuffles_the_colour_permuted_copies():
    task = task_with(5)
    plain = augmented_tasks(task, [IDENTITY], color_permutations=1, max_examples=10_000)
    shuffled = augmented_tasks(task, [IDENTITY], color_permutations=1, max_examples=10_000, permute_examples=True)
    assert len(plain) == len(shuffled) == 2 * (5 + 10)
    copies = [t for t in shuffled if "+colors_" in t.id]
    assert all(t.id.endswith("+shuffled") for t in copies) and not any("+shuffled" in t.id for t in plain)
    assert {t for t in shuffled if "+colors_" not in t.id} == {t for t in plain if "+colors_" not in t.id}
    ordered = [t for t in plain if "+colors_" in t.id]
    assert any(a.train != b.train and sorted(a.train, key=repr) == sorted(b.train, key=repr)
               for a, b in zip(sorted(copies, key=lambda t: t.id), sorted(ordered, key=lambda t: t.id)))
