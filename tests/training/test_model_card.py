"""The learning-curve benchmark's model card and its ``--ship`` step: the card says what the run
records, and the shipped adapter names its base without this machine's path yet still resolves to
the embedded default on a machine where that path does not exist."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from gtalign.backends import _model_store

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_training.py"
BASE = "/home/someone/.cache/gtalign/models/SmolLM2-135M-Instruct.Q4_1-5b28e65ea075cd68"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_training_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _run_folder(out: Path) -> None:
    """A run folder as `bench_training.py curve` leaves it: SFT then GRPO records, a final adapter, the steps."""
    for kind, folder, steps, lr in (("sft", "sft", 200, 5e-4), ("grpo", "grpo", 20, 5e-5)):
        (out / folder / "final").mkdir(parents=True)
        record = {"kind": kind, "versions": {"gtalign": "0.1.0", "trl": "1.16.0"},
                  "config": {"prompt": "builder", "trl": {"max_steps": steps, "learning_rate": lr, "seed": 0,
                                                          "per_device_train_batch_size": 4},
                             "reward": {"preset": "paper", "judge": "rule"} if kind == "grpo" else None},
                  "rows": {"used": 834, "per_source": {"ambig_qa": 300, "wildguard": 240}, "prompt_mode": "builder"}}
        (out / folder / "gtalign_train.json").write_text(json.dumps(record))
    final = out / "grpo" / "final"
    (final / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": BASE, "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}))
    (final / "adapter_model.safetensors").write_bytes(b"\0" * 2_000_000)
    (final / "gtalign_base.json").write_text(json.dumps(
        {"format": 1, "name": "SmolLM2-135M-Instruct", "path": BASE, "embedded_default": True}))
    steps = [{"step": "train-sft", "command": f"{out}/x train sft --out {out}/sft", "exit": 0},
             {"step": "train-grpo", "command": f"{out}/x train grpo --data-dir /data/here --out {out}/grpo", "exit": 1},
             {"step": "train-grpo", "command": f"{out}/x train grpo --data-dir /data/here --out {out}/grpo --seed 0", "exit": 0}]
    (out / "steps.jsonl").write_text("".join(json.dumps(row) + "\n" for row in steps))


def test_card_says_what_the_run_records(bench, tmp_path: Path) -> None:
    _run_folder(tmp_path)
    card = bench.model_card(tmp_path, "grpo")
    assert "rank 8, alpha 16, on q_proj, v_proj; 2.0 MB" in card
    assert "- SFT: 834 rows (ambig_qa 300, wildguard 240), prompt `builder`, 200 steps" in card
    assert "- GRPO: 834 rows" in card and "20 steps" in card and "preset `paper`, judge `rule`" in card
    assert "trl 1.16.0" in card
    assert "OUT/x train grpo --data-dir DATA --out OUT/grpo --seed 0" in card  # the step's last run, portable
    assert str(tmp_path) not in card and "/data/here" not in card


def test_ship_copies_the_adapter_without_this_machines_path(bench, tmp_path: Path, monkeypatch) -> None:
    out, package = tmp_path / "run", tmp_path / "package" / "default-adapter"
    _run_folder(out)
    monkeypatch.setattr(_model_store, "DEFAULT_ADAPTER_DIR", package)
    settings = bench.Settings(out, None, 1, 1, 1, 1, 1)
    assert bench.phase_card(settings, "grpo", ship=True) == package
    assert sorted(p.name for p in package.iterdir()) == sorted([*bench.SHIPPED_FILES, "README.md"])
    shipped = "".join(p.read_text(errors="replace") for p in package.iterdir() if p.suffix != ".safetensors")
    assert "/home/someone" not in shipped and str(tmp_path) not in shipped
    assert (package / "adapter_model.safetensors").read_bytes() == (out / "grpo" / "final" / "adapter_model.safetensors").read_bytes()
    source = _model_store.read_adapter(package)
    assert source.base is None  # the embedded default, found by name on any machine
    assert source.base_name == _model_store.DEFAULT_MODEL_NAME
    assert (out / "grpo" / "final" / "README.md").read_text() == (package / "README.md").read_text()


def test_card_without_ship_leaves_the_package_alone(bench, tmp_path: Path, monkeypatch) -> None:
    out, package = tmp_path / "run", tmp_path / "package" / "default-adapter"
    _run_folder(out)
    monkeypatch.setattr(_model_store, "DEFAULT_ADAPTER_DIR", package)
    written = bench.phase_card(bench.Settings(out, None, 1, 1, 1, 1, 1), "grpo", ship=False)
    assert written == out / "grpo" / "final" / "README.md" and written.exists()
    assert not package.exists()


def _eval_run(folder: Path, welfare: dict[str, float]) -> None:
    from gtalign.eval import RunHeader, config_hash, write_records

    from tests.metrics._records import record

    folder.mkdir(parents=True)
    config = {"name": folder.name}
    with (folder / "run.jsonl").open("w", encoding="utf-8") as handle:
        write_records([RunHeader(config, config_hash(config), "0.0", "today"),
                       *(record(key, source="ambig_qa", u=w, l=w) for key, w in welfare.items())], handle)


def test_paired_table_differences_the_same_prompts(bench, tmp_path: Path) -> None:
    """SFT against GRPO prompt by prompt: only the prompts both scored are paired, wins and
    losses are counted per prompt, and the difference is GRPO minus SFT."""
    _eval_run(tmp_path / "eval-sft-paper", {"ambig_qa/0": 0.2, "ambig_qa/1": 0.5, "ambig_qa/2": 0.4, "ambig_qa/3": 0.9})
    _eval_run(tmp_path / "eval-grpo-paper", {"ambig_qa/0": 0.6, "ambig_qa/1": 0.5, "ambig_qa/2": 0.3, "ambig_qa/9": 0.0})
    lines = bench._paired_lines(tmp_path)
    row = next(line for line in lines if line.startswith("| sft | grpo | paper"))
    mean = ((0.6 - 0.2) + 0 + (0.3 - 0.4)) / 3
    assert f"| 3 | 1 / 1 / 1 | {mean:+.3f} [" in row
    assert not any(line.startswith("| sft | grpo | sample") or line.startswith("| base |") for line in lines)


def test_paired_table_is_left_out_without_two_runs(bench, tmp_path: Path) -> None:
    _eval_run(tmp_path / "eval-sft-paper", {"ambig_qa/0": 0.2})
    assert bench._paired_lines(tmp_path) == []


def test_card_pairs_the_adapter_with_its_start_only(bench, tmp_path: Path) -> None:
    _run_folder(tmp_path)
    for model, welfare in (("base", 0.0), ("sft", 0.4), ("grpo", 0.5)):
        _eval_run(tmp_path / f"eval-{model}-paper", {"ambig_qa/0": welfare, "ambig_qa/1": welfare})
    card = bench.model_card(tmp_path, "grpo")
    assert "| sft | grpo | paper | 2 | 2 / 0 / 0 | +0.100 [" in card
    assert "| base | sft |" not in card  # the SFT start's own gain is not this adapter's
    assert "embedded:FOLDER" in card


def test_overhead_says_when_the_reward_never_got_past_the_parse(bench) -> None:
    data = {"rounds": 2, "completion_tokens": 128, "threads": 1, "model": "SFT adapter", "machine": "here",
            "cpu": {"gtalign": [10.0, 10.0], "constant": [10.0, 10.0]}, "wall": {"gtalign": [20.0, 20.0], "constant": [20.0, 20.0]},
            "reward_wall": [0.01, 0.01], "reward_format": [0.0, 0.0], "reward_score": [0.0, 0.0]}
    assert "understates its cost" in bench._overhead_lines(data)[-1]
    data.update(reward_format=[0.75, 1.0], reward_score=[0.4, 0.5])
    assert "parsed 88% of the measured completions" in bench._overhead_lines(data)[-1]
    assert "ratio 1.000x" in bench._overhead_lines(data)[0]


def test_report_of_a_folder_without_a_run_is_refused_and_writes_nothing(bench, tmp_path: Path, monkeypatch, capsys) -> None:
    results = tmp_path / "RESULTS_training.md"
    monkeypatch.setattr(bench, "RESULTS", results)
    assert bench.main(["report", "--write", "--out", str(tmp_path / "nowhere")]) == 2
    assert "no curve run in" in capsys.readouterr().err and not results.exists()


def test_report_of_a_cut_off_steps_log_names_the_line_and_writes_nothing(bench, tmp_path: Path, monkeypatch, capsys) -> None:
    results = tmp_path / "RESULTS_training.md"
    monkeypatch.setattr(bench, "RESULTS", results)
    out = tmp_path / "run"
    out.mkdir()
    (out / "steps.jsonl").write_text('{"step": "eval-base", "command": "x", "exit": 0}\n{"broken\n')
    assert bench.main(["report", "--write", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "steps.jsonl, line 2: not a JSON line" in err and "Traceback" not in err and not results.exists()
    (out / "steps.jsonl").write_text("")
    assert bench.main(["report", "--write", "--out", str(out)]) == 2 and not results.exists()


def test_a_resumed_curve_keeps_the_recorded_settings(bench, tmp_path: Path, capsys) -> None:
    """A resume with other flags (or none) goes on with the experiment the folder records; threads are the
    invocation's own."""
    out = tmp_path / "curve"
    out.mkdir()
    (out / "settings.json").write_text(json.dumps({"threads": 2, "sft_steps": 40, "grpo_steps": 3, "grpo_limit": 10,
                                                   "eval_limit": 2}))
    parser = bench.argparse.Namespace
    s = bench.settings(parser(out=out, data=None, threads=1, sft_steps=200, grpo_steps=3, grpo_limit=10, eval_limit=8))
    assert (s.sft_steps, s.grpo_steps, s.grpo_limit, s.eval_limit, s.threads) == (40, 3, 10, 2, 1)
    err = capsys.readouterr().err
    assert f"--sft-steps 200 ignored: the run folder {out} records 40" in err
    assert "--eval-limit 8 ignored" in err and "--grpo-steps" not in err
    fresh = bench.settings(parser(out=tmp_path / "new", data=None, threads=2, sft_steps=5, grpo_steps=2, grpo_limit=4,
                                  eval_limit=1))
    assert (fresh.sft_steps, fresh.grpo_steps, fresh.grpo_limit, fresh.eval_limit) == (5, 2, 4, 1)
    (out / "settings.json").write_text('{"sft_steps": 4')
    with pytest.raises(ValueError, match=r"settings\.json: not JSON"):
        bench.settings(parser(out=out, data=None, threads=1, sft_steps=200, grpo_steps=3, grpo_limit=10, eval_limit=8))
