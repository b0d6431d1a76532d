"""Static copies of figures: what keeps a saved notebook's plots visible without re-running it."""
import base64
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from seal_kit import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

IMPORT_EVERYTHING = """
import importlib, pkgutil, sys, types, warnings
sys.modules["ipykernel"] = types.ModuleType("ipykernel")  # as inside a Jupyter kernel
callers = []
for name in ("filterwarnings", "simplefilter"):
    def spy(*args, _real=getattr(warnings, name), **kwargs):
        callers.append(sys._getframe(1).f_globals.get("__name__", ""))
        return _real(*args, **kwargs)
    setattr(warnings, name, spy)
import plotly.io as pio
default = pio.renderers.default
import seal_kit
for module in pkgutil.walk_packages(seal_kit.__path__, "seal_kit."):
    importlib.import_module(module.name)
ours = [c for c in callers if c.startswith("seal_kit")]
assert not ours, f"warning filters set at import by {ours}"
assert pio.renderers.default == default and "seal_kit_png" not in pio.renderers, pio.renderers.default
from seal_kit import plots
plots.loss_curves({"edit 0": [2.0, 1.0]})
assert pio.renderers.default.endswith("+seal_kit_png"), pio.renderers.default
"""


def test_importing_the_kit_leaves_plotly_and_warning_filters_alone():
    """No import-time side effects, even in a Jupyter kernel: our renderer joins plotly's defaults when
    a figure is built, and warning filters are set when a model is loaded (models.load_model)."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture
def fresh_static(monkeypatch):
    """Each test starts as a new kernel would: copies on, no browser failure remembered."""
    monkeypatch.setattr(plots._Static, "enabled", True)
    monkeypatch.setattr(plots._Static, "unavailable", False)


@pytest.mark.browser
def test_a_shown_figure_carries_a_png_of_its_layout_size(fresh_static):
    figure = plots.accuracy_bars({"base": 0.1, "self_edit": 0.4})  # height 380, width plotly's default
    bundle = plots.StaticCopy().to_mimebundle(figure.to_dict())
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(PNG_MAGIC)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # the IHDR chunk
    assert (width, height) == (700, 380)


def test_without_a_browser_figures_stay_interactive_and_one_warning_says_why(fresh_static, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chrome")
    figure = plots.loss_curves({"edit 0": [2.0, 1.0]})
    with pytest.warns(UserWarning, match="no static copies of figures"):
        assert plots.StaticCopy().to_mimebundle(figure.to_dict()) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second figure neither retries the browser nor warns again
        assert plots.StaticCopy().to_mimebundle(figure.to_dict()) == {}
    assert plots._Static.unavailable


def test_live_redraws_carry_no_static_copy(fresh_static, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "static_png", lambda fig: drawn.append(fig) or PNG_MAGIC)
    figure = plots.loss_curves({"edit 0": [2.0, 1.0]}).to_dict()
    with plots.interactive_only():
        assert plots.StaticCopy().to_mimebundle(figure) == {}
    assert drawn == [] and plots._Static.enabled  # restored after the block
    assert plots.StaticCopy().to_mimebundle(figure) == {"image/png": base64.b64encode(PNG_MAGIC).decode()}


def test_accuracy_bars_draw_intervals_as_asymmetric_error_bars():
    figure = plots.accuracy_bars({"base": 0.2, "passage": 0.5}, intervals={"base": (0.1, 0.4), "passage": (0.5, 0.9)})
    error = figure.data[0].error_y
    assert list(error.arrayminus) == pytest.approx([0.1, 0.0]) and list(error.array) == pytest.approx([0.2, 0.4])
    assert figure.layout.yaxis.range[1] == pytest.approx(0.9 * 1.2)  # the highest whisker stays in view
    assert plots.accuracy_bars({"base": 0.2}).data[0].error_y.array is None  # no intervals, no error bars


def test_the_prompt_rl_figure_puts_each_runs_baseline_over_its_own_bar():
    import pandas as pd

    table = pd.DataFrame({"before": [0.4, 0.5], "before_low": [0.35, 0.45], "before_high": [0.45, 0.55],
                          "after": [0.47, 0.55], "after_low": [0.43, 0.5], "after_high": [0.5, 0.6],
                          "baseline_before": [0.32, 0.33], "baseline_after": [0.33, 0.31]}, index=["implications", "rewrite"])
    figure = plots.prompt_rl(table)
    bars, marks = figure.data[:2], figure.data[2:]
    assert [b.offsetgroup for b in bars] == [m.offsetgroup for m in marks] == ["before", "after"]
    assert list(bars[1].error_y.arrayminus) == pytest.approx([0.04, 0.05]) and list(marks[1].y) == [0.33, 0.31]
    summaries = pd.DataFrame({"prompt": ["a", "a", "b", "b"], "round": ["base", "iter2"] * 2, "words": [1, 2, 3, 4],
                              "grounding": [0.1, 0.2, 0.3, 0.4]})
    panels = plots.before_after(summaries, ["words", "grounding"], labels={"words": "words per edit"})
    assert len(panels.data) == 4 and panels.layout.annotations[0].text == "words per edit"
    assert list(panels.data[1].y) == [2, 4] and panels.data[1].name == "iter2"
    heat = plots.heatmaps({"left": pd.DataFrame([[0.1, -0.3]], index=["r"], columns=["x", "y"])}, zmax=0.5)
    assert heat.data[0].zmin == -0.5 and list(heat.data[0].text[0]) == ["+0.10", "-0.30"]
