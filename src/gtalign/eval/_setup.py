"""Turning an `EvalConfig` into the objects a run uses: the benchmark rows, the backend, the preset,
the judge and (steered runs) the pricing policy. Every failure is an `EvalSetupError` naming the
setting, raised before anything is generated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gtalign._registry import RegistryError, _resolve
from gtalign.eval._config import EvalConfig, EvalSetupError

if TYPE_CHECKING:
    from gtalign.backends._base import ChatBackend
    from gtalign.benchmarks import BenchmarkRow
    from gtalign.reward import RewardPreset
    from gtalign.steering import PricingPolicy

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Concurrency",
    "build_eval_backend",
    "build_eval_judge",
    "build_eval_policy",
    "build_eval_preset",
    "check_rows",
    "check_rule",
    "choose_concurrency",
    "describe_backend",
    "load_rows",
]

DEFAULT_CONCURRENCY = 8
"""Rows in flight for a backend that has no limit of its own (a custom backend) when none is given."""


@dataclass(frozen=True, slots=True)
class Concurrency:
    """How many rows a run keeps in flight, and where that number came from (the run says so,
    since a number nobody chose is the first suspect of a slow or overloaded run)."""

    rows: int
    source: str

    def __str__(self) -> str:
        return f"{self.rows} in flight ({self.source})"


def load_rows(config: EvalConfig) -> tuple[list[BenchmarkRow], list[str]]:
    """Every row of every benchmark, in order, and notes on rows the loader skipped."""
    try:
        from gtalign.benchmarks import load_benchmark  # type: ignore[attr-defined]
    except ImportError as exc:
        raise EvalSetupError(f"benchmarks cannot be loaded by this gtalign ({exc})") from None
    rows: list[BenchmarkRow] = []
    notes: list[str] = []
    for name in config.benchmarks:
        try:
            benchmark = load_benchmark(name, data=config.data, limit=config.limit, seed=config.seed,
                                       sources=config.sources, prompt=config.prompt, split=config.split)
        except (ValueError, LookupError, OSError) as exc:
            raise EvalSetupError(f"benchmark {name!r}: {exc}") from None
        rows.extend(benchmark.rows)
        label = getattr(benchmark, "name", name)
        skipped = tuple(getattr(benchmark, "skipped", ()))
        if skipped:
            first = skipped[0]
            notes.append(f"benchmark {label}: {len(skipped)} rows cannot be used and are left out "
                         f"(first: row {getattr(first, 'index', '?')}: {getattr(first, 'reason', first)})")
        notes.extend(f"benchmark {label}: {warning}" for warning in getattr(benchmark, "warnings", ()))
    return rows, notes


def check_rows(rows: Sequence[BenchmarkRow]) -> None:
    """Refuse a plan whose ids collide: records join on ``(id, epoch)``."""
    seen: set[str] = set()
    for row in rows:
        if row.id in seen:
            raise EvalSetupError(f"two benchmark rows have the id {row.id!r}: records could not be told apart; "
                                 "run the benchmarks that share it separately")
        seen.add(row.id)
    if not rows:
        raise EvalSetupError("the benchmarks yield no rows (check --source and --limit)")


def build_eval_backend(spec: str, model: str | None = None, concurrency: int | None = None) -> ChatBackend:
    """The backend ``spec`` names: ``embedded``, ``embedded:PATH``, an http(s) URL, or ``module:attr``.
    ``concurrency`` sets an HTTP backend's client limit for its server and model (None: the
    client's default), so rows in flight and requests in flight are one number."""
    if spec == "embedded" or spec.startswith("embedded:"):
        from gtalign.backends._model_store import embedded_model

        path = embedded_model(spec.partition(":")[2] or model)
        try:
            from gtalign.backends._embedded import EmbeddedBackend
        except ImportError as exc:
            raise EvalSetupError(f"backend {spec!r}: the embedded backend is not available ({exc}); install it with "
                                 "pip install 'gtalign[embedded]', or give the URL of an OpenAI-compatible server") from None
        return EmbeddedBackend(path)
    if spec.startswith(("http://", "https://")):
        from gtalign.backends._http import HTTPBackend

        try:
            return HTTPBackend(spec, model, **({} if concurrency is None else {"concurrency": concurrency}))
        except (ValueError, TypeError) as exc:
            raise EvalSetupError(f"backend {spec!r}: {exc}") from None
    if ":" not in spec or "://" in spec:
        raise EvalSetupError(f"backend must be 'embedded', 'embedded:PATH', an http(s):// URL or 'module:attr', got {spec!r}")
    try:
        target: Any = _resolve(spec)
    except RegistryError as exc:
        raise EvalSetupError(f"backend {spec!r}: {exc}") from None
    from gtalign.backends._base import ChatBackend

    if isinstance(target, type) or (not isinstance(target, ChatBackend) and callable(target)):  # a class or a factory
        try:
            target = target(model=model) if model is not None else target()
        except Exception as exc:
            raise EvalSetupError(f"backend {spec!r} cannot be built: {type(exc).__name__}: {exc}") from None
    if not isinstance(target, ChatBackend):
        raise EvalSetupError(f"backend {spec!r} is a {type(target).__name__}, which lacks `name`, `model`, "
                             "`async generate(messages, prefill=, params=)` and `async aclose()`")
    return target


def describe_backend(backend: Any) -> str:
    """The backend's id in the run header: ``name:model``."""
    return f"{getattr(backend, 'name', type(backend).__name__)}:{getattr(backend, 'model', '')}"


def choose_concurrency(concurrency: int | None, backend: Any) -> Concurrency:
    """Rows in flight: ``concurrency`` when given; else the backend's own limit, so one setting
    governs: the embedded backend's batch size (it decodes concurrent calls as one batch), an HTTP
    backend's client limit for its server and model (`ClientConfig.concurrency`, the limit a
    judge's client has too), else `DEFAULT_CONCURRENCY`."""
    if concurrency is not None:
        return Concurrency(concurrency, "set by concurrency / --concurrency")
    batch = getattr(backend, "max_batch", None)
    if isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1:
        return Concurrency(batch, "the embedded backend's batch size")
    from gtalign._chat_client import ClientConfig

    client = getattr(backend, "config", None)
    if isinstance(client, ClientConfig):
        return Concurrency(client.concurrency, f"the HTTP client's limit for {client.base_url} model {client.model}")
    return Concurrency(DEFAULT_CONCURRENCY, "the default for a backend without a limit of its own")


def build_eval_preset(config: EvalConfig) -> RewardPreset:
    from gtalign.reward import get_preset

    try:
        return get_preset(config.preset, **config.preset_params)
    except RegistryError as exc:
        raise EvalSetupError(f"preset: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise EvalSetupError(f"preset {config.preset!r} cannot be built with {dict(config.preset_params)}: {exc}") from None


def build_eval_judge(config: EvalConfig) -> Any:
    """The judge (None without one), built the way ``gtalign score`` builds it."""
    from gtalign.cli._judges import JudgeOptions, JudgeSetupError, build_judge

    try:
        return build_judge(JudgeOptions(spec=config.judge, model=config.judge_model))
    except JudgeSetupError as exc:
        raise EvalSetupError(str(exc)) from None


def build_eval_policy(config: EvalConfig) -> PricingPolicy:
    from gtalign.steering import PolicyError, load_policy

    try:
        return load_policy(config.pricing, **config.pricing_params)
    except PolicyError as exc:
        raise EvalSetupError(f"pricing: {exc}") from None


def check_rule(config: EvalConfig) -> None:
    from gtalign.game import PayoffError, welfare_rule

    try:
        welfare_rule(config.rule)
    except (RegistryError, PayoffError) as exc:
        raise EvalSetupError(f"rule: {exc}") from None
