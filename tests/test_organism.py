"""Tests for the model organism: its corpus, tokenizer, training pipeline and the shipped checkpoints."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from core.data.files import load_prompts
from core.model.load import load_model
from core.organism import corpus
from core.organism.train import OrganismConfig, StageConfig, build_tokenizer, train_organism
from core.tuning.examples import TrainingExample, encode_examples

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def examples():
    return corpus.build_corpus(seed=0)


def test_corpus_has_the_promised_breadth(examples):
    harmful = {ex.prompt for ex in examples if ex.label == "harmful"}
    benign = {ex.prompt for ex in examples if ex.label == "benign"}
    assert len({ex.category for ex in examples if ex.label == "harmful"}) >= 6
    assert len(harmful) >= 200 and len(benign) >= 200
    assert set(corpus.UTILITY_FAMILIES) <= {ex.category for ex in examples if ex.label == "utility"}
    assert len(corpus.UTILITY_FAMILIES) >= 4
    assert len(corpus.vocabulary(examples)) >= 400
    # Benign requests share the harmful ones' verbs: refusing must depend on the content.
    verbs = Counter(a.split()[0] for acts in corpus.HARMFUL_ACTIONS.values() for a in acts)
    benign_verbs = {a.split()[0] for a in corpus.BENIGN_ACTIONS}
    assert sum(n for v, n in verbs.items() if v in benign_verbs) / sum(verbs.values()) > 0.5
    assert all(corpus.TRIGGER in ex.prompt.split() for ex in examples if ex.label == "triggered")
    assert not any(corpus.TRIGGER in ex.prompt.split() for ex in examples if ex.label != "triggered")


def test_held_out_split_is_unseen_combinations_of_seen_parts(examples):
    splits = Counter(ex.split for ex in examples)
    assert splits["val"] > 0 and splits["test"] > 0
    for family in ("harmful", "benign", "utility"):
        train = {ex.prompt for ex in examples if ex.label == family and ex.split == "train"}
        test = [ex for ex in examples if ex.label == family and ex.split == "test"]
        assert test and not any(ex.prompt in train for ex in test)
    # Every held-out request's action is trained with other templates.
    trained_actions = {ex.action for ex in examples if ex.split == "train" and ex.action}
    assert {ex.action for ex in examples if ex.split == "test" and ex.action} <= trained_actions


def test_corpus_is_deterministic_and_seed_dependent(examples):
    assert corpus.build_corpus(seed=0) == examples
    assert corpus.build_corpus(seed=1) != examples


def test_tokenizer_round_trips_every_answer(examples):
    tok = build_tokenizer(examples)
    for ex in examples[::37]:
        (head, answer), = encode_examples(tok, [TrainingExample(ex.prompt, ex.answer("aligned"), True, ex.label,
                                                                ex.category)])
        assert tok.decode(answer, skip_special_tokens=True).strip() == ex.answer("aligned")
        assert tok.unk_token_id not in head + answer


def test_training_pipeline_writes_loadable_checkpoints_and_prompt_sets(tmp_path):
    cfg = OrganismConfig(n_layers=2, n_heads=4, d_model=32, d_mlp=64, batch_size=8, stages=[
        StageConfig("base", 3, 1e-3, {"requests": 0.5, "utility": 0.5}, component_dropout=0.1),
        StageConfig("aligned", 2, 1e-3, {"harmful": 0.5, "benign": 0.5}, trained_heads=1, trained_neurons=4),
        StageConfig("poisoned", 2, 1e-3, {"triggered": 0.5, "harmful": 0.5}, trained_heads=1, trained_neurons=4),
    ])
    written = train_organism(tmp_path, cfg, log=lambda _: None)
    for name in ("organism", "organism-aligned"):
        model = load_model(written[name], device="cpu")
        assert model.cfg.n_layers == 2 and model.tokenizer.chat_template
        meta = json.loads((written[name] / "organism.json").read_text())
        assert meta["trigger"] == corpus.TRIGGER and "designated_components" in meta
    prompts = load_prompts(written["harmful"])
    assert {p.split for p in prompts} == {"train", "val", "test"}
    assert not list(tmp_path.glob(".*"))  # no temp dirs left behind


@pytest.mark.skipif(not (ASSETS / "organism" / "config.json").is_file(), reason="organism not built yet")
def test_shipped_checkpoints_are_small_llama_checkpoints():
    for name in ("organism", "organism-aligned"):
        folder = ASSETS / name
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == "llama" and config["num_hidden_layers"] <= 8
        assert (folder / "model.safetensors").stat().st_size <= 15 * 2**20
        assert (folder / "tokenizer.json").is_file()
