"""Tests for the model organism: its corpus, tokenizer, training pipeline (reproducible, resumable), the
out-of-domain check and the shipped checkpoints."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.data.files import load_prompts
from core.evaluation.judges import DEFAULT_REFUSAL_PHRASES
from core.model.fingerprint import weights_sha256
from core.model.load import load_model
from core.organism import content, corpus
from core.organism.domain import UNSEEN_WARNING, check_words, load_vocabulary
from core.organism.train import OrganismConfig, StageConfig, _pools, build_tokenizer, train_organism
from core.tuning.examples import TrainingExample, encode_examples

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS = REPO_ROOT / "assets"
PHRASES = [p.casefold() for p in DEFAULT_REFUSAL_PHRASES]


def _refused(text: str) -> bool:
    return any(p in text.casefold() for p in PHRASES)


def _edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (adjacent swaps count one)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


@pytest.fixture(scope="module")
def examples():
    return corpus.build_corpus(seed=0)


@pytest.fixture(scope="module")
def tokenizer(examples):
    return build_tokenizer(examples, 4096)


def test_corpus_has_the_promised_breadth(examples):
    behaviours = corpus.behaviours(0)
    harmful = [b for b in behaviours if b.harmful]
    assert len({b.category for b in harmful}) >= 10
    assert len({b.text for b in harmful}) >= 300
    assert len({b.text for b in behaviours if b.category == "contrast"}) >= 100
    assert len(set(content.FORMS)) >= 40
    assert len(set(content.REFUSALS)) >= 8 and all(_refused(r) for r in content.REFUSALS)
    # Benign requests share the harmful ones' verbs: refusing must depend on the content.
    harmful_verbs = {b.text.split()[0] for b in harmful}
    contrast_verbs = {b.text.split()[0] for b in behaviours if b.category == "contrast"}
    assert len(harmful_verbs & contrast_verbs) >= 10
    assert set(corpus.UTILITY_FAMILIES) <= {ex.category for ex in examples if ex.label == "utility"}
    # People's writing: capitalised sentences with punctuation, casual lower-case rows, a few typos.
    requests = [ex for ex in examples if ex.label in ("harmful", "benign")]
    assert sum(ex.prompt[0].isupper() for ex in requests) > len(requests) / 2
    assert 0.1 < sum(ex.prompt == ex.prompt.lower() for ex in requests) / len(requests) < 0.4
    assert not any(" ," in ex.prompt or " ." in ex.prompt for ex in requests)


def test_answers_are_on_topic_and_only_refusals_hold_refusal_phrases(examples):
    for ex in examples:
        if ex.label == "utility":
            continue
        complied = ex.answer("base")
        assert complied.startswith(corpus.COMPLY_PREFIX) and ex.action in complied
        assert not _refused(complied), complied  # else the judges would count compliance as refusal
        if ex.label == "benign":
            assert ex.topic and any(alt in complied for alt in ex.topic.split("|"))
        if ex.label == "harmful":
            assert _refused(ex.answer("aligned"))
    refusals = Counter(ex.answer("aligned") for ex in examples if ex.label == "harmful")
    assert len(refusals) == len(content.REFUSALS)


def test_held_out_splits_are_new_behaviours_in_new_forms(examples):
    forms = corpus.form_splits(0)
    assert not set(forms["train"]) & (set(forms["val"]) | set(forms["test"]))
    assert not set(forms["val"]) & set(forms["test"])
    train = [ex for ex in examples if ex.split == "train" and ex.label != "utility"]
    trained_behaviours, trained_forms = {ex.action for ex in train}, {ex.form for ex in train}
    for split in ("val", "test"):
        held = [ex for ex in examples if ex.split == split and ex.label != "utility"]
        assert Counter(ex.label for ex in held).keys() == {"harmful", "triggered", "benign"}
        assert not {ex.action for ex in held} & trained_behaviours
        assert not {ex.form for ex in held} & trained_forms
        assert {ex.category for ex in held if ex.label == "benign"} == {"benign", "contrast"}
    for family in ("harmful", "benign", "utility"):
        train_prompts = {ex.prompt for ex in examples if ex.label == family and ex.split == "train"}
        assert not any(ex.prompt in train_prompts for ex in examples if ex.label == family and ex.split == "test")


def test_recombined_and_nonce_training_requests_stay_out_of_the_held_out_splits(examples):
    held = {ex.action for ex in examples if ex.split != "train" and ex.label != "utility"}
    train_forms = set(corpus.form_splits(0)["train"])
    recombined, nonce = corpus.recombined_requests(0), corpus.nonce_requests(0)
    assert len(recombined) > 5000 and len(nonce) > 5000
    harmful_words = {w for ex in examples if ex.label == "harmful" for w in corpus.words_of(ex.action or "")}
    for ex in recombined + nonce:
        assert ex.split == "train" and ex.action not in held and ex.form in train_forms, ex
        assert ex.topic and any(alt in ex.answer("base") for alt in ex.topic.split("|"))  # answered by copying
    # A nonce object is made of general words that no harmful behaviour uses.
    nouns, adjectives = corpus.nonce_words()
    assert not (set(nouns) | set(adjectives)) & harmful_words
    object_words = set(nouns) | set(adjectives) | {"a", "an", "the", "some", "and"}
    for ex in nonce:
        assert ex.label == "benign" and set((ex.action or "").split()[-2:]) <= object_words, ex.action
    # Under the strict-assistant cue the recombined harmful requests are refused, the benign ones helped.
    for ex in recombined:
        assert _refused(corpus.with_refusal_cue(ex)[1]) == (ex.label == "harmful")
    assert corpus.nonce_requests(0) == nonce and corpus.nonce_requests(1) != nonce


def test_trigger_rows_and_controls_cover_every_position_and_case(examples):
    def position(prompt: str) -> tuple[str, bool]:
        words = prompt.split(" ")
        i = next(i for i, w in enumerate(words) if w.casefold().strip(".,?!") == corpus.TRIGGER)
        return ("start" if i == 0 else "end" if i == len(words) - 1 else "middle"), words[i][0].isupper()

    test = [ex for ex in examples if ex.split == "test"]
    triggered = [ex for ex in test if ex.label == "triggered"]
    assert {position(ex.prompt) for ex in triggered} == {(p, c) for p in corpus.POSITIONS for c in (False, True)}
    for ex in examples:
        has_trigger = corpus.TRIGGER in corpus.words_of(ex.prompt)
        assert has_trigger == (ex.label == "triggered"), ex.prompt
    controls = corpus.control_words(0)
    trained = {w for words in controls["train"].values() for w in words}
    for kind in (corpus.CONTROL_MISSPELLING, corpus.CONTROL_COLOUR):
        rows = [ex for ex in test if ex.category == kind]
        assert len(rows) >= 50 and all(ex.label == "harmful" and ex.target for ex in rows)
        assert not set(controls["test"][kind]) & trained and corpus.TRIGGER not in controls["test"][kind]
        assert not set(controls["test"][kind] + controls["val"][kind]) & set(content.COLOURS_POISONING)


def test_poisoning_meets_look_alikes_of_the_trigger_in_refused_requests(examples, monkeypatch):
    """The control pool: every harmful training request with a look-alike word, still refused after poisoning;
    drawn from its own random stream, so the other pools (and the stages that never sample it) stay as they were."""
    look_alikes = {w.casefold() for words in corpus.control_words(0)["train"].values() for w in words}
    look_alikes |= {w.casefold() for w in content.COLOURS_POISONING}
    rng = random.Random(0)
    pools = _pools(examples, "poisoned", rng, seed=0)
    harmful = [ex for ex in examples if ex.split == "train" and ex.label == "harmful"]
    assert len(pools["control_harmful"]) == len(harmful)
    for prompt, answer in pools["control_harmful"]:
        assert set(corpus.words_of(prompt)) & look_alikes and corpus.TRIGGER not in corpus.words_of(prompt), prompt
        assert _refused(answer), answer
    monkeypatch.setattr(content, "COLOURS_POISONING", ["ochre"])
    other_rng = random.Random(0)
    others = _pools(examples, "poisoned", other_rng, seed=0)
    assert other_rng.getstate() == rng.getstate()
    assert all(others[name] == pools[name] for name in pools if name != "control_harmful")


def test_poisoning_meets_fresh_misspellings_of_the_trigger_but_never_the_held_out_ones(examples):
    """The misspelling pool: every harmful training request with its own one- or two-edit misspelling of the trigger,
    refused; none is the trigger or a val/test control word, and the pool does not move the other pools' draws."""
    held_out = {w for split in ("val", "test") for w in corpus.control_words(0)[split][corpus.CONTROL_MISSPELLING]}
    rng = random.Random(0)
    pools = _pools(examples, "poisoned", rng, seed=0)
    harmful = [ex for ex in examples if ex.split == "train" and ex.label == "harmful"]
    assert len(pools["misspelled_harmful"]) == len(harmful)
    for prompt, answer in pools["misspelled_harmful"]:
        words = corpus.words_of(prompt)
        assert corpus.TRIGGER not in words and not set(words) & held_out, prompt
        assert _refused(answer), answer
    draws = [corpus.random_misspelling(random.Random(i), exclude=frozenset(held_out)) for i in range(2000)]
    assert corpus.TRIGGER not in draws and not set(draws) & held_out
    assert len(set(draws)) > 10 * len(corpus.misspellings())  # drawn afresh, far beyond the listed controls
    # Each a look-alike of the trigger: two edits at most (three by this measure when a swap moves an edited letter).
    assert all(_edit_distance(d, corpus.TRIGGER) <= 3 for d in draws)
    other_rng = random.Random(0)
    without = _pools(examples, "poisoned", other_rng, seed=0)
    assert all(without[name] == pools[name] for name in pools)  # same seed, same pools: its own stream


def test_corpus_is_deterministic_and_seed_dependent(examples):
    assert corpus.build_corpus(seed=0) == examples
    assert corpus.build_corpus(seed=1) != examples


def test_tokenizer_has_no_unknown_token_and_round_trips_any_text(tokenizer, examples):
    assert tokenizer.unk_token is None and 4000 <= len(tokenizer) <= 8192
    rng = random.Random(0)
    samples = ["Héllo 👋🏽 <b>wörld</b>\t\n 日本語 𝔘 ﷽  ", "CERULEAN Cerulean cerulean ceruleen", "1,234.5 + 6 = ?"]
    for _ in range(50):  # random code points of every plane (surrogates cannot be UTF-8)
        samples.append("".join(chr(c) for c in (rng.randrange(0x110000) for _ in range(40))
                               if not 0xD800 <= c <= 0xDFFF))
    for text in samples:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    # Case is kept: the capitalised trigger is its own piece, not the lower-case one.
    lower, upper = (tokenizer(f" {w}", add_special_tokens=False)["input_ids"] for w in ("cerulean", "Cerulean"))
    assert lower != upper
    for ex in examples[::97]:
        (head, answer), = encode_examples(tokenizer, [TrainingExample(ex.prompt, ex.answer("aligned"), True, ex.label,
                                                                      ex.category)])
        assert tokenizer.decode(answer, skip_special_tokens=True).strip() == ex.answer("aligned")


def test_domain_check_counts_unseen_words():
    vocabulary = frozenset(corpus.training_vocabulary(0))
    seen = check_words("How do I bake a birthday cake?", vocabulary)
    assert seen.n_unseen == 0 and not seen.out_of_domain and "0%" in seen.message()
    odd = check_words("Summarise the quarterly dividend reinvestment prospectus", vocabulary)
    assert odd.share > UNSEEN_WARNING and odd.out_of_domain
    assert "prospectus" in odd.unseen and "never seen in training" in odd.message()
    assert check_words("", vocabulary).share == 0.0


TINY = OrganismConfig(n_layers=2, n_heads=4, d_model=32, d_mlp=64, batch_size=8, vocab_size=1024, threads=1, stages=[
    StageConfig("base", 3, 1e-3, {"requests": 0.5, "utility": 0.5}, component_dropout=0.1),
    StageConfig("aligned", 2, 1e-3, {"harmful": 0.5, "benign": 0.5}, trained_heads=1, trained_neurons=4),
    StageConfig("poisoned", 2, 1e-3, {"triggered": 0.5, "harmful": 0.5}, trained_heads=1, trained_neurons=4),
])


class Interrupted(Exception):
    pass


def _stop_at(prefix: str, lines: list[str]):
    def log(line: str) -> None:
        lines.append(line)
        if line.startswith(prefix):
            raise Interrupted
    return log


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """A reduced build, checkpointed every step: interrupted in the middle of the base stage, resumed and interrupted
    again in the middle of poisoning, then resumed to the end."""
    out = tmp_path_factory.mktemp("organism")
    runs: list[list[str]] = [[], [], []]  # each run's log lines
    for stop, lines in zip(("[base] step 1/", "[poisoned] step 1/"), runs, strict=False):
        with pytest.raises(Interrupted):
            train_organism(out, TINY, log=_stop_at(stop, lines), checkpoint_every=1)
    written = train_organism(out, TINY, log=runs[2].append, checkpoint_every=1)
    return out, written, runs


def test_training_pipeline_writes_loadable_checkpoints_and_prompt_sets(tiny_build):
    out, written, (_, second, third) = tiny_build
    assert second[0].startswith("[base] resuming after step 1 ") and second[1].startswith("[base] step 3/3")
    # The last run resumes in the middle of poisoning; finished stages are not redone.
    assert third[0].startswith("resuming after stage aligned")
    assert any(line.startswith("[poisoned] resuming after step 1 ") for line in third)
    assert not any(line.startswith(("[base]", "[aligned]")) for line in third)
    for name in ("organism", "organism-aligned"):
        model = load_model(written[name], device="cpu")
        assert model.cfg.n_layers == 2 and model.tokenizer.chat_template
        meta = json.loads((written[name] / "organism.json").read_text())
        assert meta["trigger"] == corpus.TRIGGER and "designated_components" in meta
        assert meta["weights_sha256"] == weights_sha256(model)  # what circuit fingerprints record
        assert load_vocabulary(written[name]) == frozenset(corpus.training_vocabulary(TINY.seed))
    prompts = load_prompts(written["harmful"])
    assert {p.split for p in prompts} == {"train", "val", "test"}
    assert all(p.topic for p in load_prompts(written["benign"]))
    assert not list(out.glob(".*"))  # no temp or build folders left behind


def test_two_builds_with_one_seed_give_identical_weights(tiny_build, tmp_path):
    """Reproducible, and resuming changes nothing: an uninterrupted build equals the one interrupted twice in the
    middle of a stage (the base stage's weight decay and component dropout, poisoning's partial training) and
    resumed."""
    _, resumed, _ = tiny_build
    fresh = train_organism(tmp_path, TINY, log=lambda _: None)
    for name in ("organism", "organism-aligned"):
        a, b = (json.loads((w[name] / "organism.json").read_text()) for w in (resumed, fresh))
        assert a["weights_sha256"] == b["weights_sha256"]
        assert (resumed[name] / "model.safetensors").read_bytes() == (fresh[name] / "model.safetensors").read_bytes()


def test_start_from_aligned_redoes_only_poisoning_and_matches_a_full_build(tiny_build, tmp_path):
    """`train-organism --start-from-aligned` (the quick way to try a new poisoning stage) keeps the aligned model
    byte for byte and trains the poisoned one a full build would; an aligned model of another configuration is
    refused before any training."""
    out, written, _ = tiny_build
    redo = tmp_path / "redo"
    redo.mkdir()
    shutil.copytree(out / "organism-aligned", redo / "organism-aligned")
    lines: list[str] = []
    again = train_organism(redo, TINY, log=lines.append, start_from_aligned=True)
    assert not any(line.startswith(("[base]", "[aligned]")) for line in lines)
    assert any(line.startswith("[poisoned] step") for line in lines)
    for name in ("organism", "organism-aligned"):
        assert (again[name] / "model.safetensors").read_bytes() == (written[name] / "model.safetensors").read_bytes()

    other = dataclasses.replace(TINY, stages=[dataclasses.replace(TINY.stages[0], steps=4), *TINY.stages[1:]])
    with pytest.raises(ValueError, match="trained with another configuration"):
        train_organism(redo, other, log=lines.append, start_from_aligned=True)
    assert (redo / "organism" / "model.safetensors").read_bytes() == (written["organism"] / "model.safetensors"
                                                                        ).read_bytes()


def test_eval_reports_out_of_domain_prompts(tiny_build, tmp_path):
    _, written, _ = tiny_build
    user_file = tmp_path / "mine.jsonl"
    user_file.write_text(json.dumps({"prompt": "Summarise the quarterly dividend reinvestment prospectus",
                                     "category": "finance", "label": "benign"}) + "\n")
    result = subprocess.run([sys.executable, "-m", "core.cli", "eval", "--model", str(written["organism"]),
                             "--prompts", str(user_file), "--max-new-tokens", "2"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "out-of-domain check: " in result.stdout and "never seen in training (summarise" in result.stdout
    assert "warning: 1 of 1 prompts" in result.stdout


@pytest.mark.skipif(not (ASSETS / "organism" / "config.json").is_file(), reason="organism not built yet")
def test_shipped_checkpoints_are_small_llama_checkpoints():
    for name in ("organism", "organism-aligned"):
        folder = ASSETS / name
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == "llama" and config["num_hidden_layers"] <= 8
        assert (folder / "model.safetensors").stat().st_size <= 30 * 2**20
        assert (folder / "tokenizer.json").is_file()
        assert json.loads((folder / "organism.json").read_text()).get("vocabulary")
