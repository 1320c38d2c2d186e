"""Visitor mode in a real browser: a server listening beyond localhost, hostile links and a hostile circuit file.

The checks are on what Chromium renders: no image or link built from untrusted text, the text shown as typed, and
one-line refusals without tracebacks or server paths.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlencode

import pytest
import test_browser
from app_helpers import ORGANISM_DIR, REPO_ROOT, make_circuit
from test_browser import CHROMIUM, app_server, open_page, playwright_api

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = playwright_api.expect

NAME = ("![x](http://evil.example/a.png) [Session expired - click to log in](http://evil.example/login) "
        "<img src=x onerror=alert(1)> :red[alarm]")
EVIL_LINKS = "a[href*='evil.example'], img[src*='evil.example'], img[src='x']"
chromium = test_browser.chromium  # the same browser fixture


@pytest.fixture(scope="module")
def visitor_server(tmp_path_factory):
    if not (ORGANISM_DIR / "config.json").is_file():
        pytest.skip(f"the organism checkpoint is not built yet ({ORGANISM_DIR} has no config.json)")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    folder = tmp_path_factory.mktemp("visitor-server")
    config = json.loads((ORGANISM_DIR / "config.json").read_text())  # the organism's shape, so the circuit fits it
    circuit = make_circuit(config["num_hidden_layers"], config["num_attention_heads"], config["intermediate_size"],
                           heads=[(0, 1)], neurons=[(0, 2)], name=NAME)
    listed = circuit.save(folder / "evil.json")
    # 0.0.0.0: the server listens beyond localhost, so sessions are visitors without any setting.
    env = {key: value for key, value in os.environ.items() if key != "SAFESEEK_ADMIN"}
    env.update(SAFESEEK_CIRCUITS=f"evil={listed}", SAFESEEK_SCRATCH=str(folder / "scratch"))
    with app_server("0.0.0.0", ["--device", "cpu"], env, "streamlit-visitor.log") as url:
        yield url


def _visit(chromium, server: str, path: str, **query: str):
    return open_page(chromium, f"{server}/{path}?{urlencode(query)}")


def _text(locator) -> str:
    """What a reader sees (explorer.access.md puts invisible word joiners into URLs so they stay plain text)."""
    return locator.inner_text().replace("\u2060", "")


def _no_evil_links(page) -> None:
    evil = page.locator(EVIL_LINKS)
    assert evil.count() == 0, [evil.nth(i).evaluate("e => e.outerHTML") for i in range(evil.count())]


def test_a_hostile_circuit_name_is_shown_as_text(chromium, visitor_server):
    page = _visit(chromium, visitor_server, "compare", circuit="evil")
    expect(page.locator("[data-testid='stMarkdown']").filter(has_text="Session expired").first).to_be_visible()
    assert NAME in _text(page.locator("[data-testid='stMain']"))  # the name, character for character
    _no_evil_links(page)
    assert page.locator("[data-testid='stException']").count() == 0


@pytest.mark.parametrize("key", ["model", "prompts", "page", "heads"])
def test_hostile_link_values_are_shown_as_text(chromium, visitor_server, key):
    # The start page always shows the bundled organism; a model link opens the Model page.
    page = _visit(chromium, visitor_server, "model" if key == "model" else "", **{key: NAME})
    alert = page.locator("[data-testid='stAlert']").filter(has_text="x](http").first
    expect(alert).to_be_visible()
    shown = NAME.split()[0] if key == "heads" else NAME  # a component list names its first bad token
    assert shown in _text(alert)
    _no_evil_links(page)


@pytest.mark.parametrize("ref", ["/etc/passwd", "../../../etc/passwd", str(REPO_ROOT / "README.md")])
def test_paths_in_links_are_refused_in_one_line(chromium, visitor_server, ref):
    page = _visit(chromium, visitor_server, "compare", circuit=ref)
    alert = page.locator("[data-testid='stAlert']").filter(has_text="is not offered on this server").first
    expect(alert).to_be_visible()
    text = _text(alert)
    assert "Traceback" not in text and str(REPO_ROOT) not in text and "\n" not in text.strip()
    assert page.locator("[data-testid='stException']").count() == 0
    expect(page.get_by_text("visitor mode").first).to_be_visible()
