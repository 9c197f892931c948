"""Benchmark: what steering costs, in generated tokens and wall time, on the same prompts and backend.

Three ways to answer each prompt (the paper's own prompts, with the four-block instruction):

(a) plain     one pass of the four-block answer (stop at ``</response>``).
(b) steered   `SteeringEngine`: generate to ``</payoff>``, price and decide, then continue the SAME
              turn from ``<analyze>`` + the decision. Only newly generated tokens count (the
              prefilled text is not generated); retries and forced responses count too.
(c) research  the research code's method (``recipe/gamellm/inference/inference_v2.py`` in the
              paper's repository): generate to ``</payoff>``, transform, pick the action by the
              product ``user * LLM``, then a fresh turn with the bare question plus a one-line hint
              for the action, generated in full. Everything after ``</payoff>`` is generated again.

Target: steered <= 1.05x the tokens of one plain pass. Prompts come from the paper's test data
(``../shared/data/gtalign``), read at run time and never stored. Decoding is greedy by default, so
a steered first stage equals the plain pass up to ``</payoff>``; after it, the two continue from
different text and so have different lengths (see the notes written with the results).

    python benchmarks/bench_steering.py --write              # embedded SmolLM2-135M-Instruct, writes
                                                             # benchmarks/RESULTS_steering.md
    python benchmarks/bench_steering.py --backend scripted   # quick run on a scripted backend
    python benchmarks/bench_steering.py --backend http://127.0.0.1:8080/v1 --model NAME
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gtalign.backends._base import ChatBackend, SamplingParams
from gtalign.game import decide
from gtalign.protocol import ACTION_DESCRIPTIONS, messages_from_row, parse_answer, render_answer
from gtalign.steering import Fallback, SteeringEngine, load_policy
from gtalign.steering._steps import PAYOFF_CLOSE, close_at, read_payoff
from gtalign.testing import ScriptedBackend

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gtalign"
RESULTS = ROOT / "benchmarks" / "RESULTS_steering.md"
OTHER_MODES = ("default", "keep")
"""`Fallback.when_ignored` modes measured besides the default (``retry``)."""
SOURCES = (
    "train_test/ambig_qa/test.parquet",
    "train_test/math-hard/test.parquet",
    "train_test/wildguard/test.parquet",
    "train_test/medium/test.parquet",
)


@dataclass(frozen=True, slots=True)
class Prompt:
    source: str
    index: int
    messages: list[dict[str, str]]
    question: str


@dataclass(frozen=True, slots=True)
class Measure:
    """One method on one prompt: generated tokens, wall seconds, and what the text looked like."""

    tokens: int
    wall: float
    to_payoff: int
    calls: int
    four_blocks: bool
    note: str = ""


def load_prompts(data: Path, count: int) -> list[Prompt]:
    """``count`` prompts, taken in turn from the test sets (row 0 of each, then row 1, ...)."""
    import pandas as pd

    tables = []
    for relative in SOURCES:
        path = data / relative
        if not path.exists():
            raise SystemExit(f"paper data not found: {path} (pass --data DIR)")
        tables.append((relative.split("/")[1], pd.read_parquet(path, columns=["prompt", "extra_info"])))
    prompts: list[Prompt] = []
    row = 0
    while len(prompts) < count:
        for source, table in tables:
            if len(prompts) == count:
                break
            record = table.iloc[row]
            messages = messages_from_row(record)
            extra = record["extra_info"] if isinstance(record["extra_info"], Mapping) else {}
            question = str(extra.get("single_turn_prompt") or messages[-1]["content"].rpartition("Question:")[2]).strip()
            prompts.append(Prompt(source, row, messages, question))
        row += 1
    return prompts


def scripted_backend() -> ScriptedBackend:
    """A stand-in model that always keeps the format: a fixed four-block answer per question
    (lengths vary with the question), a continuation that writes the rest of <analyze> and the same
    response, and that response alone for a fresh turn without the instruction. Tokens are
    whitespace-separated words; wall times are not meaningful."""

    def answer(question: str) -> tuple[str, str, str]:
        words = question.split()
        thinking = ("The question is definite (DQ). A direct answer saves the user a turn; a clarifying question "
                    "costs time; an answer with one follow-up adds a little reading. ") + " ".join(words[:20])
        from gtalign.game import PayoffMatrix

        matrix = PayoffMatrix.from_arrays(user=[[3.4, 0.8, 3.2], [2.4, 0.9, 2.2]], llm=[[3.1, 1.1, 3.0], [2.6, 1.0, 2.0]])
        analyze = ("Pareto frontier: DQ_DA. The sum rule picks DQ_DA. Chosen key: DQ_DA. It is the best for both "
                   "sides because the question is clear.")
        response = "Here is a direct answer to your question about " + " ".join(words[:40]) + "."
        return render_answer(thinking, matrix, analyze, response), analyze, response

    def script(messages: Sequence[Mapping[str, str]], prefill: str) -> str:
        content = messages[-1]["content"]
        if "<thinking>" not in content:
            return answer(content)[2]
        full, analyze, response = answer(content.rpartition("Question:")[2])
        if not prefill:
            return full
        rest = analyze.partition("Chosen key: DQ_DA.")[2]
        return f"{rest}\n</analyze>\n<response>\n{response}\n</response>"

    return ScriptedBackend(script)


def build(spec: str, model: str | None, kind: str) -> ChatBackend:
    if spec == "scripted":
        return scripted_backend()
    if spec == "embedded" or spec.startswith("embedded:"):
        from gtalign.backends._embedded import EmbeddedBackend

        path = spec.partition(":")[2] or model
        return EmbeddedBackend(path) if path else EmbeddedBackend()
    from gtalign.backends._http import HTTPBackend

    return HTTPBackend(spec, model, kind=kind)


async def plain(backend: ChatBackend, prompt: Prompt, max_tokens: int) -> Measure:
    start = time.perf_counter()
    out = await backend.generate(prompt.messages, params=SamplingParams(max_tokens=max_tokens, stop=("</response>",)))
    wall = time.perf_counter() - start
    text = close_at(out.text, "</response>", "<response>", out.stop, out.finish_reason).text
    return Measure(out.tokens_out or 0, wall, 0, 1, parse_answer(text).well_formed,
                   "" if out.ok else f"{out.status}: {out.reason}")


async def steered(engine: SteeringEngine, prompt: Prompt) -> tuple[Measure, dict[str, Any]]:
    start = time.perf_counter()
    result = await engine.run(prompt.messages)
    wall = time.perf_counter() - start
    payoff_stages = [s for s in result.stages if s.name == "payoff"]
    kinds = [e.kind for e in result.fallbacks]
    note = ", ".join(dict.fromkeys(kinds)) if kinds else result.status
    measure = Measure(result.tokens_out or 0, wall, payoff_stages[-1].tokens_out or 0 if payoff_stages else 0,
                      len(result.stages), bool(result.parsed and result.parsed.well_formed), note)
    retries = sum(s.tokens_out or 0 for s in payoff_stages[:-1])
    prompt_tokens = payoff_stages[0].tokens_in or 0 if payoff_stages else 0
    return measure, {"retry_tokens": retries, "status": result.status, "chosen": result.chosen_key,
                     "prompt_tokens": prompt_tokens}


async def research(backend: ChatBackend, prompt: Prompt, policy: Any, max_tokens: int) -> Measure:
    """Stage one to </payoff>; the product rule on the transformed matrix; then a fresh turn with
    the bare question and a one-line hint (no instruction, no prefill), generated in full."""
    start = time.perf_counter()
    first = await backend.generate(prompt.messages, params=SamplingParams(max_tokens=max_tokens, stop=(PAYOFF_CLOSE,)))
    cut = close_at(first.text, PAYOFF_CLOSE, "<payoff>", first.stop, first.finish_reason)
    read = read_payoff(cut.text)
    if read.matrix is not None:
        action, note = decide(policy.transform(read.matrix), "product").action, ""
    else:
        action, note = "AQ", "no matrix: AQ"
    hint = ACTION_DESCRIPTIONS[action][0].upper() + ACTION_DESCRIPTIONS[action][1:] + "."
    second = await backend.generate([{"role": "user", "content": f"{prompt.question} {hint}"}],
                                    params=SamplingParams(max_tokens=max_tokens))
    wall = time.perf_counter() - start
    tokens = (first.tokens_out or 0) + (second.tokens_out or 0)
    return Measure(tokens, wall, first.tokens_out or 0, 2, False, note)


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _ratio(a: float, b: float, least: float = 0.0) -> str:
    return f"{a / b:.2f}x" if b > least else "n/a"


Row = tuple[Measure, Measure, dict[str, Any], Measure]


def table(prompts: list[Prompt], rows: list[Row]) -> tuple[list[str], dict[str, float]]:
    """The per-prompt table with its means, the ratio table, and the figures the notes quote."""
    lines = [
        "| # | source | plain tok | steered tok = retries + first stage + continuation | research tok "
        "= to `</payoff>` + fresh turn | plain s | steered s | research s | steered: key, fallbacks |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i, (prompt, (p, s, extra, r)) in enumerate(zip(prompts, rows), start=1):
        after = s.tokens - s.to_payoff - extra["retry_tokens"]
        lines.append(
            f"| {i} | {prompt.source}[{prompt.index}] | {p.tokens} | {s.tokens} = {extra['retry_tokens']} + {s.to_payoff} + "
            f"{after} | {r.tokens} = {r.to_payoff} + {r.tokens - r.to_payoff} | {p.wall:.2f} | {s.wall:.2f} | {r.wall:.2f} | "
            f"{extra['chosen']}, {s.note} |"
        )
    plain_tok = _mean([p.tokens for p, _, _, _ in rows])
    steer_tok = _mean([s.tokens for _, s, _, _ in rows])
    no_retry = _mean([s.tokens - e["retry_tokens"] for _, s, e, _ in rows])
    research_tok = _mean([r.tokens for _, _, _, r in rows])
    plain_wall = _mean([p.wall for p, _, _, _ in rows])
    steer_wall = _mean([s.wall for _, s, _, _ in rows])
    research_wall = _mean([r.wall for _, _, _, r in rows])
    lines += [
        f"| | **mean** | **{plain_tok:.1f}** | **{steer_tok:.1f}** | **{research_tok:.1f}** "
        f"| {plain_wall:.2f} | {steer_wall:.2f} | {research_wall:.2f} | |",
        "",
        "| ratio to one plain pass (ratio of means) | tokens | wall time |",
        "|---|---:|---:|",
        f"| (b) steered, all stages | **{_ratio(steer_tok, plain_tok)}** | {_ratio(steer_wall, plain_wall, 0.05)} |",
        f"| (b) steered, without retry attempts | {_ratio(no_retry, plain_tok)} | |",
        f"| (c) research code's method | {_ratio(research_tok, plain_tok)} | {_ratio(research_wall, plain_wall, 0.05)} |",
    ]
    mode_ratios: dict[str, float] = {}
    for mode in OTHER_MODES:
        tok = _mean([e["modes"][mode].tokens for _, _, e, _ in rows])
        wall = _mean([e["modes"][mode].wall for _, _, e, _ in rows])
        unsteered = sum("unstructured" in e["modes"][mode].note for _, _, e, _ in rows)
        mode_ratios[mode] = tok / plain_tok if plain_tok else float("nan")
        lines.insert(len(lines) - 1, f"| (b) steered, `on_ignored={mode}` ({unsteered} of {len(rows)} answers kept "
                     f"unsteered) | {_ratio(tok, plain_tok)} | {_ratio(wall, plain_wall, 0.05)} |")
    facts = {
        "n": len(rows),
        "four_blocks": sum(p.four_blocks for p, _, _, _ in rows),
        "fallback": sum(e["status"] != "ok" for _, _, e, _ in rows),
        "steered_ratio": steer_tok / plain_tok if plain_tok else float("nan"),
        "no_retry_ratio": no_retry / plain_tok if plain_tok else float("nan"),
        "calls": _mean([s.calls for _, s, _, _ in rows]),
        "prompt_tokens": _mean([e["prompt_tokens"] for _, _, e, _ in rows]),
        **{f"{mode}_ratio": ratio for mode, ratio in mode_ratios.items()},
    }
    return lines, facts


def notes(facts: dict[str, float], mechanism: dict[str, float] | None) -> list[str]:
    """How to read the tables, with this run's figures."""
    n = int(facts["n"])
    out = [
        "## Reading the numbers",
        "",
        "- Tokens are the backend's counts of newly generated tokens. A steered answer never generates its "
        "prefilled text (the first stage it continues and the decision sentence in `<analyze>`); retries and "
        "forced responses are generated and count.",
        "- Greedy decoding makes the steered first stage the plain pass cut at `</payoff>`. After it the plain "
        "pass writes its own analysis and response, while the steered answer continues from the prefilled "
        "decision, for the action the policy chose; the two tails differ in length from prompt to prompt, so "
        "compare the means, not single rows.",
        f"- On this backend {int(facts['four_blocks'])} of {n} plain passes were four well-formed blocks and "
        f"{int(facts['fallback'])} of {n} steered answers needed fallbacks. When the model does not keep the "
        "format, the declared fallbacks are what costs: a retry (up to the whole budget again), then a "
        "continuation of at least 64 tokens from an `<analyze>` the model did not start, and a forced "
        f"`<response>` of at least 64 more. Steered/plain is {facts['steered_ratio']:.2f}x here, "
        f"{facts['no_retry_ratio']:.2f}x without the retries. The target (<= 1.05x) presumes a model that writes "
        "the four blocks.",
        f"- The declared fallbacks for a model that ignores the protocol are the cost knob (`Fallback.when_ignored`, "
        f"`--on-ignored` in `gtalign chat` and `gtalign serve`): `default` skips the retry and takes the default "
        f"action at once ({facts['default_ratio']:.2f}x); `keep` returns the model's own answer unsteered, so "
        f"its first stage is the plain pass and nothing more is generated ({facts['keep_ratio']:.2f}x). Attempts at "
        "the protocol whose matrix does not read are still retried and steered under every mode.",
    ]
    if mechanism is not None:
        out.append(
            f"- The mechanism's bound, on the scripted backend (second table): {mechanism['steered_ratio']:.2f}x. "
            "It is not a model: it always keeps the format and its continuation does not depend on the chosen "
            "action, so it shows only what the mechanism costs: the first stage is shared token for token, nothing "
            "is generated twice, and the prefilled decision sentence is not generated at all. A real model that "
            "keeps the format pays this plus whatever the chosen action's response costs over the one it replaces; "
            "the first table is the only real-model measurement here."
        )
    out += [
        f"- Wall time: a steered answer made {facts['calls']:.1f} backend calls on average, and every call reads the "
        f"prompt (about {facts['prompt_tokens']:.0f} tokens with the paper's instruction) from scratch when the "
        "backend keeps no KV cache between calls, as the embedded one does not; servers with prefix caching (vLLM, "
        "SGLang, llama.cpp's server) reuse the shared prefix, and then a steered answer costs about one plain pass.",
        "- The research code's method (c) generates to `</payoff>`, then answers in a fresh turn with the bare "
        "question and a one-line hint, without the four-block instruction: the model's analysis is discarded and "
        "the final answer carries no blocks and no record of the decision. Its fresh-turn answer is as long as "
        "the model likes; the issue's wording (\"a second full generation\") would, with a full first pass, add "
        "one plain pass more.",
        "",
    ]
    return out


def report(args: argparse.Namespace, prompts: list[Prompt], rows: list[Row], backend: ChatBackend, command: str,
           scripted_rows: list[Row] | None) -> str:
    lines, facts = table(prompts, rows)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load} at the end"
    text = [
        "# Steering cost: generated tokens and wall time",
        "",
        f"Backend: `{getattr(backend, 'name', '?')}` / `{getattr(backend, 'model', '?')}`; {len(prompts)} prompts from the "
        f"paper's test sets; greedy decoding (temperature {args.temperature:g}); budget {args.max_tokens} tokens per "
        f"answer; pricing `{args.pricing}`, rule `{args.rule}`. Machine: {machine}.",
        "",
        f"Command: `{command}`",
        "",
        "(a) plain: one pass of the four-block answer. (b) steered: `SteeringEngine`, two stages and any fallbacks. "
        "(c) research: the research code's method. Target: (b) <= 1.05x the tokens of (a).",
        "",
        *lines,
        "",
    ]
    mechanism = None
    if scripted_rows is not None:
        scripted_lines, mechanism = table(prompts, scripted_rows)
        text += [
            "## The mechanism's bound, not a model: the same prompts on a scripted backend (always keeps the format, writes the same response whichever action is chosen; tokens are words)",
            "",
            *scripted_lines,
            "",
        ]
    return "\n".join(text + notes(facts, mechanism))


async def measure(backend: ChatBackend, prompts: list[Prompt], args: argparse.Namespace) -> list[Row]:
    policy = load_policy(args.pricing)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed)
    engine = SteeringEngine(backend, policy, rule=args.rule, params=params)
    others = {mode: SteeringEngine(backend, policy, rule=args.rule, params=params, fallback=Fallback.when_ignored(mode))
              for mode in OTHER_MODES}
    if args.warmup:
        await backend.generate([{"role": "user", "content": "Hi"}], params=SamplingParams(max_tokens=4))
    rows = []
    try:
        for i, prompt in enumerate(prompts, start=1):
            p = await plain(backend, prompt, args.max_tokens)
            s, extra = await steered(engine, prompt)
            extra["modes"] = {mode: (await steered(other, prompt))[0] for mode, other in others.items()}
            r = await research(backend, prompt, policy, args.max_tokens)
            rows.append((p, s, extra, r))
            print(f"[{i}/{len(prompts)}] {backend.name} {prompt.source}: plain {p.tokens} tok {p.wall:.1f}s | steered "
                  f"{s.tokens} tok {s.wall:.1f}s ({extra['status']}, {extra['chosen']}) | research {r.tokens} tok "
                  f"{r.wall:.1f}s | " + ", ".join(f"{mode} {m.tokens} tok" for mode, m in extra["modes"].items()),
                  file=sys.stderr)
    finally:
        await backend.aclose()
    return rows


async def main_async(args: argparse.Namespace) -> str:
    prompts = load_prompts(Path(args.data), args.prompts)
    backend = build(args.backend, args.model, args.server_kind)
    rows = await measure(backend, prompts, args)
    scripted_rows = None
    if args.backend != "scripted" and args.mechanism:
        scripted_rows = await measure(scripted_backend(), prompts, args)
    command = "python benchmarks/bench_steering.py " + " ".join(sys.argv[1:])
    return report(args, prompts, rows, backend, command.strip(), scripted_rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="embedded", help="embedded (default), embedded:PATH, scripted, or a URL")
    parser.add_argument("--model", help="model name at a URL backend, or a local model folder for embedded")
    parser.add_argument("--server-kind", default="auto", help="server kind of a URL backend (default: auto)")
    parser.add_argument("--data", default=str(DATA), help=f"the paper's data folder (default: {DATA})")
    parser.add_argument("--prompts", type=int, default=4, help="number of prompts (default: 4)")
    parser.add_argument("--max-tokens", type=int, default=256, help="token budget per answer (default: 256)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--pricing", default="research-llm-shift", help="pricing policy (default: research-llm-shift)")
    parser.add_argument("--rule", default="sum", help="welfare rule of the steered answer (default: sum)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the warm-up call")
    parser.add_argument("--write", metavar="FILE", nargs="?", const=str(RESULTS),
                        help=f"also write the Markdown report to FILE (default with no FILE: {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--no-mechanism", dest="mechanism", action="store_false",
                        help="skip the same prompts on the scripted model (the mechanism check)")
    args = parser.parse_args(argv)
    text = asyncio.run(main_async(args))
    print(text)
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
        print(f"wrote {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
