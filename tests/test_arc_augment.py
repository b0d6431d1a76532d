import random

import pytest

from seal_kit.arc.augment import (IDENTITY, Chain, ColorPermutation, Dihedral, InverseError, Tile, Upscale,
                                  augmented_tasks, basic, chain, leave_one_out, leave_two_out, random_color_permutation,
                                  repeat, size, transform_task)
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
       ColorPermutation((0, 2, 1, 3, 4, 5, 6, 7, 8, 9)), Chain(Upscale(1, 2), Chain(Tile(2, 1), Dihedral("rot90")))]


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
