"""Circuit discovery: learn removal masks whose binary read-out changes one behaviour and leaves the rest intact.

Objective (minimised over the removal gates of `core.circuit.masks`; the first two terms in core.scoring.objective):

    behaviour  CE of what the model should answer once the circuit is removed (teacher-forced)
  + retain     alpha * KL(full model || masked model) on the full model's own answers to retain prompts
  + sparsity   lambda_heads * E[heads removed]/budget + lambda_neurons * E[neurons removed]/budget

In budget mode each lambda is a Lagrange multiplier raised by dual ascent while the expected fraction removed is
above its budget (and relaxed when below), so the circuit settles at or under the budget; in lambda mode the
coefficient is fixed. A small constant L0 pressure keeps components out that the behaviour does not need.

Scenarios (what removal should change and what it must leave alone) are in core.scoring.scenario.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.circuit.circuit import Circuit
from core.circuit.masks import RemovalMasks
from core.data.batches import predicts_answer, teacher_forced_batch
from core.data.paths import recorded_path
from core.model.fingerprint import fingerprint
from core.model.generate import encode_prompts, generate_ids
from core.model.load import model_shape
from core.scoring.objective import answer_log_probs, answer_logits, behaviour_ce, full_answer_log_probs, retain_kl
from core.scoring.scenario import DiscoveryError, Scenario
from core.scoring.select import circuit_from_scores

TEACHER_BYTES = 512 * 2**20  # the largest full-model retain distribution kept in memory (else recomputed per step)


def teacher_bytes(model, n_retain: int, answer_tokens: int) -> int:
    """Memory of the full model's retain distributions that discover keeps for the whole run; 0 when that is over
    TEACHER_BYTES (it then reruns the full model on each step's retain batch instead)."""
    size = n_retain * answer_tokens * int(model.cfg.d_vocab) * 4
    return size if size <= TEACHER_BYTES else 0


@dataclass
class DiscoveryConfig:
    steps: int = 300
    batch_size: int = 16
    lr: float = 0.1
    head_budget: float | None = 0.05  # max fraction of heads in the circuit (None: no head gates)
    neuron_budget: float | None = 0.01  # max fraction of neurons (None: no neuron gates)
    sparsity_lambda: float | None = None  # fixed coefficient instead of a budget (lambda mode)
    retain_weight: float = 4.0
    l0_pressure: float = 0.0  # constant push towards smaller circuits, on top of the budget
    dual_lr: float = 0.05
    init_log_alpha: float = -3.0
    gate: str = "sigmoid-ste"  # or "hard-concrete" (see core.circuit.masks)
    answer_tokens: int = 12  # how many tokens of the full model's answers the retain term compares
    seed: int = 0


@dataclass
class RetainTargets:
    """What discovery's retain term compares with: the retain prompts' ids, the full model's greedy answers and,
    when it fits (teacher_bytes), the full model's log-probabilities over them. The same for every discovery on one
    scenario with the same answer_tokens and batch_size, so a sweep can compute them once (retain_targets)."""

    heads: list[list[int]]
    answers: list[list[int]]
    teacher: list[torch.Tensor] | None


def retain_targets(model, scenario: Scenario, cfg: DiscoveryConfig) -> RetainTargets:
    """The full model's side of the retain term for `scenario` (a generation pass, then one forward)."""
    heads = encode_prompts(model.tokenizer, scenario.retain_prompts)
    answers = generate_ids(model, scenario.retain_prompts, max_new_tokens=cfg.answer_tokens)
    # An answer that ended at once still needs one compared position: the eos the model chose.
    eos = model.tokenizer.eos_token_id
    answers = [a + [eos] if len(a) < cfg.answer_tokens and eos is not None else a for a in answers]
    # The retain term's full-model side never changes: compute it once when it fits (a third of each step's work).
    teacher = (full_answer_log_probs(model, heads, answers, model.tokenizer.pad_token_id, cfg.batch_size)
               if teacher_bytes(model, len(answers), cfg.answer_tokens) else None)
    return RetainTargets(heads, answers, teacher)


class LatestRetainTargets:
    """retain_targets for a run of discoveries: computed again only when the scenario or the config's answer_tokens
    or batch_size change, and only the latest kept (the full model's log-probs may take hundreds of MiB); enough
    when runs of one scenario come together, as a sweep over budgets does."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._targets: RetainTargets | None = None

    def get(self, model, scenario: Scenario, cfg: DiscoveryConfig, scenario_key: tuple) -> RetainTargets:
        """The targets of `scenario` (named by `scenario_key`, e.g. its prompts' hash and seed) under `cfg`."""
        key = (*scenario_key, cfg.answer_tokens, cfg.batch_size)
        if self._targets is None or self._key != key:
            self._key, self._targets = key, retain_targets(model, scenario, cfg)
        return self._targets


@dataclass
class StepLog:
    step: int
    loss: float
    behaviour: float
    retain: float
    heads_removed: float  # expected fraction
    neurons_removed: float
    seconds: float


Progress = Callable[[StepLog], None]


# ---- the learning loop ------------------------------------------------------------------------------------------


def discover(model, scenario: Scenario, config: DiscoveryConfig | None = None, progress: Progress | None = None,
             model_path: str | None = None, retain: RetainTargets | None = None) -> Circuit:
    """Learn removal masks for `scenario` and read them out as a binary Circuit (metrics filled by `verify`).
    `retain`: retain_targets(model, scenario, config) computed before, for runs that share them."""
    cfg = config or DiscoveryConfig()
    if cfg.head_budget is None and cfg.neuron_budget is None:
        raise DiscoveryError("give a head budget, a neuron budget or both (e.g. --head-budget 0.05)")
    for name, budget in (("head", cfg.head_budget), ("neuron", cfg.neuron_budget)):
        if budget is not None and not (0 < budget < 1):
            raise DiscoveryError(f"{name} budget {budget} must be a fraction between 0 and 1 (e.g. 0.02 for 2%)")
    if not scenario.retain_prompts:
        raise DiscoveryError("discovery needs retain prompts (benign requests, utility tasks): without them any "
                             "component that breaks the model would count as a circuit")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    noise = torch.Generator().manual_seed(cfg.seed)
    n_layers, n_heads, d_mlp = model_shape(model)
    device = model.cfg.device
    tokenizer = model.tokenizer
    pad_id = tokenizer.pad_token_id

    masks = RemovalMasks(n_layers, n_heads, d_mlp, heads=cfg.head_budget is not None,
                         neurons=cfg.neuron_budget is not None, init_log_alpha=cfg.init_log_alpha,
                         gate=cfg.gate).to(device)
    opt = torch.optim.Adam(masks.parameters(), lr=cfg.lr)
    budgets = {"heads": cfg.head_budget, "neurons": cfg.neuron_budget}
    duals = {k: 0.0 for k, b in budgets.items() if b is not None}

    behaviour_heads = encode_prompts(tokenizer, scenario.behaviour_prompts)
    retain = retain or retain_targets(model, scenario, cfg)
    retain_heads, retain_answers, teacher = retain.heads, retain.answers, retain.teacher

    def batches(n: int):
        order: list[int] = []
        while True:
            if len(order) < cfg.batch_size:
                fresh = list(range(n))
                rng.shuffle(fresh)
                order += fresh
            yield [order.pop() for _ in range(min(cfg.batch_size, n))]

    behaviour_batches, retain_batches = batches(len(behaviour_heads)), batches(len(retain_heads))
    t0 = time.time()
    for step in range(cfg.steps):
        b_idx, r_idx = next(behaviour_batches), next(retain_batches)
        hooks = masks.hooks(sample=True, generator=noise)

        ids, attn, labels = teacher_forced_batch([behaviour_heads[i] for i in b_idx],
                                                 [scenario.behaviour_answers[i] for i in b_idx], pad_id, device)
        logits = answer_logits(model, ids, attn, labels, hooks)
        behaviour = behaviour_ce(logits, labels) / len(b_idx)
        if scenario.avoid_first_token is not None:
            lengths = predicts_answer(labels).sum(1)
            first = lengths.cumsum(0) - lengths  # each row's first answer-predicting position among the logits
            probs = logits[first].softmax(-1)
            avoid = torch.tensor([scenario.avoid_first_token[i] for i in b_idx], device=device)
            p_avoid = probs.gather(1, avoid[:, None]).squeeze(1)
            behaviour = behaviour - torch.log1p(-p_avoid.clamp(max=1 - 1e-6)).mean()

        ids, attn, labels = teacher_forced_batch([retain_heads[i] for i in r_idx],
                                                 [retain_answers[i] for i in r_idx], pad_id, device)
        # Summed over answer positions, averaged over prompts: the first answer token (comply or refuse) must
        # weigh as much per prompt as it does in the behaviour term, not be diluted by the tokens after it.
        full = torch.cat([teacher[i] for i in r_idx]) if teacher is not None else None
        retain = retain_kl(*answer_log_probs(model, ids, attn, labels, hooks, full)) / len(r_idx)

        fractions = masks.expected_fraction()
        if step == 0:
            start_fraction = {kind: frac.item() for kind, frac in fractions.items()}
        # The allowed fraction ramps from where the gates start down to the budget over the first 60% of the
        # steps (as in Edge Pruning): a hard budget from step 0 would crush every gate before the behaviour
        # term has said which components matter.
        ramp = min(1.0, step / max(1, cfg.steps // 2))
        sparsity = torch.zeros((), device=device)
        for kind, frac in fractions.items():
            if cfg.sparsity_lambda is not None:
                sparsity = sparsity + cfg.sparsity_lambda * frac
            else:
                sparsity = sparsity + (duals[kind] + cfg.l0_pressure) * frac / budgets[kind]
        loss = behaviour + cfg.retain_weight * retain + sparsity
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cfg.sparsity_lambda is None:  # dual ascent: raise lambda while over the allowed fraction, relax below
            for kind, frac in fractions.items():
                allowed = start_fraction[kind] + (budgets[kind] - start_fraction[kind]) * ramp
                duals[kind] = max(0.0, duals[kind] + cfg.dual_lr * (frac.item() - allowed) / budgets[kind])
        if progress is not None:
            progress(StepLog(step + 1, loss.item(), behaviour.item(), retain.item(),
                             fractions.get("heads", torch.tensor(0.0)).item(),
                             fractions.get("neurons", torch.tensor(0.0)).item(), time.time() - t0))

    return _read_out(model, masks, scenario, cfg, model_path)


def _read_out(model, masks: RemovalMasks, scenario: Scenario, cfg: DiscoveryConfig,
              model_path: str | None) -> Circuit:
    n_layers, n_heads, d_mlp = model_shape(model)
    with torch.no_grad():
        head_scores = masks.heads.probability_nonzero().cpu() if masks.heads is not None else None
        neuron_scores = masks.neurons.probability_nonzero().cpu() if masks.neurons is not None else None
    # A gate reads out as removed above 0.5; the budget caps how many may be.
    heads, neurons = circuit_from_scores((head_scores, neuron_scores), (cfg.head_budget, cfg.neuron_budget), above=0.5)
    info = dict(fingerprint(model))
    if model_path is not None:
        info["path"] = recorded_path(model_path)
    return Circuit(heads=heads, neurons=neurons, n_layers=n_layers, n_heads=n_heads, d_mlp=d_mlp,
                   name=scenario.name, scenario=scenario.name if scenario.name in ("backdoor", "alignment") else
                   "custom", model=info, prompt_hashes=dict(scenario.prompt_hashes), hyperparameters=dict(vars(cfg)),
                   head_scores=head_scores.tolist() if head_scores is not None else None,
                   neuron_scores=neuron_scores.tolist() if neuron_scores is not None else None)
