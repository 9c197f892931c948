"""Rubinstein bargaining: the issue's numbers, backward induction three ways (closed form, grid
recursion, a walk over the states), best responses, replay, invalid answers and the parser."""

from __future__ import annotations

import doctest
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtalign.envs import (
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
from gtalign.envs import _bargaining
from gtalign.envs._bargaining import (
    ACCEPT,
    BARGAINING_STRATEGIES,
    REJECT,
    Bargaining,
    BargainingState,
    FairBargainer,
    GreedyBargainer,
    RandomBargainer,
    backward_induction,
    bargaining_strategy,
    finite_horizon_share,
    rubinstein_share,
)

DELTAS = st.floats(0.05, 0.95)
SMALL_GRIDS = st.sampled_from([0.05, 0.1, 0.125, 0.2, 0.5])
HORIZONS = st.one_of(st.none(), st.integers(1, 6))
FAST = settings(max_examples=40, deadline=None)


def grid_tolerance(game: Bargaining) -> float:
    """How far the grid's equilibrium share may be from the continuous one: each round's floor loses
    under one step, and the errors alternate, so they add up to at most step / (1 - δ1 δ2)."""
    return game.precision / (1.0 - game.delta1 * game.delta2) + 1e-9


def small_game(d1: float, d2: float, precision: float, horizon: int | None) -> Bargaining:
    return Bargaining(d1, d2, precision=precision, horizon=horizon, max_rounds=5)


def follow(state: BargainingState) -> tuple[float, float]:
    """The payoffs of equilibrium play from ``state`` on."""
    while not state.is_terminal:
        state = state.apply(state.game.equilibrium_action(state))
    return state.returns()


# -- the issue's numbers ----------------------------------------------------------------------


def test_rubinstein_shares_of_the_issue() -> None:
    assert round(rubinstein_share(0.9, 0.9), 4) == 0.5263
    assert round(rubinstein_share(0.9, 0.5), 4) == 0.9091
    assert rubinstein_share(0.9, 0.9) == pytest.approx(10 / 19)


@pytest.mark.parametrize(("d1", "d2", "expected"), [(0.9, 0.9, 0.5263), (0.9, 0.5, 0.9091)])
@pytest.mark.parametrize("precision", [0.01, 0.0001])
def test_equilibrium_play_agrees_at_once_on_the_rubinstein_split(
    d1: float, d2: float, expected: float, precision: float
) -> None:
    game = Bargaining(d1, d2, precision=precision)
    transcript = play(game, [EquilibriumPlay(), EquilibriumPlay()], seed=0)
    assert [r.player for r in transcript.records] == [0, 1]
    assert transcript.records[1].text == "accept"  # immediate agreement
    kept = transcript.actions[0]
    assert kept == pytest.approx(expected, abs=grid_tolerance(game) + 5e-5)
    assert transcript.payoffs == pytest.approx((kept, 1.0 - kept))
    assert distance_from_equilibrium(game, transcript, 0) == 0.0
    assert distance_from_equilibrium(game, transcript, 1) == 0.0


def test_a_fine_grid_gives_the_issue_numbers_to_three_decimals() -> None:
    assert Bargaining(0.9, 0.9, precision=0.0001).solution.keep[0] == pytest.approx(0.5263, abs=5e-4)
    assert Bargaining(0.9, 0.5, precision=0.0001).solution.keep[0] == pytest.approx(0.9091, abs=5e-4)


# -- finite horizons: closed form, grid recursion and the walk over the states -----------------


def test_finite_horizon_closed_form_by_hand() -> None:
    d1, d2 = 0.8, 0.6
    assert finite_horizon_share(d1, d2, 1) == 1.0  # the last proposer takes all
    assert finite_horizon_share(d1, d2, 2) == pytest.approx(1 - d2)
    assert finite_horizon_share(d1, d2, 3) == pytest.approx(1 - d2 * (1 - d1))
    assert finite_horizon_share(d1, d2, 4) == pytest.approx(1 - d2 * (1 - d1 * (1 - d2)))


@FAST
@given(DELTAS, DELTAS)
def test_finite_horizons_converge_to_rubinstein(d1: float, d2: float) -> None:
    x = rubinstein_share(d1, d2)
    previous_gap = math.inf
    for horizon in range(1, 60):
        gap = abs(finite_horizon_share(d1, d2, horizon) - x)
        assert gap <= (d1 * d2) ** (horizon // 2) + 1e-12
        if horizon % 2:  # odd horizons approach from above, each closer than the last
            assert finite_horizon_share(d1, d2, horizon) >= x - 1e-12 and gap <= previous_gap + 1e-12
            previous_gap = gap
    assert finite_horizon_share(d1, d2, 400) == pytest.approx(x, abs=1e-9)


@FAST
@given(DELTAS, DELTAS, SMALL_GRIDS, st.integers(1, 6), st.sampled_from([1.0, 2.5]))
def test_grid_recursion_and_the_state_walk_agree(
    d1: float, d2: float, precision: float, horizon: int, pie: float
) -> None:
    game = Bargaining(d1, d2, precision=precision * pie, horizon=horizon, pie=pie)
    walked, recursed = backward_induction(game), game.solution
    assert walked.keep == recursed.keep
    assert walked.reservation == pytest.approx(recursed.reservation, abs=1e-9)
    assert walked.payoffs == pytest.approx(recursed.payoffs, abs=1e-9)


@FAST
@given(DELTAS, DELTAS, st.sampled_from([0.01, 0.02, 0.025, 0.05]), st.integers(1, 12))
def test_grid_equilibrium_is_the_closed_form_within_grid_tolerance(
    d1: float, d2: float, precision: float, horizon: int
) -> None:
    game = Bargaining(d1, d2, precision=precision, horizon=horizon)
    solution = game.solution
    assert solution.keep[0] == pytest.approx(finite_horizon_share(d1, d2, horizon), abs=grid_tolerance(game))
    for t in range(horizon):  # every round is the same game with the players swapped and fewer rounds
        first, second = (d1, d2) if t % 2 == 0 else (d2, d1)
        assert solution.keep[t] == pytest.approx(
            finite_horizon_share(first, second, horizon - t), abs=grid_tolerance(game)
        )


def test_the_walk_converges_to_rubinstein_as_the_horizon_grows() -> None:
    d1, d2 = 0.9, 0.5
    x = rubinstein_share(d1, d2)
    gaps = []
    for horizon in (1, 2, 4, 8, 12):
        game = Bargaining(d1, d2, precision=0.005, horizon=horizon)
        kept = backward_induction(game).keep[0]
        assert kept == pytest.approx(finite_horizon_share(d1, d2, horizon), abs=grid_tolerance(game))
        gaps.append(abs(kept - x))
    assert gaps[-1] <= grid_tolerance(Bargaining(d1, d2, precision=0.005)) < gaps[0]


def test_the_infinite_game_is_truncated_at_max_rounds() -> None:
    game = Bargaining(0.9, 0.9, max_rounds=3)
    assert game.rounds == 3 and len(game.solution.keep) == 3
    assert game.solution.keep[-1] == 1.0 and game.solution.reservation[-1] == 0.0  # the last proposer takes all
    transcript = play(game, [GreedyBargainer(threshold=1.0), GreedyBargainer(threshold=1.0)])
    assert len(transcript.records) == 6 and transcript.payoffs == (0.0, 0.0)  # disagreement: 0 to both
    assert "stopped" in game.new_initial_state().observation(0)


@FAST
@given(DELTAS, DELTAS, SMALL_GRIDS, HORIZONS)
def test_agreement_is_immediate_in_every_round_on_any_grid(
    d1: float, d2: float, precision: float, horizon: int | None
) -> None:
    game = small_game(d1, d2, precision, horizon)
    state = game.new_initial_state()
    while not state.is_terminal:
        offer = game.equilibrium_action(state)
        assert offer == game.solution.keep[state.round]
        assert game.equilibrium_action(state.apply(offer)) == ACCEPT
        state = state.apply(offer).apply(REJECT)  # on to the next round (off the equilibrium path)


# -- best responses ---------------------------------------------------------------------------


@FAST
@given(DELTAS, DELTAS, st.sampled_from([0.05, 0.1, 0.25, 0.5]), HORIZONS)
def test_equilibrium_has_no_profitable_one_shot_deviation(
    d1: float, d2: float, precision: float, horizon: int | None
) -> None:
    """At every round's proposal and at every response to every offer, deviating once and then
    playing the equilibrium does not pay (exactly: the grid equilibrium is computed on the grid)."""
    game = small_game(d1, d2, precision, horizon)
    state = game.new_initial_state()
    while not state.is_terminal:
        proposer, responder = state.proposer, state.responder
        value = follow(state)[proposer]
        for offer in state.legal_actions():
            pending = state.apply(offer)
            assert follow(pending)[proposer] <= value + 1e-12
            response_value = follow(pending)[responder]
            for response in (ACCEPT, REJECT):
                assert follow(pending.apply(response))[responder] <= response_value + 1e-12
        state = state.apply(game.pie).apply(REJECT)  # on to the next round (off the equilibrium path)


@FAST
@given(DELTAS, DELTAS, HORIZONS)
def test_equilibrium_play_is_immediate_agreement_on_fine_grids(d1: float, d2: float, horizon: int | None) -> None:
    game = small_game(d1, d2, 0.02, horizon)
    transcript = play(game, [EquilibriumPlay(), EquilibriumPlay()])
    assert [r.action for r in transcript.records][1] == ACCEPT
    assert transcript.payoffs == pytest.approx(game.solution.payoffs)
    assert sum(transcript.payoffs) == pytest.approx(1.0)


def test_equilibrium_responder_accepts_exactly_from_its_reservation() -> None:
    game = Bargaining(0.9, 0.5, horizon=2, precision=0.1)
    # in round 1 (the last) player 1 keeps the pie, so in round 0 it rejects anything under 0.5 x 1:
    # player 0 keeps 0.5, and player 1 accepts a share of 0.5 but not 0.4
    assert game.solution.reservation == pytest.approx((0.5, 0.0))
    assert game.solution.keep == (0.5, 1.0)
    start = game.new_initial_state()
    assert game.equilibrium_action(start.apply(0.5)) == ACCEPT
    assert game.equilibrium_action(start.apply(0.6)) == REJECT
    last = start.apply(1.0).apply(REJECT).apply(1.0)
    assert game.equilibrium_action(last) == ACCEPT  # rejecting in the last round gives 0


def test_move_distance() -> None:
    game = Bargaining(0.9, 0.5, horizon=2, precision=0.1)
    start = game.new_initial_state()
    assert game.move_distance(start, 0.5) == 0.0
    assert game.move_distance(start, 1.0) == pytest.approx(0.5)
    assert game.move_distance(start, 0.0) == pytest.approx(0.5)
    assert game.move_distance(start.apply(0.5), ACCEPT) == 0.0
    assert game.move_distance(start.apply(0.5), REJECT) == 1.0
    with pytest.raises(GameError, match="0.55"):
        game.move_distance(start, 0.55)
    greedy = play(game, [GreedyBargainer(), EquilibriumPlay()])
    # greedy demands 1.0 (0.5 from 0.5), then rejects 0 in the last round (the equilibrium accepts): 1
    assert greedy.actions == (1.0, REJECT, 1.0, REJECT)
    assert distance_from_equilibrium(game, greedy, 0) == pytest.approx(0.75)
    assert distance_from_equilibrium(game, greedy, 1) == 0.0


def test_move_distance_is_scaled_by_the_pie() -> None:
    game = Bargaining(0.9, 0.5, horizon=2, pie=10.0, precision=1.0)
    assert game.solution.keep[0] == 5.0
    assert game.move_distance(game.new_initial_state(), 10.0) == pytest.approx(0.5)


# -- fixed strategies and replay --------------------------------------------------------------


@FAST
@given(
    st.sampled_from(sorted(BARGAINING_STRATEGIES)),
    st.sampled_from(sorted(BARGAINING_STRATEGIES)),
    st.integers(0, 2**32 - 1),
    DELTAS,
    DELTAS,
    st.one_of(st.none(), st.integers(1, 8)),
    st.sampled_from([(1.0, 0.01), (1.0, 0.25), (10.0, 1.0)]),
)
def test_transcripts_replay_to_the_same_payoffs(
    first: str,
    second: str,
    seed: int,
    d1: float,
    d2: float,
    horizon: int | None,
    grid: tuple[float, float],
) -> None:
    pie, precision = grid
    game = Bargaining(d1, d2, pie=pie, precision=precision, horizon=horizon, max_rounds=12)
    players = [bargaining_strategy(first), bargaining_strategy(second)]
    transcript = play(game, players, seed=seed)
    assert replay(game, transcript) == transcript.payoffs
    assert play(game, players, seed=seed) == transcript  # seeded: the same episode again
    assert all(r.valid and r.attempt == 0 for r in transcript.records)
    assert min(transcript.payoffs) >= 0.0 and sum(transcript.payoffs) <= pie + 1e-9
    assert len(transcript.records) <= 2 * game.rounds
    params = json.loads(json.dumps(transcript.params))
    assert Bargaining.from_params(params) == game


def test_fixed_strategies_against_each_other() -> None:
    game = Bargaining(0.9, 0.9, horizon=4)
    fair = play(game, [FairBargainer(), FairBargainer()])
    assert fair.actions == (0.5, ACCEPT) and fair.payoffs == (0.5, 0.5)
    stubborn = play(game, [GreedyBargainer(), FairBargainer()])
    assert stubborn.actions == (1.0, REJECT, 0.5, REJECT) * 2 and stubborn.payoffs == (0.0, 0.0)
    taken = play(game, [FairBargainer(), GreedyBargainer(threshold=0.5)])
    assert taken.actions == (0.5, ACCEPT)
    # greedy meets equilibrium: the responder gives in only in the last round, where rejecting pays 0
    last = play(game, [EquilibriumPlay(), GreedyBargainer(threshold=1.0)])
    assert last.actions[-2:] == (1.0, ACCEPT) and len(last.actions) == 8
    assert last.payoffs == pytest.approx((0.0, 0.9**3))


def test_random_strategy_uses_its_generator() -> None:
    game = Bargaining(0.9, 0.9, horizon=20)
    players = [RandomBargainer(), RandomBargainer(accept_probability=0.1)]
    runs = {play(game, players, seed=seed).actions for seed in range(8)}
    assert len(runs) > 1  # different seeds, different play
    assert all(isinstance(p, Strategy) for p in BARGAINING_STRATEGIES.values())
    assert list(BARGAINING_STRATEGIES) == ["equilibrium", "greedy", "fair", "random"]


def test_unknown_strategy_lists_the_valid_names() -> None:
    with pytest.raises(GameError, match=r"'nice'.*equilibrium.*fair.*greedy.*random"):
        bargaining_strategy("nice")


@pytest.mark.parametrize(
    ("make", "bad"),
    [
        (lambda: GreedyBargainer(threshold=1.5), "1.5"),
        (lambda: RandomBargainer(accept_probability=-0.1), "-0.1"),
    ],
)
def test_strategy_parameters_are_checked(make, bad: str) -> None:
    with pytest.raises(GameError, match=bad):
        make()


# -- invalid answers through the episode ------------------------------------------------------


def test_an_invalid_answer_is_re_asked_and_recorded() -> None:
    game = Bargaining(0.9, 0.5)
    episode = Episode(game, seed=1)
    outcome = episode.submit("I would like half, please")
    assert outcome.reask and not outcome.accepted and not outcome.record.valid
    assert "offer X" in outcome.record.error
    assert "Your last answer was not a legal move" in episode.observation()
    assert episode.submit("offer 0.55").accepted
    assert episode.to_move == 1
    assert "keep 0.55 and give you 0.45" in episode.observation()
    assert episode.submit("I accept!").done
    transcript = episode.transcript()
    assert [(r.valid, r.attempt) for r in transcript.records] == [(False, 0), (True, 1), (True, 0)]
    assert transcript.payoffs == pytest.approx((0.55, 0.45)) and transcript.forfeit is None
    assert replay(game, transcript) == transcript.payoffs


def test_too_many_invalid_answers_forfeit_with_the_penalty() -> None:
    game = Bargaining(0.9, 0.5, invalid_moves=InvalidMovePolicy(retries=1, penalty=-2.0))
    episode = Episode(game)
    episode.submit("offer 0.7")
    assert episode.submit("I do not accept").reask
    outcome = episode.submit("accept or reject, hard to say")
    assert outcome.forfeit and outcome.done and episode.to_move == TERMINAL
    transcript = episode.transcript()
    assert transcript.forfeit == 1 and transcript.payoffs == (0.0, -2.0)
    assert [r.error for r in transcript.invalid] == [
        "'accept' is negated, which is ambiguous: answer 'accept' or 'reject'",
        "the answer says both accept and reject: answer with one of them",
    ]
    assert replay(game, transcript) == (0.0, -2.0)


async def test_a_text_player_through_aplay() -> None:
    class Scripted:
        name = "scripted"

        def __init__(self, answers: list[str]) -> None:
            self.answers = answers
            self.seen: list[str] = []

        async def answer(self, observation: str) -> str:
            self.seen.append(observation)
            return self.answers.pop(0)

    game = Bargaining(0.9, 0.9, horizon=2, precision=0.1)
    model = Scripted(["I reject", "offer 200%", "Offer: 60%"])
    transcript = await aplay(game, [EquilibriumPlay(), model], seed=3)
    # the equilibrium offer is rejected, the model's offer refused and re-asked, then accepted (the last round)
    assert [r.text for r in transcript.records] == ["offer 0.1", "I reject", "offer 200%", "Offer: 60%", "accept"]
    assert "more than the whole pie" in model.seen[2]
    assert transcript.payoffs == pytest.approx((0.9 * 0.4, 0.9 * 0.6))
    assert replay(game, transcript) == transcript.payoffs


# -- parsing ----------------------------------------------------------------------------------

GAME = Bargaining(0.9, 0.5)
PROPOSAL = GAME.new_initial_state()
RESPONSE = PROPOSAL.apply(0.6)


@pytest.mark.parametrize(
    ("text", "share"),
    [
        ("offer 0.55", 0.55),
        ("OFFER 0.55", 0.55),
        ("I offer .55 of the pie", 0.55),
        ("offer 55%", 0.55),
        ("I'll keep 55 % for myself", 0.55),
        ("0.55", 0.55),
        ("My offer is 0.6.", 0.6),
        ("offer: 0.553", 0.55),  # off the grid: the nearest grid point
        ("offer 0.557", 0.56),
        ("offer 0.55 (so you get 0.45)", 0.55),  # the number after 'offer' counts
        ("offer 0.55, that is keep 55%", 0.55),  # the same offer twice
        ("offer 1", 1.0),
        ("offer 0", 0.0),
        ("offer 100%", 1.0),
        ("I reject nothing yet; offer=0.3", 0.3),
        ("step-2 offer 0.7", 0.7),
    ],
)
def test_parse_offers(text: str, share: float) -> None:
    assert GAME.parse_move(text, PROPOSAL) == share
    assert share in PROPOSAL.legal_actions()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "an offer is due: answer 'offer X'"),
        ("half", "an offer is due"),
        ("accept", "no offer to accept or reject yet"),
        ("offer 1.5", "'1.5' is more than the pie of 1.00"),
        ("offer 55", "for a percentage write 55%"),
        ("offer 101%", "more than the whole pie"),
        ("offer -0.2", "'-0.2' is negative"),
        ("offer 0.3 and keep 0.4", "several offers ('0.3', '0.4')"),
        ("I think 0.3 or 0.4", "several offers"),
        ("I don't offer anything", "negated"),
        ("offer " + "9" * 60, "too long"),
        ("offer 1/2", "'1/2' is not a number the game reads (a fraction or a decimal comma)"),  # not 1.0
        ("offer 0,6", "'0,6' is not a number the game reads"),  # not 0.0
        ("offer 0.6,0.4", "'0.6,0.4' is not a number the game reads"),
    ],
)
def test_parse_offer_refusals(text: str, reason: str) -> None:
    parsed = GAME.parse_move(text, PROPOSAL)
    assert isinstance(parsed, MoveError) and reason in parsed.reason


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("accept", ACCEPT),
        ("I ACCEPT.", ACCEPT),
        ("Accepted!", ACCEPT),
        ("I agree to your offer of 0.6", ACCEPT),
        ("reject", REJECT),
        ("I reject your offer of 0.6", REJECT),
        ("No, reject.", REJECT),
        ("I decline.", REJECT),
        ("I disagree", REJECT),
    ],
)
def test_parse_responses(text: str, action: str) -> None:
    assert GAME.parse_move(text, RESPONSE) == action


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I do not accept", "negated"),
        ("I won't reject", "negated"),
        ("I don\u2019t agree", "negated"),
        ("accept or reject", "both accept and reject"),
        ("offer 0.5", "you make your own offer in the next round"),
        ("", "a response is due: answer 'accept' or 'reject'"),
        ("unacceptable", "a response is due"),
    ],
)
def test_parse_response_refusals(text: str, reason: str) -> None:
    parsed = GAME.parse_move(text, RESPONSE)
    assert isinstance(parsed, MoveError) and reason in parsed.reason


def test_parse_outside_play() -> None:
    over = RESPONSE.apply(ACCEPT)
    assert GAME.parse_move("accept", over) == MoveError("the game is over: no move is due")
    other = Bargaining(0.8, 0.5).new_initial_state()
    assert isinstance(GAME.parse_move("offer 0.5", other), MoveError)
    assert isinstance(GAME.parse_move(None, PROPOSAL), MoveError)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_never_raises(text: str) -> None:
    for state in (PROPOSAL, RESPONSE):
        parsed = GAME.parse_move(text, state)
        assert (isinstance(parsed, MoveError) and parsed.reason) or parsed in state.legal_actions()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["offer", "keep", "accept", "reject", "not", "n't", "0.5", ".25", "55%", "-1", "1.5", "%", ".", ":", "=",
             "of", " ", "  ", "\n", "1", "0", "x", "é"]
        ),
        max_size=12,
    )
)
def test_parse_never_raises_on_near_misses(parts: list[str]) -> None:
    text = "".join(parts)
    for state in (PROPOSAL, RESPONSE):
        parsed = GAME.parse_move(text, state)
        assert (isinstance(parsed, MoveError) and parsed.reason) or parsed in state.legal_actions()


@pytest.mark.parametrize(
    ("text", "state", "expected"),
    [
        ("a" * 1_000_000, PROPOSAL, MoveError),
        ("offer " + "9" * 1_000_000, PROPOSAL, MoveError),
        ("0.5 " * 250_000, PROPOSAL, 0.5),
        ("1." * 500_000, PROPOSAL, MoveError),
        ("not " * 250_000 + "accept", RESPONSE, MoveError),
        (" " * 1_000_000 + "accept", RESPONSE, ACCEPT),
        ("accept " * 140_000 + "reject", RESPONSE, MoveError),
        ("%" * 1_000_000, PROPOSAL, MoveError),
        ("-" * 1_000_000 + "0.4", PROPOSAL, MoveError),
    ],
)
def test_parse_megabyte_answers(text: str, state: BargainingState, expected: object) -> None:
    parsed = GAME.parse_move(text, state)
    if expected is MoveError:
        assert isinstance(parsed, MoveError) and len(parsed.reason) < 300  # the reason does not echo the answer
    else:
        assert parsed == expected


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([(1.0, 0.01), (1.0, 0.25), (2.5, 0.5), (100.0, 1.0), (1.0, 0.001), (3.0, 0.3), (1.0, 1 / 3)]),
    st.integers(0, 3),
)
def test_format_move_round_trips(grid: tuple[float, float], rejections: int) -> None:
    pie, precision = grid
    game = Bargaining(0.9, 0.8, pie=pie, precision=precision)
    state = game.new_initial_state()
    for _ in range(rejections):
        state = state.apply(pie).apply(REJECT)
    for offer in state.legal_actions():
        assert game.parse_move(game.format_move(offer, state), state) == offer
        response = state.apply(offer)
        for action in response.legal_actions():
            assert game.parse_move(game.format_move(action, response), response) == action


def test_format_move_refuses_illegal_moves() -> None:
    with pytest.raises(GameError, match="'accept' is not a legal move"):
        GAME.format_move(ACCEPT, PROPOSAL)
    assert GAME.format_move(0.5, PROPOSAL) == "offer 0.50"
    whole = Bargaining(pie=100, precision=5)
    assert whole.format_move(55.0, whole.new_initial_state()) == "offer 55"
    with pytest.raises(GameError, match="0.55 is not a legal move here; legal: multiples of 5.0 from 0 to 100.0"):
        whole.format_move(0.55, whole.new_initial_state())


# -- states, observations, parameters ---------------------------------------------------------


def test_states_are_immutable_and_know_what_is_due() -> None:
    assert PROPOSAL.current_player == 0 and not PROPOSAL.response_due and PROPOSAL.pending_offer is None
    assert RESPONSE.current_player == 1 and RESPONSE.response_due and RESPONSE.offered == pytest.approx(0.4)
    second = RESPONSE.apply(REJECT)
    assert (second.round, second.current_player, second.proposer) == (1, 1, 1)
    assert PROPOSAL.offers == () and RESPONSE.responses == ()  # applying made new states
    with pytest.raises(AttributeError):
        PROPOSAL.offers = (0.5,)  # type: ignore[misc]
    done = second.apply(0.3).apply(ACCEPT)
    assert done.is_terminal and done.legal_actions() == () and done.round == 1
    assert done.returns() == pytest.approx((0.9 * 0.7, 0.5 * 0.3))
    assert hash(PROPOSAL.apply(0.6)) == hash(RESPONSE) and PROPOSAL.apply(0.6) == RESPONSE


@pytest.mark.parametrize(
    ("state", "action", "message"),
    [
        (PROPOSAL, 0.555, "0.555 is not on the grid"),
        (PROPOSAL, 1.2, "1.2 is not on the grid"),
        (PROPOSAL, ACCEPT, "an offer is due"),
        (PROPOSAL, True, "an offer is due"),
        (RESPONSE, 0.5, "a response is due"),
        (RESPONSE.apply(ACCEPT), ACCEPT, "the game is over"),
    ],
)
def test_illegal_moves_are_refused(state: BargainingState, action: object, message: str) -> None:
    with pytest.raises(GameError, match=message):
        state.apply(action)


def test_observations_state_the_rules_history_and_the_answer_format() -> None:
    game = Bargaining(0.9, 0.5, horizon=4, precision=0.05)
    state = game.new_initial_state().apply(0.6).apply(REJECT)
    proposer = state.observation(1)
    for needle in (
        "pie of size 1.00",
        "KEEPS",
        "s x 0.5^(n-1) to you and s x 0.9^(n-1) to the other player",
        "after round 4, the game ends and both players get 0",
        "multiples of 0.05",
        "Round 1: the other player offered to keep 0.60 (you would get 0.40); you rejected.",
        "Round 2: it is your turn to make an offer",
        "Answer with 'offer X', where X is the share of the pie YOU KEEP",
    ):
        assert needle in proposer, needle
    waiting = state.observation(0)
    assert "0.9^(n-1) to you" in waiting and "waiting for the other player to make an offer" in waiting
    responder = state.apply(0.3).observation(0)
    assert "offers to keep 0.30 and give you 0.70" in responder and "accept or reject" in responder
    assert "worth 0.70 x 0.9 = 0.63 to you" in responder
    last = game.new_initial_state()
    for _ in range(3):
        last = last.apply(1.0).apply(REJECT)
    assert "This is the last round" in last.apply(0.5).observation(1)
    assert "no agreement after 4 rounds" in last.apply(0.5).apply(REJECT).observation(0)
    with pytest.raises(GameError, match="2"):
        state.observation(2)


def test_params_are_json_ready_and_rebuild_the_game() -> None:
    game = Bargaining(0.8, 0.7, pie=2.0, horizon=5, precision=0.5, invalid_moves=InvalidMovePolicy(0, -3.0))
    params = json.loads(json.dumps(game.params()))
    assert params == {
        "delta1": 0.8,
        "delta2": 0.7,
        "pie": 2.0,
        "horizon": 5,
        "precision": 0.5,
        "max_rounds": 100,
        "invalid_moves": {"retries": 0, "penalty": -3.0},
    }
    assert Bargaining.from_params(params) == game
    with pytest.raises(GameError, match=r"unknown bargaining parameters \['discount'\]; valid: \['delta1'"):
        Bargaining.from_params({**params, "discount": 0.9})


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"delta1": 1.0}, "delta1 must be a discount factor in \\(0, 1\\), got 1.0"),
        ({"delta2": 0}, "delta2 must be a discount factor in \\(0, 1\\), got 0"),
        ({"delta1": float("nan")}, "delta1 must be a finite number, got nan"),
        ({"delta2": True}, "delta2 must be a finite number, got True"),
        ({"pie": -1.0}, "pie must be positive, got -1.0"),
        ({"horizon": 0}, "horizon must be an integer >= 1, got 0"),
        ({"horizon": 2.5}, "horizon must be an integer >= 1, got 2.5"),
        ({"max_rounds": -3}, "max_rounds must be an integer >= 1, got -3"),
        ({"precision": 0.3}, "precision 0.3 must divide the pie 1.0"),
        ({"precision": 1e-7}, "precision 1e-07 must divide the pie"),
        ({"precision": 0.0}, "precision must be positive, got 0.0"),
        ({"invalid_moves": "re-ask"}, "invalid_moves must be an InvalidMovePolicy or a mapping, got 're-ask'"),
        ({"invalid_moves": {"retries": 1, "tries": 2}}, "invalid_moves has unknown keys \\['tries'\\]"),
        ({"invalid_moves": {"retries": -1}}, "retries must be a non-negative integer, got -1"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, object], bad: str) -> None:
    with pytest.raises(GameError, match=bad):
        Bargaining(**kwargs)  # type: ignore[arg-type]


def test_theory_functions_check_their_arguments() -> None:
    with pytest.raises(GameError, match="d2 must be a discount factor in \\(0, 1\\), got 1.5"):
        rubinstein_share(0.9, 1.5)
    with pytest.raises(GameError, match="horizon must be an integer >= 1, got 0"):
        finite_horizon_share(0.9, 0.9, 0)


def test_the_registry_names_the_game() -> None:
    from gtalign._registry import REGISTRY

    assert REGISTRY.get("game", "bargaining") is Bargaining
    assert Bargaining().name == "bargaining"


def test_docstring_examples() -> None:
    result = doctest.testmod(_bargaining, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@given(delta=st.floats(0.05, 0.95), precision=st.sampled_from([1.0, 0.5, 0.25, 0.01]),
       pick=st.floats(-0.5, 1.5, allow_nan=False))
def test_is_legal_agrees_with_the_listed_moves(delta: float, precision: float, pick: float) -> None:
    """`is_legal` (what Episode checks answers with) never lists the grid, and says what legal_actions says
    (except that True is not the offer 1.0, which ``in`` would say it is)."""
    game = Bargaining(delta, delta, precision=precision)
    state = game.new_initial_state()
    for action in (pick, game.snap(min(max(pick, 0.0), 1.0)), ACCEPT, "0.5", float("nan")):
        assert state.is_legal(action) == (action in state.legal_actions())
    assert not state.is_legal(True) and not state.is_legal(False)
    responding = state.apply(game.offers[-1])
    for action in (ACCEPT, REJECT, 0.5, "yes"):
        assert responding.is_legal(action) == (action in responding.legal_actions())
