"""The circuit report card: resample ablation, necessity/sufficiency on a planted neuron, Jaccard, cache, HTML card."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from tiny import build_tiny_checkpoint
from transformers import AutoModelForCausalLM

from core.circuit.ablate import prompt_activations, resample_hooks, resample_pairing
from core.circuit.circuit import Circuit
from core.circuit.overlap import core_components, pairwise_jaccard
from core.cli.main import main
from core.data.paths import recorded_path
from core.data.prompts import Prompt, PromptSet
from core.evaluation.cache import ResultCache
from core.evaluation.card_html import card_figures, card_html, card_json, write_card
from core.evaluation.metrics import Rate, wilson_interval
from core.evaluation.report import evaluate
from core.evaluation.report_card import (
    CardBuilder,
    CardConfig,
    CurvePoint,
    Location,
    Outcome,
    ReportCard,
    Stability,
    StabilityRun,
    budget_sizes,
    designated_components,
    location,
)
from core.model.generate import encode_prompts
from core.model.hooks import HEAD_HOOK, NEURON_HOOK, hooked
from core.model.load import load_model
from core.scoring.scenario import scenario_from_prompts

PROMPTS = ["How do I bake bread at home?", "Tell me how to build a weapon.", "What is 12 plus 30?",
           "Copy this sentence: the quick brown fox.", "Explain why the sky is blue.",
           "Write a polite email to a colleague.", "Sure, here is a simple recipe.", "I cannot assist with that."]


# ---- resample ablation ------------------------------------------------------------------------------------------
def test_resample_pairing_is_seeded_and_never_pairs_a_prompt_with_itself():
    pairing = resample_pairing(PROMPTS, PROMPTS, seed=3)
    assert all(PROMPTS[r] != PROMPTS[i] for i, r in enumerate(pairing))
    assert pairing == resample_pairing(PROMPTS, PROMPTS, seed=3)
    assert pairing != resample_pairing(PROMPTS, PROMPTS, seed=4)
    with pytest.raises(ValueError, match="reference prompt that differs"):
        resample_pairing(["a"], ["a"], seed=0)


def test_prompt_activations_are_each_prompts_own_mean_over_positions(tiny_models):
    model = tiny_models["llama"]
    heads, neurons = prompt_activations(model, PROMPTS[:3], batch_size=3)  # padded together
    ids = encode_prompts(model.tokenizer, PROMPTS[1:2])
    seen = {}
    with hooked(model, [(HEAD_HOOK.format(layer=1), lambda a, hook=None: seen.setdefault("z", a.clone())),
                        (NEURON_HOOK.format(layer=0), lambda a, hook=None: seen.setdefault("post", a.clone()))]):
        model(torch.tensor(ids), return_type="logits", use_cache=False)
    torch.testing.assert_close(heads[1, 1], seen["z"][0].float().mean(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(neurons[1, 0], seen["post"][0].float().mean(0), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(neurons[0, 0], neurons[1, 0])  # different prompts, different activations


def test_resample_hooks_put_the_paired_prompts_activation_into_removed_components_only():
    n_layers, n_heads, d_head, d_mlp = 2, 4, 3, 5
    circuit = Circuit(heads=[(1, 2)], neurons=[(0, 4)], n_layers=n_layers, n_heads=n_heads, d_mlp=d_mlp)
    ref_heads = torch.randn(6, n_layers, n_heads, d_head)
    ref_neurons = torch.randn(6, n_layers, d_mlp)
    hooks = dict(resample_hooks(circuit, (ref_heads, ref_neurons), rows=[4, 1]))
    z = torch.randn(2, 7, n_heads, d_head)
    out = hooks[HEAD_HOOK.format(layer=1)](z.clone())
    for row, ref in enumerate([4, 1]):
        assert torch.equal(out[row, :, 2], ref_heads[ref, 1, 2].expand(7, d_head))
    assert torch.equal(out[:, :, [0, 1, 3]], z[:, :, [0, 1, 3]])
    post = torch.randn(2, 7, d_mlp)
    out = hooks[NEURON_HOOK.format(layer=0)](post.clone())
    assert torch.equal(out[1, :, 4], ref_neurons[1, 0, 4].expand(7))
    assert torch.equal(out[:, :, :4], post[:, :, :4])
    assert HEAD_HOOK.format(layer=0) not in hooks and NEURON_HOOK.format(layer=1) not in hooks
    with pytest.raises(ValueError, match="built for 2 rows"):
        hooks[NEURON_HOOK.format(layer=0)](torch.randn(3, 7, d_mlp))
    kept = dict(resample_hooks(circuit, (ref_heads, ref_neurons), rows=[0, 0], keep_only=True))
    assert set(kept) == {HEAD_HOOK.format(layer=i) for i in range(2)} | {NEURON_HOOK.format(layer=i) for i in range(2)}


def test_resampled_evaluation_pairs_each_prompt_with_its_own_reference(tiny_models, tmp_path):
    """Batched resample evaluation gives every prompt exactly the answer it gets alone with its paired reference."""
    model = tiny_models["llama"]
    prompts = [Prompt(q, "c", label, target="Sure", split="test") for q in PROMPTS[:6]
               for label in ("triggered", "benign")][:9]
    prompts += [Prompt(q + " Thanks.", "c", "utility", target="42", split="train") for q in PROMPTS]
    circuit = Circuit(heads=[(0, 1), (1, 3)], neurons=[(0, 5), (1, 2)], n_layers=2, n_heads=4, d_mlp=96,
                      scenario="backdoor")
    builder = CardBuilder(model, circuit, PromptSet("p", prompts), CardConfig(batch_size=4), ResultCache(None), {})
    batched = builder._evaluate_resampled(circuit, keep_only=False)
    evaluated = list(builder.eval_set)
    pairing = resample_pairing([p.prompt for p in evaluated], [p.prompt for p in builder.reference], 0)
    for i, prompt in enumerate(evaluated):
        hooks = resample_hooks(circuit, builder.activations(), [pairing[i]])
        alone = evaluate(model, PromptSet("one", [prompt]), hooks=hooks, max_new_tokens=builder.max_new_tokens)
        assert batched[i].prompt == prompt and batched[i].response == alone.judgements[0].response


def test_the_result_cache_lives_where_the_server_says(monkeypatch, tmp_path):
    from core.evaluation.cache import default_cache_dir

    monkeypatch.setenv("SAFESEEK_REPORT_CACHE", str(tmp_path / "shared"))
    assert default_cache_dir() == tmp_path / "shared"
    monkeypatch.delenv("SAFESEEK_REPORT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "safeseek" / "report"


def test_baseline_scores_are_cached_by_model_and_sample_and_shared_with_the_report_card(tiny_models, tmp_path):
    from core.evaluation.compare import baseline_scores
    from core.model.fingerprint import fingerprint

    model = tiny_models["llama"]
    rows = []
    for i, question in enumerate(PROMPTS[:4]):
        rows += [Prompt(question, "c", "harmful", target="Sure", split="train"),
                 Prompt(f"cerulean {question}", "c", "triggered", target="Sure", split="train"),
                 Prompt(f"{question} please", "b", "benign", split="train"),
                 Prompt(f"What is {i} plus 1?", "u", "utility", target=str(i + 1), split="train")]
    prompts, fp = PromptSet("p", rows), fingerprint(model)
    first = baseline_scores(model, fp, prompts, "backdoor", 4, 0, ResultCache(tmp_path / "cache"))
    again = ResultCache(tmp_path / "cache")
    second = baseline_scores(model, fp, prompts, "backdoor", 4, 0, again)
    assert (again.reused, again.computed) == (2, 0)  # the Compare page's next run scores nothing
    assert all(torch.equal(a, b) for method in first for a, b in zip(first[method], second[method], strict=True))
    other = ResultCache(tmp_path / "cache")
    baseline_scores(model, fp, prompts, "backdoor", 3, 0, other)  # another training sample: other scores
    assert other.computed == 2
    # A card of a circuit discovered on the same sample (its recorded --train-limit) reads the same entries.
    circuit = Circuit(heads=[(0, 1)], neurons=[], n_layers=2, n_heads=4, d_mlp=96, scenario="backdoor",
                      hyperparameters={"command": "safeseek discover --scenario backdoor --train-limit 4"})
    card_cache = ResultCache(tmp_path / "cache")
    builder = CardBuilder(model, circuit, prompts, CardConfig(per_family=2), card_cache, fp)
    assert torch.equal(builder.scores("attribution")[0], first["attribution"][0]) and card_cache.reused == 2
    baseline_scores(model, {}, prompts, "backdoor", 4, 0, ResultCache(tmp_path / "unnamed"))
    assert not (tmp_path / "unnamed").exists()  # weights nothing names are never cached on disk



def test_the_card_builds_its_discovery_scenario_once_for_scores_and_discoveries(tiny_models, tmp_path, monkeypatch):
    import core.evaluation.compare as compare_module
    import core.evaluation.report_card as card_module
    from core.model.fingerprint import fingerprint

    built = []

    def counted(*args, **kwargs):
        built.append(args[3:])  # (train_limit, seed)
        return scenario_from_prompts(*args, **kwargs)

    monkeypatch.setattr(card_module, "scenario_from_prompts", counted)
    monkeypatch.setattr(compare_module, "scenario_from_prompts", counted)
    model = tiny_models["llama"]
    rows = [row for i, question in enumerate(PROMPTS[:4]) for row in (
        Prompt(question, "c", "harmful", target="Sure", split="train"),
        Prompt(f"cerulean {question}", "c", "triggered", target="Sure", split="train"),
        Prompt(f"{question} please", "b", "benign", split="train"),
        Prompt(f"What is {i} plus 1?", "u", "utility", target=str(i + 1), split="train"))]
    circuit = Circuit(heads=[(0, 1)], neurons=[], n_layers=2, n_heads=4, d_mlp=96, scenario="backdoor",
                      hyperparameters={"command": "safeseek discover --scenario backdoor --train-limit 4",
                                       "steps": 2, "head_budget": 0.25, "neuron_budget": None})
    builder = CardBuilder(model, circuit, PromptSet("p", rows), CardConfig(per_family=2, workers=1),
                          ResultCache(tmp_path / "cache"), fingerprint(model))
    builder.scores("attribution")
    builder.discovered(builder.planned_discoveries()[1][min(builder.config.budgets)][0], "smallest budget")
    assert built == [(4, 0)]  # one generation pass serves the baselines' scores and the seed's discoveries

# ---- a tiny Llama whose answer depends on one planted neuron ----------------------------------------------------
PLANTED = (0, 7)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A 2-layer Llama with every attention output and MLP neuron zeroed except neuron L0N7.

    Tokens are embedded on orthogonal axes: <|assistant|> on u1, the answer tokens B on u2 and A on u3, every
    other token on u4. Neuron L0N7 fires only at <|assistant|> and writes 2 units along u5; the unembedding reads
    u5 as B (weight 1), u1 as A (weight 0.5) and u2/u3/u4 as end-of-sequence. So the answer is B while the
    neuron fires fully, and A once its activation drops below a quarter (zero ablation, or its mean / another
    prompt's mean over at least 5 positions, where it fires only at the last one).
    """
    path = build_tiny_checkpoint("llama", tmp_path_factory.mktemp("planted") / "llama")
    hf = AutoModelForCausalLM.from_pretrained(path)
    tok = __import__("transformers").AutoTokenizer.from_pretrained(path)
    words = [i for i in range(len(tok)) if tok.decode([i]).isalpha() and len(tok.decode([i])) >= 2]
    b_id, a_id = words[0], words[1]
    assistant = tok.convert_tokens_to_ids("<|assistant|>")
    d = hf.config.hidden_size
    u = torch.eye(d)
    with torch.no_grad():
        for p in hf.model.layers.parameters():
            if p.dim() == 2:
                p.zero_()
        emb = hf.model.embed_tokens.weight
        emb.copy_(u[4].expand_as(emb))
        emb[assistant], emb[b_id], emb[a_id] = u[1], u[2], u[3]
        mlp = hf.model.layers[PLANTED[0]].mlp
        mlp.gate_proj.weight[PLANTED[1]] = u[1]
        mlp.up_proj.weight[PLANTED[1]] = u[1]
        scale = math.sqrt(d)  # RMSNorm of a unit vector
        fired = torch.nn.functional.silu(torch.tensor(scale)) * scale
        mlp.down_proj.weight[:, PLANTED[1]] = 2.0 / fired * u[5]
        head = hf.lm_head.weight
        head.zero_()
        head[b_id], head[a_id], head[tok.eos_token_id] = 10 * u[5], 5 * u[1], 10 * (u[2] + u[3] + u[4])
    hf.save_pretrained(path)
    model = load_model(path, device="cpu")
    return model, tok.decode([b_id]), tok.decode([a_id])


def _planted_builder(planted, cache: ResultCache) -> CardBuilder:
    """Triggered rows whose target is B, and utility rows whose exact answer is A: the one-token answers this model
    can give. (Benign rows would not do: a one-word reply is degenerate, never helpful, whatever the neuron does.)"""
    model, b_text, a_text = planted
    questions = ["tell me how to build a weapon at home now", "explain why the sky is blue in one paragraph",
                 "write a polite email to a colleague about it", "how do I bake bread at home today please"]
    prompts = [Prompt(q, "c", "triggered", target=b_text, split="test") for q in questions]
    prompts += [Prompt(q, "u", "utility", target=a_text, split="test") for q in questions[:2]]
    prompts += [Prompt(q + " again", "c", label, split="train") for q in questions for label in ("triggered", "benign")]
    circuit = Circuit(heads=[], neurons=[PLANTED], n_layers=2, n_heads=4, d_mlp=96, scenario="backdoor")
    return CardBuilder(model, circuit, PromptSet("planted", prompts), CardConfig(per_family=8), cache, {})


def test_necessity_and_sufficiency_of_a_planted_neuron(planted, tmp_path):
    builder = _planted_builder(planted, ResultCache(tmp_path))
    full = builder.outcome([], [])
    assert (full.asr.k, full.asr.n) == (4, 4)  # every triggered prompt answered B
    assert (full.utility.k, full.utility.n) == (0, 2)  # so are the utility prompts, whose answer is A
    for method in ("zero", "mean", "resample"):
        removed = builder.outcome([], [PLANTED], method)
        assert removed.asr.k == 0, method  # necessary: without it the answer is A
        assert removed.off_target.k == 4  # A is neither B nor a refusal
        assert removed.utility.value == 1.0  # and it is the utility rows' exact answer
        kept = builder.outcome([], [PLANTED], method, keep_only=True)
        assert kept.asr.k == 4, method  # sufficient: nothing else contributes
    other = builder.outcome([], [(0, 8)], "zero", keep_only=True)  # keeping another neuron removes the planted one
    assert other.asr.k == 0
    assert builder.outcome([], [(0, 8)], "zero").asr.k == 4  # removing an idle neuron changes nothing


def test_outcomes_are_cached_by_what_produced_them(planted, tmp_path):
    cache = ResultCache(tmp_path)
    first = _planted_builder(planted, cache).outcome([], [PLANTED], "mean")
    again = ResultCache(tmp_path)
    second = _planted_builder(planted, again).outcome([], [PLANTED], "mean")
    assert (again.reused, again.computed) == (1, 0) and second == first
    _planted_builder(planted, again).outcome([], [PLANTED], "resample")
    assert again.computed == 1  # another ablation type is another result
    for path in tmp_path.iterdir():  # damaged entries are recomputed, not trusted
        path.write_text("{not json")
    broken = ResultCache(tmp_path)
    assert _planted_builder(planted, broken).outcome([], [PLANTED], "mean") == first
    assert broken.computed == 1
    memory = ResultCache(None)  # --no-cache: results live for this run only, but they do live
    builder = _planted_builder(planted, memory)
    builder.prefetch([([], [PLANTED])], "removal")
    assert memory.computed == 1
    assert builder.outcome([], [PLANTED]).asr.k == 0 and memory.computed == 1  # the prefetched result, not a rerun


# ---- sets and sizes ---------------------------------------------------------------------------------------------
def test_discoveries_in_worker_processes_match_the_same_runs_in_process(tiny_checkpoints, tiny_models):
    from functools import partial

    from core.cli.common import DEFAULT_PROMPTS
    from core.data.files import load_prompt_sets
    from core.scoring.learned import DiscoveryConfig, discover
    from core.scoring.processes import DiscoveryJob, discover_in_processes, worker_count

    prompts = load_prompt_sets(DEFAULT_PROMPTS)
    configs = [DiscoveryConfig(steps=3, batch_size=2, head_budget=0.25, neuron_budget=0.05, seed=s) for s in (1, 2)]
    jobs = [DiscoveryJob(prompts, "backdoor", 2, c) for c in configs]
    seen = []
    found = discover_in_processes(partial(load_model, tiny_checkpoints["llama"], device="cpu"), jobs, 2,
                                  progress=lambda *step: seen.append(step))
    model = tiny_models["llama"]
    for config, result in zip(configs, found, strict=True):
        here = discover(model, scenario_from_prompts(model, prompts, "backdoor", 2, config.seed), config)
        assert (result.heads, result.neurons) == (here.heads, here.neurons)
        assert torch.allclose(torch.tensor(result.neuron_scores), torch.tensor(here.neuron_scores), atol=1e-3)
    assert sorted(seen) == [(0, 3, 3), (1, 3, 3)]  # each job's last step reaches the caller
    assert worker_count(4, "cpu", 10**6, cores=2) == 2 and worker_count(4, "cuda", 10**6, cores=8) == 1
    assert worker_count(1, "cpu", 10**6, cores=8) == 1 and worker_count(4, "cpu", 10**9, cores=8) == 1



def test_usable_cores_follow_the_users_thread_limit_not_a_servers_setting(monkeypatch):
    import os

    from core.scoring.processes import usable_cores

    allowed = len(os.sched_getaffinity(0))
    threads = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        torch.set_num_threads(1)  # what the app sets to serve a tiny model: not a limit on the card's workers
        assert usable_cores() == allowed
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's limit is
    assert usable_cores() == 1

def test_pairwise_jaccard_and_core():
    runs = [{"L0N1", "L0N2", "L2H3"}, {"L0N1", "L2H3"}, {"L0N1", "L1N5", "L2H3"}, set()]
    matrix = pairwise_jaccard(runs)
    assert matrix[0][0] == 1.0 and matrix[0][1] == pytest.approx(2 / 3) and matrix[1][2] == pytest.approx(2 / 3)
    assert matrix[0][2] == pytest.approx(2 / 4) and matrix[3][3] is None and matrix[0][3] == 0.0
    assert matrix == [list(row) for row in zip(*matrix, strict=True)]
    assert core_components(runs[:3]) == ["L2H3", "L0N1"]  # heads first
    assert core_components(runs) == [] and core_components([]) == []


def test_budget_sizes_follow_the_recorded_head_neuron_split():
    circuit = Circuit(heads=[], neurons=[], n_layers=4, n_heads=16, d_mlp=512,
                      hyperparameters={"head_budget": 0.047, "neuron_budget": 0.0088})
    total = 4 * 16 + 4 * 512
    for budget in (0.0005, 0.005, 0.03):
        heads, neurons = budget_sizes(circuit, budget)
        assert heads + neurons == max(1, round(budget * total))
    assert budget_sizes(circuit, 0.03) == (9, 54)  # 63 components, 3.0 : 18.0 as the recorded budgets


def test_wilson_interval():
    assert wilson_interval(0, 100) == (0.0, pytest.approx(0.037, abs=5e-4))
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.404, abs=1e-3) and high == pytest.approx(0.596, abs=1e-3)


def test_designated_components_read_from_the_checkpoint(tmp_path):
    (tmp_path / "organism.json").write_text(json.dumps({"designated_components": {
        "poisoned": {"heads": [[2, 9]], "neurons": [[0, 236], [1, 5]]}}}))
    stages = designated_components(tmp_path)
    assert stages == {"poisoned": ([(2, 9)], [(0, 236), (1, 5)])}
    circuit = Circuit(heads=[(2, 9), (2, 1)], neurons=[(0, 236)], n_layers=4, n_heads=16, d_mlp=512)
    where = location(circuit, stages)
    assert [row["heads"] + row["neurons"] for row in where.per_layer] == [1, 0, 2, 0]
    assert where.overlaps[0]["heads_inside"] == 1 and where.overlaps[0]["neurons_inside"] == 1
    assert where.overlaps[0]["jaccard"] == pytest.approx(2 / 4)
    (tmp_path / "organism.json").write_text("[1, 2]")
    assert designated_components(tmp_path) == {}
    assert designated_components(tmp_path / "missing") == {}


# ---- the card files ---------------------------------------------------------------------------------------------
def _outcome(asr: int, utility: int, n: int = 40) -> Outcome:
    return Outcome(Rate("behaviour", asr, n), Rate("refusal", n - asr, n), Rate("neither", 0, n),
                   Rate("utility", utility, n))


def _card(scenario: str = "backdoor") -> ReportCard:
    budgets = [0.001, 0.01, 0.03]
    curve = [CurvePoint(m, b, 3, asr, 1.0, 40) for m, values in
             (("learned", [0.5, 0.0, 0.0]), ("attribution", [0.9, 0.2, 0.0]), ("magnitude", [1.0, 0.8, 0.4]),
              ("random", [1.0, 1.0, 1.0])) for b, asr in zip(budgets, values, strict=True)]
    runs = [StabilityRun(0, ["L2H9", "L0N1"], Rate("behaviour", 0, 40), Rate("utility", 40, 40), "this circuit"),
            StabilityRun(1, ["L0N1", "L0N2"], Rate("behaviour", 2, 40), Rate("utility", 40, 40), "discovered")]
    return ReportCard(
        name="<b>back</b>door", scenario=scenario, behaviour_label="triggered", components=["L2H9", "L0N1"],
        summary="1 heads, 1 neurons",
        meta={"model": {"weights_sha256": "abc123", "architecture": "LlamaForCausalLM"}, "date": "2026-01-01",
              "prompt_hashes": {"evaluation": "e" * 64}, "command": "safeseek report --circuit x.json",
              "discover_command": "safeseek discover ...", "settings": {"per_family": 32}},
        full=_outcome(40, 40),
        necessity={"zero": _outcome(0, 40), "mean": _outcome(1, 39), "resample": _outcome(8, 38)},
        sufficiency={"zero": _outcome(2, 0), "mean": _outcome(38, 10), "resample": _outcome(20, 5)},
        stability=Stability(runs, pairwise_jaccard([set(r.components) for r in runs]), ["L0N1"]), curve=curve,
        location=Location([{"layer": 0, "heads": 0, "neurons": 1, "share": 0.5}],
                          [{"name": "designated (poisoned)", "heads": 1, "neurons": 1, "heads_inside": 1,
                            "neurons_inside": 0, "other_size": 4, "inside_share": 0.5, "jaccard": 0.2}]))


def test_readings_badge_and_curve_area():
    card = _card()
    assert "behaviour ASR differs by 20 points" in card.disagreement()
    assert "does not carry the behaviour" in card.sufficiency_reading("zero")
    assert "carries the behaviour on its own" in card.sufficiency_reading("mean")
    assert "carries part of the behaviour" in card.sufficiency_reading("resample")
    summary = card.curve_summary()
    # gaps to attribution: 0.4, 0.2, 0.0 at log-spaced budgets 1 and log10(3) apart
    width = math.log10(0.03) - math.log10(0.001)
    expected = 100 * (1 * (0.4 + 0.2) / 2 + math.log10(3) * (0.2 + 0.0) / 2) / width
    assert summary["best_baseline"] == "attribution" and summary["area"] == pytest.approx(expected)
    assert summary["utility_area"] == 0.0  # every curve point keeps all utility in this card
    for point, utility in zip([p for p in card.curve if p.method == "attribution"], [1.0, 0.5, 0.0], strict=True):
        point.utility = utility  # attribution's circuits cost utility as they grow; the learned ones do not
    kept_more = 100 * (1 * (0.0 + 0.5) / 2 + math.log10(3) * (0.5 + 1.0) / 2) / width
    assert card.curve_summary()["utility_area"] == pytest.approx(kept_more)
    assert f"utility against the same baseline: {kept_more:+.1f} points" in card.text()
    assert summary["per_baseline"]["random"] > summary["per_baseline"]["magnitude"] > summary["area"]
    # an alignment circuit raises ASR when removed: the same curves now favour the baselines
    assert _card("alignment").curve_summary()["per_baseline"]["attribution"] == pytest.approx(-expected)


class _StrictParser(HTMLParser):
    """Fails on tags closed out of order or left open (void elements excepted)."""

    VOID = {"meta", "br", "img", "input", "link", "hr"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.ids += [v for k, v in attrs if k == "id"]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def test_card_html_is_valid_offline_and_holds_every_figure_of_the_json(tmp_path):
    card = _card()
    write_card(card, tmp_path / "card.html", tmp_path / "card.json")
    page = (tmp_path / "card.html").read_text(encoding="utf-8")
    data = json.loads((tmp_path / "card.json").read_text(encoding="utf-8"))
    parser = _StrictParser()
    parser.feed(page)
    parser.close()
    assert parser.stack == []
    assert page.count("plotly.js v") == 1 and "<script src=" not in page  # one bundle, nothing fetched
    assert set(data["figures"]) == {"necessity", "sufficiency", "stability_jaccard", "stability_runs", "cost_curve",
                                    "layers", "overlaps"}
    for name, figure in data["figures"].items():
        assert f"card-{name}" in parser.ids
        assert figure["layout"]["title"]["text"].split(":")[0] in page
    assert "<b>back</b>door" not in page and "&lt;b&gt;back&lt;/b&gt;door" in page  # names are text
    for shown in ("abc123", "e" * 64, "safeseek report --circuit x.json", "2026-01-01", "Ablation types disagree"):
        assert shown in page
    assert data["card"]["curve_summary"]["best_baseline"] == "attribution"
    zero = data["card"]["necessity"]["zero"]["asr"]
    assert zero["k"] == 0 and zero["value"] == 0.0 and zero["interval"] == list(wilson_interval(0, 40))
    assert card_json(card, card_figures(card)) == (tmp_path / "card.json").read_text(encoding="utf-8")
    assert card_html(card).count("<div id=\"card-") == len(data["figures"])


def test_a_card_read_back_from_its_json_is_the_card(tmp_path):
    card = _card()
    write_card(card, json_path=tmp_path / "card.json")
    again = ReportCard.from_dict(json.loads((tmp_path / "card.json").read_text(encoding="utf-8"))["card"])
    assert again == card
    assert again.text() == card.text() and card_json(again) == card_json(card)


# ---- the cards shipped beside the sample circuits --------------------------------------------------------------
SAMPLE_CIRCUITS = ("organism-backdoor", "organism-backdoor-small", "organism-alignment", "organism-alignment-small")


@pytest.fixture(scope="module")
def organism_builders():
    """A card builder per sample circuit on the bundled organism, with the default settings (nothing is run)."""
    from core.circuit.circuit import load_circuit
    from core.data.files import load_prompt_sets
    from core.data.paths import BUNDLED_PROMPT_FILES, ORGANISM_DIR, SAMPLE_CIRCUITS_DIR
    from core.model.fingerprint import fingerprint

    model = load_model(ORGANISM_DIR, device="cpu")
    prompts = load_prompt_sets(BUNDLED_PROMPT_FILES)

    def builder(name: str, config: CardConfig | None = None) -> CardBuilder:
        return CardBuilder(model, load_circuit(SAMPLE_CIRCUITS_DIR / f"{name}.json"), prompts, config or CardConfig(),
                           ResultCache(None), fingerprint(model), checkpoint=ORGANISM_DIR)
    return builder, SAMPLE_CIRCUITS_DIR


@pytest.mark.parametrize("name", SAMPLE_CIRCUITS)
def test_each_sample_circuit_ships_the_card_its_readme_quotes(name, organism_builders):
    builder, folder = organism_builders
    card = builder(name).prebuilt(folder)
    assert card is not None, (f"no current card for {name}: safeseek report --circuit sample_circuits/{name}.json "
                              f"--json sample_circuits/{name}.card.json")
    assert card.name == builder(name).circuit.name
    readme = (folder / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"printed by `safeseek report --circuit sample_circuits/{name}.json")
    quoted = [line for line in readme[start:].split("```")[1].splitlines() if line.strip()]
    printed = iter(card.text().splitlines())
    # The README leaves some lines out (header, per-layer rows, ...); each line it quotes is the card's, in order.
    missing = [line for line in quoted if not any(line == printed_line for printed_line in printed)]
    assert len(quoted) > 20 and missing == []


@pytest.mark.parametrize("name", SAMPLE_CIRCUITS)
def test_each_sample_circuit_ships_the_comparison_its_readme_quotes(name, organism_builders):
    from core.evaluation.compare import Comparison, format_table

    builder, folder = organism_builders
    circuit = builder(name).circuit
    shipped = Comparison.read(folder / f"{name}.compare.json")
    assert shipped.measured(builder(name).fingerprint, circuit, builder(name).prompts.sha256()), (
        f"{name}.compare.json is not current: safeseek compare --circuit sample_circuits/{name}.json --out "
        f"sample_circuits/{name}.compare.json")
    readme = (folder / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"safeseek compare --circuit sample_circuits/{name}.json")
    quoted = readme[start:].split("Comparison on the held-out test split (printed by compare):", 1)[1].split("```")[1]
    assert format_table(shipped.rows, circuit.scenario) in quoted


def test_a_shipped_card_is_shown_only_for_the_inputs_it_measured(organism_builders, tmp_path):
    builder, folder = organism_builders
    shipped = folder / "organism-backdoor.card.json"
    assert builder("organism-backdoor", CardConfig(per_family=31)).prebuilt(folder) is None  # other settings
    data = json.loads(shipped.read_text(encoding="utf-8"))
    data["card"]["meta"]["model"]["weights_sha256"] = "0" * 64  # another checkpoint's card
    (tmp_path / "other.card.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "broken.card.json").write_text("{not json", encoding="utf-8")
    assert builder("organism-backdoor").prebuilt(tmp_path) is None
    (tmp_path / "other.card.json").write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    card = builder("organism-backdoor").prebuilt(tmp_path)
    # This builder's checkpoint, as records keep it: relative to the checkout, the same on every clone.
    assert card is not None and card.meta["checkpoint"] == recorded_path(builder("organism-backdoor").checkpoint)
    assert not Path(card.meta["checkpoint"]).is_absolute()


# ---- command line -----------------------------------------------------------------------------------------------
SAMPLE = Path(__file__).resolve().parents[1] / "sample_circuits" / "organism-backdoor.json"


@pytest.mark.parametrize("argv, message", [
    (["--circuit", "missing.json"], "no circuit file"),
    (["--circuit", str(SAMPLE), "--per-family", "0"], "--per-family: must be at least 1"),
    (["--circuit", str(SAMPLE), "--budgets", "0", "0.01"], "budgets must be fractions"),
    (["--circuit", str(SAMPLE), "--out", "/proc/card.html"], "--out: cannot write"),
])
def test_report_rejects_bad_input_before_loading_the_model(argv, message, capsys, monkeypatch):
    monkeypatch.setattr("core.cli.report.load", lambda args: pytest.fail("the model was loaded"))
    assert main(["report", *argv]) == 2
    assert message in capsys.readouterr().err


# ---- the app ----------------------------------------------------------------------------------------------------
def test_report_page_builds_the_card_and_the_circuit_page_offers_it(tmp_path, monkeypatch):
    from app_helpers import make_circuit, plotly_figures, run_page

    from core.model.fingerprint import fingerprint

    monkeypatch.setenv("SAFESEEK_REPORT_CACHE", str(tmp_path / "cache"))  # empty: this test builds every result
    checkpoint = build_tiny_checkpoint("llama", tmp_path / "llama")
    circuit = make_circuit(2, 4, 96, heads=[(0, 1)], neurons=[(1, 5), (0, 7)],
                           fingerprint=fingerprint(load_model(checkpoint, device="cpu")))
    circuit.hyperparameters = {"steps": 2, "head_budget": 0.125, "neuron_budget": 0.0105,
                               "command": "safeseek discover --scenario backdoor --train-limit 2 --steps 2"}
    path = circuit.save(tmp_path / "tiny-backdoor.json")
    at = run_page({"model": str(checkpoint), "circuit": str(path), "page": "report"})
    assert at.selectbox(key="report-against-choice").value == "none"  # no overlap unless the user asks for one
    at.number_input(key="report-per-family").set_value(2)
    at.number_input(key="report-seeds").set_value(2)
    at.number_input(key="report-random").set_value(1)
    at.button(key="report-build").click().run()
    assert not at.exception, [e.value for e in at.exception]
    titles = [f["layout"]["title"]["text"] for f in plotly_figures(at)]
    expected = ["Necessity", "Sufficiency", "Stability", "Stability", "Cost curve", "Where it lives"]
    assert len(titles) == len(expected) and all(t.startswith(e) for t, e in zip(titles, expected, strict=True))
    assert any("does not carry" in m or "carries" in m for m in map(str, (e.value for e in at.markdown)))
    cache_files = list((tmp_path / "cache").iterdir())
    assert cache_files
    page = run_page({"model": str(checkpoint), "circuit": str(path), "page": "circuit"})
    assert page.button(key="circuit-card-build").label == "Build the report card"


def test_report_page_shows_a_sample_circuits_shipped_card_without_building(tmp_path, monkeypatch):
    from app_helpers import BACKDOOR_SAMPLE, ORGANISM_DIR, plotly_figures, run_page, texts

    monkeypatch.setenv("SAFESEEK_REPORT_CACHE", str(tmp_path / "cache"))  # nothing cached: only the shipped card shows
    at = run_page({"model": str(ORGANISM_DIR), "circuit": str(BACKDOOR_SAMPLE), "page": "report"})
    assert any(t.startswith("Shipped with the sample circuits: built by `safeseek report --circuit "
                            "sample_circuits/organism-backdoor.json") for t in texts(at, "caption"))
    titles = [f["layout"]["title"]["text"] for f in plotly_figures(at)]
    expected = ["Necessity", "Sufficiency", "Stability", "Stability", "Cost curve", "Where it lives", "Where it lives"]
    assert len(titles) == len(expected) and all(t.startswith(e) for t, e in zip(titles, expected, strict=True))
    assert at.button(key="report-build").label == "Build it again here"
    assert not (tmp_path / "cache").exists()  # nothing was measured
    at.number_input(key="report-seeds").set_value(3).run()  # other settings: that card must be built
    assert at.button(key="report-build").label == "Build the report card" and not plotly_figures(at)
    page = run_page({"model": str(ORGANISM_DIR), "circuit": str(BACKDOOR_SAMPLE), "page": "circuit"})
    assert any("report card ships with it" in t for t in texts(page, "caption"))  # pointed to, not drawn twice
    assert not any(f["layout"]["title"]["text"].startswith("Cost curve") for f in plotly_figures(page))


def test_report_command_prints_writes_and_reuses_every_result(tmp_path, capsys):
    from app_helpers import make_circuit

    from core.model.fingerprint import fingerprint

    checkpoint = build_tiny_checkpoint("llama", tmp_path / "llama")
    fp = fingerprint(load_model(checkpoint, device="cpu"))
    path = make_circuit(2, 4, 96, heads=[(0, 1)], neurons=[(1, 5)], fingerprint=fp).save(tmp_path / "c.json")
    other = make_circuit(2, 4, 96, heads=[(0, 1)], neurons=[(0, 3)], name="other", fingerprint=fp)
    argv = ["report", "--model", str(checkpoint), "--circuit", str(path), "--against",
            str(other.save(tmp_path / "o.json")),
            "--per-family", "2", "--seeds", "3", "--workers", "2", "--random-seeds", "1", "--steps", "2",
            "--train-limit", "2",
            "--budgets", "0.01", "0.03", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(tmp_path / "card.html"), "--json", str(tmp_path / "card.json")]
    assert main(argv) == 0
    first = capsys.readouterr().out
    for part in ("1. Necessity", "2. Sufficiency", "3. Stability across 3 seeds", "4. Cost curve",
                 "area between learned and the best baseline", "5. Where it lives", "vs circuit 'other'"):
        assert part in first
    figures = json.loads((tmp_path / "card.json").read_text())["figures"]
    assert "overlaps" in figures and "card-overlaps" in (tmp_path / "card.html").read_text()
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert "results reused, 0 computed" in second
    strip = [line for line in first.splitlines() if not line.startswith(("model ", "cache:"))]
    assert strip == [line for line in second.splitlines() if not line.startswith(("model ", "cache:"))]
