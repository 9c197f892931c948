"""``gtalign data``: training data built from labelled rows. ``gtalign data sft`` writes four-block
SFT targets (`gtalign.training._targets`), asking a model for plain answers where a row has none
(`gtalign.training._distill`).

Only argparse is imported at module level; the builder, the loaders and any backend are imported
when the command runs, so ``gtalign --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gtalign.cli._args import integer, names, non_negative_float, positive_int

if TYPE_CHECKING:
    from rich.console import Console

    from gtalign.benchmarks import Benchmark, BenchmarkRow
    from gtalign.training._targets import SftTarget, SkippedRow

__all__ = ["configure", "run"]

_DESCRIPTION = """\
Build training data from labelled rows.

Commands:
  sft   four-block SFT targets (prompt + completion) derived from each row's labels
"""

_SFT_DESCRIPTION = """\
Write four-block SFT targets for rows in the paper's format (prompt, data_source,
reward_model.ground_truth, extra_info), derived from each row's labels:

  label            question type and move   response
  ambiguous        VQ_CQ                    a clarifying question naming every meaning the ground
                                            truth lists (ambig_qa 'multipleQAs###Meaning i: ...')
  clear            DQ_DA                    the reference answer ('singleAnswer###...'), else distilled
  harmful          DQ_DA                    a direct refusal that offers a safe alternative
  unharmful        DQ_DA                    distilled
  (none) math      DQ_DA                    a short answer ending in \\boxed{ground truth}
  (none) writing   DQ_DA                    the reference article
  (none) other     DQ_DA                    distilled

"Distilled" is the --distill-backend model's own plain answer to the bare question (the row's
conversation without the four-block instruction); without --distill-backend those rows are skipped
with the reason needs_distillation. Each target's payoff matrix is different per row but the same
on every run for a given --seed: numbers in -5..5 with one decimal, the labelled cell strictly the
largest LLM + user of all six. <analyze> names the matrix's Pareto frontier and "Chosen key: X";
<thinking> is 2-5 number-free sentences naming DQ/VQ and weighing DA, CQ and AQ. Every target is
written in the protocol grammar's shape and checked before it is kept: parse_answer finds no
problem, the robust preset's consistency checks pass (chosen key = welfare choice, the response
does what the key says, DQ/VQ matches an ambiguity label), the research code's format check passes,
and the response does what the label asks. A row that fails is skipped, with the reason.

INPUT is a benchmark name read from the paper's layout under --data (math-hard, ambig_qa,
wildguard, ...; --split, default train), the shipped 'sample', a .parquet/.jsonl file, a dataset
folder, or a dataset hub id owner/name. Rows get ids INPUT/SPLIT/INDEX (a file: its folder and
name when the name is a split such as train.parquet, e.g. math-hard/train/17).

OUT (.jsonl, or .parquet) holds one row per target in TRL's conversational prompt-completion format:
{"prompt": [messages], "completion": [{"role": "assistant", "content": TARGET}], "id",
"data_source", "reward_model": {"ground_truth"}, "extra_info", "label", "target_source"
(reference | distilled), "prompt_mode" (stored | builder: the --prompt the targets were built for;
gtalign train sft evaluates with it), "chosen_key"}: the same file feeds SFT and, through
data_source and ground_truth, the reward. OUT is written whole at the end (a temporary file renamed into place), so
an interrupted run never leaves a partial OUT. Distilled answers are kept as they arrive in
OUT.distill-cache.jsonl: run the same command again after an interruption or a backend failure and
only the missing answers are asked for. The cache stays (answers that were cut off or unusable are
in it too), so a later build with other settings of the same model asks nothing again; delete it
to ask again.

Held-out questions: the paper's train splits repeat test questions verbatim (about 400 math-hard
train rows ask one of its test questions). A benchmark name read from its train split (or any split
but test) drops every row whose question (lower case, whitespace collapsed) is one of the same
benchmark's test split, before --limit samples, and the summary counts them; --allow-eval-data
keeps them. --split test is refused unless --allow-eval-data.

Skip reasons: bad_row, unknown_label, no_meanings, bad_reference, needs_distillation, no_question,
distill_failed, distilled_unusable, internal_error; the summary (stderr) counts them per data
source with the first example, and --skipped FILE lists every skipped row.

Examples:
  gtalign data sft math-hard ambig_qa wildguard --data ../shared/data/gtalign --out sft.jsonl
  gtalign data sft wildguard --data ../shared/data/gtalign --limit 200 --seed 1 \\
      --distill-backend embedded --max-tokens 256 --out sft-wildguard.parquet
  gtalign data sft rows.jsonl --prompt builder --distill-backend http://127.0.0.1:8000/v1 --model qwen --out sft.jsonl

Exit codes: 0 targets written (rows skipped for lack of data are listed, not failures); 1 a
distillation call failed (rerun to ask again), a builder error, or no target at all; 2 usage error;
130 interrupted (run the same command again: distilled answers are kept).
"""

_SPLIT_NAMES = frozenset({"train", "test", "validation", "valid", "val", "dev", "eval"})
_OUT_SUFFIXES = (".jsonl", ".ndjson", ".parquet")


def configure(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``data`` command (with its ``sft`` subcommand) to ``commands`` and return its parser."""
    parser = commands.add_parser(
        "data",
        help="build training data: four-block SFT targets from labelled rows",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="data_command", metavar="COMMAND", title="commands")
    sft = sub.add_parser(
        "sft",
        help="four-block SFT targets derived from each row's labels (see gtalign data sft --help)",
        description=_SFT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sft.add_argument("inputs", nargs="+", metavar="INPUT",
                     help="benchmark names (math-hard, ambig_qa, wildguard, ..., sample), .parquet/.jsonl files, "
                     "dataset folders or hub ids owner/name")
    sft.add_argument("-o", "--out", required=True, metavar="OUT", help="output file: .jsonl, or .parquet")
    rows = sft.add_argument_group("rows")
    rows.add_argument("--data", metavar="DIR", help="the paper's data folder, for benchmark names (default: $GTALIGN_DATA, "
                      "else ../shared/data/gtalign when present)")
    rows.add_argument("--split", metavar="NAME", help="split of benchmark names and hub datasets (default: train for names)")
    rows.add_argument("--source", type=names, metavar="SRC[,SRC]", help="keep only rows of these data sources")
    rows.add_argument("--limit", type=positive_int, metavar="N",
                      help="at most N rows per data source: the first N, or with --seed a random sample kept in order")
    rows.add_argument("--seed", type=integer, metavar="S",
                      help="seed of the --limit sample, of every row's payoff matrix and phrasing, and of distillation "
                      "sampling (default: 0; the same seed gives the same output)")
    rows.add_argument("--allow-eval-data", action="store_true",
                      help="keep rows whose question is in the benchmark's held-out test split, and allow --split test "
                      "(default: drop them, refuse it)")
    rows.add_argument("--prompt", choices=("stored", "builder"), default="stored",
                      help="each target's prompt: the row's stored prompt (the paper's instruction) or gtalign's prompt "
                      "builder, as gtalign eval --prompt (default: stored)")
    model = sft.add_argument_group("self-distillation (rows without a reference answer)")
    model.add_argument("--distill-backend", metavar="embedded|URL|module:attr",
                       help="the model that answers rows without a reference: 'embedded' (SmolLM2-135M-Instruct on the "
                       "CPU), 'embedded:PATH', an OpenAI-compatible server's http(s):// URL, or module:attr of a "
                       "ChatBackend; without it those rows are skipped (needs_distillation)")
    model.add_argument("--model", metavar="NAME", help="model name at the --distill-backend URL; with embedded, a local model")
    model.add_argument("--max-tokens", type=positive_int, default=512, metavar="N",
                       help="token budget of one distilled answer; a longer one is kept up to its last full sentence (when 80 characters or more are left), else skipped as cut off (default: 512)")
    model.add_argument("--temperature", type=non_negative_float, default=0.0, metavar="T",
                       help="sampling temperature of distillation (default: 0, greedy, so reruns repeat)")
    model.add_argument("--concurrency", type=positive_int, metavar="N",
                       help="distillation calls in flight (default: the backend's own limit: the embedded batch size, "
                       "the HTTP client's concurrency)")
    out = sft.add_argument_group("output")
    out.add_argument("--skipped", metavar="FILE", help="also write every skipped row (id, data_source, reason, detail) as JSONL")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress or notes; the summary only")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``gtalign data COMMAND``; returns the exit code."""
    if getattr(args, "data_command", None) != "sft":
        print("usage: gtalign data COMMAND ...\n\n" + _DESCRIPTION + "\nRun `gtalign data sft --help` for its options.",
              file=sys.stderr)
        return 2
    return _run_sft(args)


# -- the sft command -------------------------------------------------------------------------------


def _file_prefix(path: Path) -> str:
    stem = path.stem
    if stem.lower() in _SPLIT_NAMES and path.parent.name:
        return f"{path.parent.name}/{stem}"
    return stem


def _load_input(text: str, args: argparse.Namespace) -> tuple[str, Benchmark]:
    """One INPUT's rows, and the prefix of their ids."""
    from gtalign.benchmarks import BenchmarkSpec, benchmark_names, get_benchmark, load_benchmark
    from gtalign.cli._main import UsageError

    common: dict[str, Any] = {"sources": args.source, "prompt": args.prompt}
    path = Path(text).expanduser()
    if path.is_file():
        return _file_prefix(path), load_benchmark(path, **common)
    if path.is_dir():
        if not any((path / name).exists() for name in ("dataset_dict.json", "state.json")):
            raise UsageError(f"{text} is a folder but not a saved dataset: pass its .parquet/.jsonl files, or benchmark "
                             f"names with --data {text}")
        name = path.name or "dataset"
        spec = BenchmarkSpec(name.replace("/", "-"), "custom", labels="task", description=f"rows of {text}")
        prefix = f"{name}/{args.split}" if args.split else name
        return prefix, load_benchmark(spec, data=str(path), split=args.split, **common)
    if text in benchmark_names():
        spec = get_benchmark(text)
        if spec.path is not None:
            return text, load_benchmark(text, **common)
        split = args.split or "train"
        return f"{text}/{split}", load_benchmark(text, data=args.data, split=split, **common)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):  # a hub id (a missing local path errors there)
        spec = BenchmarkSpec(text.replace("/", "--"), "custom", labels="task", description=f"rows of {text}")
        prefix = f"{text}/{args.split}" if args.split else text
        return prefix, load_benchmark(spec, data=text, split=args.split, **common)
    raise UsageError(f"INPUT {text!r} is no file, folder, benchmark name ({', '.join(benchmark_names())}) or hub id owner/name")


def _reid(row: BenchmarkRow, prefix: str) -> BenchmarkRow:
    import dataclasses

    return dataclasses.replace(row, id=f"{prefix}/{row.id.rpartition('/')[2]}")


def _sample(rows: list[BenchmarkRow], limit: int | None, seed: int | None) -> list[BenchmarkRow]:
    """At most ``limit`` rows per data source (the first, or a seeded random sample), in order."""
    if limit is None:
        return rows
    import random

    by_source: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_source.setdefault(row.data_source, []).append(index)
    keep: set[int] = set()
    for source, indices in by_source.items():
        if len(indices) <= limit:
            keep.update(indices)
        elif seed is None:
            keep.update(indices[:limit])
        else:
            keep.update(random.Random(f"{seed}:{source}").sample(indices, limit))
    return [row for index, row in enumerate(rows) if index in keep]


def _paper_benchmark(text: str) -> bool:
    """Whether INPUT ``text`` is a benchmark name read from the paper's layout (not a local path)."""
    from gtalign.benchmarks import benchmark_names, get_benchmark

    if Path(text).expanduser().exists() or text not in benchmark_names():
        return False
    return get_benchmark(text).path is None


def _without_held_out(text: str, prefix: str, rows: list[BenchmarkRow], args: argparse.Namespace) -> tuple[list[BenchmarkRow], str | None]:
    """``rows`` of the paper benchmark ``text`` without those whose question is one of its test
    split's, and the summary's line on what was dropped (None: nothing to say)."""
    from gtalign.training._train_data import HeldOutSet, drop_eval_overlap, held_out_questions, row_question_keys

    held_out = held_out_questions([HeldOutSet(text, args.data, "test", f"{text} test split")])
    if not held_out.keys:
        return rows, f"{prefix}: {held_out.notes[0]}" if held_out.notes else None
    kept, dropped = drop_eval_overlap(rows, held_out.keys, keys=row_question_keys)
    if not dropped:
        return rows, None
    return kept, (f"{prefix}: {len(dropped)} rows dropped: their question is in the held-out {held_out.describe()} "
                  "(--allow-eval-data keeps them)")


def _load_rows(args: argparse.Namespace, console: Console,
               quiet: bool) -> tuple[list[BenchmarkRow], list[SkippedRow], list[str]]:
    """The rows to build from (held-out questions dropped, then sampled), the unreadable ones,
    and the summary's lines on the held-out questions."""
    from gtalign.benchmarks import BenchmarkError
    from gtalign.cli._main import UsageError
    from gtalign.training._targets import SkippedRow

    if args.split is not None and args.split.strip().lower() == "test" and not args.allow_eval_data:
        raise UsageError(f"--split {args.split} is the held-out evaluation split: training data built from it makes the "
                         "evaluation meaningless; build from --split train, or pass --allow-eval-data to build anyway")
    rows: list[BenchmarkRow] = []
    unreadable: list[SkippedRow] = []
    held_out: list[str] = []
    seen: dict[str, str] = {}
    for text in args.inputs:
        try:
            prefix, benchmark = _load_input(text, args)
        except BenchmarkError as exc:
            raise UsageError(str(exc)) from None
        if prefix in seen:
            raise UsageError(f"INPUT {text!r} and {seen[prefix]!r} both give row ids {prefix}/...: pass each data set once")
        seen[prefix] = text
        loaded = [_reid(row, prefix) for row in benchmark.rows]
        if not args.allow_eval_data and _paper_benchmark(text):
            loaded, line = _without_held_out(text, prefix, loaded, args)
            if line is not None:
                held_out.append(line)
        rows.extend(loaded)
        unreadable.extend(SkippedRow(f"{prefix}/{skip.index}", "", "bad_row", skip.reason) for skip in benchmark.skipped)
        if not quiet:
            for warning in benchmark.warnings:
                console.print(f"gtalign data sft: note: {text}: {warning}", markup=False, soft_wrap=True, highlight=False)
    return _sample(rows, args.limit, args.seed), unreadable, held_out


def _record(target: SftTarget, prompt_mode: str) -> dict[str, Any]:
    """The target's output row, with ``prompt_mode`` (the prompt it was built for) after ``target_source``."""
    record: dict[str, Any] = {}
    for key, value in target.record().items():
        record[key] = value
        if key == "target_source":
            record["prompt_mode"] = prompt_mode
    record.setdefault("prompt_mode", prompt_mode)
    return record


def _backend(args: argparse.Namespace) -> Any:
    from gtalign.cli._main import UsageError
    from gtalign.eval import EvalSetupError
    from gtalign.eval._setup import build_eval_backend

    if args.distill_backend is None:
        if args.model is not None:
            raise UsageError("--model only applies with --distill-backend")
        return None
    try:
        return build_eval_backend(args.distill_backend, args.model, args.concurrency)
    except EvalSetupError as exc:
        raise UsageError(str(exc)) from None


def _distill(
    rows: Sequence[BenchmarkRow], backend: Any, args: argparse.Namespace, cache_path: Path, console: Console, seed: int
) -> tuple[list[SftTarget | SkippedRow], Any]:
    """Each row's target from its distilled answer (in row order), and the cache."""
    import asyncio

    from gtalign.backends import SamplingParams
    from gtalign.cli._progress import ConsoleProgress
    from gtalign.eval._setup import choose_concurrency
    from gtalign.training._distill import DistillCache, distill, distilled_target

    cache = DistillCache(cache_path)
    concurrency = choose_concurrency(args.concurrency, backend)
    progress = ConsoleProgress(console, command="gtalign data sft", unit="answers", task="distilling",
                               enabled=not args.quiet, total=len(rows))
    if len(cache):
        progress.note(f"gtalign data sft: {len(cache)} distilled answers kept from an earlier run in {cache_path}")
    progress.note(f"gtalign data sft: asking {getattr(backend, 'name', '?')}:{getattr(backend, 'model', '')} for "
                  f"{len(rows)} plain answers, {concurrency}")
    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, seed=seed)

    async def go() -> list[Any]:
        try:
            return await distill(rows, backend, params=params, concurrency=concurrency.rows, cache=cache,
                                 on_result=lambda _: progress.count(1))
        finally:  # in the loop its connections belong to
            await backend.aclose()

    with progress:
        try:
            answers = asyncio.run(go())
        finally:
            cache.close()
    return [distilled_target(row, answer, seed=seed) for row, answer in zip(rows, answers)], cache


def _close_unused(backend: Any) -> None:
    """Close a backend no row needed (one that answered was closed in its own event loop)."""
    if backend is not None:
        import asyncio

        asyncio.run(backend.aclose())


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    """Write ``records`` to ``path`` whole: a temporary file beside it, synced, then renamed."""
    import os

    from gtalign.cli._main import CommandFailed
    from gtalign.data import JsonlWriter, plain

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                table = pa.Table.from_pylist([plain(record) for record in records])
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise CommandFailed(f"cannot write {path} as parquet: {exc} (the rows' extra_info differ in type; "
                                    "write .jsonl instead)") from None
            pq.write_table(table, temporary)
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
        else:
            with JsonlWriter(temporary, append=False) as writer:
                writer.write_many(records)
                writer.sync()
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _summary(rows: Sequence[BenchmarkRow], results: Sequence[SftTarget | SkippedRow],
             unreadable: Sequence[SkippedRow]) -> list[str]:
    from collections import Counter

    from gtalign.training._targets import SKIP_REASONS, SkippedRow

    sources = list(dict.fromkeys([row.data_source for row in rows] + ([""] if unreadable else [])))
    counts: dict[str, Counter[str]] = {source: Counter() for source in sources}
    reasons: dict[tuple[str, str], list[SkippedRow]] = {}
    for row, result in zip(rows, results):
        if isinstance(result, SkippedRow):
            counts[row.data_source]["skipped"] += 1
            reasons.setdefault((row.data_source, result.reason), []).append(result)
        else:
            counts[row.data_source][result.target_source] += 1
        counts[row.data_source]["rows"] += 1
    for skip in unreadable:
        counts[""]["rows"] += 1
        counts[""]["skipped"] += 1
        reasons.setdefault(("", skip.reason), []).append(skip)
    width = max([len("data source"), *(len(s or "(not loaded)") for s in sources)])
    lines = [f"  {'data source'.ljust(width)}  {'rows':>6}  {'targets':>7}  {'reference':>9}  {'distilled':>9}  {'skipped':>7}"]
    for source in sources:
        c = counts[source]
        lines.append(f"  {(source or '(not loaded)').ljust(width)}  {c['rows']:>6}  {c['reference'] + c['distilled']:>7}  "
                     f"{c['reference']:>9}  {c['distilled']:>9}  {c['skipped']:>7}")
    if reasons:
        lines.append("skipped rows, by data source and reason:")
        for (source, reason), skips in sorted(reasons.items(), key=lambda item: (sources.index(item[0][0]), item[0][1])):
            first = skips[0]
            detail = first.detail if first.detail and first.detail != SKIP_REASONS.get(reason) else ""
            lines.append(f"  {source or '(not loaded)'}  {reason}  {len(skips)}: {SKIP_REASONS.get(reason, '')}"
                         + (f" (first: {first.row_id}: {detail[:300]})" if detail else f" (first: {first.row_id})"))
    return lines


def _run_sft(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gtalign.cli._main import EXIT_FAILED, EXIT_OK, UsageError
    from gtalign.cli._progress import ConsoleProgress
    from gtalign.data import OutputLocked, output_lock
    from gtalign.training._targets import SkippedRow, build_target

    out = Path(args.out).expanduser()
    if out.suffix.lower() not in _OUT_SUFFIXES:
        raise UsageError(f"--out must end in {', '.join(_OUT_SUFFIXES)}, got {args.out}")
    if out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give a file name ending in .jsonl or .parquet")
    console = Console(file=sys.stderr, highlight=False)
    seed = 0 if args.seed is None else args.seed
    backend = _backend(args)
    existed = out.exists()
    try:
        with output_lock(out):
            rows, unreadable, held_out = _load_rows(args, console, args.quiet)
            progress = ConsoleProgress(console, command="gtalign data sft", unit="rows", task="building",
                                       enabled=not args.quiet, total=len(rows))
            results: list[SftTarget | SkippedRow] = []
            with progress:
                for row in rows:
                    results.append(build_target(row, seed=seed))
                    progress.count(1)
            waiting = [i for i, result in enumerate(results) if isinstance(result, SkippedRow)
                       and result.reason == "needs_distillation"]
            cache = None
            if waiting and backend is not None:
                used, backend = backend, None
                distilled, cache = _distill([rows[i] for i in waiting], used, args,
                                            out.with_name(out.name + ".distill-cache.jsonl"), console, seed)
                for index, result in zip(waiting, distilled):
                    results[index] = result
            targets = [result for result in results if not isinstance(result, SkippedRow)]
            skipped = list(unreadable) + [result for result in results if isinstance(result, SkippedRow)]
            failed = [s for s in skipped if s.reason in ("distill_failed", "internal_error")]
            if targets:
                _write(out, [_record(target, args.prompt) for target in targets])
            if args.skipped:
                _write(Path(args.skipped).expanduser(), [skip.record() for skip in skipped])
            if cache is not None:
                cache.close()
    except OutputLocked as exc:
        raise UsageError(str(exc)) from None
    finally:
        _close_unused(backend)
    lines = _summary(rows, results, unreadable)
    head = (f"gtalign data sft: {len(targets)} targets written to {out}" if targets
            else f"gtalign data sft: no target built, {out} not written"
            + (" (the file there is an earlier run's, left as it was)" if existed else ""))
    reference = sum(1 for t in targets if t.target_source == "reference")
    head += f" ({reference} reference, {len(targets) - reference} distilled); {len(skipped)} rows skipped"
    if waiting and args.distill_backend is None:
        head += f" ({len(waiting)} need --distill-backend)"
    head += f"; prompt mode {args.prompt}"
    if held_out:
        lines += ["held-out questions:", *(f"  {line}" for line in held_out)]
    for line in [head, *lines]:
        console.print(line, markup=False, soft_wrap=True, highlight=False)
    if failed:
        console.print(f"gtalign data sft: {len(failed)} rows failed ({', '.join(sorted({s.reason for s in failed}))}); "
                      "run the same command again to retry the distillation calls", markup=False, soft_wrap=True)
    return EXIT_FAILED if failed or not targets else EXIT_OK
