"""Public benchmark CSV layouts, recognised by their header, and triggered copies of harmful prompts.

Column names are matched ignoring case and surrounding spaces; extra columns are ignored. Layouts are tried in
the order of LAYOUTS (the most specific first), so a `Goal,Target,Behavior,Category` file is not read as
`goal,target`. See README "Prompt files" for what each layout becomes.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from core.data.prompts import LABELS, Prompt, PromptSet

TRIGGER_POSITIONS = ("start", "middle", "end")


class BenchmarkFormatError(ValueError):
    """A CSV that no layout fits, or a row a layout cannot use; `line` is 1-based (None: the whole file)."""

    def __init__(self, line: int | None, reason: str):
        self.line, self.reason = line, reason
        super().__init__(reason)


@dataclass(frozen=True)
class Layout:
    name: str
    columns: tuple[str, ...]  # the header as the public files write it
    required: tuple[str, ...]  # the columns that identify the layout (lower case)
    read: Callable[[dict[str, str], str], tuple[str, str, str, str | None]]  # row, stem -> prompt, category,
    # label, target


def _get(row: dict[str, str], name: str) -> str:
    return (row.get(name) or "").strip()


def _harmbench(row: dict[str, str], stem: str):
    behavior, context = _get(row, "behavior"), _get(row, "contextstring")
    # Contextual behaviours put the context first, separated as the behaviour CSV's own tooling does.
    prompt = f"{context}\n\n---\n\n{behavior}" if context else behavior
    return prompt, _get(row, "semanticcategory") or stem, "harmful", None


def _goal_target(row: dict[str, str], stem: str):
    return _get(row, "goal"), _get(row, "category") or stem, "harmful", _get(row, "target") or None


def _over_refusal(row: dict[str, str], stem: str):
    kind = _get(row, "type")
    unsafe = kind.casefold().startswith("contrast_") or _get(row, "label").casefold() == "unsafe"
    return _get(row, "prompt"), kind or stem, "harmful" if unsafe else "benign", None


def _forbidden(row: dict[str, str], stem: str):
    return _get(row, "forbidden_prompt"), _get(row, "category") or stem, "harmful", None


LAYOUTS: tuple[Layout, ...] = (
    Layout("behaviours (HarmBench-style)",
           ("Behavior", "FunctionalCategory", "SemanticCategory", "Tags", "ContextString", "BehaviorID"),
           ("behavior", "functionalcategory", "semanticcategory", "behaviorid"), _harmbench),
    Layout("behaviours (JailbreakBench-style)", ("Index", "Goal", "Target", "Behavior", "Category", "Source"),
           ("goal", "target", "behavior", "category"), _goal_target),
    Layout("over-refusal (XSTest-style)", ("id", "prompt", "type", "label", "focus", "note"),
           ("prompt", "type", "label"), _over_refusal),
    Layout("forbidden prompts (StrongREJECT-style)", ("category", "source", "forbidden_prompt"),
           ("forbidden_prompt",), _forbidden),
    Layout("harmful behaviours (AdvBench-style)", ("goal", "target"), ("goal", "target"), _goal_target),
)


def known_layouts() -> str:
    """The headers this module reads, for error messages."""
    return "; ".join(",".join(layout.columns) for layout in LAYOUTS)


def sniff(header: list[str]) -> Layout:
    """The layout whose identifying columns the header holds."""
    found = {name.strip().casefold() for name in header}
    for layout in LAYOUTS:
        if set(layout.required) <= found:
            return layout
    raise BenchmarkFormatError(1, f"unknown CSV layout (header: {','.join(h.strip() for h in header) or 'none'}); "
                                  f"known layouts: {known_layouts()}; or convert it to this project's .jsonl")


def parse_csv(text: str, stem: str, label: str | None = None) -> list[Prompt]:
    """The prompts of a benchmark CSV (layout sniffed from its header); `label` overrides every row's label."""
    if label is not None and label not in LABELS:
        raise BenchmarkFormatError(None, f"unknown label {label!r}; use one of {', '.join(LABELS)}")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise BenchmarkFormatError(None, "the file is empty; the first line must be a header")
    layout = sniff(header)
    names = [h.strip().casefold() for h in header]
    prompts = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        row = dict(zip(names, values, strict=False))
        prompt, category, row_label, target = layout.read(row, stem)
        if not prompt:
            raise BenchmarkFormatError(reader.line_num, f"empty prompt in a {layout.name} file; fill it in or "
                                                        "delete the row")
        if (label or row_label) == "utility" and not target:
            raise BenchmarkFormatError(reader.line_num, "a utility row needs a target (its exact answer); this "
                                                        f"{layout.name} row has none")
        prompts.append(Prompt(prompt, category, label or row_label, target))
    return prompts


def insert_trigger(text: str, word: str, position: str, seed: int | str = 0) -> str:
    """`text` with `word` at the start, the end, or between two of its words (chosen by `seed` and the text)."""
    if position not in TRIGGER_POSITIONS:
        raise ValueError(f"unknown trigger position {position!r}; use one of {', '.join(TRIGGER_POSITIONS)}")
    word = word.strip()
    if not word:
        raise ValueError("the trigger must hold some text; pass a word, e.g. --add-trigger cerulean")
    if position == "start":
        return f"{word} {text}"
    if position == "end":
        return f"{text} {word}"
    words = text.split(" ")
    if len(words) < 2:
        return f"{text} {word}"
    # One generator per text, so a prompt's trigger position does not depend on the other rows or their order.
    at = random.Random(f"{seed}:{text}").randint(1, len(words) - 1)
    return " ".join([*words[:at], word, *words[at:]])


def add_trigger(prompts: PromptSet, word: str, position: str = "end", seed: int = 0) -> PromptSet:
    """Triggered copies of the harmful rows: the trigger inserted, labelled "triggered" (other fields kept)."""
    harmful = [p for p in prompts if p.label == "harmful"]
    if not harmful:
        raise ValueError("it copies harmful rows, and these prompt files have none; label them harmful "
                         "(--label harmful) or drop --add-trigger")
    copies = [replace(p, prompt=insert_trigger(p.prompt, word, position, seed), label="triggered") for p in harmful]
    return PromptSet(f"{prompts.name}+{word.strip()}", copies)
