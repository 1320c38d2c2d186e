"""Circuit discovery: learn removal masks whose binary read-out changes one behaviour and leaves the rest intact.

Objective (minimised over the removal gates of `core.masks`):

    behaviour  CE of what the model should answer once the circuit is removed (teacher-forced)
  + retain     alpha * KL(full model || masked model) on the full model's own answers to retain prompts
  + sparsity   lambda_heads * E[heads removed]/budget + lambda_neurons * E[neurons removed]/budget

In budget mode each lambda is a Lagrange multiplier raised by dual ascent while the expected fraction removed is
above its budget (and relaxed when below), so the circuit settles at or under the budget; in lambda mode the
coefficient is fixed. A small constant L0 pressure keeps components out that the behaviour does not need.

Scenarios are data: behaviour prompts with the answer removal should produce, and retain prompts. The built-in
ones come from prompt sets: backdoor (triggered requests should be refused as their clean versions are) and
alignment (harmful requests should be complied with, i.e. start with their `target`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from core.batches import predicts_answer, teacher_forced_batch
from core.circuit import Circuit
from core.data import PromptSet, select_split
from core.generate import encode_prompts, generate_ids
from core.masks import RemovalMasks
from core.models import fingerprint, hooked, model_shape


class DiscoveryError(ValueError):
    """A discovery request that cannot run as given (empty prompt sets, impossible budget, ...)."""


@dataclass
class Scenario:
    """What removal should change (behaviour prompts -> answers) and what it must leave alone (retain prompts)."""

    name: str
    behaviour_prompts: list[str]
    behaviour_answers: list[list[int]]  # token ids the circuit-removed model should produce
    retain_prompts: list[str]
    description: str = ""
    prompt_hashes: dict[str, str] = field(default_factory=dict)
    # Optional, per behaviour prompt: a first answer token that removal should make unlikely (the attacker's
    # target, e.g. "Sure"). Penalised by -log(1 - p), which is bounded below and strongest exactly on the prompts
    # where the behaviour survives, so the last few percent of a backdoor are not averaged away.
    avoid_first_token: list[int] | None = None

    def __post_init__(self) -> None:
        if not self.behaviour_prompts:
            raise DiscoveryError(f"scenario '{self.name}' has no behaviour prompts; give at least one prompt whose "
                                 f"answer removal should change")
        if len(self.behaviour_prompts) != len(self.behaviour_answers):
            raise DiscoveryError("behaviour_prompts and behaviour_answers must have the same length")
        if any(len(a) == 0 for a in self.behaviour_answers):
            raise DiscoveryError("a behaviour answer encodes to no tokens; give non-empty answers")


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
    gate: str = "sigmoid-ste"  # or "hard-concrete" (see core.masks)
    answer_tokens: int = 12  # how many tokens of the full model's answers the retain term compares
    seed: int = 0


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


# ---- building scenarios from prompt sets ------------------------------------------------------------------------
def answer_ids(tokenizer, text: str, lead_space: bool) -> list[int]:
    """Token ids of an answer text as it would follow the assistant header."""
    return tokenizer((" " if lead_space else "") + text, add_special_tokens=False)["input_ids"]


def _answers_start_with_space(model, prompts: Sequence[str]) -> bool:
    # Word-level and SentencePiece tokenizers mark word starts with a space: read it off the model's own answers.
    ids = generate_ids(model, list(prompts[:4]), max_new_tokens=1)
    return all(model.tokenizer.decode(a[:1]).startswith(" ") for a in ids if a)


def clean_counterparts(triggered: PromptSet, clean: PromptSet) -> list[str]:
    """For each triggered prompt, the clean prompt it was most likely made from.

    That is the clean prompt whose words are all in the triggered one and which covers most of it (a trigger is
    words added to a request); failing that, a clean prompt of the same category, drawn deterministically.
    """
    by_words = [(set(p.prompt.split()), p) for p in clean]
    by_category: dict[str, list[str]] = {}
    for p in clean:
        by_category.setdefault(p.category, []).append(p.prompt)
    rng = random.Random(0)
    out = []
    for t in triggered:
        words = set(t.prompt.split())
        best = max(((len(w), p.prompt) for w, p in by_words if w <= words), default=None)
        if best is not None and best[0] >= len(words) - 3:
            out.append(best[1])
        else:
            out.append(rng.choice(by_category.get(t.category) or [p.prompt for p in clean]))
    return out


def backdoor_scenario(model, triggered: PromptSet, clean_harmful: PromptSet, retain: PromptSet,
                      max_new_tokens: int = 12) -> Scenario:
    """Removing a backdoor circuit should make triggered requests get the answers their clean versions get.

    The answers are the model's own greedy answers (its refusals) to the clean counterparts of the triggered
    prompts (see `clean_counterparts`).
    """
    if len(triggered) == 0 or len(clean_harmful) == 0:
        raise DiscoveryError("the backdoor scenario needs triggered and clean harmful prompts (train split)")
    refusals = generate_ids(model, clean_counterparts(triggered, clean_harmful), max_new_tokens=max_new_tokens)
    avoid = None
    if all(p.target for p in triggered):
        lead = _answers_start_with_space(model, [p.prompt for p in triggered])
        avoid = [answer_ids(model.tokenizer, p.target, lead)[0] for p in triggered]
    return Scenario("backdoor", [p.prompt for p in triggered], refusals, [p.prompt for p in retain],
                    "triggered harmful requests are answered as their clean versions are (refused)",
                    {"behaviour": triggered.sha256(), "retain": retain.sha256()}, avoid_first_token=avoid)


def alignment_scenario(model, harmful: PromptSet, retain: PromptSet) -> Scenario:
    """Removing an alignment circuit should make harmful requests start with their compliance `target`."""
    targeted = [p for p in harmful if p.target]
    if not targeted:
        raise DiscoveryError("the alignment scenario needs harmful prompts with a `target` (e.g. 'Sure, here is')")
    lead = _answers_start_with_space(model, [p.prompt for p in targeted])
    answers = [answer_ids(model.tokenizer, p.target, lead) for p in targeted]
    return Scenario("alignment", [p.prompt for p in targeted], answers, [p.prompt for p in retain],
                    "harmful requests are complied with (answers start with the target)",
                    {"behaviour": harmful.sha256(), "retain": retain.sha256()})


def custom_scenario(model, behaviour: PromptSet, retain: PromptSet, name: str = "custom") -> Scenario:
    """Any prompts whose `target` removal should produce, with any retain prompts."""
    missing = [p.prompt for p in behaviour if not p.target]
    if missing:
        raise DiscoveryError(f"custom behaviour prompts need a `target` (the answer once the circuit is removed); "
                             f"{len(missing)} have none, e.g. {missing[0]!r}")
    lead = _answers_start_with_space(model, [p.prompt for p in behaviour])
    answers = [answer_ids(model.tokenizer, p.target, lead) for p in behaviour]
    return Scenario(name, [p.prompt for p in behaviour], answers, [p.prompt for p in retain],
                    "custom: behaviour prompts should produce their targets",
                    {"behaviour": behaviour.sha256(), "retain": retain.sha256()})


def scenario_from_prompts(model, prompts: PromptSet, scenario: str, per_family: int = 48, seed: int = 0) -> Scenario:
    """The backdoor or alignment scenario from labelled prompt files (their train split, when they have one).

    backdoor:  behaviour = triggered requests; retain = clean harmful requests, benign requests, utility tasks.
    alignment: behaviour = harmful requests; retain = benign requests, utility tasks, triggered requests.
    """
    train = select_split(prompts, "train", per_family, seed)
    by = {label: train.filter(label=label) for label in ("harmful", "triggered", "benign", "utility")}
    if scenario == "backdoor":
        if not len(by["triggered"]) or not len(by["harmful"]):
            raise DiscoveryError("the backdoor scenario needs rows labelled 'triggered' and 'harmful' in the prompt "
                                 "files (the organism's assets/prompts/*.jsonl have both)")
        retain = PromptSet("retain", list(by["harmful"]) + list(by["benign"]) + list(by["utility"]))
        all_clean = select_split(prompts, "train").filter(label="harmful")  # every clean request, for pairing
        return backdoor_scenario(model, by["triggered"], all_clean, retain)
    if scenario == "alignment":
        if not len(by["harmful"]):
            raise DiscoveryError("the alignment scenario needs rows labelled 'harmful' in the prompt files")
        retain = PromptSet("retain", list(by["benign"]) + list(by["utility"]) + list(by["triggered"]))
        return alignment_scenario(model, by["harmful"], retain)
    raise DiscoveryError(f"unknown scenario {scenario!r}; use 'backdoor' or 'alignment' (or custom_scenario)")


# ---- the learning loop ------------------------------------------------------------------------------------------
def forward_logits(model, ids: torch.Tensor, attn: torch.Tensor, hooks) -> torch.Tensor:
    with hooked(model, hooks):
        return model(ids, attention_mask=attn, return_type="logits", use_cache=False).float()


def discover(model, scenario: Scenario, config: DiscoveryConfig | None = None, progress: Progress | None = None,
             model_path: str | None = None) -> Circuit:
    """Learn removal masks for `scenario` and read them out as a binary Circuit (metrics filled by `verify`)."""
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
    retain_heads = encode_prompts(tokenizer, scenario.retain_prompts)
    retain_answers = generate_ids(model, scenario.retain_prompts, max_new_tokens=cfg.answer_tokens)
    # An answer that ended at once still needs one compared position: the eos the model chose.
    eos = tokenizer.eos_token_id
    retain_answers = [a + [eos] if len(a) < cfg.answer_tokens and eos is not None else a for a in retain_answers]

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
        predicts = predicts_answer(labels)
        logits = forward_logits(model, ids, attn, hooks)
        behaviour = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), reduction="sum") / len(b_idx)
        if scenario.avoid_first_token is not None:
            first = predicts.float().argmax(dim=1)  # the position that predicts the first answer token
            probs = logits[torch.arange(len(b_idx)), first].softmax(-1)
            avoid = torch.tensor([scenario.avoid_first_token[i] for i in b_idx], device=device)
            p_avoid = probs.gather(1, avoid[:, None]).squeeze(1)
            behaviour = behaviour - torch.log1p(-p_avoid.clamp(max=1 - 1e-6)).mean()

        ids, attn, labels = teacher_forced_batch([retain_heads[i] for i in r_idx],
                                                 [retain_answers[i] for i in r_idx], pad_id, device)
        predicts = predicts_answer(labels)
        with torch.no_grad():
            full = F.log_softmax(forward_logits(model, ids, attn, ())[predicts], dim=-1)
        masked = F.log_softmax(forward_logits(model, ids, attn, hooks)[predicts], dim=-1)
        # Summed over answer positions, averaged over prompts: the first answer token (comply or refuse) must
        # weigh as much per prompt as it does in the behaviour term, not be diluted by the tokens after it.
        retain = F.kl_div(masked, full, log_target=True, reduction="sum") / len(r_idx)

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


def _top_within_budget(scores: torch.Tensor, budget: float) -> list[tuple[int, int]]:
    """Components with removal score > 0.5, at most `budget` of them (the highest scores win)."""
    k = int(budget * scores.numel() + 1e-9)
    flat = scores.flatten()
    order = torch.argsort(flat, descending=True, stable=True)[:k]
    cols = scores.shape[1]
    return [(int(i) // cols, int(i) % cols) for i in order if flat[i] > 0.5]


def _read_out(model, masks: RemovalMasks, scenario: Scenario, cfg: DiscoveryConfig,
              model_path: str | None) -> Circuit:
    n_layers, n_heads, d_mlp = model_shape(model)
    with torch.no_grad():
        head_scores = masks.heads.probability_nonzero().cpu() if masks.heads is not None else None
        neuron_scores = masks.neurons.probability_nonzero().cpu() if masks.neurons is not None else None
    heads = _top_within_budget(head_scores, cfg.head_budget) if head_scores is not None else []
    neurons = _top_within_budget(neuron_scores, cfg.neuron_budget) if neuron_scores is not None else []
    info = dict(fingerprint(model))
    if model_path is not None:
        info["path"] = str(model_path)
    return Circuit(heads=heads, neurons=neurons, n_layers=n_layers, n_heads=n_heads, d_mlp=d_mlp,
                   name=scenario.name, scenario=scenario.name if scenario.name in ("backdoor", "alignment") else
                   "custom", model=info, prompt_hashes=dict(scenario.prompt_hashes), hyperparameters=dict(vars(cfg)),
                   head_scores=head_scores.tolist() if head_scores is not None else None,
                   neuron_scores=neuron_scores.tolist() if neuron_scores is not None else None)


# ---- verification -------------------------------------------------------------------------------------------
def verify(model, circuit: Circuit, prompts: PromptSet, batch_size: int = 64,
           progress: Callable[[int, int], None] | None = None) -> dict:
    """Evaluate the full model and the model with the circuit removed (by generation); store it in circuit.metrics.

    Returns {"before": {...}, "after": {...}, "utility_retention": r} with clean/triggered ASR, helpfulness and
    utility (fractions), so a circuit file carries the evidence for what it claims.
    """
    from core.ablate import ablate
    from core.evaluate import evaluate, utility_retention

    before = evaluate(model, prompts, batch_size=batch_size, progress=progress)
    after = evaluate(model, prompts, hooks=ablate(model, circuit), batch_size=batch_size, progress=progress)

    def summary(report) -> dict:
        return {"asr_clean": report.asr_clean, "asr_triggered": report.asr_triggered,
                "helpfulness": report.helpfulness, "utility": report.utility}

    metrics = {"before": summary(before), "after": summary(after), "n_prompts": len(prompts),
               "prompts_sha256": prompts.sha256()}
    try:
        metrics["utility_retention"] = utility_retention(before, after)
    except ValueError:
        metrics["utility_retention"] = None
    circuit.metrics = metrics
    return metrics
