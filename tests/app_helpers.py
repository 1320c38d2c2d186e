"""Helpers for the explorer's tests: running pages in AppTest, decoding plotly specs, writing test circuits."""

from __future__ import annotations

import base64
import json
import random
import re
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from core.circuit.circuit import Circuit

REPO_ROOT = Path(__file__).resolve().parents[1]
APP = REPO_ROOT / "explorer" / "app.py"
ORGANISM_DIR = REPO_ROOT / "assets" / "organism"
BACKDOOR_SAMPLE = REPO_ROOT / "sample_circuits" / "organism-backdoor.json"


def app(query: dict[str, str], timeout: float = 180) -> AppTest:
    """An AppTest of explorer/app.py opened as if from a link with this query string (not yet run)."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for key, value in query.items():
        at.query_params[key] = value
    return at


def run_page(query: dict[str, str]) -> AppTest:
    """Open the app with `query`, run it once, and fail on any uncaught exception."""
    at = app(query).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def decode_arrays(value):
    """A plotly JSON spec with plotly 7's typed arrays ({"dtype", "bdata", "shape"}) turned into lists."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
            if "shape" in value:
                shape = value["shape"]
                shape = [int(s) for s in shape.split(",")] if isinstance(shape, str) else shape
                array = array.reshape(shape)
            return array.tolist()
        return {key: decode_arrays(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_arrays(item) for item in value]
    return value


def plotly_figures(at: AppTest) -> list[dict]:
    """Every plotly chart on the page as a decoded figure dict ({"data": [...], "layout": {...}})."""
    return [decode_arrays(json.loads(chart.proto.spec)) for chart in at.get("plotly_chart")]


def raw_texts(at: AppTest, kind: str) -> list[str]:
    """The markdown source of every element of one kind (error, warning, markdown, caption, ...)."""
    return [str(element.value) for element in at.get(kind)]


def shown(markdown: str) -> str:
    """The text a markdown renderer shows for backslash-escaped characters (explorer.access.md escapes them; it also
    puts invisible word joiners into URLs)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")  # and the invisible joiners


def texts(at: AppTest, kind: str) -> list[str]:
    """The values of every element of one kind (error, warning, markdown, caption, ...), as shown (unescaped)."""
    return [shown(text) for text in raw_texts(at, kind)]


def metric_values(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def make_circuit(n_layers: int, n_heads: int, d_mlp: int, heads, neurons, name: str = "test-circuit",
                 scenario: str = "backdoor", seed: int = 0, fingerprint: dict | None = None) -> Circuit:
    """A circuit with random gate scores whose top cells are exactly `heads` and `neurons` (score 0.9+)."""
    rng = random.Random(seed)
    head_scores = [[round(0.5 * rng.random(), 4) for _ in range(n_heads)] for _ in range(n_layers)]
    neuron_scores = [[round(0.5 * rng.random(), 4) for _ in range(d_mlp)] for _ in range(n_layers)]
    for rank, (layer, head) in enumerate(heads):
        head_scores[layer][head] = 0.99 - 0.01 * rank
    for rank, (layer, neuron) in enumerate(neurons):
        neuron_scores[layer][neuron] = 0.99 - 0.01 * rank
    return Circuit(heads=list(heads), neurons=list(neurons), n_layers=n_layers, n_heads=n_heads, d_mlp=d_mlp,
                   name=name, scenario=scenario, model=dict(fingerprint or {}), head_scores=head_scores,
                   neuron_scores=neuron_scores)
