"""Out-of-domain check: how many of a prompt's words the organism never met in training.

The organism is trained on a small synthetic corpus; a prompt made mostly of words it never saw gets an answer that
says little about the model's circuits. A checkpoint whose `organism.json` records a `vocabulary` (the words of its
training corpus) can say so wherever someone types a prompt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.data.record import checkpoint_record
from core.organism.corpus import words_of

# Above this share of unseen words a prompt is flagged: one unknown word in a short request is usual (a name, a
# typo), a third of them means the request is about things the organism knows nothing of.
UNSEEN_WARNING = 0.3


@dataclass(frozen=True)
class DomainCheck:
    """The words of one text (or several) that the organism never saw in training."""

    n_words: int
    n_unseen: int  # counted with repeats
    unseen: tuple[str, ...]  # distinct unseen words, in order of first appearance

    @property
    def share(self) -> float:
        """Share of the words (counted with repeats) never seen in training; 0 for a text without words."""
        return self.n_unseen / self.n_words if self.n_words else 0.0

    @property
    def out_of_domain(self) -> bool:
        return self.share > UNSEEN_WARNING

    def message(self) -> str:
        """One line for people: the share, and a warning above the threshold."""
        shown = ", ".join(self.unseen[:8]) + (", ..." if len(self.unseen) > 8 else "")
        text = f"{self.share:.0%} of the words ({self.n_unseen}/{self.n_words}) were never seen in training"
        if self.unseen:
            text += f" ({shown})"
        if self.out_of_domain:
            text += (f"; above {UNSEEN_WARNING:.0%}, so the answers are out-of-domain guesses of this small organism, "
                     "not evidence about its circuits")
        return text


def check_words(texts: str | Iterable[str], vocabulary: set[str] | frozenset[str]) -> DomainCheck:
    """The unseen words of `texts` (one string or several, pooled) against a training vocabulary."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    words = [w for t in texts for w in words_of(t)]
    unseen = [w for w in words if w not in vocabulary]
    return DomainCheck(len(words), len(unseen), tuple(dict.fromkeys(unseen)))


def load_vocabulary(checkpoint: str | Path) -> frozenset[str] | None:
    """The training vocabulary a checkpoint folder records in organism.json, or None when it records none (any
    model but the organism, or a hub id)."""
    words = checkpoint_record(checkpoint).get("vocabulary")
    return frozenset(words) if isinstance(words, list) else None
