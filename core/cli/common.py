"""Options and steps several commands share: the model options, loading prompts and the model as CliErrors."""

from __future__ import annotations

from dataclasses import dataclass

from core.cli.options import CliError, option
from core.data.paths import BUNDLED_PROMPT_FILES, ORGANISM_DIR

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

    def check_device(self) -> None:
        """--device and --dtype are known values (checked before anything loads)."""
        from core.model.load import ModelLoadError, resolve_device, resolve_dtype

        try:
            device = resolve_device(self.device)
        except ModelLoadError as e:
            raise CliError(f"--device: {e}") from None
        try:
            resolve_dtype(self.dtype, device)
        except ModelLoadError as e:
            raise CliError(f"--dtype: {e}") from None


def load(args: ModelOptions):
    from core.model.load import ModelLoadError, load_model

    try:
        return load_model(args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    except ModelLoadError as e:
        raise CliError(f"--model: {e}") from None


def load_prompts(paths: list[str]):
    from core.data.files import PromptFileError, load_prompt_sets

    try:
        return load_prompt_sets(paths)
    except PromptFileError as e:
        raise CliError(str(e)) from None
