"""Tests for core.model: every family loads frozen, fingerprints, and load errors that name the fix."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import TINY_ARCHS
from transformer_lens.model_bridge import TransformerBridge
from transformers import AutoModelForCausalLM

from core.model.fingerprint import fingerprint
from core.model.load import ModelLoadError, load_model, model_shape, resolve_device, resolve_dtype

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_every_family_loads_frozen_and_matches_hf(arch, tiny_models, tiny_checkpoints):
    model = tiny_models[arch]
    assert isinstance(model, TransformerBridge)
    assert not model.training and not model.original_model.training
    parameters = list(model.original_model.parameters())
    assert parameters and not any(p.requires_grad for p in parameters)
    assert model.tokenizer.pad_token_id is not None
    assert model.tokenizer.padding_side == "left"
    assert model_shape(model) == (2, 4, model.cfg.d_mlp)

    hf = AutoModelForCausalLM.from_pretrained(tiny_checkpoints[arch], attn_implementation="eager").eval()
    tokens = torch.tensor([[1, 40, 41, 42, 43, 44, 45]])
    with torch.no_grad():
        expected = hf(tokens).logits
        actual = model(tokens, return_type="logits")
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


def test_fingerprint_is_stable_across_loads_and_describes_the_model(tiny_checkpoints):
    first = fingerprint(load_model(tiny_checkpoints["llama"], device="cpu"))
    second = fingerprint(load_model(tiny_checkpoints["llama"], device="cpu"))
    assert first == second
    assert first["architecture"] == "LlamaForCausalLM"
    assert (first["n_layers"], first["n_heads"], first["d_model"], first["d_head"]) == (2, 4, 64, 16)
    assert first["d_mlp"] == 96 and first["d_vocab"] > 0
    assert len(first["weights_sha256"]) == 64


def test_fingerprint_changes_with_the_weights(tiny_checkpoints):
    model = load_model(tiny_checkpoints["llama"], device="cpu")
    before = fingerprint(model)["weights_sha256"]
    down_proj = dict(model.original_model.named_parameters())[
        "model.layers.1._original_component.mlp._original_component.down_proj._original_component.weight"
    ]
    with torch.no_grad():
        down_proj[3, 5] += 0.5
    assert fingerprint(model)["weights_sha256"] != before


def test_fingerprint_differs_between_checkpoints_and_ignores_the_load_dtype(tiny_checkpoints):
    llama = load_model(tiny_checkpoints["llama"], device="cpu")
    qwen2 = load_model(tiny_checkpoints["qwen2"], device="cpu")
    llama_bf16 = load_model(tiny_checkpoints["llama"], device="cpu", dtype="bfloat16")
    assert fingerprint(llama)["weights_sha256"] != fingerprint(qwen2)["weights_sha256"]
    assert fingerprint(llama_bf16)["weights_sha256"] == fingerprint(llama)["weights_sha256"]


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "no-such-model", device="cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "no-such-model"), device="cpu")


def test_directory_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path, device="cpu")


def test_cached_hub_id_loads_offline(tmp_path, tiny_checkpoints):
    # A hub cache laid out as huggingface_hub writes it: refs/main names the snapshot folder.
    cache = tmp_path / "hub"
    repo = cache / "models--safeseek-tests--tiny-llama"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_checkpoints["llama"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    script = (
        "import json; from core.model.load import load_model; from core.model.fingerprint import fingerprint; "
        "print(json.dumps(fingerprint(load_model('safeseek-tests/tiny-llama', device='cpu'))))"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == fingerprint(load_model(tiny_checkpoints["llama"], device="cpu"))


@pytest.mark.parametrize(
    ("removed", "message"),
    [
        (["model.safetensors"], "no weights"),
        (["tokenizer.json", "tokenizer_config.json"], "no tokenizer files"),
    ],
)
def test_incomplete_checkpoint_names_what_is_missing(tmp_path, tiny_checkpoints, removed, message):
    checkpoint = tmp_path / "llama"
    shutil.copytree(tiny_checkpoints["llama"], checkpoint)
    for name in removed:
        (checkpoint / name).unlink()
    with pytest.raises(ModelLoadError, match=message):
        load_model(checkpoint, device="cpu")


def test_loading_a_local_checkpoint_never_touches_the_network(monkeypatch, tiny_checkpoints):
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: refuse(address))
    load_model(tiny_checkpoints["gemma2"], device="cpu")
    assert attempts == []


def test_uncached_hub_id_says_it_is_not_in_the_local_cache(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="local Hugging Face cache") as raised:
        load_model("safeseek-tests/no-such-model-anywhere", device="cpu")
    assert "download" in str(raised.value)


def test_cuda_without_a_gpu_says_to_use_cpu(monkeypatch, tiny_checkpoints):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="no GPU is visible; pass --device cpu"):
        resolve_device("cuda")
    with pytest.raises(ModelLoadError, match="no GPU is visible"):
        load_model(tiny_checkpoints["llama"], device="cuda")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize(
    ("model_type", "architecture"),
    [("ctrl", "CTRLLMHeadModel"), ("safeseek_unknown_family", "SafeseekUnknownForCausalLM")],
)
def test_unsupported_architecture_says_how_to_check_support(tmp_path, model_type, architecture):
    config = {"model_type": model_type, "architectures": [architecture]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="list_supported_models") as raised:
        load_model(tmp_path, device="cpu")
    assert model_type in str(raised.value)


def test_dtype_and_device_resolution():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    assert resolve_dtype("float16", "cpu") == torch.float16
    assert resolve_dtype(torch.bfloat16, "cpu") == torch.bfloat16
    with pytest.raises(ModelLoadError, match="--dtype"):
        resolve_dtype("float8", "cpu")
    with pytest.raises(ModelLoadError, match="--device"):
        resolve_device("tpu-please")
    assert resolve_device("cpu") == torch.device("cpu")


def test_organism_loads_as_a_llama(organism):
    assert organism.cfg.architecture == "LlamaForCausalLM"
    assert not any(p.requires_grad for p in organism.original_model.parameters())
    assert fingerprint(organism)["n_layers"] == model_shape(organism)[0]


@pytest.mark.parametrize(("user", "expected"), [({}, "10000"), ({"GOMP_SPINCOUNT": "300000"}, "300000"),
                                                ({"OMP_WAIT_POLICY": "PASSIVE"}, None)])
def test_core_bounds_openmp_spinning_before_torch_loads(user, expected):
    # libgomp reads its spin count once, when torch loads: the explorer (streamlit first) and `safeseek` import core
    # before torch, and a user's own setting is kept (bench/contention.py shows what spinning costs a busy machine).
    code = ("import sys, os, streamlit, core; torch_first = 'torch' in sys.modules; import core.model.load; "
            "print(torch_first, os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(user, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", str(expected)]
