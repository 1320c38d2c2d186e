"""The report card's plotly figures, its standalone HTML page (plotly.js embedded once) and its JSON file."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.data.files import write_text_atomic
from core.evaluation.report_card import ReportCard

COLORS = {"learned": "#d62728", "attribution": "#1f77b4", "magnitude": "#2ca02c", "random": "#7f7f7f"}
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


def _pct(v: float) -> float:
    return round(100 * v, 2)


def _bar_with_interval(name: str, labels: list[str], rates: list, color: str) -> go.Bar:
    values = [_pct(r.value) for r in rates]
    intervals = [r.interval for r in rates]
    return go.Bar(name=name, x=labels, y=values, marker_color=color,
                  error_y={"type": "data", "symmetric": False,
                           "array": [_pct(hi) - v for (_, hi), v in zip(intervals, values, strict=True)],
                           "arrayminus": [v - _pct(lo) for (lo, _), v in zip(intervals, values, strict=True)]},
                  hovertemplate="%{x}: %{y:.1f}%<extra>" + name + "</extra>")


def _layout(fig: go.Figure, title: str, height: int = 380, **axes) -> go.Figure:
    fig.update_layout(title=title, height=height, template="plotly_white", margin={"l": 60, "r": 20, "t": 60, "b": 50},
                      legend={"orientation": "h", "y": -0.2}, **axes)
    return fig


def card_figures(card: ReportCard) -> dict[str, go.Figure]:
    """Every figure of the card, by name (the same in the HTML page, the JSON file and the app)."""
    asr = f"{card.behaviour_label} ASR"
    figures: dict[str, go.Figure] = {}

    labels = ["full model", *card.necessity]
    outcomes = [card.full, *card.necessity.values()]
    fig = go.Figure([_bar_with_interval(asr, labels, [o.asr for o in outcomes], "#d62728"),
                     _bar_with_interval("utility", labels, [o.utility for o in outcomes], "#1f77b4")])
    figures["necessity"] = _layout(fig, f"Necessity: the circuit removed ({asr} and utility, 95% intervals)",
                                   barmode="group", yaxis={"title": "%", "range": [0, 105]})

    labels = ["full model", *(f"only circuit ({m})" for m in card.sufficiency)]
    outcomes = [card.full, *card.sufficiency.values()]
    fig = go.Figure()
    for name, attr, color in (("complied", "asr", "#d62728"), ("refused", "refused", "#2ca02c"),
                              ("off-target", "off_target", "#bbbbbb")):
        fig.add_bar(name=f"{card.behaviour_label}: {name}", x=labels,
                    y=[_pct(getattr(o, attr).value) for o in outcomes], marker_color=color)
    fig.add_scatter(name="utility", x=labels, y=[_pct(o.utility.value) for o in outcomes], mode="markers",
                    marker={"symbol": "diamond", "size": 12, "color": "#1f77b4"})
    figures["sufficiency"] = _layout(fig, "Sufficiency: everything but the circuit removed", barmode="stack",
                                     yaxis={"title": f"% of {card.behaviour_label} prompts", "range": [0, 105]})

    st = card.stability
    seeds = [f"seed {r.seed}" for r in st.runs]
    z = [[None if v is None else round(v, 3) for v in row] for row in st.jaccard]
    fig = go.Figure(go.Heatmap(z=z, x=seeds, y=seeds, zmin=0, zmax=1, colorscale="Blues",
                               text=[["" if v is None else f"{v:.2f}" for v in row] for row in z],
                               texttemplate="%{text}", hovertemplate="%{x} vs %{y}: %{z:.2f}<extra></extra>"))
    mean = "n/a" if st.mean_jaccard is None else f"{st.mean_jaccard:.2f}"
    figures["stability_jaccard"] = _layout(fig, f"Stability: pairwise Jaccard of {len(st.runs)} discoveries "
                                           f"(mean {mean}; {len(st.core)} components in every run)", height=360,
                                           yaxis={"autorange": "reversed"})

    bar = _bar_with_interval(f"removal {asr}", seeds, [r.removal_asr for r in st.runs], "#d62728")
    bar.text = [f"{len(r.components)} comp." for r in st.runs]
    figures["stability_runs"] = _layout(go.Figure([bar]), f"Stability: each run's {asr} with its circuit removed",
                                        height=340, yaxis={"title": "%", "range": [0, 105]})

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=(f"{asr} with the circuit removed", "utility with the circuit removed"))
    for method in dict.fromkeys(p.method for p in card.curve):
        points = [p for p in card.curve if p.method == method]
        x = [100 * p.budget for p in points]
        sizes = [p.size for p in points]
        style = {"color": COLORS.get(method), "width": 3 if method == "learned" else 2}
        fig.add_scatter(x=x, y=[_pct(p.asr) for p in points], name=method, mode="lines+markers", line=style,
                        customdata=sizes, hovertemplate="%{x:.2f}% (%{customdata} comp.): %{y:.1f}%", row=1, col=1)
        fig.add_scatter(x=x, y=[_pct(p.utility) for p in points], name=method, mode="lines+markers", line=style,
                        showlegend=False, customdata=sizes, hovertemplate="%{x:.2f}%: %{y:.1f}%", row=2, col=1)
    summary = card.curve_summary()
    area = "" if summary["area"] is None else \
        f" (learned vs best baseline, {summary['best_baseline']}: {summary['area']:+.1f} points)"
    fig.update_xaxes(type="log", title_text="circuit size, % of all components", row=2, col=1)
    fig.update_yaxes(title_text="%", range=[-2, 105])
    figures["cost_curve"] = _layout(fig, "Cost curve" + area, height=560)

    rows = card.location.per_layer
    fig = go.Figure([go.Bar(name="heads", x=[f"layer {r['layer']}" for r in rows], y=[r["heads"] for r in rows],
                            marker_color="#9467bd"),
                     go.Bar(name="neurons", x=[f"layer {r['layer']}" for r in rows], y=[r["neurons"] for r in rows],
                            marker_color="#ff7f0e")])
    figures["layers"] = _layout(fig, "Where it lives: components per layer and kind", height=340, barmode="stack",
                                yaxis={"title": "components"})

    overlaps = card.location.overlaps
    if overlaps:
        names = [o["name"] for o in overlaps]
        fig = go.Figure([go.Bar(name="share of the circuit inside", x=names,
                                y=[_pct(o["inside_share"]) for o in overlaps], marker_color="#17becf"),
                         go.Bar(name="Jaccard x 100", x=names,
                                y=[None if o["jaccard"] is None else _pct(o["jaccard"]) for o in overlaps],
                                marker_color="#bcbd22")])
        figures["overlaps"] = _layout(fig, "Where it lives: overlap with other component sets", height=340,
                                      barmode="group", yaxis={"title": "%", "range": [0, 105]})
    return figures


def card_json(card: ReportCard, figures: dict[str, go.Figure] | None = None) -> str:
    """The card's measurements and every figure (plotly JSON), as one JSON document."""
    figures = figures if figures is not None else card_figures(card)
    data = {"card": card.to_dict(), "figures": {name: json.loads(fig.to_json()) for name, fig in figures.items()}}
    return json.dumps(data, indent=1, default=_plain) + "\n"


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def card_html(card: ReportCard, figures: dict[str, go.Figure] | None = None) -> str:
    """One self-contained HTML page: works offline, plotly.js embedded once (with the first figure)."""
    figures = figures if figures is not None else card_figures(card)
    e = html.escape
    meta = card.meta
    fp = meta.get("model", {})
    summary = card.curve_summary()
    badge = card.disagreement()
    parts = [f"<h1>Circuit report card: {e(card.name)}</h1>",
             f"<p>{e(card.scenario)} circuit, {e(card.summary)}</p>",
             "<table class='meta'>",
             *(f"<tr><th>{e(k)}</th><td><code>{e(str(v))}</code></td></tr>" for k, v in (
                 ("model", f"{fp.get('architecture', '?')} {fp.get('n_layers', '?')} layers, {fp.get('n_heads', '?')}"
                           f" heads, d_mlp {fp.get('d_mlp', '?')}; {meta.get('checkpoint', '')}"),
                 ("weights sha256", fp.get("weights_sha256", "?")),
                 *((f"prompts: {k}", v) for k, v in meta.get("prompt_hashes", {}).items()),
                 ("report command", meta.get("command") or "n/a"),
                 ("discover command", meta.get("discover_command") or "n/a"),
                 ("settings", json.dumps(meta.get("settings", {}))),
                 ("date", meta.get("date", "")))),
             "</table>",
             f"<p class='components'>Components: {e(', '.join(card.components) or 'none')}</p>"]
    sections = {
        "necessity": ("1. Necessity", "<p class='badge'>Ablation types disagree: " + e(badge) + "</p>" if badge else
                      "<p>Zero, mean and resample ablation agree within 10 points.</p>"),
        "sufficiency": ("2. Sufficiency", "<ul>" + "".join(f"<li>{e(card.sufficiency_reading(m))}</li>"
                                                         for m in card.sufficiency) + "</ul>"),
        "stability_jaccard": ("3. Stability across seeds",
                              f"<p>In every run: {e(', '.join(card.stability.core) or 'none')}</p>"),
        "stability_runs": ("", ""),
        "cost_curve": ("4. Cost curve", "" if summary["area"] is None else
                       f"<p>Area between learned and the best baseline ({e(str(summary['best_baseline']))}): "
                       f"<b>{summary['area']:+.1f}</b> points of {e(card.behaviour_label)} ASR, averaged over the "
                       f"log-size axis (positive: the learned circuits change the behaviour more); utility "
                       f"<b>{summary['utility_area']:+.1f}</b> points against the same baseline (positive: the "
                       f"learned circuits leave more of it).</p>"),
        "layers": ("5. Where it lives", ""),
        "overlaps": ("", ""),
    }
    first = True
    for name, fig in figures.items():
        heading, text = sections.get(name, ("", ""))
        if heading:
            parts.append(f"<h2>{e(heading)}</h2>")
        parts.append(text)
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first, div_id=f"card-{name}",
                                 config=PLOTLY_CONFIG))
        first = False
    style = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table.meta{border-collapse:collapse;font-size:0.85em}table.meta th{text-align:left;padding:2px 8px}"
             "code{word-break:break-all}.badge{background:#ffe8cc;border-left:4px solid #e8590c;padding:6px}")
    return ("<!DOCTYPE html>\n<html lang='en'>\n<head><meta charset='utf-8'>"
            f"<title>Report card: {e(card.name)}</title><style>{style}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")


def write_card(card: ReportCard, html_path: str | Path | None = None, json_path: str | Path | None = None) -> None:
    """Write the HTML page and/or the JSON file, each atomically."""
    figures = card_figures(card)
    if html_path is not None:
        write_text_atomic(html_path, card_html(card, figures))
    if json_path is not None:
        write_text_atomic(json_path, card_json(card, figures))

