"""The notebooks in a real browser: JupyterLab from this environment, driven in Debian's Chromium.

    .venv/bin/python -m pytest tests/test_browser.py     # skipped without /usr/bin/chromium or playwright (CI: fails)

JupyterLab serves a temporary root holding smoke-parameterised copies of the notebooks; Playwright
drives the system Chromium (never a downloaded browser) through the Run menu as a learner would and
checks what the page shows: every cell ran without an error, the plots are drawn, the review widget
is there and its buttons change the decisions saved in the run directory, a saved notebook shows its
plots without running. Screenshots land in outputs/test-artifacts/browser/ (under $SEAL_KIT_OUTPUTS
when set), `last-<test>.png` showing where each test ended.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml
from conftest import CHROMIUM, browser_missing
from nbconvert import HTMLExporter

from seal_kit import results
from seal_kit.cli import main
from seal_kit.workshop import LAB_SETTINGS as CLASSROOM_SETTINGS
from seal_kit.workshop import student

if browser_missing() is None:
    from playwright.sync_api import expect, sync_playwright

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = Path(os.environ.get("SEAL_KIT_OUTPUTS", ROOT / "outputs")) / "test-artifacts" / "browser"
# Root needs no sandbox; the closed network needs no QUIC, sync, updates or background fetches.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LAB_SETTINGS = {  # a classroom's (`seal-kit lab`: no news pop-up over the cells), and every cell kept in the page
    **CLASSROOM_SETTINGS, "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
# The notebook panel's state as the page holds it: kernel status, each cell's prompt, count and outputs.
PANEL_STATE = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    return {kernel: panel.sessionContext.session?.kernel?.status ?? null,
            cells: panel.content.widgets.map(cell => ({
                id: cell.model.id, type: cell.model.type,
                prompt: cell.node.querySelector('.jp-InputArea-prompt')?.textContent ?? '',
                count: cell.model.type === 'code' ? cell.model.executionCount : null,
                outputs: cell.model.type === 'code' ? cell.model.outputs.toJSON() : []}))};
}"""
RUN_FINISHED = """() => {
    const panel = window.jupyterapp?.shell.currentWidget;
    const kernel = panel?.sessionContext?.session?.kernel;
    return !!kernel && kernel.status === 'idle'
        && !panel.content.widgets.some(
            cell => (cell.node.querySelector('.jp-InputArea-prompt')?.textContent ?? '').includes('*'));
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server run by this environment's Python, serving `root` on 127.0.0.1 without a token."""

    def __init__(self, root: Path, home: Path):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for name, values in LAB_SETTINGS.items():
            (home / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
            (home / "settings" / name).write_text(json.dumps(values))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
        self.log = home / "jupyterlab.log"
        # sys.executable runs the server, so the `python3` kernel it starts is this same environment's python.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--expose-app-in-browser",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}"],
            env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer on {self.url} within 120 s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kernel_commands(self) -> list[list[str]]:
        """The command lines of the kernels this server started (its child processes running ipykernel)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        commands = [Path(f"/proc/{c}/cmdline").read_bytes().decode().split("\0") for c in children
                    if Path(f"/proc/{c}/cmdline").exists()]
        return [c for c in commands if "ipykernel_launcher" in c]

    def stop(self) -> None:
        self.process.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = Lab(tmp_path_factory.mktemp("lab-root"), tmp_path_factory.mktemp("lab-home"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, lab, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    shot(page, f"last-{request.node.name}")  # where the test ended, passed or not: the first thing to look at
    if page.url.startswith(lab.url + "/lab"):  # free the kernel's memory before the next notebook
        page.evaluate("() => window.jupyterapp?.serviceManager.sessions.shutdownAll()")
    context.close()


def shot(target, name: str) -> Path:
    """Save a screenshot of a page or one element into the artifacts folder."""
    path = ARTIFACTS / f"{name}.png"
    target.screenshot(path=str(path))
    return path


def smoke_copy(name: str, folder: Path, **parameters) -> Path:
    """The students' copy of the notebook (no solution cells) with papermill's injected-parameters cell after
    its `parameters` cell, as a learner would get it by editing that cell: SMOKE sizes, RUN_DIR inside the
    lab's root."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(student(json.loads((NOTEBOOKS / name).read_text()))))
    papermill.execute_notebook(str(folder / name), str(folder / name), parameters={"SMOKE": True, **parameters},
                               prepare_only=True)
    return folder / name


def open_notebook(page, lab: Lab, path: Path) -> None:
    page.goto(f"{lab.url}/lab/tree/{path.relative_to(lab.root)}?reset")  # ?reset: no tabs restored from earlier tests
    page.wait_for_function("() => window.jupyterapp?.shell.currentWidget?.content?.widgets?.length > 0",
                           timeout=120_000)
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status "
                           "=== 'idle'", timeout=120_000)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # the notebook's full width in screenshots


def cells(page):
    """The cells of the notebook in the current tab, in order."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")


def visible_plot(plot, name: str | None = None):
    """A plotly output as JupyterLab shows it: plotly's extension draws the PNG copy the kernel sent along
    (img.plot-img) and swaps in the interactive plot (svg.main-svg) when the pointer comes over it.
    With a name, both states are saved as screenshots (`<name>-png`, `<name>`)."""
    plot.page.mouse.move(0, 0)  # a plot scrolled in under the pointer would turn interactive at once
    plot.scroll_into_view_if_needed()
    image = plot.locator("img.plot-img")
    image.wait_for(state="visible")
    assert image.evaluate("img => img.complete && img.naturalWidth") > 0
    if name:
        shot(plot, f"{name}-png")
    box = image.bounding_box()
    plot.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    plot.locator("svg.main-svg").first.wait_for(state="visible")
    if name:
        shot(plot, name)
    return plot


def run_from_menu(page, item: str) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=item, exact=True).click()
    page.mouse.move(0, 0)  # off the notebook, so no plot drawn later finds the pointer over it


def wait_for_run(page, name: str, timeout_s: float) -> dict:
    """Wait until the kernel is idle with no cell queued or running, twice in a row a second apart (the
    kernel is idle for an instant between queued cells); the panel's state then."""
    deadline = time.monotonic() + timeout_s
    settled = 0
    while settled < 2:
        if time.monotonic() > deadline:
            shot(page, f"{name}-timeout")
            pytest.fail(f"{name}: cells still running after {timeout_s:.0f} s; state: {page.evaluate(PANEL_STATE)}")
        settled = settled + 1 if page.evaluate(RUN_FINISHED) else 0
        time.sleep(1)
    return page.evaluate(PANEL_STATE)


def assert_ran_cleanly(state: dict, only: list[str] | None = None) -> None:
    """Every code cell (or those whose ids are in `only`) has an execution count and no error output."""
    code = [c for c in state["cells"] if c["type"] == "code" and (only is None or c["id"] in only)]
    assert code, "no code cells"
    assert [c["id"] for c in code if c["count"] is None] == [], "cells that did not run"
    errors = {c["id"]: f"{o['ename']}: {o['evalue']}" for c in code for o in c["outputs"]
              if o["output_type"] == "error"}
    assert errors == {}, f"cells with an error: {errors}"


def wait_for_file(check, what: str, timeout_s: float = 30):
    """Poll `check()` until it returns a truthy value (a click's write reaches the disk after a round trip)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def decisions(run_dir: Path) -> dict:
    path = run_dir / "review_decisions.json"
    if not path.exists():
        return {}
    return {(r["context_id"], r["sample"]): r["decision"] for r in json.loads(path.read_text())}


def test_quickstart_runs_all_cells_in_jupyterlab(lab, page):
    run_dir = lab.root / "runs" / "quickstart"
    notebook = smoke_copy("01_quickstart.ipynb", lab.root, RUN_DIR=str(run_dir), MODEL="tiny", K=1)
    open_notebook(page, lab, notebook)
    assert [Path(c[0]) for c in lab.kernel_commands()] == [Path(sys.executable)]  # the venv's python runs it
    run_from_menu(page, "Run All Cells")
    state = wait_for_run(page, "quickstart", timeout_s=600)
    assert_ran_cleanly(state)
    check = "".join(o.get("text", "") for o in state["cells"][-1]["outputs"])  # the "Try this" check cell
    assert check.startswith("✗ not done yet"), check
    plot = visible_plot(cells(page).locator(".jp-RenderedPlotly").first, "01-quickstart-loss-curve")
    assert plot.locator(".scatterlayer .trace").count() == 1  # one loss curve for K=1
    shot(page, "01-quickstart-after-run-all")
    assert json.loads((run_dir / "metrics.json").read_text())["n_questions"] == 5


def test_rest_em_review_widget_saves_clicks_and_the_loop_continues(lab, page):
    run_dir = lab.root / "runs" / "rest_em"
    notebook = smoke_copy("03_rest_em.ipynb", lab.root, RUN_DIR=str(run_dir), MODEL="tiny", ROUNDS=1,
                          INTERACTIVE=True)
    open_notebook(page, lab, notebook)
    run_from_menu(page, "Run All Cells")
    assert_ran_cleanly(wait_for_run(page, "rest-em-review", timeout_s=600))
    assert not (run_dir / "metrics.json").exists()  # stopped for review

    widget = cells(page).locator(".jp-OutputArea-output .widget-vbox").filter(
        has=page.get_by_role("button", name="accept", exact=True)).first
    widget.scroll_into_view_if_needed()
    accept = widget.get_by_role("button", name="accept", exact=True)
    expect(accept).to_be_visible()
    expect(widget.get_by_role("button", name="reject", exact=True)).to_be_visible()
    assert decisions(run_dir) == {}
    shot(widget, "03-rest-em-review-widget")
    accept.click()
    first = wait_for_file(lambda: decisions(run_dir), "the accept click in review_decisions.json")
    assert list(first.values()) == ["accept"]
    widget.get_by_role("button", name="reject", exact=True).click()
    wait_for_file(lambda: decisions(run_dir) == {**first, **{k: "reject" for k in first}}, "accept turned to reject")
    widget.get_by_role("button", name="next ▶", exact=True).click()
    expect(widget.locator(".widget-label", has_text="2 / ").first).to_be_visible()  # the second candidate
    accept.click()
    saved = wait_for_file(lambda: len(decisions(run_dir)) == 2 and decisions(run_dir), "the second candidate accepted")
    assert sorted(saved.values()) == ["accept", "reject"]
    expect(widget).to_contain_text("decision accept")  # the card shows the saved decision
    shot(widget, "03-rest-em-review-after-clicks")

    # Continue from the cell after the widget, as the notebook says: the loop trains on the one accepted edit.
    ids = [c["id"] for c in page.evaluate(PANEL_STATE)["cells"]]
    cells(page).nth(ids.index("cell-07")).locator(".jp-InputPrompt").click()
    run_from_menu(page, "Run Selected Cell and All Below")
    state = wait_for_run(page, "rest-em-continued", timeout_s=600)
    assert_ran_cleanly(state, only=ids[ids.index("cell-07"):])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [r["n_kept"] for r in metrics["rounds"]] == [1, 0]
    # The live view of scored self-edits while the loop ran: interactive only, no PNG per redraw.
    live = cells(page).nth(ids.index("cell-04")).locator(".jp-RenderedPlotly").first
    live.scroll_into_view_if_needed()
    live.locator("svg.main-svg").first.wait_for(state="visible")
    assert live.locator("img.plot-img").evaluate("img => img.style.display") == "none"
    shot(live, "03-rest-em-live-view")
    plots = cells(page).nth(ids.index("cell-09")).locator(".jp-RenderedPlotly")
    assert plots.count() == 4  # reward curve, reward distribution, generator loss, inner-loop loss
    for i, name in enumerate(["03-rest-em-reward-curve", "03-rest-em-reward-distribution", None, None]):
        visible_plot(plots.nth(i), name)


def test_a_papermill_run_shows_its_plots_when_opened_without_running(lab, page):
    saved = lab.root / "saved" / "01_quickstart.ipynb"
    saved.parent.mkdir(parents=True)
    papermill.execute_notebook(str(NOTEBOOKS / "01_quickstart.ipynb"), str(saved), cwd=str(NOTEBOOKS),
                               progress_bar=False, parameters={"SMOKE": True, "MODEL": "tiny", "K": 1,
                                                               "RUN_DIR": str(saved.parent / "run")})
    open_notebook(page, lab, saved)
    visible_plot(cells(page).locator(".jp-RenderedPlotly").first, "01-saved-notebook-in-jupyterlab")
    counts = [c["count"] for c in page.evaluate(PANEL_STATE)["cells"] if c["type"] == "code"]
    assert counts == [c.execution_count for c in nbformat.read(saved, as_version=4).cells if c.cell_type == "code"]

    # Where plotly's JupyterLab extension is missing (GitHub, nbconvert, other viewers) the PNG copy shows.
    html = saved.with_suffix(".html")
    body, _ = HTMLExporter(template_name="basic").from_filename(str(saved))
    html.write_text(f"<!DOCTYPE html><html><body>{body}</body></html>")
    page.goto(html.as_uri())
    image = page.locator("img[src^='data:image/png']").first
    image.scroll_into_view_if_needed()
    assert image.is_visible() and image.evaluate("img => img.naturalWidth") == 700
    shot(image, "01-saved-notebook-as-html")


def test_a_shipped_run_opens_in_rest_em_and_its_review_widget_pages_real_self_edits(lab, page):
    """`seal-kit results open 03-workshop`, then 03 with only RUN_DIR set, Run All: the run is shown with its
    own parameters (nothing trains) and the read-only review widget pages through its self-edits."""
    run_dir = results.open_run("03-workshop", lab.root / "shipped-03")
    folder = lab.root / "shipped-notebook"
    folder.mkdir()
    notebook = folder / "03_rest_em.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / notebook.name), str(notebook), parameters={"RUN_DIR": str(run_dir)},
                               prepare_only=True)
    logs = {p: p.read_bytes() for p in run_dir.rglob("*.jsonl")}
    open_notebook(page, lab, notebook)
    run_from_menu(page, "Run All Cells")
    assert_ran_cleanly(wait_for_run(page, "shipped-03", timeout_s=300))
    assert {p: p.read_bytes() for p in run_dir.rglob("*.jsonl")} == logs  # shown, nothing computed again
    widget = cells(page).locator(".jp-OutputArea-output .widget-vbox").filter(
        has=page.get_by_role("button", name="next ▶", exact=True)).first
    widget.scroll_into_view_if_needed()
    scored = sum(1 for line in (run_dir / "candidates.jsonl").read_text().splitlines() if line.strip())
    expect(widget.locator(".widget-label", has_text="1 / ").first).to_be_visible()
    first = widget.inner_text()
    assert not widget.get_by_role("button", name="accept", exact=True).count()  # read only
    shot(widget, "03-shipped-run-review-widget")
    widget.get_by_role("button", name="next ▶", exact=True).click()
    expect(widget.locator(".widget-label", has_text="2 / ").first).to_be_visible()
    assert widget.inner_text() != first and scored >= 2
    curve = cells(page).locator(".jp-RenderedPlotly").first
    visible_plot(curve, "03-shipped-run-reward-curve")


def test_quickstart_under_the_workshop_profile_from_the_run_menu(lab, page):
    """01 as a class runs it: the students' copy with PROFILE = "workshop" (the embedded model), Run All from
    the Run menu, the check cell at the end; a screenshot of the notebook after the run."""
    run_dir = lab.root / "runs" / "quickstart-workshop"
    folder = lab.root / "class"
    assert main(["notebooks", str(folder), "--student"]) == 0
    notebook = folder / "01_quickstart.ipynb"
    papermill.execute_notebook(str(notebook), str(notebook), parameters={"PROFILE": "workshop", "RUN_DIR": str(run_dir)},
                               prepare_only=True)
    open_notebook(page, lab, notebook)
    run_from_menu(page, "Run All Cells")
    state = wait_for_run(page, "quickstart-workshop", timeout_s=900)
    assert_ran_cleanly(state)
    assert "".join(o.get("text", "") for o in state["cells"][-1]["outputs"]).startswith("✗ not done yet")
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["MODEL"] == "embedded"
    visible_plot(cells(page).locator(".jp-RenderedPlotly").first, "01-workshop-loss-curves")
    shot(page, "01-workshop-after-run-all")


def test_opening_and_saving_a_notebook_leaves_it_as_committed(lab, page):
    """JupyterLab writes kernelspec and language metadata when it saves: the committed notebooks hold what it
    writes, so opening one and saving it (no run) changes nothing in a checkout."""
    copy = lab.root / "as-committed" / "03_rest_em.ipynb"
    copy.parent.mkdir()
    copy.write_bytes((NOTEBOOKS / copy.name).read_bytes())
    open_notebook(page, lab, copy)
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    wait_for_file(lambda: copy.stat().st_mtime_ns != (NOTEBOOKS / copy.name).stat().st_mtime_ns
                  and json.loads(copy.read_text()), "the save")
    time.sleep(1)
    assert json.loads(copy.read_text()) == json.loads((NOTEBOOKS / copy.name).read_text())
