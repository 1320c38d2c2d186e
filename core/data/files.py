"""Prompt files (JSONL and AdvBench-style CSV) and atomic writes of files and folders."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.data.prompts import LABELS, SPLITS, Prompt, PromptSet

CSV_COLUMNS = ("goal", "target")

_JSONL_EXAMPLE = '{"prompt": "What is 2 plus 3?", "category": "addition", "label": "utility", "target": "5"}'


class PromptFileError(ValueError):
    """A prompt file that cannot be read; the message names the file, the line and the fix."""

    def __init__(self, path: str | Path, line: int | None, reason: str):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{path}, line {line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {reason}")


def load_prompts(path: str | Path, *, label: str | None = None) -> PromptSet:
    """Read a `.jsonl` prompt file or an AdvBench-style `.csv` (`goal,target`).

    `label`, when given, is the label of every prompt in the file (it overrides the file's own).
    CSV prompts are labelled "harmful" by default and take the file stem as their category.
    """
    path = Path(path)
    if label is not None and label not in LABELS:
        raise ValueError(f"unknown label {label!r}; use one of {', '.join(LABELS)}")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise PromptFileError(
            path,
            None,
            f"unknown file type {path.suffix or '(none)'!r}; use a .jsonl prompt file or an "
            "AdvBench-style .csv with columns goal,target",
        )
    text = _read_utf8(path)
    if suffix == ".jsonl":
        prompts = _parse_jsonl(path, text, label)
    else:
        prompts = _parse_csv(path, text, label)
    if not prompts:
        raise PromptFileError(path, None, "the file holds no prompts; add at least one")
    return PromptSet(path.stem, prompts)


def load_prompt_sets(paths: Iterable[str | Path]) -> PromptSet:
    """Load several prompt files into one set, in the order given; its name joins the file stems."""
    sets = [load_prompts(p) for p in paths]
    if not sets:
        raise ValueError("no prompt files given; pass at least one .jsonl or .csv file")
    return PromptSet("+".join(s.name for s in sets), [p for s in sets for p in s.prompts])


def save_prompts(prompt_set: PromptSet, path: str | Path) -> None:
    """Write the set as JSONL (UTF-8), atomically: readers see the old file or the new one, never half."""
    lines = [json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in prompt_set.prompts]
    write_text_atomic(path, "".join(lines))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a temp file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def replacing_dir(path: str | Path) -> Iterator[Path]:
    """A fresh folder beside `path` to write into. When the block succeeds it takes `path`'s place (an old folder
    there is removed only after the swap); when the block fails it is deleted. Readers never see half a folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; checkpoints and reports are meant to be shared
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}-old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_utf8(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PromptFileError(path, None, "no such file; check the path") from None
    except IsADirectoryError:
        raise PromptFileError(path, None, "is a directory; pass a .jsonl or .csv file") from None
    try:
        return raw.decode("utf-8-sig")  # -sig: tolerate the byte-order mark some editors write
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise PromptFileError(path, line, "not valid UTF-8 text; re-save the file as UTF-8") from None


def _parse_jsonl(path: Path, text: str, label_override: str | None) -> list[Prompt]:
    prompts = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise PromptFileError(
                path,
                line_number,
                f"not valid JSON ({e.msg}); write one JSON object per line, e.g. {_JSONL_EXAMPLE}",
            ) from None
        if not isinstance(record, dict):
            raise PromptFileError(
                path,
                line_number,
                f"expected a JSON object, got {type(record).__name__}; write e.g. {_JSONL_EXAMPLE}",
            )
        prompts.append(_make_prompt(path, line_number, record, path.stem, label_override))
    return prompts


def _parse_csv(path: Path, text: str, label_override: str | None) -> list[Prompt]:
    reader = csv.DictReader(io.StringIO(text))
    found = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in found]
    if missing:
        raise PromptFileError(
            path,
            1,
            f"missing CSV column(s) {', '.join(missing)} (found: {', '.join(found) or 'none'}); "
            "the first line must be the header goal,target as in AdvBench's harmful_behaviors.csv",
        )
    reader.fieldnames = found  # stripped names, so " target" still counts
    prompts = []
    for row in reader:
        if not any((value or "").strip() for value in row.values()):
            continue
        record = {
            "prompt": row["goal"],
            "category": path.stem,
            "label": label_override or "harmful",
            "target": row["target"] if row["target"] else None,
        }
        # reader.line_num is the line the row ends on, which is the row's line unless a field spans lines.
        prompts.append(_make_prompt(path, reader.line_num, record, path.stem, label_override))
    return prompts


def _make_prompt(
    path: Path, line: int, record: dict, default_category: str, label_override: str | None
) -> Prompt:
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptFileError(
            path, line, f'missing "prompt" (a non-empty string); write e.g. {_JSONL_EXAMPLE}'
        )
    category = record.get("category", default_category)
    if not isinstance(category, str) or not category.strip():
        raise PromptFileError(
            path, line, f'"category" must be a non-empty string, got {category!r}; e.g. "weapons"'
        )
    label = label_override or record.get("label")
    if label is None:
        raise PromptFileError(
            path, line, f'missing "label"; add one of {", ".join(LABELS)} (or pass label= for the whole file)'
        )
    if label not in LABELS:
        raise PromptFileError(path, line, f"unknown label {label!r}; use one of {', '.join(LABELS)}")
    target = record.get("target")
    if target is not None and not isinstance(target, str):
        raise PromptFileError(path, line, f'"target" must be a string, got {target!r}; quote it, e.g. "42"')
    if label == "utility" and not (target or "").strip():
        raise PromptFileError(
            path, line, 'a "utility" prompt needs its exact answer in "target"; add e.g. "target": "42"'
        )
    split = record.get("split")
    if split is not None and split not in SPLITS:
        raise PromptFileError(
            path, line, f"unknown split {split!r}; use one of {', '.join(SPLITS)} or leave it out"
        )
    topic = record.get("topic")
    if topic is not None and (not isinstance(topic, str) or not topic.strip()):
        raise PromptFileError(path, line, f'"topic" must be a non-empty string, got {topic!r}; e.g. "kite|kites"')
    return Prompt(prompt=prompt, category=category, label=label, target=target, split=split, topic=topic)
