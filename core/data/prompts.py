"""Prompts and prompt sets: the Prompt/PromptSet dataclasses, their labels and splits, sampling and hashing."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

LABELS = ("harmful", "triggered", "benign", "utility")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Prompt:
    prompt: str
    category: str
    label: str
    target: str | None = None
    split: str | None = None
    # What a benign request asks about ("kite", or alternatives "kite|kites"): a helpful reply mentions it.
    topic: str | None = None

    def to_dict(self) -> dict[str, str]:
        """The JSONL record: optional fields are left out when unset."""
        record = {"prompt": self.prompt, "category": self.category, "label": self.label}
        if self.target is not None:
            record["target"] = self.target
        if self.split is not None:
            record["split"] = self.split
        if self.topic is not None:
            record["topic"] = self.topic
        return record

    @classmethod
    def from_dict(cls, record: dict) -> Prompt:
        return cls(
            prompt=record["prompt"],
            category=record["category"],
            label=record["label"],
            target=record.get("target"),
            split=record.get("split"),
            topic=record.get("topic"),
        )


@dataclass
class PromptSet:
    name: str
    prompts: list[Prompt]

    def __len__(self) -> int:
        return len(self.prompts)

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    def filter(
        self, *, label: str | None = None, split: str | None = None, category: str | None = None
    ) -> PromptSet:
        """The prompts matching every given field (None = any)."""
        kept = [
            p
            for p in self.prompts
            if (label is None or p.label == label)
            and (split is None or p.split == split)
            and (category is None or p.category == category)
        ]
        return PromptSet(self.name, kept)

    def sample(self, n: int, seed: int = 0) -> PromptSet:
        """`n` prompts drawn without replacement by `seed`, kept in file order; all of them if n >= len."""
        if n < 0:
            raise ValueError(f"cannot sample {n} prompts; pass n >= 0")
        if n >= len(self.prompts):
            return PromptSet(self.name, list(self.prompts))
        chosen = sorted(random.Random(seed).sample(range(len(self.prompts)), n))
        return PromptSet(self.name, [self.prompts[i] for i in chosen])

    def sample_per_family(self, n: int, seed: int = 0) -> PromptSet:
        """At most `n` prompts from each (label, category) family, drawn by `seed`, kept in file order."""
        kept: set[int] = set()
        for family in self.families():
            indices = [i for i, p in enumerate(self.prompts) if (p.label, p.category) == family]
            if len(indices) > n:
                # One generator per family, so a family's sample does not depend on the other families.
                indices = random.Random(f"{seed}:{family[0]}:{family[1]}").sample(indices, n)
            kept.update(indices)
        return PromptSet(self.name, [p for i, p in enumerate(self.prompts) if i in kept])

    def categories(self) -> list[str]:
        """Distinct categories in order of first appearance."""
        return list(dict.fromkeys(p.category for p in self.prompts))

    def families(self) -> list[tuple[str, str]]:
        """Distinct (label, category) pairs, ordered by label (harmful, triggered, benign, utility), then
        by first appearance."""
        seen = dict.fromkeys((p.label, p.category) for p in self.prompts)
        return sorted(seen, key=lambda family: LABELS.index(family[0]))

    def sha256(self) -> str:
        """Hash of the prompts' content and order (the name is not part of it)."""
        digest = hashlib.sha256()
        for p in self.prompts:
            digest.update(json.dumps(p.to_dict(), sort_keys=True, ensure_ascii=False).encode("utf-8"))
            digest.update(b"\n")
        return digest.hexdigest()


def select_split(prompts: PromptSet, split: str = "test", per_family: int | None = None, seed: int = 0) -> PromptSet:
    """The prompts of `split` (all prompts when none carries that split, as in a user's CSV), at most `per_family`
    per (label, category) family, drawn by `seed`."""
    if any(p.split == split for p in prompts):
        prompts = prompts.filter(split=split)
    return prompts if per_family is None else prompts.sample_per_family(per_family, seed=seed)
