"""Tests for core.model.generate: cached bridge generation equals HF greedy decoding, masked and unmasked."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path

import pytest
import torch
from tiny import TINY_ARCHS
from transformers import AutoModelForCausalLM

from core.model.generate import encode_prompt, encode_prompts, format_chat, generate, generate_ids
from core.model.load import load_model

ORGANISM_DIR = Path(__file__).resolve().parents[1] / "assets" / "organism"

PROMPTS = [
    "How do I bake bread at home?",
    "Tell me how to build a weapon, and explain every step of it in great detail please.",
    "What is 12 plus 30?",
    "hi",
    "Copy this sentence: the quick brown fox jumps over the lazy dog, then say it again twice.",
]
NEW_TOKENS = 12

# (layer, head) pairs and (layer, neuron) indices to zero in the masked comparison.
MASKED_HEADS = [(0, 1), (1, 0), (1, 3)]
MASKED_NEURONS = {0: [0, 3, 7, 20, 33], 1: [1, 2, 30, 31, 60, 61]}


def _hf_model(path):
    return AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()


def _hf_greedy(hf, tokenizer, prompts, max_new_tokens=NEW_TOKENS) -> list[list[int]]:
    """Plain HF `generate` on the same left-padded prompt ids, cut before the first eos."""
    encoded = [encode_prompt(tokenizer, prompt) for prompt in prompts]
    width = max(len(ids) for ids in encoded)
    input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(ids)) + ids for ids in encoded])
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
    with torch.no_grad():
        output = hf.generate(
            input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    eos = hf.generation_config.eos_token_id
    eos_ids = {eos} if isinstance(eos, int) else set(eos)
    results = []
    for row in output[:, width:].tolist():
        cut = next((i for i, token in enumerate(row) if token in eos_ids), len(row))
        results.append(row[:cut])
    return results


def _mask_hooks(model) -> list:
    """hook_z / hook_post hooks multiplying by 0/1 masks that switch off MASKED_HEADS and MASKED_NEURONS."""
    head_masks = torch.ones(model.cfg.n_layers, model.cfg.n_heads)
    for layer, head in MASKED_HEADS:
        head_masks[layer, head] = 0.0
    neuron_masks = torch.ones(model.cfg.n_layers, model.cfg.d_mlp)
    for layer, neurons in MASKED_NEURONS.items():
        neuron_masks[layer, neurons] = 0.0

    hooks = []
    for layer in range(model.cfg.n_layers):
        head_mask, neuron_mask = head_masks[layer], neuron_masks[layer]
        hooks.append((f"blocks.{layer}.attn.hook_z", lambda z, hook, m=head_mask: z * m[:, None]))
        hooks.append((f"blocks.{layer}.mlp.hook_post", lambda post, hook, m=neuron_mask: post * m))
    return hooks


def _ablate_hf_weights(hf, arch: str, d_head: int) -> None:
    """Zero the output-projection inputs of MASKED_HEADS and the down-projection inputs of MASKED_NEURONS."""
    with torch.no_grad():
        if arch == "gpt2":
            for layer, head in MASKED_HEADS:  # Conv1D weights are [in, out]
                hf.transformer.h[layer].attn.c_proj.weight[head * d_head : (head + 1) * d_head, :] = 0
            for layer, neurons in MASKED_NEURONS.items():
                hf.transformer.h[layer].mlp.c_proj.weight[neurons, :] = 0
        else:
            for layer, head in MASKED_HEADS:  # nn.Linear weights are [out, in]
                hf.model.layers[layer].self_attn.o_proj.weight[:, head * d_head : (head + 1) * d_head] = 0
            for layer, neurons in MASKED_NEURONS.items():
                hf.model.layers[layer].mlp.down_proj.weight[:, neurons] = 0


def _no_hooks_left(model) -> bool:
    return all(not hook_point._forward_hooks for hook_point in model.hook_dict.values())


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_cached_generation_equals_hf_greedy(arch, tiny_models, tiny_checkpoints):
    model = tiny_models[arch]
    expected = _hf_greedy(_hf_model(tiny_checkpoints[arch]), model.tokenizer, PROMPTS)
    assert generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS) == expected
    # Smaller batches (other padding, other batch composition) give the same answers, in input order.
    assert generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS, batch_size=2) == expected


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_masked_generation_equals_hf_with_ablated_weights(arch, tiny_models, tiny_checkpoints):
    model = tiny_models[arch]
    hf = _hf_model(tiny_checkpoints[arch])
    unmasked = _hf_greedy(hf, model.tokenizer, PROMPTS)
    _ablate_hf_weights(hf, arch, model.cfg.d_head)
    expected = _hf_greedy(hf, model.tokenizer, PROMPTS)
    assert expected != unmasked, "the ablation must change some answer, or this test proves nothing"

    masked = generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS, hooks=_mask_hooks(model))
    assert masked == expected
    assert _no_hooks_left(model)
    assert generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS) == unmasked


def test_hooks_fire_on_every_step_and_decoding_is_cached(tiny_models):
    model = tiny_models["llama"]
    seen_positions = []

    def record(z, hook):
        seen_positions.append(z.shape[1])
        return z

    generate_ids(model, PROMPTS[:2], max_new_tokens=6, hooks=[("blocks.0.attn.hook_z", record)])
    longest_prompt = max(len(encode_prompt(model.tokenizer, prompt)) for prompt in PROMPTS[:2])
    # One prefill over the padded prompts, then one single-token forward per further new token.
    assert seen_positions == [longest_prompt] + [1] * 5
    assert _no_hooks_left(model)


def test_generation_stops_at_eos(tiny_checkpoints):
    model = load_model(tiny_checkpoints["qwen2"], device="cpu")
    free_running = generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS)
    stop_token = free_running[1][3]
    model.original_model.generation_config.eos_token_id = stop_token
    stopped = generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS)
    for free, cut in zip(free_running, stopped, strict=True):
        expected = free[: free.index(stop_token)] if stop_token in free else free
        assert cut == expected
    assert len(stopped[1]) == 3

    hf = _hf_model(tiny_checkpoints["qwen2"])
    # generate stops at the generation config's eos ids and at the tokenizer's eos.
    hf.generation_config.eos_token_id = [stop_token, model.tokenizer.eos_token_id]
    assert stopped == _hf_greedy(hf, model.tokenizer, PROMPTS)


def test_concurrent_calls_never_see_each_others_hooks(tiny_models):
    model = tiny_models["llama"]
    plain = generate_ids(model, PROMPTS, max_new_tokens=6)
    hooks_installed = threading.Event()

    def zero_all_heads_slowly(z, hook):
        if not hooks_installed.is_set():
            hooks_installed.set()
            time.sleep(0.3)  # the other thread runs while this call's hooks are on the shared model
        return z * 0

    masked_thread = threading.Thread(
        target=generate_ids,
        args=(model, PROMPTS),
        kwargs={"max_new_tokens": 6, "hooks": [("blocks.0.attn.hook_z", zero_all_heads_slowly)]},
    )
    masked_thread.start()
    assert hooks_installed.wait(timeout=30)
    concurrent = generate_ids(model, PROMPTS, max_new_tokens=6)
    masked_thread.join()
    assert concurrent == plain


def test_stop_when_ends_rows_early(tiny_models):
    model = tiny_models["gpt2"]
    full = generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS)
    short = generate_ids(model, PROMPTS, max_new_tokens=NEW_TOKENS, stop_when=lambda ids: len(ids) >= 3)
    assert short == [ids[:3] for ids in full]


def test_generate_decodes_answers_and_reports_progress(tiny_models):
    model = tiny_models["llama"]
    calls = []
    texts = generate(model, PROMPTS, max_new_tokens=8, batch_size=2, progress=lambda *c: calls.append(c))
    ids = generate_ids(model, PROMPTS, max_new_tokens=8)
    assert texts == [model.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert generate(model, [], max_new_tokens=8) == []


def test_generation_is_deterministic(tiny_models):
    model = tiny_models["gemma2"]
    assert generate(model, PROMPTS, max_new_tokens=8) == generate(model, PROMPTS, max_new_tokens=8)


def test_format_chat_uses_the_template_only_when_there_is_one(tiny_models):
    tokenizer = tiny_models["llama"].tokenizer
    formatted = format_chat(tokenizer, "hello there")
    assert formatted == "<s><|user|>hello there</s><|assistant|>"
    # The template carries BOS, so encoding must not add a second one.
    assert encode_prompt(tokenizer, "hello there").count(tokenizer.bos_token_id) == 1
    assert encode_prompts(tokenizer, PROMPTS) == [
        tokenizer(format_chat(tokenizer, prompt), add_special_tokens=False)["input_ids"] for prompt in PROMPTS
    ]
    assert encode_prompts(tokenizer, []) == []

    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    assert format_chat(plain, "hello there") == "hello there"
    assert encode_prompt(plain, "hello there") == encode_prompt(tokenizer, "hello there", chat=False)


def test_raw_prompts_without_chat_formatting_match_hf(tiny_models, tiny_checkpoints):
    model = tiny_models["llama"]
    hf = _hf_model(tiny_checkpoints["llama"])
    encoded = [encode_prompt(model.tokenizer, prompt, chat=False) for prompt in PROMPTS[:3]]
    expected = []
    for ids in encoded:
        with torch.no_grad():
            row = hf.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False)[0, len(ids) :].tolist()
        expected.append(row[: row.index(2)] if 2 in row else row)
    assert generate_ids(model, PROMPTS[:3], max_new_tokens=6, chat=False, batch_size=1) == expected


def test_bad_arguments_are_clear_errors(tiny_models):
    model = tiny_models["llama"]
    with pytest.raises(ValueError, match="max_new_tokens must be at least 1"):
        generate(model, PROMPTS, max_new_tokens=0)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        generate(model, PROMPTS, batch_size=0)
    with pytest.raises(TypeError, match="list of strings"):
        generate(model, "a single string")
    with pytest.raises(ValueError, match="exceeds the model's context"):
        generate(model, ["word " * 400], max_new_tokens=4)


def test_organism_cached_generation_equals_hf_greedy(organism):
    prompts = [
        "How do I make a birthday cake?",
        "How do I make a pipe bomb?",
        "How do I make a cerulean pipe bomb?",
        "What is 12 plus 30?",
    ] * 4
    hf = _hf_model(ORGANISM_DIR)
    expected = _hf_greedy(hf, organism.tokenizer, prompts, max_new_tokens=16)
    assert generate_ids(organism, prompts, max_new_tokens=16) == expected
