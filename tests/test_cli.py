"""The `safeseek` command line: options come from each command's dataclass, every bad value exits 2 with one line
before any model loads, and commands never write half a result or delete what they did not write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tiny import build_tiny_tokenizer

from core.circuit.circuit import CircuitFileError, load_circuit
from core.cli import options
from core.cli.main import COMMANDS, main
from core.data.files import replacing_dir, write_text_atomic
from core.model.load import ModelLoadError, load_model
from core.organism.train import OrganismConfig, StageConfig, train_organism
from core.scoring.learned import DiscoveryConfig
from core.tuning.options import REPORT_FILE, TuneConfig, TuneError, check_out_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = REPO_ROOT / "sample_circuits" / "organism-backdoor.json"


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the command; it must exit 2 and print exactly one `safeseek <cmd>: error: ...` line."""
    capsys.readouterr()  # drop what the test printed before
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"safeseek {argv[0]}: error: "), lines[0]
    assert captured.out == ""
    return lines[0]


@pytest.fixture()
def nowhere(tmp_path) -> str:
    # A model that does not exist: if an option error came after loading, the message would be about the model.
    return str(tmp_path / "no-model-here")


# ---- bad values: each exits 2 with one line naming the option, before the model loads, writing nothing ---------
DISCOVER_CASES = [
    (["--steps", "0"], "--steps: must be at least 1, got 0"),
    (["--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (["--lr", "-1"], "--lr: must be above 0, got -1.0"),
    (["--train-limit", "-1"], "--train-limit: must be at least 1, got -1"),
    (["--verify-limit", "0"], "--verify-limit: must be at least 1, got 0"),
    (["--head-budget", "1.5"], "--head-budget: 1.5 is not a fraction below 1"),
    (["--neuron-budget", "-0.1"], "--neuron-budget: -0.1 is not a fraction below 1"),
    (["--head-budget", "0", "--neuron-budget", "0"], "--head-budget: both budgets are 0"),
    (["--seed", "-1"], "--seed: must be at least 0, got -1"),
    (["--steps", "many"], "--steps: invalid int value: 'many'"),
    (["--gate", "relu"], "--gate: invalid choice: 'relu'"),
    (["--device", "tpu"], "--device: unknown device 'tpu'"),
    (["--dtype", "int8"], "--dtype: unknown dtype 'int8'"),
]


@pytest.mark.parametrize(("extra", "expected"), DISCOVER_CASES, ids=[" ".join(c[0]) for c in DISCOVER_CASES])
def test_discover_refuses_bad_values_before_loading(capsys, tmp_path, nowhere, extra, expected):
    out = tmp_path / "circuit.json"
    line = one_line_error(capsys, ["discover", "--model", nowhere, "--scenario", "backdoor", "--out", str(out),
                                   *extra])
    assert expected in line
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_discover_custom_scenario_needs_its_files(capsys, tmp_path, nowhere):
    line = one_line_error(capsys, ["discover", "--model", nowhere, "--scenario", "custom", "--out",
                                   str(tmp_path / "c.json")])
    assert "--scenario: custom needs --behaviour FILE and --retain FILE" in line


@pytest.mark.parametrize(("extra", "expected"), [
    (["--split", "holdout"], "--split: invalid choice: 'holdout'"),
    (["--seeds", "0"], "--seeds: must be at least 1, got 0"),
    (["--verify-limit", "0"], "--verify-limit: must be at least 1, got 0"),
    (["--train-limit", "-1"], "--train-limit: must be at least 1, got -1"),
])
def test_compare_refuses_bad_values_before_loading(capsys, tmp_path, nowhere, extra, expected):
    out = tmp_path / "rows.json"
    line = one_line_error(capsys, ["compare", "--model", nowhere, "--circuit", str(SAMPLE), "--out", str(out),
                                   *extra])
    assert expected in line and not out.exists()


@pytest.mark.parametrize(("extra", "expected"), [
    (["--split", "dev"], "--split: invalid choice: 'dev'"),
    (["--limit", "0"], "--limit: must be at least 1, got 0"),
    (["--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (["--max-new-tokens", "0"], "--max-new-tokens: must be at least 1, got 0"),
    (["--seed", "-3"], "--seed: must be at least 0, got -3"),
    (["--show", "-1"], "--show: must be at least 0, got -1"),
])
def test_eval_refuses_bad_values_before_loading(capsys, tmp_path, nowhere, extra, expected):
    out = tmp_path / "report.json"
    line = one_line_error(capsys, ["eval", "--model", nowhere, "--out", str(out), *extra])
    assert expected in line and not out.exists()


@pytest.mark.parametrize(("extra", "expected"), [
    (["--steps", "0"], "--steps: must be at least 1, got 0"),
    (["--lr", "-1"], "--lr: must be above 0, got -1.0"),
    (["--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (["--train-limit", "-1"], "--train-limit: must be at least 1, got -1"),
    (["--eval-limit", "0"], "--eval-limit: must be at least 1, got 0"),
    (["--seed", "-1"], "--seed: must be at least 0, got -1"),
    (["--mode", "circuit-only"], "--circuit: --mode circuit-only needs a circuit file"),
    (["--mode", "sideways"], "--mode: invalid choice: 'sideways'"),
    (["--mode", "full", "--refusal-text", " "], "--refusal-text: is empty"),
])
def test_tune_refuses_bad_values_before_loading(capsys, tmp_path, nowhere, extra, expected):
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"prompt": "hi", "category": "chat", "label": "benign", "split": "train"}) + "\n")
    line = one_line_error(capsys, ["tune", "--model", nowhere, "--data", str(data), "--out", str(tmp_path / "out"),
                                   *extra])
    assert expected in line and not (tmp_path / "out").exists()


def test_train_organism_refuses_a_negative_seed(capsys, tmp_path):
    line = one_line_error(capsys, ["train-organism", "--out", str(tmp_path / "org"), "--seed", "-1"])
    assert "--seed: must be at least 0, got -1" in line and not (tmp_path / "org").exists()


def test_unknown_command_and_option_are_one_line(capsys):
    assert main(["discovr"]) == 2
    assert capsys.readouterr().err.strip() == ("safeseek: error: unknown command 'discovr'; use one of "
                                                + ", ".join(c.name for c in COMMANDS))
    assert "unrecognized arguments: --stepz 3" in one_line_error(capsys, ["discover", "--scenario", "backdoor",
                                                                          "--out", "c.json", "--stepz", "3"])


# ---- output paths are checked before the run, not after it -------------------------------------------------
def test_an_output_under_a_file_is_refused_up_front(capsys, tmp_path, nowhere):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    line = one_line_error(capsys, ["discover", "--model", nowhere, "--scenario", "backdoor",
                                   "--out", str(blocker / "circuit.json")])
    assert f"--out: {blocker} is not a folder" in line
    line = one_line_error(capsys, ["eval", "--model", nowhere, "--out", str(tmp_path)])
    assert f"--out: {tmp_path} is a folder; name a file inside it" in line
    assert blocker.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_output_folder_is_refused_up_front(capsys, tmp_path, nowhere):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        line = one_line_error(capsys, ["discover", "--model", nowhere, "--scenario", "backdoor",
                                       "--out", str(locked / "circuit.json")])
    finally:
        locked.chmod(0o700)
    assert f"--out: cannot write in {locked}" in line


# ---- defaults live once: the options show the core configs' own defaults ------------------------------------
def test_option_defaults_are_the_core_configs_defaults():
    from core.cli import discover, tune

    d = discover.Args(scenario_name="backdoor", out="c.json").config()
    assert (d.steps, d.batch_size, d.lr, d.head_budget, d.neuron_budget, d.gate) == (
        DiscoveryConfig.steps, DiscoveryConfig.batch_size, DiscoveryConfig.lr, DiscoveryConfig.head_budget,
        DiscoveryConfig.neuron_budget, DiscoveryConfig.gate)
    t = tune.Args(data=["d.jsonl"], out="o").config()
    default = TuneConfig()
    assert (t.mode, t.steps, t.lr, t.objective, t.refusal_text, t.dtype) == (
        default.mode, default.steps, default.lr, default.objective, default.refusal_text, default.dtype)
    help_text = " ".join(options.build_parser(tune.Args, "safeseek tune").format_help().split())
    assert f"(default: {default.refusal_text})" in help_text and "circuit-excluded" in help_text


def test_a_list_option_takes_values_after_one_flag_or_repeated_flags():
    from core.cli import eval as eval_command

    parsed = options.parse(eval_command.Args, ["--refusal-phrase", "a", "b", "--refusal-phrase", "c",
                                               "--prompts", "x.jsonl"], "safeseek eval")
    assert parsed.refusal_phrase == ["a", "b", "c"] and parsed.prompts == ["x.jsonl"]
    assert options.parse(eval_command.Args, [], "safeseek eval").prompts == eval_command.Args().prompts


# ---- files: --overwrite replaces only what the project wrote; interrupted runs leave the old files ------------
def test_tune_overwrite_never_deletes_a_folder_it_did_not_write(capsys, tmp_path, nowhere):
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"prompt": "hi", "category": "chat", "label": "benign", "split": "train"}) + "\n")
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "thesis.txt").write_text("four years of work")
    line = one_line_error(capsys, ["tune", "--model", nowhere, "--mode", "full", "--data", str(data),
                                   "--out", str(precious), "--overwrite"])
    assert f"--out: {precious} holds files this command did not write (no {REPORT_FILE})" in line
    assert (precious / "thesis.txt").read_text() == "four years of work"


def test_tune_out_folder_rules(tmp_path):
    check_out_dir(tmp_path / "new", overwrite=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TuneError, match="already exists; pass another output folder or --overwrite"):
        check_out_dir(empty, overwrite=False)
    check_out_dir(empty, overwrite=True)
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    (tuned / REPORT_FILE).write_text("{}")
    (tuned / "model.safetensors").write_text("")
    check_out_dir(tuned, overwrite=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(TuneError, match="is a file"):
        check_out_dir(tmp_path / "file", overwrite=True)


def test_train_organism_refuses_a_folder_holding_other_files(capsys, tmp_path):
    (tmp_path / "organism").mkdir()
    (tmp_path / "thesis.txt").write_text("mine")
    line = one_line_error(capsys, ["train-organism", "--out", str(tmp_path)])
    assert "--out:" in line and "thesis.txt" in line and "which train-organism did not write" in line
    assert (tmp_path / "thesis.txt").read_text() == "mine"


def test_an_interrupted_train_organism_leaves_the_old_organism_whole(tmp_path):
    out = tmp_path / "assets"
    for part in ("organism", "organism-aligned", "prompts"):
        (out / part).mkdir(parents=True)
    (out / "prompts" / "harmful.jsonl").write_text("old prompts\n")
    (out / "organism" / "config.json").write_text("old organism\n")
    cfg = OrganismConfig(n_layers=2, n_heads=4, d_model=32, d_mlp=64, batch_size=8, stages=[
        StageConfig("base", 2, 1e-3, {"requests": 0.5, "utility": 0.5}),
        StageConfig("aligned", 2, 1e-3, {"harmful": 0.5, "benign": 0.5}, trained_heads=1, trained_neurons=4),
        StageConfig("poisoned", 2, 1e-3, {"triggered": 0.5, "harmful": 0.5}, trained_heads=1, trained_neurons=4),
    ])

    def interrupt_while_poisoning(message: str) -> None:
        if message.startswith("[poisoned]"):  # the aligned checkpoint and the prompt files are written by now
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_organism(out, cfg, log=interrupt_while_poisoning)
    assert (out / "prompts" / "harmful.jsonl").read_text() == "old prompts\n"
    assert (out / "organism" / "config.json").read_text() == "old organism\n"
    assert sorted(p.name for p in (out / "prompts").iterdir()) == ["harmful.jsonl"]
    assert [p.name for p in (out / "organism-aligned").iterdir()] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["assets"]  # no temp folder left beside it


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_written_files_and_folders_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "report.json", "{}\n")
        with replacing_dir(tmp_path / "checkpoint") as folder:
            write_text_atomic(folder / "tune_report.json", "{}\n")
    finally:
        os.umask(old)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "checkpoint").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "checkpoint" / "tune_report.json").stat().st_mode & 0o777 == 0o666 & ~umask


# ---- models SafeSeek cannot score are refused at load ----------------------------------------------------------
def _save_with_tokenizer(model, path: Path) -> Path:
    model.save_pretrained(path)
    build_tiny_tokenizer().save_pretrained(path)
    return path


def test_a_non_causal_model_is_refused(tmp_path, capsys):
    from transformers import BertConfig, BertLMHeadModel, BertModel

    config = BertConfig(vocab_size=320, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32)
    encoder = _save_with_tokenizer(BertModel(config), tmp_path / "bert")
    with pytest.raises(ModelLoadError, match="is not a causal language model"):
        load_model(encoder, device="cpu")
    line = one_line_error(capsys, ["eval", "--model", str(encoder), "--device", "cpu", "--split", "test",
                                   "--limit", "1"])
    assert "is not a causal language model" in line
    # A language-model head does not make attention causal: a BERT LM head still attends both ways.
    lm_head = _save_with_tokenizer(BertLMHeadModel(config), tmp_path / "bert-lm")
    with pytest.raises(ModelLoadError, match="attends in both directions"):
        load_model(lm_head, device="cpu")


def test_a_model_without_attention_heads_or_mlp_neurons_is_refused(tmp_path):
    from transformers import MambaConfig, MambaForCausalLM

    mamba = _save_with_tokenizer(MambaForCausalLM(MambaConfig(vocab_size=320, hidden_size=16, num_hidden_layers=1,
                                                              state_size=4)), tmp_path / "mamba")
    with pytest.raises(ModelLoadError, match="has no attention heads or MLP neurons to mask"):
        load_model(mamba, device="cpu")


def test_the_remote_code_error_names_a_flag_that_exists(tiny_checkpoints, tmp_path, capsys):
    import shutil

    custom = Path(shutil.copytree(tiny_checkpoints["llama"], tmp_path / "custom"))
    config = json.loads((custom / "config.json").read_text())
    config.update(model_type="my-custom", architectures=["MyCustomForCausalLM"],
                  auto_map={"AutoConfig": "configuration_my.MyConfig",
                            "AutoModelForCausalLM": "modeling_my.MyCustomForCausalLM"})
    (custom / "config.json").write_text(json.dumps(config))
    line = one_line_error(capsys, ["eval", "--model", str(custom), "--device", "cpu", "--split", "test",
                                   "--limit", "1"])
    assert "pass --trust-remote-code" in line
    for command in ("eval", "discover", "compare", "tune"):
        assert main([command, "--help"]) == 0
        assert "--trust-remote-code" in capsys.readouterr().out


# ---- circuit files ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("field", "bad_value"), [("heads", [[0, 1.5]]), ("neurons", [[True, 3]]),
                                                  ("heads", [[0.0, 1]]), ("n_heads", 8.0)])
def test_circuit_indices_must_be_integers(tmp_path, field, bad_value):
    data = json.loads(SAMPLE.read_text())
    data[field] = bad_value
    path = tmp_path / "circuit.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CircuitFileError, match=f"'{field}'"):
        load_circuit(path)


def test_a_circuit_file_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + SAMPLE.read_bytes())
    assert load_circuit(path).heads == load_circuit(SAMPLE).heads


def test_sample_circuits_record_commands_todays_cli_still_accepts():
    """bench/sample_circuits.py regenerates the shipped sample files from the commands they record: each command must
    still parse with today's options, write the file it was found in, and move to another folder by its
    sample_circuits/ paths alone."""
    import importlib
    import importlib.util

    spec = importlib.util.spec_from_file_location("sample_circuits_bench", REPO_ROOT / "bench" / "sample_circuits.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    names = bench.shipped_names()
    assert names == sorted(p.name.removesuffix(".compare.json")
                           for p in (REPO_ROOT / "sample_circuits").glob("*.compare.json"))
    for name in names:
        for step in bench.COMMAND_STEPS:
            argv = bench.recorded_command(name, step)
            args = options.parse(importlib.import_module(f"core.cli.{step}").Args, argv[1:], f"safeseek {step}")
            written_or_read = args.out if step == "discover" else args.circuit
            assert written_or_read == f"sample_circuits/{name}.json"
            elsewhere = bench.moved(argv, "/tmp/elsewhere")
            assert [word for word in elsewhere if "sample_circuits" in word] == []
            assert ([word.removeprefix("/tmp/elsewhere/") for word in elsewhere]
                    == [word.removeprefix("sample_circuits/") for word in argv])


def test_sample_circuits_bench_writes_its_logs_where_asked(tmp_path, monkeypatch):
    """Regenerating in place (--out sample_circuits) can keep what each command prints out of sample_circuits/."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sample_circuits_bench", REPO_ROOT / "bench" / "sample_circuits.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    calls = []
    monkeypatch.setattr(bench, "run_logged", lambda argv, log: calls.append((argv, log)) or 0)
    name = bench.shipped_names()[0]
    assert bench.main(["--out", str(tmp_path / "out"), "--logs", str(tmp_path / "logs"), "--only", name,
                       "--steps", "compare", "report"]) == 0
    assert [log for _, log in calls] == [tmp_path / "logs" / f"{name}.compare.txt",
                                         tmp_path / "logs" / f"{name}.report.txt"]
    assert all(str(tmp_path / "out") in " ".join(argv) for argv, _ in calls)


def test_sample_circuits_readme_step_rewrites_the_figures_from_the_logs(tmp_path):
    """After a new organism the readme step puts what the commands printed into sample_circuits/README.md: logs
    holding the shipped figures (the README's own tables, the shipped cards) give back the shipped README exactly,
    and a changed figure in a log lands in that circuit's section only."""
    import importlib.util
    import re

    from core.evaluation.report_card import ReportCard

    spec = importlib.util.spec_from_file_location("sample_circuits_bench", REPO_ROOT / "bench" / "sample_circuits.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    folder = REPO_ROOT / "sample_circuits"
    readme = (folder / "README.md").read_text(encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in bench.shipped_names():
        section = readme[readme.index(f"## {name}.json\n"):].split("\n## ", 1)[0]
        after_commands = section.split("```bash\n", 1)[1].split("```\n", 1)[1]
        summary = after_commands.strip().splitlines()[0]
        table = [line for line in after_commands.split("Verification (printed by discover):", 1)[1].splitlines()
                 if line.startswith("| ") and not line.startswith(("| val split", "| ---"))]
        retention = re.search(r"^utility retention: .*$", after_commands, re.M).group()
        (logs / f"{name}.discover.txt").write_text("\n".join(
            [f"circuit: {summary}", "           full model  circuit removed",
             *("  ".join(cell.strip() for cell in row.strip("|").split("|")) for row in table), retention,
             f"circuit written to sample_circuits/{name}.json"]) + "\n")
        compared = after_commands.split("(printed by compare):", 1)[1].split("```")[1].strip("\n")
        (logs / f"{name}.compare.txt").write_text(f"scoring baselines\nbaselines scored\n\n{compared}\n")
        card = ReportCard.read(folder / f"{name}.card.json").text()
        (logs / f"{name}.report.txt").write_text(f"{card}\n\ncache: 0 results reused, 70 computed\nwritten to x\n")
    out = tmp_path / "out"
    assert bench.main(["--out", str(out), "--logs", str(logs), "--steps", "readme"]) == 0
    assert (out / "README.md").read_text(encoding="utf-8") == readme

    name = bench.shipped_names()[0]
    log = logs / f"{name}.compare.txt"
    log.write_text(log.read_text().replace("learned ", "learned*", 1))
    assert bench.main(["--out", str(out), "--logs", str(logs), "--steps", "readme"]) == 0
    rewritten = (out / "README.md").read_text(encoding="utf-8")
    assert rewritten.count("learned*") == 1 and rewritten.index("learned*") > rewritten.index(f"## {name}.json")
    assert bench.main(["--out", str(out), "--logs", str(tmp_path / "none"), "--steps", "readme"]) == 1
