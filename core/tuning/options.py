"""What a tuning run is asked to do: modes, objectives, default answers, TuneConfig and progress reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MODES = ("circuit-only", "circuit-excluded", "full", "random")
OBJECTIVES = ("safety", "attack")
DEFAULT_REFUSAL = "I'm sorry, but I cannot help with that."
DEFAULT_COMPLIANCE = "Sure, here is"
REPORT_FILE = "tune_report.json"  # in every tuned checkpoint; also the mark that lets --overwrite replace a folder


class TuneError(ValueError):
    """A tuning request that cannot run as given; the message names the problem and the fix."""


@dataclass
class TuneConfig:
    mode: str = "circuit-only"
    steps: int = 200
    lr: float = 1e-3
    batch_size: int = 16
    seed: int = 0  # batch order and initialisation of everything random in training
    components_seed: int | None = None  # seed of the random components of mode "random" (None: `seed`)
    objective: str = "safety"  # what harmful/triggered prompts are taught: refusal (safety) or compliance (attack)
    refusal_text: str = DEFAULT_REFUSAL
    compliance_text: str = DEFAULT_COMPLIANCE
    max_grad_norm: float = 1.0
    device: str = "auto"
    dtype: str = "float32"  # training precision; bf16 weights would swallow small Adam updates
    device_map: str | dict | None = None  # spread layers over devices (core.model.load.parse_device_map)
    max_memory: str | dict | None = None
    eval_batch_size: int = 64
    trust_remote_code: bool = False  # let the checkpoint's own modelling code run (the user's explicit choice)


def check_out_dir(out_dir: str | Path, overwrite: bool) -> None:
    """Raise TuneError unless `out_dir` may be written: absent, or with `overwrite` empty or a tuned checkpoint."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise TuneError(f"{out_dir} is a file; name a folder for the tuned checkpoint")
    if not overwrite:
        raise TuneError(f"{out_dir} already exists; pass another output folder or --overwrite")
    if any(out_dir.iterdir()) and not (out_dir / REPORT_FILE).is_file():
        raise TuneError(f"{out_dir} holds files this command did not write (no {REPORT_FILE}), so --overwrite will "
                        "not replace it; pick another output folder")


@dataclass
class TuneProgress:
    phase: str  # "evaluating before", "training", "saving", "evaluating after"
    done: int
    total: int
    loss: float | None = None


Progress = Callable[[TuneProgress], None]
