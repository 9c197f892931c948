"""Classic games as text environments: the sequential prisoner's dilemma, Rubinstein bargaining and
a signaling game, with their equilibria as test oracles.

Pure: rules, immutable states, seeded episodes and replayable transcripts; no I/O and no global
random state. The Gymnasium wrapper (`gtalign.envs.gym`) and model players live at the edges.
"""

from gtalign.envs._core import (
    CHANCE,
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
    replay,
)
from gtalign.envs._play import EquilibriumPlay, Strategy, TextPlayer, aplay, distance_from_equilibrium, play

__all__ = [
    "CHANCE",
    "TERMINAL",
    "Action",
    "Episode",
    "EquilibriumPlay",
    "Game",
    "GameError",
    "InvalidMovePolicy",
    "MoveError",
    "MoveRecord",
    "State",
    "StepOutcome",
    "Strategy",
    "TextPlayer",
    "Transcript",
    "aplay",
    "distance_from_equilibrium",
    "play",
    "replay",
]
