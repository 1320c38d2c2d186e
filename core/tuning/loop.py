"""The masked-gradient training loop: teacher-forced fine-tuning of only the selected parameter elements.

Training multiplies each gradient by a 0/1 element mask before the optimiser step and uses Adam without weight
decay: an entry whose gradient is always exactly 0 keeps Adam's moments at 0 and its update is exactly 0, so in
circuit-only mode no other weight changes bit for bit (tests check it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from core.data.batches import teacher_forced_batch
from core.tuning.examples import TrainingExample, encode_examples, label_balanced_batches
from core.tuning.options import Progress, TuneConfig, TuneError, TuneProgress
from core.tuning.weights import ParameterSelection


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
    batches = label_balanced_batches(examples, config.batch_size, rng)
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
