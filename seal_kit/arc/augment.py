"""Invertible grid transforms and the augmented test-time training set built from a task's demonstrations.

    from seal_kit.arc.augment import IDENTITY, Chain, Dihedral, Upscale, basic, size, augmented_tasks
    t = Chain(Dihedral("rot90"), Upscale(2, 2))
    assert t.invert(t.apply(grid)) == grid
    tasks = augmented_tasks(task, [IDENTITY, *basic(), *size()], color_permutations=1, rng_seed=0)
    tasks = augmented_tasks(task, [IDENTITY, *basic("reference")], color_permutations=1, permute_examples=True)

Every transform maps a grid to a grid and back, so a model's answer to a transformed query can be
mapped back to the original task (augmented inference + inverse transform + vote). The families
`basic`, `size`, `chain` and `repeat` are the four tools a self-edit switches on, each in two
versions (`FAMILIES`): "kit" (ours: the seven symmetries of the square) and "reference" (the
reference's: rotations, flips and transpose without the anti-transpose, the four mirror
concatenations `Reflect`, and a random cyclic shift `Translate`; its chain family has six members).
A translation is a roll: content pushed off one edge comes back on the other, so it is exactly
invertible; it exists only in the reference's basic family. The reference also shuffled the
demonstration order of its colour-permuted copies (`permute_examples`).
"""
from __future__ import annotations

import random
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from itertools import combinations

from .data import MAX_SIDE, ArcTask, Example, Grid


class InverseError(ValueError):
    """A grid that the transform could not have produced (e.g. downsampling a grid that is no block upscale)."""


class Transform(ABC):
    """A grid transform with its exact inverse: `invert(apply(g)) == g` for every grid g."""

    @property
    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    def apply(self, grid: Grid) -> Grid: ...

    @abstractmethod
    def invert(self, grid: Grid) -> Grid: ...


def _transpose(g: Grid) -> Grid:
    return tuple(zip(*g))


# The eight symmetries of the square: name -> (function, name of its inverse)
_DIHEDRAL = {
    "identity": (lambda g: g, "identity"),
    "rot90": (lambda g: _transpose(g[::-1]), "rot270"),                 # clockwise
    "rot180": (lambda g: tuple(row[::-1] for row in g[::-1]), "rot180"),
    "rot270": (lambda g: _transpose(g)[::-1], "rot90"),
    "flip_horizontal": (lambda g: tuple(row[::-1] for row in g), "flip_horizontal"),  # mirror left <-> right
    "flip_vertical": (lambda g: g[::-1], "flip_vertical"),                           # mirror top <-> bottom
    "transpose": (_transpose, "transpose"),                                          # about the main diagonal
    "anti_transpose": (lambda g: tuple(row[::-1] for row in _transpose(g)[::-1]), "anti_transpose"),
}


@dataclass(frozen=True)
class Dihedral(Transform):
    """A rotation or reflection of the grid; `kind` is one of DIHEDRAL_KINDS."""
    kind: str

    def __post_init__(self):
        if self.kind not in _DIHEDRAL:
            raise ValueError(f"Dihedral kind {self.kind!r} is unknown; accepted: {', '.join(_DIHEDRAL)}")

    @property
    def name(self) -> str:
        return self.kind

    def apply(self, grid: Grid) -> Grid:
        return _DIHEDRAL[self.kind][0](grid)

    def invert(self, grid: Grid) -> Grid:
        return _DIHEDRAL[_DIHEDRAL[self.kind][1]][0](grid)


DIHEDRAL_KINDS = tuple(_DIHEDRAL)
IDENTITY = Dihedral("identity")


def _check_factors(kind: str, fy: int, fx: int):
    if type(fy) is not int or type(fx) is not int or fy < 1 or fx < 1:
        raise ValueError(f"{kind} factors must be ints >= 1, got ({fy!r}, {fx!r})")


def _check_divisible(transform: Transform, grid: Grid, fy: int, fx: int):
    h, w = len(grid), len(grid[0])
    if h % fy or w % fx:
        raise InverseError(f"{transform.name}: a {h}x{w} grid is not a multiple of {fy}x{fx}")


@dataclass(frozen=True)
class Upscale(Transform):
    """Every cell becomes an fy x fx block; the inverse downsamples and checks the blocks are uniform."""
    fy: int
    fx: int

    def __post_init__(self):
        _check_factors("Upscale", self.fy, self.fx)

    @property
    def name(self) -> str:
        return f"upscale_{self.fy}x{self.fx}"

    def apply(self, grid: Grid) -> Grid:
        return tuple(tuple(c for c in row for _ in range(self.fx)) for row in grid for _ in range(self.fy))

    def invert(self, grid: Grid) -> Grid:
        _check_divisible(self, grid, self.fy, self.fx)
        small = tuple(row[::self.fx] for row in grid[::self.fy])
        if self.apply(small) != grid:
            raise InverseError(f"{self.name}: the grid is not made of uniform {self.fy}x{self.fx} blocks")
        return small


@dataclass(frozen=True)
class Tile(Transform):
    """The grid repeated ny times down and nx times across; the inverse keeps the top-left tile."""
    ny: int
    nx: int

    def __post_init__(self):
        _check_factors("Tile", self.ny, self.nx)

    @property
    def name(self) -> str:
        return f"tile_{self.ny}x{self.nx}"

    def apply(self, grid: Grid) -> Grid:
        return tuple(row * self.nx for row in grid) * self.ny

    def invert(self, grid: Grid) -> Grid:
        _check_divisible(self, grid, self.ny, self.nx)
        return tuple(row[:len(row) // self.nx] for row in grid[:len(grid) // self.ny])


def _mirror(grid: Grid, axis: str) -> Grid:
    return grid[::-1] if axis == "vertical" else tuple(row[::-1] for row in grid)


@dataclass(frozen=True)
class Reflect(Transform):
    """The grid joined with its mirror image: `axis` "vertical" stacks it over its upside-down copy,
    "horizontal" puts it beside its left-right mirror; `mirror_first` puts the mirror image first.
    The inverse checks the two halves mirror each other and keeps the original one."""
    axis: str
    mirror_first: bool = False

    def __post_init__(self):
        if self.axis not in ("vertical", "horizontal"):
            raise ValueError(f"Reflect axis must be 'vertical' or 'horizontal', got {self.axis!r}")

    @property
    def name(self) -> str:
        return f"reflect_{self.axis}{'_mirror_first' if self.mirror_first else ''}"

    def apply(self, grid: Grid) -> Grid:
        pair = (_mirror(grid, self.axis), grid) if self.mirror_first else (grid, _mirror(grid, self.axis))
        if self.axis == "vertical":
            return pair[0] + pair[1]
        return tuple(a + b for a, b in zip(*pair))

    def invert(self, grid: Grid) -> Grid:
        h, w = len(grid), len(grid[0])
        _check_divisible(self, grid, 2 if self.axis == "vertical" else 1, 2 if self.axis == "horizontal" else 1)
        if self.axis == "vertical":
            halves = grid[:h // 2], grid[h // 2:]
        else:
            halves = tuple(row[:w // 2] for row in grid), tuple(row[w // 2:] for row in grid)
        original = halves[1] if self.mirror_first else halves[0]
        if self.apply(original) != grid:
            raise InverseError(f"{self.name}: the two halves of the grid are not mirror images")
        return original


@dataclass(frozen=True)
class Translate(Transform):
    """Every cell moves dy rows down and dx columns right, wrapping around the edges (a roll: nothing
    is lost, so the inverse is the opposite roll); shifts are taken modulo the grid's sides."""
    dy: int
    dx: int

    def __post_init__(self):
        if type(self.dy) is not int or type(self.dx) is not int:
            raise ValueError(f"Translate shifts must be ints, got ({self.dy!r}, {self.dx!r})")

    @property
    def name(self) -> str:
        return f"translate_{self.dy}x{self.dx}"

    @staticmethod
    def _roll(grid: Grid, dy: int, dx: int) -> Grid:
        h, w = len(grid), len(grid[0])
        dy, dx = dy % h, dx % w
        rows = grid[h - dy:] + grid[:h - dy]
        return tuple(row[w - dx:] + row[:w - dx] for row in rows)

    def apply(self, grid: Grid) -> Grid:
        return self._roll(grid, self.dy, self.dx)

    def invert(self, grid: Grid) -> Grid:
        return self._roll(grid, -self.dy, -self.dx)


@dataclass(frozen=True)
class RandomTranslate:
    """The reference's translation: a Translate whose shifts (each 0..max_shift) are drawn anew for every
    leave-out task by `augmented_tasks`; one draw moves all the grids of that task alike."""
    max_shift: int = 3

    @property
    def name(self) -> str:
        return f"random_translate_{self.max_shift}"

    def draw(self, rng: random.Random) -> Translate:
        return Translate(rng.randint(0, self.max_shift), rng.randint(0, self.max_shift))


@dataclass(frozen=True)
class ColorPermutation(Transform):
    """Colour c becomes mapping[c]; `mapping` is a permutation of 0..9."""
    mapping: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "mapping", tuple(self.mapping))  # a list would make the transform unhashable
        if sorted(self.mapping) != list(range(10)):
            raise ValueError(f"ColorPermutation mapping {self.mapping!r} must be a permutation of 0..9")

    @property
    def name(self) -> str:
        return "colors_" + "".join(map(str, self.mapping))

    def apply(self, grid: Grid) -> Grid:
        return tuple(tuple(self.mapping[c] for c in row) for row in grid)

    def invert(self, grid: Grid) -> Grid:
        inverse = [0] * 10
        for c, mapped in enumerate(self.mapping):
            inverse[mapped] = c
        return tuple(tuple(inverse[c] for c in row) for row in grid)


def random_color_permutation(rng: random.Random, keep_background: bool = True) -> ColorPermutation:
    """A random colour permutation; colour 0 stays fixed by default because ARC uses it as background."""
    colors = list(range(1, 10) if keep_background else range(10))
    rng.shuffle(colors)
    return ColorPermutation(tuple([0] + colors if keep_background else colors))


@dataclass(frozen=True)
class Chain(Transform):
    """`first`, then `second`; the inverse undoes `second` first."""
    first: Transform
    second: Transform

    @property
    def name(self) -> str:
        return f"{self.first.name}+{self.second.name}"

    def apply(self, grid: Grid) -> Grid:
        return self.second.apply(self.first.apply(grid))

    def invert(self, grid: Grid) -> Grid:
        return self.first.invert(self.second.invert(grid))


FAMILIES = ("kit", "reference")


def _family(version: str) -> str:
    if version not in FAMILIES:
        raise ValueError(f"augmentation families come as {' or '.join(map(repr, FAMILIES))}; got {version!r}")
    return version


# The reference's rotations, flips and transpose: the dihedral group without the anti-transpose.
_REFERENCE_SYMMETRIES = ("rot90", "rot270", "rot180", "flip_vertical", "flip_horizontal", "transpose")


def basic(version: str = "kit") -> list:
    """The `use_basic_augmentations` tool. "kit": rotations, flips, transpose and anti-transpose.
    "reference": rotations, flips, transpose, the four mirror concatenations and a random translation."""
    if _family(version) == "kit":
        return [Dihedral(kind) for kind in DIHEDRAL_KINDS if kind != "identity"]
    reflections = [Reflect(axis, first) for first in (True, False) for axis in ("vertical", "horizontal")]
    return [Dihedral(kind) for kind in _REFERENCE_SYMMETRIES[:5]] + reflections + [RandomTranslate(),
                                                                                   Dihedral("transpose")]


def size(version: str = "kit") -> list[Transform]:
    """The `use_size_augmentations` tool: upscale x2 in height, in width, in both (the same in both versions)."""
    _family(version)
    return [Upscale(2, 1), Upscale(1, 2), Upscale(2, 2)]


def chain(version: str = "kit") -> list[Transform]:
    """The `use_chain_augmentations` tool: each rotation/flip/transpose followed by the x2 upscale in both
    directions ("kit": the seven symmetries; "reference": six, no anti-transpose)."""
    kinds = DIHEDRAL_KINDS[1:] if _family(version) == "kit" else _REFERENCE_SYMMETRIES
    return [Chain(Dihedral(kind), Upscale(2, 2)) for kind in kinds]


def repeat(version: str = "kit") -> list[Transform]:
    """The `use_repeat_augmentations` tool: the grid tiled 1x2, 2x1 and 2x2 (the same in both versions)."""
    _family(version)
    return [Tile(1, 2), Tile(2, 1), Tile(2, 2)]


def transform_task(task: ArcTask, transform: Transform) -> ArcTask:
    """Every grid of the task transformed (missing test outputs stay None); the id records the transform."""
    def example(ex: Example) -> Example:
        return Example(transform.apply(ex.input), None if ex.output is None else transform.apply(ex.output))
    return ArcTask(f"{task.id}|{transform.name}", tuple(map(example, task.train)), tuple(map(example, task.test)))


def leave_one_out(task: ArcTask) -> list[ArcTask]:
    """One task per demonstration: it becomes the query, the others the context (none with fewer than 2)."""
    demos = task.train
    if len(demos) < 2:
        return []
    return [ArcTask(f"{task.id}:loo{i}", demos[:i] + demos[i + 1:], (demos[i],)) for i in range(len(demos))]


def leave_two_out(task: ArcTask) -> list[ArcTask]:
    """One task per pair of demonstrations: both become queries, the rest the context (none with fewer than 3)."""
    demos = task.train
    if len(demos) < 3:
        return []
    return [ArcTask(f"{task.id}:lto{i}-{j}", tuple(d for k, d in enumerate(demos) if k not in (i, j)),
                    (demos[i], demos[j])) for i, j in combinations(range(len(demos)), 2)]


def _fits(task: ArcTask, max_size: int) -> bool:
    grids = [g for ex in task.train + task.test for g in (ex.input, ex.output) if g is not None]
    return all(len(g) <= max_size and len(g[0]) <= max_size for g in grids)


def permute_demonstrations(task: ArcTask, rng: random.Random) -> ArcTask:
    """The task with its demonstrations in a random order (the queries unchanged)."""
    order = list(task.train)
    rng.shuffle(order)
    return ArcTask(f"{task.id}+shuffled", tuple(order), task.test)


MAX_DEMONSTRATIONS = 10  # ARC-AGI-1 and -2 have at most 10 per task: the cap only bounds other data


def augmented_tasks(task: ArcTask, transforms: list, color_permutations: int = 0, rng_seed: int = 0,
                    max_examples: int = 250, max_size: int = MAX_SIDE, permute_examples: bool = False,
                    max_demonstrations: int = MAX_DEMONSTRATIONS) -> list[ArcTask]:
    """The test-time training set: leave-one-out and leave-two-out tasks under each transform, each also
    under `color_permutations` random colour permutations (with `permute_examples`, each of those copies
    also has its demonstrations shuffled, as the reference did); tasks with a grid over max_size (30x30,
    ARC's largest) are dropped, identical ones kept once; shuffled under `rng_seed` and capped at
    `max_examples`. Include IDENTITY in `transforms` to keep the untransformed tasks; a RandomTranslate
    is drawn anew for each leave-out task. Only the first `max_demonstrations` demonstrations are used (a
    warning says so): leave-two-out grows with their square, and every variant is built before the cap."""
    if not transforms:
        raise ValueError("augmented_tasks: transforms is empty; pass at least [IDENTITY]")
    if color_permutations < 0 or max_examples < 1 or max_size < 1:
        raise ValueError(f"augmented_tasks: need color_permutations >= 0, max_examples >= 1 and max_size >= 1; got "
                         f"{color_permutations}, {max_examples} and {max_size}")
    if max_demonstrations < 2:
        raise ValueError(f"augmented_tasks: max_demonstrations must be at least 2 (leave-one-out needs two), got "
                         f"{max_demonstrations}")
    if len(task.train) > max_demonstrations:
        warnings.warn(f"ARC task {task.id}: {len(task.train)} demonstrations; test-time training uses the first "
                      f"{max_demonstrations} (max_demonstrations)", stacklevel=2)
        task = ArcTask(task.id, task.train[:max_demonstrations], task.test)
    rng = random.Random(rng_seed)
    seen, out = set(), []
    for base in leave_one_out(task) + leave_two_out(task):
        for transform in transforms:
            if isinstance(transform, RandomTranslate):
                transform = transform.draw(rng)
            colored = [Chain(transform, random_color_permutation(rng)) for _ in range(color_permutations)]
            for variant in [transform, *colored]:
                new = transform_task(base, variant)
                if permute_examples and variant is not transform:
                    new = permute_demonstrations(new, rng)
                # identical grids under different transforms (a symmetric task, a one-colour grid) would
                # only weight that example more in training
                if _fits(new, max_size) and (new.train, new.test) not in seen:
                    seen.add((new.train, new.test))
                    out.append(new)
    rng.shuffle(out)
    return out[:max_examples]
