"""Run profiles: named sets of notebook parameters (`cpu-tiny`, `gpu-small`, `paper`, `smoke`), as YAML files.

    from seal_kit import profiles
    profiles.names()                                   # ['cpu-tiny', 'gpu-small', 'paper', 'paper-replay', 'smoke']
    profiles.parameters("gpu-small", "03_rest_em")     # that notebook's parameters under the profile
    profiles.apply(PROFILE, globals(), "03_rest_em", smoke=SMOKE)   # in a notebook, after its parameters cell

A profile file (seal_kit/profiles/<name>.yaml, or any path) has `description`, `parameters` (for every
notebook that has them) and `notebooks` (per-notebook values, which win). Its header comment gives the
exact command that runs it. `SMOKE = True` applies the `smoke` profile (tiny sizes, seconds per
notebook) over PROFILE's values. Explicit values win: `seal-kit` merges the profiles under its -p
values before the run. Inside a notebook (`PROFILE = ...` or `SMOKE = True` with papermill's -p or an
edit of the parameters cell) a profile fills the parameters still at their notebook default: a value
given explicitly wins unless it equals that default.
Unknown keys are errors that name the key and what is accepted.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import yaml

from .paths import NOTEBOOKS, notebooks
from .runs import recorded_parameters

FOLDER = Path(__file__).resolve().parent / "profiles"
SMOKE = "smoke"  # the profile SMOKE = True applies
SECTIONS = ("description", "parameters", "notebooks")


def names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def nearest(name, known) -> str | None:
    """The known name closest to a misspelled one (case aside), or None: what `-p` and profiles suggest."""
    import difflib

    folded = {str(k).lower(): k for k in known}
    near = difflib.get_close_matches(str(name).lower(), list(folded), n=1, cutoff=0.6)
    return folded[near[0]] if near else None


@lru_cache(maxsize=None)
def notebook_defaults(notebook: str | Path) -> dict:
    """The parameters cell of notebooks/<stem>.ipynb (or of a notebook file): name -> default value, the
    source text where it is no literal."""
    import papermill

    path = Path(notebook) if str(notebook).endswith(".ipynb") else NOTEBOOKS / f"{notebook}.ipynb"
    if not path.exists():
        return {}
    defaults = {}
    for name, info in papermill.inspect_notebook(str(path)).items():
        try:
            defaults[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            defaults[name] = info["default"]
    return defaults


def load(profile: str | Path) -> dict:
    """A profile by name or path, validated: sections, notebook names and parameter names must exist."""
    path = Path(profile) if str(profile).endswith((".yaml", ".yml")) else FOLDER / f"{profile}.yaml"
    if not path.exists():
        raise ValueError(f"unknown profile {str(profile)!r}; choose one of {', '.join(names())} or give a .yaml file")
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = [k for k in spec if k not in SECTIONS] if isinstance(spec, dict) else ["(not a mapping)"]
    if unknown:
        raise ValueError(f"profile {path.name}: unknown key {unknown[0]!r}; a profile has {', '.join(SECTIONS)}")
    spec["parameters"] = spec.get("parameters") or {}  # an empty `parameters:` reads as None
    spec["notebooks"] = spec.get("notebooks") or {}
    for section in ("parameters", "notebooks"):
        if not isinstance(spec[section], dict):
            raise ValueError(f"profile {path.name}: {section!r} must be a mapping, got {type(spec[section]).__name__}")
    stems = [p.stem for p in notebooks()]
    if stems:  # a checkout: parameter names can be checked against the notebooks
        everywhere = set().union(*(notebook_defaults(n) for n in stems))
        for key in spec["parameters"]:
            if key not in everywhere:
                near = nearest(key, everywhere)
                raise ValueError(f"profile {path.name}: parameter {key!r} is in no notebook; "
                                 + (f"did you mean {near!r}?" if near else f"known: {', '.join(sorted(everywhere))}"))
        for stem, values in spec["notebooks"].items():
            if stem not in stems:
                raise ValueError(f"profile {path.name}: unknown notebook {stem!r}; known: {', '.join(stems)}")
            for key in values or {}:
                if key not in notebook_defaults(stem):
                    near = nearest(key, notebook_defaults(stem))
                    raise ValueError(f"profile {path.name}: {stem} has no parameter {key!r}; "
                                     + (f"did you mean {near!r}?" if near else f"it has {', '.join(notebook_defaults(stem))}"))
    return spec


def parameters(profile: str | Path, notebook: str) -> dict:
    """The profile's values for one notebook: the shared ones it has, then its own section."""
    spec = load(profile)
    own = notebook_defaults(notebook)
    shared = {k: v for k, v in spec["parameters"].items() if not own or k in own}
    return {**shared, **(spec["notebooks"].get(notebook) or {})}


def resolved(profile: str | Path | None, notebook: str, smoke: bool = False) -> dict:
    """The values `profile` and, with `smoke`, the smoke profile (which wins) give one notebook."""
    return {**(parameters(profile, notebook) if profile else {}), **(parameters(SMOKE, notebook) if smoke else {})}


def show(profile: str | Path, notebook: str) -> str:
    """Every parameter `notebook` runs with under `profile`, in the notebook's order, as YAML; the values the
    profile changes are marked, with the notebook's default beside them."""
    flow = lambda value: yaml.safe_dump([value], default_flow_style=True, width=10_000).strip()[1:-1]  # noqa: E731
    values = parameters(profile, notebook)
    lines = [f"# {notebook} under profile {profile}: `seal-kit run {notebook} --profile {profile}` runs with these"]
    for name, default in notebook_defaults(notebook).items():
        value = values.get(name, default)
        changed = f"  # profile (notebook default: {flow(default)})" if value != default else ""
        lines.append(f"{name}: {flow(value)}{changed}")
    return "\n".join(lines) + "\n"


def apply(profile: str | Path | None, namespace: dict, notebook: str, smoke: bool = False) -> dict:
    """Set the values of `profile` and, with `smoke`, of the smoke profile (which wins) in `namespace`
    (a notebook's globals()) where the parameter still holds its default; returns what was set. With no
    profile and every parameter but RUN_DIR at its default, a finished run in RUN_DIR sets the parameters it
    was made with (`runs.recorded_parameters`), so Run All on it shows that run."""
    defaults = notebook_defaults(notebook)
    recorded = recorded_parameters(namespace.get("RUN_DIR"))
    if recorded is not None and not profile and not smoke \
            and all(namespace.get(k, v) == v for k, v in defaults.items() if k != "RUN_DIR"):
        namespace.update(recorded)  # only RUN_DIR given, a finished run there: shown as it was made
        made = ", ".join(f"{k}={v!r}" for k, v in recorded.items() if v != defaults.get(k)) or "the defaults"
        print(f"{namespace['RUN_DIR']} holds a finished run: shown with its own parameters ({made})")
        return recorded
    if not profile and not smoke:
        return {}
    changed = {k: v for k, v in resolved(profile, notebook, smoke).items()
               if k not in namespace or k not in defaults or namespace[k] == defaults[k]}
    namespace.update(changed)
    return changed


CHOOSERS = ("PROFILE", "SMOKE", "RUN_DIR")  # they choose the values and the folder; `changes` leaves them out


def changes(namespace: dict, notebook: str) -> list[tuple[str, object, object]]:
    """(parameter, the notebook's default, the value in effect) for each parameter of `namespace` (a notebook's
    globals() after `apply`, papermill's injected values included) that differs from the parameters cell."""
    return [(k, v, namespace[k]) for k, v in notebook_defaults(notebook).items()
            if k not in CHOOSERS and k in namespace and namespace[k] != v]


def describe(namespace: dict, notebook: str) -> str:
    """One line on the values in effect against the parameters cell: "profile workshop: K 5 -> 2, EPOCHS 10 -> 5",
    "no profile: the values above", and values set otherwise (papermill -p, `seal-kit run`, a finished run
    in RUN_DIR) after "given to this run"."""
    profile, smoke = namespace.get("PROFILE"), bool(namespace.get("SMOKE"))
    name = " + ".join([str(profile)] * bool(profile) + [SMOKE] * smoke)
    by_profile = resolved(profile, notebook, smoke) if name else {}
    found = changes(namespace, notebook)
    ours = [c for c in found if c[0] in by_profile and by_profile[c[0]] == c[2]]
    given = [c for c in found if c not in ours]
    if not found:
        return f"profile {name}: changes nothing here, the values above" if name else "no profile: the values above"
    head = f"profile {name}: {_listed(ours) or 'changes nothing here'}" if name else "no profile in this notebook"
    # `seal-kit run --profile X` gives the notebook X's values (not PROFILE): they show here, as given values
    return f"{head}; given to this run: {_listed(given)}" if given else head


def _listed(items) -> str:
    return ", ".join(f"{k} {v!r} -> {now!r}" for k, v, now in items)
