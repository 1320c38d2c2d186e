"""`safeseek export`: write an HF checkpoint with a circuit's zero ablation baked into its weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from core.cli.common import Options
from core.cli.options import CliError, option

if TYPE_CHECKING:
    from core.circuit.circuit import Circuit


@dataclass(kw_only=True)
class Args(Options):
    """Zero the attention output-projection inputs of the circuit's heads and the MLP down-projection inputs of its
neurons, and save an ordinary HF checkpoint (safetensors, config, tokenizer) that any inference engine serves."""

    circuit: str = option(metavar="CIRCUIT.json", help="the circuit to ablate")
    out: str = option(metavar="DIR", help="output checkpoint folder")
    model: str | None = option(None, metavar="PATH", help="checkpoint to edit (default: the circuit's recorded "
                               "model path, or the bundled organism when the circuit was found on its weights)")
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
    model = args.model or _default_model(circuit, ORGANISM_DIR)
    try:  # every check (architecture, shape, --out) runs on config.json before the weights are read
        plan = export_ablated(model, circuit, args.out, method=args.ablation, overwrite=args.overwrite)
    except ExportError as e:
        raise CliError(str(e)) from None
    print(provenance(plan, args.circuit))
    return 0


def _default_model(circuit: Circuit, organism_dir: Path) -> str:
    """The checkpoint a circuit was found on: its recorded path or hub id where that resolves here (a checkpoint
    folder, or the local HF cache); the bundled organism when the circuit records no path or the organism's weights
    (a sample circuit read from another clone); else an error."""
    from core.data.paths import recorded_location
    from core.data.record import recorded_weights
    from core.model.load import ModelLoadError, resolve_checkpoint_dir

    recorded = circuit.model.get("path")
    if recorded:
        try:
            location = str(recorded_location(recorded))
            resolve_checkpoint_dir(location)
            return location
        except ModelLoadError:
            pass  # not here: perhaps the same weights under another clone's path
    found_on = circuit.model.get("weights_sha256")
    if not recorded or (found_on and found_on == recorded_weights(organism_dir)):
        return str(organism_dir)
    raise CliError(f"circuit '{circuit.name}' was found on {recorded}, which is not on this machine; pass --model "
                   "with that checkpoint's folder")
