"""The explorer in a real browser: `streamlit run` driven by Playwright's Chromium (clicks, discovery, two users).

Expected values come from the same functions the app calls (core.evaluation.live on the organism), so the tests check
that what the browser shows is what the app computed for that click, not a fixed number.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from app_helpers import ORGANISM_DIR, REPO_ROOT, make_circuit

from core.circuit.selection import Selection
from core.data import samples
from core.evaluation import live
from core.model.fingerprint import fingerprint
from core.model.load import ModelShape, load_model, model_shape

pytestmark = [pytest.mark.browser, pytest.mark.slow]

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
expect.set_options(timeout=60_000)  # a rerun generates on 100+ prompts; 2 shared cores can be slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 90_000


# ---- fixtures: the organism, a test circuit, one app server, one browser ---------------------------------------
@pytest.fixture(scope="module")
def organism():
    if not (ORGANISM_DIR / "config.json").is_file():
        pytest.skip(f"the organism checkpoint is not built yet ({ORGANISM_DIR} has no config.json)")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return load_model(ORGANISM_DIR, device="cpu")


@dataclass
class Toggle:
    """A starting set of switched-off heads, a head to click, and what the app should show before and after."""

    start: Selection
    head: tuple[int, int]
    rate_before: str
    rate_after: str
    first_answer_after: str


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def find_toggles(model, shape: ModelShape, count: int) -> list[Toggle]:
    """Clicks that change the triggered ASR and the shown answers, found by running the app's own measurement.

    Candidates: one head off from nothing; one head back on from a whole layer off (a big change for sure).
    """
    full = live.full_reports(model, samples.eval_set("triggered"), samples.utility_set())
    starts = [Selection()] + [Selection(frozenset((layer, h) for h in range(shape.n_heads)))
                              for layer in reversed(range(shape.n_layers))]
    found: list[Toggle] = []
    for start in starts:
        before = live.measure(model, shape, start, full)
        for layer in range(shape.n_layers):
            for head in range(shape.n_heads):
                after = live.measure(model, shape, start.toggle_head(layer, head), full)
                answers_changed = [p.ablated for p in after.pairs[:8]] != [p.ablated for p in before.pairs[:8]]
                new_head = all(t.head != (layer, head) for t in found)
                if after.rate_ablated != before.rate_ablated and answers_changed and new_head:
                    found.append(Toggle(start, (layer, head), _percent(before.rate_ablated),
                                        _percent(after.rate_ablated), after.pairs[0].ablated))
                    if len(found) == count:
                        return found
    pytest.fail("no single head click changes the organism's triggered ASR and answers; the organism or the "
                "toggle path is broken")


@pytest.fixture(scope="module")
def setup(organism, tmp_path_factory):
    shape = model_shape(organism)
    toggles = find_toggles(organism, shape, 2)
    circuit = make_circuit(shape.n_layers, shape.n_heads, shape.d_mlp, heads=[toggles[0].head], neurons=[(0, 1)],
                           fingerprint=fingerprint(organism), name="browser-test")
    path = circuit.save(tmp_path_factory.mktemp("browser") / "browser-test.json")
    return shape, toggles, path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(organism):
    port = _free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "explorer" / "app.py"),
               "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
               "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
               "--", "--model", str(ORGANISM_DIR), "--device", "cpu"]
    log_path = SCREENSHOTS.parent / "streamlit.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:  # the child keeps its own copy of the handle
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    break
        except OSError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            pytest.fail(f"streamlit did not start (see {log_path})")
        time.sleep(0.3)
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def chromium():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def settle(page) -> None:
    """Wait until the script run is over and every element is drawn (no loading skeletons left)."""
    page.wait_for_selector(IDLE)
    expect(page.locator("[data-testid='stStatusWidgetRunningIcon']")).to_have_count(0)
    expect(page.locator("[data-testid='stSkeleton']")).to_have_count(0)
    page.wait_for_selector(IDLE)


def open_page(chromium, url: str):
    context = chromium.new_context(viewport=VIEWPORT)  # a new context is a new user (own session)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    settle(page)
    return page


def link(server: str, **query: str) -> str:
    return f"{server}/?{urlencode(query, safe='/,:')}"


# ---- helpers that read and click the Playground -----------------------------------------------------------------
def asr_metric(page):
    return page.locator("[data-testid='stMetric']", has_text="ASR on triggered prompts").locator(
        "[data-testid='stMetricValue']")


def components_box(page):
    return page.get_by_label("Switched-off components (edit to type them: L0H3, L1N17, ...)")


def click_head(page, shape: ModelShape, layer: int, head: int) -> None:
    """Click the centre of a head's cell (layer 0 is the top row) on the Playground's heatmap."""
    plot = page.locator("[data-testid='stPlotlyChart']").first.locator(".nsewdrag").first
    expect(plot).to_be_visible()
    box = plot.bounding_box()
    x = box["x"] + (head + 0.5) / shape.n_heads * box["width"]
    y = box["y"] + (layer + 0.5) / shape.n_layers * box["height"]
    page.mouse.move(x, y)
    page.mouse.click(x, y)


def playground_link(server: str, toggle: Toggle) -> str:
    query = {"page": "playground"}
    if toggle.start.heads:
        query["heads"] = toggle.start.heads_text()
    return link(server, **query)


# ---- tests -----------------------------------------------------------------------------------------------------
def test_playground_renders_the_clickable_heatmap(server, chromium, setup):
    shape, _, circuit = setup
    page = open_page(chromium, link(server, page="playground", circuit=str(circuit)))
    expect(page.locator("[data-testid='stPlotlyChart']").first).to_be_visible()
    traces = page.evaluate("() => document.querySelector('.js-plotly-plot').data.map(t => [t.type, t.name || ''])")
    assert traces[0][0] == "heatmap"
    assert ["scatter", "in circuit"] in traces  # the circuit outline
    cells = page.evaluate("() => document.querySelector('.js-plotly-plot').data[1].customdata.length")
    assert cells == shape.n_layers * shape.n_heads
    expect(page.get_by_text("Attention heads · circuit 'browser-test'")).to_be_visible()
    page.context.close()


def test_clicking_a_head_toggles_it_and_updates_asr_and_answers(server, chromium, setup):
    shape, toggles, _ = setup
    toggle = toggles[0]
    page = open_page(chromium, playground_link(server, toggle))
    expect(asr_metric(page)).to_have_text(toggle.rate_before)
    click_head(page, shape, *toggle.head)
    expected = toggle.start.toggle_head(*toggle.head)
    expect(components_box(page)).to_have_value(expected.text())
    expect(asr_metric(page)).to_have_text(toggle.rate_after)
    expect(page.locator("table").first).to_contain_text(toggle.first_answer_after)
    # The query string is rewritten after the page redraws: poll it rather than read it once.
    want = [expected.heads_text()] if expected.heads else None
    deadline = time.monotonic() + 15
    while parse_qs(urlparse(page.url).query).get("heads") != want and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert parse_qs(urlparse(page.url).query).get("heads") == want
    click_head(page, shape, *toggle.head)  # a second click switches it back
    expect(components_box(page)).to_have_value(toggle.start.text())
    expect(asr_metric(page)).to_have_text(toggle.rate_before)
    page.context.close()


def test_two_users_toggling_different_heads_see_their_own_results(server, chromium, setup):
    shape, toggles, _ = setup
    first, second = open_page(chromium, playground_link(server, toggles[0])), \
        open_page(chromium, playground_link(server, toggles[1]))
    click_head(first, shape, *toggles[0].head)
    click_head(second, shape, *toggles[1].head)  # both reruns run at once on the shared model
    for page, toggle in ((first, toggles[0]), (second, toggles[1])):
        expect(components_box(page)).to_have_value(toggle.start.toggle_head(*toggle.head).text())
        expect(asr_metric(page)).to_have_text(toggle.rate_after)
        expect(page.locator("table").first).to_contain_text(toggle.first_answer_after)
    first.context.close()
    second.context.close()


def test_a_short_discovery_shows_progress_and_produces_a_circuit(server, chromium):
    page = open_page(chromium, link(server, page="discover"))
    page.get_by_label("Steps").fill("6")
    page.get_by_label("Steps").press("Enter")
    page.get_by_label("Training prompts per family").fill("4")
    page.get_by_label("Training prompts per family").press("Enter")
    page.get_by_label("Held-out prompts per family to verify on").fill("2")
    page.get_by_label("Held-out prompts per family to verify on").press("Enter")
    page.wait_for_selector(IDLE)
    page.get_by_role("button", name="Run discovery").click()
    expect(page.get_by_text("Result: 'backdoor'")).to_be_visible()
    status = page.locator("[data-testid='stExpander']", has_text="Found 'backdoor'")
    expect(status).to_be_visible()
    status.locator("summary").click()
    expect(status.locator("[data-testid='stProgress']")).to_contain_text("step 6 / 6")
    expect(page.get_by_text("It is now the demo's circuit")).to_be_visible()
    expect(page.get_by_role("button", name="Download circuit JSON").first).to_be_visible()
    page.context.close()


def test_screenshot_of_every_page(server, chromium, setup):
    _, toggles, circuit = setup
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    heads = toggles[0].start.toggle_head(*toggles[0].head).heads_text()
    for name in ("model", "discover", "circuit", "playground", "compare", "tour"):
        page = open_page(chromium, link(server, page=name, circuit=str(circuit), heads=heads))
        expect(page.locator("h1").first).to_be_visible()
        settle(page)
        page.wait_for_timeout(500)  # let plotly finish drawing
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path))
        assert path.stat().st_size > 10_000, f"{name} screenshot looks empty"
        # The whole page too (Streamlit scrolls inside the app, so grow the window to the content).
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(height, 800), 6000)})
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-full.png"))
        page.context.close()
