"""``gtalign inspect``: one completion, laid out for a person (rich) or a program (``--json``).

The facts are gathered once into an `Inspection`; the two renderers only present it, so the
table a person reads and the JSON a script reads never disagree.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gtalign._registry import REGISTRY, RegistryError
from gtalign.cli._main import EXIT_OK, UsageError
from gtalign.data import JSONL_SUFFIXES, Row, RowError, read_jsonl, row_to_sample
from gtalign.game import Decision, PayoffError, PayoffMatrix, WelfareRule, decide, pareto_frontier
from gtalign.protocol._paper import PaperParse, paper_parse
from gtalign.protocol._parser import parse_answer
from gtalign.protocol._types import BLOCK_NAMES, ParsedAnswer
from gtalign.reward import RewardResult, RewardScorer, get_preset

__all__ = ["InspectOptions", "Inspection", "inspect_text", "inspection_to_json", "load_completion", "render", "run_inspect"]


@dataclass(frozen=True, slots=True)
class InspectOptions:
    """What ``gtalign inspect`` is asked to show; each command-line option is one field.

    file: a completion text file, a JSONL file of rows, or ``-`` for stdin.
    row: 1-based row of a JSONL input (None: the first).
    rule: the welfare rule for the table and the rule's choice (registry name or ``module:attr``).
    max_chars: characters shown per block by the rich view (0: all); JSON is never cut.
    """

    file: str = "-"
    row: int | None = None
    rule: str = "sum"
    preset: str = "paper"
    json: bool = False
    max_chars: int = 600


@dataclass(frozen=True, slots=True)
class Loaded:
    """A completion and where it came from; ``row`` is set when it came from a JSONL row."""

    text: str
    origin: str
    row: Row | None = None


@dataclass(frozen=True, slots=True)
class Inspection:
    """Everything ``inspect`` shows about one completion.

    ``matrix_from`` says which parse produced ``matrix``: ``strict`` (the structural parser),
    ``paper`` (only the research code's lenient parse succeeded) or None (no usable matrix).
    ``decision`` is the rule's choice over all cells (the prompt's rule); ``row_decision`` the
    choice within the question type the model named, when it named one.
    """

    origin: str
    parsed: ParsedAnswer
    paper: PaperParse
    rule: WelfareRule
    matrix: PayoffMatrix | None
    matrix_from: str | None
    decision: Decision | None
    row_decision: Decision | None
    frontier: tuple[str, ...]
    reward: RewardResult | None
    reward_note: str

    @property
    def agrees(self) -> bool | None:
        """Whether the model's chosen key is the rule's choice (None when either is missing)."""
        if self.decision is None or self.parsed.chosen_key is None:
            return None
        return self.parsed.chosen_key == self.decision.key


def _rule(name: str) -> WelfareRule:
    try:
        rule = REGISTRY.create("welfare", name)
    except RegistryError as exc:
        raise UsageError(f"--rule: {exc}") from None
    if not isinstance(rule, WelfareRule):
        raise UsageError(f"--rule {name!r} is a {type(rule).__name__}, not a WelfareRule")
    return rule


def _lenient_matrix(paper: PaperParse) -> PayoffMatrix | None:
    if paper.payoff is None:
        return None
    try:
        return PayoffMatrix.from_dict(paper.payoff)
    except PayoffError:
        return None


def _reward(row: Row | None, preset_name: str) -> tuple[RewardResult | None, str]:
    if row is None:
        return None, "raw text: no data_source, ground truth or judge_verdict to score it with"
    try:
        sample = row_to_sample(row)
    except RowError as exc:
        return None, f"not scored: {exc}"
    if sample.verdict is None:
        return None, "not scored: the row has no judge_verdict (gtalign score --judge ... judges it)"
    try:
        preset = get_preset(preset_name)
    except RegistryError as exc:
        raise UsageError(f"--preset: {exc}") from None
    return RewardScorer(preset).score([sample])[0], ""


def inspect_text(text: str, *, rule: str | WelfareRule = "sum", origin: str = "", row: Row | None = None, preset: str = "paper") -> Inspection:
    """Gather what ``gtalign inspect`` shows about ``text``."""
    welfare = rule if isinstance(rule, WelfareRule) else _rule(rule)
    parsed = parse_answer(text)
    paper = paper_parse(text)
    matrix, source = parsed.payoff, "strict" if parsed.payoff is not None else None
    if matrix is None:
        matrix = _lenient_matrix(paper)
        source = "paper" if matrix is not None else None
    decision = row_decision = None
    frontier: tuple[str, ...] = ()
    if matrix is not None:
        decision = decide(matrix, welfare)
        frontier = pareto_frontier(matrix)
        question_type = parsed.question_type
        if question_type in matrix.space.question_types:
            row_decision = decide(matrix, welfare, question_type)
    reward, note = _reward(row, preset)
    return Inspection(origin, parsed, paper, welfare, matrix, source, decision, row_decision, frontier, reward, note)


def _looks_like_row(text: str) -> bool:
    first = text.lstrip().partition("\n")[0]
    if not first.startswith("{"):
        return False
    try:
        value = json.loads(first)
    except ValueError:
        return False
    except RecursionError:  # read as a row, whose error then says it is nested too deep
        return '"completion"' in first or '"solution_str"' in first
    return isinstance(value, dict) and ("completion" in value or "solution_str" in value)


def _pick_row(rows: Iterable[Row], wanted: int, origin: str) -> Row:
    last = 0
    for row in rows:
        last = row.number
        if row.number == wanted:
            return row
    raise UsageError(f"--row {wanted}: {origin} has only {last} rows")


def load_completion(file: str, row: int | None = None) -> Loaded:
    """The completion to inspect: raw text, or the ``completion``/``solution_str`` of a JSONL row."""
    is_stdin = file == "-"
    if not is_stdin and not Path(file).is_file():
        raise UsageError(f"no such file: {file}")
    origin = "stdin" if is_stdin else file
    as_rows = row is not None or (not is_stdin and Path(file).suffix.lower() in JSONL_SUFFIXES)
    if is_stdin:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("nothing on stdin: give FILE, or pipe a completion or JSONL rows in")
        text = sys.stdin.read()
        as_rows = as_rows or _looks_like_row(text)
        if not as_rows:
            return Loaded(text, origin)
        found = _pick_row(read_jsonl(io.BytesIO(text.encode("utf-8", "surrogatepass"))), row or 1, origin)
    else:
        if not as_rows:
            with open(file, encoding="utf-8", errors="surrogateescape") as handle:
                head = handle.read(1 << 16)
            if not _looks_like_row(head):
                return Loaded(Path(file).read_text(encoding="utf-8", errors="replace"), origin)
        found = _pick_row(read_jsonl(file), row or 1, origin)
    where = f"{origin} {found.where}"
    if not found.ok or found.fields is None:
        raise UsageError(found.error)
    fields = found.fields
    for key in ("completion", "solution_str"):
        value = fields.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise UsageError(f"{where}: key {key!r} must be a string, got {type(value).__name__}")
            return Loaded(value, where, found)
    raise UsageError(f"{where}: missing key 'completion' or 'solution_str'")


def _line_col(text: str, position: int) -> tuple[int, int]:
    line = text.count("\n", 0, position) + 1
    return line, position - (text.rfind("\n", 0, position) + 1) + 1


def inspection_to_json(item: Inspection) -> dict[str, Any]:
    """The inspection as one JSON-ready object (blocks in full)."""
    parsed, text = item.parsed, item.parsed.text
    blocks: dict[str, Any] = {}
    for name in BLOCK_NAMES:
        block = parsed.blocks.get(name)
        blocks[name] = None if block is None else {"content": block.content, "start": block.start, "end": block.end}
    problems = []
    for problem in parsed.problems:
        line, column = _line_col(text, problem.position) if problem.position is not None else (None, None)
        problems.append({
            "code": problem.code,
            "position": problem.position,
            "line": line,
            "column": column,
            "block": problem.block,
            "key": problem.key,
            "message": problem.message,
        })
    welfare = None
    if item.decision is not None and item.matrix is not None:
        values = dict(zip(item.matrix.keys, item.rule.values(item.matrix)))
        welfare = {"rule": item.rule.name, "values": values}
    paper = item.paper
    return {
        "origin": item.origin,
        "chars": len(text),
        "ok": parsed.ok,
        "well_formed": parsed.well_formed,
        "blocks": blocks,
        "payoff": None if item.matrix is None else item.matrix.to_dict(),
        "payoff_from": item.matrix_from,
        "welfare": welfare,
        "frontier": list(item.frontier),
        "question_type": parsed.question_type,
        "chosen_key": parsed.chosen_key,
        "rule_choice": None if item.decision is None else item.decision.key,
        "rule_choice_in_row": None if item.row_decision is None else item.row_decision.key,
        "agrees": item.agrees,
        "problems": problems,
        "paper": {
            "format_valid": paper.format == 1.0,
            "format_matches": paper.format_matches,
            "payoff_parses": paper.payoff is not None,
            "payoff_error": paper.payoff_error or None,
            "response_found": paper.response is not None,
            "scorable": paper.scorable,
            "reasoning_chars": len(paper.reasoning),
        },
        "reward": None if item.reward is None else item.reward.to_log(),
        "reward_note": item.reward_note or None,
    }


def _clip(text: str, limit: int) -> str:
    """Keep the head and the tail of a long text (cut at spaces when one is near), saying how
    much was left out; unprintable lone surrogates become U+FFFD."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    if limit <= 0 or len(text) <= limit:
        return text
    head_end = limit * 2 // 3
    tail_start = len(text) - (limit - head_end)
    space = text.rfind(" ", max(0, head_end - 40), head_end)
    head_end = space if space > 0 else head_end
    space = text.find(" ", tail_start, tail_start + 40)
    tail_start = space + 1 if space >= 0 else tail_start
    omitted = tail_start - head_end
    return f"{text[:head_end]} … [{omitted} characters not shown; --max-chars 0 shows all] … {text[tail_start:]}"


def _fmt(value: float) -> str:
    """Payoffs as the model wrote them (one decimal); other numbers to four significant digits."""
    return f"{value:.1f}" if value == round(value, 1) else f"{value:.4g}"


def render(item: Inspection, console: Any, max_chars: int = 600) -> None:
    """Print the inspection with rich."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    parsed = item.parsed
    status = "[green]ok[/]" if parsed.ok else ("[yellow]well-formed, with problems[/]" if parsed.well_formed else "[red]malformed[/]")
    console.print(f"[bold]{item.origin or 'completion'}[/]: {len(parsed.text)} characters, {status}")

    for name in BLOCK_NAMES:
        block = parsed.blocks.get(name)
        if block is None:
            console.print(Panel(Text("(missing)", style="red"), title=f"<{name}>", title_align="left", border_style="red"))
        elif name != "payoff" or item.matrix is None:
            console.print(Panel(Text(_clip(block.content, max_chars)), title=f"<{name}>  chars {block.start}-{block.end}", title_align="left"))

    if item.matrix is not None and item.decision is not None:
        values = dict(zip(item.matrix.keys, item.rule.values(item.matrix)))
        space = item.matrix.space
        source = "" if item.matrix_from == "strict" else "  (read with the paper's lenient parse only)"
        table = Table(title=f"payoff: user / LLM, welfare under {item.rule.name}{source}", show_lines=True)
        table.add_column("")
        for action in space.actions:
            table.add_column(action, justify="center")
        for question_type in space.question_types:
            cells = []
            for action in space.actions:
                key = f"{question_type}_{action}"
                cell = item.matrix[key]
                marks = " ".join(
                    mark for mark, on in (
                        ("★", key in item.frontier),
                        ("model", key == parsed.chosen_key),
                        ("rule", key == item.decision.key),
                    ) if on
                )
                style = "bold green" if key == item.decision.key else ("bold" if key in item.frontier else "")
                cells.append(Text(f"{_fmt(cell.user)} / {_fmt(cell.llm)}\nW {_fmt(values[key])}\n{marks}".rstrip(), style=style))
            table.add_row(question_type, *cells)
        console.print(table)
        console.print(f"Pareto frontier (★): {', '.join(item.frontier)}", markup=False)

    chosen = parsed.chosen_key or "(none found)"
    if item.decision is None:
        console.print(f"model's choice: {chosen}; no usable payoff matrix, so no rule choice", markup=False)
    else:
        line = f"model's choice: {chosen}   {item.rule.name} rule's choice: {item.decision.key}"
        others = [key for key in item.decision.tied if key != item.decision.key]
        if others:
            line += f" (tied on welfare with {', '.join(others)}; tie-break: user, then LLM)"
        if item.agrees is False:
            console.print(Text(line + "   DISAGREE", style="bold red"))
        else:
            console.print(Text(line + ("   agree" if item.agrees else ""), style="green" if item.agrees else ""))
        if item.row_decision is not None and item.row_decision.key != item.decision.key:
            console.print(f"within the model's {parsed.question_type} row the rule would choose {item.row_decision.key}", markup=False)

    if parsed.problems:
        problems = Table(title=f"problems: {len(parsed.problems)}", title_justify="left")
        for column in ("code", "at", "block", "message"):
            problems.add_column(column)
        for problem in parsed.problems:
            where = ""
            if problem.position is not None:
                line_no, column = _line_col(parsed.text, problem.position)
                where = f"{problem.position} ({line_no}:{column})"
            problems.add_row(problem.code, where, problem.block or "", Text(problem.message))
        console.print(problems)
    else:
        console.print("no problems found", style="green")

    paper = item.paper
    yes = {True: "yes", False: "no"}
    verdict = (
        f"paper parse: format valid {yes[paper.format == 1.0]} (pattern matches {yes[paper.format_matches]}), "
        f"payoff parses {yes[paper.payoff is not None]}, response found {yes[paper.response is not None]}, "
        f"reasoning counted {len(paper.reasoning)} chars"
    )
    console.print(verdict, markup=False)
    if paper.payoff_error:
        console.print(f"  payoff: {paper.payoff_error}", markup=False)
    if not paper.scorable:
        console.print("  the paper preset scores this completion 0 (every component is 0)", markup=False)
    if item.reward is not None:
        log = item.reward.to_log()
        shown = ", ".join(
            f"{key} {_fmt(log[key])}" for key in ("score", "user_reward", "llm_reward", "answer_reward", "format_reward") if isinstance(log.get(key), (int, float))
        )
        console.print(f"reward ({item.reward.preset}): {item.reward.status}; {shown}" + (f"; {item.reward.reason}" if item.reward.reason else ""), markup=False)
    elif item.reward_note:
        console.print(item.reward_note, markup=False)


def run_inspect(options: InspectOptions) -> int:
    """``gtalign inspect``: load, inspect, print; returns the exit code."""
    loaded = load_completion(options.file, options.row)
    item = inspect_text(loaded.text, rule=options.rule, origin=loaded.origin, row=loaded.row, preset=options.preset)
    if options.json:
        data = inspection_to_json(item)
        try:
            sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        except UnicodeEncodeError:  # lone surrogates, or a stdout that is not UTF-8
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return EXIT_OK
    from rich.console import Console

    render(item, Console(file=sys.stdout, highlight=False), options.max_chars)
    return EXIT_OK
