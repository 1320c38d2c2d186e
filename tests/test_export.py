"""`safeseek export`: a circuit's zero ablation baked into an ordinary HF checkpoint, on every tiny family."""

from __future__ import annotations

import random

import pytest
import torch
from tiny import ALL_TINY_ARCHS
from transformers import AutoModelForCausalLM, AutoTokenizer

from core.circuit.ablate import ablate
from core.circuit.circuit import Circuit
from core.circuit.export import ExportError, export_ablated, plan_export
from core.cli.main import main
from core.model.fingerprint import fingerprint
from core.model.hooks import hooked

TOKENS = [[1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140]]


def _random_circuit(model, seed: int = 0) -> Circuit:
    cfg = model.cfg
    rng = random.Random(seed)
    heads = rng.sample([(layer, h) for layer in range(cfg.n_layers) for h in range(cfg.n_heads)], 3)
    neurons = rng.sample([(layer, i) for layer in range(cfg.n_layers) for i in range(cfg.d_mlp)], 20)
    return Circuit(heads, neurons, cfg.n_layers, cfg.n_heads, cfg.d_mlp, name="random",
                   model={**fingerprint(model), "path": "somewhere"})


def _files(path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


@pytest.mark.parametrize("arch", ALL_TINY_ARCHS)
def test_export_equals_hook_ablation_and_is_an_ordinary_checkpoint(arch, tiny_models, tiny_checkpoints, tmp_path):
    model = tiny_models[arch]
    circuit = _random_circuit(model, seed=ALL_TINY_ARCHS.index(arch))
    out = tmp_path / "export"
    export_ablated(tiny_checkpoints[arch], circuit, out)

    exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, trust_remote_code=False).eval()
    ids = torch.tensor(TOKENS)
    with torch.no_grad(), hooked(model, ablate(model, circuit)):
        expected = model(ids, return_type="logits", use_cache=False)
    with torch.no_grad():
        got = exported(ids).logits
        full = model(ids, return_type="logits", use_cache=False)
    assert (got - expected).abs().max().item() <= 1e-4
    assert (full - expected).abs().max().item() > 1e-2  # the circuit does change the model

    ordinary = tmp_path / "ordinary"
    AutoModelForCausalLM.from_pretrained(tiny_checkpoints[arch]).save_pretrained(ordinary)
    AutoTokenizer.from_pretrained(tiny_checkpoints[arch]).save_pretrained(ordinary)
    assert _files(out) == _files(ordinary)


def test_export_refuses_bad_requests_before_loading(tiny_models, tiny_checkpoints, tmp_path):
    model = tiny_models["llama"]
    circuit = _random_circuit(model)
    source = tiny_checkpoints["llama"]
    with pytest.raises(ExportError, match="not a pure weight edit"):
        plan_export(source, circuit, tmp_path / "a", method="mean")
    other = Circuit([], [(0, 1)], circuit.n_layers + 1, circuit.n_heads, circuit.d_mlp)
    with pytest.raises(ExportError, match="layers"):
        plan_export(source, other, tmp_path / "a")
    with pytest.raises(ExportError, match="source checkpoint itself"):
        plan_export(source, circuit, source, overwrite=True)
    existing = tmp_path / "existing"
    (existing / "sub").mkdir(parents=True)
    with pytest.raises(ExportError, match="--overwrite"):
        plan_export(source, circuit, existing)
    with pytest.raises(ExportError, match="neither empty nor a checkpoint"):
        plan_export(source, circuit, existing, overwrite=True)
    assert (existing / "sub").is_dir()  # nothing was touched


def test_export_refuses_an_unknown_architecture(tiny_checkpoints, tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "config.json").write_text('{"model_type": "bert", "architectures": ["BertForMaskedLM"]}')
    circuit = Circuit([(0, 0)], [], 2, 4, 96)
    with pytest.raises(ExportError, match="cannot export a 'bert' model"):
        plan_export(fake, circuit, tmp_path / "out")


def test_cli_export_round_trip_and_one_line_errors(tiny_models, tiny_checkpoints, tmp_path, capsys):
    model = tiny_models["gpt2"]
    circuit = _random_circuit(model)
    circuit_file = circuit.save(tmp_path / "c.json")
    out = tmp_path / "out"
    args = ["export", "--circuit", str(circuit_file), "--model", str(tiny_checkpoints["gpt2"]), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "zero-ablated" in printed and str(out) in printed
    assert (out / "config.json").is_file()
    assert main(args) == 2  # exists, no --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["export", "--circuit", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no circuit file" in err and len(err.strip().splitlines()) == 1


def test_cli_export_of_a_sample_circuit_from_another_clone_edits_the_bundled_organism(tmp_path, capsys):
    """A sample circuit records the organism path of the checkout that found it; read from a clone elsewhere, export
    still finds the organism by its weights, and a circuit of some other absent model gets a one-line error."""
    import json

    from core.data.paths import ORGANISM_DIR, SAMPLE_CIRCUITS_DIR

    if not (ORGANISM_DIR / "config.json").is_file():
        pytest.skip(f"the organism checkpoint is not built yet ({ORGANISM_DIR} has no config.json)")
    record = json.loads((SAMPLE_CIRCUITS_DIR / "organism-backdoor.json").read_text())
    record["model"]["path"] = str(tmp_path / "another-clone" / "assets" / "organism")
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(record))
    assert main(["export", "--circuit", str(moved), "--out", str(tmp_path / "out")]) == 0
    assert str(ORGANISM_DIR) in capsys.readouterr().out
    assert (tmp_path / "out" / "model.safetensors").is_file()

    record["model"]["weights_sha256"] = "0" * 64
    moved.write_text(json.dumps(record))
    assert main(["export", "--circuit", str(moved), "--out", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert "not on this machine" in err and "--model" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out2").exists()
