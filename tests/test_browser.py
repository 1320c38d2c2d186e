"""The explorer in a real browser: `streamlit run` driven by Playwright's Chromium (clicks, discovery, two users).

Expected values come from the same functions the app calls (core.evaluation.live on the organism), so the tests check
that what the browser shows is what the app computed for that click, not a fixed number.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from app_helpers import ORGANISM_DIR, REPO_ROOT, make_circuit

from core.circuit.selection import Selection
from core.data import samples
from core.data.paths import ORGANISM_TRIGGER
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


@contextlib.contextmanager
def app_server(address: str, app_args: list[str], env: dict[str, str], log_name: str) -> Iterator[str]:
    """`streamlit run explorer/app.py` on a free port (its log under test-output/); yields the local URL."""
    port = _free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "explorer" / "app.py"),
               "--server.headless", "true", "--server.port", str(port), "--server.address", address,
               "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false", "--", *app_args]
    log_path = SCREENSHOTS.parent / log_name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:  # the child keeps its own copy of the handle
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**env, "OMP_NUM_THREADS": "1"})
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
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def server(organism):
    with app_server("127.0.0.1", ["--model", str(ORGANISM_DIR), "--device", "cpu"], dict(os.environ),
                    "streamlit.log") as url:
        yield url


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


def link(server: str, page: str = "", **query: str) -> str:
    """A link as a user copies it: the URL path names the page, the query string holds the demo state."""
    return f"{server}/{page}?{urlencode(query, safe='/,:')}"


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
    query = {"heads": toggle.start.heads_text()} if toggle.start.heads else {}
    return link(server, "playground", **query)


# ---- tests -----------------------------------------------------------------------------------------------------
def test_playground_renders_the_clickable_heatmap(server, chromium, setup):
    shape, _, circuit = setup
    page = open_page(chromium, link(server, "playground", circuit=str(circuit)))
    expect(page.locator("[data-testid='stPlotlyChart']").first).to_be_visible()
    traces = page.evaluate("() => document.querySelector('.js-plotly-plot').data.map(t => [t.type, t.name || ''])")
    assert traces[0][0] == "heatmap"
    shapes = page.evaluate("() => document.querySelector('.js-plotly-plot').layout.shapes.map(s => s.name || '')")
    assert "in circuit" in shapes  # the circuit outline, a border around its cell
    cells = page.evaluate("() => document.querySelector('.js-plotly-plot').data[1].customdata.length")
    assert cells == shape.n_layers * shape.n_heads
    # The title names the circuit (wrapped over lines on narrow charts, so read the title element as a whole).
    expect(page.locator(".gtitle").first).to_contain_text("Attention heads")
    expect(page.locator(".gtitle").first).to_contain_text("'browser-test'")
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
    page = open_page(chromium, link(server, "discover"))
    page.get_by_label("Steps").fill("6")
    page.get_by_label("Steps").press("Enter")
    page.get_by_label("Training prompts per family").fill("4")
    page.get_by_label("Training prompts per family").press("Enter")
    page.get_by_label("Held-out prompts per family to verify on").fill("2")
    page.get_by_label("Held-out prompts per family to verify on").press("Enter")
    page.wait_for_selector(IDLE)
    page.get_by_role("button", name="Run discovery").click()
    expect(page.get_by_text("Result: 'backdoor-discovered'")).to_be_visible()
    status = page.locator("[data-testid='stExpander']", has_text="Found 'backdoor-discovered'")
    expect(status).to_be_visible()
    status.locator("summary").click()
    expect(status.locator("[data-testid='stProgress']")).to_contain_text("step 6 / 6")
    expect(page.get_by_text("It is now the demo's circuit")).to_be_visible()
    expect(page.get_by_role("button", name="Download circuit JSON").first).to_be_visible()
    # The address names the discovered circuit (a content hash in the server's store): a copied link reopens it.
    deadline = time.monotonic() + 15
    while not parse_qs(urlparse(page.url).query).get("circuit", [""])[0].startswith("stored:"):
        assert time.monotonic() < deadline, page.url
        page.wait_for_timeout(200)
    copied = page.url.replace("/discover", "/circuit")
    page.context.close()
    other = open_page(chromium, copied)
    expect(other.get_by_role("heading", name="'backdoor-discovered' (backdoor)")).to_be_visible()
    expect(other.locator("[role='dialog']")).to_have_count(0)
    other.context.close()


PAGES = ("start", "tour", "playground", "circuit", "discover", "compare", "report", "tune", "model")
PHONE = {"width": 390, "height": 844}


# Horizontal overflow of the document or of Streamlit's scrolling main area, in pixels.
OVERFLOW = """() => Math.max(...[document.documentElement, document.querySelector("[data-testid='stMain']")]
    .map(e => e.scrollWidth - e.clientWidth))"""


def status_text(page) -> str:
    return page.locator("[data-testid='stCaptionContainer']").first.inner_text()


def test_every_page_opens_cleanly_from_a_copied_link_with_its_state_and_screenshots(server, chromium):
    """No 'Page not found' dialog, the same state on every page, no horizontal overflow; screenshots at two sizes
    go to test-output/screenshots/ (see README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    query = {"circuit": "sample_circuits/organism-backdoor.json", "heads": "L2H5"}
    for viewport, suffix in ((VIEWPORT, "1280x800"), (PHONE, "390x844")):
        context = chromium.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        for name in PAGES:
            page.goto(link(server, "" if name == "start" else name, **query))
            settle(page)
            page.wait_for_timeout(400)  # let plotly finish drawing
            expect(page.locator("[role='dialog']")).to_have_count(0)
            expect(page.locator("[data-testid='stException']")).to_have_count(0)
            assert parse_qs(urlparse(page.url).query) == {key: [value] for key, value in query.items()}, name
            assert "backdoor" in status_text(page) and "switched off: L2H5" in status_text(page), name
            overflow = page.evaluate(OVERFLOW)
            assert overflow <= 0, f"{name} at {suffix} overflows by {overflow}px"
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{suffix}.png"))
        context.close()


def test_back_returns_to_the_previous_page_in_one_press(server, chromium):
    page = open_page(chromium, link(server, "", circuit="sample_circuits/organism-backdoor.json"))
    for title in ("Playground", "Circuit"):
        page.locator("[data-testid='stPageLink-NavLink']", has_text=title).first.click()
        expect(page.locator("h1").first).to_have_text(title)
        settle(page)
    page.go_back()
    expect(page.locator("h1").first).to_have_text("Playground")
    page.go_back()
    expect(page.locator("h1").first).to_have_text("SafeSeek Explorer")
    page.context.close()


def test_three_rapid_clicks_on_three_cells_toggle_exactly_those(server, chromium):
    page = open_page(chromium, link(server, "playground", circuit="sample_circuits/organism-backdoor.json"))
    for head in (1, 2, 3):  # no waiting for the app between clicks
        page.get_by_role("button", name=f"L0H{head}", exact=True).click()
        page.wait_for_timeout(50)
    expect(components_box(page)).to_have_value("L0H1,L0H2,L0H3")
    settle(page)
    expect(components_box(page)).to_have_value("L0H1,L0H2,L0H3")
    page.context.close()


def answers_table(page):
    return page.locator("table").first


def test_undo_and_redo_restore_the_exact_asr_and_answers(server, chromium, setup):
    _, toggles, _ = setup
    toggle = toggles[0]
    page = open_page(chromium, playground_link(server, toggle))
    expect(asr_metric(page)).to_have_text(toggle.rate_before)
    before_answers = answers_table(page).inner_text()
    layer, head = toggle.head
    page.get_by_role("button", name=f"L{layer}H{head}", exact=True).click()
    expect(asr_metric(page)).to_have_text(toggle.rate_after)
    settle(page)
    after_answers = answers_table(page).inner_text()
    assert after_answers != before_answers
    page.get_by_role("button", name="Undo").click()
    expect(asr_metric(page)).to_have_text(toggle.rate_before)
    expect(components_box(page)).to_have_value(toggle.start.text())
    settle(page)
    assert answers_table(page).inner_text() == before_answers
    page.get_by_role("button", name="Redo").click()
    expect(asr_metric(page)).to_have_text(toggle.rate_after)
    settle(page)
    assert answers_table(page).inner_text() == after_answers
    page.context.close()


def test_png_export_returns_a_png(server, chromium, tmp_path):
    page = open_page(chromium, link(server, "circuit", circuit="sample_circuits/organism-backdoor.json"))
    button = page.get_by_role("button", name="Download PNG").first
    expect(button).to_be_visible()
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        button.click()
    path = tmp_path / "map.png"
    download.value.save_as(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.context.close()


def test_presenter_mode_renders_large_without_developer_detail(server, chromium):
    page = open_page(chromium, link(server, "playground", circuit="sample_circuits/organism-backdoor.json",
                                    present="1"))
    expect(page.locator("h1").first).to_have_text("Switching a safety circuit off")
    expect(page.locator("[data-testid='stPageLink-NavLink']")).to_have_count(0)
    assert page.evaluate("() => getComputedStyle(document.documentElement).fontSize") == "22px"
    assert page.locator("[data-testid='stPlotlyChart']").count() == 1  # one heatmap
    page.get_by_role("button", name="Circuit off").click()
    settle(page)
    triggered = next(p for p in samples.demo_prompts() if p.endswith(f" {ORGANISM_TRIGGER}"))
    page.get_by_text(triggered, exact=True).click()
    settle(page)
    full = page.locator(".ss-answer").first  # the full model complies with the triggered request: blurred
    expect(full).to_have_class("ss-answer ss-blur")
    assert "blur" in full.evaluate("e => getComputedStyle(e).filter")
    full.click()
    assert full.evaluate("e => getComputedStyle(e).filter") == "none"
    page.screenshot(path=str(SCREENSHOTS / "presenter-1280x800.png"))
    page.context.close()


CONTRAST = """(el) => {
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b]
      .map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
      .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  let bg = null;
  for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length < 4 || c[3] > 0) { bg = c; break; }
  }
  bg = bg || [255, 255, 255];
  const fg = rgb(getComputedStyle(el).color);
  const a = fg.length > 3 ? fg[3] : 1;  // a translucent colour is blended over its background
  const seen = [0, 1, 2].map(i => a * fg[i] + (1 - a) * bg[i]);
  const [l1, l2] = [lum(seen), lum(bg)].sort((x, y) => y - x);
  return (l1 + 0.05) / (l2 + 0.05);
}"""


def test_tour_answers_and_captions_have_aa_contrast_and_the_tour_walks_to_its_end(server, chromium):
    page = open_page(chromium, link(server, "tour"))
    page.get_by_role("button", name="Load the backdoored organism").click()
    answers = page.locator(".tour-answer")
    expect(answers).to_have_count(2)
    ratios = [answers.nth(i).evaluate(CONTRAST) for i in range(2)]
    captions = page.locator("[data-testid='stCaptionContainer']")
    ratios += [captions.nth(i).evaluate(CONTRAST) for i in range(captions.count())]
    print(f"tour contrast ratios: answers {ratios[:2]}, captions {ratios[2:]}")
    assert min(ratios) >= 4.5, ratios
    settle(page)
    for button in ("Next: find the circuit behind it", "Load the sample backdoor circuit", "Switch the circuit off",
                   "Next: learned vs random vs attribution", "Next: is the circuit real?"):
        page.get_by_role("button", name=button).click()
        settle(page)
    expect(page.get_by_text("Step 7 of 7: Is the circuit real?")).to_be_visible()
    expect(page.locator("h4", has_text="7. Is the circuit real?")).to_be_visible()
    expect(page.locator("[data-testid='stException']")).to_have_count(0)
    # The page scrolls inside Streamlit's main area, not the document: bring the step's end into view.
    page.locator("[data-testid='stCaptionContainer']").last.scroll_into_view_if_needed()
    page.wait_for_timeout(400)  # let plotly finish drawing
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "tour-end-1280x800.png"))
    page.context.close()
