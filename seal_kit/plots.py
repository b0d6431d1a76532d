"""Plots (plotly): accuracy bars, loss curves, ReST-EM reward curves, and a live view.

    from seal_kit import plots
    plots.accuracy_bars({"base": 0.1, "passage": 0.3, "self_edit": 0.4}).show()
    plots.accuracy_bars({"base": 0.1}, intervals={"base": (0.05, 0.18)})  # with 95% intervals as error bars
    plots.loss_curves({"edit 0": [2.1, 1.4, 0.9], "edit 1": [2.3, 1.1, 0.5]}).show()
    plots.reward_curve(loop.rounds); plots.reward_distribution(loop.candidates())
    live = plots.LiveFigure(every=10); live.update(lambda: plots.scoring_progress(loop.log.records))
    plots.save_html(figure, run.path / "reward_curve.html")     # static copy, opens offline
    plots.arc_grids({"input": task.test[0].input, "gold": task.test[0].output, "prediction": None}).show()
    plots.prompt_rl(evidence.prompt_rl(judged))           # the paper's prompts before and after RL
    plots.before_after(summaries, ["words", "grounding"]) # a statistic per panel, before/after RL per prompt
    plots.heatmaps({"within each run": rho}, "Spearman correlation with the gain")

In a notebook every figure shown carries a PNG beside plotly's interactive output, so an executed
notebook (a papermill run's output, a notebook on GitHub or exported to HTML) shows its plots without
re-running. kaleido draws the PNG offline in the machine's Chrome or Chromium (`BROWSER_PATH` picks
one); without a browser, figures are interactive only and a warning says so once.
"""
from __future__ import annotations

import base64
import functools
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from IPython.display import display
from plotly.io.base_renderers import MimetypeRenderer
from plotly.offline import get_plotlyjs

from .storage import atomic_write


def static_copies() -> None:
    """Make figures shown in a Jupyter kernel carry a PNG beside plotly's interactive output: adds our
    renderer to plotly's defaults, once. Outside a kernel it changes nothing, so a script's fig.show()
    keeps plotly's own choice and pays for no PNG. Every figure built here calls it, so importing
    this module leaves plotly as it was."""
    if "seal_kit_png" not in pio.renderers:
        pio.renderers["seal_kit_png"] = StaticCopy()
    if "ipykernel" in sys.modules and "seal_kit_png" not in pio.renderers.default:
        pio.renderers.default = "+".join(filter(None, [pio.renderers.default or "plotly_mimetype", "seal_kit_png"]))


def _figure(build: Callable[..., go.Figure]) -> Callable[..., go.Figure]:
    """A figure builder whose figures, once shown, carry their static copy (see `static_copies`)."""
    @functools.wraps(build)
    def built(*args, **kwargs) -> go.Figure:
        static_copies()
        return build(*args, **kwargs)
    return built


@_figure
def accuracy_bars(accuracy: dict[str, float], title: str = "Closed-book accuracy",
                  intervals: dict[str, tuple[float, float]] | None = None) -> go.Figure:
    """One bar per condition; `intervals` (condition -> (low, high)) draws them as error bars, and the
    labels then sit inside the bars, where the bars' whiskers cannot cover them."""
    names = list(accuracy)
    values = [accuracy[n] for n in names]
    error = None
    if intervals:
        error = dict(type="data", symmetric=False, array=[intervals[n][1] - accuracy[n] for n in names],
                     arrayminus=[accuracy[n] - intervals[n][0] for n in names])
    top = max(1e-9, *values, *(high for _, high in (intervals or {}).values()))
    fig = go.Figure(go.Bar(x=names, y=values, text=[f"{v:.1%}" for v in values], error_y=error,
                           textposition="inside" if intervals else "outside", insidetextanchor="start"))
    fig.update_layout(title=title, yaxis=dict(title="accuracy", tickformat=".0%", range=[0, top * 1.2]),
                      template="plotly_white", height=380)
    return fig


# ARC's usual colours for 0..9: black, blue, red, green, yellow, grey, magenta, orange, sky, maroon
ARC_COLORS = ["#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25"]


@_figure
def strength_map(summary: pd.DataFrame, title: str = "Where self-edits help: accuracy per inner loop") -> go.Figure:
    """Grouped bars: one group per inner-loop setting, one bar per condition, 95% intervals as whiskers
    (the table `seal_kit.knowledge.strength_map.summarize` returns)."""
    fig = go.Figure()
    for condition in dict.fromkeys(summary.condition):
        part = summary[summary.condition == condition]
        fig.add_trace(go.Bar(name=condition, x=part.setting, y=part.accuracy, error_y=dict(
            type="data", symmetric=False, array=part.ci_high - part.accuracy, arrayminus=part.accuracy - part.ci_low)))
    fig.update_layout(title=title, barmode="group", template="plotly_white", height=420,
                      yaxis=dict(title="accuracy (mean of per-passage, 95% CI)", tickformat=".0%"),
                      legend=dict(orientation="h", y=-0.2))
    return fig


@_figure
def prompt_rl(table: pd.DataFrame, title: str = "The paper's self-edit prompts, before RL and after two ReST-EM rounds"
              ) -> go.Figure:
    """Per prompt, accuracy before RL and after (bars with their 95% intervals), and the no-edit baseline
    each of the two runs judged again (a dash over each bar): `evidence.prompt_rl`'s table."""
    prompts = table.index.tolist()
    fig = go.Figure()
    for side, name in (("before", "before RL (base)"), ("after", "after 2 ReST-EM rounds (iter2)")):
        fig.add_trace(go.Bar(name=name, x=prompts, y=table[side], offsetgroup=side, text=[f"{v:.1%}" for v in table[side]],
                             textposition="inside", insidetextanchor="start", error_y=dict(
                                 type="data", symmetric=False, array=table[f"{side}_high"] - table[side],
                                 arrayminus=table[side] - table[f"{side}_low"])))
    for side, column in (("before", "baseline_before"), ("after", "baseline_after")):
        fig.add_trace(go.Scatter(name=f"no-edit baseline, judged in the {side} run", x=prompts, y=table[column],
                                 offsetgroup=side, mode="markers", legendgroup="baseline",
                                 showlegend=side == "before", marker=dict(symbol="line-ew-open", size=28, color="black",
                                                                          line=dict(width=2))))
    fig.update_layout(title=title, barmode="group", scattermode="group", template="plotly_white", height=420,
                      yaxis=dict(title="accuracy (mean of per-passage, 95% CI)", tickformat=".0%", rangemode="tozero"),
                      legend=dict(orientation="h", y=-0.15))
    return fig


@_figure
def before_after(summaries: pd.DataFrame, statistics: list[str], title: str = "What RL changed in the self-edits",
                 labels: dict[str, str] | None = None) -> go.Figure:
    """One panel per statistic, a bar per prompt and round: `summaries` has `prompt` and `round` columns
    and one column per statistic (`edit_stats.summary` dicts, one row per self-edit set)."""
    from plotly.subplots import make_subplots

    labels = labels or {}
    columns = 3 if len(statistics) > 4 else 2
    rows = -(-len(statistics) // columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[labels.get(s, s) for s in statistics],
                        vertical_spacing=0.5 / rows, horizontal_spacing=0.08)
    for n, statistic in enumerate(statistics):
        for rnd, colour in zip(dict.fromkeys(summaries["round"]), ("#636EFA", "#EF553B", "#00CC96")):
            part = summaries[summaries["round"] == rnd]
            fig.add_trace(go.Bar(name=str(rnd), x=part["prompt"], y=part[statistic], marker_color=colour,
                                 legendgroup=str(rnd), showlegend=n == 0), row=n // columns + 1, col=n % columns + 1)
    fig.update_layout(title=title, barmode="group", template="plotly_white", height=300 * rows + 80,
                      legend=dict(orientation="h", y=1.0 + 0.25 / rows, x=1, xanchor="right"))
    return fig


@_figure
def heatmaps(panels: dict[str, pd.DataFrame], title: str = "", zmax: float | None = None) -> go.Figure:
    """Tables of numbers side by side as heatmaps on one diverging scale (0 white), each cell labelled:
    correlations, say, rows the groups and columns the statistics."""
    from plotly.subplots import make_subplots

    names = list(panels)
    top = zmax or max(1e-9, *(float(abs(t.to_numpy()).max()) for t in panels.values()))
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.3 / len(names))
    for n, name in enumerate(names, start=1):
        table = panels[name]
        fig.add_trace(go.Heatmap(z=table.to_numpy(), x=list(table.columns), y=[str(i) for i in table.index],
                                 zmin=-top, zmax=top, zmid=0, colorscale="RdBu", showscale=n == len(names),
                                 text=[[f"{v:+.2f}" for v in row] for row in table.to_numpy()],
                                 texttemplate="%{text}", hovertemplate="%{y} · %{x}: %{z:+.3f}<extra></extra>"),
                      row=1, col=n)
        fig.update_yaxes(autorange="reversed", row=1, col=n)
    height = 120 + 32 * max(len(t) for t in panels.values())
    fig.update_layout(title=title, template="plotly_white", height=max(320, height), width=max(700, 480 * len(names)))
    return fig


@_figure
def arc_grids(grids: dict, title: str = "") -> go.Figure:
    """ARC grids side by side as heatmaps in ARC colours; a None grid (no prediction) leaves its panel empty."""
    from plotly.subplots import make_subplots

    names = list(grids)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[n if grids[n] is not None else f"{n}: none"
                                                                 for n in names], horizontal_spacing=0.04)
    scale = [[v, ARC_COLORS[i]] for i in range(10) for v in (i / 10, (i + 1) / 10)]  # colour i on [i, i+1)/10
    for col, name in enumerate(names, start=1):
        grid = grids[name]
        if grid is not None:
            fig.add_trace(go.Heatmap(z=[list(row) for row in grid], zmin=-0.5, zmax=9.5, colorscale=scale,
                                     showscale=False, xgap=1, ygap=1, name=name,
                                     hovertemplate="row %{y}, col %{x}: colour %{z}<extra></extra>"), 1, col)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{col if col > 1 else ''}", showticklabels=False,
                         row=1, col=col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
    fig.update_layout(title=title, template="plotly_white", height=300, width=max(360, 230 * len(names)),
                      plot_bgcolor="#DDDDDD")
    return fig


@_figure
def summary_table(table: pd.DataFrame, title: str = "") -> go.Figure:
    """A results table as a plotly table (readable in a saved HTML file); floats to 3 decimals."""
    shown = table.drop(columns=[c for c in ("run_dir",) if c in table])
    cells = [[f"{v:.3f}" if isinstance(v, float) else "" if v is None else str(v) for v in shown[c]] for c in shown]
    fig = go.Figure(go.Table(header=dict(values=list(shown.columns), align="left"), cells=dict(values=cells, align="left")))
    fig.update_layout(title=title, height=min(1200, 120 + 28 * len(shown)))
    return fig


@_figure
def forgetting_heatmap(matrix: list[list[float | None]], title: str = "Accuracy after each edit",
                       spread: list[list[float | None]] | None = None) -> go.Figure:
    """Rows: the base model before any edit (when the matrix has one row more than columns), then after
    edit i; columns: passage j; blank above the diagonal (not edited yet). `spread`, of the same shape,
    is shown as ± beside each value (the standard deviation over sequences)."""
    n = len(matrix[0]) if matrix else 0
    rows = (["base"] if len(matrix) > n else []) + [f"after edit {i}" for i in range(n)]
    text = [["" if v is None else f"{v:.2f}" + (f" ± {spread[i][j]:.2f}" if spread and spread[i][j] else "")
             for j, v in enumerate(row)] for i, row in enumerate(matrix)]
    fig = go.Figure(go.Heatmap(z=matrix, x=[f"passage {j}" for j in range(n)], y=rows,
                               zmin=0, zmax=1, colorscale="Viridis", text=text, texttemplate="%{text}",
                               hovertemplate="%{y}, %{x}: %{text}<extra></extra>"))
    fig.update_layout(title=title, yaxis=dict(autorange="reversed"), template="plotly_white",
                      height=max(300, 60 + 40 * len(rows)))
    return fig


@_figure
def retention_curves(curves: dict[str, list[float]], title: str = "Accuracy on the first passage as edits pile up") -> go.Figure:
    fig = go.Figure([go.Scatter(y=values, mode="lines+markers", name=name) for name, values in curves.items()])
    fig.update_layout(title=title, xaxis_title="edits applied after it", yaxis=dict(title="accuracy", range=[0, 1.05]),
                      template="plotly_white", height=380)
    return fig


@_figure
def loss_curves(curves: dict[str, list[float]], title: str = "Inner-loop loss") -> go.Figure:
    fig = go.Figure([go.Scatter(y=losses, mode="lines", name=name) for name, losses in curves.items()])
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", template="plotly_white", height=380)
    return fig


@_figure
def reward_curve(rounds: pd.DataFrame, title: str = "ReST-EM: reward over rounds",
                 held_out: pd.DataFrame | None = None, diversity: pd.Series | None = None) -> go.Figure:
    """Mean and best-of-K reward on training contexts, held-out accuracy, and the base model's lines;
    with `held_out` (RestEM.held_out_accuracy) the held-out accuracy carries its interval as error bars;
    with `diversity` (round -> distinct-n of the edits that round's generator wrote, `edit_stats.summary`)
    a line on a right-hand axis shows whether the edits grow alike as the generator trains."""
    x = rounds["round"].tolist()
    error = None
    if held_out is not None and len(held_out):
        bounds = held_out.set_index("round").reindex(x)
        error = dict(type="data", symmetric=False, array=(bounds.high - bounds.accuracy).tolist(),
                     arrayminus=(bounds.accuracy - bounds.low).tolist())
    fig = go.Figure([
        go.Scatter(x=x, y=rounds["mean_reward"], mode="lines+markers", name="mean reward (train)"),
        go.Scatter(x=x, y=rounds["best_reward"], mode="lines+markers", name="best of K (train)"),
        go.Scatter(x=x, y=rounds["eval_accuracy"], mode="lines+markers", error_y=error,
                   name="held-out accuracy" + (" (95% interval)" if error else "")),
        go.Scatter(x=x, y=rounds["baseline"], mode="lines", line=dict(dash="dash"), name="baseline (train)"),
        go.Scatter(x=x, y=rounds["eval_baseline"], mode="lines", line=dict(dash="dot"), name="baseline (held-out)"),
    ])
    fig.update_layout(title=title, xaxis=dict(title="round (0 = untrained generator)", dtick=1),
                      yaxis=dict(title="reward / accuracy", rangemode="tozero"), template="plotly_white", height=400)
    if diversity is not None:
        fig.add_trace(go.Scatter(x=x, y=diversity.reindex(x).tolist(), mode="lines+markers", yaxis="y2",
                                 line=dict(dash="dashdot", color="grey"), name="edit diversity (distinct-3, right)"))
        fig.update_layout(yaxis2=dict(title="distinct-3 of the round's edits", overlaying="y", side="right",
                                      range=[0, 1], showgrid=False))
    return fig


@_figure
def reward_distribution(candidates: pd.DataFrame, title: str = "Reward of the sampled self-edits") -> go.Figure:
    """One box per round over the training candidates' rewards (points shown: K and N are small)."""
    train = candidates[candidates["split"] == "train"]
    fig = go.Figure([go.Box(y=group["reward"], name=f"round {r}", boxpoints="all", jitter=0.4, pointpos=0)
                     for r, group in train.groupby("round")])
    fig.update_layout(title=title, yaxis_title="reward", template="plotly_white", height=400, showlegend=False)
    return fig


@_figure
def scoring_progress(records: list[dict], title: str = "Self-edits scored so far") -> go.Figure:
    """Every scored (candidate, seed) in order, one colour per round and split: what the live view redraws."""
    table = pd.DataFrame(records, columns=["round", "split", "reward"])
    fig = go.Figure([go.Scatter(x=group.index, y=group["reward"], mode="markers", name=f"round {r} {split}")
                     for (r, split), group in table.groupby(["round", "split"])])
    fig.update_layout(title=title, xaxis_title="scored candidate", yaxis_title="reward", template="plotly_white",
                      height=360)
    return fig


class LiveFigure:
    """A figure redrawn in place in the notebook (an IPython display handle), at most once per `every`
    seconds unless forced, so a loop scoring many candidates is not slowed by plotting."""

    def __init__(self, every: float = 10.0, enabled: bool = True):
        self.every, self.enabled = every, enabled
        self.handle, self.last, self.draws = None, float("-inf"), 0

    def update(self, build: Callable[[], go.Figure], force: bool = False) -> bool:
        if not self.enabled or (not force and time.monotonic() - self.last < self.every):
            return False
        figure = build()
        with interactive_only():  # a static copy per redraw would slow the loop it watches
            if self.handle is None:
                self.handle = display(figure, display_id=True)
            else:
                self.handle.update(figure)
        self.last, self.draws = time.monotonic(), self.draws + 1
        return True


def save_html(figure: go.Figure, path: Path) -> Path:
    """A static copy beside the run's other files; plotly.js is written once into that folder, so the
    pages open offline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not (path.parent / "plotly.min.js").exists():
        atomic_write(path.parent / "plotly.min.js", get_plotlyjs())
    atomic_write(path, figure.to_html(include_plotlyjs="directory", full_html=True))
    return path


class _Static:
    """Whether shown figures get a static copy: off inside `interactive_only`, and for good once no
    browser could draw one (trying again for every figure would cost seconds each)."""
    enabled, unavailable = True, False


def static_png(figure: go.Figure | dict) -> bytes | None:
    """The figure as PNG bytes at its layout size, or None where no Chrome/Chromium can draw it."""
    if _Static.unavailable:
        return None
    try:
        import kaleido

        fig = figure.to_dict() if isinstance(figure, go.Figure) else figure
        layout = fig.get("layout", {})
        # mathjax off: kaleido would otherwise fetch it from a CDN, which offline rooms cannot reach
        return kaleido.calc_fig_sync(fig, opts=dict(format="png", width=layout.get("width") or 700,
                                                    height=layout.get("height") or 450, scale=1),
                                     kopts={"mathjax": False, "timeout": 60})
    except Exception as error:  # no kaleido, no browser, a browser that will not start
        _Static.unavailable = True
        warnings.warn(f"plots: no static copies of figures ({type(error).__name__}: {str(error)[:200]}); figures stay "
                      "interactive, but a saved notebook shows them only in JupyterLab. Install Chrome or Chromium "
                      "(or point BROWSER_PATH at one) for PNG copies.", stacklevel=2)
        return None


@contextmanager
def interactive_only():
    """Figures shown inside this block carry no static copy."""
    before, _Static.enabled = _Static.enabled, False
    try:
        yield
    finally:
        _Static.enabled = before


class StaticCopy(MimetypeRenderer):
    """plotly renderer adding an `image/png` to a figure's output (nothing when no copy can be drawn)."""

    def to_mimebundle(self, fig_dict):
        png = static_png(fig_dict) if _Static.enabled else None
        return {"image/png": base64.b64encode(png).decode()} if png else {}

