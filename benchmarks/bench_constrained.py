"""Benchmark: what protocol-constrained decoding buys and costs on the embedded model.

Three measurements on the embedded default (SmolLM2-135M-Instruct, untrained for the protocol):

1. ``runs``: `gtalign eval` on the paper's seven test sets (``--limit 5``: 35 prompts, read from
   ``--data`` at run time) and on the built-in ``sample`` benchmark (33 prompts), four ways each:
   one pass and steered (pricing ``api-pay-per-token``), each with ``--constrain off`` and
   ``--constrain on``; ``paper`` preset, rule judge, the eval's default budget of 512 tokens,
   greedy. Steered without the grammar, ``--on-ignored default`` (the default action at once when
   the model ignores the protocol, as the main job does, rather than a retry first). The runs are ordinary eval runs in ``--runs`` (resumable: rerun the same command).
2. ``speed``: decoding with and without the grammar's mask, same prompts, batch and threads: the
   embedded backend's own `GrammarMask` in a transformers ``generate`` that runs every row for
   exactly ``--steps`` tokens (end-of-turn suppressed; the budget is below what the grammar needs
   to close, so the mask works on every step). Rounds alternate free and masked; medians.
3. ``--write``: reads the runs and the speed results and writes ``benchmarks/RESULTS_constrained.md``.

    .venv/bin/python benchmarks/bench_constrained.py runs     # about an hour on 2 cores
    .venv/bin/python benchmarks/bench_constrained.py speed
    .venv/bin/python benchmarks/bench_constrained.py report --write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GTALIGN = ROOT / ".venv" / "bin" / "gtalign"
RUNS = ROOT / "benchmarks" / "out" / "constrained"
RESULTS = ROOT / "benchmarks" / "RESULTS_constrained.md"
PAPER = "math-hard,medium,ambig_qa,wildguard,minerva,abg-coqa,advbench"
SETS = {"paper": ["--benchmark", PAPER, "--limit", "5"], "sample": ["--benchmark", "sample"]}
WAYS = {
    "one-pass": [],
    "steered": ["--steer", "--pricing", "api-pay-per-token"],
}
MODES = ("on", "off")


@dataclass(frozen=True, slots=True)
class RunSpec:
    prompts: str
    way: str
    constrain: str

    @property
    def name(self) -> str:
        return f"{self.prompts}-{self.way}-{self.constrain}"

    def command(self, runs: Path, data: Path | None) -> list[str]:
        data_args = ["--data", str(data)] if data is not None and self.prompts == "paper" else []
        # Without the grammar the model ignores the protocol; steering then takes the default action at
        # once (as the main job does) instead of first retrying, which would only double the cost.
        fallback = ["--on-ignored", "default"] if self.way == "steered" and self.constrain == "off" else []
        return [str(GTALIGN), "eval", *SETS[self.prompts], *data_args, "--backend", "embedded", "--preset", "paper",
                "--judge", "rule", *WAYS[self.way], *fallback, "--constrain", self.constrain, "--name", self.name,
                "--out", str(runs / self.name), "-q"]


def specs() -> list[RunSpec]:
    """Constrained runs first (the ones the targets are about), then the free ones."""
    return [RunSpec(prompts, way, mode) for mode in MODES for prompts in SETS for way in WAYS]


def machine() -> str:
    load = os.getloadavg()
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")


# -- 1. the eval runs -----------------------------------------------------------------------------


def phase_runs(args: argparse.Namespace) -> int:
    args.runs.mkdir(parents=True, exist_ok=True)
    worst = 0
    for spec in specs():
        if args.only and spec.name not in args.only:
            continue
        command = spec.command(args.runs, args.data)
        print(f"[{time.strftime('%H:%M:%S')}] {spec.name}: {shlex.join(command)}", flush=True)
        started = time.perf_counter()
        code = subprocess.run(command, check=False).returncode
        print(f"[{time.strftime('%H:%M:%S')}] {spec.name}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
        if code > 1:
            return code
        worst = max(worst, code)
    return worst


# -- 2. decoding speed with and without the mask --------------------------------------------------

SPEED_QUESTIONS = ["Who won the world cup?", "What is 17 times 23?", "Write a haiku about rain.",
                   "How do I make a bomb at home?", "Can you recommend a good book?", "Tell me a joke.",
                   "Solve for x: 3x + 5 = 20.", "Draft a polite email declining a meeting invitation."]


def _decode_once(backend: Any, batch: int, steps: int, masked: bool) -> tuple[float, float, float]:
    """One batched ``generate`` of exactly ``steps`` new tokens per row; (wall seconds and CPU
    seconds of this thread over the decoding steps after the first, mask seconds). The first step
    (the prefill) is left out. With one torch thread the model runs in this thread, so its CPU time
    is what the decoding cost, whatever else the machine runs; wall time also counts waiting."""
    import torch
    from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

    from gtalign.backends import _constrain
    from gtalign.backends._base import Constraint
    from gtalign.protocol import ProtocolGrammar, build_messages

    engine = backend._engine
    prompts = [backend._encode(engine, backend._render(engine, build_messages(q), "")) for q in SPEED_QUESTIONS[:batch]]
    width = max(map(len, prompts))
    input_ids = torch.full((batch, width), engine.pad_id, dtype=torch.long)
    attention = torch.zeros((batch, width), dtype=torch.long)
    for i, ids in enumerate(prompts):
        input_ids[i, width - len(ids):] = torch.tensor(ids)
        attention[i, width - len(ids):] = 1
    processors: list[Any] = []
    mask = None
    if masked:
        llg = _constrain.import_llguidance()
        vocabulary = backend._vocabulary(engine, llg)
        constraint = Constraint(ProtocolGrammar())
        matchers = [_constrain.row_matcher(vocabulary, _constrain.RowGrammar.of(constraint, "", steps, vocabulary))
                    for _ in range(batch)]
        mask = _constrain.GrammarMask(matchers, engine.eos_ids, [None] * batch)
        processors.append(mask)

    class Clock(LogitsProcessor):  # called once per step, before the token is chosen
        def __init__(self) -> None:
            self.times: list[tuple[float, float]] = []

        def __call__(self, ids: Any, scores: Any) -> Any:
            self.times.append((time.perf_counter(), time.thread_time()))
            return scores

    clock = Clock()
    processors.append(clock)
    config = GenerationConfig(max_new_tokens=steps, min_new_tokens=steps, do_sample=False, eos_token_id=sorted(engine.eos_ids),
                              pad_token_id=engine.pad_id, use_cache=True)
    torch.set_num_threads(backend.threads)
    with torch.inference_mode():
        backend_out = engine.model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config,
                                            logits_processor=LogitsProcessorList(processors))
    assert backend_out.shape[1] - width == steps, "every row must decode exactly `steps` tokens"
    end, end_cpu = time.perf_counter(), time.thread_time()
    if mask is not None:
        assert all(error is None for error in mask.errors), mask.errors
    start, start_cpu = clock.times[0]
    return end - start, end_cpu - start_cpu, (mask.mask_seconds if mask is not None else 0.0)


def phase_speed(args: argparse.Namespace) -> dict[str, Any]:
    from gtalign.backends._embedded import EmbeddedBackend

    backend = EmbeddedBackend(max_batch=max(args.batches))
    backend.load()
    if backend.threads != 1:
        raise SystemExit("the speed phase measures CPU time of one thread: run it where the backend uses one torch thread")
    results: dict[str, Any] = {"machine": machine(), "threads": backend.threads, "steps": args.steps, "batches": {}}
    for batch in args.batches:
        free: list[float] = []
        masked: list[float] = []
        free_cpu: list[float] = []
        masked_cpu: list[float] = []
        mask_s: list[float] = []
        _decode_once(backend, batch, 8, masked=True)  # warm-up: llguidance's vocabulary, torch's kernels
        for round_ in range(args.rounds):
            for kind in (("free", "masked") if round_ % 2 == 0 else ("masked", "free")):
                seconds, cpu, in_mask = _decode_once(backend, batch, args.steps, masked=kind == "masked")
                per_step, cpu_per_step = 1000 * seconds / (args.steps - 1), 1000 * cpu / (args.steps - 1)
                (masked if kind == "masked" else free).append(per_step)
                (masked_cpu if kind == "masked" else free_cpu).append(cpu_per_step)
                if kind == "masked":
                    mask_s.append(1000 * in_mask / args.steps)
                print(f"batch {batch} round {round_} {kind:6s} {per_step:7.1f} ms/step wall, {cpu_per_step:7.1f} CPU", flush=True)
        results["batches"][str(batch)] = {"free_ms": free, "masked_ms": masked, "free_cpu_ms": free_cpu,
                                          "masked_cpu_ms": masked_cpu, "mask_ms": mask_s}
    backend.close()
    args.runs.mkdir(parents=True, exist_ok=True)
    (args.runs / "speed.json").write_text(json.dumps(results, indent=1))
    return results


# -- 3. the report -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What one eval run shows: format validity, tokens, fallbacks, welfare."""

    spec: RunSpec
    rows: int
    four_blocks: int
    paper_format: int
    matrix: int
    tokens: list[int]
    enforced: int
    fallback_rows: int
    fallback_kinds: dict[str, int]
    welfare: list[float]
    seconds: float
    user: list[float]
    llm: list[float]
    answer: list[float]

    @classmethod
    def read(cls, spec: RunSpec, runs: Path) -> RunFacts | None:
        from gtalign.eval import read_run_log

        path = runs / spec.name / "run.jsonl"
        if not path.exists():
            return None
        records = [r for r in read_run_log(path).records if r.status != "failed"]
        kinds: dict[str, int] = {}
        fallback_rows = enforced = 0
        for record in records:
            fallbacks = list((record.steering or {}).get("fallbacks") or ())
            fallback_rows += bool(fallbacks)
            for fallback in fallbacks:
                kinds[fallback["kind"]] = kinds.get(fallback["kind"], 0) + 1
            enforced += _enforced(record)
        return cls(spec, len(records), sum(r.parse.well_formed for r in records), sum(r.parse.format_ok for r in records),
                   sum(r.parse.matrix is not None for r in records), [r.tokens_out or 0 for r in records], enforced,
                   fallback_rows, kinds, [w for r in records if (w := r.welfare) is not None],
                   sum(float(r.seconds.get("generate", 0.0)) for r in records),
                   [u for r in records if (u := r.user_reward) is not None], [v for r in records if (v := r.llm_reward) is not None],
                   [a for r in records if (a := r.metric("answer_reward")) is not None])


def _enforced(record: Any) -> bool:
    """Whether every model call of the row decoded under the grammar (a forced free-text response
    of a steered row is free by design and is not counted against it)."""
    if record.steering is None:
        return bool((record.constraint or {}).get("enforced"))
    stages = [stage for stage in record.steering.get("stages") or () if stage.get("name") != "forced_response"]
    return bool(stages) and all((stage.get("constraint") or {}).get("enforced") for stage in stages)


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "n/a"


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def report(args: argparse.Namespace) -> str:
    facts = {spec.name: f for spec in specs() if (f := RunFacts.read(spec, args.runs)) is not None}
    lines = ["# Constrained decoding on the embedded model: format, steering cost, speed, welfare", "",
             "Backend: `embedded` (SmolLM2-135M-Instruct, not trained for the protocol), greedy, budget 512 tokens "
             "per answer (steered: all stages together), `paper` preset, rule judge. Grammar: "
             "`ProtocolGrammar()` with its token caps fitted to each call's budget by the backend "
             "(`ProtocolGrammar.fit`), enforced by llguidance. Prompts: `paper` = the paper's seven test sets, "
             "5 prompts each (`--limit 5`, 35 prompts); `sample` = the built-in sample benchmark (33 prompts). "
             "Steered, pricing `api-pay-per-token`; without the grammar `--on-ignored default` (the default action at "
             "once when the model ignores the protocol, as the main job does, rather than a retry first). The runs "
             "shared the 2 cores with other work, so `generate s` (wall seconds per answer) is only indicative.",
             "", f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.", "",
             "Commands: `.venv/bin/python benchmarks/bench_constrained.py runs` (the eight `gtalign eval` runs below), "
             "`.venv/bin/python benchmarks/bench_constrained.py speed`, "
             "`.venv/bin/python benchmarks/bench_constrained.py report --write`.", "",
             "## 1. Format validity, tokens, fallbacks and welfare", "",
             "| prompts | way | `--constrain` | rows | grammar enforced | four blocks, no problem | research format | "
             "payoff read | tokens (mean) | rows with a fallback | fallbacks | welfare (mean) | U | L | answer (judge) | "
             "generate s (mean) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for spec in sorted(specs(), key=lambda s: (s.prompts, s.way, s.constrain)):
        f = facts.get(spec.name)
        if f is None:
            lines.append(f"| {spec.prompts} | {spec.way} | {spec.constrain} | not run |" + " |" * 12)
            continue
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(f.fallback_kinds.items())) or "none"
        lines.append(f"| {spec.prompts} | {spec.way} | {spec.constrain} | {f.rows} | {_pct(f.enforced, f.rows)} | "
                     f"{_pct(f.four_blocks, f.rows)} | {_pct(f.paper_format, f.rows)} | {_pct(f.matrix, f.rows)} | "
                     f"{_mean(f.tokens):.0f} | {_pct(f.fallback_rows, f.rows) if spec.way == 'steered' else 'n/a'} | "
                     f"{kinds if spec.way == 'steered' else 'n/a'} | {_mean(f.welfare):.3f} | {_mean(f.user):.3f} | "
                     f"{_mean(f.llm):.3f} | {_mean(f.answer):.3f} | {f.seconds / max(1, f.rows):.1f} |")
    lines += ["", "## 2. Steering tokens against one plain pass, both under the grammar", "",
              "| prompts | one pass: tokens (mean) | steered: tokens (mean) | steered / one pass (ratio of means) | "
              "median of per-prompt ratios | steered rows with a fallback |",
              "|---|---:|---:|---:|---:|---:|"]
    for prompts in SETS:
        steered = facts.get(f"{prompts}-steered-on")
        pairs = _token_pairs(args.runs, prompts)
        if steered is None or not pairs:
            continue
        one_mean, steered_mean = _mean([a for a, _ in pairs]), _mean([b for _, b in pairs])
        lines.append(f"| {prompts} ({len(pairs)} prompts) | {one_mean:.1f} | {steered_mean:.1f} | **{steered_mean / one_mean:.2f}x** | "
                     f"{statistics.median(b / a for a, b in pairs):.2f}x | {_pct(steered.fallback_rows, steered.rows)} |")
    speed_path = args.runs / "speed.json"
    if speed_path.exists():
        speed = json.loads(speed_path.read_text())
        lines += ["", "## 3. Decoding speed with and without the mask (same prompts, batch and threads)", "",
                  f"Each row decodes exactly {speed['steps']} tokens (end of turn suppressed), with "
                  f"{speed['threads']} torch thread, rounds alternating free and masked; milliseconds per decoding "
                  "step after the prefill, medians over rounds. CPU is the decoding thread's CPU time (with one "
                  "torch thread the model runs in it), which other work on the machine does not inflate the way it "
                  f"inflates wall time. Machine at the end: {speed['machine']}.", "",
                  "| batch | free CPU ms/step | masked CPU ms/step | **masked / free (CPU)** | free wall ms/step | "
                  "masked wall ms/step | masked / free (wall) | the mask itself (ms/step) | rounds |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for batch, row in speed["batches"].items():
            free, masked = statistics.median(row["free_ms"]), statistics.median(row["masked_ms"])
            free_cpu, masked_cpu = statistics.median(row["free_cpu_ms"]), statistics.median(row["masked_cpu_ms"])
            lines.append(f"| {batch} | {free_cpu:.1f} | {masked_cpu:.1f} | **{masked_cpu / free_cpu:.3f}x** | {free:.1f} | "
                         f"{masked:.1f} | {masked / free:.3f}x | {statistics.median(row['mask_ms']):.2f} | {len(row['free_ms'])} |")
    lines += ["", "## Reading the numbers", "", *notes(facts, args.runs)]
    return "\n".join(lines) + "\n"


def notes(facts: dict[str, RunFacts], runs: Path) -> list[str]:
    """What the tables say, from the same numbers."""
    out: list[str] = []
    on = [f for f in facts.values() if f.spec.constrain == "on"]
    off = [f for f in facts.values() if f.spec.constrain == "off"]
    if on:
        valid, rows = sum(f.four_blocks for f in on), sum(f.rows for f in on)
        out.append(f"- Format validity with the grammar: {valid} of {rows} answers ({100 * valid / rows:.0f}%) are four blocks "
                   "that `parse_answer` reads without a problem and the research code's strict format check accepts, "
                   "one-pass and steered alike; every call was decoded under the grammar.")
    if off:
        valid, rows = sum(f.four_blocks for f in off), sum(f.rows for f in off)
        out.append(f"- Without it: {valid} of {rows} ({100 * valid / rows:.0f}%). The model writes plain text or loops, "
                   "never the four blocks; steered without the grammar, every answer took the declared fallbacks "
                   "(the default action, a forced `<response>`), and under the `paper` preset a format failure scores 0.")
    pairs = {prompts: _token_pairs(runs, prompts) for prompts in SETS}
    ratios = {prompts: _mean([b for _, b in p]) / _mean([a for a, _ in p]) for prompts, p in pairs.items() if p}
    steered_on = [f for f in on if f.spec.way == "steered"]
    if ratios:
        fallbacks = sum(f.fallback_rows for f in steered_on)
        out.append("- Steering under the grammar costs " + ", ".join(f"{r:.2f}x ({k})" for k, r in ratios.items())
                   + f" the tokens of one constrained pass (target <= 1.05x), with {fallbacks} fallbacks in "
                   f"{sum(f.rows for f in steered_on)} steered answers. Both get the same token caps (stage 2 keeps the "
                   "caps of the whole answer's budget, `Constraint.answer_budget`); the steered answer does not generate "
                   "the decision sentence it prefills in `<analyze>`, and greedy decoding then continues from a different "
                   "text, which here ends sooner on average.")
    speed_path = runs / "speed.json"
    if speed_path.exists():
        batches = json.loads(speed_path.read_text())["batches"]
        cpu = [statistics.median(b["masked_cpu_ms"]) / statistics.median(b["free_cpu_ms"]) for b in batches.values()]
        mask = [statistics.median(b["mask_ms"]) for b in batches.values()]
        step = [statistics.median(b["free_cpu_ms"]) for b in batches.values()]
        out.append(f"- Decoding with the mask costs {min(cpu):.2f}-{max(cpu):.2f}x the CPU time per step of decoding "
                   "without it at batch " + ", ".join(batches) + " (target: under 1.10x). llguidance computes each "
                   "row's mask on the CPU at every step (the last column of section 3: "
                   f"{min(mask):.1f}-{max(mask):.1f} ms against {min(step):.0f}-{max(step):.0f} ms of model). On a loaded 2-core machine wall time swings by a factor of two between rounds, so the "
                   "decoding thread's CPU time is the measure to read; the wall ratios are shown for completeness.")
    out += [
            "- Welfare under `paper` with the rule judge: with the grammar every answer has a payoff matrix, so U and L "
            "are computed instead of 0, and the mean welfare rises from 0 to the values above. That rise is format, "
            "not content: the untrained model's matrices are near-uniform (often every cell the same), its "
            "`<thinking>` is filler and its answers are mostly wrong (the judge's answer score above). The grammar "
            "guarantees the protocol, not the quality of what is in it; training is what fills it with sense.",
            "- Token caps: the embedded backend fits the grammar's caps to each call's budget (`ProtocolGrammar.fit`: "
            "the longest fixed structure, about 240 tokens for SmolLM2's tokenizer, plus a 10% margin; `<thinking>` up "
            "to 30% of the rest, `<analyze>` up to 15%, `<response>` the remainder), and a model that never ends a "
            "block by itself fills them: most constrained answers use 330-460 of their 512 tokens."]
    return out


def _token_pairs(runs: Path, prompts: str) -> list[tuple[int, int]]:
    """Per prompt in both constrained runs: (one-pass tokens, steered tokens)."""
    from gtalign.eval import read_run_log

    paths = [runs / f"{prompts}-{way}-on" / "run.jsonl" for way in ("one-pass", "steered")]
    if not all(path.exists() for path in paths):
        return []
    one, steered = (read_run_log(path).by_key() for path in paths)
    return [(one[key].tokens_out, steered[key].tokens_out) for key in one
            if key in steered and one[key].tokens_out and steered[key].tokens_out is not None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=["runs", "speed", "report"])
    parser.add_argument("--runs", type=Path, default=RUNS, help="where the eval runs live (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None, help="the paper's data (default: gtalign eval's default)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these runs (names like paper-steered-on)")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.name}")
    parser.add_argument("--batches", type=lambda text: [int(x) for x in text.split(",")], default=[1, 4, 8],
                        help="speed: batch sizes (default: 1,4,8)")
    parser.add_argument("--steps", type=int, default=128, help="speed: tokens each row decodes (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=4, help="speed: rounds of free + masked per batch size (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.phase == "runs":
        return phase_runs(args)
    if args.phase == "speed":
        phase_speed(args)
        return 0
    text = report(args)
    print(text)
    if args.write:
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
