"""The pure core of the classic games, on two toy games written here: seeded chance, re-ask and forfeit,
transcripts that replay, players' generators apart from nature's, and distance from equilibrium.

The toy games are small on purpose (their whole tree fits in a test) and are reused by ``test_gym.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtalign.envs import (
    CHANCE,
    ECHO_WORDS,
    TERMINAL,
    Action,
    Episode,
    EquilibriumPlay,
    Game,
    GameError,
    InvalidMovePolicy,
    MoveError,
    MoveRecord,
    State,
    Strategy,
    TextPlayer,
    Transcript,
    aplay,
    distance_from_equilibrium,
    play,
    read_answer,
    replay,
)

# --------------------------------------------------------------------------------------------------
# Toy game 1: a sequential stage game, repeated `rounds` times. Player 0 picks A or B, which pays at
# once (A: 1 to player 0 and 2 to player 1; B: nothing); player 1 sees it and picks x or y, which
# pays by STAGE. Backward induction: after A, x (3 > 2 for player 1); after B, y; so A, x: (3, 3).
# Payoffs accrue move by move, so a forfeit after player 0's move leaves player 1 something accrued.
# --------------------------------------------------------------------------------------------------

FIRST: dict[str, tuple[float, float]] = {"A": (1.0, 2.0), "B": (0.0, 0.0)}
STAGE: dict[tuple[str, str], tuple[float, float]] = {
    ("A", "x"): (2.0, 1.0),
    ("A", "y"): (0.0, 0.0),
    ("B", "x"): (3.0, 0.0),
    ("B", "y"): (1.0, 3.0),
}


def _parse(text: str, legal: tuple[str, ...]) -> Action | MoveError:
    word = text.strip().strip(".").strip()
    if not word:
        return MoveError("the answer is empty")
    for move in legal:
        if word.lower() == move.lower():
            return move
    return MoveError(f"answer with one of {', '.join(legal)}, not {word[:20]!r}")


@dataclass(frozen=True)
class SequentialState(State):
    game: Sequential
    history: tuple[str, ...] = ()

    @property
    def current_player(self) -> int:
        return TERMINAL if len(self.history) >= 2 * self.game.rounds else len(self.history) % 2

    def legal_actions(self) -> tuple[Action, ...]:
        if self.is_terminal:
            return ()
        return ("A", "B") if self.current_player == 0 else ("x", "y")

    def apply(self, action: Action) -> SequentialState:
        if action not in self.legal_actions():
            raise GameError(f"{action!r} is not legal here")
        return SequentialState(self.game, (*self.history, str(action)))

    def observation(self, player: int) -> str:
        seen = " ".join(self.history) or "none"
        if self.is_terminal:
            return f"Toy game, you are player {player}. Moves: {seen}. The game is over; payoffs {self.returns()}."
        ask = "Answer A or B." if self.current_player == 0 else "Answer x or y."
        return f"Toy game, you are player {player}. Moves so far: {seen}. {ask}"

    def returns(self) -> tuple[float, float]:
        total = [0.0, 0.0]
        for i, move in enumerate(self.history):
            gain = FIRST[move] if i % 2 == 0 else STAGE[(self.history[i - 1], move)]
            total[0] += gain[0]
            total[1] += gain[1]
        return (total[0], total[1])


class Sequential(Game):
    name: ClassVar[str] = "toy-sequential"

    def __init__(self, rounds: int = 1, invalid_moves: InvalidMovePolicy | None = None) -> None:
        if rounds < 1:
            raise GameError(f"rounds must be >= 1, got {rounds}")
        self.rounds = rounds
        self.invalid_moves = invalid_moves or InvalidMovePolicy()

    def new_initial_state(self) -> SequentialState:
        return SequentialState(self)

    def parse_move(self, text: str, state: State) -> Action | MoveError:
        return _parse(text, state.legal_actions())  # type: ignore[arg-type]

    def format_move(self, action: Action, state: State) -> str:
        return str(action)

    def params(self) -> Mapping[str, Any]:
        return {"rounds": self.rounds}

    def equilibrium_action(self, state: State) -> Action:
        assert isinstance(state, SequentialState)
        if state.current_player == 0:
            return "A"
        return "x" if state.history[-1] == "A" else "y"


# --------------------------------------------------------------------------------------------------
# Toy game 2: nature draws player 0's type (hi with PRIOR_HI), player 0 sees it and sends s or n,
# nature garbles the signal (flips it with FLIP), player 1 sees only what arrived and acts a or b.
# Two chance nodes, one before any move and one between moves. Reference play: s when hi, n when
# lo; a when s arrived.
# --------------------------------------------------------------------------------------------------

PRIOR_HI = 0.3
FLIP = 0.2


@dataclass(frozen=True)
class SignalState(State):
    game: Signal
    history: tuple[str, ...] = ()

    @property
    def current_player(self) -> int:
        return (CHANCE, 0, CHANCE, 1, TERMINAL)[len(self.history)]

    def legal_actions(self) -> tuple[Action, ...]:
        return (("hi", "lo"), ("s", "n"), ("kept", "flipped"), ("a", "b"), ())[len(self.history)]

    def chance_outcomes(self) -> tuple[tuple[Action, float], ...]:
        if len(self.history) == 0:
            return (("hi", PRIOR_HI), ("lo", 1.0 - PRIOR_HI))
        if len(self.history) == 2:
            return (("kept", 1.0 - FLIP), ("flipped", FLIP))
        return super().chance_outcomes()

    @property
    def arrived(self) -> str:
        signal, noise = self.history[1], self.history[2]
        return signal if noise == "kept" else {"s": "n", "n": "s"}[signal]

    def apply(self, action: Action) -> SignalState:
        if action not in self.legal_actions():
            raise GameError(f"{action!r} is not legal here")
        return SignalState(self.game, (*self.history, str(action)))

    def observation(self, player: int) -> str:
        if player == 0:
            known = f"Your type is {self.history[0]}." if self.history else "No type yet."
        else:
            known = f"The signal that arrived is {self.arrived}." if len(self.history) > 2 else "No signal yet."
        return f"Signal game, you are player {player}. {known} Legal: {', '.join(map(str, self.legal_actions()))}."

    def returns(self) -> tuple[float, float]:
        if len(self.history) < 4:
            return (0.0, 0.0)
        kind, signal, _, act = self.history
        sender = (1.0 if act == "a" else 0.0) - (0.5 if signal == "s" and kind == "lo" else 0.0)
        receiver = 1.0 if (act == "a") == (kind == "hi") else 0.0
        return (sender, receiver)


class Signal(Game):
    name: ClassVar[str] = "toy-signal"

    def __init__(self, invalid_moves: InvalidMovePolicy | None = None) -> None:
        self.invalid_moves = invalid_moves or InvalidMovePolicy()

    def new_initial_state(self) -> SignalState:
        return SignalState(self)

    def parse_move(self, text: str, state: State) -> Action | MoveError:
        return _parse(text, state.legal_actions())  # type: ignore[arg-type]

    def format_move(self, action: Action, state: State) -> str:
        return str(action)

    def params(self) -> Mapping[str, Any]:
        return {"prior_hi": PRIOR_HI, "flip": FLIP}

    def equilibrium_action(self, state: State) -> Action:
        assert isinstance(state, SignalState)
        if state.current_player == 0:
            return "s" if state.history[0] == "hi" else "n"
        return "a" if state.arrived == "s" else "b"


@dataclass(frozen=True)
class Uniform:
    """A random strategy: a uniform legal move from the player's own generator."""

    name: str = "uniform"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        legal = state.legal_actions()
        return legal[int(rng.integers(len(legal)))]


@dataclass(frozen=True)
class Always:
    name: str
    move: str

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        return self.move


# ------------------------------------------------------------------ chance


def _types(seed: int) -> str:
    return str(Episode(Signal(), seed).records[0].action)


def _draws(transcript: Transcript) -> list[Action]:
    return [r.action for r in transcript.records if r.player == CHANCE]


def test_chance_is_resolved_at_once_and_recorded() -> None:
    episode = Episode(Signal(), seed=3)
    assert episode.to_move == 0  # never CHANCE
    first = episode.records[0]
    assert first.player == CHANCE and first.action in ("hi", "lo") and first.valid
    assert f"Your type is {first.action}." in episode.observation()


def test_same_seed_same_draws() -> None:
    assert [_types(s) for s in range(50)] == [_types(s) for s in range(50)]
    assert len({_types(s) for s in range(50)}) == 2  # the seed matters


def test_draw_frequencies_follow_the_probabilities() -> None:
    counts = Counter(_types(s) for s in range(4000))
    # standard error sqrt(0.3 * 0.7 / 4000) ~ 0.0072: 0.03 is over four of them
    assert counts["hi"] / 4000 == pytest.approx(PRIOR_HI, abs=0.03)
    noise = Counter()
    for seed in range(4000):  # the chance node between moves, resolved as soon as it is reached
        episode = Episode(Signal(), seed)
        outcome = episode.submit("s")
        assert outcome.accepted and episode.to_move == 1 and episode.records[-1].player == CHANCE
        noise[episode.records[-1].action] += 1
    assert noise["flipped"] / 4000 == pytest.approx(FLIP, abs=0.03)


# ------------------------------------------------------------------ submit, re-ask, forfeit


def test_submit_applies_legal_answers() -> None:
    episode = Episode(Sequential())
    assert episode.to_move == 0 and not episode.done
    outcome = episode.submit("  a. ")
    assert outcome.accepted and not outcome.reask and not outcome.forfeit and not outcome.done
    assert outcome.record == MoveRecord(0, "  a. ", "A")
    assert episode.to_move == 1 and episode.payoffs() == (1.0, 2.0)
    outcome = episode.submit("x")
    assert outcome.accepted and outcome.done and episode.to_move == TERMINAL
    assert episode.payoffs() == (3.0, 3.0)


@pytest.mark.parametrize(("answer", "why"), [("C", "answer with one of A, B"), ("", "empty")])
def test_invalid_answer_is_recorded_and_reasked_with_the_error(answer: str, why: str) -> None:
    episode = Episode(Sequential())
    outcome = episode.submit(answer)
    assert outcome.reask and not outcome.accepted and not outcome.forfeit and not outcome.done
    assert outcome.record.action is None and why in outcome.record.error and outcome.record.attempt == 0
    assert episode.to_move == 0 and episode.state == episode.game.new_initial_state()
    assert "Your last answer was not a legal move" in episode.observation() and why in episode.observation()
    assert "not a legal move" not in episode.observation(1)  # only the one asked again sees it
    episode.submit("B")
    assert "not a legal move" not in episode.observation()  # a valid answer clears it
    assert [r.attempt for r in episode.records] == [0, 1]


class _OffTheList(Sequential):
    """Parses any single letter, legal or not: the episode must check legality itself."""

    def parse_move(self, text: str, state: State) -> Action | MoveError:
        return text.strip() or MoveError("empty")


def test_a_parsed_but_illegal_move_is_an_invalid_answer() -> None:
    episode = Episode(_OffTheList())
    outcome = episode.submit("x")  # player 1's move, asked of player 0
    assert outcome.reask and "'x' is not a legal move here" in outcome.record.error


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_forfeit_after_the_retries_penalises_only_the_offender(retries: int) -> None:
    game = Sequential(invalid_moves=InvalidMovePolicy(retries=retries, penalty=-5.0))
    episode = Episode(game)
    episode.submit("A")  # accrues (1, 2)
    for attempt in range(retries):
        outcome = episode.submit("maybe")
        assert outcome.reask and outcome.record.attempt == attempt
    outcome = episode.submit("maybe")
    assert outcome.forfeit and outcome.done and not outcome.reask and episode.done
    assert episode.forfeit == 1 and episode.to_move == TERMINAL
    assert episode.payoffs() == (1.0, 2.0 - 5.0)
    transcript = episode.transcript()
    assert transcript.forfeit == 1 and transcript.payoffs == (1.0, -3.0)
    assert len(transcript.invalid) == retries + 1
    assert "you forfeited" in episode.observation(1) and "other player forfeited" in episode.observation(0)
    with pytest.raises(GameError, match="over"):
        episode.submit("x")


def test_submit_after_the_end_raises() -> None:
    episode = Episode(Sequential())
    episode.submit("A")
    episode.submit("x")
    with pytest.raises(GameError, match="over"):
        episode.submit("x")
    with pytest.raises(GameError, match="over"):
        episode.submit_action("x")


def test_submit_action_records_the_canonical_text() -> None:
    episode = Episode(Sequential())
    assert episode.submit_action("B").record == MoveRecord(0, "B", "B")


@settings(max_examples=200, deadline=None)
@given(answers=st.lists(st.text(max_size=40), max_size=12))
def test_random_answers_never_crash_submit(answers: list[str]) -> None:
    episode = Episode(Signal(invalid_moves=InvalidMovePolicy(retries=3)), seed=0)
    for answer in answers:
        if episode.done:
            break
        outcome = episode.submit(answer)
        assert outcome.accepted != (outcome.record.action is None)
        assert isinstance(episode.observation(0), str) and isinstance(episode.observation(1), str)
    transcript = episode.transcript()
    assert replay(Signal(invalid_moves=InvalidMovePolicy(retries=3)), transcript) == transcript.payoffs


# ------------------------------------------------------------------ transcripts and replay


def test_transcript_actions_and_invalid() -> None:
    episode = Episode(Signal(), seed=1)
    episode.submit("huh")
    episode.submit("s")
    episode.submit("a")
    transcript = episode.transcript()
    kind, noise = _draws(transcript)
    assert transcript.actions == (kind, "s", noise, "a")
    assert [r.text for r in transcript.invalid] == ["huh"]
    assert transcript.game == "toy-signal" and transcript.params == {"prior_hi": PRIOR_HI, "flip": FLIP}
    assert transcript.seed == 1
    assert transcript.forfeit is None and transcript.payoffs == episode.payoffs()


@pytest.mark.parametrize("seed", range(6))
def test_replay_reproduces_the_payoffs(seed: int) -> None:
    game = Sequential(rounds=3)
    transcript = play(game, [Uniform(), Uniform()], seed=seed)
    assert replay(game, transcript) == transcript.payoffs
    assert replay(game, list(transcript.actions)) == transcript.payoffs


def test_replay_includes_the_forfeit_penalty() -> None:
    game = Sequential(rounds=2, invalid_moves=InvalidMovePolicy(retries=0, penalty=-2.5))
    episode = Episode(game)
    episode.submit("A")
    episode.submit("x")
    episode.submit("nope")
    transcript = episode.transcript()
    assert transcript.forfeit == 0 and transcript.payoffs == (3.0 - 2.5, 3.0)
    assert replay(game, transcript) == transcript.payoffs
    assert replay(game, transcript.actions) == (3.0, 3.0)  # a bare move list carries no forfeit


# ------------------------------------------------------------------ play and aplay


def test_play_two_strategies() -> None:
    game = Sequential(rounds=2)
    transcript = play(game, [EquilibriumPlay(), EquilibriumPlay()], seed=0)
    assert transcript.actions == ("A", "x", "A", "x") and transcript.payoffs == (6.0, 6.0)
    assert all(r.text == r.action for r in transcript.records)
    assert play(game, [Always("b", "B"), EquilibriumPlay()]).actions == ("B", "y", "B", "y")


def test_play_checks_its_players() -> None:
    with pytest.raises(GameError, match="two players"):
        play(Sequential(), [EquilibriumPlay()])
    with pytest.raises(GameError, match="use aplay"):
        play(Sequential(), [EquilibriumPlay(), _Script(["x"])])


def test_a_strategy_that_plays_an_illegal_move_is_a_bug_raised_not_a_forfeit() -> None:
    """Invalid text is a model's outcome (re-asked, forfeited); an illegal move from code is a bug."""
    game = Sequential(invalid_moves=InvalidMovePolicy(retries=1, penalty=-1.0))
    with pytest.raises(GameError, match="toy-sequential: 'B' is not a legal move here"):
        play(game, [EquilibriumPlay(), Always("bad", "B")])  # B is player 0's move


class _Garbled(Sequential):
    """format_move writes a text parse_move reads as another move."""

    def format_move(self, action, state):  # type: ignore[no-untyped-def]
        return "B" if action == "A" else super().format_move(action, state)


def test_a_canonical_text_that_does_not_parse_back_is_raised() -> None:
    with pytest.raises(GameError, match="does not parse back .*format_move and parse_move disagree"):
        play(_Garbled(), [EquilibriumPlay(), EquilibriumPlay()])  # player 0's equilibrium move is A


class _Script:
    """A text player that reads its answers from a list, and keeps the prompts it was shown."""

    def __init__(self, answers: list[str], name: str = "script") -> None:
        self.name, self.answers, self.seen = name, list(answers), []

    def answer(self, observation: str) -> str:
        self.seen.append(observation)
        return self.answers.pop(0)


class _AsyncScript(_Script):
    async def answer(self, observation: str) -> str:  # type: ignore[override]
        return super().answer(observation)


def test_the_protocols_recognise_players() -> None:
    assert isinstance(EquilibriumPlay(), Strategy) and isinstance(Uniform(), Strategy)
    assert isinstance(_Script([]), TextPlayer) and not isinstance(_Script([]), Strategy)
    assert isinstance(_AsyncScript([]), TextPlayer)


async def test_aplay_with_a_sync_and_an_async_text_player() -> None:
    game = Sequential(rounds=2)
    zero, one = _Script(["A", "b?", "B"]), _AsyncScript(["X", "y"])
    steps: list[int] = []
    transcript = await aplay(game, [zero, one], seed=4, on_step=lambda e: steps.append(len(e.records)))
    assert transcript.actions == ("A", "x", "B", "y")
    assert [r.text for r in transcript.invalid] == ["b?"]
    assert transcript.payoffs == replay(game, transcript) == (1.0 + 2.0 + 0.0 + 1.0, 2.0 + 1.0 + 0.0 + 3.0)
    assert steps == [1, 2, 3, 4, 5]
    assert "Your last answer was not a legal move" in zero.seen[2]
    assert "Moves so far: A" in one.seen[0]


async def test_aplay_mixes_a_strategy_and_a_text_player_and_records_a_forfeit() -> None:
    game = Sequential(invalid_moves=InvalidMovePolicy(retries=1, penalty=-4.0))
    transcript = await aplay(game, [EquilibriumPlay(), _AsyncScript(["?", "??"])], seed=0)
    assert transcript.forfeit == 1 and transcript.payoffs == (1.0, 2.0 - 4.0)
    assert replay(game, transcript) == transcript.payoffs


async def test_aplay_and_play_agree_on_strategies() -> None:
    game = Signal()
    for seed in range(5):
        assert await aplay(game, [Uniform(), Uniform()], seed=seed) == play(game, [Uniform(), Uniform()], seed=seed)


def test_players_generators_are_apart_from_natures() -> None:
    game = Signal()
    draws = [_draws(play(game, [EquilibriumPlay(), EquilibriumPlay()], seed=s)) for s in range(40)]
    for players in ([Uniform(), EquilibriumPlay()], [EquilibriumPlay(), Uniform()], [Uniform(), Uniform()]):
        assert [_draws(play(game, players, seed=s)) for s in range(40)] == draws
    assert [d[0] for d in draws] == [_types(s) for s in range(40)]
    assert len({tuple(d) for d in draws}) == 4  # both draws vary with the seed


@dataclass(frozen=True)
class _Draws:
    """Plays the equilibrium, and keeps one draw of its generator per move."""

    draws: list[float]
    name: str = "draws"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        self.draws.append(float(rng.random()))
        return state.game.equilibrium_action(state)


def test_each_player_has_its_own_seeded_generator() -> None:
    zero, one = _Draws([]), _Draws([])
    play(Sequential(rounds=3), [zero, one], seed=5)
    assert len(zero.draws) == len(one.draws) == 3 and zero.draws != one.draws
    again = _Draws([])
    play(Sequential(rounds=3), [again, EquilibriumPlay()], seed=5)
    assert again.draws == zero.draws  # the other side's use of its generator changes nothing here
    assert zero.draws != Episode(Sequential(), seed=5)._rng.random(3).tolist()  # and nature's is another


def test_seeded_play_with_random_strategies_is_reproducible() -> None:
    game = Sequential(rounds=5)
    assert play(game, [Uniform(), Uniform()], seed=9) == play(game, [Uniform(), Uniform()], seed=9)
    assert len({play(game, [Uniform(), Uniform()], seed=s).actions for s in range(20)}) > 1


# ------------------------------------------------------------------ distance from equilibrium


def test_distance_from_equilibrium() -> None:
    game = Sequential(rounds=2)
    transcript = play(game, [Always("a", "A"), Always("y", "y")])
    assert distance_from_equilibrium(game, transcript, 0) == 0.0
    assert distance_from_equilibrium(game, transcript, 1) == 1.0
    mixed = play(game, [EquilibriumPlay(), Always("x", "x")])  # x after A is equilibrium, x after A again too
    assert distance_from_equilibrium(game, mixed, 1) == 0.0
    off = Transcript("toy-sequential", {}, None, (MoveRecord(0, "B", "B"), MoveRecord(1, "y", "y")), (1.0, 3.0))
    assert distance_from_equilibrium(game, off, 0) == 1.0
    assert distance_from_equilibrium(game, off, 1) == 0.0  # y is the best reply to B


def test_distance_skips_invalid_answers_and_chance_and_is_none_without_moves() -> None:
    game = Signal(invalid_moves=InvalidMovePolicy(retries=0))
    episode = Episode(game, seed=0)
    episode.submit("garbage")
    transcript = episode.transcript()
    assert distance_from_equilibrium(game, transcript, 0) is None
    assert distance_from_equilibrium(game, transcript, 1) is None
    episode = Episode(game, seed=0)
    kind = episode.records[0].action
    episode.submit("n" if kind == "hi" else "s")  # off equilibrium
    arrived = episode.state.arrived  # type: ignore[attr-defined]
    episode.submit("a")
    transcript = episode.transcript()
    assert distance_from_equilibrium(game, transcript, 0) == 1.0
    assert distance_from_equilibrium(game, transcript, 1) == (0.0 if arrived == "s" else 1.0)


def test_move_distance_is_used() -> None:
    class Graded(Sequential):
        def move_distance(self, state: State, action: Action) -> float:
            return 0.25 if action != self.equilibrium_action(state) else 0.0

    game = Graded(rounds=2)
    transcript = play(game, [Always("b", "B"), EquilibriumPlay()])
    assert distance_from_equilibrium(game, transcript, 0) == 0.25
    assert distance_from_equilibrium(game, transcript, 1) == 0.0


# ------------------------------------------------------------------ policy validation


@pytest.mark.parametrize(
    "kwargs",
    [{"retries": -1}, {"retries": 1.5}, {"retries": True}, {"penalty": float("nan")}, {"penalty": float("-inf")},
     {"penalty": "-1"}, {"penalty": None}, {"penalty": False}],
)
def test_invalid_move_policy_is_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(GameError):
        InvalidMovePolicy(**kwargs)


def test_invalid_move_policy_defaults() -> None:
    policy = InvalidMovePolicy()
    assert policy.retries == 2 and policy.penalty == -1.0
    assert InvalidMovePolicy(retries=0, penalty=3).penalty == 3
    assert InvalidMovePolicy(penalty=np.float64(-0.5)).penalty == -0.5


class _CallableScript(_Script):
    """A text player that is also callable: it must still be asked in text."""

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        raise AssertionError("a text player was driven as a strategy")


async def test_aplay_asks_a_callable_text_player_in_text() -> None:
    player = _CallableScript(["x"])
    transcript = await aplay(Sequential(), [EquilibriumPlay(), player])
    assert transcript.records[-1].text == "x" and len(player.seen) == 1
    with pytest.raises(GameError, match="answers in text: use aplay"):
        play(Sequential(), [EquilibriumPlay(), _CallableScript(["x"])])


@dataclass(frozen=True)
class _HugeMovesState(SequentialState):
    """A state whose move list is too large to list: legality comes from is_legal alone."""

    def legal_actions(self) -> tuple[Action, ...]:
        raise AssertionError("legal_actions listed on a submit")

    def is_legal(self, action: Action) -> bool:
        return action in super().legal_actions()

    def apply(self, action: Action) -> State:
        return _HugeMovesState(self.game, (*self.history, str(action)))


def test_submit_checks_legality_through_is_legal() -> None:
    class Huge(Sequential):
        def new_initial_state(self) -> _HugeMovesState:
            return _HugeMovesState(self)

        def parse_move(self, text: str, state: State) -> Action | MoveError:
            return text.strip()

    episode = Episode(Huge())
    assert episode.submit("C").reask  # parsed, but not legal: re-asked
    assert episode.submit("A").accepted and episode.submit("x").accepted and episode.done


def test_the_package_docstring_runs() -> None:
    import doctest

    import gtalign.envs

    result = doctest.testmod(gtalign.envs)
    assert result.attempted >= 3 and result.failed == 0


@pytest.mark.parametrize("name", ["prisoners-dilemma", "bargaining", "signaling", "spence", "beer-quiche"])
def test_every_registered_game_plays_and_replays(name: str) -> None:
    from gtalign import REGISTRY

    assert name in REGISTRY.names("game")
    game = REGISTRY.create("game", name)
    assert isinstance(game, Game)
    transcript = play(game, [EquilibriumPlay(), EquilibriumPlay()], seed=3)
    assert transcript.forfeit is None and replay(game, transcript) == transcript.payoffs
    assert distance_from_equilibrium(game, transcript, 0) == 0.0


def test_an_answer_that_echoes_its_prompt_is_refused_not_read_as_a_move() -> None:
    """SmolLM2 answered the dilemma's prompt with its first sentences ('... chooses C (cooperate'),
    which the dilemma's parser reads as C; the episode refuses the echo instead."""
    episode = Episode(Sequential())
    prompt = episode.observation()  # "Toy game, you are player 0. Moves so far: none. Answer A or B."
    echo = prompt.split("Answer")[0] + "Answer A"
    assert Sequential().parse_move("A", episode.state) == "A"
    outcome = episode.submit(echo)
    assert outcome.reask and 'repeats the prompt ("toy game, you are player 0. moves so far: none.' in outcome.record.error
    assert episode.submit("A").accepted
    assert _echo_run(prompt, ECHO_WORDS - 1) == ""  # nine words of the prompt in a row are not an echo
    assert _echo_run(prompt, ECHO_WORDS) != ""


def _echo_run(prompt: str, n: int) -> str:
    from gtalign.envs._core import _echo

    return _echo("I think " + " ".join(prompt.split()[:n]) + " so A", prompt)


@given(answer=st.text(max_size=300), prompt=st.text(max_size=300))
def test_read_answer_never_raises(answer: str, prompt: str) -> None:
    state = Sequential().new_initial_state()
    result = read_answer(Sequential(), state, answer, observation=prompt)
    assert isinstance(result, MoveError) or result in state.legal_actions()


def test_the_echo_check_is_linear_on_a_huge_answer() -> None:
    """A 1 MB answer of prompt words in a non-echo order: checked (and refused by the parser) without a hang."""
    prompt = Episode(Sequential()).observation()
    words = prompt.split()
    answer = " ".join(words[i % 3] for i in range(200_000))
    assert isinstance(read_answer(Sequential(), Sequential().new_initial_state(), answer, observation=prompt), MoveError)


@pytest.mark.parametrize("name", ["prisoners-dilemma", "bargaining", "spence", "beer-quiche"])
@given(seed=st.integers(0, 2**31 - 1))
@settings(max_examples=15, deadline=None)
def test_a_transcript_survives_json_and_replays(name: str, seed: int) -> None:
    """to_json -> JSON text -> from_json gives back the same moves and payoffs, and replays to them."""
    import json

    from gtalign._registry import REGISTRY
    from gtalign.envs import Transcript, play, replay
    from gtalign.envs._decisions import UniformMove

    game = REGISTRY.create("game", name)
    transcript = play(game, [UniformMove(), UniformMove()], seed=seed)
    data = json.loads(json.dumps(transcript.to_json()))
    back = Transcript.from_json({**data, "episode": 3})  # a log line's extra keys are ignored
    assert back.to_json() == data
    assert (back.game, back.seed, back.payoffs, back.forfeit) == (transcript.game, seed, transcript.payoffs, None)
    assert [r.player for r in back.records] == [r.player for r in transcript.records]
    assert replay(game, back) == transcript.payoffs
