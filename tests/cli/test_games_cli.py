"""``gtalign games play`` through the real command line: fixed strategies on both seats for every
registered game, the --out log replayed, clear usage errors, and a model on a loopback server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gtalign import REGISTRY
from gtalign.cli import main
from gtalign.cli._games import GAME_STRATEGY_NAMES, read_transcript, strategies_for
from gtalign.envs import Bargaining, Game, PrisonersDilemma, Signaling, replay
from gtalign.testing import FakeOpenAI, FakeRequest, Reply

GAMES = REGISTRY.names("game")
CASES = [(name, strategy) for name in GAMES for strategy in GAME_STRATEGY_NAMES[name]]


def game_from_line(line: dict[str, Any]) -> Game:
    """The game an --out line describes, rebuilt from its recorded parameters alone."""
    makers = {"prisoners-dilemma": PrisonersDilemma.from_params, "bargaining": Bargaining.from_params,
              "signaling": lambda params: Signaling(**params)}
    return makers[line["game"]](line["params"])


def cells(out: str, player: str) -> list[str]:
    """The summary table's row of ``player``, cell by cell."""
    row = next(line for line in out.splitlines() if line.startswith("│") and f"│ {player} " in line)
    return [cell.strip() for cell in row.strip("│ ").split("│")]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]


def test_the_help_lists_the_strategies_each_game_really_has() -> None:
    assert set(GAME_STRATEGY_NAMES) == set(GAMES)
    for name in GAMES:
        assert tuple(strategies_for(REGISTRY.create("game", name))) == GAME_STRATEGY_NAMES[name], name


def test_play_help_explains_every_game_with_its_params_and_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["games", "play", "--help"]) == 0
    out = capsys.readouterr().out
    for name in GAMES:
        assert f"  {name}  " in out and f"gtalign games play {name}" in out, name
        assert ", ".join(GAME_STRATEGY_NAMES[name]) in out, name
    for param in ("T=5", "discount=1", "rounds=5", "delta1=0.9", "max_rounds=100", "prior_high=0.5", "prior_strong=0.9",
                  "invalid_moves={retries: 2, penalty: -1}"):
        assert param in out, param
    assert "Exit codes" in out and "--opponent" in out and "'model'" in out


def test_games_help_is_light() -> None:
    """``gtalign games play --help`` imports neither the games nor a backend nor rich."""
    code = ("import sys; from gtalign.cli import main; main(['games', 'play', '--help']); "
            "print('HEAVY', [m for m in ('gtalign.envs', 'numpy', 'rich', 'httpx', 'gtalign.backends') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


@pytest.mark.parametrize(("name", "opponent"), CASES)
def test_every_game_with_fixed_strategies_on_both_seats(name: str, opponent: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["games", "play", name, "--player", "equilibrium", "--opponent", opponent, "--episodes", "2", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "Episode 1 of 2 (seed 4): P0 equilibrium vs P1 " + opponent in out and "Episode 2 of 2 (seed 5)" in out
    assert out.count("payoffs: P0 ") == 2 and "learner's distance from equilibrium: 0\n" in out
    assert "Summary over 2 episodes" in out and "payoff" in out and "* the learner" in out


def test_moves_payoffs_and_distances_are_shown_and_summed(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["games", "play", "prisoners-dilemma", "--param", "rounds=2", "--player", "tit-for-tat",
                 "--opponent", "always-defect", "--episodes", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "  P0 C  (distance from equilibrium 1)\n  P1 D\n  P0 D  (distance from equilibrium 0)\n  P1 D\n" in out
    assert out.count("payoffs: P0 1, P1 6  learner's distance from equilibrium: 0.5") == 3
    assert cells(out, "tit-for-tat") == ["P0*", "tit-for-tat", "1", "6", "0 (0%)", "0", "0.5"]
    assert cells(out, "always-defect") == ["P1", "always-defect", "6", "6", "0 (0%)", "0", "0"]


def test_the_learner_can_sit_second(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["games", "play", "beer-quiche", "--player", "honest", "--opponent", "equilibrium", "--seat", "1"]) == 0
    out = capsys.readouterr().out
    assert "P0 equilibrium vs P1 honest" in out
    assert cells(out, "honest")[0] == "P1*" and cells(out, "equilibrium")[0] == "P0"


def test_quiet_shows_the_summary_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["games", "play", "bargaining", "--player", "fair", "-q", "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "Episode" not in out and "offer" not in out and "Summary over 2 episodes" in out


@pytest.mark.parametrize("name", GAMES)
def test_out_writes_a_line_per_episode_that_replays_to_its_payoffs(name: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "episodes.jsonl"
    assert main(["games", "play", name, "--player", "random", "--opponent", "random", "--episodes", "3", "--seed", "9",
                 "--out", str(out)]) == 0
    assert f"wrote 3 episodes to {out}" in capsys.readouterr().out
    logged = lines(out)
    assert [line["episode"] for line in logged] == [0, 1, 2] and [line["seed"] for line in logged] == [9, 10, 11]
    for line in logged:
        assert line["schema"] == 1 and line["spec"] == name and line["players"] == ["random", "random"]
        transcript = read_transcript(line)
        assert replay(game_from_line(line), transcript) == tuple(line["payoffs"])
        assert read_transcript(json.dumps(line)) == transcript
        assert set(line) >= {"game", "params", "seed", "records", "payoffs", "forfeit", "distance", "generations"}


def test_out_is_written_as_each_episode_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """An interruption in episode 3 leaves episodes 1 and 2 on disk, whole."""
    import gtalign.envs as envs

    real = envs.aplay
    on_disk: list[list[int]] = []
    out = tmp_path / "episodes.jsonl"

    async def interrupted(*args: Any, **kwargs: Any) -> Any:
        on_disk.append([line["episode"] for line in lines(out)])  # what a kill -9 now would leave
        if len(on_disk) == 3:
            raise KeyboardInterrupt
        return await real(*args, **kwargs)

    monkeypatch.setattr(envs, "aplay", interrupted)
    assert main(["games", "play", "prisoners-dilemma", "--player", "random", "--episodes", "5", "--out", str(out)]) == 130
    assert on_disk == [[], [0], [0, 1]]
    assert [line["episode"] for line in lines(out)] == [0, 1]
    assert "interrupted" in capsys.readouterr().err


def test_a_game_and_a_strategy_by_dotted_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["games", "play", "gtalign.envs:PrisonersDilemma", "--param", "rounds=1", "--player", "gtalign.envs:TitForTat",
                 "--opponent", "always-defect"]) == 0
    assert "P0 tit-for-tat vs P1 always-defect" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["chess", "--player", "random"], "unknown game 'chess'; valid: bargaining, beer-quiche, prisoners-dilemma, signaling, spence"),
        (["no.such.module:Game", "--player", "random"], "cannot import 'no.such.module'"),
        (["bargaining", "--param", "delta=0.9", "--player", "fair"],
         "game bargaining: unknown parameter 'delta'; valid: delta1, delta2, pie, horizon, precision, max_rounds, invalid_moves"),
        (["bargaining", "--param", "delta1=3", "--player", "fair"], "game bargaining with delta1=3: delta1 must be a discount factor"),
        (["prisoners-dilemma", "--param", "invalid_moves={retries: -1}", "--player", "random"], "parameter 'invalid_moves': retries"),
        (["prisoners-dilemma", "--player", "random", "--opponent", "nice"],
         "--opponent 'nice' is not a strategy of prisoners-dilemma; valid: always-cooperate, always-defect, tit-for-tat, "
         "grim-trigger, random, equilibrium, model, or module:attr"),
        (["spence", "--player", "tit-for-tat"],
         "--player 'tit-for-tat' is not a strategy of spence; valid: equilibrium, lowest, highest, honest, random, or module:attr"),
        (["spence", "--player", "gtalign.envs:Episode"], "--player 'gtalign.envs:Episode' cannot be built"),
        (["spence", "--player", "gtalign.envs:replay"], "is a function, not a Strategy"),
        (["spence"], "give --backend (a model) or --player NAME (one of equilibrium, lowest, highest, honest, random"),
        (["spence", "--player", "random", "--opponent", "model"], "--opponent model is self-play with the --backend model"),
        (["spence", "--player", "random", "--model", "m"], "--model only applies with --backend"),
        (["spence", "--player", "random", "--backend", "http://127.0.0.1:9/v1", "--model", "m"], "with --backend the model plays"),
        (["spence", "--backend", "http://127.0.0.1:9/v1"], "--backend: backend 'http://127.0.0.1:9/v1': HTTPBackend needs base_url and model"),
        (["spence", "--backend", "nonsense"], "--backend: backend must be 'embedded'"),
    ],
)
def test_usage_errors_name_the_bad_value(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["games", "play", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gtalign games: error: ") and message in err, err


def test_games_without_an_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["games"]) == 2
    assert "choose an action: play" in capsys.readouterr().err
    assert main(["games", "play", "spence", "--seat", "2"]) == 2
    assert "invalid choice: 2" in capsys.readouterr().err


def test_an_unwritable_out_fails_with_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["games", "play", "spence", "--player", "random", "--out", str(tmp_path / "missing" / "x.jsonl")]) == 1
    assert "No such file or directory" in capsys.readouterr().err


# -- a model on a loopback server ------------------------------------------------------------------------


def dilemma_script(answers: list[str]) -> Any:
    def script(request: FakeRequest) -> Reply:
        return Reply(answers[min(request.index, len(answers) - 1)])
    return script


def test_a_model_on_a_loopback_server_plays_and_is_logged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model.jsonl"
    with FakeOpenAI(dilemma_script(["Hmm, let me think.", "I defect: D"]), kind="vllm", model="m") as server:
        code = main(["games", "play", "prisoners-dilemma", "--param", "rounds=2", "--backend", server.base_url, "--model", "m",
                     "--opponent", "tit-for-tat", "--temperature", "0.5", "--max-tokens", "20", "--seed", "3", "--out", str(out)])
        bodies = [request.body for request in server.received]
    shown = capsys.readouterr().out
    assert code == 0
    assert "P0 model (m) vs P1 tit-for-tat" in shown
    assert "  P0 'Hmm, let me think.' ✗ the answer names no move" in shown and "asked again (1 of 2)" in shown
    assert "  P0 'I defect: D' → D  (distance from equilibrium 0)  [3 tokens, " in shown
    assert "payoffs: P0 6, P1 1" in shown
    assert cells(shown, "model (m)") == ["P0*", "model (m)", "6", "3", "1 (33%)", "0", "0"]
    assert [(b["temperature"], b["max_tokens"], b["seed"]) for b in bodies] == [(0.5, 20, 3), (0.5, 20, 4), (0.5, 20, 5)]
    assert bodies[0]["messages"][0]["role"] == "system" and "Round 1 of 2" in bodies[0]["messages"][1]["content"]
    (line,) = lines(out)
    assert line["players"] == ["m", "tit-for-tat"] and line["learner"] == 0 and line["distance"] == [0.0, 0.5]
    assert [(g["seat"], g["text"], g["status"], g["tokens_out"], g["seed"]) for g in line["generations"]] == [
        (0, "Hmm, let me think.", "ok", 4, 3), (0, "I defect: D", "ok", 3, 4), (0, "I defect: D", "ok", 3, 5)]
    assert replay(game_from_line(line), read_transcript(line)) == (6.0, 1.0)


def test_self_play_on_a_loopback_server_with_a_failing_call_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def script(request: FakeRequest) -> Reply:
        return Reply(fault="overflow") if request.index == 1 else Reply("offer 0.6" if "offer" in request.prompt.split("\n")[-1]
                                                                       else "accept")

    out = tmp_path / "self.jsonl"
    with FakeOpenAI(script, kind="vllm", model="m") as server:
        code = main(["games", "play", "bargaining", "--backend", server.base_url, "--model", "m", "--opponent", "model",
                     "--seat", "1", "--out", str(out)])
    shown = capsys.readouterr().out
    assert code == 1
    assert "P0 model (m) vs P1 model (m)" in shown
    assert "P1 model call failed (context_overflow: " in shown and "maximum context length" in shown
    assert "1 of 3 model calls failed" in shown
    (line,) = lines(out)
    assert [g["seat"] for g in line["generations"]] == [0, 1, 1]
    assert [g["seed"] for g in line["generations"]] == [0, 1, 2]  # one player on both seats: no seed drawn twice
    assert line["generations"][1]["status"] == "context_overflow" and line["records"][1]["text"] == ""
    assert replay(game_from_line(line), read_transcript(line)) == tuple(line["payoffs"])


def test_a_model_that_never_answers_in_format_forfeits(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAI(lambda request: Reply("I am not sure what to do."), kind="vllm", model="m") as server:
        code = main(["games", "play", "spence", "--backend", server.base_url, "--model", "m", "--opponent", "honest",
                     "--episodes", "2"])
    shown = capsys.readouterr().out
    assert code == 0  # invalid answers are the model's play, not a failure of the command
    assert shown.count("asked again (1 of 2)") == 2 and shown.count("asked again (2 of 2)") == 2
    # spence's default penalty is -3: below the worst valid outcome (-2), so a forfeit never pays better
    assert shown.count("— forfeit (penalty -3)") == 2 and shown.count("(P0 forfeited)") == 2
    assert "learner's distance from equilibrium: n/a (no moves)" in shown
    assert cells(shown, "model (m)") == ["P0*", "model (m)", "-3", "6", "6 (100%)", "2", "n/a"]


class Cheater:
    """A fixed strategy that plays an illegal move: the game's error ends the command with exit 1."""

    name = "cheater"

    def __call__(self, state: Any, rng: Any) -> str:
        return "X"


def test_a_strategy_that_plays_an_illegal_move_fails_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["games", "play", "prisoners-dilemma", "--player", f"{__name__}:Cheater"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gtalign games: error: prisoners-dilemma: ") and "'X' is not a legal move" in err


def test_the_help_examples_without_a_model_run(capsys: pytest.CaptureFixture[str]) -> None:
    import re
    import shlex

    assert main(["games", "play", "--help"]) == 0
    text = capsys.readouterr().out.replace("\\\n", " ")
    examples = [shlex.split(m) for m in re.findall(r"(?:e\.g\.|\n ) gtalign (games play [^\n]*)", text) if "--backend" not in m]
    assert len(examples) >= 5
    for argv in examples:
        assert main([*argv, "-q"]) == 0, argv
        assert "Summary over" in capsys.readouterr().out


@pytest.mark.parametrize(("spec", "penalty"), [("spence", -3.0), ("beer-quiche", -1.0), ("prisoners-dilemma", -1.0),
                                               ("bargaining", -1.0)])
def test_invalid_moves_without_a_penalty_keeps_the_games_own(spec: str, penalty: float) -> None:
    """``--param 'invalid_moves={retries: 3}'`` changes the re-asks only: Spence's default forfeit penalty is
    below its worst payoff (-2), and a policy built before the game saw it would have reset it to -1."""
    from gtalign.cli._games import resolve_game

    game = resolve_game(spec, {"invalid_moves": {"retries": 3}})
    assert (game.invalid_moves.retries, game.invalid_moves.penalty) == (3, penalty)
    assert resolve_game(spec, {"invalid_moves": {"penalty": -7}}).invalid_moves.penalty == -7


def test_a_signaling_game_without_a_pure_equilibrium_is_played_with_no_distance(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """These tables have no pure-strategy PBE, so equilibrium play is undefined; random play still runs, and
    the distance from equilibrium is n/a rather than a crash."""
    tables = ["types=[a, b]", "signals=[x, y]", "actions=[l, r]", "prior=[0.5, 0.5]", "costs=[[0, 0], [0, 0]]",
              "sender_payoffs=[[[1, 3], [2, 1]], [[2, 0], [1, 3]]]", "receiver_payoffs=[[[3, 1], [1, 2]], [[3, 2], [2, 0]]]"]
    params = [arg for table in tables for arg in ("--param", table)]
    out = tmp_path / "episodes.jsonl"
    code = main(["games", "play", "signaling", *params, "--player", "random", "--opponent", "random", "--episodes", "2",
                 "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "distance from equilibrium n/a" in text
    assert all(json.loads(line)["distance"] == [None, None] for line in out.read_text().splitlines())
