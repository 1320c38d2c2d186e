"""Layer 8, cli: the `safeseek` command line. It sits at the bottom: it may import every other layer, and nothing in
core imports it.

Config dataclasses ARE the command line. Each command is one module here defining

    @dataclass(kw_only=True)
    class Args(ModelOptions):            # or Options (no model), or another command's options to share them
        '''--help description of the command.'''
        steps: int = option(DiscoveryConfig.steps, min=1, help="optimisation steps")
        out: str = option(metavar="CIRCUIT.json", out="file", help="where to write the circuit")

        def validate(self) -> None:      # optional: checks across options; raise bad("--opt", problem, fix)
            ...

    def run(args: Args) -> int: ...      # the work; raise CliError for user errors found on the way

and one `Command(name, module, summary)` line in `core.cli.main.COMMANDS`.

Adding an option is adding a field (core.cli.options.option): `--field-name` (or `flag=`), its type from the
annotation — `bool` is an on/off flag defaulting to False, `Literal[...]` gives the choices, `list[X]` takes one or
more values (`--x a b` or `--x a --x b`), `X | None` is optional — its default written once (point at the core
config's default, e.g. `TuneConfig.steps`, rather than copying it), and help text that --help shows with the default.
`min=`/`above=` bound numbers and `out="file"|"dir"` probes that an output folder is writable.

`core.cli.options.parse` checks every field, then `Args.validate()`, all before `run` loads a model: a bad value
exits 2 with one line `safeseek <cmd>: error: --option: what is wrong; how to fix` (`bad()` builds that line).
Import heavy modules inside `run`/`validate`, so `safeseek --help` stays fast; a command's module is imported only
when that command runs.
"""
