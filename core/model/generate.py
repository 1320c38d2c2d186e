"""Batched, cached, greedy generation through the bridge (with per-call hooks)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformer_lens.model_bridge import TransformerBridge
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from core.model.hooks import Hooks, RowMasks, has_per_row_hooks, hooked, model_lock

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
    rows: RowMasks | None = None,
    drop_finished: bool = True,
) -> list[list[int]]:
    """Greedy-decode one left-padded batch with a KV cache; new tokens per row, cut before the stop token."""
    input_ids, attention_mask, position_ids = left_padded(model, prompt_ids)
    cache = DynamicCache(config=model.original_model.config)
    logits = model(input_ids, attention_mask=attention_mask, position_ids=position_ids, return_type="logits",
                   **_cache_options(model, cache, keep_logits=1))
    generated: list[list[int]] = [[] for _ in prompt_ids]
    state = _Decoding(cache, attention_mask, position_ids[:, -1:] + 1, logits[:, -1, :].argmax(dim=-1),
                      list(range(len(prompt_ids))))
    _decode(model, state, generated, [max_new_tokens] * len(prompt_ids), stop_ids, stop_when, rows, drop_finished,
            record_first=True)
    return generated


def _cache_options(model: TransformerBridge, cache: DynamicCache, keep_logits: int | None = None) -> dict:
    """Forward keywords for a cached forward (the cache under the name this transformers version reads), keeping
    only the last `keep_logits` positions' logits where the model can (skips unembedding the rest)."""
    cache_kwarg, can_keep_last_logits = _forward_options(type(model.original_model))
    options = {cache_kwarg: cache, "use_cache": True}
    if keep_logits is not None and can_keep_last_logits:
        options["logits_to_keep"] = keep_logits
    return options


@dataclass
class _Decoding:
    """Rows in the middle of greedy decoding: the KV cache of what they have read, and the token each reads next."""

    cache: DynamicCache
    attention_mask: torch.Tensor  # [rows, cached positions]: 1 where a cached position belongs to the row's text
    position_ids: torch.Tensor  # [rows, 1]: the position of each row's next token
    next_tokens: torch.Tensor  # [rows]
    live: list[int]  # the index into `generated` of each row


def _decode(model: TransformerBridge, state: _Decoding, generated: list[list[int]], limits: list[int],
            stop_ids: set[int], stop_when: StopWhen | None, rows: RowMasks | None, drop_finished: bool,
            record_first: bool = False) -> None:
    """Decode `state`'s rows greedily until each has met a stop token, `stop_when` or its limit of new tokens,
    appending to `generated`. Its next tokens are already in `generated` unless `record_first` (a fresh prefill's
    first choices, which may be stop tokens).

    A row that has finished leaves the batch (its cache rows too, and its mask when `rows` holds per-row masks),
    so short answers such as refusals stop costing compute while the long ones go on. Hooks that index batch rows
    otherwise (core.model.hooks.per_row_hook) need drop_finished=False: every row then decodes to the end of the batch.
    """
    options = _cache_options(model, state.cache)
    attention_mask, position_ids, next_tokens, live = (state.attention_mask, state.position_ids, state.next_tokens,
                                                       state.live)
    finished = {index: len(generated[index]) >= limits[index] for index in live}
    if record_first:
        _record(next_tokens, live, generated, finished, limits, stop_ids, stop_when)
    while not all(finished[index] for index in live):
        # Without drop_finished, finished rows decode on (their tokens are ignored) so batch rows stay aligned.
        keep = [row for row, index in enumerate(live) if not finished[index]]
        if drop_finished and len(keep) < len(live):
            kept = torch.tensor(keep, device=next_tokens.device)
            next_tokens, attention_mask, position_ids = next_tokens[kept], attention_mask[kept], position_ids[kept]
            state.cache.batch_select_indices(kept)
            if rows is not None:
                rows.select(kept)
            live = [live[row] for row in keep]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(live), 1))], dim=-1)
        logits = model(next_tokens[:, None], attention_mask=attention_mask, position_ids=position_ids,
                       return_type="logits", **options)
        position_ids = position_ids + 1
        next_tokens = logits[:, -1, :].argmax(dim=-1)
        _record(next_tokens, live, generated, finished, limits, stop_ids, stop_when)


def _record(tokens: torch.Tensor, live: list[int], generated: list[list[int]], finished: dict[int, bool],
            limits: list[int], stop_ids: set[int], stop_when: StopWhen | None) -> None:
    """Append each unfinished row's greedy token to its answer; a stop token, stop_when or the limit finishes it."""
    for index, token in zip(live, tokens.tolist(), strict=True):
        if finished[index]:
            continue
        if token in stop_ids:
            finished[index] = True
            continue
        generated[index].append(token)
        if len(generated[index]) >= limits[index] or (stop_when is not None and stop_when(generated[index])):
            finished[index] = True


def left_padded(model: TransformerBridge, rows: list[list[int]]) -> tuple[torch.Tensor, ...]:
    """Input ids, attention mask and position ids of `rows` left-padded to one width, on the model's device."""
    device = torch.device(model.cfg.device)
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), model.tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    # Positions count real tokens only, as HF generate derives them for left padding.
    position_ids = (attention_mask.cumsum(-1) - 1).masked_fill_(attention_mask == 0, 1)
    return input_ids, attention_mask, position_ids


def _check_drafts(
    model: TransformerBridge,
    prompt_ids: list[list[int]],
    drafts: list[list[int]],
    max_new_tokens: int,
    stop_ids: set[int],
) -> tuple[list[list[int]], list[bool], _Decoding | None]:
    """Greedy answers of a batch whose answers are expected to be `drafts`, from one forward over prompt + draft.

    The logits at the draft's positions give the greedy token at every step at once; a row's answer is its draft
    up to the first step where the greedy token differs, plus that token (as speculative decoding checks a draft).
    Returns each row's answer so far, whether it is complete (a stop token, or max_new_tokens reached), and the
    incomplete rows ready to decode on: the forward's KV cache of their prompt and the part of the draft they kept
    (the draft positions after it are masked out), their last token to read next. That state is None where the
    cache cannot be reused so (sliding-window or other non-plain cache layers); an incomplete answer then continues
    from a new prefill of prompt + answer. An ablation that changes a few answers thus costs one parallel forward
    instead of a step-by-step decode for every answer.
    """
    sequences = [prompt + draft for prompt, draft in zip(prompt_ids, drafts, strict=True)]
    input_ids, attention_mask, position_ids = left_padded(model, sequences)
    keep = max(len(draft) for draft in drafts) + 1  # the rows end together (left padding): keep the last positions
    cache = DynamicCache(config=model.original_model.config)
    logits = model(input_ids, attention_mask=attention_mask, position_ids=position_ids, return_type="logits",
                   **_cache_options(model, cache, keep_logits=keep))
    greedy = logits[:, -keep:, :].argmax(dim=-1).tolist()
    answers, complete = [], []
    for row, draft in enumerate(drafts):
        answer, done = [], False
        for step, token in enumerate(greedy[row][keep - len(draft) - 1 :]):  # token = greedy choice at step
            if token in stop_ids:
                done = True
                break
            answer.append(token)
            if len(answer) == max_new_tokens:
                done = True
                break
            if step == len(draft) or token != draft[step]:
                break  # past the draft, or it went another way: later draft tokens say nothing
        answers.append(answer)
        complete.append(done)
    incomplete = [row for row, done in enumerate(complete) if not done]
    if not incomplete or not all(type(layer) is DynamicLayer for layer in cache.layers):
        return answers, complete, None
    width = input_ids.shape[1]
    rows = torch.tensor(incomplete, device=input_ids.device)
    cache.batch_select_indices(rows)
    attention_mask = attention_mask[rows].clone()
    next_positions = []
    for row_in_state, row in enumerate(incomplete):
        # The row's text fills the last len(sequence) columns; it keeps prompt + the draft tokens it agreed with.
        read = len(prompt_ids[row]) + len(answers[row]) - 1
        attention_mask[row_in_state, width - len(sequences[row]) + read :] = 0
        next_positions.append(read)
    position_ids = torch.tensor(next_positions, device=input_ids.device)[:, None]
    next_tokens = torch.tensor([answers[row][-1] for row in incomplete], device=input_ids.device)
    return answers, complete, _Decoding(cache, attention_mask, position_ids, next_tokens, incomplete)


def _merged(model: TransformerBridge, states: list[_Decoding]) -> _Decoding:
    """One decoding state of several (rows concatenated; shorter caches left-padded with masked-out positions)."""
    if len(states) == 1:
        return states[0]
    width = max(state.attention_mask.shape[1] for state in states)
    cache = DynamicCache(config=model.original_model.config)
    pads = [width - state.attention_mask.shape[1] for state in states]
    for layer in range(len(states[0].cache.layers)):
        # keys and values are [rows, kv heads, positions, d_head]: pad positions on the left
        keys, values = (torch.cat([F.pad(getattr(state.cache.layers[layer], part), (0, 0, pad, 0))
                                   for state, pad in zip(states, pads, strict=True)]) for part in ("keys", "values"))
        cache.update(keys, values, layer)
    return _Decoding(cache, torch.cat([F.pad(state.attention_mask, (pad, 0)) for state, pad in zip(states, pads,
                                                                                                 strict=True)]),
                     torch.cat([state.position_ids for state in states]),
                     torch.cat([state.next_tokens for state in states]),
                     [index for state in states for index in state.live])


def _plan(model: TransformerBridge, prompts: Sequence[str], max_new_tokens: int, batch_size: int, chat: bool,
          drafts: Sequence[list[int]] | None = None) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids per prompt and the batches (lists of prompt indices, by token length, drafts included: less
    padding)."""
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
    lengths = [len(ids) + (0 if drafts is None else min(len(drafts[index]), max_new_tokens))
               for index, ids in enumerate(encoded)]
    order = sorted(range(len(prompts)), key=lambda index: lengths[index])
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
            outputs = _greedy_batch(model, [encoded[i] for i in batch], max_new_tokens, stop_ids, stop_when,
                                    drop_finished=not has_per_row_hooks(hooks))
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
    drafts: Sequence[list[int]] | None = None,
    mask_drafts: Sequence[Sequence[list[int]] | None] | None = None,
    progress: Progress | None = None,
) -> list[list[list[int]]]:
    """Greedy new-token ids of the same `prompts` under each of M zero-ablation masks, sharing forward passes.

    `head_keeps` [M, n_layers, n_heads] and `neuron_keeps` [M, n_layers, d_mlp] (1 = keep); returns ids[m][i].
    The prompts are batched as `generate_ids(prompts, batch_size=batch_size)` batches them (length-sorted,
    left-padded), and each such batch runs for many masks at once, one mask per row (`example_mask_hooks`), at
    most `max_rows` rows a forward. So ids[m] equals `generate_ids` with `mask_hooks(head_keeps[m],
    neuron_keeps[m])`, and the work of M masks costs about one wider batch.

    `drafts` (one list of ids per prompt, e.g. the full model's answers from `generate_ids`) are the answers
    expected: each row first checks its draft in one forward (`_check_drafts`, `masks_per_check` masks a forward) and
    decodes step by step only from where the masked model goes another way. The ids are the same greedy answers;
    most ablations change few of them, so this saves most of the per-step cost of decoding every answer.
    `mask_drafts[m]`, where given, replaces `drafts` for mask m (e.g. the answers of a mask one component away,
    closer than the full model's); the batches are still planned from `drafts`, so they do not change with it.
    `progress(done, total)` is called after each batch of prompts (before the step-by-step part that rows leaving
    their drafts need).
    """
    if head_keeps.dim() != 3 or neuron_keeps.dim() != 3 or head_keeps.shape[0] != neuron_keeps.shape[0]:
        raise ValueError(f"masks need shapes [M, n_layers, n_heads] and [M, n_layers, d_mlp] with the same M, got "
                         f"{tuple(head_keeps.shape)} and {tuple(neuron_keeps.shape)}")
    n_masks = head_keeps.shape[0]
    _validate(prompts, max_new_tokens, batch_size)
    if drafts is not None and len(drafts) != len(prompts):
        raise ValueError(f"drafts must give one answer per prompt: {len(drafts)} drafts for {len(prompts)} prompts")
    if mask_drafts is not None and (drafts is None or len(mask_drafts) != n_masks
                                    or any(d is not None and len(d) != len(prompts) for d in mask_drafts)):
        raise ValueError("mask_drafts must give, next to drafts, one entry per mask: None or one answer per prompt")

    def draft(m: int, i: int) -> list[int]:
        chosen = mask_drafts[m] if mask_drafts is not None and mask_drafts[m] is not None else drafts
        return list(chosen[i])[:max_new_tokens]
    if not prompts or n_masks == 0:
        return [[[] for _ in prompts] for _ in range(n_masks)]
    encoded, batches = _plan(model, prompts, max_new_tokens, batch_size, chat, drafts)
    stop_ids = _stop_token_ids(model)
    results: list[list[list[int]]] = [[[] for _ in prompts] for _ in range(n_masks)]
    unfinished: list[tuple[int, int]] = []  # (mask, prompt) rows that left their draft before the end
    states: list[_Decoding] = []  # their KV caches from the draft checks, where those can be reused
    with model_lock(model), torch.inference_mode():
        for batches_done, batch in enumerate(batches, start=1):
            per_check = None if drafts is None else masks_per_check(
                model, len(batch), n_masks, max(len(draft(m, i)) for m in range(n_masks) for i in batch), max_rows,
                prompt_tokens=max(len(encoded[i]) for i in batch))
            check = per_check is not None
            per_forward = per_check if check else max(1, max_rows // len(batch))
            for first in range(0, n_masks, per_forward):
                rows = [(m, i) for m in range(first, min(first + per_forward, n_masks)) for i in batch]
                prompt_ids = [encoded[i] for _, i in rows]
                masks = _row_masks(head_keeps, neuron_keeps, rows)
                with hooked(model, masks.hooks()):
                    if check:
                        outputs, complete, state = _check_drafts(model, prompt_ids, [draft(m, i) for m, i in rows],
                                                                 max_new_tokens, stop_ids)
                        if state is not None:  # its rows now count from the first unfinished one of this call
                            state.live = [len(unfinished) + n for n in range(len(state.live))]
                            states.append(state)
                        unfinished += [row for row, done in zip(rows, complete, strict=True) if not done]
                    else:
                        outputs = _greedy_batch(model, prompt_ids, max_new_tokens, stop_ids, None, masks)
                for (m, i), ids in zip(rows, outputs, strict=True):
                    results[m][i] = ids
            if progress is not None:
                progress(batches_done, len(batches))
        if states:
            _decode_unfinished(model, states, unfinished, results, head_keeps, neuron_keeps, max_new_tokens,
                               stop_ids, max_rows)
            return results
        # Rows that left their drafts go on step by step from there, all batches' rows together (fewer steps to
        # pay for): the prompt plus the answer so far is a new prompt, with what remains of max_new_tokens.
        unfinished.sort(key=lambda row: len(encoded[row[1]]) + len(results[row[0]][row[1]]))
        for start in range(0, len(unfinished), max_rows):
            rows = unfinished[start : start + max_rows]
            masks = _row_masks(head_keeps, neuron_keeps, rows)
            with hooked(model, masks.hooks()):
                more = _greedy_batch(model, [encoded[i] + results[m][i] for m, i in rows],
                                     max_new_tokens - min(len(results[m][i]) for m, i in rows), stop_ids, None, masks)
            for (m, i), ids in zip(rows, more, strict=True):
                results[m][i] += ids[: max_new_tokens - len(results[m][i])]
    return results


def _decode_unfinished(model: TransformerBridge, states: list[_Decoding], unfinished: list[tuple[int, int]],
                       results: list[list[list[int]]], head_keeps: torch.Tensor, neuron_keeps: torch.Tensor,
                       max_new_tokens: int, stop_ids: set[int], max_rows: int) -> None:
    """Decode the rows that left their drafts on from the draft checks' caches, all checks' rows together (fewer
    steps to pay for), at most max_rows a batch; answers grow in place in `results`."""
    generated = [results[m][i] for m, i in unfinished]  # the same lists: decoding appends to results
    limits = [max_new_tokens] * len(unfinished)
    group: list[_Decoding] = []
    for position, state in enumerate(states):
        group.append(state)
        if position + 1 < len(states) and sum(len(s.live) for s in group) + len(states[position + 1].live) <= max_rows:
            continue
        merged = _merged(model, group)
        masks = _row_masks(head_keeps, neuron_keeps, [unfinished[index] for index in merged.live])
        with hooked(model, masks.hooks()):
            _decode(model, merged, generated, limits, stop_ids, None, masks, drop_finished=True)
        group = []


# On a CPU a forward runs slower per row once it is wide (its activations leave the caches) and a wide check pads
# rows of several masks' drafts to one width, so a check holds at most this many rows there: measured on the
# organism, checks of 64 rows a forward beat decoding step by step in 512-row batches by 5-15% (bench/ablations.py,
# full-model drafts) and by about a quarter for eight sessions' toggles (bench/sessions.py); 128-row checks gained
# less. Accelerators take as many rows as memory allows: they pay mostly per-step overhead, which a check removes.
CHECK_MAX_CPU_ROWS = 64
# A draft check keeps the logits of every draft position (fp32) and the KV cache of its rows: bound them as decoding
# bounds its rows.
CHECK_BYTES_BUDGET = 1 << 28


def masks_per_check(model: TransformerBridge, batch_rows: int, n_masks: int, draft_tokens: int,
                    max_rows: int = 1024, prompt_tokens: int = 0) -> int:
    """How many masks one draft-checking forward of a `batch_rows`-prompt batch holds: each mask adds the batch's
    rows, at most max_rows rows (CHECK_MAX_CPU_ROWS on a CPU) and their kept logits, draft_tokens + 1 positions a
    row, and KV cache, prompt_tokens + draft_tokens positions, within the budget; at least one."""
    if torch.device(model.cfg.device).type == "cpu":
        max_rows = min(max_rows, CHECK_MAX_CPU_ROWS)
    cfg = model.cfg
    kv_heads = int(getattr(cfg, "n_key_value_heads", None) or cfg.n_heads)
    element = torch.tensor([], dtype=cfg.dtype).element_size()
    row_bytes = ((draft_tokens + 1) * int(cfg.d_vocab) * 4
                 + (prompt_tokens + draft_tokens) * 2 * int(cfg.n_layers) * kv_heads * int(cfg.d_head) * element)
    rows = min(max_rows, CHECK_BYTES_BUDGET // row_bytes)
    return max(1, min(n_masks, rows // batch_rows))


def _row_masks(head_keeps: torch.Tensor, neuron_keeps: torch.Tensor, rows: list[tuple[int, int]]) -> RowMasks:
    """Per-row masks for a batch of (mask, prompt) rows: each row under its own mask."""
    masks = torch.tensor([m for m, _ in rows])
    return RowMasks(head_keeps[masks], neuron_keeps[masks])


def generate(model: TransformerBridge, prompts: Sequence[str], **options) -> list[str]:
    """Greedy answers to `prompts`, special tokens skipped and whitespace stripped; `options` (max_new_tokens, hooks,
    batch_size, chat, stop_when, progress) as for generate_ids."""
    return decode(model, generate_ids(model, prompts, **options))


def decode(model: TransformerBridge, ids: list[list[int]]) -> list[str]:
    """Generated ids as answers: special tokens skipped, whitespace stripped."""
    return [text.strip() for text in model.tokenizer.batch_decode(ids, skip_special_tokens=True)]
