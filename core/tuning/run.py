"""One tuning run end to end: evaluate, fine-tune a private copy through a circuit's weights, save, evaluate again.

Tuning loads its own plain HF copy of the checkpoint (never the app's shared model), saves the result as an
ordinary HF checkpoint directory (temp dir + rename) and evaluates the model before and after on held-out prompts.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from core.circuit.circuit import Circuit
from core.data.files import replacing_dir, write_text_atomic
from core.data.prompts import PromptSet
from core.evaluation.metrics import compare_reports, format_comparison
from core.evaluation.report import EvalReport, evaluate
from core.model.fingerprint import fingerprint
from core.model.load import (
    ModelLoadError,
    load_model,
    parse_device_map,
    parse_max_memory,
    resolve_checkpoint_dir,
    resolve_device,
    resolve_dtype,
)
from core.scoring.random import random_components
from core.tuning.examples import training_examples
from core.tuning.loop import train
from core.tuning.options import MODES, REPORT_FILE, Progress, TuneConfig, TuneError, TuneProgress, check_out_dir
from core.tuning.weights import select_parameters

EVAL_BEFORE_FILE = "eval_before.json"
EVAL_AFTER_FILE = "eval_after.json"
SCHEMA_VERSION = 1


# ---- the training loop -------------------------------------------------------------------------------------


def load_private_copy(model_path: str | Path, device: str = "auto", dtype: str = "float32",
                      trust_remote_code: bool = False, device_map: str | dict | None = None,
                      max_memory: str | dict | None = None):
    """A plain HF model + tokenizer loaded from disk for tuning: never the (shared) bridge the app serves.

    With `device_map` the layers are spread over devices by accelerate (naive pipeline; gradients cross devices);
    a map that offloads weights to disk is refused, since offloaded weights cannot be trained."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = resolve_checkpoint_dir(model_path)
    device_map, max_memory = parse_device_map(device_map), parse_max_memory(max_memory)
    torch_device = resolve_device(device if device_map is None or torch.cuda.is_available() else "cpu")
    torch_dtype = resolve_dtype(dtype, torch_device)
    placement = {} if device_map is None else {"device_map": device_map, "max_memory": max_memory}
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch_dtype,
                                                        trust_remote_code=trust_remote_code, **placement)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"could not load {str(model_path)!r} for tuning: {e}") from e
    if "disk" in (getattr(hf_model, "hf_device_map", None) or {}).values():
        raise TuneError("the device map offloads weights to disk, which tuning cannot train; raise --max-memory or "
                        "add devices")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device_map is None:
        hf_model = hf_model.to(torch_device)
    return hf_model.eval(), tokenizer


# ---- one tuning run end to end -----------------------------------------------------------------------------
@dataclass
class TuneResult:
    """What a tuning run did and measured; saved as tune_report.json in the output checkpoint."""

    model_path: str
    out_dir: str
    circuit: str | None
    config: dict
    selection: dict
    n_train_examples: int
    train_prompts_sha256: str
    losses: list[float]
    train_seconds: float
    before: EvalReport
    after: EvalReport

    def metrics(self) -> dict:
        """`compare_reports(before, after)` plus the fraction of parameters trained."""
        return {"fraction_trained": self.selection["fraction"],
                "fraction_trained_without_embeddings": self.selection["fraction_without_embeddings"],
                **compare_reports(self.before, self.after)}

    def table(self) -> str:
        """Before/after as an aligned text table."""
        return format_comparison(compare_reports(self.before, self.after))

    def to_json(self) -> str:
        data = {"schema_version": SCHEMA_VERSION, "model_path": self.model_path, "out_dir": self.out_dir,
                "circuit": self.circuit, "config": self.config, "selection": self.selection,
                "n_train_examples": self.n_train_examples, "train_prompts_sha256": self.train_prompts_sha256,
                "train_seconds": self.train_seconds, "losses": self.losses, "metrics": self.metrics(),
                "eval_before": EVAL_BEFORE_FILE, "eval_after": EVAL_AFTER_FILE}
        return json.dumps(data, indent=1) + "\n"


def _evaluate_checkpoint(path: str | Path, prompts: PromptSet, config: TuneConfig, phase: str,
                         progress: Progress | None) -> EvalReport:
    model = load_model(path, device=config.device, dtype=config.dtype, trust_remote_code=config.trust_remote_code,
                       device_map=config.device_map, max_memory=config.max_memory)
    callback = None if progress is None else (lambda done, total: progress(TuneProgress(phase, done, total)))
    return evaluate(model, prompts, batch_size=config.eval_batch_size, progress=callback, model_name=str(path),
                    fingerprint=fingerprint(model))


def tune(model_path: str | Path, train_prompts: PromptSet, eval_prompts: PromptSet, out_dir: str | Path,
         circuit: Circuit | None = None, config: TuneConfig | None = None, progress: Progress | None = None,
         before: EvalReport | None = None, overwrite: bool = False) -> TuneResult:
    """Evaluate, tune a private copy of `model_path`, save it to `out_dir` (atomically) and evaluate it again.

    `circuit` is required for every mode but "full"; for "random" the tuned components are a random set of the
    circuit's size, layer by layer (random_components(match_layers=True), seeded by config.components_seed, else
    config.seed). `before`: a report of `model_path` on `eval_prompts` already computed (skips the first
    evaluation). The output directory is an HF
    checkpoint that load_model loads, holding tune_report.json, eval_before.json and eval_after.json too.
    """
    config = config or TuneConfig()
    if config.mode not in MODES:
        raise TuneError(f"unknown mode {config.mode!r}; use one of {', '.join(MODES)}")
    if config.mode != "full" and circuit is None:
        raise TuneError(f"mode {config.mode!r} needs a circuit (--circuit FILE); only mode 'full' runs without one")
    if len(eval_prompts) == 0:
        raise TuneError("no evaluation prompts; pass prompt files whose test split holds prompts")
    examples = training_examples(train_prompts, config.objective, config.refusal_text, config.compliance_text)
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite)

    if before is None:
        before = _evaluate_checkpoint(model_path, eval_prompts, config, "evaluating before", progress)
    elif before.prompts_sha256 != eval_prompts.sha256():
        raise TuneError("the given 'before' report was made on other prompts than eval_prompts; evaluate again")

    hf_model, tokenizer = load_private_copy(model_path, config.device, config.dtype, config.trust_remote_code,
                                            config.device_map, config.max_memory)
    if config.mode == "random":
        try:
            seed = config.seed if config.components_seed is None else config.components_seed
            tuned_circuit = random_components(circuit, seed, match_layers=True)
        except ValueError as e:  # too few components outside the circuit
            raise TuneError(str(e)) from None
    else:
        tuned_circuit = circuit
    selection = select_parameters(hf_model, tuned_circuit, config.mode)
    started = time.time()
    losses = train(hf_model, tokenizer, examples, selection, config, progress)
    train_seconds = time.time() - started

    if progress is not None:
        progress(TuneProgress("saving", 0, 1))
    with replacing_dir(out_dir) as tmp:
        hf_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del hf_model
        if progress is not None:
            progress(TuneProgress("saving", 1, 1))
        after = _evaluate_checkpoint(tmp, eval_prompts, config, "evaluating after", progress)
        after.model = str(out_dir)
        result = TuneResult(str(model_path), str(out_dir), None if circuit is None else circuit.name,
                            asdict(config), selection.summary(), len(examples), train_prompts.sha256(), losses,
                            round(train_seconds, 2), before, after)
        before.save(tmp / EVAL_BEFORE_FILE)
        after.save(tmp / EVAL_AFTER_FILE)
        write_text_atomic(tmp / REPORT_FILE, result.to_json())
        check_out_dir(out_dir, overwrite)  # again: it may have appeared while we trained
    return result


def paired_generations(before: EvalReport, after: EvalReport, k: int) -> list[dict]:
    """The first `k` prompts of each family with the before and after answers and verdicts."""
    after_by_prompt = {(j.prompt.prompt, j.prompt.label): j for j in after.judgements}
    rows, shown = [], {}
    for j in before.judgements:
        family = (j.prompt.label, j.prompt.category)
        if shown.get(family, 0) >= k:
            continue
        other = after_by_prompt.get((j.prompt.prompt, j.prompt.label))
        if other is None:
            continue
        shown[family] = shown.get(family, 0) + 1
        rows.append({"label": j.prompt.label, "category": j.prompt.category, "prompt": j.prompt.prompt,
                     "before": j.response, "before_verdict": j.verdict, "after": other.response,
                     "after_verdict": other.verdict})
    return rows


def side_by_side(before: EvalReport, after: EvalReport, k: int) -> str:
    """`paired_generations` as text."""
    lines = []
    for row in paired_generations(before, after, k):
        lines.append(f"{row['label']} / {row['category']}: {row['prompt']}")
        lines.append(f"  before [{row['before_verdict']}] {row['before']!r}")
        lines.append(f"  after  [{row['after_verdict']}] {row['after']!r}")
    return "\n".join(lines)
