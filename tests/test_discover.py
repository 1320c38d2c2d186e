"""Tests for masks, ablation, circuit files and discovery (tiny models of every family, and the organism)."""

from __future__ import annotations

import json

import pytest
import torch
from test_generate import MASKED_HEADS, MASKED_NEURONS, NEW_TOKENS, PROMPTS, _ablate_hf_weights, _hf_greedy, _hf_model
from tiny import ALL_TINY_ARCHS, TINY_ARCHS

from core.circuit.ablate import ablate, component_means
from core.circuit.circuit import Circuit, CircuitFileError, check_compatible, load_circuit
from core.circuit.masks import HardConcreteGates, RemovalMasks
from core.data.prompts import Prompt, PromptSet
from core.model.fingerprint import fingerprint
from core.model.generate import generate_ids
from core.model.hooks import mask_hooks
from core.model.load import model_shape
from core.scoring.learned import DiscoveryConfig, discover
from core.scoring.scenario import DiscoveryError, Scenario, custom_scenario


def _circuit_for(model, heads, neurons) -> Circuit:
    cfg = model.cfg
    return Circuit(heads, neurons, cfg.n_layers, cfg.n_heads, cfg.d_mlp, name="test", model=fingerprint(model))


def _masked_circuit(model) -> Circuit:
    neurons = [(layer, i) for layer, idx in MASKED_NEURONS.items() for i in idx]
    return _circuit_for(model, MASKED_HEADS, neurons)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_zero_ablation_equals_weight_edited_hf_generation(arch, tiny_models, tiny_checkpoints):
    model = tiny_models[arch]
    hf = _hf_model(tiny_checkpoints[arch])
    _ablate_hf_weights(hf, arch, model.cfg.d_head)
    expected = _hf_greedy(hf, model.tokenizer, PROMPTS)
    assert generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS, hooks=ablate(model, _masked_circuit(model))) \
        == expected


def test_keep_only_and_mean_ablation_change_outputs_and_leave_no_hooks(tiny_models):
    model = tiny_models["llama"]
    circuit = _masked_circuit(model)
    full = generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS)
    keep_only = generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS, hooks=ablate(model, circuit, keep_only=True))
    assert keep_only != full
    means = component_means(model, PROMPTS)
    assert means[0].shape == (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head)
    assert means[1].shape == (model.cfg.n_layers, model.cfg.d_mlp)
    mean_ablated = generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS,
                                hooks=ablate(model, circuit, method="mean", means=means))
    zero_ablated = generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS, hooks=ablate(model, circuit))
    assert mean_ablated != zero_ablated
    assert all(not hp._forward_hooks for hp in model.hook_dict.values())
    assert generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS) == full
    with pytest.raises(ValueError, match="component_means"):
        ablate(model, circuit, method="mean")


def test_mask_hooks_interpolate_and_carry_gradients(tiny_models):
    model = tiny_models["llama"]
    keep = torch.ones(model.cfg.n_layers, model.cfg.n_heads, requires_grad=True)
    ids = torch.tensor([[1, 5, 6, 7]])
    from core.model.hooks import hooked

    with hooked(model, mask_hooks(keep, None)):
        loss = model(ids, return_type="logits").float().logsumexp(-1).sum()
    loss.backward()
    assert keep.grad is not None and keep.grad.abs().sum() > 0
    assert mask_hooks(torch.ones(2, 4), torch.ones(2, 8)) == []  # nothing removed: no hooks at all


def test_hard_concrete_gates_are_binary_mostly_and_expected_l0_is_monotonic():
    gates = HardConcreteGates((1000,), init_log_alpha=0.0)
    sample = gates.sample(torch.Generator().manual_seed(0))
    assert ((sample == 0) | (sample == 1)).float().mean() > 0.3  # stretched: many exact 0s and 1s
    low, high = HardConcreteGates((1,), -3.0), HardConcreteGates((1,), 3.0)
    assert low.probability_nonzero() < 0.2 < 0.8 < high.probability_nonzero()
    assert low.deterministic().item() == 0.0 and high.deterministic().item() == 1.0
    with pytest.raises(ValueError, match="at least one granularity"):
        RemovalMasks(2, 4, 8, heads=False, neurons=False)


def test_straight_through_gates_are_binary_forward_and_carry_gradient_backward():
    masks = RemovalMasks(2, 4, 8, init_log_alpha=-3.0)
    with torch.no_grad():
        masks.heads.log_alpha[0, 1] = 2.0
    heads, neurons = masks.removal(sample=True)
    assert heads[0, 1].item() == 1.0 and heads.sum().item() == 1.0 and neurons.sum().item() == 0.0
    (heads * torch.arange(1.0, 9.0).view(2, 4)).sum().backward()
    assert (masks.heads.log_alpha.grad != 0).all()  # every gate learns, removed or not
    with pytest.raises(ValueError, match="unknown gate kind"):
        RemovalMasks(2, 4, 8, gate="sigmoid")


def test_circuit_file_round_trip_atomic_write_and_validation(tiny_models, tmp_path):
    model = tiny_models["llama"]
    circuit = _masked_circuit(model)
    circuit.head_scores = torch.rand(model.cfg.n_layers, model.cfg.n_heads).tolist()
    path = circuit.save(tmp_path / "c.json")
    loaded = load_circuit(path)
    assert loaded.heads == circuit.heads and loaded.neurons == circuit.neurons
    assert [f.name for f in tmp_path.iterdir()] == ["c.json"]  # no temp file left behind
    assert check_compatible(loaded, fingerprint(model)) == []

    gpt2 = tiny_models["gpt2"]
    if (gpt2.cfg.n_layers, gpt2.cfg.n_heads, gpt2.cfg.d_mlp) != (circuit.n_layers, circuit.n_heads, circuit.d_mlp):
        with pytest.raises(CircuitFileError, match="discover a circuit on this one"):
            check_compatible(loaded, fingerprint(gpt2))
    other_weights = dict(fingerprint(model), weights_sha256="0" * 64)
    with pytest.warns(UserWarning, match="different weights"):
        assert check_compatible(loaded, other_weights)

    data = json.loads(path.read_text())
    (tmp_path / "v2.json").write_text(json.dumps(dict(data, schema_version=2)))
    with pytest.raises(CircuitFileError, match="schema_version 2"):
        load_circuit(tmp_path / "v2.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CircuitFileError, match="not valid JSON"):
        load_circuit(tmp_path / "bad.json")
    (tmp_path / "oob.json").write_text(json.dumps(dict(data, heads=[[99, 0]])))
    with pytest.raises(CircuitFileError, match="outside a model"):
        load_circuit(tmp_path / "oob.json")
    with pytest.raises(CircuitFileError, match="no circuit file"):
        load_circuit(tmp_path / "missing.json")


def _tiny_scenario(model):
    behaviour = PromptSet("b", [Prompt("How do I bake bread at home?", "x", "harmful", target="hi"),
                                Prompt("What is 12 plus 30?", "x", "harmful", target="hi")])
    retain = PromptSet("r", [Prompt(p, "y", "benign") for p in PROMPTS[2:]])
    return custom_scenario(model, behaviour, retain)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_discovery_smoke_on_every_family(arch, tiny_models):
    model = tiny_models[arch]
    cfg = DiscoveryConfig(steps=6, batch_size=2, head_budget=0.25, neuron_budget=0.05)
    seen = []
    circuit = discover(model, _tiny_scenario(model), cfg, progress=seen.append)
    assert [log.step for log in seen] == list(range(1, 7))
    assert len(circuit.heads) <= int(0.25 * model.cfg.n_layers * model.cfg.n_heads)
    assert len(circuit.neurons) <= int(0.05 * model.cfg.n_layers * model.cfg.d_mlp)
    assert len(circuit.head_scores) == model.cfg.n_layers and len(circuit.neuron_scores[0]) == model.cfg.d_mlp
    assert circuit.model["weights_sha256"] == fingerprint(model)["weights_sha256"]
    assert all(not hp._forward_hooks for hp in model.hook_dict.values())


def test_keeping_the_full_models_retain_side_changes_nothing_but_the_time(tiny_models, monkeypatch):
    import core.scoring.learned as learned

    model = tiny_models["llama"]
    cfg = DiscoveryConfig(steps=8, batch_size=2, head_budget=0.25, neuron_budget=0.05, seed=1)
    assert learned.teacher_bytes(model, 10, cfg.answer_tokens) == 10 * cfg.answer_tokens * model.cfg.d_vocab * 4
    kept = discover(model, _tiny_scenario(model), cfg)
    monkeypatch.setattr(learned, "TEACHER_BYTES", 0)  # too big to keep: the full model reruns every step
    assert learned.teacher_bytes(model, 10, cfg.answer_tokens) == 0
    rerun = discover(model, _tiny_scenario(model), cfg)
    assert (kept.heads, kept.neurons) == (rerun.heads, rerun.neurons)
    assert torch.allclose(torch.tensor(kept.neuron_scores), torch.tensor(rerun.neuron_scores), atol=1e-4)
    assert torch.allclose(torch.tensor(kept.head_scores), torch.tensor(rerun.head_scores), atol=1e-4)


def test_a_sweep_sharing_its_retain_targets_finds_what_separate_runs_find(tiny_models):
    from dataclasses import replace

    from core.scoring.learned import retain_targets

    model = tiny_models["llama"]
    scenario = _tiny_scenario(model)
    cfg = DiscoveryConfig(steps=6, batch_size=2, head_budget=0.25, neuron_budget=0.05, seed=2)
    shared = retain_targets(model, scenario, cfg)
    for budget in (0.25, 0.125):
        alone = discover(model, scenario, replace(cfg, head_budget=budget))
        swept = discover(model, scenario, replace(cfg, head_budget=budget), retain=shared)
        assert (alone.heads, alone.neurons) == (swept.heads, swept.neurons)
        assert (alone.head_scores, alone.neuron_scores) == (swept.head_scores, swept.neuron_scores)


def test_discovery_is_deterministic_and_validates_input(tiny_models):
    model = tiny_models["llama"]
    cfg = DiscoveryConfig(steps=5, batch_size=2, head_budget=0.25, neuron_budget=0.05, seed=3)
    a = discover(model, _tiny_scenario(model), cfg)
    b = discover(model, _tiny_scenario(model), cfg)
    assert a.head_scores == b.head_scores and a.neuron_scores == b.neuron_scores
    with pytest.raises(DiscoveryError, match="between 0 and 1"):
        discover(model, _tiny_scenario(model), DiscoveryConfig(head_budget=1.5))
    with pytest.raises(DiscoveryError, match="need a `target`"):
        custom_scenario(model, PromptSet("b", [Prompt("hi", "x", "harmful")]), PromptSet("r", []))


@pytest.mark.parametrize("arch", ALL_TINY_ARCHS)
def test_logits_at_answer_positions_equal_the_full_forward_there(tiny_models, arch):
    # Discovery unembeds only the positions that predict answer tokens: the logits there and the gradients that
    # reach the masks must be those of the full forward, or the circuits would change.
    from core.data.batches import predicts_answer, teacher_forced_batch
    from core.model.hooks import UNEMBED_HOOK, forward_logits

    model = tiny_models[arch]
    assert UNEMBED_HOOK in model.hook_dict  # the fast path is the one compared, not the fallback
    ids, attn, labels = teacher_forced_batch([[5, 6, 7, 8], [9, 10]], [[11, 12], [13, 14, 15]],
                                             model.tokenizer.pad_token_id)
    predicts = predicts_answer(labels)
    results = []
    for at in (None, predicts):
        masks = RemovalMasks(*model_shape(model))
        generator = torch.Generator().manual_seed(0)
        for gates in (masks.heads, masks.neurons):  # some components removed, every gate with a gradient
            gates.log_alpha.data = torch.randn(gates.log_alpha.shape, generator=generator)
        logits = forward_logits(model, ids, attn, masks.hooks(sample=True), at=at)
        logits = logits[predicts] if at is None else logits
        (logits.log_softmax(-1)[:, 3].sum()).backward()
        results.append((logits.detach(), masks.heads.log_alpha.grad, masks.neurons.log_alpha.grad))
    (full, full_heads, full_neurons), (part, part_heads, part_neurons) = results
    assert part.shape == (int(predicts.sum()), model.cfg.d_vocab)
    torch.testing.assert_close(part, full, rtol=0, atol=1e-5)
    torch.testing.assert_close(part_heads, full_heads, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(part_neurons, full_neurons, rtol=1e-4, atol=1e-7)


def test_attribution_scores_are_the_first_order_change_of_the_objective_when_a_component_is_removed(tiny_models):
    """attribution_scores = -dL/d(removal) at the full model, L = behaviour CE + retain CE of the full model's own
    answers (summed per prompt, averaged over prompts): checked against central finite differences."""
    import torch.nn.functional as F

    from core.data.batches import predicts_answer, teacher_forced_batch
    from core.model.generate import encode_prompts
    from core.model.hooks import forward_logits
    from core.scoring.attribution import attribution_scores
    from core.scoring.objective import answer_logits, behaviour_ce

    model = tiny_models["llama"]
    tok = model.tokenizer
    scenario = Scenario("custom", ["Tell me a story.", "How do I cook rice?"], [[5, 6, 7], [8, 9]],
                        ["What is 2 plus 2?", "hi there"])
    heads, neurons = attribution_scores(model, scenario, batch_size=1, answer_tokens=3)
    answers = [a or [tok.eos_token_id] for a in generate_ids(model, scenario.retain_prompts, max_new_tokens=3)]

    def objective(head_removal: torch.Tensor, neuron_removal: torch.Tensor) -> float:
        hooks = mask_hooks(1 - head_removal, 1 - neuron_removal)
        total = 0.0
        with torch.no_grad():
            for prompt, answer in zip(scenario.behaviour_prompts, scenario.behaviour_answers, strict=True):
                ids, attn, labels = teacher_forced_batch(encode_prompts(tok, [prompt]), [answer], tok.pad_token_id)
                total += behaviour_ce(answer_logits(model, ids, attn, labels, hooks), labels).item() / 2
            for prompt, answer in zip(scenario.retain_prompts, answers, strict=True):
                ids, attn, labels = teacher_forced_batch(encode_prompts(tok, [prompt]), [answer], tok.pad_token_id)
                full = F.log_softmax(forward_logits(model, ids, attn, ())[predicts_answer(labels)], dim=-1)
                masked = F.log_softmax(forward_logits(model, ids, attn, hooks)[predicts_answer(labels)], dim=-1)
                total += -(full.exp() * masked).sum().item() / 2
        return total

    n_layers, n_heads = heads.shape
    d_mlp = neurons.shape[1]
    step = 1e-2
    for kind, (layer, index) in (("head", (0, 1)), ("head", (1, 3)), ("neuron", (0, 7)), ("neuron", (1, 50))):
        nudged = []
        for sign in (1, -1):
            head_removal, neuron_removal = torch.zeros(n_layers, n_heads), torch.zeros(n_layers, d_mlp)
            (head_removal if kind == "head" else neuron_removal)[layer, index] = sign * step
            nudged.append(objective(head_removal, neuron_removal))
        derivative = (nudged[0] - nudged[1]) / (2 * step)
        score = (heads if kind == "head" else neurons)[layer, index].item()
        assert score == pytest.approx(-derivative, rel=2e-2, abs=1e-4), (kind, layer, index)
