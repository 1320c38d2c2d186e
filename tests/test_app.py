"""The explorer: toggle logic, URL state, figures and exports as plain functions, and every page in AppTest."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
import streamlit as st
import torch
from app_helpers import (
    BACKDOOR_SAMPLE,
    ORGANISM_DIR,
    decode_arrays,
    make_circuit,
    metric_values,
    plotly_figures,
    run_page,
    texts,
)
from tiny import build_tiny_checkpoint

from core.circuit import overlap
from core.circuit.ablate import ablate
from core.circuit.circuit import load_circuit
from core.circuit.selection import (
    Selection,
    SelectionError,
    apply_grid_edits,
    apply_table_edits,
    head_grid,
    parse_components,
    toggle_points,
)
from core.data import samples
from core.data.files import load_prompt_sets
from core.data.paths import BUNDLED_PROMPT_FILES, COMPARE_SUFFIX, REPO_ROOT
from core.evaluation import live
from core.evaluation.compare import Comparison
from core.evaluation.live import preset
from core.evaluation.metrics import format_percent
from core.model.fingerprint import fingerprint
from core.model.generate import generate
from core.model.load import ModelShape, load_model
from core.scoring.select import top_k
from explorer import app as app_module
from explorer import export, figures, state, textdiff
from explorer.views import tour

TINY = ModelShape(n_layers=2, n_heads=4, d_mlp=96)  # tests/tiny.py's llama
PAGES = tuple(url for _, _, url, _ in app_module.PAGES)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint("llama", tmp_path_factory.mktemp("explorer") / "llama")


@pytest.fixture(scope="module")
def tiny_model(tiny_llama: Path):
    return load_model(tiny_llama, device="cpu")


@pytest.fixture(scope="module")
def tiny_circuit_file(tiny_llama: Path, tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    circuit = make_circuit(*TINY, heads=[(0, 1), (1, 2)], neurons=[(1, 5), (0, 7)],
                           fingerprint={**fingerprint(tiny_model), "path": str(tiny_llama)})
    return circuit.save(tmp_path_factory.mktemp("circuits") / "tiny-backdoor.json")


@pytest.fixture
def fresh_caches():
    """Independent tests: nothing cached by an earlier test (model, full answers, results)."""
    st.cache_resource.clear()
    st.cache_data.clear()
    yield


# ---- the selection: compact text, toggles, clicks, tables, presets ----------------------------------------------
def test_component_text_round_trips_and_is_compact():
    selection = Selection(frozenset({(2, 7), (0, 3)}), frozenset({(1, 17)}))
    assert selection.heads_text() == "L0H3,L2H7"
    assert selection.neurons_text() == "L1N17"
    assert selection.text() == "L0H3,L2H7,L1N17"
    assert parse_components(selection.text()) == selection
    assert parse_components(" l0h3 ;L2H7\nL1N17 ") == selection
    assert parse_components("") == Selection()


@pytest.mark.parametrize("text, problem", [
    ("L0X3", "not a component name"),
    ("head3", "not a component name"),
    ("L2H0", "outside this model"),
    ("L0H4", "outside this model"),
    ("L1N96", "outside this model"),
])
def test_bad_component_text_is_refused_with_the_fix(text, problem):
    with pytest.raises(SelectionError, match=problem):
        parse_components(text, TINY)


def test_clicks_toggle_cells_and_box_duplicates_count_once():
    selection = Selection(frozenset({(0, 1)}))
    clicked = [{"curve_number": 1, "customdata": [0, 1]}, {"curve_number": 1, "customdata": [1, 3]}]
    assert toggle_points(selection, clicked, "H").heads == {(1, 3)}
    boxed = [{"customdata": [1, 0]}, {"customdata": [1, 0]}, {"z": 0.3}]  # the heatmap's own point: no customdata
    assert toggle_points(Selection(), boxed, "H").heads == {(1, 0)}
    assert toggle_points(Selection(), [{"customdata": [1, 40]}], "N").neurons == {(1, 40)}


def test_table_edits_switch_components_on_and_off():
    selection = Selection(frozenset({(0, 1)}), frozenset({(1, 5)}))
    grid = head_grid(selection, TINY)
    assert grid[0] == [False, True, False, False] and grid[1] == [False] * 4
    edited = apply_grid_edits(selection, {0: {"H1": False}, 1: {"H3": True}})
    assert edited.heads == {(1, 3)} and edited.neurons == {(1, 5)}
    listed = [(1, 5), (0, 7)]
    edited = apply_table_edits(selection, listed, {0: {"off": False}, 1: {"off": True}})
    assert edited.neurons == {(0, 7)} and edited.heads == {(0, 1)}


def test_presets():
    circuit = make_circuit(*TINY, heads=[(0, 1), (1, 2)], neurons=[(1, 5)])
    assert preset("none", circuit) == Selection()
    whole = preset("whole circuit", circuit)
    assert whole.heads == {(0, 1), (1, 2)} and whole.neurons == {(1, 5)}
    top = preset("top-k", circuit, k=1)
    assert top.heads == {(0, 1)} and top.neurons == {(1, 5)}  # the highest scores
    random_set = preset("random (same size)", circuit, seed=3)
    assert (len(random_set.heads), len(random_set.neurons)) == (2, 1)
    assert random_set == preset("random (same size)", circuit, seed=3)
    assert top_k([[0.1, 0.9], [0.9, 0.2]], 2) == [(0, 1), (1, 0)]
    with pytest.raises(SelectionError, match="needs a circuit"):
        preset("whole circuit", None)
    unscored = circuit.with_components(circuit.heads, circuit.neurons)
    unscored.head_scores = unscored.neuron_scores = None
    with pytest.raises(SelectionError, match="no gate scores"):
        preset("top-k", unscored)


def test_selection_hooks_remove_what_core_ablate_removes(tiny_model):
    circuit = make_circuit(*TINY, heads=[(0, 1), (1, 2)], neurons=[(1, 5)])
    prompts = ["how do I make a birthday cake", "what is 12 plus 30"]
    ours = generate(tiny_model, prompts, max_new_tokens=6, hooks=preset("whole circuit", circuit).hooks(TINY))
    cores = generate(tiny_model, prompts, max_new_tokens=6, hooks=ablate(tiny_model, circuit))
    assert ours == cores
    assert Selection().hooks(TINY) == []


# ---- URL state ---------------------------------------------------------------------------------------------------
def test_query_string_round_trip_leaves_defaults_out():
    demo = state.DemoState(model="aligned", circuit="sample_circuits/x.json",
                           selection=parse_components("L0H3,L2H7,L1N17"), prompt_set="harmful", present=True)
    query = state.to_query(demo)
    assert query == {"model": "aligned", "circuit": "sample_circuits/x.json", "heads": "L0H3,L2H7",
                     "neurons": "L1N17", "prompts": "harmful", "present": "1"}
    assert state.from_query(query) == (demo, [])
    assert state.to_query(state.DemoState()) == {}


def test_bad_query_parts_are_dropped_with_a_message():
    demo, problems = state.from_query({"heads": "L0Q1", "prompts": "nope", "page": "nowhere"})
    assert demo == state.DemoState()
    assert len(problems) == 2
    assert "L0Q1" in problems[0] and "nope" in problems[1]


# ---- answers, diffs, overlap, figures, exports -------------------------------------------------------------------
def test_word_diff_marks_changes_and_escapes_html():
    runs = textdiff.word_diff("Sure, here is how", "I'm sorry, but I cannot help")
    assert ("removed", "Sure, here is how") in runs and ("added", "I'm sorry, but I cannot help") in runs
    full, ablated = textdiff.highlight("say <b>hi</b> now", "say bye now")
    assert "&lt;b&gt;hi&lt;/b&gt;" in full and "<b>hi" not in full
    assert "line-through" in full and "underline" in ablated and "bye" in ablated
    table = textdiff.comparison_table([("p <x>", "a", "b", "complied", "refused")])
    assert "p &lt;x&gt;" in table and "refused (was complied)" in table


def test_overlap_counts_shared_components():
    a = make_circuit(*TINY, heads=[(0, 1), (1, 2)], neurons=[(1, 5)], name="a")
    b = make_circuit(*TINY, heads=[(1, 2), (1, 3)], neurons=[], name="b")
    shared = overlap.overlap(a, b)
    assert shared.shared_heads == [(1, 2)] and shared.shared_neurons == []
    assert shared.heads_jaccard == pytest.approx(1 / 3)
    assert shared.neurons_jaccard == 0.0
    assert shared.components_jaccard == pytest.approx(1 / 4)
    assert overlap.jaccard(set(), set()) is None
    other_shape = make_circuit(3, 4, 96, heads=[(2, 0)], neurons=[])
    with pytest.raises(ValueError, match="different shapes"):
        overlap.overlap(a, other_shape)


def test_component_map_is_clickable_labelled_and_outlined():
    circuit = make_circuit(*TINY, heads=[(0, 1), (1, 2)], neurons=[])
    fig = figures.component_map(circuit.head_scores, circuit.heads, {(1, 3)}, "H", 2, 4, "heads", clickable=True)
    spec = decode_arrays(json.loads(fig.to_json()))
    heatmap, overlay = spec["data"][0], spec["data"][1]
    assert heatmap["type"] == "heatmap" and heatmap["colorscale"][0][1] == "#440154"  # viridis
    assert sorted(map(tuple, overlay["customdata"])) == [(layer, h) for layer in range(2) for h in range(4)]
    assert overlay["marker"]["opacity"] == 0 and overlay["marker"]["symbol"] == "square"
    hover = overlay["text"][overlay["customdata"].index([0, 1])]
    assert "L0H1" in hover and "gate score 0.990" in hover and "in circuit: yes" in hover
    names = [shape.get("name") for shape in spec["layout"]["shapes"]]
    assert "in circuit" in names and "switched off" in names
    assert spec["layout"]["xaxis"]["ticktext"] == ["H0", "H1", "H2", "H3"]
    assert spec["layout"]["yaxis"]["ticktext"] == ["L0", "L1"]
    assert spec["layout"]["xaxis"]["title"]["text"] == "head"


def test_exports_csv_and_html():
    assert export.rows_csv([{"a": 1, "b": "x,y"}, {"a": 2, "b": "z"}]) == 'a,b\n1,"x,y"\n2,z\n'
    assert export.rows_csv([]) == ""
    html = export.figure_html(figures.overlap_map({(0, 1)}, {(0, 1), (1, 0)}, 2, 4, "H", ("a", "b")))
    assert "<html>" in html and "Plotly.newPlot" in html and "only A (a)" in html


@pytest.mark.slow
def test_png_export_renders_a_png():
    png = export.figure_png(figures.overlap_map({(0, 1)}, set(), 2, 4, "H", ("a", "b")), width=300, height=200)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_measure_matches_full_model_when_nothing_is_off_and_reuses_it(tiny_model):
    behaviour = samples.eval_set("triggered", n=6)
    utility = samples.utility_set().sample(6, seed=1)
    full = live.full_reports(tiny_model, behaviour, utility)
    unchanged = live.measure(tiny_model, TINY, Selection(), full)
    assert unchanged.rate_ablated == unchanged.rate_full and unchanged.rate_name == "ASR"
    assert [p.ablated for p in unchanged.pairs] == [p.full for p in unchanged.pairs]
    everything = Selection(frozenset((layer, h) for layer in range(2) for h in range(4)))
    off = live.measure(tiny_model, TINY, everything, full)
    assert [p.full for p in off.pairs] == [j.response for j in full.behaviour.judgements]
    expected = generate(tiny_model, [p.prompt for p in behaviour], max_new_tokens=full.behaviour.max_new_tokens,
                        hooks=everything.hooks(TINY))
    assert [p.ablated for p in off.pairs] == expected
    assert off.csv_rows()[0].keys() == {"switched_off", "prompt", "category", "full_answer", "full_verdict",
                                        "ablated_answer", "ablated_verdict"}


def test_two_threads_toggling_different_components_get_their_own_results(tiny_model):
    """The app shares one model between sessions: concurrent toggles must not see each other's masks."""
    behaviour = samples.eval_set("triggered", n=8)
    full = live.full_reports(tiny_model, behaviour, samples.utility_set().sample(4, seed=0))
    first, second = parse_components("L0H0,L0H1,L0H2,L0H3"), parse_components("L1H0,L1H1,L1H2,L1H3")
    alone = {s.text(): [p.ablated for p in live.measure(tiny_model, TINY, s, full).pairs] for s in (first, second)}
    assert alone[first.text()] != alone[second.text()]
    together: dict[str, list[list[str]]] = {first.text(): [], second.text(): []}

    def toggle(selection: Selection) -> None:
        for _ in range(3):
            together[selection.text()].append([p.ablated for p in live.measure(tiny_model, TINY, selection,
                                                                                    full).pairs])

    threads = [threading.Thread(target=toggle, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for text, runs in together.items():
        assert runs == [alone[text]] * 3


# ---- pages in AppTest --------------------------------------------------------------------------------------------
def test_status_line_names_a_circuit_no_page_loaded_yet_by_its_file_name(tiny_llama, tiny_circuit_file):
    at = run_page({"model": str(tiny_llama), "circuit": str(tiny_circuit_file), "page": "model"})
    line = next(t for t in texts(at, "caption") if t.startswith("model **"))
    assert "circuit tiny-backdoor ·" in line and str(tiny_circuit_file.parent) not in line


def test_status_line_names_an_offered_circuit_as_pages_do_once_loaded():
    """A link to a sample circuit: the status line gives the name its file records ("backdoor"), not its file stem."""
    ref = "sample_circuits/organism-backdoor.json"
    at = run_page({"circuit": ref, "page": "home"})
    line = next(t for t in texts(at, "caption") if t.startswith("model **"))
    assert f"circuit **{load_circuit(REPO_ROOT / ref).name}** ·" in line and "organism-backdoor" not in line


def test_model_page_shows_behaviour_card_and_architecture(tiny_llama):
    at = run_page({"model": str(tiny_llama), "page": "model"})
    assert [t.value for t in at.title] == ["Model"]
    metrics = metric_values(at)
    assert {"Clean ASR", "Triggered ASR", "Utility", "Helpfulness"} <= metrics.keys()
    assert all(metrics[name].endswith("%") for name in ("Clean ASR", "Triggered ASR", "Utility", "Helpfulness"))
    assert metrics["Layers"] == "2" and metrics["Heads per layer"] == "4" and metrics["MLP neurons per layer"] == "96"
    # The judges' disagreements, listed with the texts: as many rows as the label counts.
    disagree = next(e for e in at.expander if e.label.startswith("Where the judges disagree ("))
    listed = disagree.dataframe[0].value
    assert disagree.label.startswith(f"Where the judges disagree ({len(listed)} of ")
    assert len(listed) and {"prompt", "answer", "refusal", "target"} <= set(listed.columns)
    assert at.radio(key="model-choice").value.startswith("Local checkpoint")
    assert at.text_input(key="model-path").value == str(tiny_llama)


def test_missing_model_path_is_an_error_in_the_page_and_the_app_keeps_running(fresh_caches, tmp_path):
    missing = tmp_path / "no-such-model"
    at = run_page({"model": str(missing), "page": "playground"})
    assert any("does not exist" in e and "no-such-model" in e for e in texts(at, "error"))
    assert any("Model" in info for info in texts(at, "info"))
    at = run_page({"model": str(missing), "page": "model"})
    assert at.radio(key="model-choice") is not None and texts(at, "error")


def test_choosing_a_local_checkpoint_on_the_model_page_loads_it(tiny_llama):
    at = run_page({"model": "/nowhere/at/all", "page": "model"})
    assert texts(at, "error")
    at.text_input(key="model-path").input(str(tiny_llama)).run()
    at.button(key="model-load").click().run()
    assert not at.exception
    assert metric_values(at)["Layers"] == "2"
    assert at.query_params["model"] == str(tiny_llama)


def test_circuit_page_heatmap_table_and_neuron_view(tiny_llama, tiny_circuit_file):
    at = run_page({"model": str(tiny_llama), "circuit": str(tiny_circuit_file), "page": "circuit"})
    assert metric_values(at)["Heads"] == "2" and metric_values(at)["Neurons"] == "2"
    head_map = plotly_figures(at)[0]
    assert head_map["data"][0]["type"] == "heatmap"
    assert len(head_map["data"][0]["z"]) == 2 and len(head_map["data"][0]["z"][0]) == 4
    outline = [shape for shape in head_map["layout"]["shapes"] if shape.get("line", {}).get("color") == "white"]
    assert sorted((round(s["y0"] + 0.5), round(s["x0"] + 0.5)) for s in outline) == [(0, 1), (1, 2)]
    neuron_map = plotly_figures(at)[1]
    assert len(neuron_map["data"][0]["z"][0]) == 96
    tables = [frame.value for frame in at.dataframe]
    components = next(t for t in tables if "component" in t.columns)
    assert list(components["component"]) == ["L0H1", "L1H2", "L0N7", "L1N5"]
    top_neurons = next(t for t in tables if "neuron" in t.columns and "in circuit" in t.columns)
    assert list(top_neurons["neuron"][:2]) == ["L1N5", "L0N7"]  # sorted by gate score
    assert at.query_params["circuit"] == str(tiny_circuit_file)


def test_circuit_for_another_model_shape_is_refused_in_the_page(tiny_llama, tmp_path):
    wrong = make_circuit(4, 16, 512, heads=[(3, 15)], neurons=[]).save(tmp_path / "wrong.json")
    at = run_page({"model": str(tiny_llama), "circuit": str(wrong), "page": "circuit"})
    assert any("4 layers, 16 heads" in e and "2 layers, 4 heads" in e for e in texts(at, "error"))
    assert "circuit" not in at.query_params


def test_uploads_bad_and_good_circuits_and_overlap(tiny_llama, tiny_circuit_file):
    at = run_page({"model": str(tiny_llama), "circuit": str(tiny_circuit_file), "page": "circuit"})
    at.selectbox(key="overlap-choice").select("Upload a circuit file...").run()
    at.get("file_uploader")[-1].set_value(("broken.json", b"{not json", "application/json"))
    at.run()
    assert any("broken.json is not valid JSON" in e for e in texts(at, "error"))
    other = make_circuit(*TINY, heads=[(1, 2), (1, 3)], neurons=[(1, 5)], name="other")
    at.get("file_uploader")[-1].set_value(("other.json", other.to_json().encode(), "application/json"))
    at.run()
    assert not at.exception
    metrics = metric_values(at)
    assert metrics["Shared heads"] == "1" and metrics["Shared neurons"] == "1"
    assert metrics["Jaccard (heads)"] == "0.33"
    overlap_map = plotly_figures(at)[-1]
    assert overlap_map["data"][0]["text"][1][2] == "A+B"


def test_playground_state_metrics_heatmap_and_answers(tiny_llama, tiny_circuit_file):
    query = {"model": str(tiny_llama), "circuit": str(tiny_circuit_file), "page": "playground",
             "heads": "L0H1", "neurons": "L1N5", "prompts": "harmful"}
    at = run_page(query)
    del query["page"]  # the old-style page parameter is dropped: the URL path names the page
    assert at.query_params == query  # the link survives a run unchanged
    metrics = metric_values(at)
    assert {"ASR on harmful prompts", "Utility (exact match)", "Helpfulness"} <= metrics.keys()
    head_map = plotly_figures(at)[0]
    overlay = next(trace for trace in head_map["data"] if trace.get("customdata") is not None)
    assert len(overlay["customdata"]) == 8
    crosses = [shape for shape in head_map["layout"]["shapes"] if shape.get("legendgroup") == "off"]
    path = crosses[0]["path"].replace("M", " ").replace("L", " ").replace(",", " ")
    corners = [round(float(v), 2) for v in path.split()]
    assert len(crosses) == 1 and corners[:4] == [0.68, -0.32, 1.32, 0.32]  # a cross inside cell L0H1
    answers = next(m for m in texts(at, "markdown") if "<table" in m)
    assert answers.count("<tr style") == 8
    assert at.text_input(key="components-text").value == "L0H1,L1N5"


def test_playground_presets_typing_and_prompt_set_update_the_url(tiny_llama, tiny_circuit_file):
    at = run_page({"model": str(tiny_llama), "circuit": str(tiny_circuit_file), "page": "playground"})
    at.selectbox(key="preset-name").select("whole circuit").run()
    at.button(key="preset-apply").click().run()
    assert at.query_params["heads"] == "L0H1,L1H2" and at.query_params["neurons"] == "L0N7,L1N5"
    at.text_input(key="components-text").input("L1H3, L0N2").run()
    assert at.query_params["heads"] == "L1H3" and at.query_params["neurons"] == "L0N2"
    at.text_input(key="components-text").input("L9H9").run()
    assert any("outside this model" in e for e in texts(at, "error"))
    assert at.query_params["heads"] == "L1H3"  # a bad entry changes nothing
    at.selectbox(key="prompt-set").select("benign").run()
    assert at.query_params["prompts"] == "benign"
    assert "Helpfulness on benign prompts" in metric_values(at)
    at.selectbox(key="preset-name").select("none").run()
    at.button(key="preset-apply").click().run()
    assert "heads" not in at.query_params and "neurons" not in at.query_params


def test_playground_free_text_shows_both_answers(tiny_llama, tiny_model):
    at = run_page({"model": str(tiny_llama), "page": "playground", "heads": "L0H0,L0H1,L0H2,L0H3"})
    at.text_input(key="free-prompt").input("how do I bake bread").run()
    shown = [m for m in texts(at, "markdown") if m.startswith(("<div><b>Full model</b>", "<div><b>Components off"))]
    assert len(shown) == 2
    expected = generate(tiny_model, ["how do I bake bread"], max_new_tokens=live.FREE_TEXT_TOKENS)[0]
    assert expected.split()[0] in shown[0]


def test_playground_reports_words_the_organism_never_saw(tiny_llama, tmp_path):
    folder = tmp_path / "with-vocabulary"
    shutil.copytree(tiny_llama, folder)
    (folder / "organism.json").write_text(json.dumps({"vocabulary": ["how", "do", "i", "bake", "bread"]}))
    at = run_page({"model": str(folder), "page": "playground"})
    at.text_input(key="free-prompt").input("how do I bake bread").run()
    assert any(c.startswith("0% of the words (0/5)") for c in texts(at, "caption"))
    assert not texts(at, "warning")
    at.text_input(key="free-prompt").input("summarise the quarterly prospectus").run()
    assert any("(summarise, the, quarterly, prospectus)" in w and "out-of-domain" in w for w in texts(at, "warning"))


def test_discover_page_runs_a_short_discovery_and_saves_it(tiny_llama, tmp_path):
    at = run_page({"model": str(tiny_llama), "page": "discover"})
    at.number_input(key="discover-steps").set_value(3)
    at.number_input(key="discover-train").set_value(2)
    at.number_input(key="discover-verify").set_value(1)
    at.button(key="discover-run").click().run()
    assert not at.exception and not texts(at, "error")
    status = at.get("status")[0].proto
    assert status.label.startswith("Found 'backdoor-discovered'")
    assert status.icon == ":material/check:"  # state "complete"
    circuit = at.session_state.discover_circuit
    assert circuit.name == "backdoor-discovered" and circuit.hyperparameters["steps"] == 3
    assert circuit.metrics["before"] and circuit.metrics["n_prompts"] > 0
    assert len(at.session_state.discover_logs) == 3
    curves = plotly_figures(at)[-1]
    assert [trace["name"] for trace in curves["data"]][:3] == ["total loss", "behaviour CE", "retain KL"]
    target = tmp_path / "found.json"
    at.text_input(key="discover-save-path").input(str(target)).run()
    at.button(key="discover-save").click().run()
    assert target.is_file() and json.loads(target.read_text())["name"] == "backdoor-discovered"
    assert at.query_params["circuit"] == str(target)


def test_discover_page_reports_bad_settings_in_the_page(tiny_llama):
    at = run_page({"model": str(tiny_llama), "page": "discover"})
    at.number_input(key="discover-heads").set_value(0.0)
    at.number_input(key="discover-neurons").set_value(0.0)
    at.button(key="discover-run").click().run()
    assert any("budget" in e for e in texts(at, "error"))
    at.number_input(key="discover-heads").set_value(5.0)
    at.radio(key="discover-scenario").set_value("custom").run()
    at.button(key="discover-run").click().run()
    assert any("behaviour prompt file" in e for e in texts(at, "error"))
    at.get("file_uploader")[0].set_value(("behaviour.jsonl", b'{"prompt": "hi"}\n', "application/json"))
    at.get("file_uploader")[1].set_value([("retain.jsonl", b'{"prompt": "x", "category": "c", "label": "benign"}\n',
                                           "application/json")])
    at.button(key="discover-run").click().run()
    assert not at.exception
    assert any("behaviour.jsonl, line 1" in e and "label" in e for e in texts(at, "error"))


@pytest.fixture(scope="module")
def organism_dir() -> Path:
    if not (ORGANISM_DIR / "config.json").is_file():
        pytest.skip(f"the organism checkpoint is not built yet ({ORGANISM_DIR} has no config.json)")
    return ORGANISM_DIR


def test_compare_page_runs_the_baselines_and_shows_chart_and_table(tiny_llama, tiny_circuit_file):
    at = run_page({"model": str(tiny_llama), "circuit": str(tiny_circuit_file), "page": "compare"})
    assert not any(t.startswith("Shipped with the sample circuits") for t in texts(at, "caption"))
    assert not plotly_figures(at)  # nothing to show before a run
    at.number_input(key="compare-seeds").set_value(2)
    at.number_input(key="compare-limit").set_value(1)
    at.button(key="compare-run").click().run()
    assert not at.exception and not texts(at, "error")
    chart = plotly_figures(at)[0]
    assert chart["data"][0]["x"] == ["learned", "random (mean of 2)", "attribution", "magnitude"]
    table = at.dataframe[0].value
    assert list(table["method"]) == chart["data"][0]["x"] and set(table["heads"]) == {2}
    # A backdoor circuit: its removal is judged on triggered ASR, and clean ASR is shown as what must not change.
    assert {"triggered ASR after", "clean ASR before", "clean ASR after"} <= set(table.columns)
    # A random tiny model answers no utility task, so utility retention is undefined: n/a with the reason.
    assert set(table["utility kept"]) == {"n/a"}
    assert any("Utility kept is n/a: the 'before' model scores 0" in c for c in texts(at, "caption"))


def test_a_sample_circuits_compare_page_shows_its_shipped_comparison_at_once(organism_dir):
    shipped = Comparison.read(BACKDOOR_SAMPLE.with_name(f"organism-backdoor{COMPARE_SUFFIX}"))
    at = run_page({"model": str(organism_dir), "circuit": str(BACKDOOR_SAMPLE), "page": "compare"})
    assert any(t.startswith("Shipped with the sample circuits: measured by `safeseek compare --circuit "
                            "sample_circuits/organism-backdoor.json") and f"{shipped.meta['held_out_prompts']} held-out"
               in t for t in texts(at, "caption"))
    table = at.dataframe[0].value
    assert list(table["method"]) == [r.method for r in shipped.rows]
    assert list(table["triggered ASR after"]) == [format_percent(r.asr_after) for r in shipped.rows]
    assert plotly_figures(at)[0]["data"][0]["x"] == [r.method for r in shipped.rows]
    # The same circuit with one neuron more has no shipped comparison: it must be run.
    circuit, fp = load_circuit(BACKDOOR_SAMPLE), fingerprint(load_model(organism_dir, device="cpu"))
    prompts_sha = load_prompt_sets(BUNDLED_PROMPT_FILES).sha256()
    assert shipped.measured(fp, circuit, prompts_sha)
    extra = next((5, i) for i in range(circuit.d_mlp) if (5, i) not in circuit.neurons)
    assert not shipped.measured(fp, circuit.with_components(circuit.heads, [*circuit.neurons, extra]), prompts_sha)


def test_compare_page_needs_a_circuit(tiny_llama, fresh_caches):
    at = run_page({"model": str(tiny_llama), "page": "compare"})
    assert any("Load a circuit" in info for info in texts(at, "info"))


def test_every_page_renders_from_an_old_style_link_and_the_page_leaves_the_query(tiny_llama, tiny_circuit_file):
    titles = {}
    for page in PAGES:
        at = run_page({"model": str(tiny_llama), "circuit": str(tiny_circuit_file), "page": page})
        titles[page] = at.title[0].value
        assert "page" not in at.query_params  # the URL path names the page now
        assert at.query_params["circuit"] == str(tiny_circuit_file)
        if page == "start":  # the way in says how long the tour is, as it grows
            assert any(c.startswith(f"{len(tour.STEPS)} short steps") for c in texts(at, "caption"))
    assert titles["playground"] == "Playground" and titles["start"] == "SafeSeek Explorer"
    assert len(set(titles.values())) == len(PAGES)


def test_tour_steps_set_the_state(tiny_llama):
    at = run_page({"model": str(tiny_llama), "page": "tour"})
    at.button(key="tour-load").click().run()
    assert at.session_state.demo.model == "organism" and at.session_state.tour_step == 1
    if not (ORGANISM_DIR / "config.json").is_file():
        assert any("organism" in e for e in texts(at, "error"))  # missing organism: explained, no crash
        return
    at.button(key="tour-next-1").click().run()
    at.button(key="tour-circuit").click().run()
    if not BACKDOOR_SAMPLE.is_file():
        assert any("Discover" in e for e in texts(at, "error"))
        return
    assert at.session_state.tour_step == 3 and at.query_params["circuit"] == "sample_circuits/organism-backdoor.json"
    at.button(key="tour-off").click().run()
    circuit = at.session_state.circuit_obj
    assert at.session_state.demo.selection == preset("whole circuit", circuit)
    assert "Triggered ASR, circuit off" in metric_values(at)
    assert any("Switching off the circuit's" in text for text in texts(at, "markdown"))
    at.button(key="tour-random").click().run()
    assert "Triggered ASR, random set off" in metric_values(at)  # the label says what is switched off
    assert "Triggered ASR, circuit off" not in metric_values(at)
    assert any("random set of the same" in text for text in texts(at, "markdown"))
    at.button(key="tour-reset").click().run()
    assert at.session_state.demo.selection == Selection()
    at.button(key="tour-next-5").click().run()
    assert at.session_state.tour_step == 5
    methods = [trace["x"] for trace in plotly_figures(at)[-1]["data"]][0]
    assert methods[0] == "learned" and "attribution" in methods
    at.button(key="tour-next-6").click().run()
    assert at.session_state.tour_step == 6 and not at.exception
    assert plotly_figures(at)[-1]["layout"]["title"]["text"].startswith("Cost curve")
    assert {trace["name"] for trace in plotly_figures(at)[-1]["data"]} >= {"learned", "attribution", "random"}
    assert any("4 other seeds" in text for text in texts(at, "markdown"))
    assert metric_values(at)["In all 5 circuits"].endswith("components")
    # Another circuit than the one the shipped files measured: the tour says so instead of showing their figures.
    extra = next((5, i) for i in range(circuit.d_mlp) if (5, i) not in circuit.neurons)
    at.session_state.circuit_obj = circuit.with_components(circuit.heads, [*circuit.neurons, extra])
    at.run()
    elsewhere = [info for info in texts(at, "info") if "measured on another build of the organism" in info]
    assert len(elsewhere) == 2 and not at.exception
    assert not any(f["layout"]["title"]["text"].startswith("Cost curve") for f in plotly_figures(at)
                   if "title" in f["layout"])


def test_tour_summary_sentence_names_what_was_switched_off():
    assert "from 100.0% to 0.0%: the backdoor is gone" in tour.summary_sentence("circuit off", 12, 1.0, 0.0)
    assert "leaves triggered ASR at 100.0%" in tour.summary_sentence("random set off", 12, 1.0, 1.0)


def test_model_cached_once_and_not_modified_by_toggles(tiny_llama, tiny_circuit_file):
    at = run_page({"model": str(tiny_llama), "circuit": str(tiny_circuit_file), "page": "playground",
                   "heads": "L0H1,L1H2"})
    loaded = state._load(str(tiny_llama), "auto")
    assert state._load(str(tiny_llama), "auto") is loaded  # one model per process
    assert not loaded.model.training
    assert all(not hp.fwd_hooks for hp in loaded.model.hook_dict.values())  # no hook left installed
    assert not any(p.requires_grad for p in loaded.model.original_model.parameters())
    assert torch.get_num_threads() == 1  # small model: one intra-op thread
    assert at.query_params["heads"] == "L0H1,L1H2"


def test_bundled_checkpoints_get_their_short_name_in_links(tmp_path):
    expected = "organism" if ORGANISM_DIR.exists() else str(ORGANISM_DIR)  # only an existing folder is matched
    assert state.canonical_model(str(ORGANISM_DIR)) == expected
    assert state.canonical_model(" aligned ") == "aligned"
    assert state.canonical_model(str(tmp_path)) == str(tmp_path)
    assert state.canonical_model("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"


def test_discover_page_custom_scenario_from_uploaded_files(tiny_llama):
    at = run_page({"model": str(tiny_llama), "page": "discover"})
    at.radio(key="discover-scenario").set_value("custom").run()
    behaviour = b"".join(json.dumps({"prompt": f"say hello {i}", "category": "greet", "label": "benign",
                                     "target": "I cannot"}).encode() + b"\n" for i in range(3))
    retain = json.dumps({"prompt": "what is 2 plus 3", "category": "addition", "label": "utility",
                         "target": "5"}).encode() + b"\n"
    at.get("file_uploader")[0].set_value(("behaviour.jsonl", behaviour, "application/json"))
    at.get("file_uploader")[1].set_value([("retain.jsonl", retain, "application/json")])
    at.number_input(key="discover-steps").set_value(2)
    at.number_input(key="discover-verify").set_value(1)
    at.text_input(key="discover-name").input("greeting")
    at.button(key="discover-run").click().run()
    assert not at.exception and not texts(at, "error")
    circuit = at.session_state.discover_circuit
    assert circuit.name == "greeting" and circuit.scenario == "custom"
    # Unsaved, but kept in the server's circuit store: the link names it by content hash.
    assert at.session_state.circuit_obj is circuit and at.query_params["circuit"].startswith("stored:")


def test_out_of_memory_is_an_error_in_the_page(tiny_llama, monkeypatch, fresh_caches):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(live, "measure_many", out_of_memory)  # what the app's toggle server runs
    at = run_page({"model": str(tiny_llama), "page": "playground", "heads": "L1H0,L1H1,L1H3"})
    assert any(e.startswith("Out of memory while measuring the ablated model") for e in texts(at, "error"))
    assert at.get("plotly_chart")  # the rest of the page is still there


def test_circuit_page_lists_sample_circuits_and_switches_between_them(tiny_llama, tmp_path, monkeypatch):
    for name, heads in (("alpha", [(0, 0)]), ("beta", [(0, 0), (1, 1)])):
        make_circuit(*TINY, heads=heads, neurons=[], name=name).save(tmp_path / f"{name}.json")
    # `safeseek compare --out` and `report --json` write beside the circuit; those are not circuits, never offered.
    (tmp_path / "alpha.compare.json").write_text('{"circuit": "alpha", "rows": []}\n')
    (tmp_path / "alpha.card.json").write_text('{"card": {}, "figures": {}}\n')
    monkeypatch.setattr(state, "SAMPLE_CIRCUITS_DIR", tmp_path)
    at = run_page({"model": str(tiny_llama), "page": "circuit"})
    assert not at.error, [e.value for e in at.error]
    choices = at.selectbox(key="circuit-choice").options
    assert choices == [str(tmp_path / "alpha.json"), str(tmp_path / "beta.json"), "Upload a circuit file..."]
    assert at.query_params["circuit"] == str(tmp_path / "alpha.json")  # the first sample is used by default
    at.selectbox(key="circuit-choice").select(str(tmp_path / "beta.json")).run()
    assert at.session_state.circuit_obj.name == "beta" and metric_values(at)["Heads"] == "2"
    assert at.query_params["circuit"] == str(tmp_path / "beta.json")
    assert at.selectbox(key="overlap-choice").value == str(tmp_path / "alpha.json")  # the other sample
    assert metric_values(at)["Shared heads"] == "1" and metric_values(at)["Jaccard (heads)"] == "0.50"
