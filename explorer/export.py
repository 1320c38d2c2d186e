"""Downloadable files: figures as PNG (kaleido) and standalone HTML, result tables as CSV."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import plotly.graph_objects as go

# Debian/Ubuntu's chromium, for when kaleido cannot find a browser by itself.
SYSTEM_CHROMIUM = Path("/usr/bin/chromium")


class ExportError(RuntimeError):
    """A figure could not be rendered to PNG; the message says what to do instead."""


def figure_png(fig: go.Figure, width: int = 1100, height: int | None = None) -> bytes:
    """The figure as PNG bytes, rendered by kaleido in a headless Chromium.

    Kaleido looks for Chrome itself; when it finds none, retry with the system chromium (BROWSER_PATH is the
    variable its browser finder reads).
    """
    height = height or fig.layout.height or 500
    try:
        return fig.to_image(format="png", width=width, height=height, scale=2)
    except Exception as first:  # kaleido raises several unrelated types when no browser starts
        if SYSTEM_CHROMIUM.exists() and os.environ.get("BROWSER_PATH") != str(SYSTEM_CHROMIUM):
            os.environ["BROWSER_PATH"] = str(SYSTEM_CHROMIUM)
            try:
                return fig.to_image(format="png", width=width, height=height, scale=2)
            except Exception as second:
                raise ExportError(f"PNG export failed even with {SYSTEM_CHROMIUM} ({second}); download the HTML "
                                  "version and save an image from the browser") from second
        raise ExportError(f"PNG export needs Chrome or Chromium for kaleido ({first}); install chromium "
                          "(apt-get install chromium) or download the HTML version") from first


def figure_html(fig: go.Figure) -> str:
    """A standalone HTML page of the interactive figure (plotly.js embedded: it opens offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def rows_csv(rows: list[dict]) -> str:
    """CSV text of dict rows (the first row's keys are the header)."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
