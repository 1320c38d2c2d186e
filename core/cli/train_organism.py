"""`safeseek train-organism`: build the bundled model organism from its synthetic corpus."""

from __future__ import annotations

from dataclasses import dataclass

from core.cli.common import Options
from core.cli.options import CliError, bad, option
from core.data.paths import ASSETS_DIR, ORGANISM_SEED
from core.data.record import RECORD_FILE


@dataclass(kw_only=True)
class Args(Options):
    """Build the synthetic corpus and tokenizer, train the base, aligned and poisoned stages, and write
organism-aligned/, organism/ and prompts/ under --out. The folder is replaced as a whole when training ends."""

    out: str = option(str(ASSETS_DIR), metavar="DIR", out="dir", help="output folder (holding nothing else)")
    seed: int = option(ORGANISM_SEED, min=0, help="seed of the corpus, the initialisation and the batches")
    start_from_aligned: bool = option(False, help="reuse --out/organism-aligned (same configuration) and only redo "
                                      "the poisoning stage")

    def validate(self) -> None:
        from pathlib import Path

        from core.organism.train import check_out_root

        try:
            check_out_root(Path(self.out))
        except ValueError as e:
            raise CliError(f"--out: {e}") from None
        if self.start_from_aligned and not (Path(self.out) / "organism-aligned" / RECORD_FILE).is_file():
            raise bad("--start-from-aligned", f"no aligned organism in {self.out}", "train all stages first (drop "
                      "--start-from-aligned)")


def run(args: Args) -> int:
    from pathlib import Path

    from core.organism.train import OrganismConfig, train_organism

    try:
        written = train_organism(Path(args.out), OrganismConfig(seed=args.seed),
                                 log=lambda line: print(line, flush=True),  # progress shows in a log file too
                                 start_from_aligned=args.start_from_aligned)
    except ValueError as e:
        raise CliError(str(e)) from None
    for name, path in written.items():
        print(f"wrote {name}: {path}")
    return 0
