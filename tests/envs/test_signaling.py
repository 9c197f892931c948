"""The signaling game: rules, prompts, parsing, and its equilibria against closed forms and nashpy."""

from __future__ import annotations

import dataclasses
import doctest
import itertools
import json
import pickle
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gtalign._registry import REGISTRY
from gtalign.envs import Episode, EquilibriumPlay, GameError, InvalidMovePolicy, MoveError, Strategy, replay
from gtalign.envs import _signaling
from gtalign.envs._play import distance_from_equilibrium, play
from gtalign.envs._signaling import (
    SIGNALING_STRATEGIES,
    Signaling,
    SignalingState,
    beer_quiche,
    intuitive_criterion,
    normal_form,
    perfect_bayesian_equilibria,
    reference_equilibrium,
    spence,
    spence_pooling_outcomes,
    spence_separating_levels,
)

nashpy = pytest.importorskip("nashpy")

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A game with no pure-strategy PBE (found by search, confirmed independently below).
NO_PURE = Signaling(
    types=("a", "b"),
    prior=(0.5, 0.5),
    signals=("x", "y"),
    actions=("u", "v"),
    costs=((0, 0), (0, 0)),
    sender_payoffs=[[[-1, 1], [2, 0]], [[1, -2], [2, -1]]],
    receiver_payoffs=[[[0, -1], [2, 2]], [[-2, 0], [-2, 1]]],
    title="no pure equilibrium",
    story="",
)


# --- strategies of hypothesis ------------------------------------------------------------------


@st.composite
def small_games(draw: st.DrawFn, max_actions: int = 3) -> Signaling:
    """Random games with dyadic priors and integer payoffs, so nashpy's exact comparisons are exact."""
    n_types = draw(st.integers(2, 3))
    n_signals = draw(st.integers(2, 3))
    n_actions = draw(st.integers(2, max_actions))
    total = 4 if n_types == 2 else draw(st.sampled_from([4, 8]))
    cut = sorted(draw(st.lists(st.integers(1, total - 1), min_size=n_types - 1, max_size=n_types - 1, unique=True)))
    weights = [b - a for a, b in zip([0, *cut], [*cut, total])]
    pay = st.integers(-3, 3)
    return Signaling(
        types=tuple(f"t{i}" for i in range(n_types)),
        prior=tuple(w / total for w in weights),
        signals=tuple(f"s{i}" for i in range(n_signals)),
        actions=tuple(f"a{i}" for i in range(n_actions)),
        costs=[[draw(st.integers(0, 2)) for _ in range(n_signals)] for _ in range(n_types)],
        sender_payoffs=[[[draw(pay) for _ in range(n_actions)] for _ in range(n_signals)] for _ in range(n_types)],
        receiver_payoffs=[[[draw(pay) for _ in range(n_actions)] for _ in range(n_signals)] for _ in range(n_types)],
        title="random",
        story="",
    )


@st.composite
def spence_params(draw: st.DrawFn) -> dict:
    """Dyadic parameters: every payoff, cost and boundary the enumerator compares is exact."""
    theta_low = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))
    cost_high = draw(st.sampled_from([0.25, 0.5, 1.0]))
    step = draw(st.sampled_from([0.25, 0.5, 1.0]))
    e0 = draw(st.sampled_from([0.0, 0.5]))
    n = draw(st.integers(2, 7))
    return {
        "theta_low": theta_low,
        "theta_high": theta_low + draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0])),
        "prior_high": draw(st.sampled_from([0.25, 0.5, 0.75])),
        "cost_low": cost_high + draw(st.sampled_from([0.25, 0.5, 1.0, 2.0])),
        "cost_high": cost_high,
        "levels": tuple(e0 + step * i for i in range(n)),
    }


def _games() -> st.SearchStrategy[Signaling]:
    return st.one_of(st.just(Signaling()), st.just(beer_quiche()), spence_params().map(lambda p: spence(**p)), small_games())


def _outcome(e) -> tuple:
    return (e.sender, tuple(a for a, used in zip(e.receiver, e.on_path) if used))


def _outcomes(game: Signaling) -> set[tuple]:
    return {_outcome(e) for e in perfect_bayesian_equilibria(game, off_path="one")}


# --- parameters, validation, registry ------------------------------------------------------------


def test_default_is_spence_with_the_documented_payoffs() -> None:
    g = Signaling()
    assert g == spence() and g.types == ("L", "H") and g.prior == (0.5, 0.5)
    assert g.signals == ("0", "0.5", "1", "1.5", "2", "2.5", "3") and g.actions == ("low", "high")
    L, H, e15, low, high = 0, 1, 3, 0, 1
    assert g.sender_value(L, e15, high) == 2 - 1.0 * 1.5 and g.sender_value(H, e15, low) == 1 - 0.5 * 1.5
    assert g.receiver_value(L, e15, high) == -1 and g.receiver_value(H, e15, high) == 0 and g.receiver_value(L, 0, low) == 0


def test_beer_quiche_has_the_textbook_payoffs() -> None:
    g = beer_quiche()
    total = {(t, s, a): g.sender_value(*(g.types.index(t), g.signals.index(s), g.actions.index(a)))
             for t in g.types for s in g.signals for a in g.actions}
    assert total == {
        ("weak", "quiche", "retreat"): 3, ("weak", "quiche", "duel"): 1,
        ("weak", "beer", "retreat"): 2, ("weak", "beer", "duel"): 0,
        ("strong", "quiche", "retreat"): 2, ("strong", "quiche", "duel"): 0,
        ("strong", "beer", "retreat"): 3, ("strong", "beer", "duel"): 1,
    }
    receiver = {(t, a): g.receiver_value(g.types.index(t), 0, g.actions.index(a)) for t in g.types for a in g.actions}
    assert receiver == {("weak", "duel"): 1, ("weak", "retreat"): 0, ("strong", "duel"): 0, ("strong", "retreat"): 1}
    assert g.prior == pytest.approx((0.1, 0.9))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"prior": (0.5, 0.6)}, r"prior must sum to 1"),
        ({"prior": (1.0, 0.0)}, r"prior\['H'\] must be positive"),
        ({"prior": (0.5,)}, r"prior has 1 entries, expected 2 \(one per type: L, H\)"),
        ({"prior": {"L": 0.5, "M": 0.5}}, r"prior must have one key per type.*unknown: \['M'\], missing: \['H'\]"),
        ({"costs": ((0,) * 7, (0,) * 6)}, r"costs\['H'\] has 6 entries, expected 7"),
        ({"sender_payoffs": [[[1, 2]] * 7, [[1, 2]] * 6 + [[1]]]}, r"sender_payoffs\['H'\]\['3'\] has 1 entries, expected 2"),
        ({"receiver_payoffs": [[[1, True]] * 7] * 2}, r"receiver_payoffs\['L'\]\['0'\]\['high'\] must be a number, got bool"),
        ({"costs": [[float("nan")] * 7] * 2}, r"costs\['L'\]\['0'\] must be finite"),
        ({"actions": ("low", "LOW")}, r"actions repeats 'LOW'"),
        ({"signals": ("0", "0.0", "1", "2", "3", "4", "5")}, r"signals has '0' and '0.0', the same number"),
        ({"actions": ("low", " high")}, r"actions\[1\] must be a non-empty name"),
        ({"roles": ("worker",)}, r"roles must be 2 names"),
        ({"invalid_moves": {"retries": -1}}, r"retries must be a non-negative integer"),
    ],
)
def test_bad_parameters_are_refused_naming_the_key(change: dict, match: str) -> None:
    with pytest.raises(GameError, match=match):
        dataclasses.replace(Signaling(), **change)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cost_low": 0.5, "cost_high": 0.5}, r"cost_low > cost_high > 0 \(single crossing\)"),
        ({"theta_high": 1.0}, r"theta_high must exceed theta_low"),
        ({"prior_high": 1.0}, r"prior_high must be in \(0, 1\)"),
        ({"levels": (0, 1, 1)}, r"levels must be strictly increasing, got levels\[1\]=1.0, levels\[2\]=1.0"),
        ({"levels": (-1, 1)}, r"levels\[0\] must be non-negative"),
    ],
)
def test_bad_spence_parameters_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(GameError, match=match):
        spence(**kwargs)


@FAST
@given(_games())
def test_params_are_json_and_rebuild_the_game(game: Signaling) -> None:
    params = json.loads(json.dumps(game.params()))
    assert Signaling(**params) == game
    assert REGISTRY.create("game", "signaling", **params) == game
    assert pickle.loads(pickle.dumps(game)) == game  # for worker processes


def test_registry_names_build_the_two_games() -> None:
    assert REGISTRY.create("game", "signaling") == Signaling()
    assert REGISTRY.create("game", "beer-quiche") == beer_quiche()
    assert REGISTRY.create("game", "beer-quiche", prior_strong=0.5).prior == (0.5, 0.5)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(_signaling, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 4 and result.failed == 0


# --- Spence: the closed form as an oracle --------------------------------------------------------


def test_spence_default_equilibria_by_hand() -> None:
    g = Signaling()
    # (θH - θL)/c_L = 1, (θH - θL)/c_H = 2: separation at 1, 1.5 and 2, both boundaries included
    assert spence_separating_levels(1, 2, 1, 0.5, _signaling._SPENCE_LEVELS) == (1.0, 1.5, 2.0)
    assert _outcomes(g) == {
        (("0", "1"), ("low", "high")), (("0", "1.5"), ("low", "high")), (("0", "2"), ("low", "high")),
        (("0", "0"), ("low",)), (("0", "0"), ("high",)), (("0.5", "0.5"), ("high",)), (("1", "1"), ("high",)),
    }
    ref = reference_equilibrium(g)
    assert ref is not None and ref.kind == "separating" and ref.sender == ("0", "1")  # Riley: least-cost separation
    assert ref.receiver == ("low", "low", "high", "low", "low", "low", "low")


def test_reference_responses_off_the_path() -> None:
    # P(H) = 3/4: after an unused level both types would lose by it (equilibrium-dominated), so the
    # employer keeps the prior and pays high, except at 0.5, where high would tempt both types
    ref = reference_equilibrium(spence(prior_high=0.75))
    assert ref is not None and ref.sender == ("0", "1")
    assert ref.receiver == ("low", "low", "high", "high", "high", "high", "high")
    assert ref.beliefs[1] == (1.0, 0.0) and ref.beliefs[3] == (0.25, 0.75)


def test_spence_boundaries_on_a_finer_grid() -> None:
    levels = tuple(0.25 * i for i in range(13))  # 0 .. 3 by 0.25: 0.75 and 2.25 lie just outside [1, 2]
    g = spence(levels=levels)
    separating = {float(e.sender[1]) for e in perfect_bayesian_equilibria(g, off_path="one") if e.kind == "separating"}
    assert separating == {1.0, 1.25, 1.5, 1.75, 2.0} == set(spence_separating_levels(1, 2, 1, 0.5, levels))


@FAST
@given(spence_params())
def test_spence_equilibria_match_the_closed_form(p: dict) -> None:
    g = spence(**p)
    levels, e0 = p["levels"], p["levels"][0]
    gap = p["theta_high"] - p["theta_low"]
    literal = {e for e in levels if gap / p["cost_low"] <= e - e0 <= gap / p["cost_high"]}  # the formula
    assert set(spence_separating_levels(p["theta_low"], p["theta_high"], p["cost_low"], p["cost_high"], levels)) == literal
    outcomes = _outcomes(g)
    separating = {(float(s[0]), float(s[1])) for s, _ in outcomes if s[0] != s[1]}
    assert separating == {(e0, e) for e in literal}
    pooling = {(float(s[0]), acts[0]) for s, acts in outcomes if s[0] == s[1]}
    closed = spence_pooling_outcomes(p["theta_low"], p["theta_high"], p["prior_high"], p["cost_low"], levels)
    assert pooling == set(closed)
    ref = reference_equilibrium(g)
    assert ref is not None
    if literal:
        assert ref.kind == "separating" and tuple(map(float, ref.sender)) == (e0, min(literal))
    else:
        assert ref.kind == "pooling" and (float(ref.sender[0]), ref.action_after(ref.sender[0])) in closed


@FAST
@given(st.one_of(st.just(Signaling()), st.just(beer_quiche()), small_games()))
def test_one_equilibrium_per_outcome_is_among_all(game: Signaling) -> None:
    every = list(perfect_bayesian_equilibria(game))
    one = list(perfect_bayesian_equilibria(game, off_path="one"))
    profiles = {(e.sender, e.receiver) for e in every}  # beliefs off the path may differ: each supports its action
    assert {(e.sender, e.receiver) for e in one} <= profiles and len(one) == len({_outcome(e) for e in one})
    assert {_outcome(e) for e in one} == {_outcome(e) for e in every}
    if one:
        assert reference_equilibrium(game) in one
    for e in one:  # each belief off the path supports the action
        for j, used in enumerate(e.on_path):
            if not used:
                values = np.array(game.receiver_payoffs)[:, j, :].T @ np.array(e.beliefs[j])
                assert values[game.actions.index(e.receiver[j])] >= values.max() - 1e-9


def test_off_path_must_be_all_or_one() -> None:
    with pytest.raises(GameError, match="off_path must be 'all' or 'one', got 'some'"):
        next(perfect_bayesian_equilibria(Signaling(), off_path="some"))  # type: ignore[arg-type]


# --- Beer-Quiche and nashpy ----------------------------------------------------------------------


def test_beer_quiche_pooling_equilibria_and_the_intuitive_criterion() -> None:
    g = beer_quiche()
    eqs = {e.sender: e for e in perfect_bayesian_equilibria(g)}
    assert set(eqs) == {("beer", "beer"), ("quiche", "quiche")}
    beer, quiche = eqs["beer", "beer"], eqs["quiche", "quiche"]
    assert beer.receiver == ("duel", "retreat") and quiche.receiver == ("retreat", "duel")
    assert beer.beliefs[0][0] >= 0.5 and quiche.beliefs[1][0] >= 0.5  # off the path: weak at least 1/2
    assert beer.beliefs[1] == pytest.approx((0.1, 0.9))
    assert intuitive_criterion(g, beer) and not intuitive_criterion(g, quiche)
    assert reference_equilibrium(g) == beer


def _nash_game(game: Signaling):
    nf = normal_form(game)
    return nf, nashpy.Game(np.array(nf.sender_payoffs), np.array(nf.receiver_payoffs))


def test_intuitive_criterion_on_a_fine_spence_grid() -> None:
    # by 0.25: separating at 1.5 or more fails (only H could gain from 1.25, and would); at 1.25 it
    # passes, since L is exactly indifferent at 1 (not equilibrium-dominated there); pooling on the
    # low wage fails (H gains from 1.25 once believed), pooling on the high wage passes
    g = spence(levels=tuple(0.25 * i for i in range(13)))
    passing = {_outcome(e) for e in perfect_bayesian_equilibria(g, off_path="one") if intuitive_criterion(g, e)}
    assert {float(s[1]) for s, _ in passing if s[0] != s[1]} == {1.0, 1.25}
    assert (("0", "0"), ("high",)) in passing and (("0", "0"), ("low",)) not in passing
    assert (("0", "0"), ("low",)) in _outcomes(g)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_beer_quiche_pbes_are_among_nashpys_equilibria() -> None:
    g = beer_quiche()
    nf, nash = _nash_game(g)
    pure = set()
    for sigma_r, sigma_c in nash.support_enumeration():
        if max(sigma_r) == 1 and max(sigma_c) == 1:
            pure.add((int(np.argmax(sigma_r)), int(np.argmax(sigma_c))))
    found = {nf.index(e) for e in perfect_bayesian_equilibria(g)}
    assert len(found) == 2 and found <= pure


@FAST
@given(small_games(), st.data())
def test_normal_form_cells_are_expected_payoffs_of_play(game: Signaling, data: st.DataObject) -> None:
    nf = normal_form(game)
    assert len(nf.sender_strategies) == len(game.signals) ** len(game.types)
    assert len(nf.receiver_strategies) == len(game.actions) ** len(game.signals)
    i = data.draw(st.integers(0, len(nf.sender_strategies) - 1))
    j = data.draw(st.integers(0, len(nf.receiver_strategies) - 1))
    root, expected = game.new_initial_state(), np.zeros(2)
    for t, p in root.chance_outcomes():
        after = root.apply(t).apply(nf.sender_strategies[i][game.types.index(t)])
        expected += p * np.array(after.apply(nf.receiver_strategies[j][game.signals.index(after.signal)]).returns())
    assert (nf.sender_payoffs[i][j], nf.receiver_payoffs[i][j]) == pytest.approx(tuple(expected))


def test_beer_quiche_normal_form_by_hand() -> None:
    nf = normal_form(beer_quiche())
    i, j = nf.sender_strategies.index(("beer", "beer")), nf.receiver_strategies.index(("duel", "retreat"))
    assert nf.sender_payoffs[i][j] == pytest.approx(0.1 * 2 + 0.9 * 3) and nf.receiver_payoffs[i][j] == pytest.approx(0.9)


def _independent_pbes(game: Signaling) -> set[tuple[int, int]]:
    """Pure Nash equilibria of the normal form by nashpy's best-response test, kept when every
    off-path response is optimal for some belief (a feasibility LP solved by scipy)."""
    from scipy.optimize import linprog

    nf, nash = _nash_game(game)
    rows, cols = len(nf.sender_strategies), len(nf.receiver_strategies)
    out = set()
    for i, j in itertools.product(range(rows), range(cols)):
        if not all(nash.is_best_response(np.eye(rows)[i], np.eye(cols)[j])):
            continue
        sender, receiver = nf.sender_strategies[i], nf.receiver_strategies[j]
        ok = True
        for s, signal in enumerate(game.signals):
            if signal in sender:
                continue
            a = game.actions.index(receiver[s])
            u = np.array(game.receiver_payoffs)[:, s, :]  # types x actions
            diff = np.array([u[:, b] - u[:, a] for b in range(len(game.actions)) if b != a])  # diff @ mu <= 0
            res = linprog(np.zeros(len(game.types)), A_ub=diff, b_ub=np.zeros(len(diff)),
                          A_eq=np.ones((1, len(game.types))), b_eq=[1], bounds=[(0, 1)] * len(game.types))
            ok = ok and res.status == 0
        if ok:
            out.add((i, j))
    return out


@FAST
@given(small_games())
def test_pbes_are_exactly_the_sequentially_rational_nash_equilibria(game: Signaling) -> None:
    nf, nash = _nash_game(game)
    mine = {nf.index(e) for e in perfect_bayesian_equilibria(game)}
    rows, cols = np.eye(len(nf.sender_strategies)), np.eye(len(nf.receiver_strategies))
    for i, j in mine:  # each one a mutual best response by nashpy
        assert nash.is_best_response(rows[i], cols[j]) == (True, True)
    assert mine == _independent_pbes(game)


def test_an_action_optimal_only_for_mixed_beliefs_can_deter() -> None:
    # C is the receiver's best reply only to beliefs strictly between the types; it is the one
    # response after y that keeps both types at x
    game = Signaling(
        types=("a", "b"), prior=(0.5, 0.5), signals=("x", "y"), actions=("A", "B", "C"), costs=((0, 0), (0, 0)),
        sender_payoffs=[[[1, 1, 1], [5, 5, 0]]] * 2, receiver_payoffs=[[[1, -2, 0.5]] * 2, [[-2, 1, 0.5]] * 2],
        title="compromise", story="",
    )
    (eq,) = perfect_bayesian_equilibria(game)
    assert eq.sender == ("x", "x") and eq.receiver == ("C", "C") and 0 < eq.beliefs[1][0] < 1
    assert {normal_form(game).index(eq)} == _independent_pbes(game)


def test_a_game_without_a_pure_pbe_has_no_equilibrium_play() -> None:
    assert _independent_pbes(NO_PURE) == set() and list(perfect_bayesian_equilibria(NO_PURE)) == []
    assert reference_equilibrium(NO_PURE) is None
    with pytest.raises(GameError, match="no pure-strategy perfect Bayesian equilibrium"):
        NO_PURE.equilibrium_action(NO_PURE.new_initial_state().apply("a"))


@FAST
@given(_games())
def test_equilibrium_strategies_are_best_responses(game: Signaling) -> None:
    ref = reference_equilibrium(game)
    assume(ref is not None)
    root = game.new_initial_state()
    tol = 1e-9
    for t in game.types:  # the sender, through the game tree
        after = root.apply(t)
        assert game.equilibrium_action(after) == ref.signal_of(t)

        def value(signal: str) -> float:
            state = after.apply(signal)
            return state.apply(game.equilibrium_action(state)).returns()[0]

        assert value(ref.signal_of(t)) >= max(value(s) for s in game.signals) - tol
    for j, signal in enumerate(game.signals):  # the receiver: Bayes on the path, its stated belief off it
        senders = [i for i, t in enumerate(game.types) if ref.signal_of(t) == signal]
        if senders:
            mass = sum(game.prior[i] for i in senders)
            belief = [game.prior[i] / mass if i in senders else 0.0 for i in range(len(game.types))]
            assert ref.beliefs[j] == pytest.approx(belief)
        else:
            belief = ref.beliefs[j]
            assert min(belief) >= 0 and sum(belief) == pytest.approx(1)

        def expected(action: str) -> float:
            return sum(b * root.apply(t).apply(signal).apply(action).returns()[1] for t, b in zip(game.types, belief))

        assert expected(ref.action_after(signal)) >= max(expected(a) for a in game.actions) - tol


# --- play: chance, prompts, replay, invalid answers ----------------------------------------------


def test_chance_draws_follow_the_prior() -> None:
    for game in (beer_quiche(), spence(prior_high=0.25)):
        draws = [Episode(game, seed).state.sender_type for seed in range(4000)]
        for t, p in zip(game.types, game.prior):
            assert abs(draws.count(t) / len(draws) - p) < 5 * np.sqrt(p * (1 - p) / len(draws))
    assert [Episode(beer_quiche(), 7).state.sender_type for _ in range(3)] == [Episode(beer_quiche(), 7).state.sender_type] * 3


@FAST
@given(_games())
def test_the_receiver_never_sees_the_type(game: Signaling) -> None:
    root = game.new_initial_state()
    for signal in game.signals:
        for stage in ("to move", "over"):
            seen = set()
            for t in game.types:
                state = root.apply(t).apply(signal)
                if stage == "over":
                    state = state.apply(game.actions[0])
                seen.add(state.observation(1))
            assert len(seen) == 1
    for t in game.types:  # the receiver's view before the signal, and what the sender sees
        assert root.apply(t).observation(1) == root.apply(game.types[0]).observation(1)
        prompt = root.apply(t).observation(0)
        assert f"drew your {game.nouns[0]}: {t}." in prompt and "Answer:" in prompt
        assert all(s in prompt for s in game.signals)


def test_prompts_say_how_to_answer() -> None:
    state = Signaling().new_initial_state().apply("L")
    sender = state.observation(0)
    assert "0, 0.5, 1, 1.5, 2, 2.5 or 3" in sender and "1.5 (costs you 1.5)" in sender
    receiver = state.apply("2").observation(1)
    assert "chose the education level: 2." in receiver and "low or high" in receiver
    assert "L with probability 0.5, H with probability 0.5" in receiver


_BUILT_IN = st.one_of(st.just(Signaling()), st.just(beer_quiche()), spence_params().map(lambda p: spence(**p)))
_PAIRS = st.tuples(st.sampled_from(sorted(SIGNALING_STRATEGIES)), st.sampled_from(sorted(SIGNALING_STRATEGIES)))


@FAST
@given(_BUILT_IN, _PAIRS, st.integers(0, 2**32 - 1))
def test_transcripts_replay_to_the_same_payoffs(game: Signaling, names: tuple[str, str], seed: int) -> None:
    transcript = play(game, [SIGNALING_STRATEGIES[n] for n in names], seed=seed)
    assert replay(game, transcript) == transcript.payoffs
    assert play(game, [SIGNALING_STRATEGIES[n] for n in names], seed=seed) == transcript
    t, s, a = transcript.actions
    i, j, k = game.types.index(t), game.signals.index(s), game.actions.index(a)
    assert transcript.payoffs == (game.sender_payoffs[i][j][k] - game.costs[i][j], game.receiver_payoffs[i][j][k])
    rebuilt = Signaling(**transcript.params)
    assert replay(rebuilt, transcript) == transcript.payoffs
    for who, name in enumerate(names):
        if name == "equilibrium":
            assert distance_from_equilibrium(game, transcript, who) == 0


def test_invalid_answers_are_reasked_then_forfeited() -> None:
    game = spence(invalid_moves=InvalidMovePolicy(retries=2, penalty=-3.0))
    episode = Episode(game, seed=1)
    first = episode.submit("a master's degree")
    assert first.reask and not first.accepted
    assert "not a legal move" in episode.observation() and "names no education level" in episode.observation()
    assert episode.submit("0.5 or 1").reask
    assert "more than one education level (0.5, 1)" in episode.observation()
    last = episode.submit("7")
    assert last.forfeit and last.done and episode.forfeit == 0
    transcript = episode.transcript()
    assert transcript.payoffs == (-3.0, 0.0) and len(transcript.invalid) == 3
    assert [r.attempt for r in transcript.invalid] == [0, 1, 2]
    assert replay(game, transcript) == transcript.payoffs


def test_a_reasked_answer_can_still_be_accepted_and_the_receiver_can_forfeit() -> None:
    game = spence(invalid_moves=InvalidMovePolicy(retries=1, penalty=-2.0))
    episode = Episode(game, seed=5)
    t = episode.state.sender_type
    assert episode.submit("").reask
    assert episode.submit("Answer: 1.5").accepted
    assert episode.to_move == 1 and t not in episode.observation().split("Answer with")[1]
    assert episode.submit("a fair wage").reask
    assert episode.submit("low, no, high").forfeit
    cost = game.costs[game.types.index(t)][3]
    assert episode.payoffs() == (-cost, -2.0)
    assert replay(game, episode.transcript()) == episode.payoffs()


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5", "1.5"), ("I choose 1.50.", "1.5"), ("+1.5", "1.5"), ("1.5e0", "1.5"), (".5", "0.5"), ("3.", "3"),
        ("Level 2 costs less.\nAnswer: 0", "0"), ("**Answer:** 3\nsince 0.5 is too little", "3"),
        ("answer:\n  2.5", "2.5"), ("ANSWER: 1 (answer: 2 was meant)", "2"),  # the last marker wins
    ],
)
def test_sender_answers(text: str, expected: str | None) -> None:
    state = Signaling().new_initial_state().apply("H")
    parsed = Signaling().parse_move(text, state)
    if expected is None:
        assert isinstance(parsed, MoveError)
    else:
        assert parsed == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.5 or 1", "names more than one education level (0.5, 1)"),
        ("1.25", "1.25 is not an education level here"),
        ("a degree", "names no education level; name one of: 0, 0.5, 1, 1.5, 2, 2.5 or 3"),
        ("   ", "the answer is empty"),
        ("Answer:", "the answer is empty"),
        ("1,5", "1,5 is not a number the game reads (a fraction or a decimal comma)"),  # not level 1
        ("3/2", "3/2 is not a number the game reads"),
    ],
)
def test_sender_refusals_say_why(text: str, reason: str) -> None:
    state = Signaling().new_initial_state().apply("H")
    parsed = Signaling().parse_move(text, state)
    assert isinstance(parsed, MoveError) and reason in parsed.reason


@pytest.mark.parametrize(
    ("text", "negated"),
    [("I will not duel.", "not duel"), ("No duel", "no duel"), ("Definitely not retreat", "not retreat"),
     ("I choose not to duel", "not to duel"), ("I won\u2019t retreat", "won\u2019t retreat"),
     ("I can't ever duel", "can't ever duel")],
)
def test_a_negated_action_is_refused_not_read_as_that_action(text: str, negated: str) -> None:
    g = beer_quiche()
    state = g.new_initial_state().apply("weak").apply("beer")
    parsed = g.parse_move(text, state)
    assert isinstance(parsed, MoveError) and f"negates a response ({negated!r})" in parsed.reason


@pytest.mark.parametrize(("text", "move"), [("Beer. The bully will not duel.", "beer"), ("Not sure; beer", "beer"),
                                            ("The refuge (1,3) of the warrior: quiche", "quiche"),  # numbers are text here
                                            ("I do not know, beer", "beer"), ("Answer: beer\nnot quiche", "beer")])
def test_a_negation_elsewhere_leaves_the_move_alone(text: str, move: str) -> None:
    """Only a negation right before a label (or one word before it) makes the answer ambiguous; after the
    ``Answer:`` marker only its line counts."""
    g = beer_quiche()
    assert g.parse_move(text, g.new_initial_state().apply("weak")) == move


def test_receiver_answers_are_case_insensitive_words() -> None:
    g = beer_quiche()
    state = g.new_initial_state().apply("weak").apply("beer")
    assert g.parse_move("RETREAT", state) == "retreat" and g.parse_move("I will Duel.", state) == "duel"
    assert isinstance(g.parse_move("duel or retreat?", state), MoveError)
    assert isinstance(g.parse_move("duels", state), MoveError)  # a word, not a substring
    assert isinstance(g.parse_move("1", state), MoveError)
    assert isinstance(g.parse_move("beer", g.new_initial_state()), MoveError)  # nature moves: no player answers


@settings(max_examples=300, deadline=None)
@given(_games(), st.text(max_size=200), st.integers(0, 1))
def test_parse_move_never_raises_and_returns_a_legal_move_or_a_reason(game: Signaling, text: str, who: int) -> None:
    state = game.new_initial_state().apply(game.types[0])
    if who:
        state = state.apply(game.signals[0])
    parsed = game.parse_move(text, state)
    assert parsed in state.legal_actions() or (isinstance(parsed, MoveError) and parsed.reason)


@FAST
@given(_games(), st.data())
def test_a_move_in_any_case_and_filler_parses(game: Signaling, data: st.DataObject) -> None:
    state = game.new_initial_state().apply(game.types[-1])
    for who in (0, 1):
        label = data.draw(st.sampled_from(state.legal_actions()))
        cased = data.draw(st.sampled_from([str.lower, str.upper, str.title]))(label)
        filler = data.draw(st.sampled_from(["I pick {}.", "{}", "my move: {}!", "Well...\nAnswer: {}\n", "({})"]))
        assert game.parse_move(filler.format(cased), state) == label
        assert game.parse_move(game.format_move(label, state), state) == label
        state = state.apply(label)


_LABEL = st.text(alphabet=string.ascii_letters + string.digits + " -", min_size=1, max_size=8).map(str.strip).filter(bool)


@FAST
@given(st.lists(_LABEL, min_size=1, max_size=5, unique_by=str.lower), 
       st.lists(_LABEL, min_size=1, max_size=4, unique_by=str.lower))
def test_format_move_round_trips_for_any_labels(signals: list[str], actions: list[str]) -> None:
    try:
        game = Signaling(
            types=("x", "y"), prior=(0.5, 0.5), signals=signals, actions=actions,
            costs=[[0] * len(signals)] * 2, sender_payoffs=[[[0] * len(actions)] * len(signals)] * 2,
            receiver_payoffs=[[[0] * len(actions)] * len(signals)] * 2, title="labels", story="",
        )
    except GameError:
        assume(False)
    state = game.new_initial_state().apply("x")
    for signal in game.signals:
        assert game.parse_move(game.format_move(signal, state), state) == signal
        after = state.apply(signal)
        for action in game.actions:
            assert game.parse_move(game.format_move(action, after), after) == action


@pytest.mark.parametrize("labels", [("walk", "walk away"), ("a", "a b", "b"), ("no", "no duel", "duel")])
def test_labels_that_contain_another_parse_to_the_longest(labels: tuple[str, ...]) -> None:
    game = dataclasses.replace(beer_quiche(), actions=labels, sender_payoffs=[[[0] * len(labels)] * 2] * 2,
                               receiver_payoffs=[[[0] * len(labels)] * 2] * 2)
    state = game.new_initial_state().apply("weak").apply("beer")
    for label in labels:
        assert game.parse_move(f"I {label}.", state) == label


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        ("1", None), ("1.1.", None), ("1e", None), ("a", None), ("answer:", None), ("\n", None), ("-.", None),
        ("high ", "high"), ("0.5 ", "0.5"), ("x1.5 ", None), ("LOW\t", "low"),
    ],
)
def test_parse_move_on_a_megabyte(chunk: str, expected: str | None) -> None:
    # linear time: a quadratic parser would not finish these within the suite's timeout
    text = chunk * (1_000_000 // len(chunk))
    game = Signaling()
    state = game.new_initial_state().apply("L")
    if expected in game.actions:
        state = state.apply("0")
    parsed = game.parse_move(text, state)
    assert parsed == expected if expected else isinstance(parsed, MoveError)


@pytest.mark.timeout(60)  # a hang guard, not a timing assertion: linear takes well under a second here
def test_a_long_reasoning_then_the_answer_parses() -> None:
    # 8 MB of reasoning that mentions levels, then the marked answer; a parser quadratic in the
    # text would need hours here
    text = "If I took 0.5 the employer might pay low; 2 costs more. " * 140_000 + "\nAnswer: 1.5"
    game = Signaling()
    assert game.parse_move(text, game.new_initial_state().apply("H")) == "1.5"


def test_format_move_refuses_an_illegal_move() -> None:
    g = Signaling()
    with pytest.raises(GameError, match=r"'high' is not a legal move here"):
        g.format_move("high", g.new_initial_state().apply("L"))


# --- strategies ----------------------------------------------------------------------------------


def test_strategies_by_name() -> None:
    assert sorted(SIGNALING_STRATEGIES) == ["equilibrium", "highest", "honest", "lowest", "random"]
    for name, strategy in SIGNALING_STRATEGIES.items():
        assert isinstance(strategy, Strategy) and strategy.name == name
        with pytest.raises(dataclasses.FrozenInstanceError):
            strategy.name = "other"  # type: ignore[misc]
    assert isinstance(SIGNALING_STRATEGIES["equilibrium"], EquilibriumPlay)


def test_fixed_strategies_move_as_documented() -> None:
    rng = np.random.default_rng(0)
    s = SIGNALING_STRATEGIES
    g, bq = Signaling(), beer_quiche()
    low, high = g.new_initial_state().apply("L"), g.new_initial_state().apply("H")
    assert [s["lowest"](x, rng) for x in (low, high)] == ["0", "0"]
    assert [s["highest"](x, rng) for x in (low, high)] == ["3", "3"]
    assert [s["honest"](x, rng) for x in (low, high)] == ["0", "3"]
    assert [s["equilibrium"](x, rng) for x in (low, high)] == ["0", "1"]
    assert [s["honest"](low.apply(e), rng) for e in ("0", "1.5", "3")] == ["low", "low", "high"]
    assert [s["lowest"](low.apply("1"), rng), s["highest"](low.apply("1"), rng)] == ["low", "high"]
    assert [s["honest"](bq.new_initial_state().apply(t), rng) for t in bq.types] == ["quiche", "beer"]
    assert s["honest"](bq.new_initial_state().apply("weak").apply("beer"), rng) == "retreat"
    with pytest.raises(GameError):
        s["lowest"](g.new_initial_state(), rng)


def test_random_play_uses_its_generator() -> None:
    state = Signaling().new_initial_state().apply("H")
    picks = [SIGNALING_STRATEGIES["random"](state, np.random.default_rng(seed)) for seed in range(200)]
    assert set(picks) == set(Signaling().signals)
    again = [SIGNALING_STRATEGIES["random"](state, np.random.default_rng(seed)) for seed in range(200)]
    assert picks == again


def test_equilibrium_play_and_distances() -> None:
    g = Signaling()
    transcript = play(g, [EquilibriumPlay(), EquilibriumPlay()], seed=11)
    t = transcript.actions[0]
    assert transcript.actions[1:] == (("0", "low") if t == "L" else ("1", "high"))
    assert distance_from_equilibrium(g, transcript, 0) == 0 == distance_from_equilibrium(g, transcript, 1)
    high = g.new_initial_state().apply("H")
    assert g.move_distance(high, "3") == pytest.approx(2 / 3) and g.move_distance(high, "1") == 0
    after = high.apply("1")
    assert g.move_distance(after, "low") == 1 and g.move_distance(after, "high") == 0
    bq = beer_quiche()
    weak = bq.new_initial_state().apply("weak")
    assert bq.equilibrium_action(weak) == "beer" and bq.move_distance(weak, "quiche") == 1
    assert bq.equilibrium_action(weak.apply("quiche")) == "duel"


def test_states_are_immutable_and_refuse_illegal_moves() -> None:
    root = Signaling().new_initial_state()
    assert isinstance(root, SignalingState) and root.chance_outcomes() == (("L", 0.5), ("H", 0.5))
    with pytest.raises(GameError, match=r"'M' is not a legal move here; legal: \['L', 'H'\]"):
        root.apply("M")
    after = root.apply("H")
    assert root.sender_type is None and after.sender_type == "H"
    assert after.apply("2").returns() == (-1.0, 0.0)  # the cost is paid when the signal is sent
    assert after.apply("2").apply("high").is_terminal
    with pytest.raises(GameError):
        after.observation(2)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_a_forfeit_never_pays_more_than_a_valid_play_by_default(seed):
    """The default penalty is below every payoff of the tables, for both seats; an explicit policy is kept."""
    rng = np.random.default_rng(seed)
    shape = (2, 3, 2)
    game = Signaling(types=("a", "b"), prior=(0.5, 0.5), signals=("x", "y", "z"), actions=("p", "q"),
                     costs=rng.uniform(0, 4, shape[:2]).round(2).tolist(),
                     sender_payoffs=rng.uniform(-5, 5, shape).round(2).tolist(),
                     receiver_payoffs=rng.uniform(-5, 5, shape).round(2).tolist())
    worst = min(min(game.sender_value(t, s, a), game.receiver_value(t, s, a))
                for t in range(2) for s in range(3) for a in range(2))
    assert game.invalid_moves.penalty < worst and game.invalid_moves.penalty <= -1.0
    assert game.invalid_moves.retries == 2
    kept = Signaling(invalid_moves=InvalidMovePolicy(retries=0, penalty=-0.5))
    assert kept.invalid_moves == InvalidMovePolicy(retries=0, penalty=-0.5)
    assert beer_quiche().invalid_moves.penalty == -1.0  # its worst payoff is 0
    assert spence(invalid_moves={"retries": 0}).invalid_moves == InvalidMovePolicy(retries=0, penalty=-3.0)
