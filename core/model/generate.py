"""Batched, cached, greedy generation through the bridge (with per-call hooks)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import torch
from transformer_lens.model_bridge import TransformerBridge
from transformers import DynamicCache

from core.model.hooks import Hooks, example_mask_hooks, hooked, model_lock

StopWhen = Callable[[list[int]], bool]
Progress = Callable[[int, int], None]


def format_chat(tokenizer, prompt: str) -> str:
    """The prompt as one user turn in the tokenizer's chat template, ready for the assistant's answer.

    Tokenizers without a chat template get the prompt back unchanged.
    """
    if not getattr(tokenizer, "chat_template", None):
        return prompt
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def encode_prompts(tokenizer, prompts: Sequence[str], chat: bool = True) -> list[list[int]]:
    """Token ids of each prompt, exactly as `generate` feeds them to the model.

    With chat=True and a chat template, each prompt becomes one user turn plus the assistant header; that text
    already holds its special tokens (BOS included), so the tokenizer must not add them again. Raw prompts
    (chat=False, or no template) get the tokenizer's usual special tokens.
    """
    if not prompts:
        return []
    templated = chat and bool(getattr(tokenizer, "chat_template", None))
    if templated:
        conversations = [[{"role": "user", "content": prompt}] for prompt in prompts]
        texts = tokenizer.apply_chat_template(conversations, tokenize=False, add_generation_prompt=True)
    else:
        texts = list(prompts)
    return tokenizer(texts, add_special_tokens=not templated)["input_ids"]


def encode_prompt(tokenizer, prompt: str, chat: bool = True) -> list[int]:
    """Token ids of one prompt, as `generate` feeds it (see encode_prompts)."""
    return encode_prompts(tokenizer, [prompt], chat)[0]


def _stop_token_ids(model: TransformerBridge) -> set[int]:
    # The generation config's eos ids (chat models list end-of-turn there) plus the tokenizer's.
    stop_ids: set[int] = set()
    configured = getattr(getattr(model.original_model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        stop_ids.add(configured)
    elif configured:
        stop_ids.update(int(token) for token in configured)
    if model.tokenizer.eos_token_id is not None:
        stop_ids.add(int(model.tokenizer.eos_token_id))
    return stop_ids


@functools.cache
def _forward_options(hf_model_class: type) -> tuple[str, bool]:
    # transformers 5.x renamed `past_key_values` to `cache` (the old name warns, and goes in 5.40).
    parameters = inspect.signature(hf_model_class.forward).parameters
    cache_kwarg = "cache" if "cache" in parameters else "past_key_values"
    return cache_kwarg, "logits_to_keep" in parameters


def _validate(prompts: Sequence[str], max_new_tokens: int, batch_size: int) -> None:
    if isinstance(prompts, str) or not all(isinstance(prompt, str) for prompt in prompts):
        raise TypeError("prompts must be a list of strings; wrap a single prompt as [prompt]")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def _greedy_batch(
    model: TransformerBridge,
    prompt_ids: list[list[int]],
    max_new_tokens: int,
    stop_ids: set[int],
    stop_when: StopWhen | None,
) -> list[list[int]]:
    """Greedy-decode one left-padded batch with a KV cache; new tokens per row, cut before the stop token."""
    hf_model = model.original_model
    device = torch.device(model.cfg.device)
    cache_kwarg, can_keep_last_logits = _forward_options(type(hf_model))
    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), model.tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    # Positions count real tokens only, as HF generate derives them for left padding.
    position_ids = (attention_mask.cumsum(-1) - 1).masked_fill_(attention_mask == 0, 1)
    forward_kwargs = {cache_kwarg: DynamicCache(config=hf_model.config), "use_cache": True}
    if can_keep_last_logits:
        forward_kwargs["logits_to_keep"] = 1  # skip the unembedding of every prompt position

    generated: list[list[int]] = [[] for _ in prompt_ids]
    finished = [False] * len(prompt_ids)
    logits = model(
        input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        return_type="logits",
        **forward_kwargs,
    )
    for step in range(max_new_tokens):
        next_tokens = logits[:, -1, :].argmax(dim=-1)
        for row, token in enumerate(next_tokens.tolist()):
            if finished[row]:
                continue
            if token in stop_ids:
                finished[row] = True
                continue
            generated[row].append(token)
            if stop_when is not None and stop_when(generated[row]):
                finished[row] = True
        if all(finished) or step == max_new_tokens - 1:
            break
        # Finished rows keep decoding (their tokens are ignored) so the batch shape and cache stay aligned.
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(prompt_ids), 1))], dim=-1)
        position_ids = position_ids[:, -1:] + 1
        logits = model(
            next_tokens[:, None],
            attention_mask=attention_mask,
            position_ids=position_ids,
            return_type="logits",
            **forward_kwargs,
        )
    return generated


def _plan(model: TransformerBridge, prompts: Sequence[str], max_new_tokens: int, batch_size: int, chat: bool
          ) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids per prompt and the batches (lists of prompt indices, by token length: less padding)."""
    encoded = encode_prompts(model.tokenizer, prompts, chat)
    context = int(model.cfg.n_ctx)
    for index, ids in enumerate(encoded):
        if not ids:
            raise ValueError(f"prompt {index} encodes to no tokens; pass a non-empty prompt (or chat=True)")
        if len(ids) + max_new_tokens > context:
            raise ValueError(
                f"prompt {index} has {len(ids)} tokens, which with max_new_tokens={max_new_tokens} exceeds "
                f"the model's context of {context} tokens; shorten the prompt or lower max_new_tokens"
            )
    order = sorted(range(len(prompts)), key=lambda index: len(encoded[index]))
    return encoded, [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def generate_ids(
    model: TransformerBridge,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 32,
    hooks: Hooks = (),
    batch_size: int = 32,
    chat: bool = True,
    stop_when: StopWhen | None = None,
    progress: Progress | None = None,
) -> list[list[int]]:
    """Greedy new-token ids per prompt (cut before the first eos), with `hooks` active on every forward.

    Prompts are batched by token length (less padding), left-padded and decoded with a KV cache; results come
    back in input order. `stop_when(ids)` can end a row early (its last token is kept). `progress(done,
    total)` is called after each batch. The hooks are installed only for this call, under the model's lock.
    """
    _validate(prompts, max_new_tokens, batch_size)
    if not prompts:
        return []
    encoded, batches = _plan(model, prompts, max_new_tokens, batch_size, chat)
    stop_ids = _stop_token_ids(model)
    results: list[list[int]] = [[] for _ in prompts]
    done = 0
    with hooked(model, hooks), torch.inference_mode():
        for batch in batches:
            outputs = _greedy_batch(model, [encoded[i] for i in batch], max_new_tokens, stop_ids, stop_when)
            for index, ids in zip(batch, outputs, strict=True):
                results[index] = ids
            done += len(batch)
            if progress is not None:
                progress(done, len(prompts))
    return results


def generate_ids_per_mask(
    model: TransformerBridge,
    prompts: Sequence[str],
    head_keeps: torch.Tensor,
    neuron_keeps: torch.Tensor,
    *,
    max_new_tokens: int = 32,
    batch_size: int = 32,
    chat: bool = True,
    max_rows: int = 1024,
) -> list[list[list[int]]]:
    """Greedy new-token ids of the same `prompts` under each of M zero-ablation masks, sharing forward passes.

    `head_keeps` [M, n_layers, n_heads] and `neuron_keeps` [M, n_layers, d_mlp] (1 = keep); returns ids[m][i].
    The prompts are batched exactly as `generate_ids(prompts, batch_size=batch_size)` batches them (same
    length-sorted batches, same left padding), and each such batch runs for many masks at once, one mask per row
    (`example_mask_hooks`), at most `max_rows` rows a forward. So ids[m] equals `generate_ids` with
    `mask_hooks(head_keeps[m], neuron_keeps[m])`, and the work of M masks costs about one wider batch.
    """
    if head_keeps.dim() != 3 or neuron_keeps.dim() != 3 or head_keeps.shape[0] != neuron_keeps.shape[0]:
        raise ValueError(f"masks need shapes [M, n_layers, n_heads] and [M, n_layers, d_mlp] with the same M, got "
                         f"{tuple(head_keeps.shape)} and {tuple(neuron_keeps.shape)}")
    n_masks = head_keeps.shape[0]
    _validate(prompts, max_new_tokens, batch_size)
    if not prompts or n_masks == 0:
        return [[[] for _ in prompts] for _ in range(n_masks)]
    encoded, batches = _plan(model, prompts, max_new_tokens, batch_size, chat)
    stop_ids = _stop_token_ids(model)
    results: list[list[list[int]]] = [[[] for _ in prompts] for _ in range(n_masks)]
    with model_lock(model), torch.inference_mode():
        for batch in batches:
            per_forward = max(1, max_rows // len(batch))
            for first in range(0, n_masks, per_forward):
                masks = range(first, min(first + per_forward, n_masks))
                rows = torch.tensor([m for m in masks for _ in batch])
                hooks = example_mask_hooks(head_keeps[rows], neuron_keeps[rows])
                with hooked(model, hooks):
                    outputs = _greedy_batch(model, [encoded[i] for _ in masks for i in batch], max_new_tokens,
                                            stop_ids, None)
                for row, ids in enumerate(outputs):
                    results[masks[row // len(batch)]][batch[row % len(batch)]] = ids
    return results


def generate(model: TransformerBridge, prompts: Sequence[str], **options) -> list[str]:
    """Greedy answers to `prompts`, special tokens skipped and whitespace stripped; `options` (max_new_tokens, hooks,
    batch_size, chat, stop_when, progress) as for generate_ids."""
    return decode(model, generate_ids(model, prompts, **options))


def decode(model: TransformerBridge, ids: list[list[int]]) -> list[str]:
    """Generated ids as answers: special tokens skipped, whitespace stripped."""
    return [text.strip() for text in model.tokenizer.batch_decode(ids, skip_special_tokens=True)]
