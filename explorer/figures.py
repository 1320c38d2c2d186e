"""Plotly figure builders (plain functions of data): component maps, discovery curves, baselines, circuit overlap."""

from __future__ import annotations

import html
from collections.abc import Collection, Sequence

import plotly.graph_objects as go

from core.circuit.component import KINDS, Component
from core.evaluation.compare import ComparisonRow
from core.scoring.learned import StepLog

SCALE = "Viridis"  # perceptually uniform and colour-blind safe
# Okabe-Ito: distinguishable under the common colour-vision deficiencies.
ORANGE, SKY, GREEN, BLUE, VERMILION, GREY = "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#999999"
FONT = dict(size=13)


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    # Titles carry circuit names from files: plotly renders some HTML in text (links, bold), so escape it.
    fig.update_layout(title=dict(text=html.escape(title), x=0.0, xref="paper", xanchor="left"), height=height,
                      font=FONT,
                      margin=dict(l=60, r=20, t=70, b=50),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1))
    return fig


def component_map(scores: Sequence[Sequence[float]] | None, circuit: Collection[tuple[int, int]],
                  off: Collection[tuple[int, int]], kind: str, n_layers: int, width: int, title: str,
                  clickable: bool = False) -> go.Figure:
    """A layer x head (kind "H") or layer x neuron (kind "N") map of gate scores, the circuit outlined.

    Without scores the map shows circuit membership (1 in, 0 out). With clickable=True a near-transparent square
    marker with customdata [layer, index] sits on every cell: plotly.js heatmaps report no clicked cell, scatter
    points do (st.plotly_chart(..., on_select=...)). Switched-off cells carry an X.
    """
    unit = "head" if kind == "H" else "neuron"
    circuit, off = set(circuit), set(off)
    if scores is None:
        z = [[1.0 if (layer, i) in circuit else 0.0 for i in range(width)] for layer in range(n_layers)]
        score_label = "in circuit"
    else:
        z = [[float(v) for v in row] for row in scores]
        score_label = "gate score"
    layers = list(range(n_layers))
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(width)), y=layers, colorscale=SCALE, zmin=0, zmax=1,
        colorbar=dict(title=dict(text=score_label, side="right"), thickness=14),
        hovertemplate=f"L%{{y}}{kind}%{{x}}<br>{score_label} %{{z:.3f}}<extra></extra>",
        name=score_label,
    ))
    if clickable:
        cells = [(layer, i) for layer in layers for i in range(width)]
        texts = [f"{Component(KINDS[kind], layer, i).label}<br>{score_label} {z[layer][i]:.3f}<br>"
                 f"in circuit: {'yes' if (layer, i) in circuit else 'no'}<br>"
                 f"switched off: {'yes' if (layer, i) in off else 'no'}<br>click to toggle" for layer, i in cells]
        fig.add_trace(go.Scatter(
            x=[i for _, i in cells], y=[layer for layer, _ in cells], mode="markers",
            marker=dict(symbol="square", size=max(8, min(44, 640 // max(width, 1))), color="black", opacity=0.01),
            customdata=[[layer, i] for layer, i in cells], text=texts, hovertemplate="%{text}<extra></extra>",
            name=f"click a {unit} to toggle it", showlegend=False,
        ))
    outline = max(6, min(34, 560 // max(width, 1)))
    if circuit:
        xs, ys = [i for _, i in sorted(circuit)], [layer for layer, _ in sorted(circuit)]
        # White over black: visible on both ends of the colour scale.
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="in circuit", hoverinfo="skip",
                                 marker=dict(symbol="square-open", size=outline + 4, color="black",
                                             line=dict(width=3))))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", hoverinfo="skip", showlegend=False,
                                 marker=dict(symbol="square-open", size=outline, color="white", line=dict(width=2))))
    if off:
        xs, ys = [i for _, i in sorted(off)], [layer for layer, _ in sorted(off)]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="switched off", hoverinfo="skip",
                                 marker=dict(symbol="x", size=max(7, outline * 0.6), color=VERMILION,
                                             line=dict(width=1.5, color="white"))))
    tick_step = 1 if width <= 32 else max(1, width // 16)
    fig.update_xaxes(title_text=unit, tickmode="array", tickvals=list(range(0, width, tick_step)),
                     ticktext=[f"{kind}{i}" for i in range(0, width, tick_step)], showgrid=False, zeroline=False,
                     range=[-0.5, width - 0.5])
    fig.update_yaxes(title_text="layer", tickmode="array", tickvals=layers, ticktext=[f"L{layer}" for layer in layers],
                     autorange="reversed", showgrid=False, zeroline=False)
    # No dragmode="select": with it Streamlit turns click-selection off (clickmode "event"), so a click would no
    # longer toggle a cell; box selection stays one toolbar click away.
    fig.update_layout(hovermode="closest", plot_bgcolor="white")
    return _layout(fig, title, height=max(280, min(640, 120 + 48 * n_layers)))


def discovery_curves(logs: Sequence[StepLog]) -> go.Figure:
    """Loss terms per step (left axis) and the expected share of heads / neurons removed (right axis)."""
    steps = [log.step for log in logs]
    fig = go.Figure()
    for field, name, colour in (("loss", "total loss", BLUE), ("behaviour", "behaviour CE", ORANGE),
                                ("retain", "retain KL", GREEN)):
        fig.add_trace(go.Scatter(x=steps, y=[getattr(log, field) for log in logs], name=name, mode="lines",
                                 line=dict(color=colour, width=2)))
    for field, name, colour in (("heads_removed", "heads removed (%)", VERMILION),
                                ("neurons_removed", "neurons removed (%)", SKY)):
        fig.add_trace(go.Scatter(x=steps, y=[100 * getattr(log, field) for log in logs], name=name, mode="lines",
                                 line=dict(color=colour, width=2, dash="dash"), yaxis="y2"))
    fig.update_layout(xaxis=dict(title="step"), yaxis=dict(title="loss", rangemode="tozero"),
                      yaxis2=dict(title="removed (%)", overlaying="y", side="right", rangemode="tozero",
                                  showgrid=False))
    return _layout(fig, "Discovery: loss and sparsity", height=360)


def comparison_chart(rows: Sequence[ComparisonRow], asr_label: str) -> go.Figure:
    """ASR after removal and utility kept, per method (the random baseline with its spread over seeds)."""
    methods = [row.method for row in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=methods, y=[100 * (row.asr_after or 0) for row in rows], name=f"{asr_label} after removal",
        marker=dict(color=ORANGE, pattern=dict(shape="/")),
        error_y=dict(type="data", array=[100 * (row.asr_after_std or 0) for row in rows],
                     visible=any(row.asr_after_std for row in rows)),
        hovertemplate="%{x}<br>" + asr_label + " after %{y:.1f}%<extra></extra>",
    ))
    fig.add_trace(go.Bar(
        x=methods, y=[100 * (row.utility_retention or 0) for row in rows], name="utility kept",
        marker=dict(color=BLUE), hovertemplate="%{x}<br>utility kept %{y:.1f}%<extra></extra>",
    ))
    if rows and rows[0].asr_before is not None:
        fig.add_hline(y=100 * rows[0].asr_before, line=dict(color="black", dash="dot"),
                      annotation_text=f"{asr_label} of the full model", annotation_position="top left")
    fig.update_layout(barmode="group", yaxis=dict(title="%", range=[0, 105]), xaxis=dict(title="method"))
    return _layout(fig, f"Learned circuit vs baselines of the same size ({asr_label})", height=400)


OVERLAP_LABELS = ("neither", "only A", "only B", "both")


def overlap_map(a: Collection[tuple[int, int]], b: Collection[tuple[int, int]], n_layers: int, width: int,
                kind: str, names: tuple[str, str]) -> go.Figure:
    """Which components two circuits share: a categorical map with words in the cells, not colour alone."""
    a, b = set(a), set(b)
    shown = (html.escape(names[0]), html.escape(names[1]))  # from circuit files: shown as text
    z, text = [], []
    for layer in range(n_layers):
        row_z, row_text = [], []
        for i in range(width):
            code = (1 if (layer, i) in a else 0) + (2 if (layer, i) in b else 0)
            row_z.append(code)
            row_text.append(("", "A", "B", "A+B")[code] if width <= 32 else "")
        z.append(row_z)
        text.append(row_text)
    colours = ["#f2f2f2", ORANGE, SKY, GREEN]
    # Four equal bands over 0..3 for a discrete scale.
    scale = [[stop, colour] for index, colour in enumerate(colours) for stop in (index / 4, (index + 1) / 4)]
    unit = "head" if kind == "H" else "neuron"
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(width)), y=list(range(n_layers)), zmin=-0.5, zmax=3.5, colorscale=scale, text=text,
        texttemplate="%{text}", customdata=[[OVERLAP_LABELS[code] for code in row] for row in z],
        hovertemplate=f"L%{{y}}{kind}%{{x}}: %{{customdata}}<extra></extra>",
        colorbar=dict(tickvals=[0, 1, 2, 3], ticktext=["neither", f"only A ({shown[0]})", f"only B ({shown[1]})",
                                                        "both"], thickness=14),
    ))
    tick_step = 1 if width <= 32 else max(1, width // 16)
    fig.update_xaxes(title_text=unit, tickmode="array", tickvals=list(range(0, width, tick_step)),
                     ticktext=[f"{kind}{i}" for i in range(0, width, tick_step)])
    fig.update_yaxes(title_text="layer", tickmode="array", tickvals=list(range(n_layers)),
                     ticktext=[f"L{layer}" for layer in range(n_layers)], autorange="reversed")
    height = max(260, min(560, 110 + 44 * n_layers))
    return _layout(fig, f"Shared {unit}s: A = {names[0]}, B = {names[1]}", height=height)
