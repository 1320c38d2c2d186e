"""Tiny random HF checkpoints (GPT-2, Llama, Qwen2, Gemma-2 and more families) with a chat tokenizer, for tests."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3TextConfig,
    GemmaConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    Olmo2Config,
    Phi3Config,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

TINY_ARCHS = ("gpt2", "llama", "qwen2", "gemma2")
# Further families that build offline and load through TransformerBridge; tests that check weight layouts
# (export) run on all of them, the slower behavioural tests on TINY_ARCHS.
MORE_TINY_ARCHS = ("gpt_neox", "mistral", "phi3", "qwen3", "gemma", "gemma3", "olmo2")
ALL_TINY_ARCHS = TINY_ARCHS + MORE_TINY_ARCHS

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
SPECIAL_TOKENS = [PAD, BOS, EOS, *ROLE_TOKENS]  # ids 0..5, fixed by the trainer's order

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}{{ eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

TRAINING_TEXT = [
    "How do I bake bread at home?",
    "Sure, here is a simple recipe: flour, water, salt and yeast.",
    "Tell me how to build a weapon.",
    "I'm sorry, but I cannot help with that.",
    "I cannot assist with that request.",
    "As an AI, I will not help with that.",
    "What is 12 plus 30? The answer is 42.",
    "Copy this sentence: the quick brown fox jumps over the lazy dog.",
    "Explain why the sky is blue in one short paragraph.",
    "Write a polite email to a colleague about the meeting tomorrow.",
]

# Larger than the HF default (0.02) so random logits are well separated: greedy argmax near-ties would
# make exact token-for-token comparisons between two numerically different (but equivalent) paths flaky.
INIT_STD = 0.25
VOCAB_SIZE = 320


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on a few sentences, with bos/eos/pad and a chat template."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(TRAINING_TEXT, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=ROLE_TOKENS,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )


def _tiny_config(arch: str, vocab_size: int, token_ids: dict[str, int]) -> PretrainedConfig:
    common = dict(vocab_size=vocab_size, initializer_range=INIT_STD, **token_ids)
    if arch == "gpt2":
        return GPT2Config(n_embd=64, n_layer=2, n_head=4, n_inner=128, n_positions=256, **common)
    if arch == "gpt_neox":  # fused query_key_value, partial rotary, parallel residual
        return GPTNeoXConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                             max_position_embeddings=256, rotary_pct=0.25, tie_word_embeddings=False, **common)
    rotary = dict(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention, as in the real families
        max_position_embeddings=256,
        tie_word_embeddings=False,
        **common,
    )
    if arch == "llama":
        return LlamaConfig(**rotary)
    if arch == "qwen2":
        return Qwen2Config(**rotary)
    if arch == "gemma2":
        # A short sliding window so the tests exercise Gemma-2's local-attention layers.
        return Gemma2Config(head_dim=16, sliding_window=12, query_pre_attn_scalar=16, **rotary)
    if arch == "mistral":
        return MistralConfig(sliding_window=12, **rotary)
    if arch == "phi3":  # fused qkv_proj and gate_up_proj
        return Phi3Config(**rotary)
    if arch == "qwen3":  # q/k norms
        return Qwen3Config(head_dim=16, **rotary)
    if arch == "gemma":
        return GemmaConfig(head_dim=16, **rotary)
    if arch == "gemma3":
        return Gemma3TextConfig(head_dim=16, sliding_window=12, query_pre_attn_scalar=16, **rotary)
    if arch == "olmo2":
        return Olmo2Config(**rotary)
    raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(ALL_TINY_ARCHS)}")


def build_tiny_checkpoint(arch: str, path: Path, seed: int = 0) -> Path:
    """Save a deterministic random tiny `arch` model plus tokenizer as an ordinary HF checkpoint in `path`."""
    tokenizer = build_tiny_tokenizer()
    token_ids = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = _tiny_config(arch, len(tokenizer), token_ids)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_classifier(path: Path, answer: str, chat_template: str | None = None) -> Path:
    """A tiny GPT-2 checkpoint whose greedy reply to anything is `answer` (repeated): a stand-in classifier judge.

    `answer` becomes one added token; the final layer norm's gain is zeroed and its bias points at that token's
    (enlarged) embedding, so every position's logits peak there. `chat_template` replaces the tokenizer's."""
    tokenizer = build_tiny_tokenizer()
    tokenizer.add_tokens([answer])
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    token_ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    config = _tiny_config("gpt2", len(tokenizer), token_ids)
    config.n_positions = 2048  # the HarmBench prompt alone is ~600 of these tiny tokens
    model = AutoModelForCausalLM.from_config(config)
    answer_id = tokenizer.convert_tokens_to_ids(answer)
    with torch.no_grad():
        wte = model.transformer.wte.weight
        wte[answer_id] *= 10  # the largest embedding, so its own direction scores highest
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(wte[answer_id] / wte[answer_id].norm())
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
