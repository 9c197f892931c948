"""Benchmark: embedded generation speed, memory and load time, against llama.cpp on the same GGUF.

Every phase runs in its own subprocess, so its peak RSS (``ru_maxrss``; tracemalloc misses torch's
allocations) and its timings are its own:

- ``convert``: the first use on a fresh machine, GGUF -> safetensors into an empty cache;
- ``embedded``: `EmbeddedBackend` as shipped: the cached load, then greedy decoding of distinct
  prompts with ``generate_batch`` at each batch size (total tokens/s over all rows), and the same
  load served to concurrent ``generate`` calls (what a server in front of it sees);
- ``llamacpp``: llama-cpp-python on the same GGUF with 2 threads, one sequence at a time (the
  practical ceiling on this CPU), when ``llama_cpp`` is importable;
- ``--variants``: the backend's knobs (dtype, threads, attention kernel) at batch 1 and 8;
- ``--contention``: 1 and 2 threads with and without one other busy process (a Python busy loop
  this script starts and stops), for both engines: what a shared machine does to each.
- ``--same-threads 1,2`` (instead of everything above): both engines at the same thread count and
  the same batch, in rounds that alternate the engines so both see the same machine. Batch 1 for
  both: the same ``--prompts`` prompts decoded one at a time (llama-cpp-python's ``Llama``, which
  `LlamaCppBackend` uses, decodes one sequence at a time, so batch 1 is the only batch both engines
  have); the embedded engine at batch 16 with the same threads for context. Models load from the
  user cache (converted there once if needed). Every round is reported, with the load average.

    python benchmarks/bench_embedded.py [--max-tokens 96] [--repeat 2] [--variants] [--contention] [--out FILE]
    python benchmarks/bench_embedded.py --same-threads 1,2 [--rounds 3] [--prompts 4] [--max-tokens 96] [--out FILE]

Prompts ask for long answers, so rows rarely end early; the tables give the tokens actually
generated. The load average at the start and end of each phase is printed: on a shared 2-core
machine other processes distort every figure (see the results file).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOPICS = [
    "a robot who learns to paint", "a lighthouse keeper's last winter", "a city built on the back of a whale",
    "the first day of a new school", "a dragon who is afraid of heights", "two rival bakers", "a lost letter",
    "a storm at sea", "a detective who cannot see colours", "a garden on Mars", "an old clockmaker",
    "a friendship between a fox and a crow", "a train that never stops", "a village without music",
    "the inventor of the umbrella", "a map that redraws itself",
]
LONG_PROMPT_WORDS = 800


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a long, detailed story about {TOPICS[i % len(TOPICS)]}."}]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def phase_convert(cache: Path) -> dict[str, Any]:
    from gtalign.backends._model_store import resolve_model

    started = time.perf_counter()
    source = resolve_model(None, cache=cache, announce=lambda message: None)
    return {"seconds": time.perf_counter() - started, "converted_in": source.converted_in, "peak_mb": _peak_mb(),
            "size_mb": sum(f.stat().st_size for f in source.path.iterdir()) / 2**20}


def phase_embedded(cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from gtalign.backends._base import SamplingParams
    from gtalign.backends._embedded import EmbeddedBackend

    sizes = [int(b) for b in args.batch_sizes.split(",")]
    backend = EmbeddedBackend(cache_dir=cache, dtype=args.dtype, threads=args.threads, max_batch=max(sizes),
                              attn_implementation=args.attn)
    started = time.perf_counter()
    info = backend.load()
    load_wall = time.perf_counter() - started
    params = SamplingParams(max_tokens=args.max_tokens)
    backend.generate_batch([(_messages(0), "")], SamplingParams(max_tokens=8))
    rows = []
    for size in sizes:
        runs = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            results = backend.generate_batch([(_messages(i), "") for i in range(size)], params)
            wall = time.perf_counter() - started
            runs.append((sum(r.tokens_out or 0 for r in results) / wall, sum(r.tokens_out or 0 for r in results), wall))
        best = max(runs)
        rows.append({"batch": size, "tok_s": best[0], "tokens": best[1], "wall": best[2],
                     "per_row_tok_s": best[0] / size})
    concurrent = None
    if args.concurrent:
        async def serve() -> tuple[int, float, set[int]]:
            started = time.perf_counter()
            results = await asyncio.gather(*[backend.generate(_messages(i), params=params) for i in range(args.concurrent)])
            return sum(r.tokens_out or 0 for r in results), time.perf_counter() - started, {int(r.extra["batch_size"]) for r in results}

        tokens, wall, batch_sizes = asyncio.run(serve())
        concurrent = {"calls": args.concurrent, "tok_s": tokens / wall, "tokens": tokens, "batch_sizes": sorted(batch_sizes)}
    prefill = None
    if args.prefill:
        long_messages = [{"role": "user", "content": " ".join(["The quick brown fox jumps over the lazy dog."] * (LONG_PROMPT_WORDS // 9))}]
        started = time.perf_counter()
        result = backend.generate_batch([(long_messages, "")], SamplingParams(max_tokens=1))[0]
        prefill = {"prompt_tokens": result.tokens_in, "seconds": time.perf_counter() - started}
    backend.close()
    return {"load_s": info.seconds, "load_wall_s": load_wall, "dtype": info.dtype, "threads": info.threads,
            "attn": args.attn or "sdpa", "rows": rows, "concurrent": concurrent, "prefill": prefill,
            "peak_mb": _peak_mb(), "torch": torch.__version__}


def phase_llamacpp(args: argparse.Namespace) -> dict[str, Any]:
    import llama_cpp

    from gtalign.backends._base import SamplingParams
    from gtalign.backends._llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(threads=args.threads or 2)
    load = backend.load()
    params = SamplingParams(max_tokens=args.max_tokens)
    backend.generate_sync(_messages(0), "", SamplingParams(max_tokens=8))
    runs = []
    for _ in range(args.repeat):
        tokens, wall = 0, 0.0
        for i in range(4):
            started = time.perf_counter()
            tokens += backend.generate_sync(_messages(i), "", params).tokens_out or 0
            wall += time.perf_counter() - started
        runs.append((tokens / wall, tokens, wall))
    best = max(runs)
    backend.close()
    return {"load_s": load, "tok_s": best[0], "tokens": best[1], "wall": best[2], "peak_mb": _peak_mb(),
            "version": llama_cpp.__version__}


def phase_serve(args: argparse.Namespace) -> None:
    """One engine at ``args.threads``, loaded once, timing what the parent asks on stdin (JSON lines):
    ``{"op": "one", "prompt": i}`` decodes prompt ``i`` alone (batch 1), ``{"op": "batch16"}`` decodes
    16 distinct prompts in one batch (embedded only); each answer is one JSON line on stdout."""
    from gtalign.backends._base import SamplingParams

    params = SamplingParams(max_tokens=args.max_tokens)
    if args.engine == "llamacpp":
        import llama_cpp

        from gtalign.backends._llamacpp import LlamaCppBackend

        llama = LlamaCppBackend(threads=args.threads)
        llama.load()
        name = f"llama.cpp {llama_cpp.__version__}"

        def decode(items: list[list[dict[str, str]]], p: SamplingParams) -> list[Any]:
            assert len(items) == 1, "llama-cpp-python's Llama decodes one sequence at a time"
            return [llama.generate_sync(items[0], "", p)]
    else:
        from gtalign.backends._embedded import EmbeddedBackend

        embedded = EmbeddedBackend(cache_dir=args.cache, threads=args.threads, max_batch=16)
        name = f"embedded ({embedded.load().dtype})"

        def decode(items: list[list[dict[str, str]]], p: SamplingParams) -> list[Any]:
            results = embedded.generate_batch([(messages, "") for messages in items], p)
            assert {r.extra["batch_size"] for r in results} == {len(items)}, "the rows were not decoded as one batch"
            return results

    decode([_messages(0)], SamplingParams(max_tokens=8))
    print(json.dumps({"engine": name}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        items = [_messages(request["prompt"])] if request["op"] == "one" else [_messages(i) for i in range(16)]
        started = time.perf_counter()
        results = decode(items, params)
        wall = time.perf_counter() - started
        print(json.dumps({"tokens": sum(r.tokens_out or 0 for r in results), "wall": wall}), flush=True)


class _Engine:
    """A `phase_serve` subprocess and the requests sent to it."""

    def __init__(self, engine: str, threads: int, cache: Path, max_tokens: int) -> None:
        command = [sys.executable, __file__, "--phase", "serve", "--engine", engine, "--threads", str(threads),
                   "--cache", str(cache), "--max-tokens", str(max_tokens)]
        self.engine = engine
        self.errors = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, text=True)
        self.name = self._read()["engine"]

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            self.errors.seek(0)
            raise SystemExit(f"the {self.engine} engine process ended early (exit {code}):\n{self.errors.read()[-3000:]}")
        return json.loads(line)

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
        self.process.wait()
        self.errors.close()


def _rate(runs: list[dict[str, Any]]) -> float:
    return sum(r["tokens"] for r in runs) / sum(r["wall"] for r in runs)


def same_threads_report(args: argparse.Namespace, say: Any) -> None:
    """Both engines at each thread count, each loaded once in its own process; the parent alternates
    them prompt by prompt (the order swapped every prompt), so the two figures of a pair are taken
    seconds apart under the same load, and reports each round and the ratios."""
    from gtalign.backends._model_store import cache_dir, resolve_model

    cache = cache_dir()
    resolve_model(None, cache=cache)
    counts = [int(t) for t in args.same_threads.split(",")]
    rounds: list[dict[str, Any]] = []
    names: tuple[str, str] = ("", "")
    for threads in counts:
        if args.wait_idle:
            _wait_idle()
        engines = {"embedded": _Engine("embedded", threads, cache, args.max_tokens),
                   "llamacpp": _Engine("llamacpp", threads, cache, args.max_tokens)}
        names = (engines["embedded"].name, engines["llamacpp"].name)
        try:
            for number in range(1, args.rounds + 1):
                before = _load()
                runs: dict[str, list[dict[str, Any]]] = {"embedded": [], "llamacpp": []}
                pairs = []
                for i in range(args.prompts):
                    order = ("embedded", "llamacpp") if (i + number) % 2 else ("llamacpp", "embedded")
                    got = {engine: engines[engine].ask(op="one", prompt=i) for engine in order}
                    for engine, run in got.items():
                        runs[engine].append(run)
                    pairs.append(_rate([got["llamacpp"]]) / _rate([got["embedded"]]))
                batch16 = engines["embedded"].ask(op="batch16")
                llama_again = engines["llamacpp"].ask(op="one", prompt=0)
                row = {"threads": threads, "round": number, "load": (before, _load()), "pairs": pairs,
                       "e1": _rate(runs["embedded"]), "l1": _rate(runs["llamacpp"]), "e16": _rate([batch16]),
                       "l1_next": _rate([llama_again]), "tokens": (sum(r["tokens"] for r in runs["embedded"]),
                                                                   sum(r["tokens"] for r in runs["llamacpp"]))}
                rounds.append(row)
                print(f"{threads} threads, round {number}: embedded b1 {row['e1']:.1f}, b16 {row['e16']:.1f}, "
                      f"llama.cpp b1 {row['l1']:.1f} tok/s; load {before} -> {row['load'][1]}", file=sys.stderr, flush=True)
        finally:
            for engine in engines.values():
                engine.close()
    say(f"### Same threads, same batch ({names[0]} vs {names[1]})")
    say()
    say(f"Greedy, max_tokens {args.max_tokens}; tok/s = generated tokens / wall time, prompt processing included. "
        "Each engine runs in its own process, loaded once per thread count; the script alternates them prompt by "
        f"prompt, so both figures of a pair see the same load. Batch 1: the same {args.prompts} prompts, decoded one "
        "at a time by each engine. llama-cpp-python's `Llama` (what `LlamaCppBackend` runs) decodes one sequence at "
        "a time, so batch 1 is the only batch both engines have here; the embedded engine's batch of 16 distinct "
        "prompts is there for context, compared with a llama.cpp batch-1 call made right after it. Load average "
        "(1 min) at the start / end of each round.")
    say()
    say("| threads | round | load avg | embedded b1 tok/s | llama.cpp b1 tok/s | llama.cpp / embedded at b1 "
        "(per prompt pair) | embedded b16 tok/s | embedded b16 / llama.cpp b1 |")
    say("|---:|---:|---|---:|---:|---|---:|---:|")
    for row in rounds:
        pairs = ", ".join(f"{p:.2f}" for p in row["pairs"])
        say(f"| {row['threads']} | {row['round']} | {row['load'][0]} / {row['load'][1]} | {row['e1']:.1f} | "
            f"{row['l1']:.1f} | {row['l1'] / row['e1']:.2f} ({pairs}) | {row['e16']:.1f} | {row['e16'] / row['l1_next']:.2f} |")
    say()
    for threads in counts:
        mine = [r for r in rounds if r["threads"] == threads]
        b1 = sorted(p for r in mine for p in r["pairs"])
        b16 = [r["e16"] / r["l1_next"] for r in mine]
        say(f"{threads} thread(s): llama.cpp / embedded at batch 1, per prompt pair: median {statistics.median(b1):.2f}, "
            f"range {b1[0]:.2f}-{b1[-1]:.2f} ({len(b1)} pairs); embedded batch 16 / llama.cpp batch 1: "
            f"{min(b16):.2f}-{max(b16):.2f}.")
    tokens = sorted({t for r in rounds for t in r["tokens"]})
    say(f"Batch-1 tokens per engine and round: {tokens} (of {args.prompts} x {args.max_tokens}).")


def _cpu_idle(seconds: float = 3.0) -> float | None:
    """The share of CPU time spent idle over ``seconds`` (Linux ``/proc/stat``; None elsewhere)."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return fields[3], sum(fields)

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except OSError:
        return None
    return (idle1 - idle0) / max(1, total1 - total0)


def _wait_idle(limit: float = 600.0) -> None:
    """Wait (up to ``limit`` s) until the CPUs are at least 90% idle, so other processes on a shared
    machine do not land in the figures; says so when it gives up."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        idle = _cpu_idle()
        if idle is None or idle >= 0.9:
            return
    print(f"machine still busy after {limit:.0f} s; measuring anyway", file=sys.stderr)


def _subprocess(phase: str, cache: Path, extra: list[str], *, wait_idle: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--phase", phase, "--cache", str(cache), *extra]
    if wait_idle:
        _wait_idle()
    before = _load()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["loadavg"] = (before, _load())
    return result


def _common(args: argparse.Namespace) -> list[str]:
    return ["--max-tokens", str(args.max_tokens), "--repeat", str(args.repeat)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure; the best is kept")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16")
    parser.add_argument("--variants", action="store_true", help="also compare dtype, threads and attention kernels")
    parser.add_argument("--contention", action="store_true", help="also measure threads 1/2 beside one busy process")
    parser.add_argument("--no-llamacpp", action="store_true")
    parser.add_argument("--same-threads", metavar="THREADS",
                        help="only the same-threads, same-batch comparison of both engines, at these thread counts (e.g. 1,2)")
    parser.add_argument("--rounds", type=int, default=3, help="--same-threads: rounds, each running both engines")
    parser.add_argument("--prompts", type=int, default=4, help="--same-threads: prompts decoded one at a time at batch 1")
    parser.add_argument("--out", type=Path, help="write the Markdown report here too")
    parser.add_argument("--wait-idle", action="store_true", help="before each phase, wait until the CPUs are >= 90%% idle")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--attn", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--concurrent", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--prefill", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=("embedded", "llamacpp"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "serve":
        phase_serve(args)
        return
    if args.phase:
        phases = {"convert": lambda: phase_convert(args.cache), "embedded": lambda: phase_embedded(args.cache, args),
                  "llamacpp": lambda: phase_llamacpp(args)}
        print(json.dumps(phases[args.phase]()))
        return

    run = functools.partial(_subprocess, wait_idle=args.wait_idle)
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    command = "python benchmarks/bench_embedded.py " + " ".join(sys.argv[1:])
    if args.same_threads:
        if importlib.util.find_spec("llama_cpp") is None:
            raise SystemExit("--same-threads compares with llama.cpp: pip install llama-cpp-python")
        say(f"Command: `{command}`")
        say()
        say(f"Machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python {platform.python_version()}.")
        say()
        same_threads_report(args, say)
        if args.out:
            args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return
    with tempfile.TemporaryDirectory(prefix="gtalign-bench-") as tmp:
        cache = Path(tmp)
        convert = run("convert", cache, [])
        cached = run("embedded", cache, [*_common(args), "--batch-sizes", args.batch_sizes, "--concurrent", "8", "--prefill"])
        llama = None
        if not args.no_llamacpp and importlib.util.find_spec("llama_cpp") is not None:
            llama = run("llamacpp", cache, _common(args))
        variants = []
        if args.variants:
            for dtype in ("bfloat16", "float32"):
                for threads in ("1", "2"):
                    for attn in ("sdpa", "eager"):
                        variants.append(run("embedded", cache, [*_common(args), "--batch-sizes", "1,8",
                                                                        "--dtype", dtype, "--threads", threads, "--attn", attn]))

        contention = []
        if args.contention:
            for threads in ("1", "2"):
                for busy in (False, True):
                    if args.wait_idle:
                        _wait_idle()
                    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
                    try:
                        row = {"threads": threads, "busy": busy,
                               "embedded": _subprocess("embedded", cache, [*_common(args), "--batch-sizes", "1,8",
                                                                           "--threads", threads], wait_idle=False)}
                        if llama is not None:
                            row["llamacpp"] = _subprocess("llamacpp", cache, [*_common(args), "--threads", threads],
                                                          wait_idle=False)
                    finally:
                        if burner is not None:
                            burner.kill()
                            burner.wait()
                    contention.append(row)

    say(f"Command: `{command}`")
    say()
    say(f"Machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"torch {cached['torch']}, max_tokens {args.max_tokens}, best of {args.repeat}.")
    say()
    say("### Load")
    say()
    say("| step | seconds | peak RSS (MiB) | load avg before/after |")
    say("|---|---:|---:|---|")
    say(f"| first use: GGUF -> safetensors ({convert['size_mb']:.0f} MiB written) | {convert['converted_in']:.1f} | "
        f"{convert['peak_mb']:.0f} | {convert['loadavg'][0]} / {convert['loadavg'][1]} |")
    say(f"| cached load in a fresh process (safetensors -> {cached['dtype']}) | {cached['load_s']:.2f} | - | - |")
    if llama:
        say(f"| llama.cpp load (GGUF) | {llama['load_s']:.2f} | - | - |")
    say()
    say(f"### Generation (greedy, distinct prompts, {cached['dtype']}, {cached['threads']} threads, {cached['attn']})")
    say()
    say("| engine | batch | tokens | wall (s) | total tok/s | tok/s per sequence | peak RSS (MiB) |")
    say("|---|---:|---:|---:|---:|---:|---:|")
    for row in cached["rows"]:
        say(f"| embedded (transformers) | {row['batch']} | {row['tokens']} | {row['wall']:.2f} | {row['tok_s']:.1f} | "
            f"{row['per_row_tok_s']:.1f} | {cached['peak_mb']:.0f} |")
    if cached["concurrent"]:
        c = cached["concurrent"]
        say(f"| embedded, {c['calls']} concurrent `generate` calls (batched as {c['batch_sizes']}) | - | {c['tokens']} | - | "
            f"{c['tok_s']:.1f} | - | - |")
    if llama:
        say(f"| llama.cpp {llama['version']} (2 threads) | 1 | {llama['tokens']} | {llama['wall']:.2f} | {llama['tok_s']:.1f} | "
            f"{llama['tok_s']:.1f} | {llama['peak_mb']:.0f} |")
    say()
    best = max(cached["rows"], key=lambda r: r["tok_s"])
    say(f"Best embedded batch: {best['batch']} at {best['tok_s']:.1f} tok/s total.")
    if llama:
        ratio = llama["tok_s"] / best["tok_s"]
        verdict = "met" if ratio <= 1.5 else "not met"
        say(f"llama.cpp batch 1: {llama['tok_s']:.1f} tok/s; ratio llama.cpp / best embedded = {ratio:.2f} "
            f"(target <= 1.5: {verdict}).")
    if cached["prefill"]:
        p = cached["prefill"]
        say(f"Prompt processing: {p['prompt_tokens']} prompt tokens + 1 new token in {p['seconds']:.2f} s "
            f"({p['prompt_tokens'] / p['seconds']:.0f} prompt tok/s, batch 1).")
    say(f"Load average during the generation phase: {cached['loadavg'][0]} / {cached['loadavg'][1]}.")
    if variants:
        say()
        say("### Knobs (total tok/s at batch 1 and 8)")
        say()
        say("| dtype | threads | attention | cached load (s) | batch 1 | batch 8 | peak RSS (MiB) | load avg |")
        say("|---|---:|---|---:|---:|---:|---:|---|")
        for v in variants:
            one, eight = v["rows"][0]["tok_s"], v["rows"][1]["tok_s"]
            say(f"| {v['dtype']} | {v['threads']} | {v['attn']} | {v['load_s']:.2f} | {one:.1f} | {eight:.1f} | "
                f"{v['peak_mb']:.0f} | {v['loadavg'][0]} / {v['loadavg'][1]} |")
    if contention:
        say()
        say("### Threads on a shared machine (total tok/s; busy = one other process spinning on a core)")
        say()
        say("| threads | other busy process | embedded batch 1 | embedded batch 8 | llama.cpp batch 1 |")
        say("|---:|---|---:|---:|---:|")
        for row in contention:
            e = row["embedded"]["rows"]
            lc = f"{row['llamacpp']['tok_s']:.1f}" if "llamacpp" in row else "-"
            say(f"| {row['threads']} | {'yes' if row['busy'] else 'no'} | {e[0]['tok_s']:.1f} | {e[1]['tok_s']:.1f} | {lc} |")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
