"""Time the metrics on a run of the paper's size: 3,000 prompts x K epochs, 1,000 resamples.

    .venv/bin/python benchmarks/bench_metrics.py [--prompts 3000] [--epochs 1 4] [--resamples 1000]

Prints, best of --repeat runs: one bootstrap `Estimate` (the engine alone), `summarize` (every
metric of every source plus ``all``) and `compare` (two runs on the same prompts). Records are
synthetic (seeded), spread over three sources.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from gtalign.eval import AnswerParse, SampleRecord
from gtalign.metrics import bootstrap_mean, compare, summarize

SOURCES = (("math-hard", ""), ("wildguard", "harmful"), ("ambig_qa", "ambiguous"))


def run_records(prompts: int, epochs: int, seed: int) -> list[SampleRecord]:
    rng = np.random.default_rng(seed)
    parse = AnswerParse(format_ok=True, blocks={"thinking": "t" * 300, "analyze": "a" * 200, "response": "r" * 400},
                        chosen_key="DQ_DA", welfare_key="DQ_DA", action="DA", response_act="DA")
    out = []
    for i in range(prompts):
        source, label = SOURCES[i % len(SOURCES)]
        for epoch in range(epochs):
            u, l = float(rng.random()), float(rng.random())
            verdict = float(rng.choice([0.0, 0.5, 1.0]))
            reward = {"score": math.sqrt(u * l), "utility": math.sqrt(u * l), "user_reward": u, "llm_reward": l,
                      "answer_reward": verdict, "format": 1.0, "judge_status": "ok", "judge_value": verdict}
            out.append(SampleRecord(id=f"{source}/{i}", epoch=epoch, benchmark=source, data_source=source,
                                    status="scored", label=label, answer="x" * 1000, parse=parse, reward=reward,
                                    tokens_out=int(rng.integers(100, 900))))
    return out


def best(repeat: int, call) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=3000)
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| prompts x epochs | rows | one Estimate | summarize | compare |")
    print("|---|---:|---:|---:|---:|")
    for epochs in args.epochs:
        a = run_records(args.prompts, epochs, seed=1)
        b = run_records(args.prompts, epochs, seed=2)
        values = [r.welfare for r in a]
        clusters = [r.id for r in a]
        one = best(args.repeat, lambda: bootstrap_mean(values, clusters, resamples=args.resamples))
        summary = best(args.repeat, lambda: summarize(a, resamples=args.resamples))
        pair = best(args.repeat, lambda: compare(a, b, resamples=args.resamples))
        print(f"| {args.prompts} x {epochs} | {len(a)} | {one * 1000:.0f} ms | {summary * 1000:.0f} ms | {pair * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
