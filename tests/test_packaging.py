"""The package's own metadata: one list of requirements, bounds where we use a library's internals."""
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {s.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip(): s for s in specs}


def test_environment_yml_installs_the_package_itself_not_a_second_list():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]
    assert pip == ["-e .[dev]"]


def test_libraries_whose_internals_we_use_are_bounded_above():
    found = requirements()
    for name in ("transformers", "peft", "lm-format-enforcer"):
        assert "<" in found[name], f"{name} needs an upper bound: {found[name]}"
