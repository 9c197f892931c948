"""The training config: a YAML file under command-line flags, mapped onto TRL's and peft's own config
objects (which validate their settings and whose refusals name them), bad keys named clearly, the
run folder's record and checkpoints, and the command line around it (no model is loaded here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gtalign.cli._main import main
from gtalign.training._config import (
    TRL_DEFAULTS,
    TrainConfig,
    TrainSetupError,
    build_lora_config,
    build_trl_args,
    config_from_settings,
    merge_settings,
    read_train_settings,
)
from gtalign.training._train_run import (
    RECORD_NAME,
    ResumeRefused,
    complete_checkpoint,
    latest_checkpoint,
    plan_training,
)
from tests.integrations._helpers import answer
from tests.training.test_train_fixtures import SFT_ROWS, grpo_data, sft_data, write_jsonl  # noqa: F401

pytest.importorskip("trl")

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "gtalign" / "examples" / "training"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


# --- file < flags, mapped onto TRL ---------------------------------------------------------------


def test_yaml_then_flags_merge_key_by_key_into_trls_own_config(tmp_path: Path) -> None:
    from gtalign.cli._main import build_parser
    from gtalign.cli._train import settings_from_args

    config_file = write(tmp_path / "grpo.yaml", """
data: [ambig_qa]
output_dir: runs/a
lora: {r: 4, lora_alpha: 8}
reward: {preset: robust, judge: rule}
trl: {max_steps: 5, learning_rate: 3.0e-6, num_generations: 2, per_device_train_batch_size: 2}
""")
    args = build_parser().parse_args(["train", "grpo", "--config", str(config_file), "--max-steps", "7", "--trl",
                                      "warmup_steps=2", "--lora-param", "r=2", "--judge", "none", "--out", "runs/b"])
    config = config_from_settings("grpo", settings_from_args(args))
    assert config.output_dir == "runs/b" and config.data == ("ambig_qa",)
    assert dict(config.lora or {}) == {"r": 2, "lora_alpha": 8}  # one key replaced, the other kept
    assert config.reward is not None and (config.reward.preset, config.reward.judge) == ("robust", None)
    trl_args = build_trl_args(config, cpu_defaults={"use_cpu": True})
    from trl import GRPOConfig

    assert type(trl_args) is GRPOConfig
    assert (trl_args.max_steps, trl_args.learning_rate, trl_args.warmup_steps) == (7, 3e-6, 2)  # flag > file
    assert (trl_args.output_dir, trl_args.report_to, trl_args.logging_steps, trl_args.use_cpu) == ("runs/b", [], 1, True)
    assert build_lora_config(config).r == 2


def test_cpu_and_mode_defaults_sit_below_the_users_trl_settings() -> None:
    config = config_from_settings("grpo", {"data": "x.jsonl", "output_dir": "o", "reward": {"mode": "user-llm"},
                                           "trl": {"num_generations": 2, "per_device_train_batch_size": 2}})
    args = build_trl_args(config)
    assert args.multi_objective_aggregation == TRL_DEFAULTS["user-llm"]["multi_objective_aggregation"] == "normalize_then_sum"
    assert args.use_cpu  # no GPU on this machine
    mine = config_from_settings("grpo", {"data": "x.jsonl", "output_dir": "o", "reward": {"mode": "user-llm"},
                                         "trl": {"num_generations": 2, "per_device_train_batch_size": 2,
                                                 "multi_objective_aggregation": "sum_then_normalize"}})
    assert build_trl_args(mine).multi_objective_aggregation == "sum_then_normalize"
    sft = build_trl_args(config_from_settings("sft", {"data": "x.jsonl", "output_dir": "o"}))
    assert sft.completion_only_loss is True and sft.save_steps == 50
    assert sft.max_length == 1536  # a four-block target after gtalign's prompt must fit, or it never closes


def test_an_unknown_trl_setting_is_refused_by_trl_itself_and_named() -> None:
    config = config_from_settings("grpo", {"data": "x", "output_dir": "o", "trl": {"max_prompt_length": 128}})
    with pytest.raises(TrainSetupError) as info:
        build_trl_args(config)
    message = str(info.value)
    assert "trl.max_prompt_length" in message and "GRPOConfig" in message
    assert "unexpected keyword argument" in message  # TRL's own refusal, passed on
    with pytest.raises(TrainSetupError, match=r"trl.no_cuda: trl.SFTConfig .* has no such setting"):
        build_trl_args(config_from_settings("sft", {"data": "x", "output_dir": "o", "trl": {"no_cuda": True}}))


def test_a_trl_value_trl_rejects_is_reported_with_trls_reason() -> None:
    config = config_from_settings("grpo", {"data": "x", "output_dir": "o",
                                           "trl": {"num_generations": 3, "per_device_train_batch_size": 2}})
    with pytest.raises(TrainSetupError, match=r"trl: trl.GRPOConfig .* refused the settings: .*num_generations"):
        build_trl_args(config)


@pytest.mark.parametrize(("settings", "match"), [
    ({"max_step": 5}, r"unknown setting\(s\) max_step; valid: data, output_dir"),
    ({"trl": {"output_dir": "x"}}, r"trl.output_dir is set by gtalign: use output_dir \(--out\)"),
    ({"trl": {"resume_from_checkpoint": True}}, r"--resume"),
    ({"reward": {"preset": "paper"}}, r"reward only appl(y|ies) to gtalign train grpo"),
    ({"prompt": "builder"}, r"prompt only appl(y|ies) to gtalign train grpo"),
    ({"lora": "yes"}, r"lora must be true, false or a mapping"),
    ({"limit": 0}, r"limit must be an integer >= 1"),
    ({"eval": {"limit": 3}}, r"eval needs benchmarks"),
    ({"eval": {"benchmarks": ["sample"], "model": "x"}}, r"eval.model is set by gtalign train"),
    ({"eval": {"benchmarks": ["sample"], "epochs": 0}}, r"eval: epochs must be an integer >= 1"),
    ({"eval": {"benchmarks": ["sample"], "max_token": 5}}, r"unknown eval setting\(s\) max_token .*did you mean 'max_tokens'"),
])
def test_bad_sft_settings_are_named(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(TrainSetupError, match=match):
        config_from_settings("sft", {"data": "x.jsonl", "output_dir": "o", **settings})


@pytest.mark.parametrize(("reward", "match"), [
    ({"mode": "product"}, r"reward.mode must be one of welfare, user-llm"),
    ({"judges": "rule"}, r"unknown reward setting\(s\) judges .*did you mean 'judge'"),
    ({"judge": "rule", "judge_model": "m"}, r"judge_model only applies to a URL judge"),
    ({"judge_total_timeout": 0}, r"judge_total_timeout must be a number of seconds > 0"),
])
def test_bad_reward_settings_are_named(reward: dict[str, Any], match: str) -> None:
    with pytest.raises(TrainSetupError, match=match):
        config_from_settings("grpo", {"data": "x", "output_dir": "o", "reward": reward})


def test_a_bad_lora_setting_is_named_with_peft_refusing_it() -> None:
    peft = pytest.importorskip("peft")
    config = config_from_settings("sft", {"data": "x", "output_dir": "o", "lora": {"lora_alpah": 8}})
    with pytest.raises(TrainSetupError, match=r"lora.lora_alpah: peft.LoraConfig has no such setting \(did you mean "
                       r"'lora_alpha'\?\); peft refused it: .*unexpected keyword argument"):
        build_lora_config(config)
    config = config_from_settings("sft", {"data": "x", "output_dir": "o", "lora": {"layers_to_transform": [0]}})
    with pytest.raises(TrainSetupError, match=r"lora: peft.LoraConfig refused the settings"):
        build_lora_config(config)
    default = build_lora_config(config_from_settings("sft", {"data": "x", "output_dir": "o", "lora": True}))
    assert isinstance(default, peft.LoraConfig) and (default.r, default.lora_alpha) == (8, 16)  # an adapter under 10 MB


def test_a_bad_file_key_is_named_with_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "data: x\nmax_steps: 3\n")
    with pytest.raises(TrainSetupError, match=r"bad.yaml: unknown setting\(s\) max_steps; valid: data, .*TRL's own settings go under trl:"):
        read_train_settings(path)
    with pytest.raises(TrainSetupError, match="not valid YAML"):
        read_train_settings(write(tmp_path / "broken.yaml", "data: [x\n"))


def test_the_shipped_run_files_are_valid_for_trl_and_peft() -> None:
    for kind in ("sft", "grpo"):
        settings = read_train_settings(EXAMPLES / f"{kind}.yaml")
        for overlay in ({}, {"reward": {"mode": "user-llm"}} if kind == "grpo" else {}):
            config = config_from_settings(kind, merge_settings(settings, overlay))
            assert build_trl_args(config).max_steps > 0
            assert build_lora_config(config) is not None
            assert config.eval is not None and config.eval_config(model="m").benchmarks == ("sample",)


def test_eval_defaults_to_the_rewards_preset_and_judge() -> None:
    grpo = config_from_settings("grpo", {"data": "x", "output_dir": "o", "reward": {"preset": "robust", "judge": "rule"},
                                         "eval": {"benchmarks": "sample,ambig_qa", "limit": 2}})
    evaluation = grpo.eval_config(model="/m")
    assert (evaluation.preset, evaluation.judge, evaluation.backend, evaluation.model) == ("robust", "rule", "embedded", "/m")
    assert evaluation.benchmarks == ("sample", "ambig_qa")
    sft = config_from_settings("sft", {"data": "x", "output_dir": "o", "eval": {"benchmarks": ["sample"]}})
    assert (sft.eval_config(model="/m").preset, sft.eval_config(model="/m").judge) == ("paper", "rule")


def test_grpo_evaluates_with_the_prompt_it_trained_on_unless_eval_says_otherwise() -> None:
    settings = {"data": "x", "output_dir": "o", "prompt": "builder", "eval": {"benchmarks": ["sample"]}}
    assert config_from_settings("grpo", settings).eval_config(model="/m").prompt == "builder"
    other = {**settings, "eval": {"benchmarks": ["sample"], "prompt": "stored"}}
    assert config_from_settings("grpo", other).eval_config(model="/m").prompt == "stored"


# --- the run folder ------------------------------------------------------------------------------


def fake_checkpoint(folder: Path, step: int, *, complete: bool = True) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"x")
    if complete:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def test_only_a_checkpoint_whose_trainer_state_was_written_counts(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path, 2)
    fake_checkpoint(tmp_path, 10)
    torn = fake_checkpoint(tmp_path, 11, complete=False)
    half = fake_checkpoint(tmp_path, 12, complete=False)
    (half / "trainer_state.json").write_text('{"global_st')
    assert not complete_checkpoint(torn) and not complete_checkpoint(half)
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"  # by step, not by name (10 > 2)


def test_a_folder_of_another_run_or_checkpoints_under_no_resume_are_refused(tmp_path: Path, sft_data: Path) -> None:  # noqa: F811
    out = tmp_path / "run"
    config = config_from_settings("sft", {"data": str(sft_data), "output_dir": str(out), "trl": {"max_steps": 1}})
    out.mkdir()
    other = config_from_settings("sft", {"data": str(sft_data), "output_dir": str(out), "lora": True})
    (out / RECORD_NAME).write_text(json.dumps({"format": 1, "config": other.to_json()}))
    with pytest.raises(ResumeRefused, match=r"holds another training run \(lora: None here vs \{\} in the run\)"):
        plan_training(config)
    (out / RECORD_NAME).write_text(json.dumps({"format": 1, "config": {**config.to_json(), "trl": {"max_steps": 9}}}))
    fake_checkpoint(out, 1)
    with pytest.raises(ResumeRefused, match="holds checkpoints"):
        plan_training(config, resume="never")
    with pytest.raises(ResumeRefused, match="not a complete checkpoint"):
        plan_training(config, resume=str(fake_checkpoint(out, 3, complete=False)))


def test_a_resume_without_a_checkpoint_is_refused(tmp_path: Path, sft_data: Path) -> None:  # noqa: F811
    config = config_from_settings("sft", {"data": str(sft_data), "output_dir": str(tmp_path / "new")})
    with pytest.raises(ResumeRefused, match="holds no complete checkpoint"):
        plan_training(config, resume="always")


def test_checkpoints_of_something_else_are_not_resumed_unless_asked(tmp_path: Path, sft_data: Path) -> None:  # noqa: F811
    out = tmp_path / "foreign"
    fake_checkpoint(out, 5)
    config = config_from_settings("sft", {"data": str(sft_data), "output_dir": str(out)})
    with pytest.raises(ResumeRefused, match="holds checkpoints but no gtalign_train.json"):
        plan_training(config)
    assert plan_training(config, resume="always").resume_from == out / "checkpoint-5"


# --- the rows ------------------------------------------------------------------------------------


def test_sft_rows_of_every_shape_and_unusable_rows_skipped_with_reasons(tmp_path: Path) -> None:
    from gtalign.training._train_data import load_rows

    bad = [{"prompt": [{"role": "user", "content": "x"}], "completion": [{"role": "user", "content": "y"}]},
           {"messages": [{"role": "user", "content": "only a question"}]},
           {"text": "plain"}]
    data = write_jsonl(tmp_path / "rows.jsonl", [*SFT_ROWS, *bad])
    (tmp_path / "rows.jsonl").write_text(data.read_text() + "not json\n")
    rows = load_rows(config_from_settings("sft", {"data": str(data), "output_dir": "o"}))
    assert len(rows.rows) == 4 and len(rows.skipped) == 4
    assert rows.rows[2] == {"prompt": [{"role": "user", "content": "How do I pick a lock?"}],
                            "completion": [SFT_ROWS[2]["messages"][1]]}
    assert rows.rows[3]["prompt"] == [{"role": "user", "content": "Name a colour."}]
    assert rows.rows[3]["completion"][0]["role"] == "assistant"
    reasons = " | ".join(rows.skipped)
    assert "row 5: the completion must be one assistant message" in reasons
    assert "no assistant turn" in reasons and "no 'prompt' and 'completion'" in reasons and "row 8" in reasons
    limited = load_rows(config_from_settings("sft", {"data": str(data), "output_dir": "o", "limit": 2}))
    assert len(limited.rows) == 2
    with pytest.raises(TrainSetupError, match="no usable training row"):
        load_rows(config_from_settings("sft", {"data": str(write_jsonl(tmp_path / "none.jsonl", bad)), "output_dir": "o"}))


def test_grpo_rows_carry_what_the_reward_needs(grpo_data: Path) -> None:  # noqa: F811
    from gtalign.training._train_data import load_rows

    rows = load_rows(config_from_settings("grpo", {"data": str(grpo_data), "output_dir": "o"}))
    first = rows.rows[0]
    assert first["data_source"] == "ambig_qa" and first["ground_truth"] == "singleAnswer###Frank Herbert"
    assert json.loads(first["extra_info"]) == {"single_turn_prompt": "Who wrote Dune?"}
    assert any("no-such-task" in note for note in rows.notes)  # said, not silently dropped
    built = load_rows(config_from_settings("grpo", {"data": str(grpo_data), "output_dir": "o", "prompt": "builder",
                                                    "sources": ["ambig_qa"]}))
    assert len(built.rows) == 1 and len(built.rows[0]["prompt"][-1]["content"]) > 500  # gtalign's instruction


# --- the command line ----------------------------------------------------------------------------


def test_train_help_imports_no_torch() -> None:
    code = ("import contextlib, io, sys\n"
            "from gtalign.cli._main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    rc = main(['train', 'grpo', '--help'])\n"
            "print(rc, 'torch' in sys.modules, 'trl' in sys.modules, 'reward-mode' in out.getvalue())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "False", "False", "True"]


def test_cli_usage_errors_exit_2_with_the_setting_named(tmp_path: Path, sft_data: Path,  # noqa: F811
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli("train", "sft", "--data", str(sft_data), "--out", str(tmp_path / "o"), "--trl", "max_prompt_length=9",
                    "--dry-run", capsys=capsys)
    assert code == 2 and "trl.max_prompt_length" in err and "SFTConfig" in err
    code, err = cli("train", "sft", "--out", str(tmp_path / "o"), capsys=capsys)
    assert code == 2 and "data (--data)" in err
    code, err = cli("train", "grpo", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"), "--dry-run",
                    capsys=capsys)
    assert code == 2 and "missing.jsonl" in err
    assert main(["train"]) == 2


def test_cli_dry_run_checks_everything_and_writes_nothing(tmp_path: Path, grpo_data: Path,  # noqa: F811
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("peft")
    out = tmp_path / "run"
    code, err = cli("train", "grpo", "--data", str(grpo_data), "--out", str(out), "--lora", "--num-generations", "2",
                    "--batch-size", "2", "--reward-mode", "user-llm", "--eval-benchmark", "sample", "--dry-run", capsys=capsys)
    assert code == 0, err
    assert "gtalign_user, gtalign_llm" in err and "4 training rows" in err and "dry run" in err
    assert not out.exists()


def test_examples_are_listed_and_copied_with_the_deepspeed_path_resolved(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "examples"]) == 0
    listed = capsys.readouterr().out
    assert "accelerate_zero3.yaml" in listed and "deepspeed_zero2.json" in listed and "grpo.yaml" in listed
    assert main(["train", "examples", str(tmp_path)]) == 0
    text = (tmp_path / "accelerate_zero2.yaml").read_text()
    assert f"deepspeed_config_file: {(tmp_path / 'deepspeed_zero2.json').resolve()}" in text
    assert main(["train", "examples", str(tmp_path)]) == 2  # no silent overwrite
    assert main(["train", "examples", str(tmp_path), "--force"]) == 0


def test_train_config_is_frozen() -> None:
    config = config_from_settings("sft", {"data": "x", "output_dir": "o", "trl": {"max_steps": 1}})
    with pytest.raises(AttributeError):
        config.model = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.trl["max_steps"] = 2  # type: ignore[index]
    assert isinstance(config, TrainConfig)


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path: Path, sft_data: Path) -> None:  # noqa: F811
    from gtalign.data import output_lock
    from gtalign.training._train_run import run_training

    out = tmp_path / "run"
    config = config_from_settings("sft", {"data": str(sft_data), "output_dir": str(out), "trl": {"max_steps": 1}})
    out.mkdir()
    with output_lock(out / RECORD_NAME), pytest.raises(ResumeRefused, match="being written by another run"):
        run_training(config)  # refused before any model is loaded


def test_a_progress_line_names_the_components_and_the_time_left() -> None:
    from gtalign.training._train_progress import format_step

    line = format_step(3, 10, {"loss": 0.01234, "reward": None, "gtalign/score": 0.5, "gtalign/user_reward": 0.25,
                               "gtalign/unscored_frac": 0.5, "gtalign/judge_failed_frac": 0.0}, 6.0)
    assert line == ("step 3/10  loss 0.01234  reward n/a  score 0.5  U 0.25  unscored 50%  judge failed 0%  "
                    "6.0 s/step  42s left")


def test_a_benchmark_name_trains_on_its_train_split_unless_told() -> None:
    from gtalign.training._train_data import load_rows
    from tests.conftest import PAPER_DATA

    if not (PAPER_DATA / "train_test" / "ambig_qa" / "train.parquet").exists():
        pytest.skip(f"the paper's data is not in {PAPER_DATA}")
    import pyarrow.parquet as pq

    def truth(split: str, row: dict) -> str:  # the row's ground truth in that split's file
        index = int(row["id"].rpartition("/")[2])
        table = pq.read_table(PAPER_DATA / "train_test" / "ambig_qa" / f"{split}.parquet", columns=["reward_model"])
        return table.slice(index, 1).to_pylist()[0]["reward_model"]["ground_truth"]

    settings = {"data": ["ambig_qa"], "output_dir": "o", "data_dir": str(PAPER_DATA), "limit": 1}
    rows = load_rows(config_from_settings("grpo", settings))
    assert rows.rows[0]["ground_truth"] == truth("train", rows.rows[0])
    assert any("its train split" in note for note in rows.notes)
    asked = load_rows(config_from_settings("grpo", {**settings, "split": "test", "allow_eval_data": True}))
    assert asked.rows[0]["ground_truth"] == truth("test", asked.rows[0])
    assert not any("its train split" in note for note in asked.notes)


def test_the_plan_drops_sft_rows_longer_than_max_length_in_the_models_tokens(tmp_path: Path) -> None:
    long_answer = answer("word " * 600)
    rows = [{**SFT_ROWS[0], "id": "short"}, {**SFT_ROWS[0], "id": "long", "completion": [{"role": "assistant",
                                                                                            "content": long_answer}]}]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    config = config_from_settings("sft", {"data": [str(data)], "output_dir": str(tmp_path / "o"), "lora": None,
                                          "trl": {"max_length": 400}})
    plan = plan_training(config)
    assert len(plan.rows.rows) == 1 and "Who wrote Dune" in json.dumps(plan.rows.rows[0])
    assert any("1 rows dropped: longer than max_length=400 tokens" in note for note in plan.rows.notes)
    wide = plan_training(config_from_settings("sft", {"data": [str(data)], "output_dir": str(tmp_path / "o2"),
                                                      "lora": None, "trl": {"max_length": 4096}}))
    assert len(wide.rows.rows) == 2
    with pytest.raises(TrainSetupError, match="no training row fits max_length=8"):
        plan_training(config_from_settings("sft", {"data": [str(data)], "output_dir": str(tmp_path / "o3"),
                                                   "lora": None, "trl": {"max_length": 8}}))


def test_a_grpo_plan_notes_its_prompts_token_lengths(tmp_path: Path, grpo_data: Path) -> None:  # noqa: F811
    config = config_from_settings("grpo", {"data": [str(grpo_data)], "output_dir": str(tmp_path / "o"), "lora": None})
    plan = plan_training(config)
    assert any(note.startswith("prompt tokens: p50 ") for note in plan.rows.notes)


def test_a_run_is_not_resumed_on_data_whose_content_changed(tmp_path: Path) -> None:
    from gtalign.training._train_run import _record_start

    data = write_jsonl(tmp_path / "rows.jsonl", SFT_ROWS)
    out = tmp_path / "run"
    config = config_from_settings("sft", {"data": str(data), "output_dir": str(out), "lora": None})
    plan = plan_training(config)
    out.mkdir()
    (out / RECORD_NAME).write_text(json.dumps(_record_start(plan, 1)))
    assert plan_training(config).rows.rows == plan.rows.rows  # the same content: resumable
    write_jsonl(data, [SFT_ROWS[1], SFT_ROWS[0], *SFT_ROWS[2:]])  # same rows, same file name, other order
    with pytest.raises(ResumeRefused, match="trained on other rows"):
        plan_training(config)
