"""``gtalign games play`` against a real model server: llama-cpp-python's own OpenAI-compatible
server on loopback, serving the SmolLM2 GGUF (skipped where llama-cpp-python[server] is not built)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gtalign.cli import main
from gtalign.cli._games import read_transcript
from gtalign.envs import Bargaining, Game, PrisonersDilemma, Signaling, replay
from tests.backends._http_helpers import llama_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow  # a real server and model, as the other llama-cpp-python server tests


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]


def _game(line: dict[str, Any]) -> Game:
    makers = {"prisoners-dilemma": PrisonersDilemma.from_params, "bargaining": Bargaining.from_params,
              "signaling": lambda params: Signaling(**params)}
    return makers[line["game"]](line["params"])


def _play(server: str, out: Path, *args: str) -> int:
    return main(["games", "play", *args, "--backend", server, "--model", "smollm2", "--temperature", "0",
                 "--max-tokens", "24", "--out", str(out), "-q"])


@pytest.mark.parametrize("game", ["prisoners-dilemma", "bargaining", "beer-quiche"])
def test_a_served_model_plays_whole_episodes_that_replay(game: str, llama_server: tuple[str, Path],  # noqa: F811
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base_url, _ = llama_server
    out = tmp_path / "episodes.jsonl"
    params = ["--param", "rounds=2"] if game == "prisoners-dilemma" else ["--param", "horizon=2"] if game == "bargaining" else []
    assert _play(base_url, out, game, *params, "--opponent", "equilibrium", "--episodes", "2") == 0, capsys.readouterr().out
    assert "Summary over 2 episodes" in capsys.readouterr().out
    episodes = _lines(out)
    assert [line["episode"] for line in episodes] == [0, 1]
    for line in episodes:
        learner = line["learner"]
        generations = line["generations"]
        asked = [record for record in line["records"] if record["player"] == learner]
        # every answer the game read came from a real, successful call, in order, word for word
        assert generations and all(g["status"] == "ok" and g["seat"] == learner for g in generations)
        assert [g["text"] for g in generations] == [record["text"] for record in asked]
        assert all(g["tokens_in"] > 0 and g["tokens_out"] > 0 and g["finish_reason"] in ("stop", "length") for g in generations)
        transcript = read_transcript(line)
        assert replay(_game(line), transcript) == tuple(line["payoffs"])
        assert all(math.isfinite(p) for p in line["payoffs"])
        assert line["forfeit"] in (None, learner)  # the equilibrium opponent never forfeits


def test_greedy_play_on_the_server_is_reproducible_and_self_play_uses_both_seats(
        llama_server: tuple[str, Path], tmp_path: Path) -> None:  # noqa: F811
    base_url, _ = llama_server
    first, again = tmp_path / "first.jsonl", tmp_path / "again.jsonl"
    for out in (first, again):
        assert _play(base_url, out, "beer-quiche", "--opponent", "model", "--seed", "3") == 0
    a, b = _lines(first)[0], _lines(again)[0]
    assert a["records"] == b["records"] and a["payoffs"] == b["payoffs"]
    assert {g["seat"] for g in a["generations"]} == {0, 1}
    assert a["players"][0] == a["players"][1]
