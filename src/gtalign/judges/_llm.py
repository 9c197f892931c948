"""The LLM judge: any OpenAI-compatible server, our rubrics, a verdict cache, no silent zeros.

A batch is de-duplicated (identical requests are judged once and fanned out), looked up in the
cache, and the rest is sent concurrently through `ChatClient`. Every row gets a `Verdict`: ``ok``,
or ``failed`` / ``unparsable`` / ``invalid`` / ``refused`` with the reason, never an exception.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import httpx

from gtalign.judges._cache import VerdictCache
from gtalign._chat_client import ChatClient, ChatResult, ClientConfig, Clock, Sleep, merge_client_config
from gtalign.judges._rubrics import RUBRICS, Rubric, RubricError, rubric_for
from gtalign.reward._types import JudgeRequest, Verdict

__all__ = ["JudgeStats", "LLMJudge", "Progress"]

_log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` over a batch's rows, as verdicts arrive."""


@dataclass(frozen=True, slots=True)
class JudgeStats:
    """Counters since the judge was made (or `LLMJudge.reset_stats`).

    rows: requests asked for. unique: distinct requests after de-duplication within batches.
    cache_hits: distinct requests answered from the cache. calls: chat calls made (a parse retry
    is a second call). http_requests: HTTP attempts, retries included. retries: HTTP retries.
    parse_retries: extra calls because a reply had no usable verdict. failures: rows whose verdict
    is not ok. tokens_in / tokens_out: as reported by the server. latency: summed seconds of calls.
    """

    rows: int = 0
    unique: int = 0
    cache_hits: int = 0
    calls: int = 0
    http_requests: int = 0
    retries: int = 0
    parse_retries: int = 0
    failures: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    latency: float = 0.0

    @property
    def deduplicated(self) -> int:
        """Rows that needed no request of their own because an identical one was in the batch."""
        return self.rows - self.unique


class _Counters:
    """The mutable side of `JudgeStats` (one event loop mutates it; snapshots are frozen)."""

    def __init__(self) -> None:
        self.values = {f.name: 0 for f in fields(JudgeStats)}

    def add(self, **amounts: float) -> None:
        for name, amount in amounts.items():
            self.values[name] += amount

    def snapshot(self) -> JudgeStats:
        return JudgeStats(**self.values)


class LLMJudge:
    """A `Judge` backed by a chat model behind an OpenAI-compatible endpoint.

    base_url / model: the server root (``.../v1``) and the served model name; optional when
        ``client`` is given (if given too, they override it).
    client: a `ClientConfig` to start from (None: its defaults).
    **client_options: any other `ClientConfig` field by name (api_key_env, concurrency, rpm, the
        timeouts, retries and backoff, headers), overriding ``client``; see `ClientConfig` for
        each. How long one row may take: ``total_timeout`` (seconds, retries and waits included)
        and ``max_retries``; how soon a server that is down is given up on: ``connect_retries``.
        An unknown name is a TypeError listing the valid ones. ``seed`` below is the sampling
        seed: the client's jitter seed (`ClientConfig.seed`) comes only through ``client``.
    cache: a `VerdictCache`, a path to one, or None (no cache). A path opened here is closed by
        `aclose`; a `VerdictCache` passed in stays the caller's.
    temperature, max_tokens, top_p, seed: sampling settings of every call (temperature, top_p,
        seed and extra_body are part of the cache key, max_tokens is not: a cut reply is never cached).
    extra_body: merged into every request (e.g. ``{"chat_template_kwargs": {"enable_thinking": False}}``).
    parse_retries: extra calls, with a reminder of the format, when a reply has no usable verdict.
    rubrics: task -> `Rubric` (default: `RUBRICS`).
    name: the judge's name in verdicts and cache keys.
    progress: optional ``progress(done, total)`` callback.
    sleep, clock, transport: test hooks passed to `ChatClient` (zero waits, a fake `Clock`, mock
        transports).
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        client: ClientConfig | None = None,
        cache: VerdictCache | str | os.PathLike[str] | None = None,
        temperature: float | None = 0.0,
        max_tokens: int | None = 4096,
        top_p: float | None = None,
        seed: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
        parse_retries: int = 1,
        rubrics: Mapping[str, Rubric] | None = None,
        name: str = "llm",
        progress: Progress | None = None,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **client_options: Any,
    ) -> None:
        if parse_retries < 0:
            raise ValueError(f"parse_retries must be >= 0, got {parse_retries}")
        self.name = name
        # ``seed`` is not a client option here: LLMJudge's own ``seed`` is the sampling seed.
        self.config = merge_client_config(client, base_url, model, client_options, owner="LLMJudge", exclude=("seed",))
        self.client = ChatClient(self.config, sleep=sleep, clock=clock, transport=transport)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.top_p = top_p
        self.seed = seed
        self.extra_body: Mapping[str, Any] = dict(extra_body or {})
        self.parse_retries = parse_retries
        self.rubrics: Mapping[str, Rubric] = dict(rubrics) if rubrics is not None else RUBRICS
        self.progress = progress
        self._owns_cache = cache is not None and not isinstance(cache, VerdictCache)
        self.cache: VerdictCache | None = cache if isinstance(cache, VerdictCache) or cache is None else VerdictCache(cache)
        self._model_key = self._settings_key()
        self._counters = _Counters()

    def __repr__(self) -> str:
        return f"LLMJudge(name={self.name!r}, base_url={self.config.base_url!r}, model={self.config.model!r})"

    def _settings_key(self) -> str:
        """The model plus every setting that can change an ok verdict, as one stable string."""
        settings = {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed, "extra_body": self.extra_body}
        return f"{self.config.model}|{json.dumps(settings, sort_keys=True, default=str)}"

    @property
    def stats(self) -> JudgeStats:
        return self._counters.snapshot()

    def reset_stats(self) -> None:
        self._counters = _Counters()

    def cache_key(self, request: JudgeRequest) -> str:
        """The key this judge files ``request``'s verdict under (`RubricError` for an unknown task)."""
        return request.cache_key(self.name, self._model_key, rubric_for(request.task, self.rubrics).id)

    async def aclose(self) -> None:
        """Close the connection pool, and the cache if this judge opened it."""
        await self.client.aclose()
        if self._owns_cache and self.cache is not None:
            self.cache.close()

    async def __aenter__(self) -> LLMJudge:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        """One verdict per request, in order; per-row trouble is a non-ok verdict, never an exception."""
        total = len(requests)
        verdicts: list[Verdict | None] = [None] * total
        groups: dict[str, list[int]] = {}
        firsts: dict[str, JudgeRequest] = {}
        for index, request in enumerate(requests):
            try:
                key = self.cache_key(request)
            except Exception as exc:  # an unknown task, or not a JudgeRequest at all: this row only
                # Invalid, not failed: the request itself cannot be judged, so asking again cannot help
                # (a rerun of `gtalign score` re-judges failed rows only).
                reason = str(exc) if isinstance(exc, RubricError) else f"not a judge request: {exc!r}"
                verdicts[index] = Verdict.failure("invalid", reason, judge=self.name)
                continue
            groups.setdefault(key, []).append(index)
            firsts.setdefault(key, request)
        self._counters.add(rows=total, unique=len(groups) + sum(v is not None for v in verdicts))
        done = sum(v is not None for v in verdicts)

        def settle(key: str, verdict: Verdict) -> None:
            nonlocal done
            for index in groups[key]:
                verdicts[index] = verdict
            done += len(groups[key])
            if self.progress is not None:
                self.progress(done, total)

        if self.progress is not None and done:
            self.progress(done, total)
        pending = list(groups)
        if self.cache is not None and pending:
            hits = await self._cache_get(self.cache, pending)
            self._counters.add(cache_hits=len(hits))
            for key, verdict in hits.items():
                settle(key, replace(verdict, judge=self.name, cached=True))
            pending = [key for key in pending if key not in hits]

        if pending:
            async with self.client:
                tasks = [asyncio.ensure_future(self._judge_key(key, firsts[key])) for key in pending]
                try:
                    for finished in asyncio.as_completed(tasks):
                        key, verdict = await finished
                        settle(key, verdict)
                finally:
                    for task in tasks:
                        task.cancel()
        missing = Verdict.failure("failed", "no verdict was produced (internal error)", judge=self.name)
        result = [v if v is not None else missing for v in verdicts]
        self._counters.add(failures=sum(not v.ok for v in result))
        return result

    @staticmethod
    async def _cache_get(cache: VerdictCache, keys: list[str]) -> dict[str, Verdict]:
        """Cached verdicts; a broken cache costs judge calls, not the batch."""
        try:
            return await cache.aget_many(keys)
        except Exception as exc:
            _log.warning("verdict cache %s unreadable (%s: %s); judging without it", cache.path, type(exc).__name__, exc)
            return {}

    async def _judge_key(self, key: str, request: JudgeRequest) -> tuple[str, Verdict]:
        try:
            verdict = await self._judge_one(request)
        except Exception as exc:  # a bug in one row must not lose the batch
            verdict = Verdict.failure("failed", f"judge error {type(exc).__name__}: {exc}", judge=self.name)
        if verdict.ok and self.cache is not None:
            try:
                await self.cache.aput(key, verdict)
            except Exception as exc:
                _log.warning("verdict cache %s not written (%s: %s)", self.cache.path, type(exc).__name__, exc)
        return key, verdict

    async def _judge_one(self, request: JudgeRequest) -> Verdict:
        rubric = rubric_for(request.task, self.rubrics)
        try:
            rubric.scale(request)
        except RubricError as exc:  # a label the rubric does not know: asking again cannot help
            return Verdict.failure("invalid", str(exc), judge=self.name)
        calls = self.parse_retries + 1
        for attempt in range(calls):
            if attempt:
                self._counters.add(parse_retries=1)
            result = await self._call(rubric.render(request, retry=attempt > 0))
            if result.status in ("context_overflow", "content_filter"):
                return Verdict.failure("refused", f"{result.status}: {result.reason}", raw=result.text, judge=self.name)
            if not result.ok:
                return Verdict.failure("failed", f"judge server: {result.reason}", judge=self.name)
            verdict = rubric.verdict(result.text, request, judge=self.name)
            if verdict.ok:
                return verdict
            if result.finish_reason == "length":
                verdict = replace(verdict, reason=f"{verdict.reason} (the reply hit max_tokens={self.max_tokens})")
            if attempt == calls - 1:
                return replace(verdict, reason=f"{verdict.reason}; after {calls} call(s)") if calls > 1 else verdict
        raise AssertionError("unreachable: the loop returns on its last call")

    async def _call(self, messages: list[dict[str, str]]) -> ChatResult:
        result = await self.client.chat(
            messages,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            top_p=self.top_p,
            seed=self.seed,
            extra_body=self.extra_body,
        )
        self._counters.add(
            calls=1,
            http_requests=result.attempts,
            retries=result.retries,
            tokens_in=result.tokens_in or 0,
            tokens_out=result.tokens_out or 0,
            latency=result.latency,
        )
        return result
