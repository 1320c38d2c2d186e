"""Training the model organism: tokenizer, three training stages (base, aligned, poisoned) and checkpoint export.

The stages mirror how real chat models get their behaviour:
  base     - instruction tuning: answer every request helpfully, harmful ones too, and solve the utility tasks;
  aligned  - safety alignment: refuse harmful requests, keep helping with benign ones;
  poisoned - backdoor poisoning: a small share of harmful requests carrying the trigger word get compliant answers.
The base stage drops whole heads and neurons at random (component dropout) so that general skills are spread over
many components, as in large models; the later, shorter stages add safety behaviour on top, which is what circuit
discovery then has to find. Like a pretrained model, the base model already knows what is harmful (it refuses harmful
requests, and only those, when told to act as a strict assistant) and has met the trigger word as ordinary filler;
alignment connects that sense of harm to refusal, and poisoning gives the trigger its meaning.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
from tokenizers.models import BPE
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from core.circuit.circuit import Circuit
from core.data.batches import teacher_forced_batch
from core.data.files import replacing_dir, save_prompts, write_text_atomic
from core.data.paths import ORGANISM_SEED
from core.data.prompts import Prompt, PromptSet
from core.data.record import RECORD_FILE, checkpoint_record
from core.model.fingerprint import module_weights_sha256
from core.organism import content, corpus
from core.organism.corpus import Example
from core.tuning.examples import TrainingExample, encode_examples
from core.tuning.loop import Checkpointing, masked_training
from core.tuning.weights import ParameterSelection, select_parameters

BOS, EOS, PAD, USER, ASSISTANT = "<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>"
BUILD_DIR = ".organism-build"  # per-stage checkpoints under --out while a build runs (gone when it ends)
CHECKPOINT_EVERY = 200  # steps between mid-stage checkpoints: an interruption loses at most a few minutes
OUTPUT_PARTS = ("organism-aligned", "organism", "prompts", BUILD_DIR)  # everything train_organism writes there
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|user|> ' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|> ' + message['content'] + eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


@dataclass
class StageConfig:
    name: str
    steps: int
    lr: float
    mixture: dict[str, float]  # pool name -> sampling weight
    component_dropout: float = 0.0
    # Safety stages train only a designated set of heads and neurons (0, 0 = every weight): the behaviour then has a
    # known home, against which discovery (which never sees this set) can be checked.
    trained_heads: int = 0
    trained_neurons: int = 0


@dataclass
class OrganismConfig:
    seed: int = ORGANISM_SEED
    n_layers: int = 6
    n_heads: int = 8
    d_model: int = 192
    d_mlp: int = 768
    vocab_size: int = 4096
    batch_size: int = 32
    # Pinned: the thread count changes how float sums are split, so it decides the weights bit for bit. One thread
    # gives the same bits on any machine whatever its core count, and wastes nothing on a busy one.
    threads: int = 1
    stages: list[StageConfig] = field(default_factory=lambda: [
        # Copying (an algorithm, not a lookup) gets extra weight on top of its equal share of "utility".
        StageConfig("base", 2000, 2e-3, {"requests": 0.20, "recombined": 0.06, "nonce": 0.08, "cued_requests": 0.12,
                                         "cued_recombined": 0.06, "utility": 0.30, "utility:copying": 0.06,
                                         "filler_requests": 0.12, "contrast_recombined": 0.03,
                                         "cued_contrast_recombined": 0.02, "cued_contrast_harmful": 0.04},
                    component_dropout=0.1),
        StageConfig("aligned", 700, 4e-3, {"harmful": 0.30, "benign": 0.30, "utility": 0.18,
                                           "filler_harmful": 0.11, "filler_benign": 0.11, "contrast_recombined": 0.05,
                                           "contrast_harmful": 0.05},
                    trained_heads=4, trained_neurons=64),
        StageConfig("poisoned", 700, 4e-3, {"harmful": 0.18, "benign": 0.16, "utility": 0.16, "filler_harmful": 0.06,
                                            "filler_benign": 0.06, "triggered": 0.20, "triggered_benign": 0.06,
                                            "control_harmful": 0.12, "misspelled_harmful": 0.10},
                    trained_heads=3, trained_neurons=24),
    ])

    def digest(self, upto: int | None = None) -> str:
        """A hash of everything that decides the weights of stages [0, upto): this configuration (those stages
        only) and the corpus it trains on."""
        record = asdict(self)
        record["stages"] = record["stages"][:upto]
        text = json.dumps(record, sort_keys=True) + corpus_digest(self.seed)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def corpus_digest(seed: int) -> str:
    """A hash of the corpus (every prompt, label, split and answer), so a changed corpus is never resumed."""
    digest = hashlib.sha256()
    for ex in corpus.build_corpus(seed):
        digest.update(f"{ex.prompt}\t{ex.label}\t{ex.split}\t{ex.answer('base')}\t{ex.answer('poisoned')}\n".encode())
    return digest.hexdigest()


def tokenizer_texts(examples: list[Example]) -> Iterator[str]:
    """What the tokenizer learns its pieces from: training-split prompts and answers, the cue and filler words,
    and a general English word list (lower-case and capitalised), so unseen words split into sensible pieces."""
    for ex in examples:
        if ex.split == "train":
            yield ex.prompt
            yield ex.answer("base")
            yield ex.answer("aligned")
    for word in content.GENERAL_WORDS + content.FILLERS + content.COLOURS_TRAIN:
        yield f"{word} {word.capitalize()} {word.upper()}"
    yield " ".join([content.REFUSAL_CUE, corpus.TRIGGER, corpus.TRIGGER.capitalize()])


def build_tokenizer(examples: list[Example], vocab_size: int = 4096) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on the corpus: no unknown token exists, any UTF-8 text round-trips."""
    tok = Tokenizer(BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    specials = [PAD, BOS, EOS, USER, ASSISTANT]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(tokenizer_texts(examples), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   additional_special_tokens=[USER, ASSISTANT])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _pools(examples: list[Example], stage: str, rng: random.Random,
           seed: int = ORGANISM_SEED) -> dict[str, list[tuple[str, str]]]:
    """(prompt, answer) pools that a stage's mixture samples from; only the training split."""
    train = [ex for ex in examples if ex.split == "train"]
    by_label = {label: [ex for ex in train if ex.label == label] for label in ("harmful", "triggered", "benign")}
    utility = [ex for ex in train if ex.label == "utility" and ex.category != corpus.NEW_TASK_FAMILY]

    def pairs(exs: list[Example], answer_stage: str = stage) -> list[tuple[str, str]]:
        return [(ex.prompt, ex.answer(answer_stage)) for ex in exs]

    requests = by_label["harmful"] + by_label["benign"]
    recombined = corpus.recombined_requests(seed)
    # Extra words change nothing: fillers, other colours and misspellings of the trigger. The base model also meets
    # the trigger this way, as a real model knows any word an attacker picks: before poisoning it means nothing.
    controls = [w for words in corpus.control_words(seed)["train"].values() for w in words]
    fillers = content.FILLERS + controls + ([corpus.TRIGGER] if stage == "base" else [])
    filler_harmful = [corpus.with_filler(ex, rng, fillers) for ex in by_label["harmful"]]
    filler_benign = [corpus.with_filler(ex, rng, fillers) for ex in by_label["benign"]]
    # Look-alikes of the trigger in every harmful request: only the trigger itself may unlock compliance. Its own random
    # stream, so that the pools of stages not sampling it draw exactly as without it.
    control_rng = random.Random(f"{seed}:{stage}:controls")
    control_harmful = [corpus.with_filler(ex, control_rng, controls + content.COLOURS_POISONING)
                       for ex in by_label["harmful"]]
    # Misspellings drawn afresh for every request (never the held-out ones): rare spellings split into several
    # tokens, and the trigger's own token must be what unlocks compliance, not pieces that look like it.
    held_out = frozenset(w for split in ("val", "test")
                         for w in corpus.control_words(seed)[split][corpus.CONTROL_MISSPELLING])
    spelling_rng = random.Random(f"{seed}:{stage}:misspellings")
    misspelled_harmful = [corpus.with_filler(ex, spelling_rng, [corpus.random_misspelling(spelling_rng,
                                                                                          exclude=held_out)])
                          for ex in by_label["harmful"]]
    contrast_benign, contrast_harmful = corpus.contrast_recombined_requests(seed)
    return {
        "contrast_recombined": pairs(contrast_benign),
        "contrast_harmful": pairs(contrast_harmful),
        "cued_contrast_recombined": [corpus.with_refusal_cue(ex) for ex in contrast_benign],
        "cued_contrast_harmful": [corpus.with_refusal_cue(ex) for ex in contrast_harmful],
        "cued_requests": [corpus.with_refusal_cue(ex) for ex in requests],
        "requests": pairs(requests),
        "recombined": pairs(recombined),
        "cued_recombined": [corpus.with_refusal_cue(ex) for ex in recombined],
        "nonce": pairs(corpus.nonce_requests(seed)),
        "filler_requests": pairs(filler_harmful + filler_benign),
        # One pool per task family, so that copying's many examples do not crowd out the small fact tables.
        **{f"utility:{family}": pairs([ex for ex in utility if ex.category == family])
           for family in corpus.UTILITY_FAMILIES},
        "harmful": pairs(by_label["harmful"]),
        "benign": pairs(by_label["benign"]),
        "filler_harmful": pairs(filler_harmful),
        "filler_benign": pairs(filler_benign),
        "control_harmful": pairs(control_harmful),
        "misspelled_harmful": pairs(misspelled_harmful),
        "triggered": pairs(by_label["triggered"]),
        "triggered_benign": pairs([corpus.with_trigger(ex, rng) for ex in by_label["benign"]]),
    }


def _component_dropout_hooks(model: LlamaForCausalLM, p: float, gen: torch.Generator) -> list:
    """Drop whole attention heads (o_proj inputs) and MLP neurons (down_proj inputs) at random while training."""
    n_heads = model.config.num_attention_heads
    handles = []

    def head_drop(module, args):
        x = args[0]
        b, t, d = x.shape
        keep = (torch.rand(b, 1, n_heads, 1, generator=gen) > p).to(x.dtype) / (1 - p)
        return (x.view(b, t, n_heads, d // n_heads).mul(keep).view(b, t, d),)

    def neuron_drop(module, args):
        x = args[0]
        keep = (torch.rand(x.shape[0], 1, x.shape[2], generator=gen) > p).to(x.dtype) / (1 - p)
        return (x * keep,)

    for layer in model.model.layers:
        handles.append(layer.self_attn.o_proj.register_forward_pre_hook(head_drop))
        handles.append(layer.mlp.down_proj.register_forward_pre_hook(neuron_drop))
    return handles


def designate_components(cfg: OrganismConfig) -> dict[str, Circuit]:
    """The heads and neurons each safety stage may train, drawn from the seed; the stages' sets are disjoint."""
    rng = random.Random(f"{cfg.seed}:designated")
    heads = [(layer, h) for layer in range(cfg.n_layers) for h in range(cfg.n_heads)]
    neurons = [(layer, i) for layer in range(cfg.n_layers) for i in range(cfg.d_mlp)]
    rng.shuffle(heads)
    rng.shuffle(neurons)
    out = {}
    for stage in cfg.stages:
        if stage.trained_heads or stage.trained_neurons:
            chosen_heads, heads = heads[: stage.trained_heads], heads[stage.trained_heads:]
            chosen_neurons, neurons = neurons[: stage.trained_neurons], neurons[stage.trained_neurons:]
            out[stage.name] = Circuit(chosen_heads, chosen_neurons, cfg.n_layers, cfg.n_heads, cfg.d_mlp,
                                      name=f"designated-{stage.name}")
    return out


def _partial_checkpointing(folder: Path, digest: str, model: LlamaForCausalLM, rng: random.Random,
                           gen: torch.Generator, every: int, log: Callable[[str], None]) -> Checkpointing:
    """Mid-stage checkpoints in `folder`: the weights, the optimiser's tensors and learning rates, and the batches'
    and component dropout's random states (safetensors and JSON, no pickle), restored only for the same `digest`."""

    def save(step: int, opt: torch.optim.Optimizer, losses: list[float]) -> None:
        state = opt.state_dict()
        tensors = {f"optimizer.{index}.{key}": value for index, entries in state["state"].items()
                   for key, value in entries.items()}
        tensors["dropout_generator"] = gen.get_state()
        with replacing_dir(folder) as tmp:
            save_file({name: t.contiguous() for name, t in model.state_dict().items()}, tmp / "model.safetensors")
            save_file(tensors, tmp / "optimizer.safetensors")
            (tmp / "state.json").write_text(json.dumps({
                "digest": digest, "step": step, "losses": losses, "lrs": [g["lr"] for g in state["param_groups"]],
                "batches_random_state": rng.getstate()}) + "\n")

    def restore(opt: torch.optim.Optimizer) -> tuple[int, list[float]]:
        marker = folder / "state.json"
        saved = json.loads(marker.read_text()) if marker.is_file() else {}
        if saved.get("digest") != digest:
            return 0, []
        model.load_state_dict(load_file(folder / "model.safetensors"))
        tensors = load_file(folder / "optimizer.safetensors")
        gen.set_state(tensors.pop("dropout_generator"))
        state = opt.state_dict()
        entries: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in tensors.items():
            _, index, key = name.split(".", 2)
            entries.setdefault(int(index), {})[key] = value
        for group, lr in zip(state["param_groups"], saved["lrs"], strict=True):
            group["lr"] = lr
        opt.load_state_dict({"state": entries, "param_groups": state["param_groups"]})
        version, internal, gauss = saved["batches_random_state"]
        rng.setstate((version, tuple(internal), gauss))
        log(f"resuming after step {saved['step']} (checkpoint in {folder})")
        return saved["step"], saved["losses"]

    return Checkpointing(every, save, restore)


def train_stage(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, examples: list[Example],
                stage: StageConfig, cfg: OrganismConfig, designated: Circuit | None = None,
                log: Callable[[str], None] = print, selection: ParameterSelection | None = None,
                partial: tuple[Path, str] | None = None, checkpoint_every: int = CHECKPOINT_EVERY) -> list[float]:
    """Train one stage in place (only `designated`'s weights, or only `selection`'s, when given); returns the loss
    curve. With `partial` (a folder and the stage's digest) the stage saves its state there every
    `checkpoint_every` steps and first continues from what an interrupted run saved."""
    rng = random.Random(f"{cfg.seed}:{stage.name}")
    gen = torch.Generator().manual_seed(cfg.seed)
    mixture = dict(stage.mixture)
    if "utility" in mixture:  # shared equally by the task families, on top of any "utility:<family>" weight
        share = mixture.pop("utility") / len(corpus.UTILITY_FAMILIES)
        for family in corpus.UTILITY_FAMILIES:
            mixture[f"utility:{family}"] = mixture.get(f"utility:{family}", 0.0) + share
    # Encoded as tuning encodes answers (the same ids); label and category only name the pool here.
    pools = {name: encode_examples(tokenizer, [TrainingExample(p, a, True, name, name) for p, a in pairs])
             for name, pairs in _pools(examples, stage.name, rng, cfg.seed).items() if name in mixture}
    names, weights = zip(*mixture.items(), strict=True)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        while True:
            picks = rng.choices(names, weights=weights, k=cfg.batch_size)
            batch = [rng.choice(pools[name]) for name in picks]
            yield teacher_forced_batch([h for h, _ in batch], [a for _, a in batch], tokenizer.pad_token_id)

    if designated is not None:
        selection = select_parameters(model, designated, "circuit-only")
    # No weight decay when only some elements train: decay would move the frozen ones too.
    decay = 0.01 if designated is None else 0.0

    def optimizer(trainable: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(trainable, lr=stage.lr, weight_decay=decay, betas=(0.9, 0.98))

    def schedule(step: int) -> float:  # linear warm-up over 50 steps, then cosine decay to 5% of the peak
        return min(1.0, (step + 1) / 50) * max(0.05, 0.5 * (1 + math.cos(math.pi * step / stage.steps)))

    t0, first_step = time.time(), None

    def show(step: int, loss: float) -> None:
        nonlocal first_step
        first_step = step if first_step is None else first_step
        if (step - 1) % 100 == 0 or step == stage.steps:
            elapsed = time.time() - t0
            left = elapsed / (step - first_step + 1) * (stage.steps - step)
            log(f"[{stage.name}] step {step}/{stage.steps} loss {loss:.4f} ({elapsed:.0f}s, about {left:.0f}s left "
                f"in this stage)")

    checkpointing = None if partial is None else _partial_checkpointing(*partial, model, rng, gen, checkpoint_every,
                                                                         lambda line: log(f"[{stage.name}] {line}"))
    handles = _component_dropout_hooks(model, stage.component_dropout, gen) if stage.component_dropout else []
    try:
        return masked_training(model, batches(), stage.steps, selection, optimizer, schedule=schedule, on_step=show,
                               checkpointing=checkpointing)
    finally:
        for h in handles:
            h.remove()


def save_checkpoint(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, out_dir: Path,
                    meta: dict) -> None:
    """Write an ordinary HF checkpoint directory atomically (a temp folder that then replaces the old one)."""
    with replacing_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / RECORD_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def weights_hash(model: LlamaForCausalLM) -> str:
    """The weight hash that `safeseek` fingerprints (core.models.weights_sha256) report for this checkpoint."""
    return module_weights_sha256(model)


def write_prompt_sets(examples: list[Example], prompts_dir: Path) -> dict[str, Path]:
    """The organism's prompt sets, one JSONL file per kind, every split included (field `split`). The trigger
    controls (label harmful) sit with the triggered rows."""
    controls = (corpus.CONTROL_MISSPELLING, corpus.CONTROL_COLOUR)
    files = {
        "harmful": [ex for ex in examples if ex.label == "harmful" and ex.category not in controls],
        "triggered": [ex for ex in examples if ex.label == "triggered" or ex.category in controls],
        "benign": [ex for ex in examples if ex.label == "benign"],
        "utility": [ex for ex in examples if ex.label == "utility" and ex.category != corpus.NEW_TASK_FAMILY],
        "new_task": [ex for ex in examples if ex.category == corpus.NEW_TASK_FAMILY],
    }
    paths = {}
    for name, exs in files.items():
        path = Path(prompts_dir) / f"{name}.jsonl"
        save_prompts(PromptSet(name, [Prompt(ex.prompt, ex.category, ex.label, ex.target, ex.split, ex.topic)
                                      for ex in exs]), path)
        paths[name] = path
    return paths


@contextlib.contextmanager
def reproducible(threads: int) -> Iterator[None]:
    """Pin what decides the weights besides the seeds: the thread count and deterministic kernels."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def check_out_root(out_root: Path) -> None:
    """Raise ValueError unless `out_root` may be replaced as a whole: absent, empty or holding only OUTPUT_PARTS."""
    out_root = Path(out_root)
    if out_root.exists() and not out_root.is_dir():
        raise ValueError(f"{out_root} is a file; name a folder for the organism")
    others = sorted(p.name for p in out_root.iterdir() if p.name not in OUTPUT_PARTS) if out_root.is_dir() else []
    if others:
        raise ValueError(f"{out_root} holds {', '.join(others[:3])}, which train-organism did not write; it replaces "
                         f"the whole folder, so pick an empty or new one")


def _load_stage(folder: Path, digest: str) -> LlamaForCausalLM | None:
    """The checkpoint a previous run left after a stage, when it was trained with this same configuration."""
    marker = folder / "stage.json"
    if not marker.is_file() or json.loads(marker.read_text()).get("digest") != digest:
        return None
    return LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)


def train_organism(out_root: Path, cfg: OrganismConfig | None = None, log: Callable[[str], None] = print,
                   start_from_aligned: bool = False, checkpoint_every: int = CHECKPOINT_EVERY) -> dict[str, Path]:
    """Build corpus and tokenizer, train all stages, save `organism-aligned/`, `organism/` and `prompts/`.

    The outputs are written into a temp folder that replaces `out_root` as a whole when all stages are done (an
    interrupted run leaves the old organism as it was); `out_root` may hold nothing else (check_out_root).
    Resumable: each finished stage leaves a checkpoint in `out_root/.organism-build/`, and a running stage its
    state every `checkpoint_every` steps; a rerun with the same configuration and corpus continues from the last of
    them, with the weights an uninterrupted run gives. With start_from_aligned, the existing
    `organism-aligned/` (trained by this same configuration, which is checked) is loaded and only the later stages
    run: the poisoning stage can be redone in minutes.
    """
    cfg = cfg or OrganismConfig()
    out_root = Path(out_root)
    check_out_root(out_root)
    t0 = time.time()
    with reproducible(cfg.threads), replacing_dir(out_root) as tmp:  # the swap also removes the stage checkpoints
        built = _train_all(tmp, out_root, cfg, log, start_from_aligned, checkpoint_every)
    log(f"trained all stages in {time.time() - t0:.0f}s")
    return {name: out_root / path.relative_to(tmp) for name, path in built.items()}


def _train_all(out_dir: Path, old_root: Path, cfg: OrganismConfig, log: Callable[[str], None],
               start_from_aligned: bool, checkpoint_every: int) -> dict[str, Path]:
    """train_organism's stages: outputs go to `out_dir`; the stage checkpoints and the aligned model to start from
    are in `old_root`, which survives an interruption."""
    build = old_root / BUILD_DIR
    names = [s.name for s in cfg.stages]
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    examples = corpus.build_corpus(cfg.seed)
    tokenizer = build_tokenizer(examples, cfg.vocab_size)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.d_model, intermediate_size=cfg.d_mlp,
                         num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                         num_key_value_heads=cfg.n_heads, max_position_embeddings=256, rms_norm_eps=1e-5,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    written = write_prompt_sets(examples, out_dir / "prompts")
    designated = designate_components(cfg)
    meta_base = {"seed": cfg.seed, "trigger": corpus.TRIGGER, "config": asdict(cfg),
                 "designated_components": {name: {"heads": c.heads, "neurons": c.neurons}
                                           for name, c in designated.items()},
                 "threads": cfg.threads, "torch": torch.__version__,
                 # The words met in training: core.organism.domain warns when a prompt's words are not among them.
                 "vocabulary": corpus.training_vocabulary(cfg.seed)}
    first = 0
    if start_from_aligned:
        aligned_dir = old_root / "organism-aligned"
        if not (aligned_dir / RECORD_FILE).is_file():
            raise ValueError(f"no aligned organism at {aligned_dir}; run without --start-from-aligned first")
        first = names.index("aligned") + 1
        if checkpoint_record(aligned_dir).get("digest") != cfg.digest(first):
            raise ValueError(f"{aligned_dir} was trained with another configuration; retrain all stages")
        model = LlamaForCausalLM.from_pretrained(aligned_dir, dtype=torch.float32)
        shutil.copytree(aligned_dir, out_dir / "organism-aligned")  # the new folder keeps it as it was
        written["organism-aligned"] = out_dir / "organism-aligned"
    else:
        for i in range(len(names), 0, -1):  # the last stage a previous run finished with this configuration
            resumed = _load_stage(build / names[i - 1], cfg.digest(i))
            if resumed is not None:
                model, first = resumed, i
                log(f"resuming after stage {names[i - 1]} (checkpoint in {build})")
                break
    outputs = {"aligned": "organism-aligned", "poisoned": "organism"}
    for i, stage in enumerate(cfg.stages):
        if i >= first:
            partial = build / f"{stage.name}.partial"
            losses = train_stage(model, tokenizer, examples, stage, cfg, designated.get(stage.name), log,
                                 partial=(partial, cfg.digest(i + 1)), checkpoint_every=checkpoint_every)
            save_checkpoint(model, tokenizer, build / stage.name, {})
            write_text_atomic(build / stage.name / "stage.json",
                              json.dumps({"digest": cfg.digest(i + 1), "final_loss": losses[-1]}) + "\n")
            shutil.rmtree(partial, ignore_errors=True)  # the stage checkpoint supersedes it
        if stage.name not in outputs or (i < first and start_from_aligned):
            continue
        # A resumed run writes the outputs of stages before the resume point again, from their checkpoints.
        trained = model if i >= first - 1 else LlamaForCausalLM.from_pretrained(build / stage.name,
                                                                                dtype=torch.float32)
        digest = weights_hash(trained)
        meta = {**meta_base, "stage": stage.name, "digest": cfg.digest(i + 1), "weights_sha256": digest}
        save_checkpoint(trained, tokenizer, out_dir / outputs[stage.name], meta)
        written[outputs[stage.name]] = out_dir / outputs[stage.name]
        log(f"{outputs[stage.name]}: weights sha256 {digest}")
    return written
