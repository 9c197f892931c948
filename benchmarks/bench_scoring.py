"""Benchmark (a): `paper`-preset scoring throughput per task, against the naive baseline.

For every row of the paper's test sets it builds a synthetic four-block completion (our own text
generator, seeded; about 5% malformed) and a judge verdict on the task's scale, then scores all rows
with `RewardScorer(paper())` and with `naive_paper.score`, side by side in one process, best of
``--repeat`` runs each. It also checks that both give the same numbers (max |difference|).

    python benchmarks/bench_scoring.py --data ../shared/data/gtalign [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import naive_paper  # noqa: E402

from gtalign.reward import RewardScorer, Sample, Verdict, paper  # noqa: E402

TEST_SETS = {
    "math-hard": "train_test/math-hard/test.parquet",
    "medium": "train_test/medium/test.parquet",
    "wildguard": "train_test/wildguard/test.parquet",
    "ambig_qa": "train_test/ambig_qa/test.parquet",
    "minerva": "minerva_math/test.parquet",
    "abg-coqa": "abg_coqa/test.parquet",
    "advbench": "advbench/test.parquet",
}
VERDICTS = {
    "medium": (0.0, 1.0, 2.0, 3.0, 4.0),
    "wildguard": (0.0, 0.5, 1.0),
    "advbench": (0.0, 0.5, 1.0),
}
FILLER = (
    "The user's request is specific, so a direct answer saves them time. A clarifying question "
    "would cost a turn without reducing much risk. An answer with one follow-up keeps the door open "
    "at a small cost in length. Token cost matters less than correctness here."
).split()


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(FILLER) for _ in range(n))


def synthetic_completion(rng: random.Random, source: str, ground_truth: str, articles: list[str]) -> str:
    cells = {
        key: {"LLM": round(rng.uniform(-2, 5), 1), "user": round(rng.uniform(-2, 5), 1)}
        for key in ("DQ_AQ", "DQ_CQ", "DQ_DA", "VQ_AQ", "VQ_CQ", "VQ_DA")
    }
    payoff = json.dumps(cells, indent=rng.choice([None, 2]))
    thinking = _words(rng, rng.randint(80, 200))
    analyze = "Pareto frontier: " + ", ".join(rng.sample(sorted(cells), 3)) + ". " + _words(rng, rng.randint(60, 150))
    analyze += f" Chosen key: {rng.choice(sorted(cells))}."
    if source == "medium":
        words = rng.choice(articles).split()
        response = " ".join(words[: rng.randint(200, 500)])
    elif source in ("math-hard", "minerva"):
        response = _words(rng, rng.randint(150, 400)) + f" So the answer is \\boxed{{{ground_truth}}}."
    else:
        response = _words(rng, rng.randint(80, 400))
    text = f"<thinking>{thinking}</thinking>\n<payoff>{payoff}</payoff>\n<analyze>{analyze}</analyze>\n<response>{response}</response>"
    roll = rng.random()
    if roll < 0.02:
        text = text.replace("</analyze>", "")
    elif roll < 0.04:
        text = text.replace('"VQ_DA"', "VQ_DA")
    elif roll < 0.05:
        text = "Sure! " + text
    return text


def build(data: Path, source: str, seed: int = 0) -> list[Sample]:
    frame = pd.read_parquet(data / TEST_SETS[source])
    truths = [str(rm["ground_truth"]) for rm in frame["reward_model"]]
    rng = random.Random(f"{seed}-{source}")
    samples = []
    for truth in truths:
        verdict = rng.choice(VERDICTS.get(source, (0.0, 1.0)))
        completion = synthetic_completion(rng, source, truth, truths)
        samples.append(Sample(source, completion, truth, verdict=Verdict(verdict)))
    return samples


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/gtalign")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    scorer = RewardScorer(paper())
    print("| task | rows | gtalign rows/s | naive rows/s | speed-up | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|")
    worst = float("inf")
    for source in TEST_SETS:
        samples = build(args.data, source)
        ours_t, ours = best_of(args.repeat, lambda: scorer.score(samples))
        naive_t, naive = best_of(
            args.repeat,
            lambda: [naive_paper.score(s.data_source, s.completion, s.ground_truth, s.verdict.value) for s in samples],
        )
        diff = max(
            abs(float(getattr(r, field)) - float(n[field]))
            for r, n in zip(ours, naive)
            for field in ("score", "user_reward", "llm_reward", "answer_reward", "format_reward")
        )
        ratio = naive_t / ours_t
        worst = min(worst, ratio)
        print(f"| {source} | {len(samples)} | {len(samples) / ours_t:,.0f} | {len(samples) / naive_t:,.0f} | {ratio:.1f}x | {diff:.1e} |")
    print(f"\nworst speed-up: {worst:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
