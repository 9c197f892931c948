"""``gtalign eval`` in process: help, exit codes, the summary, refusals, --new, usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import gtalign.benchmarks
from gtalign.cli._main import build_parser, main
from gtalign.eval import read_run_log
from tests.eval import _fakes


@pytest.fixture(autouse=True)
def fake_benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gtalign.benchmarks, "load_benchmark", _fakes.load_benchmark, raising=False)


def argv(out: Path, *extra: str, backend: str = "tests.eval._fakes:scripted") -> list[str]:
    return ["eval", "--benchmark", "fake", "--backend", backend, "--preset", "paper", "--judge", "rule",
            "--out", str(out), *extra]


def test_help_explains_resume_outputs_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--help"]) == 0
    text = capsys.readouterr().out
    for phrase in ("Resuming:", "run.jsonl", "--new starts a new run in RUN_DIR-2", "gtalign report RUN_DIR",
                   "Exit codes: 0 every sample scored", "130", "--epochs K"):
        assert phrase in " ".join(text.split()), phrase


def test_the_command_line_fills_the_config_field_by_field() -> None:
    from gtalign.cli._eval import config_from_args

    args = build_parser().parse_args([
        "eval", "--benchmark", "sample,math-hard", "--data", "d", "--limit", "5", "--seed", "3", "--source", "ambig_qa",
        "--prompt", "builder", "--backend", "http://h/v1", "--model", "m", "--preset", "robust", "--preset-param",
        "unscored_as_zero=true", "--judge", "http://j/v1", "--judge-model", "jm", "--steer", "--pricing", "research-llm-shift",
        "--pricing-param", "s=2", "--rule", "product", "--on-ignored", "keep", "--epochs", "3", "--temperature", "0.5",
        "--max-tokens", "64", "--concurrency", "2", "--name", "x", "--out", "o",
    ])
    config = config_from_args(args)
    assert config.to_json() == {
        "benchmarks": ["sample", "math-hard"], "data": "d", "limit": 5, "seed": 3, "sources": ["ambig_qa"], "prompt": "builder",
        "split": None, "backend": "http://h/v1", "model": "m", "preset": "robust", "preset_params": {"unscored_as_zero": True},
        "judge": "http://j/v1", "judge_model": "jm", "steer": True, "pricing": "research-llm-shift", "pricing_params": {"s": 2},
        "rule": "product", "on_ignored": "keep", "epochs": 3, "temperature": 0.5, "max_tokens": 64,
    }
    assert (config.concurrency, config.name) == (2, "x")


def test_a_run_prints_the_summary_and_a_rerun_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(argv(out, "--epochs", "2")) == 0
    err = capsys.readouterr().err
    assert f"gtalign eval: 12 samples (6 prompts x 2 epochs) in {out / 'run.jsonl'}: 12 scored; 12 run now, 0 kept" in err
    assert "  ambig_qa: 6 samples, 6 scored, mean welfare" in err and f"next: gtalign report {out}" in err
    assert len(read_run_log(out).records) == 12
    assert main(argv(out, "--epochs", "2", "--concurrency", "1", "-q")) == 0
    assert capsys.readouterr().err == ""  # quiet, and nothing failed
    assert main(argv(out, "--epochs", "2")) == 0
    assert "0 run now, 12 kept from an earlier run" in capsys.readouterr().err


def test_failures_exit_1_and_a_changed_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    first = argv(out, backend="tests.eval._fakes:failing_first")
    assert main(first) == 1
    err = capsys.readouterr().err
    assert "1 generation failed" in err and "1 samples failed in the model or the judge: run the same command again" in err
    changed = list(first)
    changed[changed.index("paper")] = "robust"
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert "gtalign eval: error:" in err and "(preset: 'robust' vs 'paper', this command vs the run)" in err and "--new" in err
    assert main(argv(out)) == 2  # another backend is another config
    assert "backend: 'tests.eval._fakes:scripted' vs 'tests.eval._fakes:failing_first'" in capsys.readouterr().err
    assert main(argv(out, "--new")) == 0
    assert read_run_log(tmp_path / "run-2").header is not None
    assert main(first) == 1  # the rerun runs only the failed row, which this backend fails again
    assert "1 run now, 5 kept from an earlier run" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), [
    (["--pricing", "api-pay-per-token"], "--pricing only apply with --steer"),
    (["--on-ignored", "keep"], "--on-ignored only apply with --steer"),
    (["--judge-model", "m"], "--judge-model only applies with --judge URL, not --judge rule"),
    (["--rule", "nope"], "rule: unknown welfare 'nope'"),
    (["--source", "nothing"], "the benchmarks yield no rows"),
])
def test_usage_errors_exit_2_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    assert main(argv(tmp_path / "run", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "run.jsonl").exists()


def test_an_unknown_benchmark_or_backend_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--benchmark", "nope", "--backend", "tests.eval._fakes:scripted", "--preset", "paper",
                 "--judge", "rule", "--out", str(tmp_path / "a")]) == 2
    assert "benchmark 'nope': unknown benchmark 'nope'" in capsys.readouterr().err
    assert main(argv(tmp_path / "b", backend="ftp://x")) == 2
    assert "backend must be 'embedded', 'embedded:PATH', an http(s):// URL or 'module:attr'" in capsys.readouterr().err


CONFIG_FILE = """\
benchmarks: [sample, math-hard]
backend: http://h/v1
model: m
preset: robust
preset_params: {unscored_as_zero: true, refusal_credit: 0.5}
judge: rule
steer: true
pricing: research-llm-shift
pricing_params: {s: 2}
epochs: 3
max_tokens: 64
name: from-file
"""


def test_a_config_file_sets_the_run_and_flags_override_it_key_by_key(tmp_path: Path) -> None:
    from gtalign.cli._eval import config_from_args

    (tmp_path / "eval.yaml").write_text(CONFIG_FILE)
    parse = build_parser().parse_args
    config = config_from_args(parse(["eval", "--config", str(tmp_path / "eval.yaml"), "--out", "o"]))
    assert config.benchmarks == ("sample", "math-hard") and config.backend == "http://h/v1" and config.preset == "robust"
    assert dict(config.preset_params) == {"unscored_as_zero": True, "refusal_credit": 0.5}
    assert (config.steer, config.pricing, dict(config.pricing_params), config.epochs, config.name) == (
        True, "research-llm-shift", {"s": 2}, 3, "from-file")
    config = config_from_args(parse(["eval", "--config", str(tmp_path / "eval.yaml"), "--out", "o", "--preset", "paper",
                                     "--preset-param", "refusal_credit=0.25", "--pricing-param", "t=1", "--epochs", "1",
                                     "--benchmark", "sample"]))
    assert (config.preset, config.epochs, config.benchmarks) == ("paper", 1, ("sample",))
    assert dict(config.preset_params) == {"unscored_as_zero": True, "refusal_credit": 0.25}
    assert dict(config.pricing_params) == {"s": 2, "t": 1}
    (tmp_path / "eval.json").write_text('{"benchmarks": "sample", "backend": "embedded", "preset": "paper", "judge": "rule"}')
    assert config_from_args(parse(["eval", "--config", str(tmp_path / "eval.json"), "--out", "o"])).benchmarks == ("sample",)


@pytest.mark.parametrize(("text", "message"), [
    ("benchmark: [sample]\n", "unknown setting(s) benchmark; valid: benchmarks, backend"),
    ("answers_hash: abc\n", "unknown setting(s) answers_hash"),
    ("- a list\n", "expected a mapping of settings, got list"),
    ("benchmarks: [sample\n", "not valid YAML"),
    ("epochs: many\npreset: paper\njudge: rule\nbenchmarks: [fake]\nbackend: embedded\n", "epochs must be an integer >= 1, got 'many'"),
    ("benchmarks: [fake]\nbackend: embedded\n", "required: --preset, --judge (on the command line or in --config)"),
])
def test_a_bad_config_file_exits_2_naming_the_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          text: str, message: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    assert main(["eval", "--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert main(["eval", "--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "run")]) == 2
    assert "cannot read the config file" in capsys.readouterr().err


def test_constrain_is_an_answer_setting_on_the_command_line() -> None:
    from gtalign.cli._eval import config_from_args

    parse = build_parser().parse_args
    config = config_from_args(parse(["eval", "--benchmark", "sample", "--backend", "embedded", "--preset", "paper",
                                     "--judge", "rule", "--constrain", "auto", "--out", "o"]))
    assert config.constrain == "auto" and config.to_json()["constrain"] == "auto"
    assert config_from_args(parse(["eval", "--benchmark", "sample", "--backend", "embedded", "--preset", "paper",
                                   "--judge", "rule", "--out", "o"])).constrain == "off"
