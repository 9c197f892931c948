"""``gtalign games train``: the ``game`` reward mode of the shared training config, its reward
function, the loader's note on game rows, a dry run of every registered game (rows written, the
same bytes again, clear usage errors) and one real two-step GRPO run on the embedded model that
logs the games/ metrics, writes checkpoints and resumes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gtalign import REGISTRY
from gtalign.cli import main
from gtalign.cli._games import GAME_ROWS, GAME_TRL_DEFAULTS, resolve_game
from gtalign.training._config import RewardSettings, TrainConfig, TrainSetupError, config_from_settings
from tests.training.test_train_fixtures import embedded_model, finite, steps  # noqa: F401

GAMES = REGISTRY.names("game")
UNKNOWN_TASK = "is not a registered task"
TINY = ["--max-steps", "2", "--num-generations", "2", "--max-completion-length", "16", "--episodes", "2", "--threads", "1",
        "--trl", "per_device_train_batch_size=2", "--trl", "save_steps=1", "--trl", "gradient_checkpointing=false",
        "--trl", "bf16=false"]
"""One prompt of two 16-token completions a step, on one torch thread, a checkpoint every step
(as tests/training's TINY_GRPO_TRL, with the smallest batch TRL allows: one prompt's group)."""
GAMES_METRICS = ("payoff_mean", "payoff_var", "group_std_mean", "payoff_norm_mean", "opponent_payoff_mean", "invalid_frac",
                 "equilibrium_frac", "regret_mean", "unscored_frac")


# -- the config: reward.mode game ------------------------------------------------------------------


def test_reward_mode_game_takes_normalise_and_samples() -> None:
    settings = RewardSettings.from_mapping({"mode": "game", "normalise": True, "samples": 3})
    assert (settings.mode, settings.normalise, settings.samples) == ("game", True, 3)
    assert settings.to_json()["normalise"] is True and settings.to_json()["samples"] == 3
    assert RewardSettings(mode="game").normalise is False and RewardSettings(mode="game").samples is None


@pytest.mark.parametrize(("given", "named"), [
    ({"preset": "robust"}, "reward.preset"),
    ({"judge": None}, "reward.judge"),
    ({"judge": "http://127.0.0.1:9/v1", "judge_model": "j"}, "reward.judge, reward.judge_model"),
    ({"preset_params": {"alpha": 1}}, "reward.preset_params"),
    ({"judge_max_retries": 1}, "reward.judge_max_retries"),
])
def test_reward_mode_game_refuses_preset_and_judge_settings(given: dict[str, Any], named: str) -> None:
    with pytest.raises(TrainSetupError, match="reward.mode game") as caught:
        RewardSettings.from_mapping({"mode": "game", **given})
    assert named in str(caught.value) and "leave them at their defaults" in str(caught.value)


@pytest.mark.parametrize(("given", "message"), [
    ({"normalise": True}, "reward.normalise only applies to reward.mode game, not welfare"),
    ({"mode": "user-llm", "samples": 4}, "reward.samples only applies to reward.mode game, not user-llm"),
    ({"mode": "game", "samples": 0}, "reward.samples must be an integer >= 1"),
    ({"mode": "game", "normalise": "yes"}, "reward.normalise must be true or false"),
    ({"mode": "games"}, "reward.mode must be one of welfare, user-llm, game"),
])
def test_game_settings_are_checked(given: dict[str, Any], message: str) -> None:
    with pytest.raises(TrainSetupError, match=message):
        RewardSettings.from_mapping(given)


def test_a_record_from_before_the_game_settings_still_matches() -> None:
    """The game-only settings are left out of the record at their defaults: a welfare run recorded
    before they existed resumes (its reward has no normalise or samples key)."""
    config = config_from_settings("grpo", {"data": "d.jsonl", "output_dir": "out"})
    recorded = config.to_json()
    assert "normalise" not in recorded["reward"] and "samples" not in recorded["reward"]
    assert config.diff(recorded) is None
    game = config_from_settings("grpo", {"data": "d.jsonl", "output_dir": "out", "reward": {"mode": "game", "samples": 2}})
    assert game.diff(recorded) is not None and game.diff(game.to_json()) is None


# -- the reward functions --------------------------------------------------------------------------


def test_reward_functions_in_game_mode_are_the_game_payoff_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import gtalign.reward

    from gtalign.training._games import GamePayoffReward
    from gtalign.training._grpo import reward_functions

    def no_preset(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("game mode looked a preset up")

    monkeypatch.setattr(gtalign.reward, "get_preset", no_preset)
    functions = reward_functions(RewardSettings(mode="game", normalise=True, samples=5))
    assert len(functions) == 1 and isinstance(functions[0], GamePayoffReward)
    assert (functions[0].normalise, functions[0].samples, functions[0].__name__) == (True, 5, "game_payoff")
    plain = reward_functions(RewardSettings(mode="game"))[0]
    assert (plain.normalise, plain.samples) == (False, None)


def test_game_rows_are_scored_by_the_game_reward_with_games_metrics() -> None:
    from gtalign.envs import AlwaysDefect, PrisonersDilemma
    from gtalign.envs._decisions import decision_points
    from gtalign.training._games import game_rows
    from gtalign.training._grpo import reward_functions

    points = decision_points(PrisonersDilemma(rounds=2), seat=1, opponent=AlwaysDefect(), episodes=1, seed=0)
    row = game_rows(points)[0]
    (reward,) = reward_functions(RewardSettings(mode="game"))
    logged: dict[str, float] = {}
    values = reward([row["prompt"]] * 2, [[{"role": "assistant", "content": "D"}], [{"role": "assistant", "content": "?"}]],
                    data_source=[row["data_source"]] * 2, extra_info=[json.dumps(row["extra_info"])] * 2,
                    log_metric=logged.__setitem__)
    assert values[0] is not None and values[1] is not None and values[0] > values[1]
    assert {f"games/{name}" for name in ("payoff_mean", "invalid_frac", "unscored_frac")} <= set(logged)


# -- the loader's note -----------------------------------------------------------------------------


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def mixed_rows(tmp_path: Path) -> Path:
    from gtalign.envs import PrisonersDilemma
    from gtalign.envs._decisions import decision_points, strategy_named
    from gtalign.training._games import game_rows

    game = PrisonersDilemma(rounds=2)
    rows = game_rows(decision_points(game, seat=0, opponent=strategy_named(game, "tit-for-tat"), episodes=1, seed=1))
    other = {"prompt": [{"role": "user", "content": "Hi"}], "data_source": "no-such-task",
             "reward_model": {"ground_truth": "x"}, "extra_info": {}}
    return _write(tmp_path / "rows.jsonl", [*rows, other])


@pytest.mark.parametrize("mode", ["game", "welfare"])
def test_the_loader_does_not_say_game_rows_are_an_unregistered_task(mixed_rows: Path, tmp_path: Path, mode: str) -> None:
    from gtalign.training._train_data import load_rows

    config = TrainConfig(kind="grpo", data=(str(mixed_rows),), output_dir=str(tmp_path / "out"), reward={"mode": mode})
    rows = load_rows(config)
    assert rows.per_source["game/prisoners-dilemma"] == 2
    game_notes = [note for note in rows.notes if "game/prisoners-dilemma" in note]
    other = [note for note in rows.notes if "no-such-task" in note]
    assert not any(UNKNOWN_TASK in note for note in game_notes)
    if mode == "game":
        # no note on the game rows; the other row is not a game's, so the game reward leaves it unscored
        assert game_notes == [] and len(other) == 1 and UNKNOWN_TASK not in other[0]
        assert "reward mode game leaves its rows unscored" in other[0]
    else:
        # only the game reward scores game rows; other rows keep the loader's own note
        assert len(game_notes) == 1 and "only reward mode game" in game_notes[0]
        assert len(other) == 1 and UNKNOWN_TASK in other[0]


# -- the command: dry runs and usage errors ----------------------------------------------------------


def test_help_says_what_a_training_row_is(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["games", "train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "ONE decision of the learner" in out and "the reward of an answer is the learner's payoff" in out
    assert "Examples:" in out and "gtalign games train prisoners-dilemma" in out
    assert f"(default: {GAME_TRL_DEFAULTS['max_completion_length']})" in out
    for flag in ("--seat", "--opponent", "--behaviour", "--continuation", "--episodes", "--samples", "--normalise", "--seed",
                 "--model", "--no-lora", "--max-steps", "--num-generations", "--max-completion-length", "--learning-rate",
                 "--trl", "--threads", "--out", "--no-resume", "--dry-run"):
        assert flag in out, flag


@pytest.mark.parametrize("name", GAMES)
def test_dry_run_of_every_game_writes_the_same_rows_and_trains_nothing(name: str, embedded_model: Path,  # noqa: F811
                                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["games", "train", name, "--seat", "1", "--episodes", "3", "--seed", "5", "--out", str(out), "--dry-run"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    rows_file = out / GAME_ROWS
    first = rows_file.read_bytes()
    rows = [json.loads(line) for line in first.decode().splitlines()]
    game = resolve_game(name).name  # spence and beer-quiche are signaling games with their parameters
    assert rows and {row["data_source"] for row in rows} == {f"game/{game}"}
    assert all(row["extra_info"]["seat"] == 1 and row["extra_info"]["samples"] == 8 for row in rows)
    assert f"wrote {rows_file}: {len(rows)} decision rows from 3 episodes of {name}" in err
    assert "reward: the game's payoff of each answer, played out, 8 samples where chance is sampled, mode game (game_payoff)" in err
    assert "preset" not in err and "4 generations of up to 64 tokens" in err and "LoRA r=8" in err
    assert "per-device batch 8" in err and "max_steps 200" in err
    assert UNKNOWN_TASK not in err and "dry run: every setting checked; nothing trained" in err
    assert sorted(path.name for path in out.iterdir()) == [GAME_ROWS]  # no record, no checkpoint
    # the same flags write the same bytes (a resumed run's data fingerprint matches)
    assert main(argv) == 0
    assert "kept (the same rows)" in capsys.readouterr().err and rows_file.read_bytes() == first


@pytest.mark.parametrize(("argv", "message"), [
    (["prisoners-dilemma", "--opponent", "gtalign.envs:AlwaysDefect"], "--opponent 'gtalign.envs:AlwaysDefect': a module:attr"),
    (["prisoners-dilemma", "--continuation", "gtalign.envs:AlwaysDefect"],
     "--continuation 'gtalign.envs:AlwaysDefect': a module:attr strategy cannot be trained against"),
    (["prisoners-dilemma", "--opponent", "nobody"], "--opponent 'nobody': unknown strategy 'nobody'"),
    (["bargaining", "--behaviour", "mix:2"], "--behaviour 'mix:2': unknown strategy"),
    (["bargaining", "--continuation", "always-defect"], "--continuation 'always-defect': unknown strategy"),
    (["no-such-game"], "GAME: unknown game 'no-such-game'"),
    (["bargaining", "--param", "delta=0.9"], "unknown parameter 'delta'"),
    (["prisoners-dilemma", "--trl", "no_such_setting=1"], "trl.no_such_setting"),
    (["prisoners-dilemma", "--seat", "2"], "invalid choice: 2"),
    (["prisoners-dilemma", "--seed", "-1"], "--seed"),
    (["prisoners-dilemma", "--episodes", "0"], "--episodes"),
])
def test_usage_errors_name_the_bad_flag(argv: list[str], message: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["games", "train", *argv, "--out", str(out), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not out.exists()  # nothing written before every setting is checked


def test_other_rows_in_out_are_refused_naming_the_difference(embedded_model: Path, tmp_path: Path,  # noqa: F811
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    base = ["games", "train", "prisoners-dilemma", "--episodes", "2", "--out", str(out), "--dry-run"]
    assert main(base) == 0
    before = (out / GAME_ROWS).read_bytes()
    capsys.readouterr()
    assert main([*base, "--opponent", "tit-for-tat"]) == 2
    assert "row 1: opponent 'equilibrium' there vs 'tit-for-tat' here" in capsys.readouterr().err
    assert main([*base[:4], "3", *base[5:]]) == 2
    assert "10 rows there vs 15 here" in capsys.readouterr().err
    assert (out / GAME_ROWS).read_bytes() == before


def test_the_config_is_gtalign_train_grpo_with_the_game_reward(embedded_model: Path, tmp_path: Path,  # noqa: F811
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import gtalign.cli._train as train_cli

    seen: dict[str, Any] = {}

    def execute(config: TrainConfig, **kwargs: Any) -> int:
        seen.update(config=config, **kwargs)
        return 0

    monkeypatch.setattr(train_cli, "execute", execute)
    out = tmp_path / "run"
    assert main(["games", "train", "beer-quiche", "--seat", "1", "--episodes", "2", "--samples", "3", "--normalise",
                 "--seed", "7", "--num-generations", "3", "--learning-rate", "2e-5", "--trl", "temperature=0.7",
                 "--no-lora", "--threads", "1", "--out", str(out), "--no-resume", "-q"]) == 0
    config = seen["config"]
    assert config.kind == "grpo" and config.data == (str(out / GAME_ROWS),) and config.prompt == "stored"
    assert config.output_dir == str(out) and config.lora is None and config.threads == 1 and config.model == "embedded"
    assert (config.reward.mode, config.reward.normalise, config.reward.samples) == ("game", True, 3)
    assert dict(config.trl) == {**GAME_TRL_DEFAULTS, "seed": 7, "num_generations": 3, "learning_rate": 2e-5,
                                "temperature": 0.7, "per_device_train_batch_size": 6}
    assert (seen["resume"], seen["dry_run"], seen["quiet"]) == ("never", False, True)
    assert main(["games", "train", "beer-quiche", "--episodes", "2", "--out", str(tmp_path / "two")]) == 0
    assert seen["config"].lora == {} and seen["config"].trl["per_device_train_batch_size"] == 8


# -- one real run --------------------------------------------------------------------------------------


@pytest.mark.engine
def test_two_real_steps_log_the_games_metrics_write_checkpoints_and_resume(embedded_model: Path,  # noqa: F811
                                                                             tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from gtalign.training._train_run import METRICS_LOG, RECORD_NAME, complete_checkpoint

    out = tmp_path / "run"
    argv = ["games", "train", "prisoners-dilemma", "--seat", "1", *TINY, "--out", str(out)]
    started = time.monotonic()
    assert main(argv) == 0
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    assert "step 2/2" in err, err
    logged = [json.loads(line) for line in (out / METRICS_LOG).read_text().splitlines()]
    rows = steps(logged)
    assert [row["step"] for row in rows] == [1, 2] and finite([row["loss"] for row in rows])
    for row in rows:
        assert finite([row[f"games/{name}"] for name in GAMES_METRICS]), row
        assert row["games/unscored_frac"] == 0
        assert row["rewards/game_payoff/mean"] == pytest.approx(row["games/payoff_mean"])
        assert 0 <= row["games/invalid_frac"] <= 1 and 0 <= row["games/payoff_norm_mean"] <= 1
    assert complete_checkpoint(out / "checkpoint-1") and complete_checkpoint(out / "checkpoint-2")
    assert (out / "final" / "adapter_config.json").exists()
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["config"]["reward"]["mode"] == "game" and record["config"]["data"] == [str(out / GAME_ROWS)]

    # the same command asked for a third step rewrites nothing and continues from checkpoint-2
    rows_before = (out / GAME_ROWS).read_bytes()
    assert main([*argv, "--max-steps", "3"]) == 0
    assert "kept (the same rows)" in capsys.readouterr().err
    assert (out / GAME_ROWS).read_bytes() == rows_before
    runs = json.loads((out / RECORD_NAME).read_text())["runs"]
    assert [(run["resumed_from"], run["global_step"]) for run in runs] == [(None, 2), ("checkpoint-2", 3)]
    logged = [json.loads(line) for line in (out / METRICS_LOG).read_text().splitlines()]
    assert [(row["run"], row["step"]) for row in logged if "loss" in row] == [(1, 1), (1, 2), (2, 3)]
    assert math.isfinite(seconds)
    print(f"two steps of games train (with model load): {seconds:.1f} s")

    # games report reads this real TRL log: three steps (the resumed run's), its table and its plots
    capsys.readouterr()
    assert main(["games", "report", str(out), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "prisoners-dilemma, seat 1 vs" in report and "3 logged steps" in report, report
    assert "Too few logged steps (3)" in report
    assert {p.name for p in (tmp_path / "report").glob("*.png")} == {"payoff.png", "spread.png", "equilibrium.png"}
