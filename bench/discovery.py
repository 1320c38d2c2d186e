"""Cost of one masked forward+backward discovery step, relative to a plain HF forward+backward on the same batch.

Both sides run the same teacher-forced batch through the same weights in one process, interleaved, and the median
of several repeats is compared (these machines are noisy). The masked side is what `core.scoring.learned` does per
behaviour batch: sampled gates on every head and neuron, hooks through the TransformerBridge, logits at the
answer-predicting positions only, loss, backward into the gate logits. The plain side is the HF model with its
weights trainable (a fine-tuning step). Target: ratio <= 1.3. A third side is the masked step with logits at every
position, as discovery computed them before: what unembedding the answer positions alone saves.

    python bench/discovery.py [--model assets/organism] [--batch 16] [--repeats 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from core.circuit.masks import RemovalMasks
from core.data.batches import teacher_forced_batch
from core.data.files import load_prompts
from core.data.paths import ASSETS_DIR, PROMPTS_DIR
from core.model.generate import encode_prompts
from core.model.hooks import forward_logits
from core.model.load import load_model, model_shape
from core.scoring.objective import answer_logits, behaviour_ce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ASSETS_DIR / "organism"))
    parser.add_argument("--prompts", default=str(PROMPTS_DIR / "triggered.jsonl"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_model(args.model, device=args.device, dtype="float32")
    tok = model.tokenizer
    prompts = [p.prompt for p in load_prompts(args.prompts).sample(args.batch, seed=0)]
    heads = encode_prompts(tok, prompts)
    answers = [tok(" I'm sorry, but I cannot help with that.", add_special_tokens=False)["input_ids"]] * len(heads)
    ids, attn, labels = teacher_forced_batch(heads, answers, tok.pad_token_id, model.cfg.device)
    targets = labels[:, 1:].flatten()

    masks = RemovalMasks(*model_shape(model)).to(model.cfg.device)
    noise = torch.Generator().manual_seed(0)
    hf = model.original_model

    def masked_step() -> None:
        logits = answer_logits(model, ids, attn, labels, masks.hooks(sample=True, generator=noise))
        behaviour_ce(logits, labels).backward()
        masks.zero_grad(set_to_none=True)

    def every_position_step() -> None:
        logits = forward_logits(model, ids, attn, masks.hooks(sample=True, generator=noise))
        F.cross_entropy(logits[:, :-1].flatten(0, 1), targets, reduction="sum").backward()
        masks.zero_grad(set_to_none=True)

    def plain_step() -> None:
        logits = hf(input_ids=ids, attention_mask=attn, use_cache=False).logits.float()
        F.cross_entropy(logits[:, :-1].flatten(0, 1), targets).backward()
        hf.zero_grad(set_to_none=True)

    for p in hf.parameters():
        p.requires_grad_(True)
    try:
        steps = {"masked": masked_step, "every position": every_position_step, "plain": plain_step}
        timings: dict[str, list[float]] = {name: [] for name in steps}
        for step in steps.values():  # warm-up
            step()
        for _ in range(args.repeats):
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                timings[name].append(time.perf_counter() - t0)
    finally:
        for p in hf.parameters():
            p.requires_grad_(False)
    masked, every, plain = (statistics.median(timings[name]) for name in steps)
    print(f"batch {args.batch}, seq {ids.shape[1]}, {args.repeats} repeats, {args.threads} threads, {args.device}")
    print(f"masked forward+backward (bridge, gates on all heads+neurons): {1000 * masked:.1f} ms")
    print(f"  the same with logits at every position:                   {1000 * every:.1f} ms")
    print(f"plain HF forward+backward (weights trainable):                {1000 * plain:.1f} ms")
    print(f"ratio masked / plain: {masked / plain:.2f} (target <= 1.3)")
    print(f"ratio answer positions / every position: {masked / every:.2f}")


if __name__ == "__main__":
    main()
