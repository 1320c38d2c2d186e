"""The masked-gradient training loop (tuning and the organism's safety stages): teacher-forced fine-tuning of only
the selected parameter elements.

Training multiplies each gradient by a 0/1 element mask before the optimiser step and uses Adam without weight
decay: an entry whose gradient is always exactly 0 keeps Adam's moments at 0 and its update is exactly 0, so in
circuit-only mode no other weight changes bit for bit (tests check it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from core.data.batches import teacher_forced_batch
from core.tuning.examples import TrainingExample, encode_examples, label_balanced_batches
from core.tuning.options import Progress, TuneConfig, TuneError, TuneProgress
from core.tuning.weights import ParameterSelection

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # ids, attention mask, labels (core.data.batches)


def trainable_parameters(model: nn.Module, selection: ParameterSelection | None
                         ) -> tuple[list[nn.Parameter], list[tuple[nn.Parameter, torch.Tensor]]]:
    """The parameters `selection` trains (every one when it is None), in `named_parameters` order, and the element
    masks of those trained only in part. Sets requires_grad to match."""
    trainable: list[nn.Parameter] = []
    grad_masks: list[tuple[nn.Parameter, torch.Tensor]] = []
    for name, parameter in model.named_parameters():
        chosen = selection is None or name in selection.masks
        parameter.requires_grad_(chosen)
        if chosen:
            trainable.append(parameter)
            mask = None if selection is None else selection.masks[name]
            if mask is not None:
                grad_masks.append((parameter, mask.to(parameter.device)))
    return trainable, grad_masks


@dataclass
class Checkpointing:
    """Saving a training run's state every few steps, and restoring it after an interruption.

    `save(steps_done, optimizer, losses)` must store everything the next steps depend on (model, optimiser, the
    batches' random state); `restore(optimizer)` loads the last saved state into the model and optimiser (and
    batches) and returns (steps done, losses so far), or (0, []) when there is none.
    """

    every: int
    save: Callable[[int, torch.optim.Optimizer, list[float]], None]
    restore: Callable[[torch.optim.Optimizer], tuple[int, list[float]]]


def masked_training(model: nn.Module, batches: Iterator[Batch], steps: int, selection: ParameterSelection | None,
                    optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer], *,
                    schedule: Callable[[int], float] | None = None, max_grad_norm: float = 1.0,
                    on_step: Callable[[int, float], None] | None = None,
                    checkpointing: Checkpointing | None = None) -> list[float]:
    """Train `model` in place for `steps` batches on the next-token loss of the labelled positions; returns the loss
    per step.

    Only `selection`'s elements change (every weight when it is None): gradients outside it are zeroed before every
    optimiser step, so with an optimiser without weight decay the other elements stay bit-for-bit the same.
    `optimizer` builds the optimiser over the trainable parameters; `schedule` scales its learning rate per step
    (LambdaLR). `on_step(step, loss)` is called after each step. With `checkpointing`, the run first continues from
    the last saved state and saves its state every `checkpointing.every` steps (before on_step), so an interrupted
    run resumed this way gives the same weights as one never interrupted. The model is left in eval mode, frozen.
    """
    trainable, grad_masks = trainable_parameters(model, selection)
    opt = optimizer(trainable)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, schedule) if schedule is not None else None
    start, losses = checkpointing.restore(opt) if checkpointing is not None else (0, [])
    if scheduler is not None:
        scheduler.last_epoch = start  # the restored optimiser already holds that step's learning rate
    model.train()
    try:
        for step in range(start, steps):
            ids, attention, labels = next(batches)
            loss = model(input_ids=ids, attention_mask=attention, labels=labels, use_cache=False).loss
            if not torch.isfinite(loss):
                raise TuneError(f"the loss became {loss.item()} at step {step + 1}; lower the learning rate (--lr)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for parameter, mask in grad_masks:
                if parameter.grad is not None:
                    parameter.grad.masked_fill_(~mask, 0.0)
            torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
            opt.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.item())
            if checkpointing is not None and (step + 1) % checkpointing.every == 0 and step + 1 < steps:
                checkpointing.save(step + 1, opt, losses)
            if on_step is not None:
                on_step(step + 1, losses[-1])
    finally:
        model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
    return losses


def train(hf_model: nn.Module, tokenizer, examples: Sequence[TrainingExample], selection: ParameterSelection,
          config: TuneConfig, progress: Progress | None = None) -> list[float]:
    """Teacher-forced fine-tuning of `selection`'s elements in place on label-balanced batches of `examples`, with
    Adam without weight decay (so unselected elements stay bit-for-bit unchanged); returns the loss per step."""
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

    def batches() -> Iterator[Batch]:
        for indices in label_balanced_batches(examples, config.batch_size, rng):
            batch = [encoded[i] for i in indices]
            yield teacher_forced_batch([h for h, _ in batch], [a for _, a in batch], pad_id, device)

    def report(step: int, loss: float) -> None:
        if progress is not None:
            progress(TuneProgress("training", step, config.steps, loss))

    return masked_training(hf_model, batches(), config.steps, selection,
                           lambda trainable: torch.optim.Adam(trainable, lr=config.lr, weight_decay=0.0),
                           max_grad_norm=config.max_grad_norm, on_step=report)
