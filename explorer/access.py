"""Who may do what: visitor mode (the default when the app listens beyond localhost) or admin mode; names not paths,
the per-session scratch area, request caps, and messages safe to show a visitor.

Visitors choose models and circuits by name from what the server offers (the bundled ones and those an admin lists
in SAFESEEK_MODELS / SAFESEEK_CIRCUITS as `name=path;name=path`), can download anything, and write only into their
session's scratch folder under a root the app owns (size quota; removed when the session ends, and stale folders at
start-up). Admin mode (SAFESEEK_ADMIN=1, or a server listening on localhost only) keeps full access to paths.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

log = logging.getLogger("safeseek.explorer")

ADMIN_ENV = "SAFESEEK_ADMIN"
MODELS_ENV = "SAFESEEK_MODELS"
CIRCUITS_ENV = "SAFESEEK_CIRCUITS"
SCRATCH_ENV = "SAFESEEK_SCRATCH"
QUOTA_ENV = "SAFESEEK_SCRATCH_MB"
LOCAL_ADDRESSES = ("localhost", "127.0.0.1", "::1")
SCRATCH_QUOTA_MB = 256
STALE_AFTER_S = 24 * 3600  # scratch folders of sessions gone longer than this are removed at start-up
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Files the app reads (both modes): a circuit file or an uploaded prompt file larger than this is refused unread.
MAX_CIRCUIT_BYTES = 16 * 2**20
MAX_PROMPT_FILE_BYTES = 8 * 2**20


@dataclass(frozen=True)
class Limits:
    """Caps on one request: generation length, prompt counts, optimisation steps, typed prompt length."""

    steps: int
    prompts_per_family: int
    new_tokens: int
    prompt_chars: int


ADMIN_LIMITS = Limits(steps=5000, prompts_per_family=1000, new_tokens=256, prompt_chars=20_000)
VISITOR_LIMITS = Limits(steps=500, prompts_per_family=128, new_tokens=64, prompt_chars=1000)


class AccessError(ValueError):
    """A request this mode does not allow; the message says what is allowed instead."""


def is_admin() -> bool:
    """Admin when SAFESEEK_ADMIN=1, visitor when SAFESEEK_ADMIN=0; otherwise admin only on a localhost-only server."""
    setting = os.environ.get(ADMIN_ENV, "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    return (st.get_option("server.address") or "") in LOCAL_ADDRESSES


def limits() -> Limits:
    return ADMIN_LIMITS if is_admin() else VISITOR_LIMITS


def listed(variable: str) -> dict[str, Path]:
    """The `name=path;name=path` entries an admin put in an environment variable (bad entries are logged)."""
    entries: dict[str, Path] = {}
    for entry in os.environ.get(variable, "").split(";"):
        if not entry.strip():
            continue
        name, _, path = entry.partition("=")
        if not NAME.match(name.strip()) or not path.strip():
            log.warning("%s: ignoring %r (write name=path; names use letters, digits, . _ -)", variable, entry)
            continue
        entries[name.strip()] = Path(path.strip()).expanduser()
    return entries


def check_name(name: str, what: str) -> str:
    """`name` if it is a plain file name (letters, digits, . _ -; no folders), else AccessError."""
    name = name.strip()
    if not NAME.match(name):
        raise AccessError(f"{what} must be a plain name of letters, digits, '.', '_' or '-' (at most 64, no "
                          f"folders), e.g. my-circuit")
    return name


# ---- the scratch area ------------------------------------------------------------------------------------------
def scratch_root() -> Path:
    """The folder the app owns for visitors' files (SAFESEEK_SCRATCH, else a folder in the system temp dir)."""
    configured = os.environ.get(SCRATCH_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path(tempfile.gettempdir()) / "safeseek-explorer-scratch"


def quota_bytes() -> int:
    try:
        return int(float(os.environ.get(QUOTA_ENV, SCRATCH_QUOTA_MB)) * 2**20)
    except ValueError:
        return SCRATCH_QUOTA_MB * 2**20


class _Scratch:
    """A session's scratch folder; removed when Streamlit drops the session (its session state is collected)."""

    def __init__(self, path: Path):
        self.path = path
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(path), True)


def scratch_dir() -> Path:
    """This session's scratch folder (created on first use)."""
    scratch = st.session_state.get("_scratch")
    if scratch is None:
        ctx = get_script_run_ctx()
        session = ctx.session_id if ctx is not None else "no-session"
        root = scratch_root()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = root / check_name(re.sub(r"[^A-Za-z0-9-]", "", session)[:48] or "session", "session id")
        path.mkdir(exist_ok=True, mode=0o700)
        scratch = st.session_state["_scratch"] = _Scratch(path)
    scratch.path.touch()  # in use: not stale
    return scratch.path


def usage(folder: Path) -> int:
    """Bytes of the files under `folder`."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def reserve(nbytes: int) -> None:
    """Refuse (AccessError) a write of `nbytes` that would take this session's scratch folder over its quota."""
    used, quota = usage(scratch_dir()), quota_bytes()
    if used + nbytes > quota:
        raise AccessError(f"this would take your session's scratch space over its {quota / 2**20:.0f} MiB quota "
                          f"({used / 2**20:.1f} MiB used); download what you need and delete or reuse names")


def remove_stale(root: Path | None = None, older_than_s: float = STALE_AFTER_S) -> int:
    """Remove scratch folders untouched for `older_than_s` (sessions that ended without cleanup); how many went."""
    root = root or scratch_root()
    if not root.is_dir():
        return 0
    removed = 0
    cutoff = time.time() - older_than_s
    for folder in root.iterdir():
        if folder.is_dir() and not folder.is_symlink() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


# ---- messages --------------------------------------------------------------------------------------------------
_ABSOLUTE_PATH = re.compile(r"(?:^|(?<=[\s'\"(=:]))(?:~|[A-Za-z]:)?[/\\][^\s'\"),;]*")


def public_message(error: BaseException | str) -> str:
    """One line safe to show anyone: the first line of the message, absolute paths cut to their last part.

    The full error goes to the server log.
    """
    if isinstance(error, BaseException):
        log.info("user-facing error", exc_info=error)
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return _ABSOLUTE_PATH.sub(lambda m: Path(m.group(0).rstrip("/\\")).name or "(path)", text)


# What could make untrusted text a link, image, HTML, emphasis, code, heading, quote, table, formula or one of
# Streamlit's directives (:red[...], :material/x:, emoji); ':' and '.' also break bare-URL autolinks.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+.!|<>~$:&^])")


# Streamlit's markdown turns bare URLs and e-mail addresses in text into links (GFM autolink literals), escaped
# or not: an invisible word joiner after the scheme / "www" and before "@" keeps them plain text.
_AUTOLINK = re.compile(r"(?i)(https?|ftps?|www|mailto|xmpp)(?=[:.])|(?=@)")
WORD_JOINER = "\u2060"


def md(text: object) -> str:
    """Untrusted text for a markdown element, shown literally: markdown/HTML characters escaped, URLs and e-mail
    addresses kept from becoming links, on one line."""
    text = _AUTOLINK.sub(lambda m: (m.group(1) or "") + WORD_JOINER, " ".join(str(text).split()))
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
