"""Baselines for circuit discovery at a fixed budget, and the side-by-side comparison `safeseek compare` prints.

At the learned circuit's size (same number of heads and of neurons):
  random       uniformly random components (several seeds, reported as the mean);
  attribution  gradient x activation (SNIP-style): the first-order change of the discovery objective when a
               component is removed, i.e. -dL/d(removal) at the full model, on the same scenario;
  magnitude    activation magnitude x output-weight norm (Wanda-style), on the scenario's behaviour prompts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from core.ablate import ablate, activation_moments
from core.batches import predicts_answer, teacher_forced_batch
from core.circuit import Circuit
from core.data import PromptSet
from core.discover import Scenario, forward_logits
from core.evaluate import EvalReport, evaluate, utility_retention
from core.generate import encode_prompts, generate_ids
from core.masks import mask_hooks
from core.models import model_shape


@dataclass
class ComparisonRow:
    method: str
    heads: int
    neurons: int
    percent_components: float
    asr_before: float | None
    asr_after: float | None
    utility_retention: float | None
    asr_after_std: float | None = None  # spread over seeds (random baseline)
    # The other safety behaviour, which removal should leave alone: clean ASR for a backdoor circuit,
    # triggered ASR for an alignment circuit.
    other_asr_before: float | None = None
    other_asr_after: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _top(scores: torch.Tensor, k: int) -> list[tuple[int, int]]:
    if k == 0:
        return []
    order = torch.argsort(scores.flatten(), descending=True, stable=True)[:k]
    cols = scores.shape[1]
    return [(int(i) // cols, int(i) % cols) for i in order]


def random_components(circuit: Circuit, seed: int) -> Circuit:
    """A circuit of the same size with uniformly random heads and neurons."""
    rng = random.Random(seed)
    heads = rng.sample([(layer, h) for layer in range(circuit.n_layers) for h in range(circuit.n_heads)],
                       len(circuit.heads))
    neurons = rng.sample(range(circuit.n_layers * circuit.d_mlp), len(circuit.neurons))
    return circuit.with_components(heads, [divmod(i, circuit.d_mlp) for i in neurons], name=f"random-{seed}")


def attribution_scores(model, scenario: Scenario, batch_size: int = 16, answer_tokens: int = 12
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """-dL/d(removal) for every head and neuron, L = behaviour CE + retain KL, averaged over all prompts."""
    n_layers, n_heads, d_mlp = model_shape(model)
    device = model.cfg.device
    tok = model.tokenizer
    head_removal = torch.zeros(n_layers, n_heads, device=device, requires_grad=True)
    neuron_removal = torch.zeros(n_layers, d_mlp, device=device, requires_grad=True)
    hooks = mask_hooks(1 - head_removal, 1 - neuron_removal)
    b_heads = encode_prompts(tok, scenario.behaviour_prompts)
    for start in range(0, len(b_heads), batch_size):
        sl = slice(start, start + batch_size)
        ids, attn, labels = teacher_forced_batch(b_heads[sl], scenario.behaviour_answers[sl], tok.pad_token_id,
                                                 device)
        logits = forward_logits(model, ids, attn, hooks)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), reduction="sum")
        (loss / len(b_heads)).backward()
    r_heads = encode_prompts(tok, scenario.retain_prompts)
    r_answers = generate_ids(model, scenario.retain_prompts, max_new_tokens=answer_tokens)
    for start in range(0, len(r_heads), batch_size):
        sl = slice(start, start + batch_size)
        answers = [a or [tok.eos_token_id] for a in r_answers[sl]]
        ids, attn, labels = teacher_forced_batch(r_heads[sl], answers, tok.pad_token_id, device)
        predicts = predicts_answer(labels)
        with torch.no_grad():
            full = F.log_softmax(forward_logits(model, ids, attn, ())[predicts], dim=-1)
        # The KL's gradient is zero at the full model; its second-order curvature is what protects retain
        # behaviour, so we use the CE of the full model's answers, whose gradient is informative there.
        masked = F.log_softmax(forward_logits(model, ids, attn, hooks)[predicts], dim=-1)
        loss = -(full.exp() * masked).sum()
        (loss / len(r_heads)).backward()
    return -head_removal.grad.detach().cpu(), -neuron_removal.grad.detach().cpu()


def magnitude_scores(model, prompts: list[str], batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Wanda-style: RMS activation of each head / neuron on `prompts` times the norm of its output weights."""
    n_layers = model.cfg.n_layers
    head_sq, neuron_sq, count = activation_moments(model, prompts, power=2, batch_size=batch_size)
    head_rms, neuron_rms = (head_sq.sum(-1) / count).sqrt(), (neuron_sq / count).sqrt()
    w_o = torch.stack([model.blocks[i].attn.W_O.detach().float().cpu() for i in range(n_layers)])  # [L,H,dh,dm]
    w_out = torch.stack([model.blocks[i].mlp.W_out.detach().float().cpu() for i in range(n_layers)])  # [L,D,dm]
    return head_rms * w_o.flatten(2).norm(dim=-1), neuron_rms * w_out.norm(dim=-1)


def baseline_circuits(model, circuit: Circuit, scenario: Scenario, seeds: int = 5) -> dict[str, list[Circuit]]:
    """The baselines' component sets at the learned circuit's size."""
    k_heads, k_neurons = len(circuit.heads), len(circuit.neurons)
    attr_h, attr_n = attribution_scores(model, scenario)
    mag_h, mag_n = magnitude_scores(model, scenario.behaviour_prompts)
    return {
        "random": [random_components(circuit, seed) for seed in range(seeds)],
        "attribution": [circuit.with_components(_top(attr_h, k_heads), _top(attr_n, k_neurons), "attribution")],
        "magnitude": [circuit.with_components(_top(mag_h, k_heads), _top(mag_n, k_neurons), "magnitude")],
    }


def _scenario_asr(report: EvalReport, scenario_name: str) -> float | None:
    return report.asr_triggered if scenario_name == "backdoor" else report.asr_clean


def _other_asr(report: EvalReport, scenario_name: str) -> float | None:
    return report.asr_clean if scenario_name == "backdoor" else report.asr_triggered


def compare(model, circuit: Circuit, scenario: Scenario, eval_prompts: PromptSet, seeds: int = 5,
            progress: Callable[[str], None] | None = None) -> list[ComparisonRow]:
    """Learned circuit vs random / attribution / magnitude sets of the same size, on held-out prompts."""
    say = progress or (lambda _msg: None)
    say("evaluating the full model")
    before = evaluate(model, eval_prompts, batch_size=64)
    asr_before = _scenario_asr(before, circuit.scenario)
    say("scoring baselines")
    candidates = {"learned": [circuit], **baseline_circuits(model, circuit, scenario, seeds)}
    rows = []
    for method, circuits in candidates.items():
        asrs, others, retentions = [], [], []
        for c in circuits:
            say(f"evaluating {c.name}")
            after = evaluate(model, eval_prompts, hooks=ablate(model, c), batch_size=64)
            asrs.append(_scenario_asr(after, circuit.scenario))
            others.append(_other_asr(after, circuit.scenario))
            retentions.append(utility_retention(before, after))
        mean_asr = sum(asrs) / len(asrs) if None not in asrs else None
        std = (sum((a - mean_asr) ** 2 for a in asrs) / len(asrs)) ** 0.5 if mean_asr is not None else None
        rows.append(ComparisonRow(method if method != "random" else f"random (mean of {len(circuits)})",
                                  len(circuit.heads), len(circuit.neurons),
                                  100 * circuit.fractions()["components"], asr_before, mean_asr,
                                  sum(retentions) / len(retentions), std if len(circuits) > 1 else None,
                                  _other_asr(before, circuit.scenario),
                                  sum(others) / len(others) if None not in others else None))
    return rows


def format_table(rows: list[ComparisonRow], scenario_name: str) -> str:
    asr, other = ("triggered ASR", "clean ASR") if scenario_name == "backdoor" else ("clean ASR", "triggered ASR")
    header = (f"{'method':<22} {'heads':>5} {'neurons':>7} {'% comps':>8} {asr + ' before->after':>28} "
              f"{other + ' before->after':>28} {'utility kept':>12}")
    lines = [header, "-" * len(header)]
    for r in rows:
        change = f"{100 * r.asr_before:.1f}% -> {100 * r.asr_after:.1f}%"
        if r.asr_after_std is not None:
            change += f" (sd {100 * r.asr_after_std:.1f})"
        other_change = "n/a" if r.other_asr_before is None or r.other_asr_after is None else \
            f"{100 * r.other_asr_before:.1f}% -> {100 * r.other_asr_after:.1f}%"
        lines.append(f"{r.method:<22} {r.heads:>5} {r.neurons:>7} {r.percent_components:>7.2f}% {change:>28} "
                     f"{other_change:>28} {100 * r.utility_retention:>11.1f}%")
    return "\n".join(lines)
