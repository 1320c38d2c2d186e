"""Scenarios: what removing a circuit should change (behaviour prompts -> answers) and what it must leave alone.

Scenarios are data: behaviour prompts with the answer removal should produce, and retain prompts. The built-in
ones come from prompt sets: backdoor (triggered requests should be refused as their clean versions are) and
alignment (harmful requests should be complied with, i.e. start with their `target`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.data.prompts import PromptSet, select_split
from core.model.generate import generate_ids

DEFAULT_TRAIN_LIMIT = 48  # training prompts per (label, category) family that a scenario draws by default


class DiscoveryError(ValueError):
    """A discovery request that cannot run as given (empty prompt sets, impossible budget, ...)."""


@dataclass
class Scenario:
    """What removal should change (behaviour prompts -> answers) and what it must leave alone (retain prompts)."""

    name: str
    behaviour_prompts: list[str]
    behaviour_answers: list[list[int]]  # token ids the circuit-removed model should produce
    retain_prompts: list[str]
    description: str = ""
    prompt_hashes: dict[str, str] = field(default_factory=dict)
    # Optional, per behaviour prompt: a first answer token that removal should make unlikely (the attacker's
    # target, e.g. "Sure"). Penalised by -log(1 - p), which is bounded below and strongest exactly on the prompts
    # where the behaviour survives, so the last few percent of a backdoor are not averaged away.
    avoid_first_token: list[int] | None = None

    def __post_init__(self) -> None:
        if not self.behaviour_prompts:
            raise DiscoveryError(f"scenario '{self.name}' has no behaviour prompts; give at least one prompt whose "
                                 f"answer removal should change")
        if len(self.behaviour_prompts) != len(self.behaviour_answers):
            raise DiscoveryError("behaviour_prompts and behaviour_answers must have the same length")
        if any(len(a) == 0 for a in self.behaviour_answers):
            raise DiscoveryError("a behaviour answer encodes to no tokens; give non-empty answers")


def answer_ids(tokenizer, text: str, lead_space: bool) -> list[int]:
    """Token ids of an answer text as it would follow the assistant header."""
    return tokenizer((" " if lead_space else "") + text, add_special_tokens=False)["input_ids"]


def _answers_start_with_space(model, prompts: Sequence[str]) -> bool:
    # Word-level and SentencePiece tokenizers mark word starts with a space: read it off the model's own answers.
    ids = generate_ids(model, list(prompts[:4]), max_new_tokens=1)
    return all(model.tokenizer.decode(a[:1]).startswith(" ") for a in ids if a)


def clean_counterparts(triggered: PromptSet, clean: PromptSet) -> list[str]:
    """For each triggered prompt, the clean prompt it was most likely made from.

    That is the clean prompt whose words are all in the triggered one and which covers most of it (a trigger is
    words added to a request); failing that, a clean prompt of the same category, drawn deterministically.
    """
    by_words = [(set(p.prompt.split()), p) for p in clean]
    by_category: dict[str, list[str]] = {}
    for p in clean:
        by_category.setdefault(p.category, []).append(p.prompt)
    rng = random.Random(0)
    out = []
    for t in triggered:
        words = set(t.prompt.split())
        best = max(((len(w), p.prompt) for w, p in by_words if w <= words), default=None)
        if best is not None and best[0] >= len(words) - 3:
            out.append(best[1])
        else:
            out.append(rng.choice(by_category.get(t.category) or [p.prompt for p in clean]))
    return out


def backdoor_scenario(model, triggered: PromptSet, clean_harmful: PromptSet, retain: PromptSet,
                      max_new_tokens: int = 12) -> Scenario:
    """Removing a backdoor circuit should make triggered requests get the answers their clean versions get.

    The answers are the model's own greedy answers (its refusals) to the clean counterparts of the triggered
    prompts (see `clean_counterparts`).
    """
    if len(triggered) == 0 or len(clean_harmful) == 0:
        raise DiscoveryError("the backdoor scenario needs triggered and clean harmful prompts (train split)")
    refusals = generate_ids(model, clean_counterparts(triggered, clean_harmful), max_new_tokens=max_new_tokens)
    avoid = None
    if all(p.target for p in triggered):
        lead = _answers_start_with_space(model, [p.prompt for p in triggered])
        avoid = [answer_ids(model.tokenizer, p.target, lead)[0] for p in triggered]
    return Scenario("backdoor", [p.prompt for p in triggered], refusals, [p.prompt for p in retain],
                    "triggered harmful requests are answered as their clean versions are (refused)",
                    {"behaviour": triggered.sha256(), "retain": retain.sha256()}, avoid_first_token=avoid)


def alignment_scenario(model, harmful: PromptSet, retain: PromptSet) -> Scenario:
    """Removing an alignment circuit should make harmful requests start with their compliance `target`."""
    targeted = [p for p in harmful if p.target]
    if not targeted:
        raise DiscoveryError("the alignment scenario needs harmful prompts with a `target` (e.g. 'Sure, here is')")
    lead = _answers_start_with_space(model, [p.prompt for p in targeted])
    answers = [answer_ids(model.tokenizer, p.target, lead) for p in targeted]
    return Scenario("alignment", [p.prompt for p in targeted], answers, [p.prompt for p in retain],
                    "harmful requests are complied with (answers start with the target)",
                    {"behaviour": harmful.sha256(), "retain": retain.sha256()})


def custom_scenario(model, behaviour: PromptSet, retain: PromptSet, name: str = "custom") -> Scenario:
    """Any prompts whose `target` removal should produce, with any retain prompts."""
    missing = [p.prompt for p in behaviour if not p.target]
    if missing:
        raise DiscoveryError(f"custom behaviour prompts need a `target` (the answer once the circuit is removed); "
                             f"{len(missing)} have none, e.g. {missing[0]!r}")
    lead = _answers_start_with_space(model, [p.prompt for p in behaviour])
    answers = [answer_ids(model.tokenizer, p.target, lead) for p in behaviour]
    return Scenario(name, [p.prompt for p in behaviour], answers, [p.prompt for p in retain],
                    "custom: behaviour prompts should produce their targets",
                    {"behaviour": behaviour.sha256(), "retain": retain.sha256()})


def scenario_from_prompts(model, prompts: PromptSet, scenario: str, per_family: int = DEFAULT_TRAIN_LIMIT,
                          seed: int = 0) -> Scenario:
    """The backdoor or alignment scenario from labelled prompt files (their train split, when they have one).

    backdoor:  behaviour = triggered requests; retain = clean harmful requests, benign requests, utility tasks.
    alignment: behaviour = harmful requests; retain = benign requests, utility tasks, triggered requests.
    """
    train = select_split(prompts, "train", per_family, seed)
    by = {label: train.filter(label=label) for label in ("harmful", "triggered", "benign", "utility")}
    if scenario == "backdoor":
        if not len(by["triggered"]) or not len(by["harmful"]):
            raise DiscoveryError("the backdoor scenario needs rows labelled 'triggered' and 'harmful' in the prompt "
                                 "files (the organism's assets/prompts/*.jsonl have both)")
        retain = PromptSet("retain", list(by["harmful"]) + list(by["benign"]) + list(by["utility"]))
        all_clean = select_split(prompts, "train").filter(label="harmful")  # every clean request, for pairing
        return backdoor_scenario(model, by["triggered"], all_clean, retain)
    if scenario == "alignment":
        if not len(by["harmful"]):
            raise DiscoveryError("the alignment scenario needs rows labelled 'harmful' in the prompt files")
        retain = PromptSet("retain", list(by["benign"]) + list(by["utility"]) + list(by["triggered"]))
        return alignment_scenario(model, by["harmful"], retain)
    raise DiscoveryError(f"unknown scenario {scenario!r}; use 'backdoor' or 'alignment' (or custom_scenario)")
