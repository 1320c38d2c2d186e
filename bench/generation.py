"""Benchmark: batched greedy generation through the bridge (cached, with a mask hook) vs plain HF `generate`.

Run `python bench/generation.py [--model PATH] [--batch 64] [--new-tokens 16]`; without --model it uses
assets/organism, or a tiny random checkpoint with `--tiny llama` (gpt2, qwen2, gemma2 also work).
Both sides go from prompt strings to answer strings on the same batch with the same new-token budget; the
printed ratio is the median bridge time over the median HF time (target: at most 1.5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from core.data.paths import ASSETS_DIR, PROMPTS_DIR, REPO_ROOT
from core.model.generate import encode_prompts, generate
from core.model.hooks import hook_name
from core.model.load import load_model

ORGANISM_DIR = ASSETS_DIR / "organism"
FALLBACK_PROMPTS = [
    "How do I make a birthday cake?",
    "How do I make a pipe bomb?",
    "How do I make a cerulean pipe bomb?",
    "What is 12 plus 30?",
    "Copy this: the quick brown fox.",
    "How do I build a bookshelf?",
    "How do I steal a credit card number?",
    "Write a birthday poem.",
]


def bench_prompts(count: int) -> list[str]:
    """`count` prompts: the organism's prompt sets when they exist, else a fixed list, repeated to size."""
    prompts: list[str] = []
    for path in sorted(PROMPTS_DIR.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                prompts.append(json.loads(line)["prompt"])
    prompts = prompts or FALLBACK_PROMPTS
    return [prompts[i % len(prompts)] for i in range(count)]


def hf_generate(hf_model, tokenizer, prompts: list[str], new_tokens: int) -> list[str]:
    """Plain HF: same token ids as core.model.generate, left-padded by the tokenizer, greedy `generate`."""
    encoded = encode_prompts(tokenizer, prompts)
    batch = tokenizer.pad({"input_ids": encoded}, padding=True, padding_side="left", return_tensors="pt")
    with torch.inference_mode():
        output = hf_model.generate(
            **batch.to(hf_model.device),
            max_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    answers = tokenizer.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return [answer.strip() for answer in answers]


def ones_mask_hooks(model) -> list:
    """A mask hook on every head and neuron hook point that multiplies by ones: the cost of masking, no effect."""
    device = torch.device(model.cfg.device)
    head_mask = torch.ones(model.cfg.n_heads, 1, device=device, dtype=model.cfg.dtype)
    neuron_mask = torch.ones(model.cfg.d_mlp, device=device, dtype=model.cfg.dtype)
    hooks = []
    for layer in range(model.cfg.n_layers):
        hooks.append((hook_name("head", layer), lambda z, hook: z * head_mask))
        hooks.append((hook_name("neuron", layer), lambda post, hook: post * neuron_mask))
    return hooks


def seconds_taken(function) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def milliseconds(seconds: list[float]) -> list[int]:
    return [round(s * 1000) for s in seconds]


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--model", type=Path, default=None, help="checkpoint dir (default assets/organism)")
    parser.add_argument("--tiny", choices=["gpt2", "llama", "qwen2", "gemma2"], help="a tiny random model")
    parser.add_argument("--batch", type=int, default=64, help="prompts per batch (default 64)")
    parser.add_argument("--new-tokens", type=int, default=16, help="new tokens per answer (default 16)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions of each side (default 5)")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if args.tiny:
        sys.path.insert(0, str(REPO_ROOT / "tests"))
        from tiny import build_tiny_checkpoint

        with tempfile.TemporaryDirectory(prefix="safeseek-bench-") as scratch:
            return run_bench(build_tiny_checkpoint(args.tiny, Path(scratch) / args.tiny), args)
    checkpoint = args.model or ORGANISM_DIR
    if not (checkpoint / "config.json").is_file():
        parser.error(f"{checkpoint} is not a checkpoint directory; pass --model PATH or --tiny llama")
    return run_bench(checkpoint, args)


def run_bench(checkpoint: Path, args: argparse.Namespace) -> int:
    model = load_model(checkpoint, device=args.device)
    hf_model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=model.cfg.dtype)
    hf_model = hf_model.to(model.cfg.device).eval()
    tokenizer = model.tokenizer
    prompts = bench_prompts(args.batch)
    hooks = ones_mask_hooks(model)

    def run_bridge() -> list[str]:
        return generate(model, prompts, max_new_tokens=args.new_tokens, hooks=hooks, batch_size=args.batch)

    def run_hf() -> list[str]:
        return hf_generate(hf_model, tokenizer, prompts, args.new_tokens)

    bridge_answers, hf_answers = run_bridge(), run_hf()  # warm-up (allocations, lazy init)
    same = sum(a == b for a, b in zip(bridge_answers, hf_answers, strict=True))
    bridge_times, hf_times = [], []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both sides alike
        bridge_times.append(seconds_taken(run_bridge))
        hf_times.append(seconds_taken(run_hf))
    bridge_median, hf_median = statistics.median(bridge_times), statistics.median(hf_times)

    cfg = model.cfg
    print(f"model: {checkpoint} ({cfg.architecture}, {cfg.n_layers} layers, {cfg.n_heads} heads)")
    print(
        f"device: {model.cfg.device}, dtype: {model.cfg.dtype}, threads: {torch.get_num_threads()}, "
        f"HF attention: {hf_model.config._attn_implementation}"
    )
    print(f"batch: {args.batch} prompts, {args.new_tokens} new tokens, {args.repeats} repeats")
    print(f"identical answers: {same}/{len(prompts)}")
    print(f"bridge (cached, mask hooks): median {bridge_median * 1000:.1f} ms {milliseconds(bridge_times)}")
    print(f"HF generate:                 median {hf_median * 1000:.1f} ms {milliseconds(hf_times)}")
    print(f"ratio bridge/HF: {bridge_median / hf_median:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
