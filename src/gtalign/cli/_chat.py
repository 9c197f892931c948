"""``gtalign chat``: one steered answer, shown as a person wants to see it (or as the JSON record).

Only argparse and the --on-ignored vocabulary (`gtalign.steering._modes`) are imported at
module level; the steering engine, the backend (torch for the embedded model) and rich are
imported when the command runs, so ``gtalign --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gtalign.cli._args import integer, key_value, non_negative_float, positive_int, yaml_params
from gtalign.steering import _modes

if TYPE_CHECKING:
    from rich.console import Console

    from gtalign.backends._base import ChatBackend
    from gtalign.steering import SteeringResult

__all__ = ["ChatOptions", "build_backend", "configure", "load_conversation", "options_from_args", "render", "run"]

_DESCRIPTION = """\
Answer one question with inference-time steering (SPEC section 4) and show how the answer was
decided: the model writes its analysis and payoff matrix, the pricing policy transforms the
matrix, the welfare rule picks the action (within the question type the model gave), and the
model continues its own turn from an <analyze> that names the chosen key, writing the response.

Shown: the payoff table before and after pricing with each cell's welfare, the Pareto frontiers,
the chosen action and why (and whether pricing changed it), any fallback taken, the response,
and tokens and time per stage. --json prints the game record instead.

Backends: the embedded model (default; SmolLM2-135M-Instruct on the CPU, offline; needs the
`embedded` extra) or any OpenAI-compatible server by URL (vLLM, SGLang, llama.cpp, Ollama).
Each stage is decoded under the protocol's grammar wherever the backend can enforce one
(--constrain auto, the default: the embedded model, llama.cpp, vLLM, SGLang), so even a model never
trained for the protocol writes a payoff matrix that parses. Without the grammar (--constrain off,
or a server that cannot enforce it: Ollama, plain OpenAI) a small model often breaks the format:
the record then shows the declared fallbacks (a retry with another seed, then the default key
DQ_AQ in the model's row).

Pricing policies: none, research-llm-shift, research-user-shift (the research code's shifts by s,
set with --pricing-param s=2), api-pay-per-token, subscription, team-plan-split (economic models:
token prices, expected tokens per action, who pays), or a YAML/JSON policy file.

Examples:
  gtalign chat "What is the capital of Australia?"
  gtalign chat "Write a poem" --pricing api-pay-per-token --rule cobb_douglas
  gtalign chat --conversation talk.json --backend http://127.0.0.1:8080/v1 --model qwen --json

Exit codes: 0 an answer was produced (possibly through a fallback); 1 steering failed (the
record says why); 2 usage error.
"""


def configure(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``chat`` subcommand to ``commands`` and return its parser."""
    parser = commands.add_parser(
        "chat",
        help="answer a question with pricing-policy steering and show the game behind it",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("question", nargs="?", metavar="QUESTION",
                        help="the user's question (appended as the last user message with --conversation)")
    parser.add_argument(
        "--conversation", metavar="FILE",
        help="earlier turns: a JSON list of {role, content} (or {\"messages\": [...]}) or JSONL, one message a line; "
        "it must end with a user message unless QUESTION is given",
    )
    parser.add_argument(
        "--as-is", action="store_true",
        help="send the conversation unchanged: it already carries the four-block instruction (e.g. a paper data "
        "row's prompt); by default the instruction is added to the last user message",
    )
    steering = parser.add_argument_group("steering")
    steering.add_argument("--pricing", default="none", metavar="NAME|FILE",
                          help="pricing policy: a registered name or a YAML/JSON policy file (default: none)")
    steering.add_argument("--pricing-param", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                          help="override a policy key, e.g. s=2 or billing=subscription (repeatable; VALUE is read as YAML)")
    steering.add_argument("--rule", default="sum", metavar="RULE",
                          help="welfare rule for the decision (sum, product, cobb_douglas, nash, egalitarian, linear or "
                          "module:attr) (default: sum, the prompt's LLM + user rule)")
    steering.add_argument("--on-ignored", default=_modes.DEFAULT_ON_IGNORED, choices=_modes.IGNORED_PROTOCOL, metavar="MODE",
                          help="when the model ignores the four-block protocol (%(choices)s): retry once then take the "
                          "default action, take the default action at once, or keep its own answer unsteered "
                          "(default: %(default)s)")
    steering.add_argument("--constrain", default="auto", choices=_modes.CONSTRAIN_MODES, metavar="MODE",
                          help="protocol-constrained decoding (%(choices)s): off; auto, each stage decoded under the "
                          "protocol's grammar wherever the backend can enforce one (the record says where it could "
                          "not); on, a stage the backend cannot constrain fails (default: %(default)s)")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--backend", default="embedded", metavar="embedded|URL",
        help="'embedded' (SmolLM2-135M-Instruct on the CPU, offline), 'embedded:base' (that model, never an adapter), "
        "'embedded:PATH' (a local Hugging Face model folder or a LoRA adapter folder), or the http(s):// base URL "
        "of an OpenAI-compatible server (default: embedded)",
    )
    model.add_argument("--model", metavar="NAME",
                       help="model name at the --backend URL; with the embedded backend, a local model folder")
    model.add_argument("--server-kind", default="auto", metavar="KIND",
                       help="server at the URL (vllm, sglang, llama.cpp, ollama, ... or auto): decides how the "
                       "partial assistant turn is continued (default: auto)")
    decoding = parser.add_argument_group("decoding")
    decoding.add_argument("--max-tokens", type=positive_int, default=512, metavar="N",
                          help="token budget of the whole answer, both stages together (default: 512)")
    decoding.add_argument("--temperature", type=non_negative_float, default=0.0, metavar="T",
                          help="sampling temperature; 0 is greedy (default: 0)")
    decoding.add_argument("--seed", type=integer, metavar="S", help="sampling seed (a retry uses S+1)")
    parser.add_argument("--json", action="store_true", help="print the game record as one JSON object")
    return parser


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """What ``gtalign chat`` is asked to do; each command-line option is one field."""

    question: str | None = None
    conversation: str | None = None
    as_is: bool = False
    pricing: str = "none"
    pricing_params: Mapping[str, Any] = field(default_factory=dict)
    rule: str = "sum"
    on_ignored: str = _modes.DEFAULT_ON_IGNORED
    constrain: str = "auto"
    backend: str = "embedded"
    model: str | None = None
    server_kind: str = "auto"
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int | None = None
    json: bool = False


def options_from_args(args: argparse.Namespace) -> ChatOptions:
    params = yaml_params(args.pricing_param)
    return ChatOptions(
        question=args.question, conversation=args.conversation, as_is=args.as_is, pricing=args.pricing,
        pricing_params=params, rule=args.rule, on_ignored=args.on_ignored, constrain=args.constrain, backend=args.backend, model=args.model, server_kind=args.server_kind,
        max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed, json=args.json,
    )


def load_conversation(path: str) -> list[dict[str, Any]]:
    """Messages from a JSON file (a list, or an object with ``messages``) or a JSONL file."""
    from gtalign.cli._main import UsageError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--conversation {path}: {exc.strerror or exc}") from None
    try:
        if path.lower().endswith((".jsonl", ".ndjson")):
            data: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--conversation {path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if isinstance(data, Mapping):
        data = data.get("messages")
    if not isinstance(data, list):
        raise UsageError(f"--conversation {path}: expected a list of {{role, content}} messages or {{\"messages\": [...]}}")
    return data


def _messages(options: ChatOptions, rule: Any) -> list[dict[str, str]]:
    from gtalign.cli._main import UsageError
    from gtalign.protocol import DEFAULT_SYSTEM, build_messages

    conversation: list[Any] = load_conversation(options.conversation) if options.conversation else []
    if options.question is not None:
        conversation.append({"role": "user", "content": options.question})
    if not conversation:
        raise UsageError("give a QUESTION or --conversation FILE")
    where = f"--conversation {options.conversation}: " if options.conversation else ""
    try:
        if options.as_is:
            return _checked(conversation)
        has_system = isinstance(conversation[0], Mapping) and conversation[0].get("role") == "system"
        return build_messages(conversation, system=None if has_system else DEFAULT_SYSTEM, rule=rule)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{where}{exc}") from None


def _checked(conversation: Sequence[Any]) -> list[dict[str, str]]:
    for i, message in enumerate(conversation):
        if not isinstance(message, Mapping) or not isinstance(message.get("content"), str) or message.get("role") not in (
            "system", "user", "assistant"
        ):
            raise ValueError(f"message {i}: expected {{role: system|user|assistant, content: str}}")
    if conversation[-1]["role"] != "user":
        raise ValueError(f"message {len(conversation) - 1}: the conversation must end with a user message")
    return [{"role": m["role"], "content": m["content"]} for m in conversation]


def build_backend(spec: str, model: str | None = None, server_kind: str = "auto") -> ChatBackend:
    """The backend ``--backend`` names: ``embedded``, ``embedded:base``, ``embedded:PATH`` or an http(s) URL."""
    from gtalign.cli._main import UsageError

    if spec == "embedded" or spec.startswith("embedded:"):
        from gtalign.backends._model_store import embedded_model

        path = embedded_model(spec.partition(":")[2] or model)
        try:
            from gtalign.backends._embedded import EmbeddedBackend
        except ImportError as exc:
            raise UsageError(
                f"the embedded backend is not available ({exc}); install it with: pip install 'gtalign[embedded]', "
                "or give --backend URL of an OpenAI-compatible server"
            ) from None
        return EmbeddedBackend(path)
    if spec.startswith(("http://", "https://")):
        try:
            from gtalign.backends._http import HTTPBackend
        except ImportError as exc:
            raise UsageError(f"the HTTP backend is not available: {exc}") from None
        try:
            return HTTPBackend(spec, model, kind=server_kind)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"--backend {spec}: {exc}") from None
    raise UsageError(f"--backend must be 'embedded', 'embedded:PATH' or an http(s):// URL, got {spec!r}")


async def _steer(backend: ChatBackend, options: ChatOptions, messages: list[dict[str, str]], policy: Any,
                 on_text: Callable[[str], None] | None = None) -> SteeringResult:
    """The steered answer; ``on_text`` sees the response written so far, as it streams."""
    from gtalign.backends._base import SamplingParams
    from gtalign.steering import Fallback, SteeringEngine

    params = SamplingParams(max_tokens=options.max_tokens, temperature=options.temperature, seed=options.seed)
    try:
        engine = SteeringEngine(backend, policy, rule=options.rule, params=params,
                                fallback=Fallback.when_ignored(options.on_ignored),  # type: ignore[arg-type]
                                constrain=options.constrain)  # type: ignore[arg-type]
        if on_text is None:
            return await engine.run(messages)
        written = ""
        async with engine.stream(messages) as stream:
            async for delta in stream:
                written += delta
                on_text(written)
            return stream.result
    finally:
        await backend.aclose()


def run(args: argparse.Namespace) -> int:
    """Run ``gtalign chat`` for parsed ``args``; returns the exit code."""
    return run_chat(options_from_args(args))


def run_chat(options: ChatOptions) -> int:
    import asyncio

    from gtalign._registry import RegistryError
    from gtalign.cli._main import EXIT_FAILED, EXIT_OK, UsageError
    from gtalign.game import PayoffError, welfare_rule
    from gtalign.steering import PolicyError, load_policy

    try:
        rule = welfare_rule(options.rule)
    except (RegistryError, PayoffError) as exc:
        raise UsageError(f"--rule: {exc}") from None
    try:
        policy = load_policy(options.pricing, **options.pricing_params)
    except PolicyError as exc:
        raise UsageError(f"--pricing: {exc}") from None
    messages = _messages(options, rule)
    backend = build_backend(options.backend, options.model, options.server_kind)
    console, errors = _consoles()
    if errors.is_terminal and not options.json:
        with errors.status(f"steering on {getattr(backend, 'model', '') or options.backend} ...") as status:
            def show(written: str) -> None:
                from rich.markup import escape

                tail = escape(" ".join(written.split())[-60:])
                status.update(f"writing the response ({len(written)} characters): ...{tail}")

            result = asyncio.run(_steer(backend, options, messages, policy, show))
    else:
        result = asyncio.run(_steer(backend, options, messages, policy))
    if options.json:
        sys.stdout.write(json.dumps(result.to_record(), indent=2, ensure_ascii=False) + "\n")
    else:
        render(result, console, question=_question(messages))
    return EXIT_FAILED if result.status == "failed" else EXIT_OK


def _consoles() -> tuple[Console, Console]:
    from rich.console import Console

    return Console(highlight=False), Console(stderr=True, highlight=False)


def _question(messages: Sequence[Mapping[str, str]]) -> str:
    content = messages[-1]["content"] if messages else ""
    marker = content.rfind("Question:")
    return content[marker + len("Question:"):].strip() if marker >= 0 else content.strip()


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"


def _grammar_cell(constraint: Mapping[str, Any] | None) -> str:
    """How a stage was constrained: the engine that enforced the grammar, "free" (with why, when
    a grammar was asked for and could not be enforced), or "-" when none was asked for."""
    if constraint is None:
        return "-"
    if constraint.get("enforced"):
        return str(constraint.get("how"))
    return f"free: {constraint.get('reason')}" if constraint.get("reason") else "free"


def render(result: SteeringResult, console: Console, *, question: str = "") -> None:
    """The steered answer for a person: table, frontiers, decision and why, fallbacks, response, stages."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    from gtalign.protocol import ACTION_DESCRIPTIONS

    policy = result.policy
    header = Text()
    if question:
        header.append("Question: ", style="bold").append(question + "\n")
    header.append("Pricing: ", style="bold").append(policy.name).append(f" — {policy.description}\n" if policy.description else "\n")
    header.append("Rule: ", style="bold").append(result.rule.name)
    header.append("   Backend: ", style="bold").append(f"{result.backend} / {result.model}")
    console.print(header)
    thinking = result.blocks.get("thinking")
    if thinking:
        shown = thinking if len(thinking) <= 600 else thinking[:600] + " …"
        console.print(Panel(Text(shown, style="dim"), title="model's thinking", title_align="left"))

    if result.raw is not None and result.transformed is not None:
        raw_welfare = dict(zip(result.raw.keys, result.rule.values(result.raw)))
        new_welfare = dict(zip(result.transformed.keys, result.rule.values(result.transformed)))
        from gtalign.game import pareto_frontier

        frontier_raw = set(pareto_frontier(result.raw))
        frontier = set(pareto_frontier(result.transformed))
        table = Table(title="Payoffs (user / LLM) and welfare, before and after pricing", title_justify="left")
        for column in ("cell", "user", "LLM", "welfare", "user'", "LLM'", "welfare'", "note"):
            table.add_column(column, justify="left" if column in ("cell", "note") else "right")
        for key in result.raw.keys:
            before, after = result.raw[key], result.transformed[key]
            marks = []
            if key == result.chosen_key:
                marks.append("chosen")
            if result.unsteered is not None and key == result.unsteered.key and key != result.chosen_key:
                marks.append("chosen without pricing")
            if key in frontier:
                marks.append("frontier")
            in_row = result.question_type is None or key.startswith(result.question_type + "_")
            style = "bold green" if key == result.chosen_key else ("" if in_row else "dim")
            table.add_row(
                key, _fmt(before.user), _fmt(before.llm), _fmt(raw_welfare[key]),
                _fmt(after.user), _fmt(after.llm), _fmt(new_welfare[key]), ", ".join(marks), style=style,
            )
        console.print(table)
        console.print(Text.assemble(("Pareto frontier: ", "bold"), ", ".join(k for k in result.raw.keys if k in frontier_raw),
                                    " before pricing; ", ", ".join(k for k in result.transformed.keys if k in frontier),
                                    " after."))
    elif result.stages:
        console.print(Text("No usable payoff matrix was read from the model.", style="yellow"))

    if result.chosen_key is not None:
        action = result.chosen_action or ""
        line = Text.assemble(("Chosen: ", "bold"), (result.chosen_key, "bold green"),
                             f" — {ACTION_DESCRIPTIONS.get(action, action)}")
        if result.chosen_by == "fallback":
            line.append(" (declared fallback: no usable matrix)", style="yellow")
        elif result.question_type:
            line.append(f" (within the {result.question_type} row the model gave: {result.question_type_evidence!r})")
        else:
            line.append(f" (over all cells: {result.question_type_evidence})")
        console.print(line)
        if result.flipped is True and result.unsteered is not None:
            console.print(Text(f"Pricing changed the choice: {result.unsteered.key} without it, {result.chosen_key} with it.",
                               style="bold"))
        elif result.flipped is False:
            console.print(Text("Pricing did not change the choice."))
        if result.decision is not None:
            console.print(Panel(Text(result.decision.explain()), title="why", title_align="left", expand=False))

    for event in result.fallbacks:
        console.print(Text(f"fallback [{event.stage}] {event.kind}: {event.detail}", style="yellow"))

    if result.response:
        console.print(Panel(Text(result.response), title="response", title_align="left"))
    if result.status == "failed":
        console.print(Text(f"Steering failed: {result.reason}", style="bold red"))

    stages = Table(title="Stages", title_justify="left")
    for column in ("stage", "attempt", "tokens out", "finish", "grammar", "seconds", "status"):
        stages.add_column(column, justify="right" if column in ("attempt", "tokens out", "seconds") else "left")
    for stage in result.stages:
        stages.add_row(stage.name, str(stage.attempt), "?" if stage.tokens_out is None else str(stage.tokens_out),
                       stage.finish_reason, _grammar_cell(stage.constraint), f"{stage.wall:.2f}",
                       stage.status if not stage.reason else f"{stage.status}: {stage.reason}")
    total = result.tokens_out
    stages.add_row("total", "", "?" if total is None else str(total), "", "", f"{result.wall:.2f}", result.status, style="bold")
    console.print(stages)
