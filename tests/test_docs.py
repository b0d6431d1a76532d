"""The docs site's structure, without building it (`make docs` builds it with --strict, which checks every link).

    .venv/bin/python -m pytest -q tests/test_docs.py
"""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README_LINES = 200
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _nav_entries(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [entry for item in nav for entry in _nav_entries(item)]
    if isinstance(nav, dict):
        return [entry for value in nav.values() for entry in _nav_entries(value)]
    return []


def _config() -> dict:
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = _nav_entries(_config()["nav"])
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    assert sorted(pages - set(nav)) == [], "docs pages missing from mkdocs.yml's nav"
    for entry in nav:
        if entry.startswith("notebooks/"):  # docs/hooks.py adds these from notebooks/ (index.md: its README)
            assert (ROOT / entry.replace("index.md", "README.md")).exists(), entry
        else:
            assert (DOCS / entry).exists(), f"mkdocs.yml's nav names {entry}, which docs/ does not hold"
    notebooks = {f"notebooks/{path.name}" for path in (ROOT / "notebooks").glob("*.ipynb")}
    assert notebooks <= set(nav), "every notebook is a page"


def test_the_readme_is_short_and_links_to_docs_pages_that_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_LINES
    links = [link for link in LINK.findall(readme) if "://" not in link]
    for link in links:
        assert (ROOT / link).exists(), f"the README links to {link}, which does not exist"
    for page in ("installing.md", "running.md", "results-measured.md", "architecture.md", "workshop.md"):
        assert f"docs/{page}" in links, f"the README links to docs/{page}"
    first_screen = "\n".join(readme.splitlines()[:25])
    assert "135M" in first_screen and "docs/results-measured.md" in first_screen  # the headline result


def test_the_api_pages_name_modules_that_exist():
    for page in sorted((DOCS / "api").glob("*.md")):
        for module in re.findall(r"^::: (\S+)$", page.read_text(), flags=re.M):
            path = ROOT / module.replace(".", "/")
            assert path.with_suffix(".py").exists() or (path / "__init__.py").exists(), f"{page.name}: {module}"
