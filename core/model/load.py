"""Loading any HF causal LM as a frozen TransformerBridge: device, dtype, checkpoint folder and load errors."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import NamedTuple

import torch
from transformer_lens.model_bridge import TransformerBridge

from core.model.hooks import HEAD_HOOK, NEURON_HOOK
from core.model.patches import install_kv_cache_fix

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


LIST_SUPPORTED_HINT = (
    "check what TransformerLens supports with `python -c \"from transformer_lens.model_bridge import "
    'TransformerBridge; print(TransformerBridge.list_supported_models())"` '
    "(or TransformerBridge.check_model_support('<hub id>'))"
)


class ModelLoadError(ValueError):
    """A model could not be loaded; the message names the problem and the fix."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for a --device value: "auto" is cuda when a GPU is visible, else cpu."""
    if isinstance(device, torch.device):
        device = str(device)
    name = device.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as e:
        raise ModelLoadError(f"unknown device {device!r}; pass --device auto, cpu or cuda") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("CUDA was requested but no GPU is visible; pass --device cpu")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ModelLoadError(
            f"{device!r} was requested but only {torch.cuda.device_count()} GPU(s) are visible; "
            "pass --device cuda (the first GPU) or a smaller index"
        )
    return resolved


def resolve_dtype(dtype: str | torch.dtype = "auto", device: str | torch.device = "cpu") -> torch.dtype:
    """The torch dtype for a --dtype value: "auto" is bfloat16 on cuda, float32 elsewhere."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ModelLoadError(f"unsupported dtype {dtype}; use one of auto, {', '.join(DTYPES)}")
        return dtype
    name = dtype.strip().lower()
    if name == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if name not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; pass --dtype auto, {', '.join(DTYPES)}")
    return DTYPES[name]


DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def parse_device_map(value: str | dict | None) -> str | dict | None:
    """A --device-map value: an accelerate strategy (auto, balanced, ...), a JSON object mapping module names to
    devices (`{"model.embed_tokens": "cpu", "model.layers.0": 0, ...}`), or the path of a .json file holding one."""
    if value is None or isinstance(value, dict):
        return value
    text = value.strip()
    if text in DEVICE_MAP_STRATEGIES:
        return text
    if not text.startswith("{"):
        path = Path(text).expanduser()
        if not (path.suffix == ".json" and path.is_file()):
            raise ModelLoadError(f"--device-map {value!r} is neither one of {', '.join(DEVICE_MAP_STRATEGIES)}, a JSON "
                                 "object nor an existing .json file; e.g. --device-map auto")
        text = path.read_text(encoding="utf-8")
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"--device-map is not valid JSON ({e.msg}); write e.g. "
                             '\'{"model.embed_tokens": 0, "model.layers.0": 0, "lm_head": "cpu"}\'') from None
    if not isinstance(mapping, dict) or not mapping or not all(
            isinstance(k, str) and isinstance(v, (str, int)) and not isinstance(v, bool) for k, v in mapping.items()):
        raise ModelLoadError("--device-map JSON must be a non-empty object of module name -> device (a GPU index, "
                             '"cpu" or "disk"), e.g. {"model.embed_tokens": 0, "lm_head": "cpu"}')
    if any(str(v).lower() == "meta" for v in mapping.values()):
        raise ModelLoadError('--device-map cannot place modules on "meta" (they would hold no weights); use "cpu" or '
                             '"disk" to offload')
    return mapping


def parse_max_memory(value: str | dict | None) -> dict | None:
    """A --max-memory value such as "0=70GiB,1=70GiB,cpu=200GiB" as accelerate's {0: "70GiB", "cpu": "200GiB"}."""
    if value is None or isinstance(value, dict):
        return value
    budget: dict[str | int, str] = {}
    for part in value.split(","):
        device, sep, amount = (p.strip() for p in part.partition("="))
        if not sep or not device or not amount:
            raise ModelLoadError(f"--max-memory {value!r}: write DEVICE=AMOUNT pairs separated by commas, e.g. "
                                 "0=70GiB,cpu=200GiB")
        if not re.fullmatch(r"\d+(\.\d+)?\s*([KMGT]i?B)?", amount, flags=re.IGNORECASE):
            raise ModelLoadError(f"--max-memory: {amount!r} is not an amount; write e.g. 70GiB or 500MB")
        if device.isdigit():
            budget[int(device)] = amount
        elif device in ("cpu", "disk", "mps"):
            budget[device] = amount
        else:
            raise ModelLoadError(f"--max-memory: unknown device {device!r}; use a GPU index (0, 1, ...) or cpu")
    return budget


def check_placement(device: str | torch.device, device_map: str | dict | None,
                    max_memory: str | dict | None) -> tuple[str | dict | None, dict | None]:
    """--device-map and --max-memory parsed, and checked to agree with --device (before anything loads)."""
    device_map, max_memory = parse_device_map(device_map), parse_max_memory(max_memory)
    if max_memory is not None and device_map is None:
        raise ModelLoadError("--max-memory caps what --device-map places on each device; add --device-map auto")
    if device_map is not None and str(device).strip().lower() != "auto":
        raise ModelLoadError("--device and --device-map both say where the model goes; pass only one")
    return device_map, max_memory


def _looks_like_hub_id(name: str) -> bool:
    # "owner/name" or "name"; anything with more parts, a leading ./ ~ or / is meant as a path.
    return not name.startswith((".", "/", "~")) and name.count("/") <= 1 and "\\" not in name


def resolve_checkpoint_dir(name_or_path: str | Path) -> Path:
    """A local checkpoint directory for a path or a hub id already in the HF cache; never uses the network."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{str(path)!r} has no config.json, so it is not a Hugging Face checkpoint directory; "
                "pass the folder that holds config.json, model.safetensors and the tokenizer files"
            )
        return path
    if path.exists():
        raise ModelLoadError(
            f"{str(path)!r} is a file; pass the checkpoint directory that contains it ({str(path.parent)!r})"
        )
    name = str(name_or_path)
    if isinstance(name_or_path, Path) or not _looks_like_hub_id(name):
        raise ModelLoadError(
            f"model path {name!r} does not exist (working directory: {Path.cwd()}); "
            "check the path or pass a Hugging Face hub id that is in the local cache"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError) as e:
        raise ModelLoadError(
            f"{name!r} is neither an existing directory (working directory: {Path.cwd()}) nor a model in the "
            "local Hugging Face cache. If it is a path, check it; if it is a hub id, download it on a "
            f"connected machine (`huggingface-cli download {name}`) and copy the cache over, or pass a "
            "local checkpoint directory"
        ) from e


def _is_unsupported_architecture(error: Exception) -> bool:
    message = str(error)
    return isinstance(error, ValueError) and (
        "Could not determine supported architecture" in message
        or message.startswith("Unsupported architecture")
        or "does not recognize this architecture" in message
    )


def _missing_files(checkpoint: Path) -> str | None:
    """What an incomplete checkpoint lacks, and how to fix it; None when weights and tokenizer are there."""
    if not [*checkpoint.glob("*.safetensors"), *checkpoint.glob("pytorch_model*.bin")]:
        return (
            "it holds no weights (model.safetensors or pytorch_model.bin); save the checkpoint again with "
            "save_pretrained, or re-download it"
        )
    tokenizer_files = ["tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json"]
    if not any((checkpoint / name).is_file() for name in tokenizer_files):
        return (
            "it holds no tokenizer files (tokenizer.json, tokenizer_config.json); save the tokenizer next to "
            "the weights with tokenizer.save_pretrained(<that directory>)"
        )
    return None


def _checkpoint_config(checkpoint: Path) -> dict:
    try:
        config = json.loads((checkpoint / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(
            f"{str(checkpoint / 'config.json')!r} is not valid JSON ({e}); re-save the checkpoint"
        ) from e
    if not isinstance(config, dict):
        raise ModelLoadError(f"{str(checkpoint / 'config.json')!r} is not a JSON object; re-save the checkpoint")
    return config


def _is_causal_lm_class(name: str) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return name in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values() or name.endswith(("ForCausalLM", "LMHeadModel"))


def _refuse_unmaskable(model: TransformerBridge, name: str, described: str) -> None:
    """SafeSeek reads and masks causal attention heads and MLP neurons; a model without them cannot be scored."""
    if getattr(model.cfg, "attention_dir", "causal") != "causal":
        raise ModelLoadError(f"{name!r} ({described}) attends in both directions, so it is not a causal language "
                             "model; pass a causal LM checkpoint (Llama, Qwen2, Gemma-2, GPT-2, ...)")
    missing = [hook.format(layer=0) for hook in (HEAD_HOOK, NEURON_HOOK) if hook.format(layer=0) not in model.hook_dict]
    if missing:
        raise ModelLoadError(f"{name!r} ({described}) has no {' / '.join(missing)} hook, so it has no attention heads "
                             "or MLP neurons to mask; pass a transformer causal LM with attention and MLP blocks")


def load_model(
    name_or_path: str | Path,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
    device_map: str | dict | None = None,
    max_memory: str | dict | None = None,
) -> TransformerBridge:
    """Boot a local checkpoint (or cached hub id) as a frozen, eval-mode TransformerBridge.

    `device_map` / `max_memory` (see parse_device_map / parse_max_memory) spread the layers over several devices
    through transformers/accelerate dispatch instead of putting the model on `device`; weights that fit nowhere are
    offloaded to a temporary folder, deleted with the model. TransformerLens 4.3 refuses maps that mix GPUs with
    cpu/disk offload: use all-GPU or all-CPU maps.

    The tokenizer always has a pad token (eos when the checkpoint has none) and `padding_side="left"`, so
    `model(list_of_texts)[:, -1]` is every row's next-token distribution. Core code that pads builds its
    own attention masks and never relies on this default.
    """
    checkpoint = resolve_checkpoint_dir(name_or_path)
    device_map, max_memory = check_placement(device, device_map, max_memory)
    torch_device = resolve_device(device)
    if device_map is not None and isinstance(device_map, str) and not torch.cuda.is_available():
        torch_device = torch.device("cpu")
    torch_dtype = resolve_dtype(dtype, torch_device)
    config = _checkpoint_config(checkpoint)
    described = f"model_type={config.get('model_type')!r}, architectures={config.get('architectures')}"
    architectures = config.get("architectures") or []
    if architectures and not any(_is_causal_lm_class(a) for a in architectures):
        raise ModelLoadError(f"{str(name_or_path)!r} ({described}) is not a causal language model (no *ForCausalLM "
                             "head), so it cannot generate answers; pass a causal LM checkpoint")
    placement: dict = {"device": str(torch_device)}
    offload_folder = None
    if device_map is not None:
        offload_folder = tempfile.mkdtemp(prefix="safeseek-offload-")
        placement = {"device": None, "device_map": device_map, "max_memory": max_memory,
                     "offload_folder": offload_folder}
    try:
        model = TransformerBridge.boot_transformers(
            str(checkpoint), dtype=torch_dtype, trust_remote_code=trust_remote_code, **placement
        )
    except Exception as e:
        if offload_folder is not None:
            shutil.rmtree(offload_folder, ignore_errors=True)
        if device_map is not None and isinstance(e, ValueError) and "device_map" in str(e):
            raise ModelLoadError(f"--device-map: {e}") from e
        if _is_unsupported_architecture(e):
            raise ModelLoadError(
                f"{str(name_or_path)!r} ({described}) is an architecture that transformers "
                f"{importlib.metadata.version('transformers')} / TransformerLens "
                f"{importlib.metadata.version('transformer-lens')} cannot bridge; use a supported causal LM "
                f"(Llama, Qwen2, Gemma-2, GPT-2, Mistral, ...): {LIST_SUPPORTED_HINT}"
            ) from e
        if "trust_remote_code" in str(e) and not trust_remote_code:
            raise ModelLoadError(
                f"{str(name_or_path)!r} ({described}) ships its own modelling code; pass --trust-remote-code "
                "only if you trust that code"
            ) from e
        missing = _missing_files(checkpoint)
        if missing is not None:
            raise ModelLoadError(f"could not load {str(checkpoint)!r}: {missing}") from e
        raise ModelLoadError(
            f"could not load {str(name_or_path)!r} ({described}) from {str(checkpoint)!r}: "
            f"{type(e).__name__}: {e}. Check that the directory is a complete, uncorrupted Hugging Face "
            "checkpoint (config.json, weights, tokenizer files) written by a compatible transformers version"
        ) from e
    _refuse_unmaskable(model, str(name_or_path), described)
    install_kv_cache_fix()  # cached forwards (generation) through the bridge need it; a no-op after the first load
    if offload_folder is not None:
        weakref.finalize(model, shutil.rmtree, offload_folder, True)
    if str(model.cfg.device) == "meta":
        # Everything offloaded to disk: accelerate runs each layer on the CPU, so inputs belong there.
        model.cfg.device = "cpu"
    for parameter in model.original_model.parameters():
        parameter.requires_grad_(False)
    model.eval()
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ModelLoadError(
            f"{str(name_or_path)!r} has no tokenizer; save one next to the weights (tokenizer.json and "
            "tokenizer_config.json)"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model


class ModelShape(NamedTuple):
    """(n_layers, n_heads, d_mlp): the shape of head and neuron masks, and what a circuit must match."""

    n_layers: int
    n_heads: int
    d_mlp: int

    def describe(self) -> str:
        return f"{self.n_layers} layers, {self.n_heads} heads, d_mlp {self.d_mlp}"


def model_shape(model: TransformerBridge) -> ModelShape:
    """The shape of head and neuron masks on `model`."""
    return ModelShape(int(model.cfg.n_layers), int(model.cfg.n_heads), int(model.cfg.d_mlp))


# Below this size intra-op threads buy nothing and thrash when the cores are shared (organism 1, 1.2 M parameters,
# see tests/conftest.py); from organism 2 (5.1 M) up, a toggle's batched generation runs faster on every core
# (bench/toggle.py --threads 1 vs 2).
SINGLE_THREAD_PARAMETERS = 2_000_000


def parameter_count(model: TransformerBridge) -> int:
    return sum(p.numel() for p in model.original_model.parameters())


def inference_threads(model: TransformerBridge, available: int) -> int:
    """Torch intra-op threads for serving `model` (out of `available`): 1 for a tiny model, else all."""
    return 1 if parameter_count(model) < SINGLE_THREAD_PARAMETERS else available
