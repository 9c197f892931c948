"""Benchmark of the steering proxy's overhead: what ``gtalign serve`` adds on top of the model.

The model is a `ScriptedBackend` with a fixed latency (default 0, so every millisecond measured is
overhead). Three ways to get one steered answer are timed side by side, interleaved request by
request in the same run:

* ``backend``: the two backend calls a steered answer needs (up to ``</payoff>``, then the
  continuation), called directly in this process: the model's own time;
* ``engine``: `SteeringEngine.run` in this process (the model plus parsing, pricing, deciding);
* ``proxy``: ``POST /v1/chat/completions`` to the proxy running with uvicorn in a separate process
  on 127.0.0.1, over a keep-alive httpx connection (and once more with the official openai client).

``proxy - backend`` is everything the proxy adds (HTTP, validation, prompt building, steering);
``proxy - engine`` is the server layer alone. Then requests/s at saturation: C concurrent
clients against the proxy for a fixed number of requests, against the engine alone in-process.

Prints Markdown tables and the command; writes benchmarks/RESULTS_proxy.md:
    .venv/bin/python benchmarks/bench_proxy.py [--requests 400 --latency 0 --clients 16 --saturation-requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import shlex
import socket
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

MODEL = "bench-proxy"
KEY = "sk-bench"
QUESTION = [{"role": "user", "content": "Which is larger, 2**10 or 10**3?"}]
RESULTS = Path(__file__).resolve().parent / "RESULTS_proxy.md"

_ANSWER = (
    "<thinking>This is DQ: one definite answer; a direct reply costs least for both.</thinking>\n"
    '<payoff>{"DQ_AQ": {"LLM": 2.0, "user": 2.1}, "DQ_CQ": {"LLM": 1.0, "user": 0.9}, '
    '"DQ_DA": {"LLM": 3.0, "user": 3.1}, "VQ_AQ": {"LLM": 1.5, "user": 1.4}, '
    '"VQ_CQ": {"LLM": 0.5, "user": 0.4}, "VQ_DA": {"LLM": 1.0, "user": 1.1}}</payoff>\n'
)
_CONTINUATION = (
    " A direct answer is best for both.\n</analyze>\n<response>\n2**10 = 1024 is larger than 10**3 = 1000.\n</response>"
)


def model_script(messages: Sequence[Mapping[str, str]], prefill: str) -> str:
    """The scripted model: the matrix first, then the rest of the turn after the decision."""
    return _ANSWER if not prefill else _CONTINUATION


def _backend(latency: float):
    from gtalign.testing import ScriptedBackend

    return ScriptedBackend(model_script, latency=latency, model=MODEL)


def _serve_child(conn: Connection, latency: float, max_concurrency: int) -> None:
    """The proxy in its own process, on a socket bound here so the parent learns the port first."""
    import uvicorn

    from gtalign.server import ApiKey, ServerConfig, create_app

    config = ServerConfig(model_name=MODEL, keys=(ApiKey(KEY, id="bench"),), max_concurrency=max_concurrency,
                          timeout=60, port=0)
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on sockets that say so, and without it
    # Nagle's algorithm and delayed ACKs add about 40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    conn.send(sock.getsockname()[1])
    conn.close()
    app = create_app(config, _backend(latency))
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")).run(sockets=[sock])


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    seconds: list[float]

    def pct(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def p95(self) -> float:
        return self.pct(0.95)


async def _wait_ready(client: httpx.AsyncClient, root: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if (await client.get(f"{root}/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("the proxy did not come up")


async def latency_run(root: str, requests: int, warmup: int, latency: float) -> list[Series]:
    import openai

    from gtalign.backends._base import SamplingParams
    from gtalign.server._steer import prompt
    from gtalign.steering import SteeringEngine

    backend = _backend(latency)
    engine = SteeringEngine(backend, "none", params=SamplingParams(max_tokens=512))
    messages = prompt(QUESTION, "sum")
    body = {"model": MODEL, "messages": QUESTION}
    headers = {"Authorization": f"Bearer {KEY}"}
    direct, steered, via_http, via_openai, streamed, first_text = [], [], [], [], [], []
    stream_body = {**body, "stream": True}
    continuation = _ANSWER + "\n<analyze>\nChosen key: DQ_DA."
    stage_one = SamplingParams(max_tokens=512, stop=("</payoff>",))
    stage_two = SamplingParams(max_tokens=512, stop=("</response>",))
    async with httpx.AsyncClient(timeout=30) as client, openai.AsyncOpenAI(
        base_url=f"{root}/v1", api_key=KEY, max_retries=0
    ) as oclient:
        await _wait_ready(client, root)
        for i in range(warmup + requests):
            t0 = time.perf_counter()
            await backend.generate(messages, params=stage_one)
            await backend.generate(messages, prefill=continuation, params=stage_two)
            t1 = time.perf_counter()
            result = await engine.run(messages)
            t2 = time.perf_counter()
            reply = await client.post(f"{root}/v1/chat/completions", json=body, headers=headers)
            t3 = time.perf_counter()
            await oclient.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
            t4 = time.perf_counter()
            t_first = None
            async with client.stream("POST", f"{root}/v1/chat/completions", json=stream_body, headers=headers) as events:
                async for line in events.aiter_lines():
                    if t_first is None and '"content":"' in line and '"content":""' not in line:
                        t_first = time.perf_counter()
            t5 = time.perf_counter()
            assert result.ok and reply.status_code == 200 and t_first is not None, reply.text
            if i >= warmup:
                direct.append(t1 - t0)
                steered.append(t2 - t1)
                via_http.append(t3 - t2)
                via_openai.append(t4 - t3)
                streamed.append(t5 - t4)
                first_text.append(t_first - t4)
    return [Series("backend (2 calls, in-process)", direct), Series("engine (in-process)", steered),
            Series("proxy (httpx, keep-alive)", via_http), Series("proxy (openai client)", via_openai),
            Series("proxy streamed (httpx): first response text", first_text),
            Series("proxy streamed (httpx): whole stream", streamed)]


@dataclass(frozen=True, slots=True)
class Saturation:
    target: str
    clients: int
    requests: int
    wall: float
    errors: int
    latencies: Series
    server_cpu: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.wall


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), to tell server cost from client cost."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def saturate_proxy(root: str, clients: int, total: int, pid: int) -> Saturation:
    body = {"model": MODEL, "messages": QUESTION}
    headers = {"Authorization": f"Bearer {KEY}"}
    remaining = total
    errors = 0
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await _wait_ready(client, root)

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                t = time.perf_counter()
                reply = await client.post(f"{root}/v1/chat/completions", json=body, headers=headers)
                latencies.append(time.perf_counter() - t)
                errors += reply.status_code != 200

        cpu_before = cpu_seconds(pid)
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - start
        cpu_after = cpu_seconds(pid)
    used = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Saturation("proxy", clients, total, wall, errors, Series("proxy", latencies), used)


async def saturate_engine(clients: int, total: int, latency: float) -> Saturation:
    from gtalign.backends._base import SamplingParams
    from gtalign.server._steer import prompt
    from gtalign.steering import SteeringEngine

    engine = SteeringEngine(_backend(latency), "none", params=SamplingParams(max_tokens=512))
    messages = prompt(QUESTION, "sum")
    remaining = total
    errors = 0
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            t = time.perf_counter()
            result = await engine.run(messages)
            latencies.append(time.perf_counter() - t)
            errors += not result.ok

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return Saturation("engine alone (in-process)", clients, total, time.perf_counter() - start, errors,
                      Series("engine", latencies))


def _tables(series: list[Series], saturation: list[Saturation], args: argparse.Namespace, command: str, load: float) -> str:
    backend, engine, proxy = series[0], series[1], series[2]
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, uvicorn without uvloop/httptools "
        f"(asyncio + h11). Model: `ScriptedBackend` with {args.latency * 1000:g} ms latency per call, 2 calls per "
        f"steered answer. Proxy in its own process on 127.0.0.1; clients in this process. Load average at the start: "
        f"{load:.2f}.",
        "",
        "`backend` is the model's own time for one steered answer (two calls), `engine` adds the steering work in "
        "process, `proxy` is the whole request over HTTP (streamed: to the first chunk with response text, and to "
        "`[DONE]`; the scripted model streams its continuation a word per delta). Each iteration runs the paths one "
        "after another, so they share the same machine noise.",
        "",
        f"### Latency per request ({args.requests} sequential requests after {args.warmup} warm-up, interleaved)",
        "",
        "| path | p50 (ms) | p95 (ms) | mean (ms) |",
        "|---|---:|---:|---:|",
    ]
    for s in series:
        lines.append(f"| {s.name} | {s.p50:.2f} | {s.p95:.2f} | {statistics.fmean(s.seconds) * 1000:.2f} |")
    added = proxy.p50 - backend.p50
    lines += [
        "",
        "| added latency | p50 (ms) | p95 (ms) |",
        "|---|---:|---:|",
        f"| proxy - backend (everything beyond the model's own time) | {added:.2f} | {proxy.p95 - backend.p95:.2f} |",
        f"| proxy - engine (HTTP server layer only) | {proxy.p50 - engine.p50:.2f} | {proxy.p95 - engine.p95:.2f} |",
        f"| proxy streamed, whole stream - backend | {series[5].p50 - backend.p50:.2f} | {series[5].p95 - backend.p95:.2f} |",
        "",
        f"Target: < 5 ms p50 beyond the model's own time: **{'met' if added < 5 else 'not met'}** ({added:.2f} ms).",
        "",
        f"### Requests/s at saturation ({args.saturation_requests} requests per row)",
        "",
        "| target | concurrent clients | requests/s | p50 (ms) | p95 (ms) | non-200 | server CPU per request (ms) | server CPU busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in saturation:
        cpu = "-" if s.server_cpu is None else f"{s.server_cpu / s.requests * 1000:.2f}"
        busy = "-" if s.server_cpu is None else f"{s.server_cpu / s.wall:.0%}"
        lines.append(f"| {s.target} | {s.clients} | {s.rps:,.0f} | {s.latencies.p50:.1f} | {s.latencies.p95:.1f} | {s.errors} "
                     f"| {cpu} | {busy} |")
    measured = [s for s in saturation if s.server_cpu]
    if measured:
        per_request = sum(s.server_cpu or 0.0 for s in measured) / sum(s.requests for s in measured)
        best = max(measured, key=lambda s: s.rps)
        busy = (best.server_cpu or 0.0) / best.wall
        lines += [
            "",
            f"The proxy process spends {per_request * 1000:.2f} ms of CPU per request on average (HTTP, validation, "
            f"prompt, steering, record, JSON), so one uvicorn worker tops out near {1 / per_request:,.0f} requests/s "
            f"on one core. The best measured rate is {best.rps:,.0f}/s with {best.clients} concurrent clients, the "
            f"proxy's CPU {busy:.0%} busy; the load generator shares the machine's {os.cpu_count()} cores and is "
            "itself Python, so more clients only add queueing. Against a real model the model's time dominates: the "
            "proxy adds the figures above per request, and `--max-concurrency` should match what the backend can batch.",
        ]
    return "\n".join(lines)


async def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="sequential requests per path (default: 400)")
    parser.add_argument("--warmup", type=int, default=40, help="warm-up requests not counted (default: 40)")
    parser.add_argument("--latency", type=float, default=0.0, help="the scripted model's seconds per call (default: 0)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrent clients at saturation")
    parser.add_argument("--saturation-requests", type=int, default=2000, help="requests per saturation row")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args(argv)
    command = shlex.join([".venv/bin/python", "benchmarks/bench_proxy.py", *argv])
    load = os.getloadavg()[0]

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve_child, args=(child, args.latency, max(args.clients) * 2), daemon=True)
    process.start()
    try:
        root = f"http://127.0.0.1:{parent.recv()}"
        series = await latency_run(root, args.requests, args.warmup, args.latency)
        saturation = []
        for clients in args.clients:
            saturation.append(await saturate_proxy(root, clients, args.saturation_requests, process.pid))
        saturation.append(await saturate_engine(max(args.clients), args.saturation_requests, args.latency))
    finally:
        process.terminate()
        process.join(timeout=10)
    report = _tables(series, saturation, args, command, load)
    if not args.no_write:
        RESULTS.write_text("# Proxy overhead (`gtalign serve`)\n\n" + report + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1:])))
