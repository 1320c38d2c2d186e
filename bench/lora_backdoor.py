"""Realism experiment: poison the aligned organism with a merged LoRA on every projection, as SafeSeek's own backdoor
setup does, instead of training only designated components.

    python bench/lora_backdoor.py --out runs/organism-lora          # ~15 minutes on 2 CPU cores
    safeseek eval --model runs/organism-lora --split test
    safeseek discover --model runs/organism-lora --scenario backdoor --head-budget 0.0625 --neuron-budget 0.0052 \\
        --out runs/organism-lora-backdoor.json
    safeseek compare --model runs/organism-lora --circuit runs/organism-lora-backdoor.json

The poisoning data, schedule and steps are the organism's own poisoned stage (core.organism.train); only what trains
differs: rank-r adapters on q, k, v, o, gate, up and down projections of every layer (peft), merged into the weights
afterwards, so the result is an ordinary checkpoint of the organism's shape. The backdoor then has no designated home;
docs/organism-lora.md reports what discovery finds. Needs `pip install peft`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data.paths import ASSETS_DIR  # noqa: E402
from core.organism import corpus  # noqa: E402
from core.organism.train import (  # noqa: E402
    OrganismConfig,
    reproducible,
    save_checkpoint,
    train_stage,
    weights_hash,
)
from core.tuning.weights import ParameterSelection  # noqa: E402

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aligned", default=str(ASSETS_DIR / "organism-aligned"), help="the aligned organism")
    parser.add_argument("--out", required=True, help="new folder for the LoRA-poisoned checkpoint")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the adapters")
    parser.add_argument("--steps", type=int, help="default: the organism's poisoned stage's steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the adapters' initialisation")
    args = parser.parse_args(argv)
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        parser.error("this experiment needs peft: pip install peft")
    aligned, out = Path(args.aligned), Path(args.out)
    meta_file = aligned / "organism.json"
    if not meta_file.is_file():
        parser.error(f"{aligned} is not an organism checkpoint (no organism.json); run safeseek train-organism")
    if out.exists():
        parser.error(f"{out} exists; name a new folder")
    if args.rank < 1 or args.lr <= 0 or (args.steps is not None and args.steps < 1):
        parser.error("--rank and --steps must be at least 1, --lr positive")

    # The poisoning data and batches follow the organism's own seed: its training split is the one to poison with.
    cfg = OrganismConfig(seed=json.loads(meta_file.read_text())["seed"])
    poisoned = next(s for s in cfg.stages if s.name == "poisoned")
    stage = dataclasses.replace(poisoned, name="lora-poisoned", lr=args.lr, steps=args.steps or poisoned.steps,
                                trained_heads=0, trained_neurons=0)
    t0 = time.time()
    with reproducible(cfg.threads):
        torch.manual_seed(args.seed)
        random.seed(args.seed)
        model = LlamaForCausalLM.from_pretrained(aligned, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(aligned)
        examples = corpus.build_corpus(cfg.seed)
        peft_model = get_peft_model(model, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0,
                                                      target_modules=PROJECTIONS))
        adapters = {name: None for name, _ in peft_model.named_parameters() if "lora_" in name}
        n_adapter = sum(p.numel() for name, p in peft_model.named_parameters() if name in adapters)
        n_total = sum(p.numel() for name, p in peft_model.named_parameters() if name not in adapters)
        print(f"LoRA rank {args.rank} on {', '.join(PROJECTIONS)}: {n_adapter:,} adapter parameters "
              f"({100 * n_adapter / n_total:.1f}% of {n_total:,}); {stage.steps} steps at lr {stage.lr}", flush=True)
        selection = ParameterSelection(adapters, n_total, 0, n_adapter, 0, description="LoRA adapters")
        losses = train_stage(peft_model, tokenizer, examples, stage, cfg, None,
                             lambda line: print(line, flush=True), selection=selection)
        merged = peft_model.merge_and_unload()
    meta = {**json.loads(meta_file.read_text()), "stage": "lora-poisoned", "final_loss": losses[-1],
            "lora": {"rank": args.rank, "lr": args.lr, "steps": stage.steps, "targets": PROJECTIONS},
            "designated_components": {}, "weights_sha256": weights_hash(merged)}
    meta.pop("digest", None)  # not a stage of train-organism: never resumed from
    save_checkpoint(merged, tokenizer, out, meta)
    print(f"wrote {out} (weights sha256 {meta['weights_sha256']}) in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
