"""The explorer as a shared server: visitor mode (names not paths, scratch-only writes, literal text, capped reads),
bounded caches, and admin mode keeping full access. AppTest, in-process (the browser side is test_visitor_browser)."""

from __future__ import annotations

import gc
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest
import streamlit as st
from app_helpers import BACKDOOR_SAMPLE, REPO_ROOT, make_circuit, raw_texts, run_page, shown, texts
from tiny import build_tiny_checkpoint

from core.model.cache import BudgetLRU
from core.model.fingerprint import fingerprint
from core.model.load import load_model
from explorer import access, state

# Markdown and HTML a hostile link or file can carry: a remote image, a fake login link, raw HTML, a directive.
PAYLOAD = ("![x](http://evil.example/a.png) [Session expired - click to log in](http://evil.example/login) "
           "<img src=x onerror=alert(1)> :red[alarm] $x^2$ **bold**")
TINY = (2, 4, 96)  # tests/tiny.py's llama: n_layers, n_heads, d_mlp


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint("llama", tmp_path_factory.mktemp("visitor") / "llama")


@pytest.fixture(scope="module")
def tiny_circuit_json(tiny_llama: Path) -> str:
    model = load_model(tiny_llama, device="cpu")
    circuit = make_circuit(*TINY, heads=[(0, 1)], neurons=[(1, 5)], name=PAYLOAD,
                           fingerprint={**fingerprint(model), "path": str(tiny_llama)})
    return circuit.to_json()


@pytest.fixture
def visitor(monkeypatch, tmp_path, tiny_llama):
    """Visitor mode, with the tiny model offered by name and the scratch area under tmp_path."""
    st.cache_resource.clear()
    st.cache_data.clear()
    monkeypatch.setenv("SAFESEEK_ADMIN", "0")
    monkeypatch.setenv("SAFESEEK_MODELS", f"tiny={tiny_llama}")
    monkeypatch.setenv("SAFESEEK_SCRATCH", str(tmp_path / "scratch"))
    yield tmp_path
    st.cache_resource.clear()


def _shown_literally(markdown: str, raw: str) -> bool:
    """`raw` appears in the markdown source only with every markdown/HTML character escaped."""
    return raw not in markdown and raw in shown(markdown)


def _live_markup(markdown: str) -> bool:
    """Does the markdown source hold an unescaped link/image opening or an HTML tag?"""
    return re.search(r"(?<!\\)\]\(|(?<!\\)<[a-zA-Z/]", markdown) is not None


def _one_line(messages: list[str]) -> bool:
    return all("\n" not in m and "Traceback" not in m for m in messages)


# ---- which mode --------------------------------------------------------------------------------------------------
def test_visitor_mode_is_the_default_beyond_localhost(monkeypatch):
    monkeypatch.delenv("SAFESEEK_ADMIN")
    before = st.get_option("server.address")
    try:
        for address, admin in ((None, False), ("0.0.0.0", False), ("192.168.1.5", False), ("127.0.0.1", True),
                               ("localhost", True)):
            st.config.set_option("server.address", address)
            assert access.is_admin() is admin, address
        st.config.set_option("server.address", "0.0.0.0")
        monkeypatch.setenv("SAFESEEK_ADMIN", "1")
        assert access.is_admin()  # the admin setting keeps full access on a public address
        monkeypatch.setenv("SAFESEEK_ADMIN", "0")
        st.config.set_option("server.address", "127.0.0.1")
        assert not access.is_admin()
    finally:
        st.config.set_option("server.address", before)


# ---- names, never paths ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ref", ["/etc/passwd", "../../../etc/passwd", "/no/such/file.json", str(BACKDOOR_SAMPLE),
                                 "sample_circuits/../sample_circuits/organism-backdoor.json"])
def test_visitor_circuit_links_with_paths_are_refused_in_one_line(visitor, ref):
    at = run_page({"model": "tiny", "circuit": ref, "page": "compare"})
    errors = texts(at, "error")
    assert len(errors) == 1 and "is not offered on this server" in errors[0], errors
    assert _one_line(errors) and str(REPO_ROOT) not in errors[0]
    # The same answer whether the file exists or not: the message is no oracle for the server's files.
    assert errors[0].replace(repr(Path(ref).name), "REF") == texts(
        run_page({"model": "tiny", "circuit": "/x", "page": "compare"}), "error")[0].replace("'x'", "REF")
    assert at.session_state.circuit_obj is None


def test_visitor_models_by_name_only(visitor, tiny_llama):
    at = run_page({"model": str(tiny_llama), "page": "model"})  # the start page shows the bundled organism only
    warnings = [w for w in texts(at, "warning") if "is not offered on this server" in w]
    assert len(warnings) == 1 and _one_line(warnings) and not texts(at, "error")
    assert at.session_state.demo.model == state.DEFAULT_MODEL  # the path is not carried on into the page links
    assert str(tiny_llama) not in [key[0] for key in state._models().keys()]  # the path was never loaded
    at = run_page({"model": "tiny", "page": "model"})
    assert not texts(at, "error")
    assert str(tiny_llama) in [key[0] for key in state._models().keys()]
    assert str(tiny_llama) not in " ".join(texts(at, "success") + texts(at, "markdown"))  # no server path shown


def test_visitor_reads_admin_listed_and_bundled_circuits_by_name(visitor, monkeypatch, tmp_path, tiny_circuit_json):
    listed = tmp_path / "listed.json"
    listed.write_text(tiny_circuit_json)
    monkeypatch.setenv("SAFESEEK_CIRCUITS", f"evil-name={listed}")
    at = run_page({"model": "tiny", "circuit": "evil-name", "page": "compare"})
    assert not texts(at, "error")
    assert at.session_state.circuit_obj.name == PAYLOAD


# ---- untrusted text --------------------------------------------------------------------------------------------------
def test_markdown_in_every_untrusted_field_is_shown_literally(visitor, monkeypatch, tmp_path, tiny_circuit_json):
    listed = tmp_path / "listed.json"
    listed.write_text(tiny_circuit_json)
    monkeypatch.setenv("SAFESEEK_CIRCUITS", f"evil-name={listed}")
    # A circuit whose name is the payload, and the payload in every query value.
    at = run_page({"model": "tiny", "circuit": "evil-name", "page": "compare"})
    sources = raw_texts(at, "markdown") + raw_texts(at, "caption")
    assert any(_shown_literally(text, PAYLOAD) for text in sources), sources
    for key in ("model", "circuit", "prompts", "page", "heads"):
        at = run_page({"model": "tiny", key: PAYLOAD})
        messages = raw_texts(at, "error") + raw_texts(at, "warning") + raw_texts(at, "caption")
        assert messages, key
        assert not any(_live_markup(m) for m in messages), (key, messages)
        # A component list names its first bad token; a circuit is named by its file name, never its folders.
        expected = {"heads": repr(PAYLOAD.split()[0]), "circuit": Path(PAYLOAD).name}.get(key, PAYLOAD)
        assert any(_shown_literally(m, expected) for m in messages), (key, messages)


def test_free_text_prompt_and_answer_are_escaped(visitor):
    at = run_page({"model": "tiny", "page": "playground"})
    at.text_input(key="free-prompt").input(PAYLOAD).run()
    assert not at.exception
    html_blocks = [m for m in raw_texts(at, "markdown") if m.startswith("<div><b>")]
    assert len(html_blocks) == 2
    assert all("<img" not in block and "](http" not in block and "\n" not in block for block in html_blocks)


# ---- writes -------------------------------------------------------------------------------------------------------
def _snapshot(*folders: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for folder in folders if folder.exists() for p in folder.rglob("*")}


def test_visitor_writes_only_into_the_scratch_area(visitor, tmp_path):
    watched = (REPO_ROOT / "sample_circuits", REPO_ROOT / "assets", tmp_path / "outside")
    (tmp_path / "outside").mkdir()
    before = _snapshot(*watched)
    at = run_page({"model": "tiny", "page": "discover"})
    at.radio(key="discover-scenario").set_value("custom").run()
    behaviour = b"".join(json.dumps({"prompt": f"say hello {i}", "category": "greet", "label": "benign",
                                     "target": "I cannot"}).encode() + b"\n" for i in range(3))
    retain = json.dumps({"prompt": "what is 2 plus 3", "category": "addition", "label": "utility",
                         "target": "5"}).encode() + b"\n"
    at.get("file_uploader")[0].set_value(("../../behaviour.jsonl", behaviour, "application/json"))
    at.get("file_uploader")[1].set_value([("retain.jsonl", retain, "application/json")])
    at.number_input(key="discover-steps").set_value(2)
    at.number_input(key="discover-verify").set_value(1)
    at.button(key="discover-run").click().run()
    assert not at.exception and not texts(at, "error")
    assert at.number_input(key="discover-steps").max == access.VISITOR_LIMITS.steps
    outside = tmp_path / "outside" / "evil"
    for name in ("../evil", str(outside), "sample_circuits/organism-backdoor", "a/b", "..", ".hidden", "x" * 80):
        at.text_input(key="discover-save-name").set_value(name)
        at.button(key="discover-save").click().run()
        errors = texts(at, "error")
        assert len(errors) == 1 and "plain name" in errors[0] and _one_line(errors), (name, errors)
    at.text_input(key="discover-save-name").set_value("good")
    at.button(key="discover-save").click().run()
    assert not texts(at, "error")
    saved = list((tmp_path / "scratch").rglob("*.json"))
    assert [p.name for p in saved] == ["good.json"] and saved[0].parent.name == "circuits"
    assert at.query_params["circuit"] == "scratch/good.json"
    assert _snapshot(*watched) == before  # nothing written anywhere else


def test_scratch_quota_and_cleanup(visitor, monkeypatch, tmp_path):
    monkeypatch.setenv("SAFESEEK_SCRATCH_MB", "0.001")  # 1 KiB
    root = access.scratch_root()
    folder = root / "session-a"
    folder.mkdir(parents=True)
    scratch = access._Scratch(folder)
    (folder / "file").write_bytes(b"x" * 100)
    del scratch
    gc.collect()
    assert not folder.exists()  # removed when the session's state goes
    old, fresh = root / "old", root / "fresh"
    old.mkdir()
    fresh.mkdir()
    os.utime(old, (time.time() - 2 * access.STALE_AFTER_S, time.time() - 2 * access.STALE_AFTER_S))
    assert access.remove_stale(root) == 1 and fresh.exists() and not old.exists()


def test_discover_save_over_the_quota_is_refused(visitor, monkeypatch):
    monkeypatch.setenv("SAFESEEK_SCRATCH_MB", "0.0001")  # 100 bytes: no circuit fits
    at = run_page({"model": "tiny", "page": "discover"})
    at.session_state["discover_circuit"] = make_circuit(*TINY, heads=[(0, 1)], neurons=[], name="small")
    at.run()
    at.button(key="discover-save").click().run()
    errors = texts(at, "error")
    assert len(errors) == 1 and "quota" in errors[0] and _one_line(errors)


# ---- bounded reads and caches ---------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def _peak_rss_during(action) -> tuple[int, object]:
    peak, done = [_rss_bytes()], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join()
    return peak[0], result


@pytest.mark.parametrize("mode", ["visitor", "admin"])
def test_an_oversized_circuit_is_refused_without_growing_the_process(visitor, monkeypatch, tmp_path, mode):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(200 * 2**20)  # 200 MiB (sparse): reading it whole would grow the process by that much
    monkeypatch.setenv("SAFESEEK_CIRCUITS", f"huge={huge}")
    monkeypatch.setenv("SAFESEEK_ADMIN", "0" if mode == "visitor" else "1")
    run_page({"model": "tiny", "page": "compare"})  # model loaded, page code warm
    ref = "huge" if mode == "visitor" else str(huge)
    before = _rss_bytes()
    peak, at = _peak_rss_during(lambda: run_page({"model": "tiny", "circuit": ref, "page": "compare"}))
    errors = texts(at, "error")
    assert len(errors) == 1 and "MiB" in errors[0] and _one_line(errors), errors
    assert str(tmp_path) not in shown(errors[0])  # no server path
    assert peak - before <= access.MAX_CIRCUIT_BYTES, f"grew by {(peak - before) / 2**20:.1f} MiB"


def test_budget_lru_evicts_least_recently_used_and_computes_once():
    cache = BudgetLRU(budget_bytes=100, size_of=len)
    calls = []

    def compute(key):
        def run():
            calls.append(key)
            time.sleep(0.05)
            return "x" * 40
        return run

    threads = [threading.Thread(target=cache.get, args=("a", compute("a"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["a"]  # four concurrent callers, one computation
    cache.get("b", compute("b"))
    cache.get("a", compute("a"))  # a is now the most recent
    cache.get("c", compute("c"))  # 120 bytes > 100: the least recently used (b) goes
    assert cache.keys() == ["a", "c"] and cache.total_bytes() == 80
    cache.get("big", lambda: "y" * 500)  # alone over the budget: kept, everything else evicted
    assert cache.keys() == ["big"]


def test_visitor_free_text_prompt_length_is_capped(visitor):
    at = run_page({"model": "tiny", "page": "playground"})
    assert at.text_input(key="free-prompt").max_chars == access.VISITOR_LIMITS.prompt_chars


# ---- admin ----------------------------------------------------------------------------------------------------------
def test_admin_mode_still_reads_and_writes_paths(monkeypatch, tmp_path, tiny_llama, tiny_circuit_json):
    st.cache_resource.clear()
    monkeypatch.delenv("SAFESEEK_ADMIN")
    before = st.get_option("server.address")
    st.config.set_option("server.address", "127.0.0.1")  # a localhost-only server: the admin's own machine
    try:
        path = tmp_path / "admin.json"
        path.write_text(tiny_circuit_json)
        at = run_page({"model": str(tiny_llama), "circuit": str(path), "page": "compare"})
        assert not texts(at, "error") and at.session_state.circuit_obj.name == PAYLOAD
        at = run_page({"model": str(tiny_llama), "page": "discover"})
        at.session_state["discover_circuit"] = make_circuit(*TINY, heads=[(0, 1)], neurons=[], name="admin-save")
        at.run()
        target = tmp_path / "anywhere" / "admin-save.json"
        at.text_input(key="discover-save-path").set_value(str(target))
        at.button(key="discover-save").click().run()
        assert not texts(at, "error") and target.is_file()
        assert at.number_input(key="discover-steps").max == access.ADMIN_LIMITS.steps
    finally:
        st.config.set_option("server.address", before)


def _tune_page(circuit_json: str) -> None:
    import streamlit as st

    from core.circuit.circuit import Circuit
    from explorer import state
    from explorer.views import tune as page

    state.init_session({"model": "tiny"}, ("tune",))
    if st.session_state.circuit_obj is None:
        state.set_circuit(Circuit.from_json(circuit_json), None)
    page.render()


def test_visitor_tuning_writes_its_checkpoint_into_the_scratch_area(visitor, tiny_circuit_json):
    from streamlit.testing.v1 import AppTest

    from explorer.ui import runs_dir

    runs_before = _snapshot(runs_dir())
    at = AppTest.from_function(_tune_page, args=(tiny_circuit_json,), default_timeout=300).run()
    assert not at.exception
    assert not [t for t in at.text_input if t.label == "Write the tuned checkpoint to"]  # no path to type
    at.number_input(key="tune-steps").set_value(2)
    at.number_input(key="tune-train").set_value(2)
    at.number_input(key="tune-eval").set_value(1)
    at.button(key="tune-run").click().run()
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    [report] = list((visitor / "scratch").rglob("tune_report.json"))
    assert report.parent.parent.name == "tune"
    assert _snapshot(runs_dir()) == runs_before
    at.button(key="tune-use").click().run()
    assert at.session_state.demo.model == f"scratch/{report.parent.name}"
    assert not texts(at, "error")


def test_the_server_refuses_uploads_larger_than_the_app_reads():
    import tomllib

    # Streamlit holds an upload in memory before the app sees it: the server's cap must be the app's, not 200 MB.
    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert 0 < config["server"]["maxUploadSize"] * 2**20 <= access.MAX_CIRCUIT_BYTES
    assert access.MAX_PROMPT_FILE_BYTES <= access.MAX_CIRCUIT_BYTES
