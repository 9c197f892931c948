"""The sequential prisoner's dilemma: rules, prompts, parsing, fixed strategies, and the theory as oracles
(backward induction, the grim-trigger threshold, nashpy on the normal form, axelrod's strategies)."""

from __future__ import annotations

import doctest
import itertools
import json
import math
import string
import warnings
from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gtalign._registry import REGISTRY
from gtalign.envs import (
    CHANCE,
    TERMINAL,
    Episode,
    EquilibriumPlay,
    GameError,
    InvalidMovePolicy,
    MoveError,
    Strategy,
    aplay,
    distance_from_equilibrium,
    play,
    replay,
)
from gtalign.envs import _dilemma
from gtalign.envs._dilemma import (
    DILEMMA_STRATEGIES,
    AlwaysCooperate,
    AlwaysDefect,
    GrimTrigger,
    PrisonersDilemma,
    RandomMove,
    TitForTat,
    backward_induction,
    continuation_value,
    grim_trigger_is_equilibrium,
    grim_trigger_threshold,
    is_subgame_perfect,
    one_shot_deviation_gain,
)


@pytest.fixture(scope="module")
def axl() -> ModuleType:
    """axelrod, imported once: its import inspects the source of its ~240 strategies (about 20 s here)."""
    return pytest.importorskip("axelrod")


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def payoffs(draw: st.DrawFn) -> tuple[float, float, float, float]:
    """Random valid (T, R, P, S): T > R > P > S and 2R > T + S, each gap at least 0.01."""
    s = draw(st.floats(-10, 10))
    p = s + draw(st.floats(0.01, 10))
    r = p + draw(st.floats(0.01, 10))
    t = r + draw(st.floats(0.01, 0.99)) * (r - s)  # 2R > T + S  <=>  T - R < R - S
    assume(t > r > p > s and 2 * r > t + s)
    return (t, r, p, s)


def dilemma(tpl: tuple[float, float, float, float], **kwargs: object) -> PrisonersDilemma:
    t, r, p, s = tpl
    return PrisonersDilemma(T=t, R=r, P=p, S=s, **kwargs)  # type: ignore[arg-type]


def run(game: PrisonersDilemma, moves: str) -> _dilemma.DilemmaState:
    state = game.new_initial_state()
    for move in moves:
        state = state.apply(move)
    return state


# Parameters.


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"T": 3, "R": 3}, "T > R > P > S, got T=3, R=3, P=1, S=0"),
        ({"P": -1, "S": 0}, "got T=5, R=3, P=-1, S=0"),
        ({"T": 7}, "2R > T + S"),
        ({"T": math.inf}, "T must be a finite number, got inf"),
        ({"R": True}, "R must be a finite number, got True"),
        ({"discount": 0}, "discount must be in (0, 1], got 0"),
        ({"discount": 1.5}, "got 1.5"),
        ({"rounds": 0}, "rounds must be a positive integer or None"),
        ({"rounds": 2.5}, "got 2.5"),
        ({"rounds": None}, "discount must be below 1"),
        ({"invalid_moves": 2}, "invalid_moves must be an InvalidMovePolicy or a mapping, got 2"),
        ({"invalid_moves": {"retry": 1}}, "invalid_moves has unknown keys ['retry']"),
    ],
)
def test_bad_parameters_are_refused_naming_the_value(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(GameError) as err:
        PrisonersDilemma(**kwargs)  # type: ignore[arg-type]
    assert needle in str(err.value)


def test_params_are_json_ready_and_rebuild_the_game() -> None:
    game = PrisonersDilemma(T=6, R=4, P=np.float64(1.5), S=-1, discount=0.9, rounds=None,
                            invalid_moves=InvalidMovePolicy(retries=0, penalty=-2))
    params = json.loads(json.dumps(game.params()))
    assert params == {"T": 6.0, "R": 4.0, "P": 1.5, "S": -1.0, "discount": 0.9, "rounds": None,
                      "invalid_moves": {"retries": 0, "penalty": -2.0}}
    assert PrisonersDilemma.from_params(params) == game
    with pytest.raises(GameError, match="unknown prisoner's dilemma parameters \\['delta'\\]"):
        PrisonersDilemma.from_params({"delta": 0.9})


def test_the_registry_builds_the_game() -> None:
    assert REGISTRY.create("game", "prisoners-dilemma", rounds=2) == PrisonersDilemma(rounds=2)


def test_threshold_formula_and_its_validation() -> None:
    assert grim_trigger_threshold(5, 3, 1, 0) == 0.5
    assert grim_trigger_threshold(4, 3, 2, 0) == 0.5
    with pytest.raises(GameError, match="got T=1, R=3"):
        grim_trigger_threshold(1, 3, 2, 0)


# Rules, returns, observations.


def test_sequential_rounds_and_discounted_returns() -> None:
    game = PrisonersDilemma(rounds=2, discount=0.5)
    state = game.new_initial_state()
    assert (state.current_player, state.legal_actions()) == (0, ("C", "D"))
    state = state.apply("D")
    assert state.current_player == 1 and state.returns() == (0.0, 0.0)
    state = state.apply("C")  # round 1: T, S in full
    assert state.returns() == (5.0, 0.0) and state.current_player == 0
    state = state.apply("C").apply("C")  # round 2: R, R at half weight
    assert state.is_terminal and state.returns() == (6.5, 1.5) and state.legal_actions() == ()
    with pytest.raises(GameError, match="'C' is not a legal move here \\(the game is over\\)"):
        state.apply("C")
    with pytest.raises(GameError, match="'X' is not a legal move here \\(player 0 moves\\)"):
        game.new_initial_state().apply("X")


def test_infinite_game_has_a_chance_node_after_each_round_and_undiscounted_returns() -> None:
    game = PrisonersDilemma(rounds=None, discount=0.75)
    state = run(game, "CC")
    assert state.current_player == CHANCE and state.chance_outcomes() == (("continue", 0.75), ("stop", 0.25))
    assert state.apply("continue").current_player == 0
    later = run(game, "CC").apply("continue").apply("D").apply("C")
    assert later.returns() == (3.0 + 5.0, 3.0 + 0.0)  # no weights: nature's stops do the discounting
    assert later.apply("stop").is_terminal
    with pytest.raises(GameError, match="nature moves"):
        state.apply("C")


def test_expected_payoff_of_the_infinite_game_is_the_discounted_sum() -> None:
    # TFT (player 0) against always-defect: S, then P every later round: S + d P / (1 - d) in expectation.
    game = PrisonersDilemma(rounds=None, discount=0.5)
    exact = continuation_value(game.new_initial_state(), (TitForTat(), AlwaysDefect()))
    assert exact == pytest.approx((0 + 0.5 * 1 / 0.5, 5 + 0.5 * 1 / 0.5))
    sampled = np.array([play(game, [TitForTat(), AlwaysDefect()], seed=k).payoffs for k in range(600)])
    # per-episode sd of player 1's payoff is about 1.4; 600 episodes: standard error about 0.06
    assert sampled.mean(axis=0) == pytest.approx(exact, abs=0.3)


def test_observation_is_a_prompt_with_the_numbers_the_history_the_round_and_the_answer_format() -> None:
    game = PrisonersDilemma(T=7, R=4, P=2, S=-1, rounds=3)
    state = run(game, "CDD")  # round 1 (C, D); round 2: player 0 chose D
    second = state.observation(1)
    for needle in ["4 points each", "2 points each", "7 points for the one who chose D",
                   "-1 points for the one who chose C",
                   "3 rounds", "second player", "Round 1: you D, other C, you scored 7",
                   "Round 2 of 3. The first player chose D this round. Your move.",
                   "Answer with one letter: C to cooperate or D to defect"]:
        assert needle in second, needle
    first = state.observation(0)
    assert "Round 1: you C, other D, you scored -1" in first
    assert "You chose D this round. Waiting for the other player." in first and "Your move" not in first
    assert "Your total so far: -1; the other player's: 7." in first
    assert "over" in run(game, "CCCCCC").observation(0)
    infinite = PrisonersDilemma(rounds=None, discount=0.8)
    assert "continues with probability 0.8" in infinite.new_initial_state().observation(0)
    assert "count 0.9^(k-1) times" in PrisonersDilemma(rounds=3, discount=0.9).new_initial_state().observation(0)
    assert "1 point each" in PrisonersDilemma().new_initial_state().observation(0)
    with pytest.raises(GameError, match="player must be 0 or 1, got 2"):
        state.observation(2)


def test_player_1_is_not_shown_a_move_player_0_has_not_made() -> None:
    game = PrisonersDilemma(rounds=2)
    state = run(game, "CD")
    assert "this round" not in state.observation(1) and "Waiting for the other player" in state.observation(1)


# Parsing.


@pytest.mark.parametrize(
    ("text", "move"),
    [
        ("C", "C"), ("d", "D"), (" D\n", "D"), ("Cooperate", "C"), ("DEFECT", "D"), ("I will defect.", "D"),
        ("My answer: cooperate", "C"), ("**D**", "D"), ("'C'", "C"), ("(c)", "C"), ("co-operate!", "C"),
        ("I'd defect", "D"), ("I'd cooperate", "C"), ("Defection it is", "D"), ("I am cooperating", "C"),
        ("Answer: D", "D"),
    ],
)
def test_parse_accepts_a_range_of_answers(text: str, move: str) -> None:
    game = PrisonersDilemma()
    assert game.parse_move(text, game.new_initial_state()) == move


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("C or D", "names both moves (cooperate as 'c', defect as 'd')"),
        ("I cooperate, you defect", "names both moves (cooperate as 'cooperate', defect as 'defect')"),
        ("", "names no move"),
        ("maybe", "names no move"),
        ("Cat", "names no move"),
        ("uncooperative", "names no move"),
        ("I will not defect", "negates a move ('not')"),
        ("don't cooperate", "negates a move (\"don't\")"),
        ("I wouldn\u2019t defect.", "negates a move (\"wouldn't\")"),  # a typographic apostrophe, as models write it
        ("I don\u2019t want to cooperate", "negates a move (\"don't\")"),
    ],
)
def test_parse_refuses_ambiguous_answers_saying_why(text: str, needle: str) -> None:
    game = PrisonersDilemma()
    result = game.parse_move(text, game.new_initial_state())
    assert isinstance(result, MoveError) and needle in result.reason


def test_parse_where_no_player_moves_and_on_non_text() -> None:
    game = PrisonersDilemma(rounds=1)
    over = run(game, "CC")
    assert game.parse_move("C", over) == MoveError("the game is over: no move is expected")
    not_text = game.parse_move(None, game.new_initial_state())  # type: ignore[arg-type]
    assert not_text == MoveError("the answer is not text (got NoneType)")
    chance = run(PrisonersDilemma(rounds=None, discount=0.5), "CC")
    assert game.parse_move("stop", chance) == "stop" and isinstance(game.parse_move("C", chance), MoveError)


@FAST
@given(st.text())
def test_parse_never_raises_and_is_case_insensitive(text: str) -> None:
    game = PrisonersDilemma()
    state = game.new_initial_state()
    result = game.parse_move(text, state)
    assert result in ("C", "D") or isinstance(result, MoveError)
    swap = str.maketrans(string.ascii_letters, string.ascii_lowercase.upper() + string.ascii_lowercase)
    assert game.parse_move(text.translate(swap), state) == result


_NOT_WORDS = st.text(st.sampled_from(string.digits + string.whitespace + string.punctuation.replace("'", "")))


@FAST
@given(_NOT_WORDS, st.sampled_from(["C", "c", "D", "cooperate", "Defect", "cooperation", "defecting"]), _NOT_WORDS)
def test_a_single_move_word_among_non_words_is_that_move(before: str, word: str, after: str) -> None:
    game = PrisonersDilemma()
    expected = "C" if word.lower().startswith("c") else "D"
    assert game.parse_move(f"{before} {word} {after}", game.new_initial_state()) == expected


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.text(max_size=30))
def test_parse_of_a_huge_repetition_is_the_parse_of_one_copy(text: str) -> None:
    game = PrisonersDilemma()
    state = game.new_initial_state()
    huge = (text + " ") * (250_000 // (len(text) + 1) + 1)
    assert game.parse_move(huge, state) == game.parse_move(text + " ", state)


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("x " * 500_000 + "I defect", "D"),
        ("c" * 1_000_000, "names no move"),
        ("C D " * 250_000, "names both moves"),
        ("'" * 1_000_000, "names no move"),
        ("cooperat" + "e" * 1_000_000, "C"),
        ("\u00e9" * 1_000_000, "names no move"),
    ],
)
def test_parse_of_one_megabyte(text: str, outcome: str) -> None:
    game = PrisonersDilemma()
    result = game.parse_move(text, game.new_initial_state())
    if isinstance(result, MoveError):
        assert outcome in result.reason and len(result.reason) < 200
    else:
        assert result == outcome


@FAST
@given(st.lists(st.sampled_from("CD"), max_size=12), st.none() | st.integers(1, 4))
def test_format_move_round_trips_at_every_state(moves: list[str], rounds: int | None) -> None:
    game = PrisonersDilemma(rounds=rounds, discount=0.9)
    state = game.new_initial_state()
    for move in moves:
        if state.current_player == CHANCE:
            state = state.apply("continue")
        if state.is_terminal:
            break
        for action in state.legal_actions():
            assert game.parse_move(game.format_move(action, state), state) == action
        state = state.apply(move)
    with pytest.raises(GameError, match="'X' is not a legal move here"):
        game.format_move("X", game.new_initial_state())


# Episodes: re-ask and forfeit.


def test_invalid_answers_are_reasked_then_accepted_and_recorded() -> None:
    game = PrisonersDilemma(rounds=1, invalid_moves=InvalidMovePolicy(retries=2, penalty=-5))
    episode = Episode(game, seed=0)
    out = episode.submit("C or D?")
    assert out.reask and not out.accepted and episode.to_move == 0
    assert "not a legal move: the answer names both moves" in episode.observation()
    assert episode.submit("hmm").reask
    assert episode.submit("I cooperate").accepted
    episode.submit("defect")
    t = episode.transcript()
    records = [(r.player, r.action, r.attempt) for r in t.records]
    assert records == [(0, None, 0), (0, None, 1), (0, "C", 2), (1, "D", 0)]
    assert "names no move" in t.invalid[1].error
    assert t.payoffs == (0.0, 5.0) and t.forfeit is None and replay(game, t) == t.payoffs


def test_an_invalid_answer_past_the_retries_forfeits_with_the_penalty() -> None:
    game = PrisonersDilemma(rounds=3, invalid_moves=InvalidMovePolicy(retries=1, penalty=-4))
    episode = Episode(game, seed=1)
    for answer in ["C", "C", "D"]:
        episode.submit(answer)
    assert episode.submit("I will not defect").reask
    out = episode.submit("")
    assert out.forfeit and out.done and episode.done
    t = episode.transcript()
    assert t.forfeit == 1 and t.payoffs == (3.0 + 0.0, 3.0 - 4.0)  # round 1 accrued; the pending D counts nothing
    errors = [r.error.split(" (")[0] for r in t.invalid]
    assert errors == ["the answer negates a move", "the answer names no move; answer C"]
    assert replay(game, t) == t.payoffs
    with pytest.raises(GameError, match="the episode is over"):
        episode.submit("C")


async def test_a_text_player_through_aplay() -> None:
    class Scripted:
        name = "scripted"

        def __init__(self) -> None:
            self.answers = iter(["Let me think: C or D?", "I cooperate.", "Defect!"])
            self.prompts: list[str] = []

        async def answer(self, observation: str) -> str:
            self.prompts.append(observation)
            return next(self.answers)

    model = Scripted()
    game = PrisonersDilemma(rounds=2)
    t = await aplay(game, [model, TitForTat()], seed=3)
    assert t.actions == ("C", "C", "D", "C") and t.payoffs == (3.0 + 5.0, 3.0 + 0.0)
    assert len(t.invalid) == 1 and "Your last answer was not a legal move" in model.prompts[1]


# Fixed strategies.


def test_the_strategy_table() -> None:
    assert set(DILEMMA_STRATEGIES) == {"always-cooperate", "always-defect", "tit-for-tat", "grim-trigger", "random",
                                       "equilibrium"}
    for name, strategy in DILEMMA_STRATEGIES.items():
        assert strategy.name == name and isinstance(strategy, Strategy)
    with pytest.raises(GameError, match="p must be a probability in \\[0, 1\\], got 1.5"):
        RandomMove(1.5)


@pytest.mark.slow  # importing axelrod
@FAST
@given(st.lists(st.tuples(st.sampled_from("CD"), st.sampled_from("CD")), max_size=8), st.sampled_from([0, 1]),
       st.sampled_from("CD"))
def test_tit_for_tat_and_grim_trigger_move_as_axelrods(axl: ModuleType, rounds: list[tuple[str, str]], seat: int,
                                                       first: str) -> None:
    # as the second player the first player's move of this round is on the board too: the classic strategies
    # (like axelrod's, which cannot see it) answer completed rounds only
    game = PrisonersDilemma(rounds=10)
    state = run(game, "".join(a + b for a, b in rounds) + (first if seat == 1 else ""))
    for ours, theirs in [(TitForTat(), axl.TitForTat()), (GrimTrigger(), axl.Grudger())]:
        other = axl.Cooperator()
        for moves in rounds:
            theirs.update_history(axl.Action.from_char(moves[seat]), axl.Action.from_char(moves[1 - seat]))
            other.update_history(axl.Action.from_char(moves[1 - seat]), axl.Action.from_char(moves[seat]))
        assert ours(state, np.random.default_rng(0)) == str(theirs.strategy(other)), (ours.name, rounds, seat)


_DETERMINISTIC = ["tit-for-tat", "grim-trigger", "always-cooperate", "always-defect"]


@pytest.mark.slow  # importing axelrod
@FAST
@given(payoffs(), st.integers(1, 8), st.sampled_from(_DETERMINISTIC), st.sampled_from(_DETERMINISTIC))
def test_a_match_is_axelrods_match(axl: ModuleType, tpl: tuple[float, float, float, float], turns: int,
                                   name0: str, name1: str) -> None:
    classes = {"tit-for-tat": axl.TitForTat, "grim-trigger": axl.Grudger, "always-cooperate": axl.Cooperator,
               "always-defect": axl.Defector}
    t, r, p, s = tpl
    ours = play(dilemma(tpl, rounds=turns), [DILEMMA_STRATEGIES[name0], DILEMMA_STRATEGIES[name1]], seed=0)
    match = axl.Match((classes[name0](), classes[name1]()), turns=turns, game=axl.Game(r=r, s=s, t=t, p=p))
    theirs = match.play()
    assert ours.actions == tuple(str(a) for pair in theirs for a in pair)
    assert ours.payoffs == pytest.approx(tuple(float(x) for x in match.final_score()))


def test_random_move_uses_the_players_generator() -> None:
    game = PrisonersDilemma(rounds=200)
    a = play(game, [RandomMove(0.3), AlwaysCooperate()], seed=7)
    assert a == play(game, [RandomMove(0.3), AlwaysCooperate()], seed=7)
    assert a.actions != play(game, [RandomMove(0.3), AlwaysCooperate()], seed=8).actions
    share = a.actions[0::2].count("C") / 200
    assert 0.2 < share < 0.4
    assert set(play(game, [RandomMove(0.0), RandomMove(1.0)], seed=1).actions) == {"C", "D"}
    assert set(play(game, [RandomMove(0.0), RandomMove(0.0)], seed=1).actions) == {"D"}


def test_the_players_strategies_never_change_natures_draws() -> None:
    game = PrisonersDilemma(rounds=None, discount=0.9)
    for seed in range(5):
        lengths = {len(play(game, pair, seed=seed).records) for pair in
                   [(AlwaysCooperate(), AlwaysDefect()), (RandomMove(), RandomMove(0.9)), (TitForTat(), GrimTrigger())]}
        assert len(lengths) == 1


@FAST
@given(st.sampled_from(sorted(DILEMMA_STRATEGIES)), st.sampled_from(sorted(DILEMMA_STRATEGIES)),
       st.integers(0, 2**32 - 1), payoffs(), st.sampled_from([None, 1, 4]), st.floats(0.3, 0.95))
def test_transcripts_replay_to_the_same_payoffs(name0: str, name1: str, seed: int,
                                                tpl: tuple[float, float, float, float], rounds: int | None,
                                                discount: float) -> None:
    game = dilemma(tpl, rounds=rounds, discount=discount)
    t = play(game, [DILEMMA_STRATEGIES[name0], DILEMMA_STRATEGIES[name1]], seed=seed)
    assert replay(game, t) == t.payoffs
    assert t == play(game, [DILEMMA_STRATEGIES[name0], DILEMMA_STRATEGIES[name1]], seed=seed)
    assert PrisonersDilemma.from_params(t.params) == game
    # independently: sum the stage payoffs of the recorded moves
    moves = [a for a in t.actions if a in ("C", "D")]
    table = {("C", "C"): (tpl[1], tpl[1]), ("C", "D"): (tpl[3], tpl[0]), ("D", "C"): (tpl[0], tpl[3]),
             ("D", "D"): (tpl[2], tpl[2])}
    total = [0.0, 0.0]
    for k in range(0, len(moves), 2):
        weight = 1.0 if rounds is None else discount ** (k // 2)
        for i in (0, 1):
            total[i] += weight * table[moves[k], moves[k + 1]][i]
    assert t.payoffs == pytest.approx(tuple(total))


# Theory as oracles.


@FAST
@given(payoffs(), st.integers(1, 3), st.floats(0.05, 1.0))
def test_backward_induction_gives_mutual_defection_in_finite_games(tpl: tuple[float, float, float, float],
                                                                   rounds: int, discount: float) -> None:
    game = dilemma(tpl, rounds=rounds, discount=discount)
    spe = backward_induction(game)
    assert spe.path == ("D",) * (2 * rounds) and spe.unique
    value = sum(discount**k * tpl[2] for k in range(rounds))
    assert spe.values == pytest.approx((value, value))
    assert set(spe.policy.values()) == {"D"} and len(spe.policy) == sum(3 * 4**k for k in range(rounds))


def test_backward_induction_of_the_one_shot_game_and_its_limits() -> None:
    spe = backward_induction(PrisonersDilemma(rounds=1))
    assert spe.path == ("D", "D") and spe.values == (1.0, 1.0) and spe.unique
    with pytest.raises(GameError, match="needs a finite horizon"):
        backward_induction(PrisonersDilemma(rounds=None, discount=0.9))
    with pytest.raises(GameError, match="rounds=9 > max_rounds=8"):
        backward_induction(PrisonersDilemma(rounds=9))


def _sequential_normal_form(game: PrisonersDilemma) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """The one-shot sequential game in normal form, by walking its states: player 1's strategies
    are its replies (to C, to D)."""
    rows, cols = ["C", "D"], ["".join(p) for p in itertools.product("CD", repeat=2)]
    a, b = np.zeros((2, 4)), np.zeros((2, 4))
    for i, move0 in enumerate(rows):
        for j, reply in enumerate(cols):
            u = run(game, move0 + reply[rows.index(move0)]).returns()
            a[i, j], b[i, j] = u
    return a, b, rows, cols


@FAST
@given(payoffs())
def test_nashpy_stage_game_and_sequential_normal_form_give_mutual_defection(
    tpl: tuple[float, float, float, float],
) -> None:
    nashpy = pytest.importorskip("nashpy")
    game = dilemma(tpl, rounds=1)
    a, b = game.stage_matrices()
    found = list(nashpy.Game(np.array(a), np.array(b)).support_enumeration())
    assert len(found) == 1
    assert np.allclose(found[0][0], [0, 1]) and np.allclose(found[0][1], [0, 1])
    # the sequential game has more Nash equilibria (replies to C off the path), all with outcome (D, D)
    a, b, rows, cols = _sequential_normal_form(game)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the game is degenerate (ties off the path), which nashpy warns about
        seq = list(nashpy.Game(a, b).vertex_enumeration())
    assert seq
    for sigma0, sigma1 in seq:
        assert np.isclose(sigma0[rows.index("D")], 1)
        assert np.isclose(sum(q for q, c in zip(sigma1, cols) if c[1] == "D"), 1)  # replies D to D


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payoffs(), st.floats(0.01, 0.99))
def test_grim_trigger_is_an_equilibrium_iff_discount_reaches_the_threshold(tpl: tuple[float, float, float, float],
                                                                            discount: float) -> None:
    threshold = grim_trigger_threshold(*tpl)
    assume(abs(discount - threshold) > 1e-6)
    assert grim_trigger_is_equilibrium(dilemma(tpl, rounds=None, discount=discount)) == (discount >= threshold)


def test_grim_trigger_at_the_threshold_and_in_finite_games() -> None:
    assert grim_trigger_is_equilibrium(PrisonersDilemma(rounds=None, discount=0.5))  # threshold of (5, 3, 1, 0)
    assert not grim_trigger_is_equilibrium(PrisonersDilemma(rounds=None, discount=0.49))
    assert not grim_trigger_is_equilibrium(PrisonersDilemma(rounds=3, discount=1.0))  # the last round unravels it


def test_the_classic_grudger_is_not_subgame_perfect() -> None:
    # It watches only the other's moves. After the first player defected twice, the second player does better
    # to cooperate once (S), leaving the first player's grudge unlit, and take T next round before mutual
    # defection: S + d T + d^2 P / (1 - d), against P / (1 - d) for defecting at once.
    game = PrisonersDilemma(rounds=None, discount=0.9)
    grudgers = (GrimTrigger(), GrimTrigger())
    node = run(game, "DC").apply("continue").apply("D")
    gain = continuation_value(node.apply("C"), grudgers)[1] - continuation_value(node.apply("D"), grudgers)[1]
    assert gain == pytest.approx((0 + 0.9 * 5 + 0.81 * 1 / 0.1) - 1 / 0.1)
    assert one_shot_deviation_gain(game, grudgers) == pytest.approx(gain)
    assert not is_subgame_perfect(game, grudgers)
    assert is_subgame_perfect(game, (GrimTrigger(strict=True), GrimTrigger(strict=True)))


def test_continuation_values_match_closed_forms() -> None:
    game = PrisonersDilemma(T=6, R=4, P=1, S=-2, rounds=None, discount=0.8)
    start = game.new_initial_state()
    assert continuation_value(start, (AlwaysCooperate(), AlwaysCooperate())) == pytest.approx((20, 20))
    assert continuation_value(start, (TitForTat(), AlwaysDefect())) == pytest.approx((-2 + 4, 6 + 4))
    # TFT against TFT after player 1 defected once: they alternate (C, D), (D, C), ... from round 2
    after = run(game, "CD").apply("continue")
    assert continuation_value(after, (TitForTat(), TitForTat())) == pytest.approx((-2 + (6 - 0.8 * 2) / 0.36,
                                                                                  6 + (-2 + 0.8 * 6) / 0.36))
    finite = PrisonersDilemma(rounds=3, discount=0.5)
    assert continuation_value(finite.new_initial_state(), (AlwaysCooperate(), AlwaysDefect())) == (0.0, 8.75)
    with pytest.raises(GameError, match="deterministic strategies"):
        continuation_value(start, (RandomMove(), AlwaysDefect()))


def _best_response_value(state: _dilemma.DilemmaState, opponent: Strategy, me: int, depth: int,
                         tail: tuple[Strategy, Strategy]) -> float:
    """Brute force: ``me`` picks every move of the next ``depth`` rounds against ``opponent``; after that
    (infinite games) both follow ``tail``."""
    who = state.current_player
    if who == TERMINAL:
        return state.returns()[me]
    if who == CHANCE:
        if len(state.history) >= depth:
            return continuation_value(state, tail)[me]
        p = dict(state.chance_outcomes())
        return p["continue"] * _best_response_value(state.apply("continue"), opponent, me, depth, tail) \
            + p["stop"] * state.returns()[me]
    if who != me:
        return _best_response_value(state.apply(opponent(state, np.random.default_rng(0))), opponent, me, depth, tail)
    return max(_best_response_value(state.apply(a), opponent, me, depth, tail) for a in state.legal_actions())


@FAST
@given(payoffs(), st.integers(1, 3), st.floats(0.05, 1.0), st.sampled_from([0, 1]))
def test_equilibrium_play_is_a_best_response_in_finite_games(tpl: tuple[float, float, float, float], rounds: int,
                                                              discount: float, me: int) -> None:
    game = dilemma(tpl, rounds=rounds, discount=discount)
    eq = EquilibriumPlay()
    value = continuation_value(game.new_initial_state(), (eq, eq))[me]
    best = _best_response_value(game.new_initial_state(), eq, me, rounds, (eq, eq))
    assert best == pytest.approx(value, abs=1e-9)
    assert is_subgame_perfect(game)


@FAST
@given(payoffs(), st.floats(0.05, 0.95), st.sampled_from([0, 1]))
def test_equilibrium_play_is_a_best_response_in_the_infinite_game(tpl: tuple[float, float, float, float],
                                                                   discount: float, me: int) -> None:
    game = dilemma(tpl, rounds=None, discount=discount)
    eq = EquilibriumPlay()
    assert is_subgame_perfect(game)
    value = continuation_value(game.new_initial_state(), (eq, eq))[me]
    # any plan for the first two rounds, equilibrium play after
    best = _best_response_value(game.new_initial_state(), eq, me, 2, (eq, eq))
    scale = max(abs(x) for x in tpl) / (1 - discount)
    assert best <= value + 1e-9 * scale
    expected = tpl[1] if discount >= grim_trigger_threshold(*tpl) else tpl[2]
    assert value == pytest.approx(expected / (1 - discount))


def test_equilibrium_action_by_horizon_and_discount() -> None:
    finite = PrisonersDilemma(rounds=3)
    assert {finite.equilibrium_action(run(finite, m)) for m in ["", "C", "CC", "CCC"]} == {"D"}
    patient, impatient = PrisonersDilemma(rounds=None, discount=0.6), PrisonersDilemma(rounds=None, discount=0.4)
    assert patient.equilibrium_action(patient.new_initial_state()) == "C"
    assert patient.equilibrium_action(run(patient, "C")) == "C"
    assert patient.equilibrium_action(run(patient, "D")) == "D"  # the second player punishes at once
    assert patient.equilibrium_action(run(patient, "CD").apply("continue")) == "D"
    assert impatient.equilibrium_action(impatient.new_initial_state()) == "D"
    at_threshold = PrisonersDilemma(rounds=None, discount=0.5)  # = (5 - 3) / (5 - 1): grim trigger still holds
    assert at_threshold.equilibrium_action(at_threshold.new_initial_state()) == "C"
    with pytest.raises(GameError, match="no player moves here"):
        patient.equilibrium_action(run(patient, "CC"))
    t = play(finite, [EquilibriumPlay(), AlwaysCooperate()], seed=0)
    assert distance_from_equilibrium(finite, t, 0) == 0.0 and distance_from_equilibrium(finite, t, 1) == 1.0


def test_module_docstring_examples() -> None:
    result = doctest.testmod(_dilemma, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
