"""The explorer's Streamlit-free state: the circuit store links name, undo/redo and snapshots, heatmap shapes, and
the pages that use them (stored-circuit links, presenter mode, undo) in AppTest."""

from __future__ import annotations

import json
import os

import pytest
from app_helpers import decode_arrays, make_circuit, metric_values, run_page

from core.circuit import history
from core.circuit.circuit import CircuitFileError
from core.circuit.selection import Selection, parse_components
from core.circuit.store import CircuitStore, circuit_id
from explorer import figures


# ---- circuit store -----------------------------------------------------------------------------------------------
def test_store_round_trips_by_content_hash_and_refuses_ids_that_are_not_hex(tmp_path):
    store = CircuitStore(tmp_path / "store")
    circuit = make_circuit(2, 4, 8, heads=[(0, 1)], neurons=[(1, 3)], name="found")
    key = store.put(circuit)
    assert len(key) == 64 and key == circuit_id(circuit) and store.put(circuit) == key  # same content, same id
    assert store.get(key).to_json() == circuit.to_json()
    assert [p.name for p in (tmp_path / "store").iterdir()] == [f"{key}.json"]  # no temp file left behind
    for bad in ("../../etc/passwd", key.upper(), key[:-1], "/tmp/x.json", ""):
        with pytest.raises(CircuitFileError, match="not a stored-circuit id"):
            store.get(bad)
    with pytest.raises(CircuitFileError, match="no stored circuit"):
        store.get("0" * 64)
    (tmp_path / "store" / f"{key}.json").write_text(make_circuit(2, 4, 8, [(1, 1)], []).to_json())
    with pytest.raises(CircuitFileError, match="does not match its id"):
        store.get(key)


def test_store_keeps_its_quota_by_evicting_the_least_recently_used(tmp_path):
    circuits = [make_circuit(2, 4, 8, heads=[(0, i)], neurons=[], name=f"c{i}") for i in range(4)]
    size = len(circuits[0].to_json().encode())
    store = CircuitStore(tmp_path, quota_bytes=int(size * 3.5))
    keys = []
    for age, circuit in enumerate(circuits[:3]):
        keys.append(store.put(circuit))
        os.utime(tmp_path / f"{keys[-1]}.json", (1000 + age, 1000 + age))  # c0 oldest
    store.get(keys[0])  # used again: now the newest
    (tmp_path / "notes.txt").write_text("not ours")  # a file that is not an entry is never touched
    keys.append(store.put(circuits[3]))
    assert sorted(p.stem for p in store.entries()) == sorted([keys[0], keys[2], keys[3]])  # c1 evicted
    assert store.size() <= store.quota_bytes and (tmp_path / "notes.txt").exists()


# ---- undo / redo / snapshots -------------------------------------------------------------------------------------
def test_undo_redo_and_snapshots_restore_exact_selections():
    a, b, c = Selection(), parse_components("L0H1"), parse_components("L0H1,L1N3")
    past = history.record(history.record(history.History(), a, b), b, c)
    past, shown = history.undo(past, c)
    assert shown == b and past.can_redo
    past, shown = history.undo(past, shown)
    assert shown == a and not past.can_undo
    assert history.undo(past, a) == (past, a)  # nothing left: unchanged
    past, shown = history.redo(past, shown)
    assert shown == b
    assert not history.record(past, b, parse_components("L2H2")).can_redo  # a new change drops the redo list
    past = history.save_snapshot(past, " circuit off ", c)
    past, shown = history.restore_snapshot(past, "circuit off", b)
    assert shown == c and history.undo(past, c)[1] == b  # restoring is itself undoable
    with pytest.raises(ValueError, match="saved snapshots: circuit off"):
        history.restore_snapshot(past, "nope", c)
    with pytest.raises(ValueError, match="give the snapshot a name"):
        history.save_snapshot(past, "  ", c)


# ---- heatmaps ----------------------------------------------------------------------------------------------------
def test_heatmap_hover_names_cells_and_outlines_are_cell_shapes():
    fig = figures.component_map(None, {(2, 9)}, {(1, 3)}, "H", 4, 16, "Attention heads: a title long enough to wrap",
                                clickable=True)
    spec = decode_arrays(json.loads(fig.to_json()))
    heatmap = spec["data"][0]
    assert heatmap["text"][2][9] == "L2H9" and heatmap["hovertemplate"].startswith("%{text}")
    rects = [s for s in spec["layout"]["shapes"] if s["type"] == "rect"]
    assert {(r["x0"], r["x1"], r["y0"], r["y1"]) for r in rects} == {(8.5, 9.5, 1.5, 2.5)}  # exactly the cell
    assert all(r["xref"] == "x" and r["yref"] == "y" for r in rects)  # data coordinates: they scale with the plot
    assert any(s["type"] == "path" and s.get("name") == "switched off" for s in spec["layout"]["shapes"])
    assert "<br>" in spec["layout"]["title"]["text"]  # wrapped, not clipped
    neurons = figures.component_map(None, {(0, 134)}, (), "N", 2, 512, "MLP neurons", clickable=True)
    assert decode_arrays(json.loads(neurons.to_json()))["data"][0]["text"][0][134] == "L0N134"
    overlap = figures.overlap_map({(0, 134), (1, 2)}, {(0, 134)}, 2, 512, "N", ("a", "b"))
    spec = decode_arrays(json.loads(overlap.to_json()))
    assert spec["data"][0]["customdata"][0][134] == ["L0N134", "both"]
    assert [(s["x0"], s["y0"]) for s in spec["layout"]["shapes"]] == [(133.5, -0.5)]  # shared neuron outlined


# ---- pages -------------------------------------------------------------------------------------------------------
@pytest.fixture
def organism_app():
    from app_helpers import ORGANISM_DIR
    if not (ORGANISM_DIR / "config.json").is_file():
        pytest.skip("the organism checkpoint is not built")
    return ORGANISM_DIR


def test_a_stored_circuit_link_reopens_the_discovered_circuit(organism_app, tmp_path, monkeypatch):
    monkeypatch.setenv("SAFESEEK_CIRCUIT_STORE", str(tmp_path))
    from app_helpers import BACKDOOR_SAMPLE

    from core.circuit.circuit import load_circuit
    circuit = load_circuit(BACKDOOR_SAMPLE).with_components([(0, 1)], [(0, 5)], name="discovered-here")
    key = CircuitStore().put(circuit)
    at = run_page({"circuit": f"stored:{key}", "page": "circuit"})
    assert at.session_state.circuit_obj.name == "discovered-here"
    assert at.query_params["circuit"] == f"stored:{key}"
    at = run_page({"circuit": "stored:../../etc/passwd", "page": "circuit"})
    assert any("not a stored-circuit id" in e.value for e in at.error)


def test_presenter_mode_and_undo_in_the_playground(organism_app):
    query = {"circuit": "sample_circuits/organism-backdoor.json", "page": "playground", "present": "1"}
    at = run_page(query)
    assert at.title[0].value == "Switching a safety circuit off"
    assert not at.get("page_link")  # no navigation, no developer detail
    before = metric_values(at)
    at.button(key="present-off").click().run()
    off = metric_values(at)
    assert off != before and at.session_state.demo.selection.size > 0
    at.button(key="undo").click().run()
    assert metric_values(at) == before and at.session_state.demo.selection == Selection()
    at.button(key="redo").click().run()
    assert metric_values(at) == off


def test_tune_opened_from_a_link_starts_on_the_links_circuit(organism_app):
    # The link names a circuit no page has loaded yet: the picker must still offer it, and start on it.
    at = run_page({"circuit": "sample_circuits/organism-backdoor.json", "page": "tune"})
    assert at.selectbox(key="tune-circuit-choice").value == "sample_circuits/organism-backdoor.json"
    assert "sample_circuits/organism-backdoor.json" in at.selectbox(key="tune-circuit-choice").options
