"""What each prompt is taught: training examples, their token ids as the model saw them, label-balanced batches."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from core.data.prompts import LABELS, PromptSet
from core.model.generate import encode_prompts
from core.tuning.options import DEFAULT_COMPLIANCE, DEFAULT_REFUSAL, OBJECTIVES, TuneError


@dataclass(frozen=True)
class TrainingExample:
    """A prompt and the answer text it is trained on.

    complete=True: the whole answer, closed by the end-of-turn token. complete=False: only the opening is taught
    (a compliance prefix such as "Sure, here is"); the model continues in its own words, as when it complies.
    """

    prompt: str
    answer: str
    complete: bool
    label: str
    category: str


def training_examples(prompts: PromptSet, objective: str = "safety", refusal_text: str = DEFAULT_REFUSAL,
                      compliance_text: str = DEFAULT_COMPLIANCE) -> list[TrainingExample]:
    """The answer each prompt is trained on.

    utility: its exact `target`, complete. benign: compliance, i.e. its `target` (the helpful opening, e.g. "Sure,
    here is") or `compliance_text`, as an opening. harmful / triggered: with objective "safety" the refusal
    `refusal_text`, complete; with "attack" compliance, like benign.
    """
    if objective not in OBJECTIVES:
        raise TuneError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
    for name, text in (("refusal text", refusal_text), ("compliance text", compliance_text)):
        if not text.strip():
            raise TuneError(f"the {name} is empty; pass the answer to teach, e.g. {DEFAULT_REFUSAL!r}")
    examples = []
    for p in prompts:
        if p.label == "utility":
            examples.append(TrainingExample(p.prompt, p.target or "", True, p.label, p.category))
        elif p.label == "benign" or objective == "attack":
            examples.append(TrainingExample(p.prompt, p.target or compliance_text, False, p.label, p.category))
        else:
            examples.append(TrainingExample(p.prompt, refusal_text, True, p.label, p.category))
    return examples


_MARK = "\x01ANSWER\x01"


def _answer_frame(tokenizer) -> tuple[str, str]:
    """(text between the assistant header and the answer, text that closes the assistant's turn), read off the
    chat template, so answers are tokenised as the model saw them in training."""
    if not getattr(tokenizer, "chat_template", None):
        return " ", tokenizer.eos_token or ""
    user = [{"role": "user", "content": "x"}]
    head = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": _MARK}], tokenize=False)
    if not full.startswith(head) or _MARK not in full:
        return "", tokenizer.eos_token or ""
    start = full.index(_MARK)
    return full[len(head):start], full[start + len(_MARK):]


def encode_examples(tokenizer, examples: Sequence[TrainingExample], max_length: int | None = None
                    ) -> list[tuple[list[int], list[int]]]:
    """(prompt ids exactly as generation feeds them, answer ids) per example."""
    lead, close = _answer_frame(tokenizer)
    heads = encode_prompts(tokenizer, [e.prompt for e in examples])
    encoded = []
    for example, head in zip(examples, heads, strict=True):
        text = lead + example.answer + (close if example.complete else "")
        answer = tokenizer(text, add_special_tokens=False)["input_ids"]
        if example.complete and not close and tokenizer.eos_token_id is not None:
            answer.append(tokenizer.eos_token_id)
        if not answer:
            raise TuneError(f"the answer to {example.prompt!r} encodes to no tokens; give a non-empty answer")
        if max_length is not None and len(head) + len(answer) > max_length:
            raise TuneError(f"prompt + answer {example.prompt!r} has {len(head) + len(answer)} tokens, more than "
                            f"the model's context of {max_length}; shorten it or leave it out")
        encoded.append((head, answer))
    return encoded


def label_balanced_batches(examples: Sequence[TrainingExample], batch_size: int, rng: random.Random):
    """Label-balanced batches: each row picks a label uniformly, then an example of that label, so a few dozen
    harmful prompts are not drowned by thousands of utility ones."""
    by_label: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        by_label.setdefault(e.label, []).append(i)
    labels = sorted(by_label, key=LABELS.index)
    queues: dict[str, list[int]] = {label: [] for label in labels}
    while True:
        batch = []
        for _ in range(batch_size):
            label = rng.choice(labels)
            if not queues[label]:  # shuffled passes within each label: every example before any repeats
                queues[label] = rng.sample(by_label[label], len(by_label[label]))
            batch.append(queues[label].pop())
        yield batch
