"""The house plan (docs/architecture.md) held against the code: the SEAL core imports no setting, no module
is over 400 lines, and the package's imports form no circle."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seal_kit"
CORE = ["rest_em", "inner_loop", "generator", "selection", "executors", "self_edit", "strategies", "prompts", "reward", "adapters"]


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path) -> set[str]:
    """The seal_kit modules `name` imports anywhere in its file (at the top or inside a function)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.startswith("seal_kit"):
                known = modules()
                found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known} or {base}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("seal_kit")}
    return found - {name}


def test_the_seal_core_loads_no_setting():
    code = ("import sys\nimport " + ", ".join(f"seal_kit.{m}" for m in CORE) +
            "\nprint(sorted(m for m in sys.modules if m.startswith(('seal_kit.knowledge', 'seal_kit.arc'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


@pytest.mark.parametrize("name", CORE)
def test_no_core_module_names_a_setting_even_in_a_function(name):
    settings = {m for m in imports(f"seal_kit.{name}", PACKAGE / f"{name}.py")
                if m.startswith(("seal_kit.knowledge", "seal_kit.arc"))}
    assert not settings


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 400}
    assert not long


def test_the_imports_form_no_circle():
    graph = {name: {m for m in imports(name, path) if m in modules()} for name, path in modules().items()}
    graph = {name: {m for m in targets if not name.startswith(m + ".") and m != name.rsplit(".", 1)[0]}
             for name, targets in graph.items()}  # a package's __init__ importing nothing counts for nothing
    state, circles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles
