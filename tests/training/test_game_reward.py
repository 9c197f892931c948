"""Game rows for ``gtalign train grpo`` and the payoff reward (`gtalign.training._games`): rows through
the real loader and JSON, hand-written completions per game, unscored rows as None, the metrics
logged through TRL's ``log_metric``, and pickling."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from gtalign._registry import REGISTRY
from gtalign.envs import AlwaysDefect, EquilibriumPlay, GameError, PrisonersDilemma, RandomMove, TitForTat
from gtalign.envs._decisions import answer_value, decision_points, strategy_named
from gtalign.training._config import TrainConfig
from gtalign.training._games import GamePayoffReward, game_rows, read_game_row
from gtalign.training._train_data import grpo_rows

EQ = EquilibriumPlay()
SYSTEM = "You are playing a game."


def _trl_columns(rows, tmp_path, name="rows"):
    """The rows as ``gtalign train grpo`` hands them to TRL: written as JSONL, read by its loader."""
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = TrainConfig(kind="grpo", data=(str(path),), prompt="stored", output_dir=str(tmp_path / "out"))
    loaded = grpo_rows(config)
    assert len(loaded.rows) == len(rows) and not loaded.skipped
    return [dict(row) for row in loaded.rows]


def _call(reward, rows, completions, **extra):
    columns = {key: [row[key] for row in rows] for key in rows[0] if key != "prompt"}
    return reward([row["prompt"] for row in rows], completions, **columns, **extra)


def _conversation(text):
    return [{"role": "assistant", "content": text}]


# Per game: a point against equilibrium play, and hand-written answers (equilibrium move, another
# legal move, an invalid one).
CASES = {
    "prisoners-dilemma": (1, ["D", "I will cooperate: C", "both C and D"]),
    "bargaining": (0, [None, "offer 0.99", "I would like to think"]),
    "signaling": (0, [None, "Answer: 0", "no idea"]),
    "spence": (1, [None, "answer: low", "whatever"]),
    "beer-quiche": (1, ["retreat", "duel", "???"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewards_on_hand_written_completions(name, tmp_path):
    game = REGISTRY.create("game", name)
    seat, texts = CASES[name]
    point = decision_points(game, seat=seat, opponent=EQ, behaviour=EQ, episodes=1, seed=0)[0]
    texts = [point.equilibrium_text if t is None else t for t in texts]
    rows = _trl_columns(game_rows([point], system=SYSTEM), tmp_path) * len(texts)
    rewards = _call(GamePayoffReward(), rows, [_conversation(t) for t in texts])
    expected = [answer_value(game, point, t, opponent=EQ).payoff for t in texts]
    assert rewards == pytest.approx(expected)
    assert rewards[0] >= rewards[1] and rewards[2] == pytest.approx(game.invalid_moves.penalty)
    scaled = _call(GamePayoffReward(normalise=True), rows, texts)  # plain-string completions too
    assert all(0.0 <= r <= 1.0 for r in scaled) and scaled[0] >= scaled[1] >= scaled[2]


def test_dilemma_rewards_by_hand(tmp_path):
    game = PrisonersDilemma(rounds=2)  # T, R, P, S = 5, 3, 1, 0; the opponent tit-for-tat cooperates first
    point = decision_points(game, seat=1, opponent=TitForTat(), behaviour=EQ, episodes=1, seed=0)[0]
    rows = _trl_columns(game_rows([point], system=SYSTEM), tmp_path) * 3
    rewards = _call(GamePayoffReward(), rows, [_conversation(t) for t in ("C", "defect", "cooperate or defect")])
    assert rewards == [8.0, 6.0, -1.0]  # C: 3 + 5; D: 5 + 1; names both moves: forfeit, 0 - 1


def test_rows_round_trip_through_json(tmp_path):
    game = REGISTRY.create("game", "spence")
    points = decision_points(game, seat=0, opponent=EQ, episodes=3, seed=2)
    rows = game_rows(points, continuation="equilibrium", samples=4, system=SYSTEM)
    row = rows[0]
    assert row["data_source"] == "game/signaling" and row["reward_model"]["ground_truth"] == points[0].equilibrium_text
    assert row["prompt"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": points[0].observation}]
    assert json.loads(json.dumps(rows)) == rows
    loaded = _trl_columns(rows, tmp_path)
    assert isinstance(loaded[0]["extra_info"], str) and loaded[0]["ground_truth"] == points[0].equilibrium_text
    back = [read_game_row(r["extra_info"]) for r in loaded]
    assert [b.point for b in back] == list(points)
    assert {(b.continuation, b.samples) for b in back} == {("equilibrium", 4)}


def test_default_prompt_is_what_a_chat_player_sends():
    from gtalign.envs.players import ChatPlayer
    from gtalign.testing import ScriptedBackend

    point = decision_points(PrisonersDilemma(rounds=1), seat=0, opponent=EQ, episodes=1, seed=0)[0]
    player = ChatPlayer(ScriptedBackend(lambda messages, prefill: "D"))
    assert game_rows([point])[0]["prompt"] == player.messages(point.observation)


def test_rows_refuse_strategies_the_reward_cannot_rebuild():
    point = decision_points(PrisonersDilemma(rounds=1), seat=0, opponent=EQ, episodes=1, seed=0)[0]
    with pytest.raises(GameError, match="unknown strategy"):
        game_rows([point], continuation="nobody", system=SYSTEM)
    with pytest.raises(GameError, match="samples"):
        game_rows([point], samples=0, system=SYSTEM)


def test_unscored_rows_are_none_and_counted(tmp_path, caplog):
    game = PrisonersDilemma(rounds=2)
    point = decision_points(game, seat=0, opponent=EQ, episodes=1, seed=0)[1]
    good = _trl_columns(game_rows([point], system=SYSTEM), tmp_path)[0]
    info = json.loads(good["extra_info"])
    bad = [
        {**good, "data_source": "math-hard"},  # not a game row
        {**good, "extra_info": "{not json"},
        {**good, "extra_info": json.dumps({**info, "history": ["D", "X"]})},  # does not replay
        {**good, "extra_info": json.dumps({**info, "opponent": "os:system"})},  # never imported from data
        {**good, "extra_info": json.dumps({**info, "observation": "an older prompt"})},
        {**good, "data_source": "game/bargaining"},  # the point is of another game
    ]
    metrics, extra = [], {}
    reward = GamePayoffReward()
    rewards = _call(reward, [good, *bad], ["D"] * 7, log_metric=lambda n, v: metrics.append((n, v)),
                    log_extra=lambda column, values: extra.setdefault(column, values))
    assert rewards[0] == pytest.approx(answer_value(game, point, "D", opponent=EQ).payoff)
    assert rewards[1:] == [None] * 6
    assert reward.unscored == 6
    assert dict(metrics)["games/unscored_frac"] == pytest.approx(6 / 7)
    assert "6 of 7 completions unscored" in caplog.text
    errors = extra["game_error"]
    assert errors[0] == "" and errors[1] == "unscored: not a game row (data_source 'math-hard')"
    assert "not JSON" in errors[2] and "not a legal move" in errors[3] and "unknown strategy 'os:system'" in errors[4]
    assert "observation differs" in errors[5] and "does not match the point's game" in errors[6]


def test_metrics_are_logged_per_call(tmp_path):
    game = PrisonersDilemma(rounds=2)
    points = decision_points(game, seat=1, opponent=AlwaysDefect(), behaviour=EQ, episodes=1, seed=0)[:2]
    rows = _trl_columns(game_rows(points, system=SYSTEM), tmp_path)
    batch = [rows[0]] * 4 + [rows[1]] * 4  # two prompts, four completions each, as TRL groups them
    texts = ["D", "C", "xyz", "D", "D", "D", "C", "C"]
    metrics, extra = [], {}
    rewards = _call(GamePayoffReward(), batch, texts, log_metric=lambda n, v: metrics.append((n, v)),
                    log_extra=lambda column, values: extra.setdefault(column, values))
    # first point (round 1 against D): D -> P + P = 2, C -> S + P = 1, forfeit -1; second (round 2): D -> 2, C -> 1
    assert rewards == [2.0, 1.0, -1.0, 2.0, 2.0, 2.0, 1.0, 1.0]
    logged = dict(metrics)
    assert len(logged) == len(metrics)  # each metric once per call
    assert logged["games/payoff_mean"] == pytest.approx(sum(rewards) / 8)
    assert logged["games/invalid_frac"] == pytest.approx(1 / 8)
    assert logged["games/equilibrium_frac"] == pytest.approx(4 / 8)
    assert logged["games/regret_mean"] == pytest.approx((0 + 1 + 3 + 0 + 0 + 0 + 1 + 1) / 8)
    assert logged["games/distance_mean"] == pytest.approx(3 / 7)  # valid answers only
    assert logged["games/opponent_payoff_mean"] == pytest.approx((2 + 6 + 0 + 2 + 2 + 2 + 6 + 6) / 8)
    assert logged["games/unscored_frac"] == 0.0
    assert logged["games/payoff_var"] > 0 and 0 <= logged["games/payoff_norm_mean"] <= 1
    first, second = [2.0, 1.0, -1.0, 2.0], [2.0, 2.0, 1.0, 1.0]
    std = lambda xs: (sum((x - sum(xs) / 4) ** 2 for x in xs) / 4) ** 0.5  # noqa: E731
    assert logged["games/group_std_mean"] == pytest.approx((std(first) + std(second)) / 2)
    assert extra["game_move"] == ["D", "C", None, "D", "D", "D", "C", "C"]
    assert extra["game_error"][2] and extra["game_error"][0] == ""


def test_random_opponent_rows_use_their_samples(tmp_path):
    game = PrisonersDilemma(rounds=3)
    points = decision_points(game, seat=1, opponent=RandomMove(), episodes=1, seed=0)[:1]
    rows = _trl_columns(game_rows(points, samples=3, system=SYSTEM), tmp_path)
    got = _call(GamePayoffReward(), rows * 2, ["C", "C"])
    assert got[0] == got[1] == pytest.approx(answer_value(game, points[0], "C", opponent=RandomMove(), samples=3).payoff)
    more = _call(GamePayoffReward(samples=50), rows, ["C"])[0]
    assert more == pytest.approx(answer_value(game, points[0], "C", opponent=RandomMove(), samples=50).payoff)


def test_the_reward_pickles_with_its_name(tmp_path):
    game = REGISTRY.create("game", "bargaining")
    point = decision_points(game, seat=1, opponent=EQ, episodes=1, seed=1)[0]
    rows = _trl_columns(game_rows([point], system=SYSTEM), tmp_path)
    reward = GamePayoffReward(normalise=True, strategies={"mine": strategy_named(game, "greedy")})
    before = _call(reward, rows, ["accept"])
    copy = pickle.loads(pickle.dumps(reward))
    assert copy.__name__ == reward.__name__ == "game_payoff"
    assert not copy._games and copy.normalise and copy.strategies == reward.strategies
    assert _call(copy, rows, ["accept"]) == before


def test_no_torch_or_trl_at_import():
    code = ("import sys, gtalign.training._games, gtalign.envs._decisions; "
            "print(sorted(m for m in ('torch', 'trl', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("bounds", [(5.0, 1.0), (float("nan"), 1.0), (0.0, float("inf")), (0.0, 1.0, 2.0), None])
def test_a_payoff_range_that_cannot_scale_leaves_the_row_unscored(tmp_path, request, bounds):
    """A game's own range reversed, NaN, infinite, malformed or failing: --normalise would have scored every
    answer 0 without a word. The row is unscored with the reason instead; without --normalise the raw payoff
    is still the reward and only the scaled metric is left out."""

    class BadRange(PrisonersDilemma):
        name = "test-bad-range"

        def payoff_range(self, seat):
            if bounds is None:
                raise TypeError("payoff_range() of a custom game failed")
            return bounds

    REGISTRY.register("game", "test-bad-range", BadRange, replace=True)
    request.addfinalizer(lambda: REGISTRY.unregister("game", "test-bad-range"))
    game = BadRange(rounds=2)
    rows = _trl_columns(game_rows(decision_points(game, seat=0, opponent=EQ, episodes=1, seed=0)[:1], system=SYSTEM),
                        tmp_path)
    extra = {}
    scaled = GamePayoffReward(normalise=True)
    assert _call(scaled, rows * 2, ["D", "C"], log_extra=lambda column, values: extra.setdefault(column, values)) == [None, None]
    assert scaled.unscored == 2 and extra["game_error"][0].startswith("unscored: no payoff range to scale by")
    metrics = []
    raw = _call(GamePayoffReward(), rows * 2, ["D", "C"], log_metric=lambda n, v: metrics.append((n, v)))
    assert raw == [answer_value(game, decision_points(game, seat=0, opponent=EQ, episodes=1, seed=0)[0], t,
                                opponent=EQ).payoff for t in ("D", "C")]
    assert "games/payoff_norm_mean" not in dict(metrics) and "games/payoff_mean" in dict(metrics)
