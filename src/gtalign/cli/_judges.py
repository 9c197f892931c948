"""Judges for the command line: ``--judge rule``, ``--judge URL --judge-model NAME``, or any
registered judge name or ``module:attr`` path.

Judges are looked up through the registry when a command runs, never at import time, so
``gtalign --help`` stays fast and a judge module is only needed by the runs that use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from gtalign._registry import REGISTRY, RegistryError

__all__ = ["JudgeOptions", "JudgeSetupError", "build_judge", "close_judge", "describe_judge"]


class JudgeSetupError(ValueError):
    """The judge options are inconsistent or the judge cannot be built; says what to pass."""


@dataclass(frozen=True, slots=True)
class JudgeOptions:
    """How to build the judge.

    spec: None (no judge: rows must carry ``judge_verdict``), ``rule``, an ``http(s)://`` base URL
        of an OpenAI-compatible server, a registered judge name, or ``module:attr``.
    model: the served model name (URL judges only).
    api_key_env: environment variable with the API key (URL judges only; must be set when given).
    concurrency: requests in flight at once (URL judges only).
    cache: path of the verdict cache for URL judges; None uses the default cache file.
    use_cache: False disables the verdict cache.
    timeout: seconds one judge call may take, retries and their waits included
        (`ClientConfig.total_timeout`; URL judges only; None: the client's default).
    retries: HTTP retries after a call's first attempt (`ClientConfig.max_retries`; URL judges only).
    """

    spec: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    concurrency: int | None = None
    cache: str | None = None
    use_cache: bool = True
    timeout: float | None = None
    retries: int | None = None

    @property
    def is_url(self) -> bool:
        return self.spec is not None and self.spec.startswith(("http://", "https://"))

    @property
    def identity(self) -> str | None:
        """What decides the verdicts: the judge and, for a URL, the model (not the key, the
        concurrency, the cache or the timeouts). None: no judge."""
        if self.spec is None:
            return None
        if self.is_url:
            return f"{self.spec.rstrip('/')} model={self.model}"
        return self.spec


def _url_judge(options: JudgeOptions) -> Any:
    if not options.model:
        raise JudgeSetupError(f"--judge {options.spec} needs --judge-model NAME (the model name the server serves)")
    params: dict[str, Any] = {"base_url": options.spec, "model": options.model}
    if options.api_key_env:
        if not os.environ.get(options.api_key_env):
            raise JudgeSetupError(f"--judge-api-key-env {options.api_key_env}: the environment variable {options.api_key_env} is not set")
        params["api_key_env"] = options.api_key_env
    for name, value in (("concurrency", options.concurrency), ("total_timeout", options.timeout), ("max_retries", options.retries)):
        if value is not None:
            params[name] = value
    cache = None
    if options.use_cache:
        cache = params["cache"] = options.cache if options.cache else _default_cache()
    from gtalign.judges._cache import VerdictCacheError

    try:
        return REGISTRY.create("judge", "openai", **params)
    except VerdictCacheError as exc:
        flag = f"--judge-cache {options.cache}" if options.cache else f"the verdict cache {cache}"
        cause = exc.__cause__ or exc
        raise JudgeSetupError(
            f"{flag}: cannot be opened ({type(cause).__name__}: {cause}); pass another --judge-cache PATH, "
            "delete the file if it is corrupt, or run without a cache: --no-judge-cache"
        ) from exc


def _default_cache() -> Any:
    from gtalign.judges._cache import default_cache_path

    return default_cache_path()


def build_judge(options: JudgeOptions) -> Any:
    """The judge the options describe, or None when none is asked for.

    Raises `JudgeSetupError` with what to pass instead (a missing model, an unset variable, an
    unknown name with the valid ones, a judge module that is not installed).
    """
    from gtalign.judges._base import Judge

    url_only = [
        flag
        for flag, given in (
            ("--judge-model", options.model),
            ("--judge-api-key-env", options.api_key_env),
            ("--judge-concurrency", options.concurrency),
            ("--judge-cache", options.cache),
            ("--judge-timeout", options.timeout),
            ("--judge-retries", options.retries),
        )
        if given is not None
    ]
    if options.spec is None:
        if url_only:
            raise JudgeSetupError(f"{', '.join(url_only)} only apply with --judge URL")
        return None
    try:
        if options.is_url:
            judge = _url_judge(options)
        else:
            if url_only:
                raise JudgeSetupError(f"{', '.join(url_only)} only apply with --judge URL, not --judge {options.spec}")
            judge = REGISTRY.create("judge", options.spec)
    except RegistryError as exc:
        raise JudgeSetupError(f"judge {options.spec!r}: {exc}") from exc
    except JudgeSetupError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:
        raise JudgeSetupError(f"judge {options.spec!r} cannot be built: {exc}") from exc
    if not isinstance(judge, Judge):
        raise JudgeSetupError(f"judge {options.spec!r} is a {type(judge).__name__}, which lacks `name` and `async judge(requests)`")
    return judge


async def close_judge(judge: Any) -> None:
    """Release what the judge holds (connections, a cache, a process pool): ``aclose`` or ``close``."""
    closer = getattr(judge, "aclose", None)
    if closer is not None:
        await closer()
        return
    closer = getattr(judge, "close", None)
    if closer is not None:
        closer()


def describe_judge(judge: Any) -> str:
    """One line on what the judge did (calls, cache hits, failures), when it keeps counts."""
    stats = getattr(judge, "stats", None)
    if stats is None or not hasattr(stats, "calls"):
        return ""
    return (
        f"judge {judge.name}: {stats.rows} rows asked, {stats.calls} calls, "
        f"{stats.cache_hits} cache hits, {stats.failures} failures"
    )
