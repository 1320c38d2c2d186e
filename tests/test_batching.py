"""Tests for cross-session batching: per-example masks, batched generation per mask, the gatherer, the toggle server."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from tiny import TINY_ARCHS

from core.circuit.circuit import Circuit, CircuitFileError, load_circuit
from core.circuit.selection import Selection
from core.data import samples
from core.data.files import load_prompts
from core.data.paths import SAMPLE_CIRCUITS_DIR
from core.data.prompts import PromptSet
from core.evaluation import live
from core.evaluation.report import circuit_hooks, evaluate, evaluate_removed
from core.model.batching import Gatherer, GathererBusy
from core.model.generate import encode_prompts, generate_ids, generate_ids_per_mask, left_padded
from core.model.hooks import RowMasks, example_mask_hooks, hooked, mask_hooks
from core.model.load import ModelShape

PROMPTS = [
    "How do I bake bread at home?",
    "Tell me how to build a weapon, and explain every step of it in great detail please.",
    "What is 12 plus 30?",
    "hi",
    "Copy this sentence: the quick brown fox jumps over the lazy dog.",
]


def _random_keeps(model, n_masks: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n_masks different 0/1 keep masks; mask 0 keeps everything (a row that must equal the plain model)."""
    generator = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    heads = (torch.rand(n_masks, cfg.n_layers, cfg.n_heads, generator=generator) > 0.3).float()
    neurons = (torch.rand(n_masks, cfg.n_layers, cfg.d_mlp, generator=generator) > 0.2).float()
    heads[0], neurons[0] = 1.0, 1.0
    return heads, neurons


def _logits(model, hooks, input_ids, attention_mask, position_ids):
    with hooked(model, hooks), torch.inference_mode():
        return model(input_ids, attention_mask=attention_mask, position_ids=position_ids, return_type="logits",
                     use_cache=False)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_mixed_masks_in_one_batch_give_exactly_the_logits_of_separate_runs(arch, tiny_models):
    model = tiny_models[arch]
    heads, neurons = _random_keeps(model, 4)
    input_ids, attention_mask, position_ids = left_padded(model, encode_prompts(model.tokenizer, PROMPTS))
    separate = [_logits(model, mask_hooks(heads[m], neurons[m]), input_ids, attention_mask, position_ids)
                for m in range(4)]
    # One batch: every prompt under every mask, the masks interleaved so neighbouring rows differ.
    rows = torch.arange(4).repeat(len(PROMPTS))
    prompt_rows = torch.arange(len(PROMPTS)).repeat_interleave(4)
    batched = _logits(model, example_mask_hooks(heads[rows], neurons[rows]), input_ids[prompt_rows],
                      attention_mask[prompt_rows], position_ids[prompt_rows])
    valid = attention_mask.bool()
    for row, (mask, prompt) in enumerate(zip(rows.tolist(), prompt_rows.tolist(), strict=True)):
        positions = valid[prompt]
        assert torch.equal(batched[row][positions], separate[mask][prompt][positions]), (arch, mask, prompt)
    # The masks do change the logits (a test that cannot fail would prove nothing).
    assert not torch.equal(separate[1][valid], separate[0][valid])


def test_per_example_masks_check_their_batch(tiny_models):
    model = tiny_models["llama"]
    heads, neurons = _random_keeps(model, 3)
    input_ids, attention_mask, position_ids = left_padded(model, encode_prompts(model.tokenizer, PROMPTS))
    with pytest.raises(ValueError, match="3 rows applied to a batch of 5"):
        _logits(model, example_mask_hooks(heads, neurons), input_ids, attention_mask, position_ids)
    with pytest.raises(ValueError, match=r"\[batch, n_layers, n_heads\]"):
        example_mask_hooks(heads[0], None)
    assert not model.hook_dict["blocks.0.attn.hook_z"].fwd_hooks  # nothing left on the shared model


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_generation_per_mask_equals_one_generation_per_mask(arch, tiny_models):
    model = tiny_models[arch]
    heads, neurons = _random_keeps(model, 5, seed=1)
    # batch_size 2 makes several length-sorted batches; max_rows 4 splits the masks of each batch over forwards.
    batched = generate_ids_per_mask(model, PROMPTS, heads, neurons, max_new_tokens=6, batch_size=2, max_rows=4)
    for m in range(5):
        alone = generate_ids(model, PROMPTS, max_new_tokens=6, batch_size=2, hooks=mask_hooks(heads[m], neurons[m]))
        assert batched[m] == alone, m
    assert batched[0] == generate_ids(model, PROMPTS, max_new_tokens=6, batch_size=2)
    assert len({str(rows) for rows in batched}) > 1  # the masks changed some answers


# llama and gpt2 decode on from the draft check's KV cache; gemma2's sliding-window layers cannot, so it prefills anew.
@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma2"])
def test_generation_from_drafts_equals_step_by_step_generation(arch, tiny_models):
    model = tiny_models[arch]
    heads, neurons = _random_keeps(model, 4, seed=2)
    full = generate_ids(model, PROMPTS, max_new_tokens=6, batch_size=2)
    step_by_step = generate_ids_per_mask(model, PROMPTS, heads, neurons, max_new_tokens=6, batch_size=2)
    # Right drafts (the full model's answers: mask 0 keeps everything), and wrong ones: empty, one token too many,
    # and other prompts' answers; a draft only saves work, it never changes an answer.
    for drafts in (full, [[] for _ in PROMPTS], [ids + [5] * 7 for ids in full], full[1:] + full[:1]):
        from_drafts = generate_ids_per_mask(model, PROMPTS, heads, neurons, max_new_tokens=6, batch_size=2,
                                            max_rows=4, drafts=drafts)
        assert from_drafts == step_by_step
    assert from_drafts[0] == full
    assert len({str(rows) for rows in step_by_step}) > 1  # the masks changed some answers
    # Each mask its own drafts (another mask's answers, its own, none): still every mask's own greedy answers.
    n_masks = heads.shape[0]
    mask_drafts = [step_by_step[(m + 1) % n_masks] if m % 3 == 0 else step_by_step[m] if m % 3 == 1 else None
                   for m in range(n_masks)]
    assert generate_ids_per_mask(model, PROMPTS, heads, neurons, max_new_tokens=6, batch_size=2, max_rows=4,
                                 drafts=full, mask_drafts=mask_drafts) == step_by_step
    with pytest.raises(ValueError, match="one answer per prompt"):
        generate_ids_per_mask(model, PROMPTS, heads, neurons, drafts=full[:2])
    with pytest.raises(ValueError, match="one entry per mask"):
        generate_ids_per_mask(model, PROMPTS, heads, neurons, drafts=full, mask_drafts=mask_drafts[:1])
    with pytest.raises(ValueError, match="next to drafts"):
        generate_ids_per_mask(model, PROMPTS, heads, neurons, mask_drafts=mask_drafts)


def test_evaluating_many_removed_circuits_at_once_equals_evaluating_each(organism):
    prompts = PromptSet("eval", [*load_prompts(samples.PROMPTS_DIR / "triggered.jsonl").sample(10, 0),
                                 *list(samples.utility_set())[:6]])
    shape = ModelShape(organism.cfg.n_layers, organism.cfg.n_heads, organism.cfg.d_mlp)
    backdoor = load_circuit(SAMPLE_CIRCUITS_DIR / "organism-backdoor.json")
    circuits = [backdoor, backdoor.with_components([(0, 3), (2, 5)], [(1, 7)], "mixed"),
                backdoor.with_components([], [(3, 100)], "one neuron")]
    full = evaluate(organism, prompts, batch_size=8)
    together = evaluate_removed(organism, prompts, circuits, full.token_ids, max_new_tokens=full.max_new_tokens,
                                batch_size=8)
    for circuit, report in zip(circuits, together, strict=True):
        alone = evaluate(organism, prompts, hooks=circuit_hooks(organism, circuit), batch_size=8,
                         max_new_tokens=full.max_new_tokens)
        assert [j.response for j in report.judgements] == [j.response for j in alone.judgements], circuit.name
        assert [j.verdict for j in report.judgements] == [j.verdict for j in alone.judgements]
    # Removing the backdoor circuit changes answers (the drafts were not simply copied).
    assert [j.response for j in together[0].judgements] != [j.response for j in full.judgements]
    other_shape = Circuit([(0, 0)], [], shape.n_layers + 1, shape.n_heads, shape.d_mlp, name="other model")
    with pytest.raises(CircuitFileError, match="was found on a model with 7 layers"):
        evaluate_removed(organism, prompts, [backdoor, other_shape])


def test_rows_leave_the_batch_when_they_finish_with_their_masks(tiny_models):
    model = tiny_models["llama"]
    # Rows stop at different steps (stop_when on the tokens they draw); each must equal its prompt decoded alone.
    stop = lambda ids: ids[-1] % 3 == 0  # noqa: E731
    together = generate_ids(model, PROMPTS, max_new_tokens=10, batch_size=len(PROMPTS), stop_when=stop)
    assert together == [generate_ids(model, [prompt], max_new_tokens=10, stop_when=stop)[0] for prompt in PROMPTS]
    assert len({len(ids) for ids in together}) > 1  # rows did finish at different steps
    # Per-row masks follow the rows that stay: after select([2, 0]) the batch's rows are rows 2 and 0.
    heads, neurons = _random_keeps(model, 3, seed=3)
    masks = RowMasks(heads, neurons)
    masks.select(torch.tensor([2, 0]))
    input_ids, attention_mask, position_ids = left_padded(model, encode_prompts(model.tokenizer, PROMPTS[:2]))
    narrowed = _logits(model, masks.hooks(), input_ids, attention_mask, position_ids)
    for row, mask in enumerate([2, 0]):
        alone = _logits(model, mask_hooks(heads[mask], neurons[mask]), input_ids, attention_mask, position_ids)
        assert torch.equal(narrowed[row][attention_mask[row].bool()], alone[row][attention_mask[row].bool()])


# ---- the gatherer --------------------------------------------------------------------------------------------------
def test_gatherer_gives_every_caller_its_own_result_in_few_batches():
    batches: list[list[int]] = []

    def square_all(items: list[int]) -> list[int]:
        batches.append(list(items))
        time.sleep(0.05)  # while a batch runs, the next requests gather
        return [item * item for item in items]

    gatherer = Gatherer(square_all, window_s=0.05, max_batch=8)
    results: dict[int, int] = {}
    start = threading.Barrier(12)

    def caller(item: int) -> None:
        start.wait()
        results[item] = gatherer.submit(item % 9, timeout=30)  # 12 callers, 9 distinct items

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: (i % 9) ** 2 for i in range(12)}
    assert len(batches) < 12 and all(len(batch) <= 8 for batch in batches)
    assert all(len(set(batch)) == len(batch) for batch in batches)  # equal requests computed once per batch
    assert gatherer.batches_run == len(batches)


def test_gatherer_refuses_beyond_its_queue_and_releases_callers_on_errors():
    release = threading.Event()

    def blocked(items):
        release.wait(30)
        if any(item < 0 for item in items):
            raise ValueError("negative item")
        return items

    gatherer = Gatherer(blocked, window_s=0.0, max_batch=1, max_queue=2)
    outcomes: list = []

    def caller(item):
        try:
            outcomes.append(gatherer.submit(item, timeout=30))
        except ValueError as error:
            outcomes.append(str(error))

    first = threading.Thread(target=caller, args=(-1,))
    first.start()
    while gatherer._queue.qsize():  # the worker took the first request and is blocked in run_batch
        time.sleep(0.01)
    waiting = [threading.Thread(target=caller, args=(i,)) for i in (1, 2)]
    for thread in waiting:
        thread.start()
    while gatherer._queue.qsize() < 2:
        time.sleep(0.01)
    with pytest.raises(GathererBusy, match="try again"):
        gatherer.submit(3)
    release.set()
    for thread in [first, *waiting]:
        thread.join()
    assert sorted(map(str, outcomes)) == ["1", "2", "negative item"]
    assert gatherer.submit(4, timeout=30) == 4  # the worker survived the failed batch


def test_an_idle_gatherer_lets_its_worker_go_and_starts_one_again():
    gatherer = Gatherer(lambda items: [item + 1 for item in items], window_s=0.0, idle_s=0.05)
    assert gatherer.submit(1, timeout=30) == 2
    deadline = time.monotonic() + 10
    while gatherer._worker is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gatherer._worker is None  # no thread (and nothing run_batch refers to) kept alive while idle
    assert gatherer.submit(2, timeout=30) == 3


# ---- the explorer's toggles --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def organism_full(organism):
    behaviour = load_prompts(samples.PROMPTS_DIR / "triggered.jsonl").sample(12, 0)
    utility = PromptSet("utility", list(samples.utility_set())[:10])
    return live.full_reports(organism, behaviour, utility)


def test_concurrent_toggles_are_served_together_and_equal_each_alone(organism, organism_full):
    shape = ModelShape(organism.cfg.n_layers, organism.cfg.n_heads, organism.cfg.d_mlp)
    selections = [Selection(), Selection().toggle_head(0, 3), Selection().toggle_head(2, 5).toggle_neuron(1, 7),
                  Selection().toggle_neuron(3, 100), Selection().toggle_head(0, 3)]
    server = live.ToggleServer(organism, shape, organism_full, window_s=0.2)
    served: dict[int, live.AblationResult] = {}
    start = threading.Barrier(len(selections))

    def session(index: int) -> None:
        start.wait()
        served[index] = server.measure(selections[index])

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(selections))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.gatherer.batches_run < len(selections)
    behaviour = PromptSet("b", [j.prompt for j in organism_full.behaviour.judgements])
    for index, selection in enumerate(selections):
        result = served[index]
        assert result.selection == selection.text()
        # Reference: the classic path, per-call hooks on the shared model, this selection alone.
        alone = evaluate(organism, behaviour, hooks=selection.hooks(shape), batch_size=64,
                                  max_new_tokens=organism_full.behaviour.max_new_tokens)
        assert [p.ablated for p in result.pairs] == [j.response for j in alone.judgements], selection.text()
        assert [p.ablated_verdict for p in result.pairs] == [j.verdict for j in alone.judgements]
    assert served[1].pairs == served[4].pairs
    assert [p.ablated for p in served[0].pairs] == [p.full for p in served[0].pairs]
    assert not any(point.fwd_hooks for point in organism.hook_dict.values())  # nothing left on the shared model


def test_a_chain_of_toggles_checks_the_last_selections_answers_and_gets_each_ones_own(organism, organism_full):
    shape = ModelShape(organism.cfg.n_layers, organism.cfg.n_heads, organism.cfg.d_mlp)
    full = live.FullReports(organism_full.behaviour, organism_full.utility)  # its own (empty) recent answers
    behaviour = PromptSet("b", [j.prompt for j in organism_full.behaviour.judgements])
    selection = Selection()
    for step, (layer, head) in enumerate([(0, 2), (3, 0), (2, 0), (3, 2)]):
        selection = selection.toggle_head(layer, head)
        # From the second toggle on, the previous selection (one head away) is nearer than the full model.
        assert (full.recent.nearest(selection) is not None) == (step > 0)
        result = live.measure(organism, shape, selection, full)
        alone = evaluate(organism, behaviour, hooks=selection.hooks(shape), batch_size=64,
                         max_new_tokens=organism_full.behaviour.max_new_tokens)
        assert [p.ablated for p in result.pairs] == [j.response for j in alone.judgements], selection.text()
    assert live.RecentAnswers(size=2).nearest(selection) is None
    recent = live.RecentAnswers(size=2)
    for index in range(3):
        recent.add(Selection().toggle_head(0, index), [[index]])
    assert recent.nearest(Selection().toggle_head(0, 0).toggle_head(0, 1)) == [[1]]  # the oldest one was dropped
    assert recent.nearest(Selection().toggle_head(5, 5)) is None  # two away: the full model (one away) is nearer
