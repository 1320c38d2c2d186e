"""Dataclass fields as command-line options: `option()` declares one, `parse()` turns argv into a checked instance."""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Literal


class CliError(Exception):
    """A user-facing error: printed as one line (`safeseek <cmd>: error: ...`), exit status 2, no traceback."""


def bad(option: str, problem: str, fix: str) -> CliError:
    """The one error format: `--option: what is wrong; how to fix`."""
    return CliError(f"{option}: {problem}; {fix}")


def option(default: Any = dataclasses.MISSING, *, help: str, metavar: str | None = None, flag: str | None = None,
           default_factory: Any = dataclasses.MISSING, min: float | None = None, above: float | None = None,
           out: Literal["file", "dir"] | None = None) -> Any:
    """A dataclass field that is also a command-line option `--field-name` (or `flag`).

    No default: the option is required. The help gets " (default: X)" unless it already says "default". `min`
    (inclusive) and `above` (exclusive) bound a number; `out` marks an output path whose folder must be writable.
    These checks run in `parse`, before the command runs.
    """
    meta = {"help": help, "metavar": metavar, "flag": flag, "min": min, "above": above, "out": out}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # one line, not argparse's usage block
        raise CliError(f"{message.removeprefix('argument ')}; see {self.prog} --help")


def build_parser(cls: type, prog: str, description: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one option per field of dataclass `cls` (types, choices and defaults from the field)."""
    parser = _Parser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if "help" not in field.metadata:
            continue  # not an option
        kind, optional = _unwrap_optional(hints[field.name])
        kwargs: dict[str, Any] = {"dest": field.name, "help": field.metadata["help"].replace("%", "%%")}
        if field.metadata.get("metavar"):
            kwargs["metavar"] = field.metadata["metavar"]
        default = default_of(field)
        if kind is bool:
            if default is not False:
                raise TypeError(f"{cls.__name__}.{field.name}: a bool option must default to False (it is a flag)")
            kwargs["action"] = "store_true"
        else:
            if typing.get_origin(kind) is list:  # `--x a b` and `--x a --x b` both give [a, b]
                kwargs.update(nargs="+", action="extend")
                kind = typing.get_args(kind)[0]
            if typing.get_origin(kind) is Literal:
                kwargs["choices"] = typing.get_args(kind)
                kind = type(kwargs["choices"][0])
            kwargs["type"] = kind
            kwargs.setdefault("metavar", {int: "N", float: "X"}.get(kind))
            if default is dataclasses.MISSING:
                kwargs["required"] = True
            elif default is not None and default != [] and "default" not in kwargs["help"]:
                shown = " ".join(map(str, default)) if isinstance(default, list) else default
                kwargs["help"] += f" (default: {shown})".replace("%", "%%")  # argparse %-formats help
        if default is not dataclasses.MISSING:
            kwargs["default"] = None if kwargs.get("action") == "extend" else default  # extend would append to it
        parser.add_argument(flag_of(field), **kwargs)
    return parser


def parse(cls: type, argv: list[str], prog: str, description: str | None = None):
    """Parse `argv` into a `cls` instance, check every field's bounds and output folder, then `cls.validate()`."""
    namespace = build_parser(cls, prog, description).parse_args(argv)
    args = cls(**{k: v for k, v in vars(namespace).items() if v is not None})  # None: the field's own default
    for field in dataclasses.fields(cls):
        check_field(args, field)
    if hasattr(args, "validate"):
        args.validate()
    return args


def check_field(args: Any, field: dataclasses.Field) -> None:
    value, meta, name = getattr(args, field.name), field.metadata, flag_of(field)
    if value is None or "help" not in meta:
        return
    if meta.get("min") is not None and value < meta["min"]:
        raise bad(name, f"must be at least {meta['min']}, got {value}", f"pass e.g. {name} {_example(field)}")
    if meta.get("above") is not None and value <= meta["above"]:
        raise bad(name, f"must be above {meta['above']}, got {value}", f"pass e.g. {name} {_example(field)}")
    if meta.get("out"):
        check_writable(value, name, meta["out"])


def check_writable(path: str | Path, name: str, kind: Literal["file", "dir"]) -> None:
    """Fail now, not after the run, if `path` cannot be written: probe its nearest existing folder with a temp file."""
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise bad(name, f"{path} is a folder", "name a file inside it")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise bad(name, f"{path} is a file", "name a folder")
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise bad(name, f"{folder} is not a folder", "pick an output path inside a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".safeseek-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise bad(name, f"cannot write in {folder} ({e.strerror})", "pick a writable place") from None


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"only `X | None` unions can be options, got {kind}")
        return rest[0], True
    return kind, False


def default_of(field: dataclasses.Field) -> Any:
    """The field's default value (calling its default_factory)."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _example(field: dataclasses.Field) -> Any:
    default = default_of(field)
    if isinstance(default, int | float) and not isinstance(default, bool):
        return default
    return field.metadata["min"] if field.metadata.get("min") is not None else "a larger value"
