"""Plots (plotly): accuracy comparisons and inner-loop loss curves.

    from seal_kit.plots import accuracy_bars, loss_curves
    accuracy_bars({"base": 0.1, "passage": 0.3, "self_edit": 0.4}).show()
    loss_curves({"edit 0": [2.1, 1.4, 0.9], "edit 1": [2.3, 1.1, 0.5]}).show()
"""
from __future__ import annotations

import plotly.graph_objects as go


def accuracy_bars(accuracy: dict[str, float], title: str = "Closed-book accuracy") -> go.Figure:
    names = list(accuracy)
    values = [accuracy[n] for n in names]
    fig = go.Figure(go.Bar(x=names, y=values, text=[f"{v:.1%}" for v in values], textposition="outside"))
    fig.update_layout(title=title, yaxis=dict(title="accuracy", tickformat=".0%", range=[0, max(1e-9, *values) * 1.2]),
                      template="plotly_white", height=380)
    return fig


def loss_curves(curves: dict[str, list[float]], title: str = "Inner-loop loss") -> go.Figure:
    fig = go.Figure([go.Scatter(y=losses, mode="lines", name=name) for name, losses in curves.items()])
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", template="plotly_white", height=380)
    return fig
