"""`safeseek export`: write an HF checkpoint with a circuit's zero ablation baked into its weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.cli.common import Options
from core.cli.options import CliError, option


@dataclass(kw_only=True)
class Args(Options):
    """Zero the attention output-projection inputs of the circuit's heads and the MLP down-projection inputs of its
neurons, and save an ordinary HF checkpoint (safetensors, config, tokenizer) that any inference engine serves."""

    circuit: str = option(metavar="CIRCUIT.json", help="the circuit to ablate")
    out: str = option(metavar="DIR", help="output checkpoint folder")
    model: str | None = option(None, metavar="PATH", help="checkpoint to edit (default: the circuit's recorded "
                               "model path, else the bundled organism)")
    ablation: Literal["zero", "mean"] = option("zero", help="only zero ablation is a pure weight edit; mean is "
                                               "refused")
    overwrite: bool = option(False, help="replace --out (an empty folder or a checkpoint folder)")


def run(args: Args) -> int:
    from core.circuit.circuit import CircuitFileError, load_circuit
    from core.circuit.export import ExportError, export_ablated, provenance
    from core.data.paths import ORGANISM_DIR

    try:
        circuit = load_circuit(args.circuit)
    except CircuitFileError as e:
        raise CliError(str(e)) from None
    model = args.model or circuit.model.get("path") or str(ORGANISM_DIR)
    try:  # every check (architecture, shape, --out) runs on config.json before the weights are read
        plan = export_ablated(model, circuit, args.out, method=args.ablation, overwrite=args.overwrite)
    except ExportError as e:
        raise CliError(str(e)) from None
    print(provenance(plan, args.circuit))
    return 0
