"""The Gymnasium environments: `check_env` on the toy games and on every registered game, rewards that add
up to the payoff, seeded resets, either seat, invalid answers and forfeits, and registration without
import side effects."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from collections.abc import Iterator

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.registration import registry
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from gtalign._registry import REGISTRY, RegistryError
from gtalign.envs import EquilibriumPlay, GameError, InvalidMovePolicy, play, replay
from gtalign.envs.gym import CHARSET, ENV_IDS, TextGameEnv, register_envs
from tests.envs.test_core import Always, Sequential, Signal, Uniform

GAME_MODULES = {
    "prisoners-dilemma": "gtalign.envs._dilemma",
    "bargaining": "gtalign.envs._bargaining",
    "signaling": "gtalign.envs._signaling",
    "beer-quiche": "gtalign.envs._signaling",
}


def _needs_game(name: str) -> None:
    """Skip while the game's module is not written yet; a module that exists but fails must fail."""
    module = GAME_MODULES[name]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} (game {name!r}) does not exist yet")


def _check_env_quietly(env: gymnasium.Env) -> None:
    """`check_env`, with any warning it logs (an observation outside the space, a reused object) an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    messages = [str(w.message) for w in caught]
    assert not messages, messages


@pytest.fixture
def toy_ids() -> Iterator[dict[str, str]]:
    """Toy games registered with gymnasium for the test, so `check_env` also makes them by spec."""
    ids = {"gtalign-test/Sequential-v0": "sequential", "gtalign-test/Signal-v0": "signal"}
    makers = {
        "sequential": lambda **kw: TextGameEnv(Sequential(rounds=3), **kw),
        "signal": lambda **kw: TextGameEnv(Signal(), **kw),
    }
    for env_id, name in ids.items():
        gymnasium.register(env_id, entry_point=makers[name])
    yield ids
    for env_id in ids:
        del registry[env_id]


def _answer(env: TextGameEnv) -> str:
    """The learner's equilibrium move as text."""
    episode = env._episode
    assert episode is not None
    return env.game.format_move(env.game.equilibrium_action(episode.state), episode.state)


# ------------------------------------------------------------------ check_env


@pytest.mark.parametrize("seat", [0, 1])
@pytest.mark.parametrize("env_id", ["gtalign-test/Sequential-v0", "gtalign-test/Signal-v0"])
def test_check_env_passes_on_the_toy_games(toy_ids: dict[str, str], env_id: str, seat: int) -> None:
    env = gymnasium.make(env_id, seat=seat)
    _check_env_quietly(env.unwrapped)


@pytest.mark.parametrize("seat", [0, 1])
@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_check_env_passes_on_each_registered_game(env_id: str, seat: int) -> None:
    _needs_game(ENV_IDS[env_id])
    register_envs()
    env = gymnasium.make(env_id, seat=seat)
    _check_env_quietly(env.unwrapped)


@pytest.mark.parametrize("seat", [0, 1])
@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_registered_games_stay_in_their_spaces_and_add_up(env_id: str, seat: int) -> None:
    """Many episodes, the learner mixing equilibrium moves, other legal moves and junk."""
    _needs_game(ENV_IDS[env_id])
    register_envs()
    env = gymnasium.make(env_id, seat=seat).unwrapped
    assert isinstance(env, TextGameEnv)
    rng = np.random.default_rng(0)
    for episode in range(12):
        obs, info = env.reset(seed=episode)
        total, steps = 0.0, 0
        while True:
            assert obs in env.observation_space, sorted(set(obs) - CHARSET)[:10]
            roll = rng.random()
            if roll < 0.1:
                answer = env.action_space.sample()
            elif roll < 0.5:
                assert env._episode is not None
                legal = env._episode.state.legal_actions()
                answer = env.game.format_move(legal[int(rng.integers(len(legal)))], env._episode.state)
            else:
                answer = _answer(env)
            obs, reward, terminated, truncated, info = env.step(answer)
            total += reward
            steps += 1
            assert not truncated and steps < 10_000
            if terminated:
                break
        assert obs in env.observation_space
        assert total == pytest.approx(info["payoffs"][seat])
        assert replay(env.game, info["transcript"]) == pytest.approx(info["payoffs"])


@pytest.mark.parametrize("seat", [0, 1])
@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_registered_games_equilibrium_learner_matches_play(env_id: str, seat: int) -> None:
    """A learner answering the equilibrium move against the default opponent is `play` of two
    `EquilibriumPlay`s on the same episode seed, at distance 0."""
    _needs_game(ENV_IDS[env_id])
    register_envs()
    env = gymnasium.make(env_id, seat=seat).unwrapped
    assert isinstance(env, TextGameEnv)
    for seed in range(4):
        _, info = env.reset(seed=seed)
        total, terminated = 0.0, False
        while not terminated:
            _, reward, terminated, _, info = env.step(_answer(env))
            total += reward
        expected = play(env.game, [EquilibriumPlay(), EquilibriumPlay()], seed=info["episode_seed"])
        assert info["transcript"] == expected and info["forfeit"] is None
        assert info["distance_from_equilibrium"] == 0.0 and total == pytest.approx(expected.payoffs[seat])


# ------------------------------------------------------------------ rewards


@pytest.mark.parametrize("seat", [0, 1])
def test_rewards_follow_the_payoff_move_by_move(seat: int) -> None:
    env = TextGameEnv(Sequential(rounds=3), seat=seat)
    obs, info = env.reset(seed=0)
    rewards = []
    terminated = False
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(_answer(env))
        rewards.append(reward)
    # equilibrium play, A then x every round: 3 each per round. Seat 0's step covers its A and the
    # reply x; seat 1's first step covers the opening A (2), its x (1) and the next A (2); its last, x alone.
    assert rewards == ([3.0, 3.0, 3.0] if seat == 0 else [5.0, 3.0, 1.0])
    assert info["payoffs"] == (9.0, 9.0) and info["forfeit"] is None
    assert info["distance_from_equilibrium"] == 0.0


@settings(max_examples=60, deadline=None)
@given(
    seat=st.sampled_from([0, 1]),
    seed=st.integers(0, 2**32 - 1),
    answers=st.lists(st.sampled_from(["A", "B", "x", "y", "a", "?", "", "B."]) | st.text(max_size=8), max_size=30),
)
def test_rewards_sum_to_the_final_payoff(seat: int, seed: int, answers: list[str]) -> None:
    game = Sequential(rounds=3, invalid_moves=InvalidMovePolicy(retries=1, penalty=-7.0))
    env = TextGameEnv(game, seat=seat, opponent=Uniform())
    env.reset(seed=seed)
    total, terminated, info = 0.0, False, {}
    for answer in answers + ["zzz"] * 20:  # junk at the end: every episode ends, by rules or forfeit
        _, reward, terminated, _, info = env.step(answer)
        total += reward
        if terminated:
            break
    assert terminated
    assert total == pytest.approx(info["payoffs"][seat])
    assert info["transcript"].payoffs == info["payoffs"] == replay(game, info["transcript"])


# ------------------------------------------------------------------ seeding


def test_seeded_resets_reproduce_episodes() -> None:
    env = TextGameEnv(Signal(), seat=1, opponent=Uniform())

    def run(seed: int | None) -> tuple[list[str], list[float], object]:
        obs, info = env.reset(seed=seed)
        seen, rewards = [obs], []
        terminated = False
        while not terminated:
            obs, reward, terminated, _, info = env.step("a")
            seen.append(obs)
            rewards.append(reward)
        return seen, rewards, info["transcript"]

    assert run(11) == run(11)
    runs = [run(s)[2] for s in range(30)]
    assert len({t.actions for t in runs}) > 1  # nature and the random opponent vary with the seed
    # unseeded resets continue the seeded stream: the same sequence of episodes after the same seed
    env.reset(seed=3)
    first = [env.reset()[1]["episode_seed"] for _ in range(3)]
    env.reset(seed=3)
    assert [env.reset()[1]["episode_seed"] for _ in range(3)] == first


def test_an_episode_is_the_one_play_gives_for_its_seed() -> None:
    game = Signal()
    for seat in (0, 1):
        env = TextGameEnv(game, seat=seat, opponent=Uniform())
        for seed in range(8):
            _, info = env.reset(options={"episode_seed": seed})
            terminated = False
            while not terminated:
                _, _, terminated, _, info = env.step(_answer(env))
            players = [EquilibriumPlay(), Uniform()] if seat == 0 else [Uniform(), EquilibriumPlay()]
            assert info["transcript"] == play(game, players, seed=seed)
            assert info["episode_seed"] == seed


def test_step_does_not_touch_np_random() -> None:
    env = TextGameEnv(Sequential(rounds=2), opponent=Uniform())
    env.reset(seed=1)
    before = env.np_random.bit_generator.state
    env.step("A")
    env.step("junk")
    assert env.np_random.bit_generator.state == before


# ------------------------------------------------------------------ seats, opponents, invalid answers


def test_the_learner_in_seat_one() -> None:
    env = TextGameEnv(Sequential(rounds=2), seat=1, opponent=Always("b", "B"))
    obs, info = env.reset(seed=0)
    assert "you are player 1" in obs and "Moves so far: B." in obs and info["seat"] == 1
    obs, reward, terminated, _, info = env.step("y")  # B then y pays player 1 three; the opponent moves B again
    assert reward == 3.0 and not terminated and "Moves so far: B y B." in obs
    obs, reward, terminated, _, info = env.step("x")
    assert reward == 0.0 and terminated and info["payoffs"] == (1.0 + 3.0, 3.0)
    assert info["distance_from_equilibrium"] == 0.5  # y after B is the best reply, x is not


def test_invalid_answers_are_reasked_with_reward_zero_then_forfeited() -> None:
    game = Sequential(rounds=2, invalid_moves=InvalidMovePolicy(retries=2, penalty=-5.0))
    env = TextGameEnv(game, seat=1)
    obs, info = env.reset(seed=0)  # the opponent played A: player 1 has 2 accrued
    assert info["invalid_answers"] == 0
    for count in (1, 2):
        obs, reward, terminated, truncated, info = env.step("I cooperate")
        assert reward == 0.0 and not terminated and not truncated
        assert info["invalid"] and "answer with one of x, y" in info["error"] and info["invalid_answers"] == count
        assert "Your last answer was not a legal move" in obs
        assert "payoffs" not in info
    obs, reward, terminated, truncated, info = env.step("x")  # 2 from the opening A, 1 from x, 2 from the next A
    assert reward == 5.0 and not info["invalid"] and info["error"] == "" and info["invalid_answers"] == 2
    assert "not a legal move" not in obs
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step("")
    assert terminated and not truncated and info["invalid"] and info["forfeit"] == 1
    assert reward == -5.0  # the penalty alone: the opponent's A was paid with the last valid step
    assert info["payoffs"] == (1.0 + 2.0 + 1.0, 1.0 + 2.0 + 2.0 - 5.0) and info["invalid_answers"] == 5
    assert "you forfeited" in obs
    assert len(info["transcript"].invalid) == 5
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step("x")


def test_an_opponent_that_forfeits_ends_the_episode_and_the_learner_keeps_its_payoff() -> None:
    game = Sequential(rounds=2, invalid_moves=InvalidMovePolicy(retries=0, penalty=-1.0))
    env = TextGameEnv(game, seat=0, opponent=_Script(["A"]))  # a text opponent: A is never player 1's move
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step("A")
    assert terminated and reward == 1.0 and info["forfeit"] == 1 and info["payoffs"] == (1.0, 1.0)
    assert info["invalid_answers"] == 0 and not info["invalid"]
    assert "the other player forfeited" in obs


class _Script:
    def __init__(self, answers: list[str]) -> None:
        self.name, self.answers = "script", list(answers)

    def answer(self, observation: str) -> str:
        return self.answers.pop(0)


class _Async(_Script):
    async def answer(self, observation: str) -> str:  # type: ignore[override]
        return super().answer(observation)


def test_a_sync_text_player_as_opponent() -> None:
    env = TextGameEnv(Sequential(rounds=1), seat=1, opponent=_Script(["hmm", "b"]))
    obs, info = env.reset(seed=0)
    assert "Moves so far: B." in obs and [r.text for r in info["transcript"].invalid] == ["hmm"]
    assert info["invalid_answers"] == 0  # the learner's count only


def test_an_async_text_player_as_opponent_is_refused() -> None:
    env = TextGameEnv(Sequential(), seat=1, opponent=_Async(["A"]))
    with pytest.raises(GameError, match="asynchronously"):
        env.reset(seed=0)


def test_step_before_reset_and_non_text_actions() -> None:
    env = TextGameEnv(Sequential())
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step("A")
    env.reset(seed=0)
    with pytest.raises(TypeError, match="str"):
        env.step(0)  # type: ignore[arg-type]


def test_render_ansi_is_the_learners_prompt() -> None:
    env = TextGameEnv(Sequential(), seat=1, render_mode="ansi")
    assert env.render() is None
    obs, _ = env.reset(seed=0)
    assert env.render() == obs
    assert TextGameEnv(Sequential()).render() is None


# ------------------------------------------------------------------ construction and registration


def test_constructor_checks() -> None:
    with pytest.raises(GameError, match="seat"):
        TextGameEnv(Sequential(), seat=2)
    with pytest.raises(GameError, match="seat"):
        TextGameEnv(Sequential(), seat=True)
    with pytest.raises(GameError, match="opponent"):
        TextGameEnv(Sequential(), opponent="tit-for-tat")  # type: ignore[arg-type]
    with pytest.raises(GameError, match="params"):
        TextGameEnv(Sequential(), params={"rounds": 2})
    with pytest.raises(GameError, match="render_mode"):
        TextGameEnv(Sequential(), render_mode="human")
    with pytest.raises(RegistryError, match="unknown game"):
        TextGameEnv("no-such-game")
    with pytest.raises(GameError, match="a Game or a registry name"):
        TextGameEnv(42)  # type: ignore[arg-type]


def test_a_game_by_registry_name_and_params() -> None:
    REGISTRY.register("game", "toy-sequential", Sequential)
    try:
        env = TextGameEnv("toy-sequential", params={"rounds": 4})
        assert isinstance(env.game, Sequential) and env.game.rounds == 4
        assert env.reset(seed=0)[1]["transcript"].params == {"rounds": 4}
    finally:
        REGISTRY.unregister("game", "toy-sequential")


def test_spaces_are_text_over_the_documented_charset() -> None:
    env = TextGameEnv(Sequential(), max_observation_chars=500, max_answer_chars=50)
    assert isinstance(env.observation_space, gymnasium.spaces.Text) and env.observation_space.max_length == 500
    assert isinstance(env.action_space, gymnasium.spaces.Text) and env.action_space.max_length == 50
    assert env.action_space.min_length == 0  # an empty answer is an answer (an invalid one)
    prompts = ("δ1 = 0.9, δ2 = 0.5 → x* ≈ 0.909", "Payoffs (T, R, P, S) = (5, 3, 1, 0)\n\tnext", "θ_H ≥ θ_L — “quiche”…")
    for text in prompts:
        assert text in env.observation_space
    for text in ("\x00", "\u200b", "😀", "\x1b[31m"):
        assert text not in env.observation_space


def test_register_envs_is_explicit_and_idempotent() -> None:
    ids = register_envs()
    assert ids == tuple(ENV_IDS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert register_envs() == ids
    assert not caught  # no "Overriding environment" on the second call
    for env_id, name in ENV_IDS.items():
        assert registry[env_id].entry_point == "gtalign.envs.gym:TextGameEnv"
        assert registry[env_id].kwargs == {"game": name}


def test_make_passes_seat_opponent_and_params() -> None:
    entry = "gtalign.envs.gym:TextGameEnv"
    gymnasium.register("gtalign-test/ByName-v0", entry_point=entry, kwargs={"game": "toy-seq-2"})
    REGISTRY.register("game", "toy-seq-2", Sequential)
    try:
        env = gymnasium.make("gtalign-test/ByName-v0", seat=1, opponent=Always("b", "B"), params={"rounds": 2})
        obs, _ = env.reset(seed=0)
        assert "you are player 1" in obs and "Moves so far: B." in obs
        assert env.unwrapped.game.rounds == 2  # type: ignore[attr-defined]
    finally:
        del registry["gtalign-test/ByName-v0"]
        REGISTRY.unregister("game", "toy-seq-2")


def test_no_import_side_effects() -> None:
    code = (
        "import sys\n"
        "import gtalign.envs\n"
        "assert 'gymnasium' not in sys.modules, 'gtalign.envs imported gymnasium'\n"
        "import gymnasium.envs.registration as r\n"
        "before = set(r.registry)\n"
        "import gtalign.envs.gym\n"
        "assert set(r.registry) == before, 'importing gtalign.envs.gym registered environments'\n"
        "assert not any(k.startswith('gtalign/') for k in r.registry)\n"
        "gtalign.envs.gym.register_envs()\n"
        "assert all(k in r.registry for k in gtalign.envs.gym.ENV_IDS)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

