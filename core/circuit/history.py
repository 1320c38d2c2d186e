"""Undo/redo and named snapshots of toggle states (Selections): an immutable value the app keeps per session."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.circuit.selection import Selection

MAX_UNDO = 100  # older steps are dropped


@dataclass(frozen=True)
class History:
    """What can be undone (`past`, oldest first), redone (`future`, next first) and the named snapshots."""

    past: tuple[Selection, ...] = ()
    future: tuple[Selection, ...] = ()
    snapshots: tuple[tuple[str, Selection], ...] = field(default=())

    @property
    def can_undo(self) -> bool:
        return bool(self.past)

    @property
    def can_redo(self) -> bool:
        return bool(self.future)

    def snapshot(self, name: str) -> Selection | None:
        return dict(self.snapshots).get(name)


def record(history: History, before: Selection, after: Selection) -> History:
    """`before` became `after` by a user action: it can be undone, and whatever was redoable is gone."""
    if before == after:
        return history
    return replace(history, past=(*history.past, before)[-MAX_UNDO:], future=())


def undo(history: History, current: Selection) -> tuple[History, Selection]:
    """Step back once: (new history, the selection to show); unchanged when there is nothing to undo."""
    if not history.past:
        return history, current
    return replace(history, past=history.past[:-1], future=(current, *history.future)), history.past[-1]


def redo(history: History, current: Selection) -> tuple[History, Selection]:
    """Step forward once after an undo: (new history, the selection to show)."""
    if not history.future:
        return history, current
    return replace(history, past=(*history.past, current), future=history.future[1:]), history.future[0]


def save_snapshot(history: History, name: str, selection: Selection) -> History:
    """Keep `selection` under `name` (a name used again is overwritten); names are stripped and must not be empty."""
    name = name.strip()
    if not name:
        raise ValueError("give the snapshot a name (e.g. 'circuit off')")
    kept = tuple((n, s) for n, s in history.snapshots if n != name)
    return replace(history, snapshots=(*kept, (name, selection)))


def restore_snapshot(history: History, name: str, current: Selection) -> tuple[History, Selection]:
    """Switch to the snapshot `name` (itself undoable); ValueError naming the known snapshots when it is unknown."""
    chosen = history.snapshot(name)
    if chosen is None:
        known = ", ".join(n for n, _ in history.snapshots) or "none yet"
        raise ValueError(f"no snapshot named {name!r}; saved snapshots: {known}")
    return record(history, current, chosen), chosen
