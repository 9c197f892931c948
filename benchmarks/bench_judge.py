"""Benchmark of the LLM judge machinery against the fake OpenAI-compatible server.

1. Throughput under faults: a batch of N rows through a server with capacity C and a fixed latency
   per request, with injected 429s (with Retry-After), 500s and dropped connections on first
   attempts. Reports wall time against the ideal ``N * latency / C``, verdicts lost, retries.
2. Requests saved on a GRPO-like batch (P prompts x R rollouts, many identical responses):
   de-duplication within the batch, then the persistent cache on a rerun and on the next epoch.
3. Optionally (``--pool-comparison 128``): the client's one-connection lanes against one shared
   httpx pool, at high concurrency.

Prints Markdown tables and the command that produced them:
    .venv/bin/python benchmarks/bench_judge.py [--rows 512 --capacity 32 --latency 0.1 --seed 0 --pool-comparison 128]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _fake_server  # benchmarks/_fake_server.py, beside this script
import httpx

from gtalign._chat_client import ChatClient
from gtalign.judges._llm import LLMJudge
from gtalign.reward._types import JudgeRequest
from gtalign.testing import FakeRequest, Reply

MODEL = "bench-judge"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results table."""

    scenario: str
    rows: int
    wall: float
    fastest: float
    slowest: float
    ideal: float
    lost: int
    retries: int
    server_requests: int
    max_in_flight: int
    notes: str


@dataclass(frozen=True, slots=True)
class FaultScript:
    """Answers ``\\boxed{<value>}`` for a response ``"<id>:<value>"``, failing first attempts as planned.

    A picklable class (not a closure) so the server can run in another process.
    """

    faults: dict[str, str]

    def __call__(self, request: FakeRequest) -> Reply:
        response = request.tagged("judged_response") or ""
        value = response.rsplit(":", 1)[-1]
        fault = self.faults.get(response)
        if fault is not None and request.seen == 0:
            if fault == "rate_limit":
                return Reply(fault="rate_limit", retry_after=0.2, latency=0.0)
            return Reply(fault=fault, latency=0.0 if fault == "server_error" else None)  # type: ignore[arg-type]
        return Reply(text=f"The final answer agrees. \\boxed{{{value}}}")


def served(script: FaultScript, capacity: int, latency: float) -> contextlib.AbstractContextManager[tuple[str, dict[str, Any]]]:
    """The fake server in its own process (as a real server would be): ``(base_url, counters)``."""
    return _fake_server.served(script, capacity=capacity, latency=latency, model=MODEL)


def plan_faults(responses: list[str], rng: random.Random) -> dict[str, str]:
    """About 6% rate limits, 4% server errors, 1% dropped connections, on distinct rows."""
    chosen = rng.sample(responses, k=len(responses) * 11 // 100)
    n_429, n_500 = len(responses) * 6 // 100, len(responses) * 4 // 100
    return {r: "rate_limit" if i < n_429 else "server_error" if i < n_429 + n_500 else "drop" for i, r in enumerate(chosen)}


async def throughput(rows: int, capacity: int, latency: float, seed: int, with_faults: bool, repeats: int) -> Row:
    """The median of ``repeats`` runs (each on a fresh server and judge)."""
    rng = random.Random(seed)
    responses = [f"row{i}:{rng.randint(0, 1)}" for i in range(rows)]
    faults = plan_faults(responses, rng) if with_faults else {}
    requests = [JudgeRequest("math", r, reference="42") for r in responses]
    expected = [float(r.rsplit(":", 1)[1]) for r in responses]
    runs = []
    for _ in range(repeats):
        with served(FaultScript(faults), capacity, latency) as (base_url, counters):
            judge = LLMJudge(base_url, MODEL, concurrency=capacity, backoff_base=0.05, attempt_timeout=10.0, seed=seed)
            started = time.perf_counter()
            verdicts = await judge.judge(requests)
            wall = time.perf_counter() - started
        lost = sum(1 for v, e in zip(verdicts, expected) if not v.ok or v.value != e)
        runs.append((wall, lost, judge.stats.retries, counters))
    walls = sorted(run[0] for run in runs)
    wall, lost, retries, counters = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
    kinds = {k: sum(1 for f in faults.values() if f == k) for k in ("rate_limit", "server_error", "drop")}
    notes = "none" if not faults else f"{kinds['rate_limit']}x429 (Retry-After 0.2 s), {kinds['server_error']}x500, {kinds['drop']} dropped"
    return Row(
        "faults" if faults else "clean",
        rows,
        wall,
        walls[0],
        walls[-1],
        rows * latency / capacity,
        max(run[1] for run in runs),
        retries,
        counters["requests"],
        max(run[3]["max_in_flight"] for run in runs),
        notes,
    )


def grpo_batch(prompts: int, rollouts: int, rng: random.Random, epoch: int, previous: list[str] | None) -> list[str]:
    """Rollout responses: each is new with probability 0.4, else a repeat of an earlier one of its prompt
    (short answers collapse onto a few strings); next epochs reuse half of the previous responses."""
    out: list[str] = []
    for p in range(prompts):
        group: list[str] = []
        for r in range(rollouts):
            if previous is not None and rng.random() < 0.5:
                group.append(rng.choice(previous[p * rollouts : (p + 1) * rollouts]))
            elif group and rng.random() < 0.6:
                group.append(rng.choice(group))
            else:
                group.append(f"p{p}-e{epoch}-r{r}:{rng.randint(0, 1)}")
        out += group
    return out


async def cache_savings(prompts: int, rollouts: int, capacity: int, latency: float, seed: int) -> list[tuple[str, int, int, int, float]]:
    rng = random.Random(seed)
    first = grpo_batch(prompts, rollouts, rng, 1, None)
    second = grpo_batch(prompts, rollouts, rng, 2, first)
    steps = [("epoch 1 (cold cache)", first), ("epoch 1 rerun (resume)", first), ("epoch 2 (half repeats)", second)]
    out = []
    with tempfile.TemporaryDirectory() as tmp, served(FaultScript({}), capacity, latency) as (base_url, counters):
        judge = LLMJudge(base_url, MODEL, concurrency=capacity, backoff_base=0.05, cache=Path(tmp) / "verdicts.sqlite3")
        for name, responses in steps:
            before = judge.stats.http_requests
            started = time.perf_counter()
            verdicts = await judge.judge([JudgeRequest("math", r, reference="42") for r in responses])
            wall = time.perf_counter() - started
            if not all(v.ok for v in verdicts):
                raise RuntimeError(f"{name}: a verdict was lost")
            out.append((name, len(responses), len(set(responses)), judge.stats.http_requests - before, wall))
        await judge.aclose()
    return out


class OnePoolClient(ChatClient):
    """The design `ChatClient` replaced, kept here only to measure the difference: one httpx pool
    of ``concurrency`` connections instead of one single-connection lane per request in flight."""

    @contextlib.contextmanager
    def _lane(self) -> Iterator[httpx.AsyncClient]:
        if not self._lanes:
            cfg = self.config
            pool = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
            timeout = httpx.Timeout(cfg.attempt_timeout, connect=cfg.connect_timeout)
            self._lanes.append(httpx.AsyncClient(base_url=cfg.base_url, timeout=timeout, limits=pool))
        yield self._lanes[0]


async def pool_comparison(rows: int, concurrency: int, latency: float, repeats: int) -> list[tuple[str, float, float]]:
    """``(design, median wall, ideal)`` for lanes and for one shared pool, at high concurrency."""
    out = []
    requests = [JudgeRequest("math", f"row{i}:1", reference="42") for i in range(rows)]
    for design in ("lanes (ChatClient)", "one httpx pool"):
        walls = []
        for _ in range(repeats):
            with served(FaultScript({}), concurrency, latency) as (base_url, _counters):
                judge = LLMJudge(base_url, MODEL, concurrency=concurrency, attempt_timeout=60.0)
                if design == "one httpx pool":
                    judge.client = OnePoolClient(judge.config)
                started = time.perf_counter()
                verdicts = await judge.judge(requests)
                walls.append(time.perf_counter() - started)
                await judge.aclose()
                if not all(v.ok for v in verdicts):
                    raise RuntimeError(f"{design}: a verdict was lost")
        out.append((design, sorted(walls)[len(walls) // 2], rows * latency / concurrency))
    return out


async def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--capacity", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs per throughput scenario (the median is shown)")
    parser.add_argument("--pool-comparison", type=int, default=0, metavar="CONCURRENCY",
                        help="also compare lanes with one shared httpx pool at this concurrency (16 waves of requests)")
    args = parser.parse_args(argv)

    rows = [await throughput(args.rows, args.capacity, args.latency, args.seed, faults, args.repeats) for faults in (False, True)]
    savings = await cache_savings(args.prompts, args.rollouts, args.capacity, args.latency, args.seed)

    lines = [
        f"### Judge throughput: {args.rows} rows, server capacity {args.capacity}, latency {args.latency * 1000:g} ms, client concurrency {args.capacity}",
        "",
        f"| faults injected (first attempts) | rows | wall, median of {args.repeats} (s) | range (s) | ideal N*lat/C (s) | ratio | verdicts lost | retries | server requests | max in flight |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.notes} | {r.rows} | {r.wall:.2f} | {r.fastest:.2f}-{r.slowest:.2f} | {r.ideal:.2f} | {r.wall / r.ideal:.2f} | "
            f"{r.lost} | {r.retries} | {r.server_requests} | {r.max_in_flight} |"
        )
    lines += [
        "",
        f"### Requests saved on a GRPO-like batch: {args.prompts} prompts x {args.rollouts} rollouts (de-dup within a batch + persistent cache)",
        "",
        "| step | rows | distinct responses | judge requests sent | saved | wall (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, n, distinct, sent, wall in savings:
        lines.append(f"| {name} | {n} | {distinct} | {sent} | {n - sent} ({(n - sent) / n:.0%}) | {wall:.2f} |")
    if args.pool_comparison:
        n = 16 * args.pool_comparison
        lines += [
            "",
            f"### Connection design: {n} rows at concurrency {args.pool_comparison} (server capacity {args.pool_comparison}, "
            f"latency {args.latency * 1000:g} ms), median of {args.repeats}",
            "",
            "| client connections | wall (s) | ideal (s) | ratio |",
            "|---|---:|---:|---:|",
        ]
        for design, wall, ideal in await pool_comparison(n, args.pool_comparison, args.latency, args.repeats):
            lines.append(f"| {design} | {wall:.2f} | {ideal:.2f} | {wall / ideal:.2f} |")
    command = " ".join([".venv/bin/python", "benchmarks/bench_judge.py", *map(shlex.quote, argv)])
    lines += ["", f"Command: `{command}` (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, fake server in its own process)."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1:])))
