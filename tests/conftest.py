"""Shared fixtures: tiny checkpoints of every supported family, their bridges, and the bundled organism."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tiny import ALL_TINY_ARCHS, build_tiny_checkpoint

from core.model.load import load_model

REPO_ROOT = Path(__file__).resolve().parents[1]
ORGANISM_DIR = REPO_ROOT / "assets" / "organism"

# Test models are tiny: intra-op threads buy nothing, and when the cores are shared with other work OpenMP
# threads thrash (measured: 0.04 s -> 5 s for one tiny generation on 2 busy cores).
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def app_folders(tmp_path_factory: pytest.TempPathFactory):
    """The explorer's circuit store, runs folder and result cache in temp folders (never the user's cache), also for
    app servers that the browser tests start (they inherit the environment)."""
    names = ("SAFESEEK_CIRCUIT_STORE", "SAFESEEK_RUNS", "SAFESEEK_REPORT_CACHE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["SAFESEEK_CIRCUIT_STORE"] = str(tmp_path_factory.mktemp("circuit-store"))
    os.environ["SAFESEEK_RUNS"] = str(tmp_path_factory.mktemp("runs"))
    os.environ["SAFESEEK_REPORT_CACHE"] = str(tmp_path_factory.mktemp("report-cache"))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """arch -> directory of a tiny random HF checkpoint (built once per session)."""
    root = tmp_path_factory.mktemp("tiny-checkpoints")
    return {arch: build_tiny_checkpoint(arch, root / arch) for arch in ALL_TINY_ARCHS}


class _LazyModels(dict):
    """arch -> frozen bridge, loaded on first use and then shared (tests must not modify these models)."""

    def __init__(self, checkpoints: dict[str, Path]):
        super().__init__()
        self.checkpoints = checkpoints

    def __missing__(self, arch: str):
        model = self[arch] = load_model(self.checkpoints[arch], device="cpu")
        return model


@pytest.fixture(scope="session")
def tiny_models(tiny_checkpoints: dict[str, Path]) -> dict:
    """arch -> shared frozen TransformerBridge on CPU (load a fresh one to change weights)."""
    return _LazyModels(tiny_checkpoints)


@pytest.fixture(scope="session")
def organism():
    """The bundled backdoored organism (assets/organism) as a frozen bridge on CPU."""
    if not (ORGANISM_DIR / "config.json").is_file():
        pytest.skip(f"the organism checkpoint is not built yet ({ORGANISM_DIR} has no config.json)")
    return load_model(ORGANISM_DIR, device="cpu")


@pytest.fixture(autouse=True)
def admin_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests use the explorer as its admin (full access to paths, as before visitor mode existed); visitor-mode
    tests set SAFESEEK_ADMIN=0 themselves."""
    monkeypatch.setenv("SAFESEEK_ADMIN", "1")
