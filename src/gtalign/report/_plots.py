"""The report's figures (matplotlib, Agg, no pyplot state): each a PNG a person reads faster than
the table it comes from.

Numbers come from the metrics (estimates, action mixes, comparison reference points); only the raw
points themselves (each row's U and L, its output tokens) are read from the records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from gtalign.eval import SampleRecord
from gtalign.metrics import frontier

__all__ = ["ACTION_COLOURS", "DPI", "RUN_COLOURS", "Plot", "draw_all"]

DPI = 120
# Okabe-Ito, safe for the common colour-vision deficiencies; runs take them in order.
RUN_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
# Paul Tol's muted scheme for the actions, so an action never looks like a run.
ACTION_COLOURS = {"DA": "#332288", "CQ": "#DDCC77", "AQ": "#44AA99", "none": "#BBBBBB"}
_OTHER_ACTION = "#AA4499"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_STYLE = {
    "font.size": 11, "axes.titlesize": 12.5, "axes.titleweight": "bold", "axes.labelsize": 11,
    "legend.fontsize": 10, "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6,
    "savefig.dpi": DPI, "figure.dpi": DPI,
}
OVERALL = "all"


@dataclass(frozen=True, slots=True)
class Plot:
    """A written figure: its file, a title and a caption saying what it shows."""

    name: str
    path: Path
    title: str
    caption: str


def colour(index: int) -> str:
    return RUN_COLOURS[index % len(RUN_COLOURS)]


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.15, facecolor="white",
                metadata={"Software": None})


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _points(records: Sequence[SampleRecord]) -> np.ndarray:
    pts = [(r.user_reward, r.llm_reward) for r in records if r.scored]
    return np.array([p for p in pts if p[0] is not None and p[1] is not None], dtype=np.float64).reshape(-1, 2)


def _staircase(front: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frontier as the edge of the region it dominates: from each point (u ascending) down to
    the next point's L, then across to it."""
    ordered = front[np.argsort(front[:, 0])]
    us, ls = [ordered[0, 0]], [ordered[0, 1]]
    for u, l in ordered[1:]:
        us += [us[-1], u]
        ls += [l, l]
    return np.array(us), np.array(ls)


def pareto_plot(path: Path, names: Sequence[str], records: Sequence[Sequence[SampleRecord]],
                comparisons: Sequence[Mapping[str, Any]]) -> Plot:
    with rc_context(_STYLE):
        fig = Figure(figsize=(8.2, 6.4))
        ax = fig.add_subplot()
        handles: list[Any] = []
        drawn = 0
        for i, (name, run) in enumerate(zip(names, records, strict=True)):
            pts = _points(run)
            if len(pts) == 0:
                continue
            drawn += 1
            uniq, counts = np.unique(pts, axis=0, return_counts=True)
            dense = len(pts) > 1000  # thousands of rows: smaller, fainter markers, so the cloud stays readable
            sizes = (6 if dense else 14) + 26 * np.sqrt(counts - 1)
            ax.scatter(uniq[:, 0], uniq[:, 1], s=sizes, color=colour(i), alpha=0.25 if dense else 0.45,
                       marker=_MARKERS[i % len(_MARKERS)], linewidths=0, zorder=2)
            front = frontier(pts)
            su, sl = _staircase(front)
            ax.plot(su, sl, color=colour(i), linewidth=2.2, zorder=3)
            ax.scatter(front[:, 0], front[:, 1], s=60, facecolor="none", edgecolor=colour(i), linewidth=2.0,
                       marker=_MARKERS[i % len(_MARKERS)], zorder=4)
            handles.append(Line2D([], [], color=colour(i), marker=_MARKERS[i % len(_MARKERS)], markerfacecolor="none",
                                  linewidth=2.2, label=f"{name}: {len(pts)} points, frontier of {len(front)}"))
        refs: dict[tuple[float, float], list[str]] = {}
        for comp in comparisons:
            overall = comp["comparison"]["sources"].get(OVERALL)
            if overall and overall["n"]:
                refs.setdefault(tuple(overall["reference"]), []).append(f"{comp['b']} vs {comp['a']}")
        for ref, labels in refs.items():
            ax.scatter([ref[0]], [ref[1]], marker="X", s=90, color="#222222", zorder=3.5)  # under hollow frontier markers
            ax.annotate(f"HV reference ({'; '.join(labels)})", ref, xytext=(8, 8), textcoords="offset points",
                        fontsize=9.5, color="#222222", zorder=6,
                        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
        if refs:
            handles.append(Line2D([], [], color="#222222", marker="X", linestyle="none", markersize=9,
                                  label="hypervolume reference point (min U, min L of both runs)"))
        if drawn == 0:
            _empty(ax, "No scored rows with both U and L: nothing to plot.")
        else:
            ax.set_xlabel("U: user reward (score, 0 to 1)")
            ax.set_ylabel("L: LLM reward (score, 0 to 1)")
            lo = min([0.0, *(r[0] for r in refs)])
            ax.set_xlim(min(lo, ax.get_xlim()[0]) - 0.02, max(1.0, ax.get_xlim()[1]) + 0.02)
            ax.set_ylim(min(0.0, ax.get_ylim()[0]) - 0.02, max(1.0, ax.get_ylim()[1]) + 0.02)
            ax.set_aspect("equal", adjustable="box")
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1, frameon=False)
        ax.set_title("User vs LLM reward per scored row, with each run's Pareto frontier")
        _save(fig, path)
    return Plot("pareto", path, "(U, L) points and Pareto frontiers",
                "Each marker is one scored row (bigger: several rows at the same point); the line is the run's "
                "Pareto frontier over all its scored rows. The cross is the reference point the hypervolume in the "
                "comparison tables uses (over the paired rows of both runs).")


def welfare_plot(path: Path, names: Sequence[str], metrics: Mapping[str, Mapping[str, Any]]) -> Plot:
    tasks = sorted({t for n in names for t in metrics.get(n, {}).get("sources", {}) if t != OVERALL}) + [OVERALL]
    with rc_context(_STYLE):
        fig = Figure(figsize=(max(7.0, 1.3 * len(tasks) + 2.5), 5.0))
        ax = fig.add_subplot()
        width = 0.7 / max(1, len(names))
        any_point = False
        for i, name in enumerate(names):
            groups = metrics.get(name, {}).get("sources", {})
            xs, ys, lows, highs = [], [], [], []
            for j, task in enumerate(tasks):
                est = groups.get(task, {}).get("estimates", {}).get("welfare") or {}
                if est.get("mean") is None:
                    continue
                x = j + (i - (len(names) - 1) / 2) * width
                xs.append(x)
                ys.append(est["mean"])
                lows.append(est["mean"] - (est["low"] if est.get("low") is not None else est["mean"]))
                highs.append((est["high"] if est.get("high") is not None else est["mean"]) - est["mean"])
            if xs:
                any_point = True
                ax.errorbar(xs, ys, yerr=[lows, highs], fmt=_MARKERS[i % len(_MARKERS)], color=colour(i), markersize=7,
                            capsize=4, elinewidth=1.6, capthick=1.6, label=name, zorder=3)
        if not any_point:
            _empty(ax, "No scored rows: no welfare to show.")
        else:
            ax.set_xticks(range(len(tasks)), tasks)
            for label in ax.get_xticklabels():
                if label.get_text() == OVERALL:
                    label.set_fontweight("bold")
            if len(tasks) > 1:
                ax.axvline(len(tasks) - 1.5, color="#999999", linewidth=0.8, linestyle=":")
            ax.set_xlim(-0.6, len(tasks) - 0.4)
            ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
            ax.set_xlabel("task (data source)")
            ax.set_ylabel("mean welfare √(U·L) (0 to 1)")
            ax.grid(axis="x", visible=False)
            ax.legend(title="run", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set_title("Mean welfare per task, with 95% bootstrap intervals")
        _save(fig, path)
    return Plot("welfare", path, "Welfare per task",
                "Mean Cobb-Douglas welfare √(U·L) over scored rows per data source and overall, with the bootstrap "
                "95% interval over prompts.")


def _mix_rows(names: Sequence[str], metrics: Mapping[str, Mapping[str, Any]], key: str
              ) -> tuple[list[str], list[tuple[int, str, Mapping[str, int]]]]:
    labels = sorted({lab for n in names for lab in (metrics.get(n, {}).get("sources", {}).get(OVERALL, {})
                                                    .get(key, {}).get("counts", {}))})
    rows = []
    for label in labels:
        for i, name in enumerate(names):
            counts = metrics.get(name, {}).get("sources", {}).get(OVERALL, {}).get(key, {}).get("counts", {})
            if label in counts and sum(counts[label].values()):
                rows.append((i, label, counts[label]))
    return labels, rows


def actions_plot(path: Path, names: Sequence[str], metrics: Mapping[str, Mapping[str, Any]]) -> Plot:
    panels = (("chosen_actions", "chosen in <analyze>"), ("response_acts", "carried out by the response"))
    _, rows = _mix_rows(names, metrics, panels[0][0])
    acts = ["DA", "CQ", "AQ"]
    for _, _, counts in rows:
        acts += [a for a in counts if a not in acts and a != "none"]
    acts.append("none")
    with rc_context(_STYLE):
        height = max(3.0, 0.42 * max(1, len(rows)) + 1.9)
        fig = Figure(figsize=(11.5, height))
        axes = fig.subplots(1, 2, sharey=True)
        for ax, (key, what) in zip(axes, panels, strict=True):
            _, panel_rows = _mix_rows(names, metrics, key)
            ax.set_title(f"Action {what}", fontsize=11.5)
            if not panel_rows:
                _empty(ax, "No answered rows.")
                continue
            ys, ylabels, y, previous = [], [], -1.0, None
            for i, label, counts in panel_rows:
                y += 1.0 if previous in (None, label) else 1.6  # a gap between labels
                previous = label
                ys.append(y)
                total = sum(counts.values())
                left = 0.0
                for act in acts:
                    share = counts.get(act, 0) / total
                    if share <= 0:
                        continue
                    ax.barh(y, share, left=left, color=ACTION_COLOURS.get(act, _OTHER_ACTION), edgecolor="white",
                            linewidth=0.8, height=0.8)
                    if share >= 0.08:
                        dark = act in ("DA", "AQ") or act not in ACTION_COLOURS
                        ax.text(left + share / 2, y, f"{share:.0%}", ha="center", va="center", fontsize=8.5,
                                color="white" if dark else "#222222")
                    left += share
                ylabels.append(f"{label} · {names[i]} (n={total})")
            ax.set_yticks(ys, ylabels)
            if ax is axes[0]:
                ax.set_ylim(y + 0.7, -0.7)  # first row on top (the y axis is shared: set once)
            ax.set_xlim(0, 1)
            ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
            ax.set_xlabel("share of answered rows")
            ax.grid(axis="y", visible=False)
        fig.legend(handles=[Patch(color=ACTION_COLOURS.get(a, _OTHER_ACTION), label=a) for a in acts],
                   title="action (DA direct answer, CQ clarifying question, AQ answer + follow-up)",
                   loc="lower center", bbox_to_anchor=(0.5, -0.02), ncol=len(acts), frameon=False)
        fig.suptitle("Action mix by ground-truth label, per run", fontweight="bold", fontsize=12.5)
        fig.tight_layout(rect=(0, 0.17 if height < 4 else 0.08, 1, 1))
        _save(fig, path)
    return Plot("actions", path, "Action mix by label",
                "For each ground-truth label (ambiguous / clear, harmful / unharmful, unlabelled) and run: the share "
                "of answered rows whose <analyze> chose each action (left) and whose response actually does it "
                "(right).")


def _lengths(records: Sequence[SampleRecord]) -> tuple[list[float], str]:
    answered = [r for r in records if r.status in ("scored", "unscored")]
    tokens = [float(r.tokens_out) for r in answered
              if isinstance(r.tokens_out, int) and not isinstance(r.tokens_out, bool) and r.tokens_out >= 0]
    if tokens:
        return tokens, "tokens"
    return [float(len(r.answer)) for r in answered], "characters"


def lengths_plot(path: Path, names: Sequence[str], records: Sequence[Sequence[SampleRecord]]) -> Plot:
    per_run = [_lengths(run) for run in records]
    unit = "tokens" if any(u == "tokens" and v for v, u in per_run) else "characters"
    tasks = sorted({r.data_source for run in records for r in run if r.status in ("scored", "unscored")})
    with rc_context(_STYLE):
        fig = Figure(figsize=(max(11.0, 4.5 + 1.2 * len(tasks)), 4.8))
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": (1, max(1.2, 0.45 * len(tasks)))})
        values = [v for v, u in per_run if u == unit]
        everything = [x for v in values for x in v]
        if not everything:
            _empty(left, "No answered rows.")
            _empty(right, "No answered rows.")
        else:
            bins = np.histogram_bin_edges(everything, bins=min(40, max(8, int(math.sqrt(len(everything))))))
            for i, (name, (v, u)) in enumerate(zip(names, per_run, strict=True)):
                if u != unit or not v:
                    continue
                left.hist(v, bins=bins, histtype="stepfilled", alpha=0.18, color=colour(i))
                left.hist(v, bins=bins, histtype="step", linewidth=1.8, color=colour(i),
                          label=f"{name} (median {np.median(v):.0f})")
                left.axvline(float(np.median(v)), color=colour(i), linestyle="--", linewidth=1.2)
            left.set_xlabel(f"output length ({unit})")
            left.set_ylabel("rows")
            left.set_title("All tasks", fontsize=11.5)
            left.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
            width = 0.8 / max(1, len(names))
            boxed = []
            for i, (name, run) in enumerate(zip(names, records, strict=True)):
                data, pos = [], []
                for j, task in enumerate(tasks):
                    lengths, u = _lengths([r for r in run if r.data_source == task])
                    if lengths and u == unit:
                        data.append(lengths)
                        pos.append(j + (i - (len(names) - 1) / 2) * width)
                if data:
                    boxed.append(i)
                    right.boxplot(data, positions=pos, widths=width * 0.85, patch_artist=True, manage_ticks=False,
                                  boxprops={"facecolor": colour(i), "alpha": 0.45, "edgecolor": colour(i)},
                                  medianprops={"color": "#111111", "linewidth": 1.6},
                                  whiskerprops={"color": colour(i)}, capprops={"color": colour(i)},
                                  flierprops={"markeredgecolor": colour(i), "markersize": 4})
            right.set_xticks(range(len(tasks)), tasks, rotation=20 if len(tasks) > 5 else 0,
                             ha="right" if len(tasks) > 5 else "center")
            right.set_xlim(-0.6, len(tasks) - 0.4)
            right.set_xlabel("task (data source)")
            right.set_ylabel(f"output length ({unit})")
            right.set_title("Per task (box: quartiles, line: median)", fontsize=11.5)
            right.grid(axis="x", visible=False)
            right.legend(handles=[Patch(facecolor=colour(i), alpha=0.6, label=names[i]) for i in boxed],
                         frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="run")
        fig.suptitle(f"Output length in {unit}, answered rows", fontweight="bold", fontsize=12.5)
        fig.tight_layout()
        _save(fig, path)
    return Plot("lengths", path, "Output length",
                f"Distribution of output length in {unit} over answered rows (scored or unscored): all tasks "
                "(dashed: median) and per task.")


def draw_all(out_dir: Path, names: Sequence[str], records: Sequence[Sequence[SampleRecord]],
             metrics: Mapping[str, Mapping[str, Any]], comparisons: Sequence[Mapping[str, Any]]) -> list[Plot]:
    """Write every figure into ``out_dir``; returns them in the report's order."""
    return [
        welfare_plot(out_dir / "welfare.png", names, metrics),
        pareto_plot(out_dir / "pareto.png", names, records, comparisons),
        actions_plot(out_dir / "actions.png", names, metrics),
        lengths_plot(out_dir / "lengths.png", names, records),
    ]
