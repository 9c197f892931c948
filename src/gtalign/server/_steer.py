"""The proxy's one seam to the steering engine: load policies once, build the four-block prompt,
steer one request, and turn the engine's result into what a chat completion reports (text,
usage, finish reason, game record).

Clients send ordinary conversations, so the proxy adds the four-block instruction to the last user
message (`build_messages`, stating the request's welfare rule) and keeps the client's own system
message when there is one (gtalign's default system message otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gtalign.backends._base import ChatBackend, SamplingParams
from gtalign.game import DEFAULT_SPACE
from gtalign.protocol import DEFAULT_SYSTEM, build_messages
from gtalign.server._config import ConfigError
from gtalign._chat_client import TextStream
from gtalign.steering import Fallback, PricingPolicy, SteeringEngine, SteeringResult, check_policy, load_policy

__all__ = ["Steered", "load_policies", "prompt", "report", "steer", "steer_stream"]


@dataclass(frozen=True, slots=True)
class Steered:
    """One steered answer as the proxy reports it."""

    text: str
    status: str
    reason: str
    action: str | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    record: Mapping[str, Any]


def load_policies(names: Sequence[str]) -> dict[str, PricingPolicy]:
    """Each policy name or file resolved (and checked against the strategy space) once at start-up,
    so a bad one fails before serving rather than on a request."""
    policies: dict[str, PricingPolicy] = {}
    for name in names:
        try:
            policies[name] = load_policy(name)
            check_policy(policies[name], DEFAULT_SPACE)
        except (LookupError, ValueError, OSError) as exc:
            raise ConfigError(f"pricing policy {name!r}: {exc}") from None
    return policies


def prompt(messages: Sequence[Mapping[str, str]], rule: str) -> list[dict[str, str]]:
    """The conversation with the four-block instruction; `ValueError` says which message is wrong."""
    own_system = bool(messages) and messages[0]["role"] == "system"
    return build_messages(list(messages), system=None if own_system else DEFAULT_SYSTEM, rule=rule)


async def steer(
    backend: ChatBackend, messages: Sequence[Mapping[str, str]], *, policy: PricingPolicy, rule: str,
    params: SamplingParams, fallback: Fallback = Fallback(), constrain: str = "off",
) -> Steered:
    """Steer one prompt (from `prompt`); ``constrain`` as `SteeringEngine` takes it."""
    engine = SteeringEngine(backend, policy, rule=rule, params=params, fallback=fallback, constrain=constrain)  # type: ignore[arg-type]
    return report(await engine.run(messages))


def steer_stream(
    backend: ChatBackend, messages: Sequence[Mapping[str, str]], *, policy: PricingPolicy, rule: str,
    params: SamplingParams, fallback: Fallback = Fallback(), constrain: str = "off",
) -> TextStream[SteeringResult]:
    """`steer`, with the response text streamed as the model writes it (`SteeringEngine.stream`)."""
    engine = SteeringEngine(backend, policy, rule=rule, params=params, fallback=fallback, constrain=constrain)  # type: ignore[arg-type]
    return engine.stream(messages)


def report(result: SteeringResult) -> Steered:
    """What a chat completion reports of a steered answer. Usage sums every stage: each stage
    re-reads the prompt."""
    return Steered(
        text=result.response,
        status=result.status,
        reason=result.reason,
        action=result.chosen_key,
        finish_reason="length" if any(event.kind == "truncated" for event in result.fallbacks) else "stop",
        prompt_tokens=sum(stage.tokens_in or 0 for stage in result.stages),
        completion_tokens=sum(stage.tokens_out or 0 for stage in result.stages),
        record=result.to_record(),
    )
