"""Pricing policies: explicit, documented transforms of the payoff matrix before the decision.

A pricing policy says how a change in what the service costs, and in who pays for it, moves the
players' payoffs. Steering (SPEC section 4) applies it to the model's own matrix and lets the welfare
rule choose on the result. Four kinds:

* ``none`` (`IdentityPolicy`): the matrix as the model wrote it.
* ``research-llm-shift`` / ``research-user-shift`` (`ResearchShiftPolicy`): the research code's two
  shifts by ``s`` (`gtalign.game.llm_price_shift`, `gtalign.game.user_price_shift`), as presets.
* ``affine`` (`AffinePolicy`): any per-action affine transform (`gtalign.game.AffineTransform`).
* ``economic`` (`EconomicPolicy`): token prices, each action's expected token counts and who pays
  under the pricing model, turned into a cost subtracted from the payer's payoff.

Policies load from YAML or JSON files (`load_policy`) and are selectable by name through the
registry (kind ``"pricing"``); the files shipped in ``gtalign/examples/pricing`` are examples.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from gtalign._registry import REGISTRY, RegistryError
from gtalign.game import (
    AffineTransform,
    Payoff,
    PayoffError,
    PayoffMatrix,
    StrategySpace,
    llm_price_shift,
    user_price_shift,
)

__all__ = [
    "BILLING_MODELS",
    "EXAMPLES_DIR",
    "AffinePolicy",
    "Billing",
    "EconomicPolicy",
    "IdentityPolicy",
    "PolicyError",
    "PolicySpec",
    "PricingPolicy",
    "ResearchShiftPolicy",
    "TokenEstimate",
    "affine",
    "api_pay_per_token",
    "approximate_tokens",
    "check_policy",
    "economic",
    "estimate_output_tokens",
    "identity",
    "load_policy",
    "policy_from_dict",
    "research_llm_shift",
    "research_user_shift",
    "subscription",
    "team_plan_split",
]

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples" / "pricing"
"""The example policy files shipped with gtalign."""

POLICY_SUFFIXES = (".yaml", ".yml", ".json")

Billing = Literal["pay-per-token", "subscription", "split"]
BILLING_MODELS: Mapping[str, str] = MappingProxyType(
    {
        "pay-per-token": "the user is billed per token (an API): the user bears the whole cost",
        "subscription": "the user pays a flat fee: each extra token is the provider's (the LLM side's) cost",
        "split": "the cost is shared: the user bears `user_share` of it, the provider the rest",
    }
)


class PolicyError(ValueError):
    """A pricing policy that cannot be built; the message names the source (file) and the key."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        where = ", ".join(part for part in (source, f"key {key!r}" if key else None) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.detail = message
        self.source = source
        self.key = key


@dataclass(frozen=True, kw_only=True)
class PricingPolicy(ABC):
    """A named, documented transform of the payoff matrix. Subclasses say what ``transform`` does.

    ``to_dict`` gives the policy back in the file format `load_policy` reads, so a game record
    names exactly the policy that produced it.
    """

    name: str
    description: str = ""

    kind: str = field(init=False, default="", repr=False)

    @abstractmethod
    def transform(self, matrix: PayoffMatrix) -> PayoffMatrix:
        """The matrix the welfare rule decides on."""

    @property
    def is_identity(self) -> bool:
        return False

    def params(self) -> dict[str, Any]:
        """The kind-specific fields, JSON-ready."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "description": self.description, **self.params()}


@dataclass(frozen=True, kw_only=True)
class IdentityPolicy(PricingPolicy):
    """No pricing change: the decision is taken on the model's own matrix."""

    name: str = "none"
    description: str = "no pricing change: decide on the matrix as the model wrote it"
    kind: str = field(init=False, default="none", repr=False)

    def transform(self, matrix: PayoffMatrix) -> PayoffMatrix:
        return matrix

    @property
    def is_identity(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class ResearchShiftPolicy(PricingPolicy):
    """The research code's shifts by ``s`` (SPEC section 4), rounded to one decimal.

    ``side="llm"``: an LLM-side price change: every LLM payoff ``+s``, the user ``+1`` for AQ,
    ``+0.5`` for CQ, ``+0`` for DA. ``side="user"``: every user payoff ``+s``, the LLM ``+1`` for DA,
    ``+0.5`` for AQ, ``+0`` for CQ. A negative ``s`` is a price rise for that side.
    """

    side: Literal["llm", "user"]
    s: float = 1.0
    name: str = ""
    description: str = ""
    kind: str = field(init=False, default="", repr=False)

    def __post_init__(self) -> None:
        if self.side not in ("llm", "user"):
            raise PolicyError(f"side must be 'llm' or 'user', got {self.side!r}", key="side")
        s = _finite(self.s, "s")
        object.__setattr__(self, "s", s)
        object.__setattr__(self, "kind", f"research-{self.side}-shift")
        if not self.name:
            object.__setattr__(self, "name", f"research-{self.side}-shift(s={s:g})")
        if not self.description:
            payer = "LLM" if self.side == "llm" else "user"
            object.__setattr__(
                self, "description", f"the research code's {payer}-side price shift by s={s:g} (one decimal)"
            )

    def shift(self) -> AffineTransform:
        return llm_price_shift(self.s) if self.side == "llm" else user_price_shift(self.s)

    def transform(self, matrix: PayoffMatrix) -> PayoffMatrix:
        return self.shift().apply(matrix)

    def params(self) -> dict[str, Any]:
        return {"s": self.s}


_AFFINE_MAPPINGS = ("user_offset", "llm_offset", "user_scale", "llm_scale")


@dataclass(frozen=True, kw_only=True)
class AffinePolicy(PricingPolicy):
    """Any per-action affine transform: ``payoff' = scale[a] * payoff + offset[a] + shift`` per party."""

    affine: AffineTransform
    name: str = "affine"
    description: str = "a per-action affine transform of both parties' payoffs"
    kind: str = field(init=False, default="affine", repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.affine, AffineTransform):
            raise PolicyError(f"must be an AffineTransform, got {type(self.affine).__name__}", key="affine")

    def transform(self, matrix: PayoffMatrix) -> PayoffMatrix:
        return self.affine.apply(matrix)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {attr: dict(getattr(self.affine, attr)) for attr in _AFFINE_MAPPINGS}
        out = {k: v for k, v in out.items() if v}
        for attr in ("user_shift", "llm_shift"):
            if getattr(self.affine, attr):
                out[attr] = getattr(self.affine, attr)
        if self.affine.decimals is not None:
            out["decimals"] = self.affine.decimals
        return out


@dataclass(frozen=True, kw_only=True)
class EconomicPolicy(PricingPolicy):
    """Token prices and who pays them, as a cost subtracted from the payer's payoff.

    For each assistant action ``a`` (question types do not change the cost)::

        cost(a)    = (input_tokens[a] * price_per_1k_input + output_tokens[a] * price_per_1k_output) / 1000
        penalty(a) = payoff_per_currency * cost(a)                      # currency -> payoff units
        user'      = user - share * penalty(a)
        LLM'       = LLM  - (1 - share) * penalty(a)

    where ``share`` is the user's part of the bill: 1 under ``pay-per-token`` (the user is billed per
    token), 0 under ``subscription`` (a flat fee: each extra token costs the provider, the LLM side),
    ``user_share`` under ``split``. ``input_tokens[a]`` and ``output_tokens[a]`` are the tokens the
    action is expected to cause, including any further turn it makes necessary (a clarifying
    question means another round trip that re-reads the conversation); actions missing from
    ``input_tokens`` cause none. Every action of the matrix must have ``output_tokens``: a cost of
    zero by omission would silently favour that action. ``decimals`` rounds the result.

    Who pays does not matter to the utilitarian ``sum`` rule (the total cost is the same); it does to
    rules that care how welfare is split (``cobb_douglas``, ``nash``, ``egalitarian``, ``product``).
    """

    price_per_1k_output: float
    output_tokens: Mapping[str, float]
    price_per_1k_input: float = 0.0
    input_tokens: Mapping[str, float] = field(default_factory=dict)
    billing: Billing = "pay-per-token"
    user_share: float | None = None
    payoff_per_currency: float = 1.0
    decimals: int | None = None
    name: str = "economic"
    description: str = "token prices times expected token counts, charged to whoever pays"
    kind: str = field(init=False, default="economic", repr=False)

    def __post_init__(self) -> None:
        for attr in ("price_per_1k_output", "price_per_1k_input", "payoff_per_currency"):
            value = _finite(getattr(self, attr), attr)
            if value < 0:
                raise PolicyError(f"must be >= 0, got {value:g}", key=attr)
            object.__setattr__(self, attr, value)
        for attr in ("output_tokens", "input_tokens"):
            object.__setattr__(self, attr, _token_map(getattr(self, attr), attr))
        if not self.output_tokens:
            raise PolicyError("give the expected output tokens of each action, e.g. {DA: 300, CQ: 40, AQ: 180}",
                              key="output_tokens")
        unknown = sorted(set(self.input_tokens) - set(self.output_tokens))
        if unknown:
            raise PolicyError(f"actions {unknown} have no output_tokens", key="input_tokens")
        if self.billing not in BILLING_MODELS:
            raise PolicyError(f"must be one of {', '.join(BILLING_MODELS)}, got {self.billing!r}", key="billing")
        if self.billing == "split":
            if self.user_share is None:
                raise PolicyError("billing 'split' needs user_share, the user's part of the bill in [0, 1]",
                                  key="user_share")
            share = _finite(self.user_share, "user_share")
            if not 0.0 <= share <= 1.0:
                raise PolicyError(f"must be in [0, 1], got {share:g}", key="user_share")
            object.__setattr__(self, "user_share", share)
        elif self.user_share is not None:
            raise PolicyError(f"only billing 'split' takes user_share (billing is {self.billing!r})", key="user_share")
        if self.decimals is not None and (isinstance(self.decimals, bool) or not isinstance(self.decimals, int)
                                          or self.decimals < 0):
            raise PolicyError(f"must be an integer >= 0 or null, got {self.decimals!r}", key="decimals")

    def __hash__(self) -> int:
        return hash((self.name, self.billing, self.user_share, self.price_per_1k_input, self.price_per_1k_output,
                     frozenset(self.output_tokens.items()), frozenset(self.input_tokens.items()),
                     self.payoff_per_currency, self.decimals))

    @property
    def share(self) -> float:
        """The user's part of the bill (1 pay-per-token, 0 subscription, ``user_share`` split)."""
        if self.billing == "pay-per-token":
            return 1.0
        if self.billing == "subscription":
            return 0.0
        return float(self.user_share or 0.0)

    def cost(self, action: str) -> float:
        """Expected cost of ``action`` in currency units."""
        if action not in self.output_tokens:
            raise PayoffError(f"{self.name}: no output_tokens for action {action!r}; priced: {sorted(self.output_tokens)}")
        spent = self.input_tokens.get(action, 0.0) * self.price_per_1k_input
        spent += self.output_tokens[action] * self.price_per_1k_output
        return spent / 1000.0

    def penalty(self, action: str) -> float:
        """Expected cost of ``action`` in payoff units, before it is split between the parties."""
        return self.payoff_per_currency * self.cost(action)

    def affine(self, actions: Iterable[str]) -> AffineTransform:
        """The transform over ``actions`` as an `AffineTransform` (offsets only)."""
        actions = tuple(actions)
        penalties = {a: self.penalty(a) for a in actions}
        return AffineTransform(
            user_offset={a: -self.share * p for a, p in penalties.items()},
            llm_offset={a: -(1.0 - self.share) * p for a, p in penalties.items()},
            decimals=self.decimals,
            name=self.name,
        )

    def transform(self, matrix: PayoffMatrix) -> PayoffMatrix:
        return self.affine(matrix.space.actions).apply(matrix)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "billing": self.billing,
            "price_per_1k_input": self.price_per_1k_input,
            "price_per_1k_output": self.price_per_1k_output,
            "input_tokens": dict(self.input_tokens),
            "output_tokens": dict(self.output_tokens),
            "payoff_per_currency": self.payoff_per_currency,
            "decimals": self.decimals,
        }
        if self.billing == "split":
            out["user_share"] = self.user_share
        return out


def _finite(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise PolicyError(f"must be a finite number, got {value!r}", key=key)
    return float(value)


def _token_map(value: Any, key: str) -> Mapping[str, float]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"must map actions to token counts, got {type(value).__name__}", key=key)
    out = {}
    for action, count in value.items():
        number = _finite(count, f"{key}.{action}")
        if number < 0:
            raise PolicyError(f"must be >= 0, got {number:g}", key=f"{key}.{action}")
        out[str(action)] = number
    return MappingProxyType(out)


def check_policy(policy: PricingPolicy, space: StrategySpace) -> None:
    """Raise `PolicyError` now if ``policy`` cannot transform matrices over ``space`` (an action it
    does not price, an offset for an action the space lacks), rather than on the first answer."""
    zero = PayoffMatrix(tuple(Payoff(0.0, 0.0) for _ in space.keys), space)
    try:
        policy.transform(zero)
    except PayoffError as exc:
        raise PolicyError(f"does not fit the strategy space {list(space.actions)}: {exc}", source=policy.name) from exc


# ---------------------------------------------------------------------------------------------
# Estimating each action's output tokens from data.

def approximate_tokens(text: str) -> int:
    """About four characters per token (a common rule of thumb for English BPE vocabularies);
    pass a tokenizer's count to `estimate_output_tokens` for exact numbers."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True, slots=True)
class TokenEstimate:
    """Mean output tokens per action, how many completions each mean rests on, and how many
    completions were skipped (no ``<response>`` block, or one that neither asks nor answers)."""

    means: Mapping[str, float]
    counts: Mapping[str, int]
    skipped: int = 0


def _completion_text(item: Any) -> str | None:
    fields_ = getattr(item, "fields", item)
    if isinstance(fields_, str):
        return fields_
    if isinstance(fields_, Mapping):
        for key in ("completion", "solution_str", "response"):
            found = fields_.get(key)
            if isinstance(found, str):
                return found
    return None


def estimate_output_tokens(
    completions: Iterable[str | Mapping[str, Any] | Any],
    *,
    count: Callable[[str], int] = approximate_tokens,
    part: Literal["completion", "response"] = "completion",
) -> TokenEstimate:
    """Mean output tokens per action over four-block completions, grouped by what the response does.

    Each completion (a string, a mapping with ``completion``/``solution_str``, or a `gtalign.data.Row`)
    is parsed, its ``<response>`` block classified with `gtalign.protocol.classify_act` (DA, CQ or
    AQ: a heuristic), and ``count`` applied to the whole completion (what is billed; default) or to
    the response only. Completions without a response, or whose response is ``NONE``, are skipped.
    """
    from gtalign.protocol import classify_act, parse_answer

    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    skipped = 0
    for item in completions:
        text = _completion_text(item)
        response = None if text is None else parse_answer(text).response
        if text is None or not response:
            skipped += 1
            continue
        act = classify_act(response).act
        if act == "NONE":
            skipped += 1
            continue
        totals[act] = totals.get(act, 0.0) + count(text if part == "completion" else response)
        counts[act] = counts.get(act, 0) + 1
    means = {act: totals[act] / counts[act] for act in sorted(totals)}
    return TokenEstimate(MappingProxyType(means), MappingProxyType(dict(sorted(counts.items()))), skipped)


# ---------------------------------------------------------------------------------------------
# Loading: files, mappings and registry names.

_COMMON_KEYS = ("kind", "name", "description")
_KIND_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "none": (),
        "research-llm-shift": ("s",),
        "research-user-shift": ("s",),
        "affine": (*_AFFINE_MAPPINGS, "user_shift", "llm_shift", "decimals"),
        "economic": tuple(
            f.name for f in fields(EconomicPolicy) if f.init and f.name not in ("name", "description")
        ),
    }
)


def _load_rows(path: Path, source: str, key: str) -> list[Any]:
    if not path.exists():
        raise PolicyError(f"rows file {str(path)!r} does not exist", source=source, key=key)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        from gtalign.data import read_jsonl

        return [row for row in read_jsonl(path) if row.ok]
    if path.suffix.lower() == ".parquet":
        from gtalign.data import read_parquet

        return [row for row in read_parquet(path) if row.ok]
    raise PolicyError(f"rows file must be .jsonl, .ndjson or .parquet, got {path.name!r}", source=source, key=key)


def _output_tokens(value: Any, source: str, base_dir: Path | None) -> Any:
    """``{from_rows: FILE, DA: 300}``: estimate from a rows file, explicit counts override."""
    if not isinstance(value, Mapping) or "from_rows" not in value:
        return value
    rows_file = value["from_rows"]
    if not isinstance(rows_file, str):
        raise PolicyError(f"must be a file path, got {type(rows_file).__name__}", source=source, key="output_tokens.from_rows")
    path = Path(rows_file)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    estimate = estimate_output_tokens(_load_rows(path, source, "output_tokens.from_rows"))
    merged: dict[str, Any] = {k: round(v, 1) for k, v in estimate.means.items()}
    merged.update({k: v for k, v in value.items() if k != "from_rows"})
    return merged


def policy_from_dict(data: Mapping[str, Any], *, source: str = "<mapping>", base_dir: Path | None = None) -> PricingPolicy:
    """A policy from its file form: ``kind`` (``none``, ``research-llm-shift``,
    ``research-user-shift``, ``affine``, ``economic``), optional ``name`` and ``description``, and
    the kind's own keys. Errors name ``source`` and the key at fault."""
    if not isinstance(data, Mapping):
        raise PolicyError(f"a policy must be a mapping of keys, got {type(data).__name__}", source=source)
    kind = data.get("kind")
    if kind not in _KIND_KEYS:
        raise PolicyError(f"must be one of {', '.join(_KIND_KEYS)}, got {kind!r}", source=source, key="kind")
    allowed = (*_COMMON_KEYS, *_KIND_KEYS[kind])
    for key in data:
        if key not in allowed:
            raise PolicyError(f"unknown key for kind {kind!r}; allowed: {', '.join(allowed)}", source=source, key=str(key))
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise PolicyError(f"must be a string, got {type(data[key]).__name__}", source=source, key=key)
    common = {k: data[k] for k in ("name", "description") if k in data}
    params = {k: data[k] for k in _KIND_KEYS[kind] if k in data}
    try:
        if kind == "none":
            return IdentityPolicy(**common)
        if kind in ("research-llm-shift", "research-user-shift"):
            return ResearchShiftPolicy(side="llm" if kind == "research-llm-shift" else "user", **params, **common)
        if kind == "affine":
            try:
                transform = AffineTransform(**params, name=str(common.get("name", "affine")))
            except PayoffError as exc:
                raise PolicyError(str(exc), key=next((k for k in params if k in str(exc)), None)) from exc
            return AffinePolicy(affine=transform, **common)
        if "output_tokens" not in params or "price_per_1k_output" not in params:
            missing = "output_tokens" if "output_tokens" not in params else "price_per_1k_output"
            raise PolicyError("is required for kind 'economic'", key=missing)
        params["output_tokens"] = _output_tokens(params["output_tokens"], source, base_dir)
        return EconomicPolicy(**params, **common)
    except PolicyError as exc:
        if exc.source is not None:
            raise
        raise PolicyError(exc.detail, source=source, key=exc.key) from exc
    except TypeError as exc:
        raise PolicyError(str(exc), source=source) from exc


def _read_file(path: Path) -> Any:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError("no such pricing policy file", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read: {exc}", source=source) from exc
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", source=source) from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"not valid YAML{where}: {problem}", source=source) from None


def _looks_like_path(spec: str) -> bool:
    return spec.lower().endswith(POLICY_SUFFIXES) or os.sep in spec or "/" in spec


def _coerce(target: Any, name: str) -> PricingPolicy:
    if isinstance(target, PricingPolicy):
        return target
    if isinstance(target, AffineTransform):
        return AffinePolicy(affine=target, name=target.name)
    raise PolicyError(f"pricing {name!r} gave a {type(target).__name__}, not a PricingPolicy or AffineTransform")


PolicySpec = str | os.PathLike[str] | PricingPolicy | Mapping[str, Any]
"""What names a policy: a registered name, a file, a mapping in the file form, or a ready policy."""


def load_policy(spec: PolicySpec, /, **params: Any) -> PricingPolicy:
    """The pricing policy ``spec`` names: a registered name (``"none"``, ``"research-llm-shift"``,
    ``"api-pay-per-token"``, ...), a ``.yaml``/``.yml``/``.json`` file, a mapping in the file form,
    a dotted path ``module:attr``, or a ready policy. ``params`` override the file's keys or are
    passed to the registered factory (e.g. ``load_policy("research-llm-shift", s=2)``).

    >>> load_policy("research-user-shift", s=-1).name
    'research-user-shift(s=-1)'
    """
    if isinstance(spec, PricingPolicy):
        if params:
            raise PolicyError(f"a ready PricingPolicy takes no parameters (got {sorted(params)})", source=spec.name)
        return spec
    if isinstance(spec, Mapping):
        return policy_from_dict({**spec, **params})
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and _looks_like_path(spec)):
        path = Path(spec)
        data = _read_file(path)
        if isinstance(data, Mapping):
            data = {**data, **params}
        return policy_from_dict(data, source=str(path), base_dir=path.parent)
    if not isinstance(spec, str):
        raise PolicyError(f"expected a policy name, file, mapping or PricingPolicy, got {type(spec).__name__}")
    try:
        target = REGISTRY.create("pricing", spec, **params)
    except RegistryError as exc:
        raise PolicyError(f"{exc}; or give a .yaml/.json policy file") from None
    except TypeError as exc:
        raise PolicyError(f"pricing {spec!r} cannot be built with parameters {sorted(params)}: {exc}") from exc
    return _coerce(target, spec)


# ---------------------------------------------------------------------------------------------
# Factories the registry names (kind "pricing").

def identity(**params: Any) -> PricingPolicy:
    """``none``: no pricing change."""
    return policy_from_dict({"kind": "none", **params}, source="pricing 'none'")


def research_llm_shift(s: float = 1.0, **params: Any) -> PricingPolicy:
    """``research-llm-shift``: the research code's LLM-side shift by ``s`` (default 1)."""
    return policy_from_dict({"kind": "research-llm-shift", "s": s, **params}, source="pricing 'research-llm-shift'")


def research_user_shift(s: float = 1.0, **params: Any) -> PricingPolicy:
    """``research-user-shift``: the research code's user-side shift by ``s`` (default 1)."""
    return policy_from_dict({"kind": "research-user-shift", "s": s, **params}, source="pricing 'research-user-shift'")


def affine(**params: Any) -> PricingPolicy:
    """``affine``: an `AffinePolicy` from the file form's keys."""
    return policy_from_dict({"kind": "affine", **params}, source="pricing 'affine'")


def economic(**params: Any) -> PricingPolicy:
    """``economic``: an `EconomicPolicy` from the file form's keys."""
    return policy_from_dict({"kind": "economic", **params}, source="pricing 'economic'")


def api_pay_per_token(**overrides: Any) -> PricingPolicy:
    """``api-pay-per-token``: the shipped example of an API billed per token (the user pays)."""
    return load_policy(EXAMPLES_DIR / "api-pay-per-token.yaml", **overrides)


def subscription(**overrides: Any) -> PricingPolicy:
    """``subscription``: the shipped example of a flat subscription (the provider pays per token)."""
    return load_policy(EXAMPLES_DIR / "subscription.yaml", **overrides)


def team_plan_split(**overrides: Any) -> PricingPolicy:
    """``team-plan-split``: the shipped example of a shared bill, output tokens estimated from rollouts."""
    return load_policy(EXAMPLES_DIR / "team-plan-split.yaml", **overrides)
