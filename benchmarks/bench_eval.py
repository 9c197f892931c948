"""Benchmark of `gtalign eval`: the runner's own cost over an HTTP backend, and the main job's wall time.

1. ``throughput`` (default): `run_eval` over an HTTP backend (`HTTPBackend`, built from the URL as
   ``gtalign eval --backend URL`` builds it) against `gtalign.testing.FakeOpenAI` in its own
   process, which answers every request with one four-block answer after a fixed latency
   (capacity well above the client's concurrency, so it never answers 429); the answer's boxed
   number is the request's sequence number (``--answers varying``, the default), so that no two
   math rows are the same row and the rule judge's cache of finished checks cannot make the
   judge look cheaper than it is (``--answers fixed``: the same answer, ``\\boxed{42}``, every
   time, as the first version of this script did). Rule judge, ``paper``
   preset, the ``sample`` benchmark's rows repeated (with distinct ids) to ``--rows`` rows, at
   concurrency 1, 8 and 32; median of ``--repeats`` runs by wall time. Reports rows/s against the
   ideal ``N * latency / C`` and the share of wall time spent outside the model (defined in
   `outside_shares`).
2. ``--main-job DIR``: runs the README's main job as separate ``gtalign`` processes (plain and
   steered runs on the embedded model with the paper preset, each re-scored with the robust preset
   through ``--answers-from``, then ``gtalign report``) and splits each process's wall time into
   start-up, model load, generation, judging and the rest, from the run logs' ``seconds`` fields,
   the embedded backend's load log line and the run log's last write (see `main_job`).

Prints Markdown tables and the command that produced them:
    .venv/bin/python benchmarks/bench_eval.py [--rows 384 --latency 0.05 --concurrency 1,8,32 --repeats 3]
    .venv/bin/python benchmarks/bench_eval.py --main-job /tmp/gtalign-main-job
    .venv/bin/python benchmarks/bench_eval.py --profile 32   # cProfile of one run at concurrency 32
    .venv/bin/python benchmarks/bench_eval.py --math-rows 240  # the rule judge alone, per math row
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import itertools
import json
import os
import platform
import pstats
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import _fake_server  # benchmarks/_fake_server.py, beside this script

MODEL = "bench-eval"
ROOT = Path(__file__).resolve().parent.parent
GTALIGN = ROOT / ".venv" / "bin" / "gtalign"

# One fixed answer in the paper's four blocks (a valid payoff matrix, a chosen key, a response that
# ends in a boxed number so the math rows parse an answer): about 120 words.
FIXED_ANSWER = (
    "<thinking>The question is clear and complete, so it is a DQ. A direct answer saves the user a turn "
    "and costs few tokens; a clarifying question would add effort without lowering the risk of a wrong "
    "answer; an answer with a follow-up is safe but longer.</thinking>\n"
    '<payoff>{"DQ_AQ": {"LLM": 2.1, "user": 2.4}, "DQ_CQ": {"LLM": 1.2, "user": 1.0}, '
    '"DQ_DA": {"LLM": 3.0, "user": 3.1}, "VQ_AQ": {"LLM": 1.8, "user": 2.0}, '
    '"VQ_CQ": {"LLM": 1.5, "user": 1.7}, "VQ_DA": {"LLM": 1.0, "user": 0.9}}</payoff>\n'
    "<analyze>Pareto frontier: DQ_DA. DQ_DA gives the highest payoff to both sides, and the question "
    "is definite. Chosen key: DQ_DA.</analyze>\n"
    "<response>Working it through step by step gives the result directly. So the answer is \\boxed{42}.</response>"
)


def machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")


# -- 1. throughput over HTTP ----------------------------------------------------------------------


def numbered_answer(n: int) -> str:
    """`FIXED_ANSWER` with ``\\boxed{n}`` instead of ``\\boxed{42}``."""
    return FIXED_ANSWER.replace("\\boxed{42}", f"\\boxed{{{n}}}")


class AnswerScript:
    """Answers each request with `FIXED_ANSWER`, its boxed number replaced by the request's
    sequence number in this server when ``varying`` (picklable, so the server can run in another
    process; each server counts from 0)."""

    def __init__(self, varying: bool) -> None:
        self.varying = varying
        self._numbers = itertools.count()

    def __call__(self, request: Any) -> Any:
        from gtalign.testing import Reply

        return Reply(text=numbered_answer(next(self._numbers)) if self.varying else FIXED_ANSWER)


def served(capacity: int, latency: float, varying: bool = True) -> contextlib.AbstractContextManager[tuple[str, dict[str, Any]]]:
    """The fake server, answering `AnswerScript`, in its own process: ``(base_url, counters)``."""
    return _fake_server.served(AnswerScript(varying), capacity=capacity, latency=latency, model=MODEL)


def bench_rows(n: int) -> list[Any]:
    """The ``sample`` benchmark's rows, cycled to ``n`` rows with distinct ids (``<id>~<k>``)."""
    from gtalign.benchmarks import load_benchmark

    base = list(load_benchmark("sample").rows)
    return [replace(base[i % len(base)], id=f"{base[i % len(base)].id}~{i // len(base)}") for i in range(n)]


def read_records(log: Path) -> list[dict[str, Any]]:
    """The run log's records in file (finishing) order, as JSON objects (the header line skipped)."""
    out = []
    with open(log, encoding="utf-8") as handle:
        for line in handle:
            data = json.loads(line)
            if "id" in data and "epoch" in data:
                out.append(data)
    return out


def batch_seconds(record: dict[str, Any]) -> float | None:
    """The record's scoring batch time: ``seconds.judge_batch`` where the runner writes it (then
    ``seconds.judge`` is the row's share of it), else ``seconds.judge`` (which was the batch's)."""
    seconds = record.get("seconds") or {}
    value = seconds.get("judge_batch")
    return seconds.get("judge") if value is None else value


def judge_batches(records: Sequence[dict[str, Any]]) -> list[tuple[int, float]]:
    """``(rows, seconds)`` of each scoring batch. Every record of a batch carries the batch's
    time (`batch_seconds`: one `RewardScorer.ascore` call), and a batch is written as consecutive
    lines, so a batch is a run of consecutive records with the same value."""
    batches: list[tuple[int, float]] = []
    previous: float | None = None
    for record in records:
        value = batch_seconds(record)
        if value is None:
            continue
        if batches and value == previous:
            batches[-1] = (batches[-1][0] + 1, value)
        else:
            batches.append((1, value))
        previous = value
    return batches


@dataclass(frozen=True, slots=True)
class Run:
    concurrency: int
    rows: int
    ok: int
    wall: float
    generate: list[float]
    batches: list[tuple[int, float]]
    server_requests: int
    max_in_flight: int

    def ideal(self, latency: float) -> float:
        return self.rows * latency / self.concurrency


def outside_shares(run: Run, latency: float) -> dict[str, float]:
    """The share of wall time spent outside the model, two ways.

    ``wall``: ``(wall - N * latency / C) / wall``: everything beyond the server's scripted latency,
    assuming C calls always in flight. It charges to gtalign the HTTP round trip (client, loopback,
    the fake server's own CPU), scoring, log writes, set-up and scheduling.
    ``slots``: ``1 - sum(generate) / (C * wall)``: the share of the C slots' time not spent inside a
    backend call, from the records' ``seconds.generate`` (the runner's clock around
    ``backend.generate``). The HTTP round trip counts as model time here; what is left is the
    runner: set-up, scoring, writing, scheduling.
    """
    return {
        "wall": (run.wall - run.ideal(latency)) / run.wall,
        "slots": 1.0 - sum(run.generate) / (run.concurrency * run.wall),
    }


class InstantJudge:
    """A judge that answers every request at once with the verdict 1.0 (valid on every task's
    scale): what is left of the wall time with it is the runner's own cost."""

    name = "instant"

    async def judge(self, requests: Sequence[Any]) -> list[Any]:
        from gtalign.reward import Verdict

        return [Verdict(1.0, raw="instant", judge=self.name) for _ in requests]


JUDGES = {
    "rule": "the rule judge as `gtalign eval --judge rule` builds it: a new one per run, whose math-verify worker processes start on the run's first math rows",
    "rule-early": "a new rule judge per run, built inside the timed window and started with `RuleJudge.warm_up()` (not waited for) just before `run_eval`, then closed: what `gtalign eval --judge rule` does once the runner calls `warm_up()` when a run starts",
    "rule-warm": "the same rule judge, built once before the timed runs, its math workers started (`RuleJudge.warm_up()`) and waited for, passed to `run_eval(judge=...)`; it lives across the runs, so its cache of finished checks is kept (with `--answers varying` no math row repeats, so it never hits)",
    "instant": "a stub judge answering 1.0 at once (`InstantJudge`): the paper preset's own scoring, the HTTP client and the runner only",
}


def make_judge(kind: str, rows: list[Any]) -> Any:
    """None for ``rule`` (the run builds its own), else the judge object passed to `run_eval`."""
    if kind in ("rule", "rule-early"):
        return None if kind == "rule" else kind  # rule-early: built by `one_run` in the timed window
    if kind == "instant":
        return InstantJudge()
    import asyncio

    from gtalign.judges import RuleJudge
    from gtalign.reward import RewardScorer, get_preset

    judge = RuleJudge()
    if hasattr(judge, "warm_up"):
        judge.warm_up().result()  # both math workers running
    else:  # a gtalign before RuleJudge.warm_up: check a few math rows instead
        math = [row.to_sample(numbered_answer(-1 - i)) for i, row in enumerate(rows)
                if row.data_source in ("math-hard", "minerva")][:8]
        asyncio.run(RewardScorer(get_preset("paper"), judge).ascore(math))
    return judge


def one_run(rows: list[Any], concurrency: int, latency: float, capacity: int, out: Path, judge: Any = None,
            varying: bool = True) -> Run:
    from gtalign.eval import EvalConfig, run_eval

    with served(capacity, latency, varying) as (base_url, counters):
        config = EvalConfig(("sample",), backend=base_url, model=MODEL, preset="paper", judge="rule",
                            concurrency=concurrency)
        started = time.perf_counter()
        if judge == "rule-early":
            from gtalign.judges import RuleJudge

            early = RuleJudge()
            if hasattr(early, "warm_up"):
                early.warm_up()
            try:
                summary = run_eval(config, out, rows=rows, judge=early)
            finally:
                early.close()
        else:
            summary = run_eval(config, out, rows=rows, judge=judge)
        wall = time.perf_counter() - started
    records = read_records(summary.log)
    return Run(concurrency, len(records), sum(1 for r in records if r["status"] == "scored"), wall,
               [r["seconds"]["generate"] for r in records], judge_batches(records),
               counters["requests"], counters["max_in_flight"])


def throughput(args: argparse.Namespace) -> list[str]:
    rows = bench_rows(args.rows)
    varying = args.answers == "varying"
    levels = [int(c) for c in args.concurrency.split(",")]
    kinds = args.judges.split(",")
    results: dict[tuple[str, int], list[Run]] = {(k, c): [] for k in kinds for c in levels}
    load_before = machine()
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        # Warm-up: imports, the preset and the judge's first use in this process, outside the timed runs.
        one_run(rows[:16], 8, args.latency, args.capacity, Path(tmp) / "warm", varying=varying)
        judges = {kind: make_judge(kind, rows) for kind in kinds}
        for repeat in range(args.repeats):
            for kind in kinds:
                for c in levels:
                    run = one_run(rows, c, args.latency, args.capacity, Path(tmp) / f"{kind}-c{c}-{repeat}", judges[kind],
                                  varying)
                    results[kind, c].append(run)
                    print(f"{kind} c={c} repeat {repeat}: {run.wall:.2f} s", file=sys.stderr)
        for judge in judges.values():
            if judge is not None and hasattr(judge, "close"):
                judge.close()
    load_after = machine()
    lines = [
        f"### Eval throughput over HTTP: {args.rows} rows, fake server latency {args.latency * 1000:.0f} ms, "
        f"{'a different boxed number in every answer' if varying else 'one fixed answer'}, "
        f"paper preset, median of {args.repeats} by wall time",
        "",
        "| judge | concurrency | rows | scored | wall (s) | range (s) | rows/s | ideal N*lat/C (s) | ideal rows/s | outside the model, wall | "
        "outside the model, slots | HTTP round trip over latency (ms/call) | scoring (ms/row) | scoring batches | max in flight |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, c in results:
        runs = sorted(results[kind, c], key=lambda r: r.wall)
        run = runs[len(runs) // 2]
        shares = outside_shares(run, args.latency)
        scoring = sum(seconds for _, seconds in run.batches)
        lines.append(
            f"| {kind} | {c} | {run.rows} | {run.ok} | {run.wall:.2f} | {runs[0].wall:.2f}-{runs[-1].wall:.2f} | "
            f"{run.rows / run.wall:.1f} | {run.ideal(args.latency):.2f} | {c / args.latency:.0f} | "
            f"{shares['wall']:.1%} | {shares['slots']:.1%} | "
            f"{(statistics.mean(run.generate) - args.latency) * 1000:.1f} | {scoring / run.rows * 1000:.2f} | "
            f"{len(run.batches)} | {run.max_in_flight} |"
        )
    command = "python benchmarks/bench_eval.py " + shlex.join(sys.argv[1:])
    lines += ["", *(f"- `{k}`: {JUDGES[k]}" for k in kinds)]
    lines += ["", f"Command: `{command.strip()}`", "",
              f"Machine: before {load_before}; after {load_after}.",
              f"Platform: {platform.platform()}, fake server in its own process (spawned)."]
    return lines


def profile(args: argparse.Namespace, concurrency: int) -> list[str]:
    """cProfile of one run at ``concurrency`` (the client side only; the server is another process)."""
    rows = bench_rows(args.rows)
    with tempfile.TemporaryDirectory(prefix="bench-eval-prof-") as tmp:
        one_run(rows[:16], 8, args.latency, args.capacity, Path(tmp) / "warm")
        profiler = cProfile.Profile()
        profiler.enable()
        run = one_run(rows, concurrency, args.latency, args.capacity, Path(tmp) / "prof")
        profiler.disable()
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    return [f"profile: concurrency {concurrency}, {run.rows} rows, wall {run.wall:.2f} s (under cProfile)", buffer.getvalue()]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker_pids(judge: Any) -> list[int]:
    pool = getattr(judge, "_pool", None)
    return sorted(worker.process.pid for worker in getattr(pool, "_live", ()))


def math_rows(n: int, repeats: int) -> list[str]:
    """The rule judge alone on the ``sample`` benchmark's 9 math rows, cycled to ``n`` rows with a
    different boxed number in each answer, in batches of 8 (what the eval runner sends at most):
    a new judge's first batch (worker start-up included), then the rest with the workers running,
    per row: wall time, the workers' CPU time and this process's CPU time. Median of ``repeats``
    fresh judges."""
    import asyncio

    from gtalign.judges import RuleJudge
    from gtalign.reward import RewardScorer, get_preset

    base = [row for row in bench_rows(33) if row.data_source in ("math-hard", "minerva")]
    samples = [base[i % len(base)].to_sample(numbered_answer(1000 + i)) for i in range(n)]
    scorer_preset = get_preset("paper")
    results = []
    for _ in range(repeats):
        judge = RuleJudge()
        scorer = RewardScorer(scorer_preset, judge)
        started = time.perf_counter()
        asyncio.run(scorer.ascore(samples[:8]))
        first = time.perf_counter() - started
        pids = _worker_pids(judge)
        cpu_workers = sum(_cpu_seconds(pid) for pid in pids)
        cpu_self = time.process_time()
        started = time.perf_counter()
        for at in range(8, n, 8):
            asyncio.run(scorer.ascore(samples[at:at + 8]))
        rest = time.perf_counter() - started
        pids_after = _worker_pids(judge)
        worker_cpu = sum(_cpu_seconds(pid) for pid in pids_after) - cpu_workers if pids_after == pids else float("nan")
        results.append((first, cpu_workers, rest / (n - 8), worker_cpu / (n - 8), (time.process_time() - cpu_self) / (n - 8),
                        len(pids)))
        judge.close()
    med = [statistics.median(r[i] for r in results) for i in range(6)]
    return [
        f"### The rule judge alone: {n} math rows of `sample` (9 golds), a different boxed number per answer, "
        f"batches of 8, median of {repeats} fresh judges",
        "",
        "| first batch of 8, wall (s) | workers' CPU by then (s) | workers | later rows: wall per row (ms) | workers' CPU per row (ms) | "
        "caller's CPU per row (ms) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {med[0]:.2f} | {med[1]:.2f} | {med[5]:.0f} | {med[2] * 1000:.2f} | {med[3] * 1000:.2f} | {med[4] * 1000:.2f} |",
        "",
        f"Command: `python benchmarks/bench_eval.py {shlex.join(sys.argv[1:])}`", "", f"Machine: {machine()}.",
    ]


# -- 2. the main job ------------------------------------------------------------------------------

CHILD_FLAG = "--_timed-child"


def timed_child(report: str, argv: list[str]) -> int:
    """Run ``gtalign ARGV`` in this process, noting when imports ended and the embedded backend's
    load log line (seconds and when it was logged) into the JSON file ``report``."""
    import logging

    notes: dict[str, Any] = {"started": time.time()}

    class LoadLine(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("embedded model") and " loaded in " in record.getMessage():
                notes["load_seconds"] = float(record.args[1])  # type: ignore[index]
                notes["load_logged"] = record.created

    from gtalign.cli import main

    notes["imported"] = time.time()
    logger = logging.getLogger("gtalign.backends._embedded")
    logger.setLevel(logging.INFO)
    logger.addHandler(LoadLine())
    try:
        code = main(argv)
    finally:
        notes["finished"] = time.time()
        Path(report).write_text(json.dumps(notes))
    return code


@dataclass
class Step:
    label: str
    argv: list[str]
    run_dir: Path | None
    wall: float = 0.0
    code: int = 0
    notes: dict[str, Any] | None = None
    started: float = 0.0


def run_step(step: Step, work: Path) -> None:
    report = work / f"{step.label}.timing.json"
    command = [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, str(report), *step.argv]
    step.started = time.time()
    t0 = time.perf_counter()
    with open(work / f"{step.label}.stderr", "w") as err:
        step.code = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, check=False).returncode
    step.wall = time.perf_counter() - t0
    step.notes = json.loads(report.read_text()) if report.exists() else {}
    print(f"{step.label}: exit {step.code}, {step.wall:.1f} s", file=sys.stderr)


def split(step: Step) -> dict[str, Any]:
    """One process's wall time, split at the child's own clock readings.

    python start/exit: the wall time outside ``gtalign.cli.main`` (interpreter start-up and exit).
    set-up: from entering ``main`` to the start of the model load (lazy imports of torch and
    transformers, the config, the benchmark, the model's files); without a model, zero (its set-up
    is in the pipeline). load: the embedded backend's ``LoadInfo.seconds`` (from its log line).
    pipeline: from the end of the load (or from entering ``main``) to the run log's last write (its
    mtime). Generation and judging overlap in it (the model decodes on its own thread while
    finished rows are scored on the event loop); judging is the sum of the scoring batches'
    ``seconds.judge``, and generation is the pipeline minus judging (an upper bound on the time
    the model was the only thing running). after: from the last write to ``main``'s return (the
    summary, closing the backend and the judge).
    """
    notes = step.notes or {}
    wall = step.wall
    started, finished = notes["started"], notes["finished"]
    out: dict[str, Any] = {"wall": wall, "python": wall - (finished - started), "setup": 0.0, "load": None, "pipeline": None,
                           "judging": None, "generation": None, "after": None, "rows": None, "generate_sum": None,
                           "tokens_out": None}
    if step.run_dir is None:  # the report: reading the logs, metrics, plots, html
        out["rest_of_pipeline"] = finished - started
        return out
    log = step.run_dir / "run.jsonl"
    records = read_records(log)
    load = notes.get("load_seconds")
    if load is not None:
        out["setup"] = notes["load_logged"] - load - started
        begin = notes["load_logged"]
    else:
        begin = started
    last_write = log.stat().st_mtime
    pipeline = last_write - begin
    judging = sum(seconds for _, seconds in judge_batches(records))
    generated = load is not None
    out.update(load=load, pipeline=pipeline, judging=judging, rows=len(records),
               generation=(pipeline - judging) if generated else 0.0, after=finished - last_write,
               generate_sum=sum(r.get("seconds", {}).get("generate", 0.0) for r in records) if generated else None,
               tokens_out=sum(r.get("tokens_out") or 0 for r in records) if generated else None,
               statuses=_count(r["status"] for r in records),
               unparsable=sum(1 for r in records if not (r.get("parse") or {}).get("format_ok", True)))
    if not generated:  # no model: the pipeline is reading the source run and scoring
        out["generation"] = None
        out["rest_of_pipeline"] = pipeline - judging
    return out


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def main_job(work: Path) -> list[str]:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    common = ["--benchmark", "sample", "--backend", "embedded", "--preset", "paper", "--judge", "rule", "--max-tokens", "64"]
    steps = [
        Step("plain-paper", ["eval", *common, "--out", str(work / "plain-paper")], work / "plain-paper"),
        Step("steered-paper", ["eval", *common, "--steer", "--pricing", "api-pay-per-token", "--on-ignored", "default",
                               "--out", str(work / "steered-paper")], work / "steered-paper"),
        Step("plain-robust", ["eval", "--answers-from", str(work / "plain-paper"), "--preset", "robust", "--judge", "rule",
                              "--out", str(work / "plain-robust")], work / "plain-robust"),
        Step("steered-robust", ["eval", "--answers-from", str(work / "steered-paper"), "--preset", "robust", "--judge", "rule",
                                "--out", str(work / "steered-robust")], work / "steered-robust"),
        Step("report", ["report", *(str(work / name) for name in ("plain-paper", "steered-paper", "plain-robust", "steered-robust")),
                        "--out", str(work / "report")], None),
    ]
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    total0 = time.perf_counter()
    for step in steps:
        run_step(step, work)
    total = time.perf_counter() - total0
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    saved = {"steps": [{"label": s.label, "argv": s.argv, "run_dir": None if s.run_dir is None else str(s.run_dir),
                        "wall": s.wall, "code": s.code} for s in steps],
             "total": total, "uptime_before": uptime_before, "uptime_after": uptime_after}
    (work / "steps.json").write_text(json.dumps(saved, indent=1))
    return main_job_table(work)


def main_job_table(work: Path) -> list[str]:
    """The tables of a main job run by `main_job` into ``work`` (read back from its files)."""
    saved = json.loads((work / "steps.json").read_text())
    steps = []
    for item in saved["steps"]:
        step = Step(item["label"], item["argv"], None if item["run_dir"] is None else Path(item["run_dir"]), item["wall"], item["code"])
        report = work / f"{step.label}.timing.json"
        step.notes = json.loads(report.read_text()) if report.exists() else {}
        steps.append(step)
    total, uptime_before, uptime_after = saved["total"], saved["uptime_before"], saved["uptime_after"]

    def f(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        "### The main job's wall time, by process and phase (seconds)",
        "",
        "| step | exit | rows | wall | python start/exit | set-up (lazy imports, model files) | model load | generation | judging | "
        "other work (reading runs, report) | after last write | rows' generate s, summed | tokens out | unparsable answers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = ("wall", "python", "setup", "load", "generation", "judging", "rest_of_pipeline", "after")
    sums = dict.fromkeys(keys, 0.0)
    details = []
    for step in steps:
        s = split(step)
        for key in keys:
            sums[key] += s.get(key) or 0.0
        cells = " | ".join(f(s.get(key)) for key in keys)
        lines.append(f"| {step.label} | {step.code} | {s['rows'] if s['rows'] is not None else '-'} | {cells} | "
                     f"{f(s['generate_sum'])} | {s['tokens_out'] if s['tokens_out'] is not None else '-'} | "
                     f"{s.get('unparsable', '-')} |")
        details.append(f"- {step.label}: `gtalign {shlex.join(step.argv)}`"
                       + (f" (statuses: {s.get('statuses')})" if s.get("statuses") else ""))
    lines.append("| **total** | | | " + " | ".join(f"**{sums[k]:.1f}**" if k == "wall" else f"{sums[k]:.1f}" for k in keys) + " | | | |")
    lines += ["", f"End to end (the five processes one after another): {total:.1f} s.", "", "Commands:", "", *details, "",
              f"Command: `python benchmarks/bench_eval.py --main-job {work}`", "",
              f"uptime before: `{uptime_before}`", "", f"uptime after: `{uptime_after}`", "",
              f"Platform: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}."]
    return lines


def main(argv: list[str]) -> int:
    if argv[:1] == [CHILD_FLAG]:
        return timed_child(argv[1], argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=384, help="rows per run (sample's rows cycled; default 384)")
    parser.add_argument("--latency", type=float, default=0.05, help="the fake server's latency per request, seconds")
    parser.add_argument("--capacity", type=int, default=256, help="the fake server's capacity (requests in flight)")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--judges", default="rule,rule-early,rule-warm,instant", help=f"comma-separated, of: {', '.join(JUDGES)}")
    parser.add_argument("--answers", choices=("varying", "fixed"), default="varying",
                        help="the fake server's answers: a boxed number that differs per request (default), or one fixed answer")
    parser.add_argument("--profile", type=int, metavar="C", help="profile one run at concurrency C instead")
    parser.add_argument("--math-rows", type=int, metavar="N", help="time the rule judge alone on N math rows instead")
    parser.add_argument("--main-job", type=Path, metavar="DIR", help="time the README's main job in DIR instead")
    parser.add_argument("--main-job-table", type=Path, metavar="DIR", help="print the tables of a main job already run in DIR")
    args = parser.parse_args(argv)
    if args.main_job is not None:
        lines = main_job(args.main_job)
    elif args.main_job_table is not None:
        lines = main_job_table(args.main_job_table)
    elif args.profile is not None:
        lines = profile(args, args.profile)
    elif args.math_rows is not None:
        lines = math_rows(args.math_rows, args.repeats)
    else:
        lines = throughput(args)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
