"""Options and steps several commands share: the model options, loading prompts and the model as CliErrors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.cli.options import CliError, option
from core.data.paths import BUNDLED_PROMPT_FILES, ORGANISM_DIR

if TYPE_CHECKING:
    from core.evaluation.cache import ResultCache

DEFAULT_PROMPTS = [str(path) for path in BUNDLED_PROMPT_FILES]


@dataclass(kw_only=True)
class Options:
    """What every command's Args has besides its options."""

    command_line: str = ""  # set by core.cli.main: recorded in the files a command writes, to reproduce them


@dataclass(kw_only=True)
class ModelOptions(Options):
    model: str = option(str(ORGANISM_DIR), metavar="PATH", help="HF checkpoint directory or cached hub id "
                        "(default: the bundled organism)")
    device: str = option("auto", help="auto (GPU if visible), cpu or cuda")
    dtype: str = option("auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16 or float16")
    trust_remote_code: bool = option(False, help="allow a checkpoint's own modelling code to run (off by default: "
                                     "only architectures transformers ships)")
    device_map: str | None = option(None, metavar="auto|balanced|JSON",
                                    help="place layers over devices instead of --device: auto, balanced, or a JSON "
                                    "object / .json file of module -> device (GPU index, \"cpu\", \"disk\")")
    max_memory: str | None = option(None, metavar="DEV=SIZE,...",
                                    help="per-device budget for --device-map, e.g. 0=70GiB,1=70GiB,cpu=200GiB")

    def check_device(self) -> None:
        """--device, --dtype, --device-map and --max-memory are known values that agree (checked before anything
        loads)."""
        from core.model.load import ModelLoadError, check_placement, resolve_device, resolve_dtype

        try:
            device = resolve_device(self.device)
        except ModelLoadError as e:
            raise CliError(f"--device: {e}") from None
        try:
            resolve_dtype(self.dtype, device)
        except ModelLoadError as e:
            raise CliError(f"--dtype: {e}") from None
        try:
            check_placement(self.device, self.device_map, self.max_memory)
        except ModelLoadError as e:
            raise CliError(str(e)) from None  # the message starts with the option it is about



@dataclass(kw_only=True)
class CacheOptions(Options):
    """Where a command caches the results it can reuse (core.evaluation.cache)."""

    cache_dir: str | None = option(None, metavar="DIR", help="where results are cached (default: "
                                   "$SAFESEEK_REPORT_CACHE, else ~/.cache/safeseek/report)")
    no_cache: bool = option(False, help="recompute everything and store nothing")

    def result_cache(self) -> ResultCache:
        """The ResultCache these options name."""
        from core.evaluation.cache import ResultCache, default_cache_dir

        return ResultCache(None if self.no_cache else (self.cache_dir or default_cache_dir()))


@dataclass(kw_only=True)
class EstimatedOptions(ModelOptions):
    """Model options of a command that estimates its memory and time after loading (show_estimate)."""

    dry_run: bool = option(False, help="print the memory and time estimate and exit")

def load(args: ModelOptions):
    """The model of the model options, refused before loading when its weights alone cannot fit the device."""
    from core.model.estimate import EstimateError, check_weights_fit
    from core.model.load import ModelLoadError, load_model, resolve_checkpoint_dir, resolve_device, resolve_dtype

    try:
        checkpoint = resolve_checkpoint_dir(args.model)
        device = resolve_device(args.device)
        check_weights_fit(checkpoint, resolve_dtype(args.dtype, device), device,
                          multi_device=args.device_map is not None)
        return load_model(args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
                          device_map=args.device_map, max_memory=args.max_memory)
    except EstimateError as e:
        raise CliError(str(e)) from None
    except ModelLoadError as e:
        raise CliError(str(e) if str(e).startswith("--") else f"--model: {e}") from None


def show_estimate(estimate, options: str, dry_run: bool) -> None:
    """Print the estimate (to stdout for --dry-run, else to stderr with the progress bars, so stdout keeps only
    results); refuse a run that cannot fit, naming `options` to change."""
    import sys

    from core.model.estimate import EstimateError, refuse_if_too_big

    print(estimate.text(), file=sys.stdout if dry_run else sys.stderr)
    try:
        refuse_if_too_big(estimate, options)
    except EstimateError as e:
        raise CliError(str(e)) from None


def load_prompts(paths: list[str], label: str | None = None):
    """The prompt files as one set (`label`: relabel every row), a bad file as a CliError."""
    from core.data.files import PromptFileError, load_prompt_sets

    try:
        return load_prompt_sets(paths, label=label)
    except PromptFileError as e:
        raise CliError(str(e)) from None
