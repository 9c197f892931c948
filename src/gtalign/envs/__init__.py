"""Classic games as text environments: the sequential prisoner's dilemma, Rubinstein bargaining and
signaling games (Spence's education, Beer-Quiche), with their equilibria as test oracles.

The paper motivates GTAlign with RL run directly on such games; these environments let that
experiment be checked and extended. Pure: rules, immutable states, seeded episodes and replayable
transcripts; no I/O and no global random state. The Gymnasium wrapper (`gtalign.envs.gym`, extra
``games``) and model players live at the edges. Games by name: ``REGISTRY.create("game", name, **params)``
with "prisoners-dilemma", "bargaining", "signaling", "spence", "beer-quiche".

>>> from gtalign.envs import PrisonersDilemma, TitForTat, play
>>> play(PrisonersDilemma(rounds=3), [TitForTat(), TitForTat()], seed=0).payoffs
(9.0, 9.0)
>>> round(rubinstein_share(0.9, 0.9), 4)
0.5263
"""

from gtalign.envs._bargaining import (
    ACCEPT,
    BARGAINING_STRATEGIES,
    REJECT,
    Bargaining,
    BargainingSolution,
    BargainingState,
    FairBargainer,
    GreedyBargainer,
    RandomBargainer,
    finite_horizon_share,
    rubinstein_share,
)
from gtalign.envs._bargaining import backward_induction as bargaining_backward_induction
from gtalign.envs._core import (
    CHANCE,
    ECHO_WORDS,
    TERMINAL,
    Action,
    Episode,
    Game,
    GameError,
    InvalidMovePolicy,
    MoveError,
    MoveRecord,
    State,
    StepOutcome,
    Transcript,
    read_answer,
    replay,
)
from gtalign.envs._decisions import AnswerOutcome, DecisionPoint, answer_value, decision_points, payoff_range
from gtalign.envs._dilemma import (
    DILEMMA_STRATEGIES,
    AlwaysCooperate,
    AlwaysDefect,
    BackwardInduction,
    DilemmaState,
    GrimTrigger,
    PrisonersDilemma,
    RandomMove,
    TitForTat,
    grim_trigger_is_equilibrium,
    grim_trigger_threshold,
    is_subgame_perfect,
)
from gtalign.envs._dilemma import backward_induction as dilemma_backward_induction
from gtalign.envs._play import EquilibriumPlay, Strategy, TextPlayer, aplay, distance_from_equilibrium, play
from gtalign.envs._signaling import (
    SIGNALING_STRATEGIES,
    HighestSignal,
    Honest,
    LowestSignal,
    NormalForm,
    RandomPlay,
    Signaling,
    SignalingEquilibrium,
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

__all__ = [
    "ACCEPT",
    "BARGAINING_STRATEGIES",
    "CHANCE",
    "DILEMMA_STRATEGIES",
    "ECHO_WORDS",
    "REJECT",
    "SIGNALING_STRATEGIES",
    "TERMINAL",
    "Action",
    "AlwaysCooperate",
    "AlwaysDefect",
    "AnswerOutcome",
    "BackwardInduction",
    "Bargaining",
    "BargainingSolution",
    "BargainingState",
    "DecisionPoint",
    "DilemmaState",
    "Episode",
    "EquilibriumPlay",
    "FairBargainer",
    "Game",
    "GameError",
    "GreedyBargainer",
    "GrimTrigger",
    "HighestSignal",
    "Honest",
    "InvalidMovePolicy",
    "LowestSignal",
    "MoveError",
    "MoveRecord",
    "NormalForm",
    "PrisonersDilemma",
    "RandomBargainer",
    "RandomMove",
    "RandomPlay",
    "Signaling",
    "SignalingEquilibrium",
    "SignalingState",
    "State",
    "StepOutcome",
    "Strategy",
    "TextPlayer",
    "TitForTat",
    "Transcript",
    "answer_value",
    "aplay",
    "bargaining_backward_induction",
    "beer_quiche",
    "decision_points",
    "dilemma_backward_induction",
    "distance_from_equilibrium",
    "finite_horizon_share",
    "grim_trigger_is_equilibrium",
    "grim_trigger_threshold",
    "intuitive_criterion",
    "is_subgame_perfect",
    "normal_form",
    "payoff_range",
    "perfect_bayesian_equilibria",
    "play",
    "read_answer",
    "reference_equilibrium",
    "replay",
    "rubinstein_share",
    "spence",
    "spence_pooling_outcomes",
    "spence_separating_levels",
]
