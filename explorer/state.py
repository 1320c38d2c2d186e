"""A demo's state (model, circuit, switched-off components, prompt set, presenter flag): session keys, URL form, caches.

The page is not part of it: the URL path names the page (st.navigation), so a link opens that page directly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TypeVar

import streamlit as st
import torch

from core.circuit.circuit import Circuit, CircuitFileError, check_compatible, check_shape, load_circuit
from core.circuit.history import History, record
from core.circuit.selection import Selection, SelectionError, parse_components
from core.circuit.store import CircuitStore
from core.data import samples
from core.data.files import load_prompt_sets
from core.data.paths import (
    ASSETS_DIR,
    BUNDLED_PROMPT_FILES,
    CARD_SUFFIX,
    COMPARE_SUFFIX,
    REPO_ROOT,
    SAMPLE_CIRCUITS_DIR,
)
from core.data.prompts import PromptSet
from core.evaluation import live
from core.evaluation.compare import Comparison, shipped_comparison
from core.evaluation.report import EvalReport, evaluate
from core.model.cache import BudgetLRU
from core.model.fingerprint import fingerprint
from core.model.load import (
    ModelLoadError,
    ModelShape,
    inference_threads,
    load_model,
    model_shape,
    parameter_count,
)
from explorer import access
from explorer.access import md

T = TypeVar("T")

# Short names for the bundled checkpoints, so links stay short and work from any checkout.
MODEL_ALIASES = {"organism": ASSETS_DIR / "organism", "aligned": ASSETS_DIR / "organism-aligned"}
DEFAULT_MODEL = "organism"
# A circuit kept in the server's circuit store (a discovered, unsaved one) is named "stored:<sha256 hex>" in links.
STORED = "stored:"
# Threads are process-wide, so the model loaded last decides (core.model.load.inference_threads).
DEFAULT_THREADS = torch.get_num_threads()
# Memory budgets of the shared caches (MiB; SAFESEEK_MODEL_BUDGET_MB / SAFESEEK_RESULTS_BUDGET_MB override them).
MODEL_BUDGET_MB = 4096
RESULTS_BUDGET_MB = 64
SCRATCH_PREFIX = "scratch/"  # names of a session's own files (saved circuits, tuned checkpoints)


@dataclass(frozen=True)
class DemoState:
    """Everything a shared link reopens; the page-local choices (sliders, second circuit) are not part of it."""

    model: str = DEFAULT_MODEL
    circuit: str | None = None  # a circuit's name (access.circuit choices), STORED + id, or (admins) a file path
    selection: Selection = Selection()
    prompt_set: str = samples.DEFAULT_PROMPT_SET
    present: bool = False  # presenter mode: large type, one heatmap, curated prompts, no developer detail


def to_query(state: DemoState) -> dict[str, str]:
    """The compact query string of a state; defaults are left out."""
    query = {"model": state.model} if state.model != DEFAULT_MODEL else {}
    if state.circuit:
        query["circuit"] = state.circuit
    if state.selection.heads:
        query["heads"] = state.selection.heads_text()
    if state.selection.neurons:
        query["neurons"] = state.selection.neurons_text()
    if state.prompt_set != samples.DEFAULT_PROMPT_SET:
        query["prompts"] = state.prompt_set
    if state.present:
        query["present"] = "1"
    return query


def from_query(query: dict[str, str]) -> tuple[DemoState, list[str]]:
    """The state a query string describes, and a message for each part that had to be dropped."""
    problems = []
    state = DemoState(model=query.get("model") or DEFAULT_MODEL, circuit=query.get("circuit") or None,
                      present=query.get("present", "") not in ("", "0", "false"))
    try:
        text = " ".join(query.get(key, "") for key in ("heads", "neurons"))
        state = replace(state, selection=parse_components(text))
    except SelectionError as e:
        problems.append(f"switched-off components in the link were ignored: {e}")
    prompt_set = query.get("prompts") or samples.DEFAULT_PROMPT_SET
    if prompt_set in samples.PROMPT_SETS:
        state = replace(state, prompt_set=prompt_set)
    else:
        known = ", ".join(samples.PROMPT_SETS)
        problems.append(f"unknown prompt set {prompt_set!r} in the link; use one of {known}")
    return state, problems


# ---- session state ---------------------------------------------------------------------------------------------
def init_session(query: dict[str, str], default_model: str = DEFAULT_MODEL) -> None:
    """On a session's first run, take the demo state from the URL (a shared link) or the defaults."""
    if "demo" in st.session_state:
        return
    if "model" not in query:
        query = {**query, "model": default_model}
    demo, problems = from_query(query)
    model = canonical_model(demo.model)
    if not access.is_admin() and model not in model_choices():
        # Never carried on into the page links: a visitor's link can only name a model on offer.
        problems.append(f"model {model!r} is not offered on this server; showing {default_model!r} (the Model page "
                        "lists the others)")
        model = default_model
    st.session_state.demo = replace(demo, model=model)
    st.session_state.url_problems = problems
    st.session_state.circuit_obj = None  # the loaded Circuit (also unsaved ones from Discover or an upload)
    st.session_state.circuit_loaded_from = None
    st.session_state.version = 0  # bumped on every selection change: fresh keys reset charts and tables
    st.session_state.history = History()  # undo / redo / snapshots of the selection


def demo() -> DemoState:
    return st.session_state.demo


def update(**changes) -> None:
    """Change the demo state; a new selection also resets the click charts and the editable tables."""
    st.session_state.demo = replace(st.session_state.demo, **changes)
    if "selection" in changes:
        st.session_state.version += 1


def set_selection(selection: Selection, undoable: bool = True) -> None:
    """Show `selection`; a user's change can be undone (undo/redo themselves pass undoable=False)."""
    if undoable:
        st.session_state.history = record(st.session_state.history, demo().selection, selection)
    update(selection=selection)


def circuit_store() -> CircuitStore:
    """The server's store of circuits that links name by content hash (SAFESEEK_CIRCUIT_STORE or the user cache)."""
    return CircuitStore()


def set_circuit(circuit: Circuit | None, ref: str | None) -> None:
    """Use `circuit` (ref = its file). An unsaved circuit goes into the circuit store, so a link still names it."""
    if circuit is not None and ref is None:
        try:
            ref = STORED + circuit_store().put(circuit)
        except (CircuitFileError, OSError) as e:
            st.warning(f"This circuit cannot be kept on the server ({e}); links will not include it until it is "
                       "saved to a file.")
    st.session_state.circuit_obj = circuit
    st.session_state.circuit_loaded_from = ref
    update(circuit=ref)


def relative_ref(path: str | Path) -> str:
    """A circuit file as links name it: relative to the repository when inside it, else absolute."""
    resolved = Path(path).expanduser().resolve()
    try:
        return str(resolved.relative_to(REPO_ROOT))
    except ValueError:
        return str(resolved)


def resolve_ref(ref: str) -> Path:
    path = Path(ref).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


# ---- what may be read: names for visitors, also paths for admins ---------------------------------------------------
def _scratch_files(kind: str) -> dict[str, Path]:
    return dict(st.session_state.get(f"scratch_{kind}", {}))


def remember_scratch(kind: str, name: str, path: Path) -> str:
    """Offer a file this session wrote into its scratch area ("circuits" or "models") under a name; the name."""
    ref = f"{SCRATCH_PREFIX}{name}"
    st.session_state[f"scratch_{kind}"] = {**_scratch_files(kind), ref: path}
    return ref


def model_choices() -> dict[str, Path]:
    """Model name -> checkpoint folder: the bundled ones, those an admin listed, the session's tuned ones."""
    return {**MODEL_ALIASES, **access.listed(access.MODELS_ENV), **_scratch_files("models")}


def circuit_choices() -> dict[str, Path]:
    """Circuit name -> file: the sample circuits, those an admin listed, the ones this session saved."""
    samples = {relative_ref(path): path for path in sample_circuit_files()}
    return {**samples, **access.listed(access.CIRCUITS_ENV), **_scratch_files("circuits")}


def circuit_path(ref: str) -> Path:
    """The file of a circuit name (visitors: only names on offer; admins: also any path)."""
    choices = circuit_choices()
    if ref in choices:
        return choices[ref]
    if access.is_admin():
        return resolve_ref(ref)
    raise access.AccessError(f"it is not offered on this server; pick a circuit by name on the Circuit page "
                             f"({', '.join(choices) or 'none'}) or upload a circuit file")


def offered_circuit_name(ref: str) -> str | None:
    """The name recorded in an offered circuit file (as pages show it once loaded), None when `ref` is not on offer
    or its file cannot be read."""
    path = circuit_choices().get(ref)
    if path is None:
        return None
    try:
        return _circuit_name(str(path), path.stat().st_mtime_ns)
    except (CircuitFileError, OSError):
        return None


@st.cache_data(max_entries=64, show_spinner=False)
def _circuit_name(path: str, mtime_ns: int) -> str:  # mtime_ns: a rewritten file is read again
    return load_circuit(path, max_bytes=access.MAX_CIRCUIT_BYTES).name


# ---- the shared model ------------------------------------------------------------------------------------------
@dataclass
class LoadedModel:
    """One model shared by every session (never modify it: masks are passed per call as hooks).

    What is measured on it lives here too, so evicting the model from the cache frees all of it.
    """

    spec: str
    path: str
    model: object
    fingerprint: dict
    shape: ModelShape
    parameters: int
    bytes: int
    device: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _full: dict = field(default_factory=dict, repr=False)  # prompt set -> live.FullReports
    _servers: dict = field(default_factory=dict, repr=False)  # prompt set -> live.ToggleServer
    _card: list = field(default_factory=list, repr=False)

    def full_reports(self, prompt_set: str) -> live.FullReports:
        """The full model's answers on a prompt set (computed once per model)."""
        with self._lock:
            if prompt_set not in self._full:
                self._full[prompt_set] = live.full_reports(self.model, samples.eval_set(prompt_set),
                                                               samples.utility_set())
            return self._full[prompt_set]

    def toggle_server(self, prompt_set: str) -> live.ToggleServer:
        """The server batching every session's toggles on this model and prompt set."""
        full = self.full_reports(prompt_set)
        with self._lock:
            if prompt_set not in self._servers:
                self._servers[prompt_set] = live.ToggleServer(self.model, self.shape, full)
            return self._servers[prompt_set]

    def behaviour_card(self) -> EvalReport:
        with self._lock:
            if not self._card:
                self._card.append(evaluate(self.model, samples.card_set(), batch_size=64, model_name=self.spec,
                                           fingerprint=self.fingerprint))
            return self._card[0]


def _budget(variable: str, default_mb: int) -> int:
    try:
        return int(float(os.environ.get(variable, default_mb)) * 2**20)
    except ValueError:
        return default_mb * 2**20


@st.cache_resource
def _models() -> BudgetLRU:
    """The loaded models (the least recently used go first when their weights exceed the memory budget)."""
    return BudgetLRU(_budget("SAFESEEK_MODEL_BUDGET_MB", MODEL_BUDGET_MB), size_of=lambda loaded: loaded.bytes)


@st.cache_resource
def _results() -> BudgetLRU:
    """Measured toggles shared by every session, bounded by the size of their answers."""
    return BudgetLRU(_budget("SAFESEEK_RESULTS_BUDGET_MB", RESULTS_BUDGET_MB), size_of=_result_bytes)


def session_memo(name: str, key: Hashable, compute: Callable[[], T]) -> T:
    """compute() once per session for `key` (kept in the session's `name` table), e.g. looking up what ships beside
    the sample circuits, which must not run again on every rerun."""
    table = st.session_state.setdefault(name, {})
    if key not in table:
        table[key] = compute()
    return table[key]


def shipped_comparison_for(loaded: LoadedModel, circuit: Circuit) -> Comparison | None:
    """The comparison shipped beside the sample circuits that measured this circuit on this model with the bundled
    prompt files (core.evaluation.compare.shipped_comparison), looked up once per session, model and circuit."""
    return session_memo("shipped_comparisons", (demo().model, circuit.to_json()),
                        lambda: shipped_comparison(SAMPLE_CIRCUITS_DIR, loaded.fingerprint, circuit,
                                                   bundled_prompts_sha256()))


def bundled_prompts() -> PromptSet:
    """The bundled prompt files as one set (every scenario's training data and the held-out splits), read once per
    version of the files and shared by every session: callers must not change it."""
    return _bundled_prompts(_bundled_versions())[0]


def bundled_prompts_sha256() -> str:
    """bundled_prompts().sha256(), hashed once: results shipped beside the sample circuits are matched by it."""
    return _bundled_prompts(_bundled_versions())[1]


def _bundled_versions() -> tuple:
    return tuple((str(path), path.stat().st_mtime_ns, path.stat().st_size) for path in map(Path, BUNDLED_PROMPT_FILES))


@st.cache_resource(max_entries=1)
def _bundled_prompts(versions: tuple) -> tuple[PromptSet, str]:
    prompts = load_prompt_sets(BUNDLED_PROMPT_FILES)
    return prompts, prompts.sha256()


def _result_bytes(result: live.AblationResult | str) -> int:
    if isinstance(result, str):
        return 256 + 2 * len(result)
    return 512 + sum(2 * (len(p.prompt) + len(p.full) + len(p.ablated)) + 256 for p in result.pairs)


def model_path(spec: str) -> str:
    """The checkpoint of a model name (visitors: only names on offer; admins: also any folder or hub id)."""
    choices = model_choices()
    if spec in choices:
        return str(choices[spec])
    if access.is_admin():
        return spec
    raise access.AccessError(f"it is not offered on this server; choose one of {', '.join(choices)} on the "
                             "Model page")


def model_loader(loaded: LoadedModel) -> partial:
    """A picklable callable that loads `loaded`'s model again as the app loaded it (for worker processes)."""
    return partial(load_model, loaded.path, device=loaded.device)


def _load(spec: str, device: str) -> LoadedModel:
    path = model_path(spec)

    def load() -> LoadedModel:
        model = load_model(path, device=device)  # as model_loader loads it again
        parameters = parameter_count(model)
        size = sum(p.numel() * p.element_size() for p in model.original_model.parameters())
        torch.set_num_threads(inference_threads(model, DEFAULT_THREADS))
        return LoadedModel(spec, path, model, fingerprint(model), model_shape(model), parameters, size, device)

    return _models().get((path, device), load)


def load(spec: str) -> LoadedModel:
    """A model by spec on the app's device (cached per process); ModelLoadError when it cannot be loaded."""
    return _load(canonical_model(spec), device())


def device() -> str:
    """The device models load on (the app's --device option)."""
    return st.session_state.get("device", "auto")


def canonical_model(spec: str) -> str:
    """The short name of a bundled checkpoint given by path ("organism"), so links stay short; else `spec`."""
    spec = spec.strip()
    if spec in model_choices() or not access.is_admin():  # a visitor's text is a name, never looked up on disk
        return spec
    path = Path(spec).expanduser()
    for alias, alias_path in MODEL_ALIASES.items():
        if spec == alias or (path.exists() and path.resolve() == alias_path.resolve()):
            return alias
    return spec


def change_model(spec: str) -> None:
    """Switch the demo to another model; the circuit is checked against it again on next use."""
    update(model=canonical_model(spec))
    st.session_state.circuit_loaded_from = None


def current_model() -> LoadedModel | None:
    """The demo's model (cached per process); None, with the error shown, when it cannot be loaded."""
    spec = demo().model
    try:
        with st.spinner("Loading the model..."):
            return _load(spec, device())
    except (ModelLoadError, access.AccessError) as e:
        st.error(f"Cannot load model {md(repr(spec))}: {md(access.public_message(e))}")
    except torch.OutOfMemoryError:
        st.error(f"Not enough memory to load {md(repr(spec))}; pick a smaller model or run with "
                 "`-- --device cpu`.")
    return None


def require_model() -> LoadedModel:
    """The loaded model, or stop the page with an explanation (the error is already on screen)."""
    loaded = current_model()
    if loaded is None:
        st.info("Pick a model that loads on the **Model** page to continue.")
        st.stop()
    return loaded


# ---- cached measurements (the full model's never change; ablated ones are keyed by the selection) ----------------
def full_reports(spec: str, device: str, prompt_set: str) -> live.FullReports:
    with st.spinner("Running the full model on the held-out prompts..."):
        return _load(spec, device).full_reports(prompt_set)


def behaviour_card(spec: str, device: str) -> EvalReport:
    with st.spinner("Measuring the model's behaviour on a held-out sample..."):
        return _load(spec, device).behaviour_card()


def ablation_result(spec: str, device: str, prompt_set: str, selection_text: str) -> live.AblationResult:
    """The ablated model's results for one selection; shared by every session (the model is deterministic).

    Concurrent sessions' toggles are measured together in one batched run (LoadedModel.toggle_server).
    """
    loaded = _load(spec, device)
    selection = parse_components(selection_text, loaded.shape)
    server = loaded.toggle_server(prompt_set)
    return _results().get((loaded.path, device, prompt_set, selection.text()), lambda: server.measure(selection))


def free_text_answer(spec: str, device: str, prompt: str, selection_text: str) -> str:
    """The answer to a typed prompt (at most access.limits().prompt_chars characters)."""
    limit = access.limits().prompt_chars
    if len(prompt) > limit:
        raise access.AccessError(f"the prompt has {len(prompt)} characters; type at most {limit}")
    loaded = _load(spec, device)
    tokens = min(live.FREE_TEXT_TOKENS, access.limits().new_tokens)
    selection = parse_components(selection_text, loaded.shape)
    return _results().get((loaded.path, device, "free text", prompt, selection.text(), tokens),
                          lambda: live.answer(loaded.model, loaded.shape, prompt, selection, tokens))


# ---- the demo's circuit ----------------------------------------------------------------------------------------
def read_circuit_file(ref: str, loaded: LoadedModel) -> tuple[Circuit, list[str]]:
    """A circuit by name (admins: or path) checked against the model: (circuit, warnings); CircuitFileError or
    access.AccessError when unusable. Files over access.MAX_CIRCUIT_BYTES are refused unread."""
    if str(ref).startswith(STORED):  # a discovered circuit kept in the app's own store, by content hash
        circuit = circuit_store().get(str(ref)[len(STORED):])
    else:
        circuit = load_circuit(circuit_path(str(ref)), max_bytes=access.MAX_CIRCUIT_BYTES)
    return circuit, check_compatible(circuit, loaded.fingerprint)


def current_circuit(loaded: LoadedModel) -> Circuit | None:
    """The demo's circuit: loaded from the link's file on first use, shape-checked against the model."""
    ref = demo().circuit
    circuit = st.session_state.circuit_obj
    if ref and st.session_state.circuit_loaded_from != ref:
        try:
            circuit, notes = read_circuit_file(ref, loaded)
        except (CircuitFileError, access.AccessError) as e:
            # The link's value only by its last part: a visitor's path is not echoed back.
            st.error(f"Cannot use circuit {md(repr(Path(ref).name))}: {md(access.public_message(e))}")
            set_circuit(None, None)
            return None
        for note in notes:
            st.warning(md(access.public_message(note)))
        st.session_state.circuit_obj = circuit
        st.session_state.circuit_loaded_from = ref
    if circuit is not None:
        try:
            check_shape(circuit, loaded.shape)
        except CircuitFileError as e:
            st.error(f"Cannot use circuit {md(repr(circuit.name))}: {md(access.public_message(e))}")
            set_circuit(None, None)
            return None
    return circuit


def valid_selection(loaded: LoadedModel) -> Selection:
    """The switched-off components, dropping (with an error) any that this model does not have."""
    selection = demo().selection
    try:
        return parse_components(selection.text(), loaded.shape)
    except SelectionError as e:
        st.error(f"Switched-off components were reset: {md(e)}")
        set_selection(Selection())
        return Selection()


def sample_circuit_files() -> list[Path]:
    """The circuit files in sample_circuits/ (their baseline tables and report cards beside them are not circuits)."""
    return sorted(p for p in SAMPLE_CIRCUITS_DIR.glob("*.json") if not p.name.endswith((COMPARE_SUFFIX, CARD_SUFFIX)))
