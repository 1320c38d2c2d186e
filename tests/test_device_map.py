"""--device-map / --max-memory: models placed by accelerate dispatch (explicit maps, disk offload) discover the
same circuit as a single-device model, with gradients reaching every layer's gates."""

from __future__ import annotations

import json
import math

import pytest
import torch

from core.cli.main import main
from core.model.load import ModelLoadError, load_model, parse_device_map, parse_max_memory
from core.scoring.learned import DiscoveryConfig, discover
from core.scoring.scenario import Scenario

LLAMA_MAP = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu",
             "model.layers.1": "cpu", "model.norm": "cpu", "lm_head": "cpu"}
# Measured on the tiny Llama (413 KB of weights): accelerate keeps embeddings and layer 0 in RAM and offloads
# layer 1, the final norm and the unembedding to disk.
OFFLOAD_BUDGET = "cpu=350KB"
INIT = -3.0


def _scenario(model) -> Scenario:
    tok = model.tokenizer
    answer = tok(" I cannot help with that.", add_special_tokens=False)["input_ids"]
    return Scenario("custom", ["Tell me how to build a weapon.", "How do I bake bread at home?"], [answer, answer],
                    ["What is 12 plus 30?", "Copy this sentence: the quick brown fox."])


def _scores(model) -> tuple[torch.Tensor, torch.Tensor]:
    config = DiscoveryConfig(steps=1, batch_size=2, head_budget=0.25, neuron_budget=0.05, init_log_alpha=INIT)
    circuit = discover(model, _scenario(model), config)
    return torch.tensor(circuit.head_scores), torch.tensor(circuit.neuron_scores)


def _assert_every_layer_learned(heads: torch.Tensor, neurons: torch.Tensor) -> None:
    # After one Adam step with no sparsity pressure yet (duals start at 0), a gate moves iff its gradient is non-zero.
    start = 1 / (1 + math.exp(-INIT))
    assert ((heads - start).abs() > 1e-4).any(dim=1).all()
    assert ((neurons - start).abs() > 1e-4).any(dim=1).all()


@pytest.fixture(scope="module")
def single_device_scores(tiny_models):
    return _scores(tiny_models["llama"])


def test_explicit_per_layer_map_discovers_like_one_device(tiny_checkpoints, single_device_scores):
    model = load_model(tiny_checkpoints["llama"], device_map=json.dumps(LLAMA_MAP))
    heads, neurons = _scores(model)
    _assert_every_layer_learned(heads, neurons)
    assert torch.allclose(heads, single_device_scores[0], atol=1e-5)
    assert torch.allclose(neurons, single_device_scores[1], atol=1e-5)


def test_auto_map_with_a_memory_cap_offloads_and_still_learns(tiny_checkpoints, single_device_scores):
    model = load_model(tiny_checkpoints["llama"], device_map="auto", max_memory=OFFLOAD_BUDGET)
    placed = model.original_model.hf_device_map
    assert "disk" in placed.values() and "cpu" in placed.values()
    assert str(model.cfg.device) == "cpu"
    heads, neurons = _scores(model)
    _assert_every_layer_learned(heads, neurons)
    assert torch.allclose(heads, single_device_scores[0], atol=1e-5)
    assert torch.allclose(neurons, single_device_scores[1], atol=1e-5)


def test_placement_options_are_parsed_and_bad_ones_named():
    assert parse_max_memory("0=70GiB, 1=70GiB,cpu=200GiB") == {0: "70GiB", 1: "70GiB", "cpu": "200GiB"}
    assert parse_device_map("balanced") == "balanced"
    assert parse_device_map('{"lm_head": 0}') == {"lm_head": 0}
    for bad, message in (("everywhere", "neither one of"), ("{not json", "not valid JSON"),
                         ('{"lm_head": "meta"}', "meta"), ('{"lm_head": [1]}', "non-empty object"),
                         ("{}", "non-empty object")):
        with pytest.raises(ModelLoadError, match=message):
            parse_device_map(bad)
    for bad in ("70GiB", "0=lots", "gpu0=1GiB"):
        with pytest.raises(ModelLoadError, match="--max-memory"):
            parse_max_memory(bad)


def test_cli_discover_with_a_device_map_and_one_line_errors(tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "c.json"
    args = ["discover", "--model", str(tiny_checkpoints["llama"]), "--scenario", "backdoor", "--out", str(out)]
    assert main([*args, "--max-memory", "cpu=1GiB"]) == 2
    assert "add --device-map auto" in capsys.readouterr().err
    assert main([*args, "--device-map", "sideways"]) == 2
    err = capsys.readouterr().err
    assert "--device-map 'sideways'" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--device", "cpu", "--device-map", "auto"]) == 2
    assert "pass only one" in capsys.readouterr().err
    assert not out.exists()


def test_tuning_copy_follows_the_map_and_refuses_disk_offload(tiny_checkpoints):
    from core.tuning.options import TuneError
    from core.tuning.run import load_private_copy

    model, _ = load_private_copy(tiny_checkpoints["llama"], device_map=json.dumps(LLAMA_MAP))
    plain, _ = load_private_copy(tiny_checkpoints["llama"], device="cpu")
    ids = torch.tensor([[1, 10, 20, 30]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, plain(ids).logits)
    with pytest.raises(TuneError, match="offloads weights to disk"):
        load_private_copy(tiny_checkpoints["llama"], device_map="auto", max_memory=OFFLOAD_BUDGET)
