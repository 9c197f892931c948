"""Decision points of the classic games and the payoff of a text answer at one (`gtalign.envs._decisions`).

Oracles: the one-shot deviation principle (with equilibrium opponents and continuation the
equilibrium move is the best move at every point, so its regret is 0), closed forms (grim trigger's
R / (1 - delta)), the forfeit rule (accrued payoff + penalty) and Bayes' rule for the receiver.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtalign._registry import REGISTRY
from gtalign.envs import (
    AlwaysDefect,
    Bargaining,
    EquilibriumPlay,
    GameError,
    GrimTrigger,
    InvalidMovePolicy,
    PrisonersDilemma,
    RandomBargainer,
    RandomMove,
    RandomPlay,
    TitForTat,
    beer_quiche,
    spence,
)
from gtalign.envs._decisions import (
    DecisionPoint,
    Mixed,
    UniformMove,
    answer_value,
    decision_points,
    default_behaviour,
    game_from_spec,
    move_values,
    payoff_range,
    restore,
    strategy_named,
)

GAMES = ("prisoners-dilemma", "bargaining", "signaling", "spence", "beer-quiche")
TOL = 1e-9
EQ = EquilibriumPlay()


def _game(name: str, **params):
    return REGISTRY.create("game", name, **params)


def _random_opponent(game):
    return {"prisoners-dilemma": RandomMove(), "bargaining": RandomBargainer()}.get(game.name, RandomPlay())


# Games with drawn parameters, beside the registered defaults.
dilemmas = st.builds(
    lambda rounds, discount, infinite: PrisonersDilemma(rounds=None if infinite else rounds,
                                                        discount=min(discount, 0.95) if infinite else discount),
    st.integers(1, 4), st.floats(0.3, 1.0), st.booleans(),
)
bargainings = st.builds(lambda d1, d2, horizon: Bargaining(d1, d2, horizon=horizon, max_rounds=12),
                        st.floats(0.1, 0.95), st.floats(0.1, 0.95), st.one_of(st.none(), st.integers(1, 6)))
any_game = st.one_of(st.sampled_from(GAMES).map(_game), dilemmas, bargainings,
                     st.builds(lambda p: beer_quiche(p), st.floats(0.55, 0.95)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(game=any_game, seat=st.integers(0, 1), seed=st.integers(0, 2**16))
def test_equilibrium_move_is_best_against_equilibrium_play(game, seat, seed):
    points = decision_points(game, seat=seat, opponent=EQ, episodes=3, seed=seed)
    assert points
    for point in points:
        values = move_values(game, point, opponent=EQ, continuation=EQ)
        assert values.exact  # equilibrium play never draws: chance is enumerated
        best = max(values.learner.values())
        scale = 1.0 + max(abs(v) for v in values.learner.values())
        assert values.learner[point.equilibrium] >= best - TOL * scale
        outcome = answer_value(game, point, point.equilibrium_text, opponent=EQ, continuation=EQ, values=values)
        assert outcome.valid and outcome.is_equilibrium and outcome.distance == 0.0
        assert outcome.regret is not None and abs(outcome.regret) <= TOL * scale


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(GAMES), seat=st.integers(0, 1), seed=st.integers(0, 2**16), random_opponent=st.booleans())
def test_history_replays_to_the_observation_also_through_json(name, seat, seed, random_opponent):
    game = _game(name)
    opponent = _random_opponent(game) if random_opponent else EQ
    for point in decision_points(game, seat=seat, opponent=opponent, episodes=3, seed=seed):
        assert restore(game, point.history).observation(seat) == point.observation
        back = DecisionPoint.from_json(json.loads(json.dumps(point.to_json())))
        assert back == point
        rebuilt = game_from_spec(back.game, back.params)
        assert rebuilt == game
        state = restore(rebuilt, back.history)
        assert state.current_player == seat and state.observation(seat) == point.observation
        assert rebuilt.equilibrium_action(state) == point.equilibrium


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(GAMES), seat=st.integers(0, 1), seed=st.integers(0, 2**16),
       penalty=st.floats(-5.0, 2.0), text=st.sampled_from(["", "??", "hmm, let me think"]))
def test_an_invalid_answer_forfeits_accrued_plus_penalty(name, seat, seed, penalty, text):
    game = _game(name, invalid_moves=InvalidMovePolicy(penalty=penalty))
    for point in decision_points(game, seat=seat, opponent=EQ, episodes=2, seed=seed):
        outcome = answer_value(game, point, text, opponent=EQ)
        accrued = restore(game, point.history).returns()
        assert not outcome.valid and outcome.forfeit and outcome.action is None and outcome.error
        assert outcome.distance is None and not outcome.is_equilibrium
        assert outcome.payoff == pytest.approx(accrued[seat] + penalty, abs=1e-12)
        if not (game.name == "signaling" and seat == 1):  # the receiver's: over the types (see the receiver test)
            assert outcome.opponent_payoff == pytest.approx(accrued[1 - seat], abs=1e-12)
        assert outcome.regret == pytest.approx(outcome.best - outcome.payoff)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(GAMES), seat=st.integers(0, 1), seed=st.integers(0, 2**16))
def test_points_and_values_are_deterministic_per_seed(name, seat, seed):
    game = _game(name)
    opponent = _random_opponent(game)
    first = decision_points(game, seat=seat, opponent=opponent, episodes=3, seed=seed)
    assert first == decision_points(game, seat=seat, opponent=opponent, episodes=3, seed=seed)
    point = first[-1]
    once = answer_value(game, point, point.equilibrium_text, opponent=opponent, continuation=default_behaviour())
    again = answer_value(game, point, point.equilibrium_text, opponent=opponent, continuation=default_behaviour())
    assert once == again


def test_another_seed_gives_other_episodes():
    game = _game("beer-quiche")
    runs = {decision_points(game, seat=1, opponent=RandomPlay(), episodes=6, seed=s) for s in range(4)}
    assert len(runs) > 1


def test_decision_index_history_and_dedup():
    game = PrisonersDilemma(rounds=3)
    points = decision_points(game, seat=1, opponent=AlwaysDefect(), behaviour=EQ, episodes=4, seed=0)
    assert [p.decision for p in points] == [0, 1, 2] * 4
    assert points[1].history == ("D", "D", "D")
    assert points[0].opponent == "always-defect" and points[0].behaviour == "equilibrium"
    unique = decision_points(game, seat=1, opponent=AlwaysDefect(), behaviour=EQ, episodes=4, seed=0, unique=True)
    assert [p.history for p in unique] == [p.history for p in points[:3]]


def test_dilemma_values_by_hand():
    game = PrisonersDilemma(rounds=2)  # T, R, P, S = 5, 3, 1, 0
    point = decision_points(game, seat=1, opponent=TitForTat(), behaviour=EQ, episodes=1, seed=0)[0]
    assert point.history == ("C",)
    # C now (R = 3), then tit-for-tat cooperates and the continuation defects (T = 5): 8;
    # D now (T = 5), then tit-for-tat defects and so does the continuation (P = 1): 6.
    assert move_values(game, point, opponent=TitForTat()).learner == {"C": 8.0, "D": 6.0}
    outcome = answer_value(game, point, "D, defect", opponent=TitForTat())
    assert (outcome.payoff, outcome.best, outcome.regret, outcome.is_equilibrium) == (6.0, 8.0, 2.0, True)
    assert answer_value(game, point, "I cooperate", opponent=TitForTat()).regret == 0.0


def test_infinite_dilemma_is_enumerated_exactly():
    game = PrisonersDilemma(rounds=None, discount=0.8)  # above the threshold 0.5: grim trigger
    grim = GrimTrigger(strict=True)
    point = decision_points(game, seat=0, opponent=grim, behaviour=EQ, episodes=1, seed=3)[0]
    assert point.history == ()
    values = move_values(game, point, opponent=grim, continuation=grim).learner
    assert values["C"] == pytest.approx(3 / (1 - 0.8), rel=1e-9)  # R / (1 - delta)
    assert values["D"] == pytest.approx(1 / (1 - 0.8), rel=1e-9)  # grim defects from the first round's answer on


def test_random_opponents_are_sampled_with_common_draws():
    game = PrisonersDilemma(rounds=2)
    point = decision_points(game, seat=1, opponent=RandomMove(), behaviour=EQ, episodes=1, seed=0)[0]
    stage = 5.0 if point.history == ("C",) else 1.0  # D now against the first mover's C (T) or D (P)
    # round 2: the random first mover cooperates half the time, the continuation defects: T or P.
    many = answer_value(game, point, "D", opponent=RandomMove(), samples=2000)
    assert many.best is not None and many.payoff - stage == pytest.approx((5.0 + 1.0) / 2, abs=0.15)
    few = [answer_value(game, point, text, opponent=RandomMove(), samples=3) for text in ("D", "defect", "d")]
    assert len({o.payoff for o in few}) == 1  # the draws do not depend on the answer's text
    with pytest.raises(GameError, match="samples"):
        answer_value(game, point, "D", opponent=RandomMove(), samples=0)


def test_the_receiver_is_valued_over_what_it_cannot_see():
    game = beer_quiche(0.9)  # pooling on beer; retreat after beer
    points = decision_points(game, seat=1, opponent=EQ, behaviour=EQ, episodes=30, seed=0)
    weak = next(p for p in points if p.history[0] == "weak")
    strong = next(p for p in points if p.history[0] == "strong")
    assert weak.observation == strong.observation and weak.equilibrium == "retreat"
    for point in (weak, strong):  # the prior, since both types drink beer: retreat 0.9, duel 0.1
        values = move_values(game, point, opponent=EQ).learner
        assert values == pytest.approx({"retreat": 0.9, "duel": 0.1})
        assert answer_value(game, point, "retreat", opponent=EQ).regret == pytest.approx(0.0)
        forfeit = answer_value(game, point, "", opponent=EQ)  # the sender's cost of beer, over the types: 0.1 * 1
        assert (forfeit.payoff, forfeit.opponent_payoff) == pytest.approx((-1.0, -0.1))
    # against a type-revealing sender, Bayes puts all weight on the type the breakfast reveals
    honest = strategy_named(game, "honest")
    point = decision_points(game, seat=1, opponent=honest, behaviour=EQ, episodes=5, seed=1)[0]
    expected = {"duel": 1.0, "retreat": 0.0} if point.history[1] == "quiche" else {"duel": 0.0, "retreat": 1.0}
    assert move_values(game, point, opponent=honest).learner == pytest.approx(expected)


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(GAMES), seat=st.integers(0, 1), seed=st.integers(0, 2**16))
def test_payoff_range_holds_every_value(name, seat, seed):
    game = _game(name)
    low, high = payoff_range(game, seat)
    opponent = _random_opponent(game)
    for point in decision_points(game, seat=seat, opponent=opponent, episodes=2, seed=seed):
        values = move_values(game, point, opponent=opponent, samples=2)
        forfeit = answer_value(game, point, "", opponent=opponent, values=values).payoff
        assert all(low - TOL <= v <= high + TOL for v in [*values.learner.values(), forfeit])


def test_payoff_range_of_a_late_point_in_the_infinitely_repeated_dilemma_holds_its_values():
    """The infinitely repeated dilemma pays the rounds played so far plus the expected rest: deep in an
    episode both moves are worth far more than T / (1 - δ), so bounds fixed from the start would clip them
    (and a forfeit) all to the top of [0, 1]. Given the point's state, the bounds follow what has accrued."""
    from gtalign.envs import AlwaysCooperate

    game = PrisonersDilemma(discount=0.9, rounds=None)
    points = decision_points(game, seat=1, opponent=AlwaysCooperate(), behaviour=AlwaysCooperate(), episodes=40, seed=3)
    late = max(points, key=lambda p: len(p.history))
    assert len(late.history) >= 20  # C, C every round: 3 points a round for the learner
    values = move_values(game, late, opponent=AlwaysCooperate())
    forfeit = answer_value(game, late, "", opponent=AlwaysCooperate(), values=values).payoff
    low, high = payoff_range(game, 1, values.state)
    assert all(low - TOL <= v <= high + TOL for v in [*values.learner.values(), forfeit])
    assert max(values.learner.values()) > payoff_range(game, 1)[1]  # the point-free bound would not hold them
    assert (high - low) == pytest.approx(payoff_range(game, 1)[1] - payoff_range(game, 1)[0])  # the same width


def test_spence_payoff_range_by_hand():
    game = spence()  # sender: wage 1 or 2 minus 1*e or 0.5*e, e up to 3, so as low as 1 - 3 = -2
    assert game.invalid_moves.penalty == -3.0  # below every valid payoff: a forfeit never pays better
    assert payoff_range(game, 0) == (-3.0, 2.0)  # the forfeit, below the L type at e = 3 paid low
    assert payoff_range(game, 1) == (-3.0, 0.0)  # -(wage - productivity)^2 >= -1; the forfeit is -3
    assert payoff_range(PrisonersDilemma(rounds=2), 0) == (-1.0, 10.0)  # a forfeit at the start; T twice
    assert payoff_range(beer_quiche(), 0) == (-1.0, 3.0)


def test_behaviours_and_names():
    game = PrisonersDilemma(rounds=1)
    assert default_behaviour(0.25).name == "mix:0.25"
    assert strategy_named(game, "mix:0.3") == default_behaviour(0.3)
    assert Mixed(TitForTat(), AlwaysDefect(), 1.0).name == "mix(tit-for-tat,always-defect,1)"
    assert isinstance(strategy_named(game, "uniform"), UniformMove)
    assert strategy_named(game, "tit-for-tat") == TitForTat()
    assert strategy_named(game, "mine", {"mine": AlwaysDefect()}) == AlwaysDefect()
    for bad in ("os:system", "mix:2", "nobody"):
        with pytest.raises(GameError, match="valid"):
            strategy_named(game, bad)
    with pytest.raises(GameError):
        Mixed(EQ, UniformMove(), 1.5)


def test_bad_rows_are_refused_with_the_reason():
    game = PrisonersDilemma(rounds=2)
    point = decision_points(game, seat=0, opponent=EQ, episodes=1, seed=0)[1]
    data = point.to_json()
    with pytest.raises(GameError, match="'history'"):
        DecisionPoint.from_json({k: v for k, v in data.items() if k != "history"})
    with pytest.raises(GameError, match="not a legal move"):
        answer_value(game, DecisionPoint.from_json({**data, "history": ["D", "X"]}), "D", opponent=EQ)
    with pytest.raises(GameError, match="observation differs"):
        answer_value(game, DecisionPoint.from_json({**data, "observation": "old prompt"}), "D", opponent=EQ)
    with pytest.raises(GameError, match="player 1 moves"):
        answer_value(game, DecisionPoint.from_json({**data, "history": ["D"]}), "D", opponent=EQ)
    with pytest.raises(GameError, match="unknown game"):
        game_from_spec("os:system", {})
    with pytest.raises(GameError, match="other parameters"):
        game_from_spec("spence", {"theta_low": 1.0})  # a factory whose game reports other params
    with pytest.raises(GameError):
        decision_points(game, seat=2, opponent=EQ, episodes=1, seed=0)


def test_regret_is_never_negative_against_fixed_opponents():
    for name in GAMES:
        game = _game(name)
        for seat in (0, 1):
            for opponent in (_random_opponent(game), strategy_named(game, "uniform")):
                for point in decision_points(game, seat=seat, opponent=opponent, episodes=2, seed=5):
                    values = move_values(game, point, opponent=opponent, samples=2)
                    for action in list(values.learner)[:5]:
                        text = game.format_move(action, restore(game, point.history))
                        outcome = answer_value(game, point, text, opponent=opponent, values=values)
                        assert outcome.valid and outcome.regret >= -1e-12
                        assert outcome == answer_value(game, point, text, opponent=opponent, samples=2)
                        assert math.isclose(outcome.payoff, values.learner[action])


def test_an_answer_that_echoes_the_prompt_is_invalid_as_in_an_episode() -> None:
    """The reward reads answers as Episode.submit does: an echo of the prompt (which names every
    move) is a forfeit, not the first move it happens to name."""
    from gtalign.envs import EquilibriumPlay, PrisonersDilemma
    from gtalign.envs._decisions import answer_value, decision_points

    game = PrisonersDilemma(rounds=1)
    [point, *_] = decision_points(game, seat=1, opponent=EquilibriumPlay(), episodes=1, seed=0)
    echo = point.observation.split(" or D")[0]  # "You are playing a sequential prisoner's dilemma ... chooses C (cooperate)"
    assert game.parse_move(echo, game.new_initial_state()) == "C"  # what the parser alone would read
    outcome = answer_value(game, point, echo, opponent=EquilibriumPlay())
    assert not outcome.valid and "repeats the prompt" in outcome.error
    assert answer_value(game, point, "D", opponent=EquilibriumPlay()).valid


def test_a_spec_with_a_malformed_forfeit_policy_is_a_game_error():
    """Specs come from data (training rows): a bad invalid_moves mapping is a GameError the reward records
    as an unscored row, not a TypeError that stops training."""
    params = dict(PrisonersDilemma(rounds=2).params())
    with pytest.raises(GameError, match=r"invalid_moves has unknown keys \['retry'\]"):
        game_from_spec("prisoners-dilemma", {**params, "invalid_moves": {"retry": 1}})
