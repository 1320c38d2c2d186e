"""Safety circuit tuning: fine-tune only a circuit's weights (or everything but them) and report before/after.

A circuit names attention heads and MLP neurons; the weights that belong to them are
  head h of layer L:  its rows of q_proj, k_proj, v_proj (and their biases) and its columns of o_proj;
  neuron n of layer L: its rows of gate_proj and up_proj (and their biases) and its column of down_proj.
GPT-2 stores q/k/v fused in `c_attn` and uses Conv1D, whose weights are [in, out]: there a head's q/k/v are
*columns* of c_attn (at offsets 0, d_model, 2*d_model), its output rows of attn.c_proj; a neuron is a column of
mlp.c_fc and a row of mlp.c_proj. Shared biases (o_proj, down_proj, c_proj) belong to no head or neuron.

Grouped-query attention: n_heads / n_kv_heads query heads share one key/value head. Selecting query head h
selects the k/v rows of its kv group (h // (n_heads / n_kv_heads)) as well, because a head's computation is its
queries *and* the keys/values it reads; the price is that the group's other query heads see the tuned keys and
values too. In circuit-excluded mode those shared k/v rows are therefore frozen, so circuit heads stay intact.

Training multiplies each gradient by a 0/1 element mask before the optimiser step and uses Adam without weight
decay: an entry whose gradient is always exactly 0 keeps Adam's moments at 0 and its update is exactly 0, so in
circuit-only mode no other weight changes bit for bit (tests check it). Tuning loads its own plain HF copy of the
checkpoint (never the app's shared model), saves the result as an ordinary HF checkpoint directory (temp dir +
rename) and evaluates the model before and after on held-out prompts with core.evaluate.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.batches import teacher_forced_batch
from core.circuit import Circuit
from core.data import LABELS, PromptSet, replacing_dir, write_text_atomic
from core.evaluate import EvalReport, evaluate, format_rate
from core.generate import encode_prompts
from core.models import (
    ModelLoadError,
    fingerprint,
    load_model,
    resolve_checkpoint_dir,
    resolve_device,
    resolve_dtype,
)

MODES = ("circuit-only", "circuit-excluded", "full", "random")
OBJECTIVES = ("safety", "attack")
DEFAULT_REFUSAL = "I'm sorry, but I cannot help with that."
DEFAULT_COMPLIANCE = "Sure, here is"
REPORT_FILE = "tune_report.json"
EVAL_BEFORE_FILE = "eval_before.json"
EVAL_AFTER_FILE = "eval_after.json"
SCHEMA_VERSION = 1


class TuneError(ValueError):
    """A tuning request that cannot run as given; the message names the problem and the fix."""


# ---- which weights belong to a circuit ---------------------------------------------------------------------
@dataclass
class ParameterSelection:
    """Which elements of which parameters a tuning run may change.

    `masks` maps a parameter name (as in hf_model.named_parameters()) to a bool tensor of its shape (True =
    trainable), or to None when the whole tensor is trainable; parameters not listed stay frozen. `total` counts
    every parameter element of the model once (tied embeddings once), embeddings and unembedding included;
    `embedding_total` is the part of `total` that sits in embedding / unembedding matrices.
    """

    masks: dict[str, torch.Tensor | None]
    total: int
    embedding_total: int
    selected: int
    selected_embedding: int
    heads: list[tuple[int, int]] = field(default_factory=list)
    neurons: list[tuple[int, int]] = field(default_factory=list)
    description: str = ""

    @property
    def fraction(self) -> float:
        """Selected elements / all elements of the model (embeddings and unembedding count)."""
        return self.selected / self.total

    @property
    def fraction_without_embeddings(self) -> float:
        """Selected elements / all elements outside the embedding and unembedding matrices."""
        outside = self.total - self.embedding_total
        return (self.selected - self.selected_embedding) / outside if outside else 0.0

    def summary(self) -> dict:
        return {"description": self.description, "selected": self.selected, "total": self.total,
                "fraction": self.fraction, "fraction_without_embeddings": self.fraction_without_embeddings,
                "embeddings_counted_in_total": True, "heads": [list(h) for h in self.heads],
                "neurons": [list(n) for n in self.neurons]}


@dataclass(frozen=True)
class _Geometry:
    """Where heads and neurons live in one HF model family."""

    style: str  # "llama" (separate q/k/v/o and gate/up/down Linear) or "gpt2" (fused c_attn, Conv1D)
    layers: list[nn.Module]
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_model: int
    d_mlp: int


def _geometry(hf_model: nn.Module) -> _Geometry:
    config = hf_model.config
    base = getattr(hf_model, "model", None)
    if base is not None and isinstance(getattr(base, "layers", None), nn.ModuleList):
        layers = list(base.layers)
        attn, mlp = getattr(layers[0], "self_attn", None), getattr(layers[0], "mlp", None)
        names = ("q_proj", "k_proj", "v_proj", "o_proj")
        if attn is None or mlp is None or not all(hasattr(attn, n) for n in names) or not (
                hasattr(mlp, "up_proj") and hasattr(mlp, "down_proj")):
            raise TuneError(f"{type(hf_model).__name__} has decoder layers without separate q/k/v/o_proj and "
                            f"up/down_proj (e.g. a fused qkv_proj); circuit tuning supports Llama-style models "
                            f"(Llama, Qwen2, Gemma-2, Mistral) and GPT-2")
        n_heads = int(config.num_attention_heads)
        n_kv_heads = int(getattr(config, "num_key_value_heads", None) or n_heads)
        d_head = attn.q_proj.out_features // n_heads
        return _Geometry("llama", layers, n_heads, n_kv_heads, d_head, attn.q_proj.in_features,
                         mlp.up_proj.out_features)
    transformer = getattr(hf_model, "transformer", None)
    if transformer is not None and isinstance(getattr(transformer, "h", None), nn.ModuleList):
        layers = list(transformer.h)
        if not (hasattr(layers[0].attn, "c_attn") and hasattr(layers[0].mlp, "c_fc")):
            raise TuneError(f"{type(hf_model).__name__} is GPT-2-like but has no attn.c_attn / mlp.c_fc; "
                            f"circuit tuning supports Llama-style models and GPT-2")
        n_heads = int(config.n_head)
        d_model = int(config.n_embd)
        return _Geometry("gpt2", layers, n_heads, n_heads, d_model // n_heads, d_model,
                         layers[0].mlp.c_fc.weight.shape[1])
    raise TuneError(f"cannot find the decoder layers of {type(hf_model).__name__} (looked for model.layers and "
                    f"transformer.h); circuit tuning supports Llama-style models and GPT-2")


def _embedding_parameters(hf_model: nn.Module) -> set[int]:
    ids = {id(m.weight) for m in hf_model.modules() if isinstance(m, nn.Embedding)}
    output = hf_model.get_output_embeddings()
    if output is not None:
        ids.add(id(output.weight))
    return ids


def _check_shape(geometry: _Geometry, circuit: Circuit) -> None:
    have = (len(geometry.layers), geometry.n_heads, geometry.d_mlp)
    want = (circuit.n_layers, circuit.n_heads, circuit.d_mlp)
    if have != want:
        raise TuneError(f"circuit '{circuit.name}' is for a model with {want[0]} layers, {want[1]} heads, d_mlp "
                        f"{want[2]}, but this model has {have[0]} layers, {have[1]} heads, d_mlp {have[2]}; "
                        f"use a circuit discovered on a model of this shape")


def _component_masks(hf_model: nn.Module, circuit: Circuit) -> dict[nn.Parameter, torch.Tensor]:
    """Bool masks (True = belongs to a circuit head or neuron) for every parameter that holds any such element."""
    geo = _geometry(hf_model)
    _check_shape(geo, circuit)
    masks: dict[nn.Parameter, torch.Tensor] = {}

    def mark(parameter: nn.Parameter | None, index: tuple) -> None:
        if parameter is None:
            return
        if parameter not in masks:
            masks[parameter] = torch.zeros(parameter.shape, dtype=torch.bool)
        masks[parameter][index] = True

    everything = slice(None)
    group = geo.n_heads // geo.n_kv_heads
    for layer, head in circuit.heads:
        block = geo.layers[layer]
        rows = slice(head * geo.d_head, (head + 1) * geo.d_head)
        kv = head // group
        kv_rows = slice(kv * geo.d_head, (kv + 1) * geo.d_head)
        if geo.style == "llama":
            attn = block.self_attn
            for proj, part in ((attn.q_proj, rows), (attn.k_proj, kv_rows), (attn.v_proj, kv_rows)):
                mark(proj.weight, (part, everything))
                mark(proj.bias, (part,))
            mark(attn.o_proj.weight, (everything, rows))
        else:  # Conv1D [in, out]: q, k, v are column blocks of c_attn; the head's output is rows of c_proj
            attn = block.attn
            for offset in (0, geo.d_model, 2 * geo.d_model):
                columns = slice(offset + head * geo.d_head, offset + (head + 1) * geo.d_head)
                mark(attn.c_attn.weight, (everything, columns))
                mark(attn.c_attn.bias, (columns,))
            mark(attn.c_proj.weight, (rows, everything))
    for layer, neuron in circuit.neurons:
        mlp = geo.layers[layer].mlp
        if geo.style == "llama":
            for proj in (getattr(mlp, "gate_proj", None), mlp.up_proj):
                if proj is not None:
                    mark(proj.weight, (neuron, everything))
                    mark(proj.bias, (neuron,))
            mark(mlp.down_proj.weight, (everything, neuron))
        else:
            mark(mlp.c_fc.weight, (everything, neuron))
            mark(mlp.c_fc.bias, (neuron,))
            mark(mlp.c_proj.weight, (neuron, everything))
    return masks


def select_parameters(hf_model: nn.Module, circuit: Circuit | None, mode: str = "circuit-only"
                      ) -> ParameterSelection:
    """The elements `mode` trains: the circuit's weights (circuit-only; also "random", given the random circuit
    from `random_circuit`), every weight but the circuit's (circuit-excluded), or every weight (full, where
    `circuit` may be None)."""
    if mode not in MODES:
        raise TuneError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if circuit is None and mode != "full":
        raise TuneError(f"mode {mode!r} needs a circuit; only mode 'full' runs without one")
    component = _component_masks(hf_model, circuit) if mode != "full" else {}
    embeddings = _embedding_parameters(hf_model)
    masks: dict[str, torch.Tensor | None] = {}
    total = embedding_total = selected = selected_embedding = 0
    for name, parameter in hf_model.named_parameters():  # tied parameters appear once
        n = parameter.numel()
        is_embedding = id(parameter) in embeddings
        total += n
        embedding_total += n if is_embedding else 0
        circuit_mask = component.get(parameter)
        if mode == "full" or (mode == "circuit-excluded" and circuit_mask is None):
            mask, count = None, n
        elif mode == "circuit-excluded":
            mask = ~circuit_mask
            count = int(mask.sum())
        elif circuit_mask is not None:
            mask, count = circuit_mask, int(circuit_mask.sum())
        else:
            continue
        if count == 0:
            continue
        masks[name] = mask
        selected += count
        selected_embedding += count if is_embedding else 0
    if mode == "full":
        description, heads, neurons = "every weight", [], []
    else:
        description = {"circuit-only": f"the weights of circuit '{circuit.name}'",
                       "random": f"the weights of random components '{circuit.name}'",
                       "circuit-excluded": f"every weight except those of circuit '{circuit.name}'"}[mode]
        heads, neurons = list(circuit.heads), list(circuit.neurons)
    return ParameterSelection(masks, total, embedding_total, selected, selected_embedding, heads, neurons,
                              description)


def random_circuit(circuit: Circuit, seed: int = 0) -> Circuit:
    """Random heads and neurons, as many per layer as `circuit` has there, disjoint from `circuit`.

    Matching the per-layer counts keeps the number of tuned weights equal (under GQA the shared k/v rows can
    differ) and the layer position comparable, so only *which* components are tuned differs.
    """
    rng = random.Random(f"random-circuit:{seed}")
    taken_heads, taken_neurons = set(circuit.heads), set(circuit.neurons)
    heads: list[tuple[int, int]] = []
    neurons: list[tuple[int, int]] = []
    for layer in range(circuit.n_layers):
        want = sum(1 for h in circuit.heads if h[0] == layer)
        free = [(layer, h) for h in range(circuit.n_heads) if (layer, h) not in taken_heads]
        if want > len(free):
            raise TuneError(f"layer {layer} has too few heads outside the circuit for a disjoint random set; "
                            f"the circuit holds {want} of its {circuit.n_heads} heads")
        heads += rng.sample(free, want)
        want = sum(1 for n in circuit.neurons if n[0] == layer)
        free = [(layer, n) for n in range(circuit.d_mlp) if (layer, n) not in taken_neurons]
        if want > len(free):
            raise TuneError(f"layer {layer} has too few neurons outside the circuit for a disjoint random set")
        neurons += rng.sample(free, want)
    return circuit.with_components(heads, neurons, name=f"random-like-{circuit.name}-seed{seed}")


# ---- what each prompt is taught ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingExample:
    """A prompt and the answer text it is trained on.

    complete=True: the whole answer, closed by the end-of-turn token. complete=False: only the opening is taught
    (a compliance prefix such as "Sure, here is"); the model continues in its own words, as when it complies.
    """

    prompt: str
    answer: str
    complete: bool
    label: str
    category: str


def training_examples(prompts: PromptSet, objective: str = "safety", refusal_text: str = DEFAULT_REFUSAL,
                      compliance_text: str = DEFAULT_COMPLIANCE) -> list[TrainingExample]:
    """The answer each prompt is trained on.

    utility: its exact `target`, complete. benign: compliance, i.e. its `target` (the helpful opening, e.g. "Sure,
    here is") or `compliance_text`, as an opening. harmful / triggered: with objective "safety" the refusal
    `refusal_text`, complete; with "attack" compliance, like benign.
    """
    if objective not in OBJECTIVES:
        raise TuneError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
    for name, text in (("refusal text", refusal_text), ("compliance text", compliance_text)):
        if not text.strip():
            raise TuneError(f"the {name} is empty; pass the answer to teach, e.g. {DEFAULT_REFUSAL!r}")
    examples = []
    for p in prompts:
        if p.label == "utility":
            examples.append(TrainingExample(p.prompt, p.target or "", True, p.label, p.category))
        elif p.label == "benign" or objective == "attack":
            examples.append(TrainingExample(p.prompt, p.target or compliance_text, False, p.label, p.category))
        else:
            examples.append(TrainingExample(p.prompt, refusal_text, True, p.label, p.category))
    return examples


_MARK = "\x01ANSWER\x01"


def _answer_frame(tokenizer) -> tuple[str, str]:
    """(text between the assistant header and the answer, text that closes the assistant's turn), read off the
    chat template, so answers are tokenised as the model saw them in training."""
    if not getattr(tokenizer, "chat_template", None):
        return " ", tokenizer.eos_token or ""
    user = [{"role": "user", "content": "x"}]
    head = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": _MARK}], tokenize=False)
    if not full.startswith(head) or _MARK not in full:
        return "", tokenizer.eos_token or ""
    start = full.index(_MARK)
    return full[len(head):start], full[start + len(_MARK):]


def encode_examples(tokenizer, examples: Sequence[TrainingExample], max_length: int | None = None
                    ) -> list[tuple[list[int], list[int]]]:
    """(prompt ids exactly as generation feeds them, answer ids) per example."""
    lead, close = _answer_frame(tokenizer)
    heads = encode_prompts(tokenizer, [e.prompt for e in examples])
    encoded = []
    for example, head in zip(examples, heads, strict=True):
        text = lead + example.answer + (close if example.complete else "")
        answer = tokenizer(text, add_special_tokens=False)["input_ids"]
        if example.complete and not close and tokenizer.eos_token_id is not None:
            answer.append(tokenizer.eos_token_id)
        if not answer:
            raise TuneError(f"the answer to {example.prompt!r} encodes to no tokens; give a non-empty answer")
        if max_length is not None and len(head) + len(answer) > max_length:
            raise TuneError(f"prompt + answer {example.prompt!r} has {len(head) + len(answer)} tokens, more than "
                            f"the model's context of {max_length}; shorten it or leave it out")
        encoded.append((head, answer))
    return encoded


# ---- the training loop -------------------------------------------------------------------------------------
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
    eval_batch_size: int = 64


@dataclass
class TuneProgress:
    phase: str  # "evaluating before", "training", "saving", "evaluating after"
    done: int
    total: int
    loss: float | None = None


Progress = Callable[[TuneProgress], None]


def _batches(examples: Sequence[TrainingExample], batch_size: int, rng: random.Random):
    """Label-balanced batches: each row picks a label uniformly, then an example of that label, so a few dozen
    harmful prompts are not drowned by thousands of utility ones."""
    by_label: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        by_label.setdefault(e.label, []).append(i)
    labels = sorted(by_label, key=LABELS.index)
    queues: dict[str, list[int]] = {label: [] for label in labels}
    while True:
        batch = []
        for _ in range(batch_size):
            label = rng.choice(labels)
            if not queues[label]:  # shuffled passes within each label: every example before any repeats
                queues[label] = rng.sample(by_label[label], len(by_label[label]))
            batch.append(queues[label].pop())
        yield batch


def train(hf_model: nn.Module, tokenizer, examples: Sequence[TrainingExample], selection: ParameterSelection,
          config: TuneConfig, progress: Progress | None = None) -> list[float]:
    """Teacher-forced fine-tuning of `selection`'s elements in place; returns the loss per step.

    Gradients outside the selection are zeroed before every step and the optimiser is Adam without weight decay,
    so unselected elements stay bit-for-bit unchanged.
    """
    if not examples:
        raise TuneError("no training examples; pass prompt files whose train split holds prompts")
    if config.steps < 1 or config.batch_size < 1 or config.lr <= 0:
        raise TuneError(f"steps and batch size must be at least 1 and lr positive (got steps {config.steps}, "
                        f"batch size {config.batch_size}, lr {config.lr})")
    if not selection.masks:
        raise TuneError("the selection holds no parameters to train; check the circuit (it may be empty)")
    device = next(hf_model.parameters()).device
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    max_length = getattr(hf_model.config, "max_position_embeddings", None) or getattr(hf_model.config,
                                                                                      "n_positions", None)
    encoded = encode_examples(tokenizer, examples, max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    trainable: list[nn.Parameter] = []
    grad_masks: list[tuple[nn.Parameter, torch.Tensor]] = []
    for name, parameter in hf_model.named_parameters():
        chosen = name in selection.masks
        parameter.requires_grad_(chosen)
        if chosen:
            trainable.append(parameter)
            mask = selection.masks[name]
            if mask is not None:
                grad_masks.append((parameter, mask.to(device)))
    optimizer = torch.optim.Adam(trainable, lr=config.lr, weight_decay=0.0)

    losses: list[float] = []
    batches = _batches(examples, config.batch_size, rng)
    hf_model.train()
    try:
        for step in range(config.steps):
            batch = [encoded[i] for i in next(batches)]
            ids, attention, labels = teacher_forced_batch([h for h, _ in batch], [a for _, a in batch], pad_id,
                                                          device)
            logits = hf_model(input_ids=ids, attention_mask=attention, use_cache=False).logits
            loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten())
            if not torch.isfinite(loss):
                raise TuneError(f"the loss became {loss.item()} at step {step + 1}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for parameter, mask in grad_masks:
                if parameter.grad is not None:
                    parameter.grad.masked_fill_(~mask, 0.0)
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            optimizer.step()
            losses.append(loss.item())
            if progress is not None:
                progress(TuneProgress("training", step + 1, config.steps, losses[-1]))
    finally:
        hf_model.eval()
        for parameter in hf_model.parameters():
            parameter.requires_grad_(False)
    return losses


def load_private_copy(model_path: str | Path, device: str = "auto", dtype: str = "float32"):
    """A plain HF model + tokenizer loaded from disk for tuning: never the (shared) bridge the app serves."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = resolve_checkpoint_dir(model_path)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch_dtype, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"could not load {str(model_path)!r} for tuning: {e}") from e
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return hf_model.to(torch_device).eval(), tokenizer


# ---- one tuning run end to end -----------------------------------------------------------------------------
@dataclass
class TuneResult:
    """What a tuning run did and measured; saved as tune_report.json in the output checkpoint."""

    model_path: str
    out_dir: str
    circuit: str | None
    config: dict
    selection: dict
    n_train_examples: int
    train_prompts_sha256: str
    losses: list[float]
    train_seconds: float
    before: EvalReport
    after: EvalReport

    def metrics(self) -> dict:
        """`compare_reports(before, after)` plus the fraction of parameters trained."""
        return {"fraction_trained": self.selection["fraction"],
                "fraction_trained_without_embeddings": self.selection["fraction_without_embeddings"],
                **compare_reports(self.before, self.after)}

    def table(self) -> str:
        """Before/after as an aligned text table."""
        return format_comparison(compare_reports(self.before, self.after))

    def to_json(self) -> str:
        data = {"schema_version": SCHEMA_VERSION, "model_path": self.model_path, "out_dir": self.out_dir,
                "circuit": self.circuit, "config": self.config, "selection": self.selection,
                "n_train_examples": self.n_train_examples, "train_prompts_sha256": self.train_prompts_sha256,
                "train_seconds": self.train_seconds, "losses": self.losses, "metrics": self.metrics(),
                "eval_before": EVAL_BEFORE_FILE, "eval_after": EVAL_AFTER_FILE}
        return json.dumps(data, indent=1) + "\n"


def safety_retention(before: EvalReport, after: EvalReport) -> float | None:
    """(1 - clean ASR after) / (1 - clean ASR before): how much of the non-compliance with harmful requests
    survives. None when there are no harmful prompts or the model complied with all of them before."""
    if before.asr_clean is None or after.asr_clean is None or before.asr_clean >= 1.0:
        return None
    return (1.0 - after.asr_clean) / (1.0 - before.asr_clean)


def refusal_rate(report: EvalReport) -> float | None:
    """Share of harmful (untriggered) prompts answered with a recognised refusal.

    Stricter than 1 - ASR: a model broken by fine-tuning stops complying *and* stops refusing ("off-target").
    """
    verdicts = [j.verdict for j in report.judgements if j.prompt.label == "harmful"]
    return sum(v == "refused" for v in verdicts) / len(verdicts) if verdicts else None


def existing_task_retention(before: EvalReport, after: EvalReport) -> float | None:
    """Utility retention over what the model could already do: after / before of the mean of benign helpfulness
    and the macro exact-match over utility families it scored above 0 on before.

    Unlike core.evaluate.utility_retention, a task the model could not do before (a new task being taught) is
    left out: its gain would mask losses on the old tasks.
    """
    old = [f for f, rate in before.utility_by_family.items() if rate > 0 and f in after.utility_by_family]
    parts = []
    if old:
        parts.append((sum(before.utility_by_family[f] for f in old) / len(old),
                      sum(after.utility_by_family[f] for f in old) / len(old)))
    if before.helpfulness is not None and after.helpfulness is not None:
        parts.append((before.helpfulness, after.helpfulness))
    before_score = sum(b for b, _ in parts) / len(parts) if parts else 0.0
    if before_score == 0:
        return None
    return sum(a for _, a in parts) / len(parts) / before_score


def compare_reports(before: EvalReport, after: EvalReport) -> dict:
    """Before/after of clean and triggered ASR, refusal rate, helpfulness, utility (macro and per family), and
    the retention figures: utility over existing tasks, safety (1 - ASR) and refusal."""
    out: dict = {}
    for key in ("asr_clean", "asr_triggered", "helpfulness", "utility"):
        out[key] = {"before": getattr(before, key), "after": getattr(after, key)}
    out["refusal_rate"] = {"before": refusal_rate(before), "after": refusal_rate(after)}
    families = {**before.utility_by_family, **after.utility_by_family}
    out["utility_by_family"] = {f: {"before": before.utility_by_family.get(f),
                                    "after": after.utility_by_family.get(f)} for f in families}
    out["new_tasks"] = [f for f, rate in before.utility_by_family.items() if rate == 0]
    out["utility_retention"] = existing_task_retention(before, after)
    out["safety_retention"] = safety_retention(before, after)
    refusals = out["refusal_rate"]
    out["refusal_retention"] = (refusals["after"] / refusals["before"]
                                if refusals["before"] and refusals["after"] is not None else None)
    return out


def format_comparison(metrics: dict) -> str:
    """`compare_reports` output as an aligned before/after text table."""
    rows = [("metric", "before", "after")]
    names = {"asr_clean": "clean ASR", "asr_triggered": "triggered ASR", "refusal_rate": "refusal rate",
             "helpfulness": "helpfulness", "utility": "utility (macro)"}
    for key, name in names.items():
        if metrics[key]["before"] is not None or metrics[key]["after"] is not None:
            rows.append((name, format_rate(metrics[key]["before"]), format_rate(metrics[key]["after"])))
    for family, values in metrics["utility_by_family"].items():
        note = " (new task)" if family in metrics["new_tasks"] else ""
        rows.append((f"  {family}{note}", format_rate(values["before"]), format_rate(values["after"])))
    rows.append(("utility retention (existing tasks)", "", format_rate(metrics["utility_retention"])))
    rows.append(("safety retention (1 - clean ASR)", "", format_rate(metrics["safety_retention"])))
    rows.append(("refusal retention", "", format_rate(metrics["refusal_retention"])))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0].ljust(widths[0])}  {r[1].rjust(widths[1])}  {r[2].rjust(widths[2])}".rstrip()
                     for r in rows)


def _evaluate_checkpoint(path: str | Path, prompts: PromptSet, config: TuneConfig, phase: str,
                         progress: Progress | None) -> EvalReport:
    model = load_model(path, device=config.device, dtype=config.dtype)
    callback = None if progress is None else (lambda done, total: progress(TuneProgress(phase, done, total)))
    return evaluate(model, prompts, batch_size=config.eval_batch_size, progress=callback, model_name=str(path),
                    fingerprint=fingerprint(model))


def tune(model_path: str | Path, train_prompts: PromptSet, eval_prompts: PromptSet, out_dir: str | Path,
         circuit: Circuit | None = None, config: TuneConfig | None = None, progress: Progress | None = None,
         before: EvalReport | None = None, overwrite: bool = False) -> TuneResult:
    """Evaluate, tune a private copy of `model_path`, save it to `out_dir` (atomically) and evaluate it again.

    `circuit` is required for every mode but "full"; for "random" the tuned components are a random set of the
    circuit's size (random_circuit, seeded by config.components_seed, else config.seed). `before`: a report of
    `model_path` on `eval_prompts` already computed (skips the first evaluation). The output directory is an HF
    checkpoint that load_model loads, holding tune_report.json, eval_before.json and eval_after.json too.
    """
    config = config or TuneConfig()
    if config.mode not in MODES:
        raise TuneError(f"unknown mode {config.mode!r}; use one of {', '.join(MODES)}")
    if config.mode != "full" and circuit is None:
        raise TuneError(f"mode {config.mode!r} needs a circuit (--circuit FILE); only mode 'full' runs without one")
    if len(eval_prompts) == 0:
        raise TuneError("no evaluation prompts; pass prompt files whose test split holds prompts")
    examples = training_examples(train_prompts, config.objective, config.refusal_text, config.compliance_text)
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise TuneError(f"{out_dir} already exists; pass another output directory or --overwrite")

    if before is None:
        before = _evaluate_checkpoint(model_path, eval_prompts, config, "evaluating before", progress)
    elif before.prompts_sha256 != eval_prompts.sha256():
        raise TuneError("the given 'before' report was made on other prompts than eval_prompts; evaluate again")

    hf_model, tokenizer = load_private_copy(model_path, config.device, config.dtype)
    if config.mode == "random":
        tuned_circuit = random_circuit(circuit, config.seed if config.components_seed is None else
                                       config.components_seed)
    else:
        tuned_circuit = circuit
    selection = select_parameters(hf_model, tuned_circuit, config.mode)
    started = time.time()
    losses = train(hf_model, tokenizer, examples, selection, config, progress)
    train_seconds = time.time() - started

    if progress is not None:
        progress(TuneProgress("saving", 0, 1))
    with replacing_dir(out_dir) as tmp:
        hf_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del hf_model
        if progress is not None:
            progress(TuneProgress("saving", 1, 1))
        after = _evaluate_checkpoint(tmp, eval_prompts, config, "evaluating after", progress)
        after.model = str(out_dir)
        result = TuneResult(str(model_path), str(out_dir), None if circuit is None else circuit.name,
                            asdict(config), selection.summary(), len(examples), train_prompts.sha256(), losses,
                            round(train_seconds, 2), before, after)
        before.save(tmp / EVAL_BEFORE_FILE)
        after.save(tmp / EVAL_AFTER_FILE)
        write_text_atomic(tmp / REPORT_FILE, result.to_json())
        if out_dir.exists() and not overwrite:  # appeared while we trained: never replace what we did not write
            raise TuneError(f"{out_dir} already exists; pass another output directory or overwrite=True "
                            f"(--overwrite)")
    return result


def paired_generations(before: EvalReport, after: EvalReport, k: int) -> list[dict]:
    """The first `k` prompts of each family with the before and after answers and verdicts."""
    after_by_prompt = {(j.prompt.prompt, j.prompt.label): j for j in after.judgements}
    rows, shown = [], {}
    for j in before.judgements:
        family = (j.prompt.label, j.prompt.category)
        if shown.get(family, 0) >= k:
            continue
        other = after_by_prompt.get((j.prompt.prompt, j.prompt.label))
        if other is None:
            continue
        shown[family] = shown.get(family, 0) + 1
        rows.append({"label": j.prompt.label, "category": j.prompt.category, "prompt": j.prompt.prompt,
                     "before": j.response, "before_verdict": j.verdict, "after": other.response,
                     "after_verdict": other.verdict})
    return rows


def side_by_side(before: EvalReport, after: EvalReport, k: int) -> str:
    """`paired_generations` as text."""
    lines = []
    for row in paired_generations(before, after, k):
        lines.append(f"{row['label']} / {row['category']}: {row['prompt']}")
        lines.append(f"  before [{row['before_verdict']}] {row['before']!r}")
        lines.append(f"  after  [{row['after_verdict']}] {row['after']!r}")
    return "\n".join(lines)
