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


TITLE_CHARACTERS = 36  # a title line longer than this is wrapped: it must fit a phone-width chart


def _wrap(title: str, width: int = TITLE_CHARACTERS) -> str:
    """Break a title into lines of at most `width` characters at spaces (plotly never wraps titles itself)."""
    lines: list[str] = []
    for word in title.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(lines)


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    # Titles carry circuit names from files: plotly renders some HTML in text (links, bold), so escape it.
    wrapped = _wrap(html.escape(title))
    lines = wrapped.count("<br>") + 1
    fig.update_layout(title=dict(text=wrapped, x=0.0, xref="paper", xanchor="left"),
                      height=height + 20 * (lines - 1), font=FONT,
                      margin=dict(l=60, r=20, t=36 + 22 * lines, b=100),
                      # Under the axis title whatever the tick labels need: anchored to the figure's bottom edge.
                      legend=dict(orientation="h", yref="container", yanchor="bottom", y=0.01, xanchor="left", x=0))
    return fig


def _cell_labels(kind: str, n_layers: int, width: int) -> list[list[str]]:
    """"L2H9" / "L0N134" per cell. Hover text comes from here: %{y} would print the axis tick text ("L2")."""
    return [[Component(KINDS[kind], layer, i).label for i in range(width)] for layer in range(n_layers)]


def _cell_box(layer: int, index: int, inset: float = 0.0) -> dict:
    return dict(x0=index - 0.5 + inset, x1=index + 0.5 - inset, y0=layer - 0.5 + inset, y1=layer + 0.5 - inset,
                xref="x", yref="y")


def _axes(fig: go.Figure, kind: str, n_layers: int, width: int) -> None:
    unit = "head" if kind == "H" else "neuron"
    tick_step = 1 if width <= 32 else max(1, width // 8)
    fig.update_xaxes(title_text=unit, tickmode="array", tickvals=list(range(0, width, tick_step)),
                     ticktext=[f"{kind}{i}" for i in range(0, width, tick_step)], showgrid=False, zeroline=False,
                     range=[-0.5, width - 0.5])
    fig.update_yaxes(title_text="layer", tickmode="array", tickvals=list(range(n_layers)),
                     ticktext=[f"L{layer}" for layer in range(n_layers)], autorange=False, showgrid=False,
                     zeroline=False, range=[n_layers - 0.5, -0.5])  # layer 0 on top


def component_map(scores: Sequence[Sequence[float]] | None, circuit: Collection[tuple[int, int]],
                  off: Collection[tuple[int, int]], kind: str, n_layers: int, width: int, title: str,
                  clickable: bool = False) -> go.Figure:
    """A layer x head (kind "H") or layer x neuron (kind "N") map of gate scores, the circuit outlined.

    Without scores the map shows circuit membership (1 in, 0 out). Circuit cells get a border and switched-off cells
    a cross, both drawn as shapes in data coordinates, so they stay on their cell at any figure size. With
    clickable=True an invisible square marker with customdata [layer, index] sits on every cell: plotly.js
    heatmaps report no clicked cell, scatter points do (st.plotly_chart(..., on_select=...)); hoverdistance -1 sends
    a click anywhere in a cell to that cell's marker (the nearest centre), never to a neighbour's.
    """
    unit = "head" if kind == "H" else "neuron"
    circuit, off = set(circuit), set(off)
    if scores is None:
        z = [[1.0 if (layer, i) in circuit else 0.0 for i in range(width)] for layer in range(n_layers)]
        score_label = "in circuit"
    else:
        z = [[float(v) for v in row] for row in scores]
        score_label = "gate score"
    labels = _cell_labels(kind, n_layers, width)
    layers = list(range(n_layers))
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(width)), y=layers, colorscale=SCALE, zmin=0, zmax=1, text=labels,
        colorbar=dict(title=dict(text=score_label, side="right"), thickness=14),
        hovertemplate=f"%{{text}}<br>{score_label} %{{z:.3f}}<extra></extra>", name=score_label,
    ))
    if clickable:
        cells = [(layer, i) for layer in layers for i in range(width)]
        texts = [f"{labels[layer][i]}<br>{score_label} {z[layer][i]:.3f}<br>"
                 f"in circuit: {'yes' if (layer, i) in circuit else 'no'}<br>"
                 f"switched off: {'yes' if (layer, i) in off else 'no'}<br>click to toggle" for layer, i in cells]
        fig.add_trace(go.Scatter(
            x=[i for _, i in cells], y=[layer for layer, _ in cells], mode="markers",
            marker=dict(symbol="square", size=max(4, min(40, 640 // max(width, 1))), color="black", opacity=0),
            selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)),
            customdata=[[layer, i] for layer, i in cells], text=texts, hovertemplate="%{text}<extra></extra>",
            name=f"click a {unit} to toggle it", showlegend=False,
        ))
    # Borders as cell-sized rectangles: black outside, white inside, visible on both ends of the colour scale.
    # Very wide maps (neurons) get a thicker border so a one-pixel cell still shows.
    border = 2 if width <= 64 else 3
    for number, (layer, i) in enumerate(sorted(circuit)):
        fig.add_shape(type="rect", **_cell_box(layer, i), line=dict(color="black", width=border + 2),
                      name="in circuit", showlegend=number == 0, legendgroup="circuit")
        fig.add_shape(type="rect", **_cell_box(layer, i), line=dict(color="white", width=border),
                      legendgroup="circuit")
    for number, (layer, i) in enumerate(sorted(off)):
        box = _cell_box(layer, i, inset=0.18)
        fig.add_shape(type="path", path=f"M {box['x0']},{box['y0']} L {box['x1']},{box['y1']} "
                                        f"M {box['x0']},{box['y1']} L {box['x1']},{box['y0']}",
                      xref="x", yref="y", line=dict(color=VERMILION, width=3), name="switched off",
                      showlegend=number == 0, legendgroup="off")
    _axes(fig, kind, n_layers, width)
    # No dragmode="select": with it Streamlit turns click-selection off (clickmode "event"), so a click would no
    # longer toggle a cell; box selection stays one toolbar click away.
    fig.update_layout(hovermode="closest", hoverdistance=-1, plot_bgcolor="white")
    return _layout(fig, title, height=max(300, min(640, 150 + 48 * n_layers)))


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
    """Which components two circuits share: a categorical map with words in the cells, not colour alone.

    Maps too wide for words (neurons) mark shared cells with a border instead.
    """
    a, b = set(a), set(b)
    shown = (html.escape(names[0]), html.escape(names[1]))  # from circuit files: shown as text
    codes = [[(1 if (layer, i) in a else 0) + (2 if (layer, i) in b else 0) for i in range(width)]
             for layer in range(n_layers)]
    words = width <= 32
    text = [[("", "A", "B", "A+B")[code] if words else "" for code in row] for row in codes]
    labels = _cell_labels(kind, n_layers, width)
    colours = ["#f2f2f2", ORANGE, SKY, GREEN]
    # Four equal bands over 0..3 for a discrete scale.
    scale = [[stop, colour] for index, colour in enumerate(colours) for stop in (index / 4, (index + 1) / 4)]
    unit = "head" if kind == "H" else "neuron"
    fig = go.Figure(go.Heatmap(
        z=codes, x=list(range(width)), y=list(range(n_layers)), zmin=-0.5, zmax=3.5, colorscale=scale, text=text,
        texttemplate="%{text}",
        customdata=[[[labels[layer][i], OVERLAP_LABELS[code]] for i, code in enumerate(row)]
                    for layer, row in enumerate(codes)],
        hovertemplate="%{customdata[0]}: %{customdata[1]}<extra></extra>",
        colorbar=dict(tickvals=[0, 1, 2, 3], ticktext=["neither", f"only A ({shown[0]})", f"only B ({shown[1]})",
                                                        "both"], thickness=14),
    ))
    if not words:
        for layer, i in sorted(a & b):
            fig.add_shape(type="rect", **_cell_box(layer, i), line=dict(color="black", width=3))
    _axes(fig, kind, n_layers, width)
    height = max(280, min(560, 140 + 44 * n_layers))
    return _layout(fig, f"Shared {unit}s: A = {names[0]}, B = {names[1]}", height=height)
