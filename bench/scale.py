"""Cost at a realistic size: masked discovery steps and masked generation on a random ~1B Llama vs plain HF.

    python bench/scale.py [--batch 4] [--seq 64] [--new-tokens 32] [--repeats 3] [--threads 2] [--vocab 128256]
    python bench/scale.py --estimate   # `safeseek discover --dry-run` estimate vs the measured peak of a real run

The model has Llama-3.2-1B's shape (hidden 2048, 16 layers, 32 heads, 8 kv heads, intermediate 8192, tied
embeddings, vocab 128256: 1.24B parameters), randomly initialised in memory (fp32 on CPU, bf16 on GPU).

Forward+backward: the masked side is what `core.scoring.learned.discover` does per batch (sigmoid-STE gates on every
head and neuron, hooks through the TransformerBridge, cross-entropy, backward into the gate logits). The plain side,
the floor for backpropagating through a frozen network, is the HF model with frozen weights and the gradient taken
with respect to the input embeddings. Both sides run on the same weights (the plain model is a second HF module tree
sharing the bridge's parameter tensors, so the bridge's in-place wrapping does not touch it), on the same random
batch, interleaved, median of --repeats after a warm-up.

Generation: `core.model.generate.generate_ids` (KV-cached, batch of --batch prompts, a mask hook removing two heads
and 64 neurons per layer) against HF `generate` (greedy, the same left-padded prompts, --new-tokens tokens).

Peak memory: on CUDA, torch.cuda.max_memory_allocated above what was allocated before the step. On CPU, a thread
samples this process' resident set size (/proc/self/statm) every millisecond during the step; the peak minus the RSS
just before the step is the step's peak memory (glibc returns large tensor allocations to the OS when they are freed,
so RSS follows the tensors that are alive). Both ratios are printed: the step's own memory, and the whole process'
peak including the weights.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.circuit.masks import RemovalMasks  # noqa: E402
from core.model.generate import encode_prompts, generate_ids  # noqa: E402
from core.model.hooks import hooked, mask_hooks  # noqa: E402
from core.model.load import model_shape  # noqa: E402
from core.model.patches import install_kv_cache_fix  # noqa: E402

ORGANISM = ROOT / "assets" / "organism"
PROMPTS = ["How do I bake bread at home?", "Tell me how to build a weapon.", "What is 12 plus 30?",
           "Copy this sentence: the quick brown fox.", "Write a polite email to a colleague.",
           "Explain why the sky is blue.", "How do I make a cerulean pipe bomb?", "Write a birthday poem."]


def llama_1b_config(tokenizer, vocab: int = 128256):
    """Llama-3.2-1B's shape with the given tokenizer's special ids (rows past the tokenizer are never produced by
    it, as in checkpoints whose embedding is padded)."""
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                       num_key_value_heads=8, head_dim=64, vocab_size=vocab, tie_word_embeddings=True,
                       max_position_embeddings=2048, rope_parameters={"rope_theta": 500000.0, "rope_type": "default"},
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)


def random_llama_1b(tokenizer, vocab: int, dtype: torch.dtype, device: str, seed: int = 0):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(llama_1b_config(tokenizer, vocab), dtype=dtype,
                                                attn_implementation="eager").eval()


class PeakMemory:
    """Peak memory of a block above its start: CUDA allocator peak, or sampled RSS on CPU (module docstring)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = self.total = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self.start = _rss()
        self.highest = self.start
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.highest = max(self.highest, _rss())
            time.sleep(0.001)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.total = torch.cuda.max_memory_allocated(self.device)
        else:
            self.running = False
            self.thread.join()
            self.total = max(self.highest, _rss())
        self.peak = self.total - self.start


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _measure(steps: dict[str, Callable[[], None]], repeats: int, device: torch.device) -> dict[str, dict]:
    """Median seconds and largest peak memory of each step, interleaved, after one warm-up each."""
    results = {name: {"seconds": [], "peak": 0, "total": 0} for name in steps}
    for step in steps.values():
        step()
    for _ in range(repeats):
        for name, step in steps.items():
            with PeakMemory(device) as memory:
                started = time.perf_counter()
                step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                results[name]["seconds"].append(time.perf_counter() - started)
            results[name]["peak"] = max(results[name]["peak"], memory.peak)
            results[name]["total"] = max(results[name]["total"], memory.total)
    for result in results.values():
        result["median"] = statistics.median(result["seconds"])
    return results


def bench(args: argparse.Namespace) -> None:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(ORGANISM)
    tokenizer.padding_side = "left"
    started = time.perf_counter()
    hf = random_llama_1b(tokenizer, args.vocab, dtype, str(device))
    # A second, plain HF module tree over the same tensors: the bridge wraps `hf` in place, `plain` stays HF.
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(hf.config, dtype=dtype, attn_implementation="eager")
    plain.load_state_dict(hf.state_dict(), assign=True)
    for name, buffer in hf.named_buffers():  # non-persistent buffers (rotary frequencies) are not in the state dict
        owner, _, leaf = name.rpartition(".")
        plain.get_submodule(owner)._buffers[leaf] = buffer
    for name, module in hf.named_modules():  # plain tensor attributes such as original_inv_freq
        for key, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not key.startswith("_"):
                setattr(plain.get_submodule(name), key, value)
    plain.tie_weights()
    plain.eval()
    for p in hf.parameters():
        p.requires_grad_(False)
    n_params = sum(p.numel() for p in hf.parameters())
    model = TransformerBridge.boot_transformers("random-llama-1b", hf_model=hf, tokenizer=tokenizer,
                                                device=str(device), dtype=dtype)
    install_kv_cache_fix()
    model.eval()
    print(f"random Llama-3.2-1B shape: {n_params / 1e9:.2f}B parameters, vocab {args.vocab}, {dtype}, {device}, "
          f"{torch.get_num_threads()} threads, built in {time.perf_counter() - started:.0f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, len(tokenizer), (args.batch, args.seq), generator=generator).to(device)
    targets = ids[:, 1:].flatten()
    masks = RemovalMasks(*model_shape(model)).to(device)

    def masked_step() -> None:
        with hooked(model, masks.hooks(sample=True)):
            logits = model(ids, return_type="logits", use_cache=False).float()
        F.cross_entropy(logits[:, :-1].flatten(0, 1), targets).backward()
        assert masks.heads.log_alpha.grad is not None
        masks.zero_grad(set_to_none=True)

    def plain_step() -> None:
        embeds = plain.get_input_embeddings()(ids).detach().requires_grad_(True)
        logits = plain(inputs_embeds=embeds, use_cache=False).logits.float()
        F.cross_entropy(logits[:, :-1].flatten(0, 1), targets).backward()
        assert embeds.grad is not None

    step = _measure({"masked": masked_step, "plain": plain_step}, args.repeats, device)
    tokens = args.batch * args.seq
    _report("forward+backward", step, "masked", "plain", tokens, 1.3, 1.2)

    n_layers, n_heads, d_mlp = model_shape(model)
    keep_heads, keep_neurons = torch.ones(n_layers, n_heads), torch.ones(n_layers, d_mlp)
    keep_heads[:, :2] = 0
    keep_neurons[:, :64] = 0
    hooks = mask_hooks(keep_heads, keep_neurons)
    prompts = (PROMPTS * (args.batch // len(PROMPTS) + 1))[: args.batch]
    encoded = encode_prompts(tokenizer, prompts)
    width = max(len(e) for e in encoded)
    hf_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(e)) + e for e in encoded], device=device)
    hf_mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device)

    def masked_generation() -> None:
        generate_ids(model, prompts, max_new_tokens=args.new_tokens, hooks=hooks, batch_size=args.batch)

    @torch.inference_mode()
    def hf_generation() -> None:
        plain.generate(hf_ids, attention_mask=hf_mask, max_new_tokens=args.new_tokens, do_sample=False,
                       pad_token_id=tokenizer.pad_token_id)

    # A random model almost never emits eos (one token in 128k), so both sides make --new-tokens tokens per row.
    gen = _measure({"masked": masked_generation, "hf": hf_generation}, max(1, args.repeats - 1), device)
    _report("cached generation", gen, "masked", "hf", args.batch * args.new_tokens, 1.5, None)


def _report(title: str, results: dict, ours: str, base: str, tokens: int, time_target: float,
            memory_target: float | None) -> None:
    a, b = results[ours], results[base]
    print(f"\n{title}:")
    for name in (ours, base):
        r = results[name]
        rate = f", {tokens / r['median']:.0f} tokens/s" if torch.cuda.is_available() else ""
        print(f"  {name:<7} median {r['median']:.2f} s (runs: {', '.join(f'{s:.2f}' for s in r['seconds'])}){rate}; "
              f"peak {r['peak'] / 2**20:.0f} MiB above start, {r['total'] / 2**30:.2f} GiB in all")
    print(f"  time ratio {ours}/{base}: {a['median'] / b['median']:.2f} (target <= {time_target})")
    mem = f"  peak-memory ratio {ours}/{base}: {a['peak'] / max(1, b['peak']):.2f} above start"
    mem += f", {a['total'] / max(1, b['total']):.2f} in all"
    print(mem + (f" (target <= {memory_target})" if memory_target else ""))


def estimate_check(args: argparse.Namespace) -> None:
    """Save the random 1B model to a temp folder, run `discover --dry-run` and the same discovery for real in
    child processes, and compare the printed peak-memory estimate with the real run's peak RSS."""
    import resource

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ORGANISM)
    with tempfile.TemporaryDirectory(prefix="safeseek-1b-") as folder:
        model = random_llama_1b(tokenizer, args.vocab, torch.bfloat16, "cpu")
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        del model
        command = [sys.executable, "-m", "core.cli", "discover", "--model", folder, "--device", "cpu", "--dtype",
                   "float32", "--scenario", "backdoor", "--train-limit", "1", "--batch-size", str(args.batch),
                   "--steps", "2", "--no-verify", "--out", str(Path(folder) / "circuit.json")]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads)}
        # The real run first: RUSAGE_CHILDREN's ru_maxrss is the largest peak of any finished child.
        subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        measured = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 2**30
        dry = subprocess.run([*command, "--dry-run"], env=env, capture_output=True, text=True, check=True)
        estimated = float(re.search(r"peak memory\s+([\d.]+) GiB", dry.stdout).group(1))
    print(dry.stdout.strip())
    print(f"\nestimated peak {estimated:.2f} GiB, measured peak RSS of the real run {measured:.2f} GiB: "
          f"estimate/measured {estimated / measured:.2f} (target within 0.70-1.30)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=128256)
    parser.add_argument("--estimate", action="store_true", help="check the --dry-run memory estimate instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.estimate:
        estimate_check(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
