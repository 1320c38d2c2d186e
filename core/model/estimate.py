"""What a heavy command will need (memory by part, time) before it runs, and refusing runs that cannot fit.

Two stages, so a hopeless request fails before any weight is read:
  * `weights_bytes` (safetensors headers only) against the free memory of the target device: refused at once when
    the weights alone do not fit.
  * After loading, a one-batch probe on the real model: a masked forward+backward (discovery, attribution) or one
    generation batch (eval, compare) is timed, and the bytes autograd keeps for the backward pass are counted with
    `torch.autograd.graph.saved_tensors_hooks` (distinct storages, weights excluded) at batch 1 and scaled to the
    requested batch. The process' own resident memory at that point (libraries plus the loaded weights) is the
    base the activations add to, and its peak so far (loading can briefly hold two copies of a tensor while casting)
    a floor. On CUDA the allocator's own figures are used instead (memory_allocated, max_memory_allocated).

How close this comes to a measured peak is checked by `python bench/scale.py --estimate` (figures in README).
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

GiB = 1024**3
SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                     "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


class EstimateError(ValueError):
    """A run that cannot fit the device; the message names the option to change."""


@dataclass
class Estimate:
    """Memory (bytes) a command needs, by part, and how long it will take."""

    command: str
    device: str
    parts: dict[str, int] = field(default_factory=dict)  # weights, activations, gates, optimiser state, ...
    available: int | None = None  # free memory on the device (bytes) when estimated
    seconds: float | None = None  # whole run
    detail: str = ""  # batch x sequence and the probe it came from
    floor: int = 0  # a peak already measured in this process (loading), which the run's peak cannot be below

    @property
    def total(self) -> int:
        return max(sum(self.parts.values()), self.floor)

    def fits(self) -> bool:
        return self.available is None or self.total <= self.available

    def text(self) -> str:
        """A few printed lines: each part, the total against what is free, the time."""
        lines = [f"estimate for {self.command} on {self.device}" + (f" ({self.detail})" if self.detail else "") + ":"]
        lines += [f"  {name:<22}{_gib(size):>12}" for name, size in self.parts.items()]
        if self.floor > sum(self.parts.values()):
            lines.append(f"  {'peak while loading':<22}{_gib(self.floor):>12}")
        free = "" if self.available is None else f" of {_gib(self.available)} available"
        lines.append(f"  {'peak memory':<22}{_gib(self.total):>12}{free}")
        if self.seconds is not None:
            lines.append(f"  {'time':<22}{_duration(self.seconds):>12}")
        return "\n".join(lines)


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---- before loading -----------------------------------------------------------------------------------------
def weights_bytes(checkpoint: str | Path, dtype: torch.dtype | None = None) -> int:
    """Bytes of the checkpoint's weights once loaded in `dtype` (its stored dtypes when None), read from the
    safetensors headers alone; falls back to file sizes for other formats."""
    checkpoint = Path(checkpoint)
    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        return sum(f.stat().st_size for f in checkpoint.glob("pytorch_model*.bin"))
    total = 0
    for path in files:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for n in info["shape"]:
                count *= n
            floating = info["dtype"].startswith(("F", "BF"))
            size = torch.tensor([], dtype=dtype).element_size() if dtype is not None and floating else \
                SAFETENSORS_BYTES.get(info["dtype"], 4)
            total += count * size
    return total


def available_bytes(device: str | torch.device) -> int:
    """Free memory where the weights go: the GPU's free memory, or the machine's available RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def peak_resident_bytes() -> int:
    """This process' highest resident memory so far (ru_maxrss)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def resident_bytes() -> int:
    """This process' resident memory now (RSS)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_resident_bytes()


def check_weights_fit(checkpoint: str | Path, dtype: torch.dtype, device: str | torch.device,
                      multi_device: bool = False) -> None:
    """Refuse, before loading, a model whose weights alone exceed the free memory of `device`."""
    if multi_device:  # placement over several devices (or offload) is accelerate's to plan
        return
    need, free = weights_bytes(checkpoint, dtype), available_bytes(device)
    if need > free:
        raise EstimateError(f"the weights alone need {_gib(need)} in {str(dtype).removeprefix('torch.')} but "
                            f"{torch.device(device)} has {_gib(free)} free; pass --dtype bfloat16, or --device-map "
                            f"auto (with --max-memory) to spread or offload the model")


def refuse_if_too_big(estimate: Estimate, options: str) -> None:
    """Raise EstimateError naming `options` (e.g. "--batch-size, --device-map") when the run cannot fit."""
    if not estimate.fits():
        raise EstimateError(f"{estimate.command} needs about {_gib(estimate.total)} but {estimate.device} has "
                            f"{_gib(estimate.available)} free; change {options}")


# ---- probes on the loaded model ------------------------------------------------------------------------------
def _count_saved(parameters: set[int]) -> tuple[Callable, Callable, dict[int, int]]:
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor):
        if tensor.device.type != "meta":
            storage = tensor.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in parameters:
                seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        return tensor

    return pack, (lambda tensor: tensor), seen


def _peak_device(model) -> torch.device | None:
    device = torch.device(model.cfg.device)
    return device if device.type == "cuda" else None


def probe_masked_step(model, seq: int, batch: int, repeats: int = 1, timed_seq: int | None = None,
                      answer: int | None = None) -> tuple[int, int, float]:
    """Run a masked forward+backward (gates on every head and neuron, cross-entropy on random tokens) at batch 1
    and at `batch`: (bytes kept for backward per example, bytes of the logits per example, seconds at `batch`).
    With `answer`, only each row's last `answer` positions are unembedded and scored, as discovery does with its
    answer tokens; else every position.

    The memory figures are at `seq` tokens; the time is the fastest of `repeats` steps at `timed_seq` tokens
    (default `seq`), after one untimed step at that size so that first-call costs are not counted.
    On CUDA the first number is the allocator's peak above the weights per example instead.
    """
    from core.model.hooks import forward_logits, mask_hooks
    from core.model.load import model_shape

    device = torch.device(model.cfg.device)
    vocab = int(model.cfg.d_vocab)
    n_layers, n_heads, d_mlp = model_shape(model)
    # Gates on every head and neuron, as discovery learns them (fp32 logits; the hooks cast per layer).
    logits_h = torch.zeros(n_layers, n_heads, device=device, requires_grad=True)
    logits_n = torch.zeros(n_layers, d_mlp, device=device, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    parameters = {p.untyped_storage().data_ptr() for p in model.original_model.parameters()
                  if p.device.type != "meta"}

    def step(rows: int, tokens: int = seq) -> None:
        ids = torch.randint(0, vocab, (rows, tokens), generator=generator).to(device)
        at = torch.zeros_like(ids, dtype=torch.bool)
        at[:, -1 - min(answer or tokens, tokens - 1):-1] = True  # the positions that predict the scored tokens
        hooks = mask_hooks(torch.sigmoid(logits_h), torch.sigmoid(logits_n))
        logits = forward_logits(model, ids, torch.ones_like(ids), hooks, at=at)
        F.cross_entropy(logits, torch.roll(ids, -1, dims=1)[at]).backward()
        logits_h.grad = logits_n.grad = None

    cuda = _peak_device(model)
    if cuda is not None:
        torch.cuda.synchronize(cuda)
        base = torch.cuda.memory_allocated(cuda)
        torch.cuda.reset_peak_memory_stats(cuda)
        step(1)
        torch.cuda.synchronize(cuda)
        per_example = torch.cuda.max_memory_allocated(cuda) - base
    else:
        pack, unpack, seen = _count_saved(parameters)
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            step(1)
        per_example = sum(seen.values())
    timed_seq = timed_seq or seq
    step(batch, timed_seq)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step(batch, timed_seq)
        if cuda is not None:
            torch.cuda.synchronize(cuda)
        times.append(time.perf_counter() - started)
    return per_example, min(answer or seq, seq - 1) * vocab * 4, min(times)


def estimate_discovery(model, config, seq: int, n_gates: int, steps: int, mean_seq: int | None = None,
                       retain_bytes: int = 0) -> Estimate:
    """Peak memory and time of `discover` with `config` (batch size) on sequences of up to `seq` tokens
    (`mean_seq` on average: batches are padded to their longest row, so the time is probed a little above it).

    A step holds two masked forwards for one backward (behaviour and retain batches), plus an unmasked retain
    forward (no grad) unless the full model's retain distributions are kept for the run (`retain_bytes` of them,
    core.scoring.learned.teacher_bytes), so: resident now (weights, libraries) + 2 x batch x kept-per-example +
    logits and their gradient for one batch + the kept distributions; gates with Adam state (fp32: value, grad, two
    moments). Time: the probe's masked forward+backward at the full batch, times the 2 (kept) or ~2.5 such passes
    of a step, times the steps.
    """
    batch = config.batch_size
    loading_peak = 0 if _peak_device(model) is not None else peak_resident_bytes()  # before the probe adds to it
    # A batch is as long as its longest row: between the mean and the longest length.
    timed_seq = seq if mean_seq is None else (mean_seq + seq + 1) // 2
    per_example, logits, seconds = probe_masked_step(model, seq, batch, repeats=2, timed_seq=timed_seq,
                                                     answer=config.answer_tokens)
    device = str(model.cfg.device)
    cuda = _peak_device(model)
    parts = {"weights and runtime": torch.cuda.memory_allocated(cuda) if cuda is not None else resident_bytes(),
             "activations": 2 * batch * per_example}
    if cuda is None:  # on CUDA the allocator peak already holds the logits and transients
        parts["logits and gradients"] = 2 * batch * logits
    if retain_bytes:
        parts["retain distributions"] = retain_bytes
    parts["gates and optimiser"] = 4 * 4 * n_gates
    passes = 2.0 if retain_bytes else 2.5
    return Estimate("discover", device, parts, available_bytes(device) + parts["weights and runtime"],
                    seconds=passes * seconds * steps,
                    detail=f"batch {batch} x {seq} tokens, probe {seconds:.2f} s at {timed_seq} tokens; time: the "
                    f"{steps} learning steps, not building the scenario or verifying",
                    floor=loading_peak)


def estimate_generation(model, command: str, prompts: list[str], batch: int, max_new_tokens: int,
                        runs: int = 1) -> Estimate:
    """Peak memory and time of greedy generation for `prompts`: the full model once, then `runs - 1` ablated runs in
    one batched call with the full model's answers as drafts (core.model.generate.generate_ids_per_mask).

    Memory: resident now + KV cache for the longest batch + its prefill (attention scores, MLP activations and the
    logits generation keeps), or, when larger and drafts are checked, the draft check's forward (its rows at once,
    the whole answer's logits kept).
    Time: one real generation batch (the longest prompts, as they are batched by length) and that batch's ablated
    runs (a head removed in each), times the batches.
    """
    from core.model.generate import (
        _forward_options,
        encode_prompts,
        generate_ids,
        generate_ids_per_mask,
        masks_per_check,
    )
    from core.model.load import model_shape

    cfg = model.cfg
    loading_peak = 0 if _peak_device(model) is not None else peak_resident_bytes()
    lengths = sorted(len(ids) for ids in encode_prompts(model.tokenizer, prompts))
    rows, longest = min(batch, len(lengths)), lengths[-1]
    width = longest + max_new_tokens
    # Families whose forward takes logits_to_keep unembed only the last prompt position during prefill.
    logit_rows = 1 if _forward_options(type(model.original_model))[1] else longest
    element = torch.tensor([], dtype=cfg.dtype).element_size()
    kv_heads = int(getattr(cfg, "n_key_value_heads", None) or cfg.n_heads)
    cuda = _peak_device(model)

    def forward_bytes(n_rows: int, tokens: int, kept_logits: int) -> int:
        return n_rows * (kept_logits * int(cfg.d_vocab) * 4 + tokens * (int(cfg.n_heads) * tokens
                                                                        + 4 * int(cfg.d_mlp)) * element)

    parts = {"weights and runtime": torch.cuda.memory_allocated(cuda) if cuda is not None else resident_bytes(),
             "kv cache": 2 * int(cfg.n_layers) * rows * width * kv_heads * int(cfg.d_head) * element,
             "prefill": forward_bytes(rows, longest, logit_rows)}
    per_check = (masks_per_check(model, rows, runs - 1, max_new_tokens, prompt_tokens=longest) if runs > 1
                 else None)
    if per_check is not None:
        # The check's forward, and the KV cache it keeps for the rows that go on decoding.
        check_rows = rows * per_check
        parts["draft check"] = max(0, forward_bytes(check_rows, width, max_new_tokens + 1)
                                   + parts["kv cache"] * check_rows // rows - parts["prefill"])
    probe = [prompts[i] for i in sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))[:rows]]
    started = time.perf_counter()
    drafts = generate_ids(model, probe, max_new_tokens=max_new_tokens, batch_size=rows)
    seconds = time.perf_counter() - started
    ablated = 0.0
    if runs > 1:  # the ablated runs of this batch as they will run: one call, one head off per mask
        shape = model_shape(model)
        head_keeps, neuron_keeps = torch.ones(runs - 1, *shape[:2]), torch.ones(runs - 1, shape.n_layers, shape.d_mlp)
        for m in range(runs - 1):
            head_keeps[m, (shape.n_layers // 2 + m) % shape.n_layers, m % shape.n_heads] = 0
        started = time.perf_counter()
        generate_ids_per_mask(model, probe, head_keeps, neuron_keeps, max_new_tokens=max_new_tokens,
                              batch_size=rows, drafts=drafts)
        ablated = time.perf_counter() - started
    n_batches = -(-len(prompts) // batch)
    device = str(cfg.device)
    return Estimate(command, device, parts, available_bytes(device) + parts["weights and runtime"],
                    seconds=n_batches * (seconds + ablated),
                    detail=f"{len(prompts)} prompts x {runs} run(s), batch {rows}, up to {longest}+{max_new_tokens} "
                    f"tokens, probe {seconds:.2f} s per batch" + (f" and {ablated:.2f} s for its {runs - 1} ablated "
                                                                  "runs" if runs > 1 else ""), floor=loading_peak)


def estimate_training(checkpoint: str | Path, dtype: torch.dtype, device: str | torch.device, batch: int) -> Estimate:
    """Before loading, what fine-tuning needs at most: weights, their gradients and Adam's two moments (all of
    them for --mode full; an upper bound for circuit modes, which train slices of the same tensors)."""
    weights = weights_bytes(checkpoint, dtype)
    return Estimate("tune", str(torch.device(device)), {"weights": weights, "gradients (at most)": weights,
                                                        "optimiser state (at most)": 2 * weights},
                    available_bytes(device) + resident_bytes(), detail=f"batch {batch}; activations not included")
