"""Estimates before running: weights from safetensors headers, --dry-run, and refusing runs that cannot fit."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

import core.model.estimate
from core.cli.main import main
from core.model.estimate import Estimate, weights_bytes

GiB = 1024**3


def test_weights_bytes_reads_the_headers(tiny_checkpoints):
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoints["qwen2"])
    n = sum(p.numel() for p in model.parameters())
    assert weights_bytes(tiny_checkpoints["qwen2"]) == 4 * n  # stored fp32
    assert weights_bytes(tiny_checkpoints["qwen2"], torch.bfloat16) == 2 * n


def test_estimate_total_and_text():
    estimate = Estimate("discover", "cpu", {"weights": 3 * GiB, "activations": GiB}, available=2 * GiB, seconds=90)
    assert estimate.total == 4 * GiB and not estimate.fits()
    assert "peak memory" in estimate.text() and "4.00 GiB of 2.00 GiB available" in estimate.text()
    assert Estimate("x", "cpu", {"weights": GiB}, floor=2 * GiB).total == 2 * GiB


def _discover(checkpoint, out, *extra) -> list[str]:
    return ["discover", "--model", str(checkpoint), "--device", "cpu", "--scenario", "alignment", "--steps", "3",
            "--batch-size", "2", "--out", str(out), *extra]


def test_dry_run_prints_the_estimate_and_runs_nothing(tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "c.json"
    assert main(_discover(tiny_checkpoints["llama"], out, "--dry-run")) == 0
    printed = capsys.readouterr().out
    for part in ("estimate for discover on cpu", "weights and runtime", "activations", "peak memory", "time"):
        assert part in printed
    assert not out.exists()


def test_runs_that_cannot_fit_are_refused_naming_the_option(tiny_checkpoints, tmp_path, capsys, monkeypatch):
    out = tmp_path / "c.json"
    monkeypatch.setattr(core.model.estimate, "available_bytes", lambda device: 1024)  # weights alone do not fit
    assert main(_discover(tiny_checkpoints["llama"], out)) == 2
    err = capsys.readouterr().err
    assert "the weights alone need" in err and "--dtype bfloat16" in err and "--device-map" in err

    # Weights fit, but the whole run does not: refused after the probe, naming --batch-size.
    need = weights_bytes(tiny_checkpoints["llama"])
    monkeypatch.setattr(core.model.estimate, "available_bytes", lambda device: need)
    monkeypatch.setattr(core.model.estimate, "resident_bytes", lambda: 64 * GiB)
    monkeypatch.setattr(core.model.estimate, "peak_resident_bytes", lambda: 0)
    assert main(_discover(tiny_checkpoints["llama"], out)) == 2
    err = capsys.readouterr().err
    assert "discover needs about" in err and "--batch-size" in err
    assert not out.exists()
