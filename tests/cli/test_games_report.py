"""``gtalign games report`` on hand-written run folders with known numbers: the table, the
convergence statement (a converging and a non-converging log), a resumed run's repeated steps, a run
in progress, the errors, and the PNGs."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gtalign.cli import main
from gtalign.cli._games_report import build_figures, convergence, markdown, read_run, summarise, train_command

pytest.importorskip("matplotlib")


def _config(out: Path, *, mode: str = "game", trl: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "grpo", "data": [str(out / "game_rows.jsonl")], "output_dir": str(out), "model": "embedded",
            "prompt": "stored", "lora": {}, "reward": {"mode": mode}, "threads": 1,
            "trl": dict(trl or {"max_steps": 10, "num_generations": 4, "max_completion_length": 64,
                                "learning_rate": 1e-5, "save_steps": 25, "seed": 3, "per_device_train_batch_size": 8})}


def make_run(out: Path, payoffs: Sequence[float], *, game: str = "prisoners-dilemma", seat: int = 1,
             opponent: str = "tit-for-tat", starts: Sequence[Mapping[str, Any]] | None = None,
             log: Sequence[Mapping[str, Any]] | None = None, mode: str = "game",
             extra: Mapping[str, Sequence[float]] | None = None, trl: Mapping[str, Any] | None = None,
             params: Mapping[str, Any] | None = None) -> Path:
    """A run folder: record, two rows, and one log line per step 1..len(payoffs) (or ``log`` as given)."""
    out.mkdir(parents=True)
    record = {"format": 1, "kind": "grpo", "config": _config(out, mode=mode, trl=trl),
              "runs": list(starts or [{"run": 1, "started": "2025-01-01T00:00:00", "resumed_from": None, "finished": True,
                                       "global_step": len(payoffs)}])}
    (out / "gtalign_train.json").write_text(json.dumps(record), encoding="utf-8")
    rows = [{"data_source": f"game/{game}", "prompt": [], "extra_info": {
        "game": game, "params": dict(params or {"rounds": 5}), "seat": seat, "opponent": opponent, "behaviour": "mix:0.5",
        "continuation": "equilibrium", "samples": 8, "episode_seed": s, "decision": 0}} for s in (11, 12)]
    (out / "game_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    if log is None:
        log = []
        for i, payoff in enumerate(payoffs):
            row = {"run": 1, "step": i + 1, "loss": 0.0, "reward": payoff, "games/payoff_mean": payoff,
                   "games/payoff_var": 0.25, "games/payoff_norm_mean": payoff / 5, "games/invalid_frac": 0.0,
                   "games/distance_mean": 0.5, "games/regret_mean": 1.0, "games/equilibrium_frac": 0.5,
                   "games/opponent_payoff_mean": 1.0, "games/unscored_frac": 0.0}
            for key, values in (extra or {}).items():
                row[f"games/{key}"] = values[i]
            log.append(row)
        log = [*log, {"run": 1, "step": len(payoffs), "train_runtime": 12.0}]
    (out / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log), encoding="utf-8")
    return out


# -- the table ---------------------------------------------------------------------------------------

KNOWN = [1.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 5.0, 7.0]
"""Ten steps: first 20% = steps 1-2 (mean 2, sd sqrt 2), last 20% = steps 9-10 (mean 6, sd sqrt 2)."""


def test_the_table_has_the_first_and_last_20_percent_with_the_difference_and_its_standard_error(tmp_path: Path) -> None:
    run = read_run(make_run(tmp_path / "pd", KNOWN, extra={
        "invalid_frac": [0.5, 0.5, 0, 0, 0, 0, 0, 0, 0.0, 0.25],
        "distance_mean": [0.8, 0.6, 0, 0, 0, 0, 0, 0, 0.2, 0.2],
        "regret_mean": [2.0, 1.0, 0, 0, 0, 0, 0, 0, 0.5, 0.0],
        "payoff_var": [1.0, 9.0, 0, 0, 0, 0, 0, 0, 4.0, 4.0]}))
    summary = summarise(run)
    assert (summary.window, summary.first_steps, summary.last_steps) == (2, (1, 2), (9, 10))
    payoff = summary.metrics["payoff_mean"]
    assert (payoff.first, payoff.last, payoff.difference) == (2.0, 6.0, 4.0)
    assert payoff.se == pytest.approx(math.sqrt(2.0))  # sqrt(2/2 + 2/2)
    text = markdown([run], [])
    assert "| mean payoff (± standard error) | 2 ± 1 | 6 ± 1 | +4 ± 1.4 |" in text
    assert "| within-step sd of the payoff (√payoff_var) | 2 | 2 | |" in text  # mean of (1, 3) and of (2, 2)
    assert "| step-to-step sd of the payoff mean | 1.41 | 1.41 | |" in text
    assert "| invalid answers | 50.0% | 12.5% | -37.5 points |" in text
    assert "| distance from equilibrium (valid answers) | 0.7 | 0.2 | -0.5 |" in text
    assert "| regret (best move's payoff − the answer's; a forfeit's at its penalty) | 1.5 | 0.25 | -1.25 |" in text
    assert "| payoff on [0, 1] (payoff_norm_mean) | 0.4 | 1.2 | +0.8 |" in text
    assert "## prisoners-dilemma, seat 1 vs tit-for-tat" in text
    assert "10 logged steps, finished at step 10." in text


def test_the_command_is_rebuilt_from_the_record_and_the_rows(tmp_path: Path) -> None:
    run = read_run(make_run(tmp_path / "pd", KNOWN, trl={"max_steps": 50, "num_generations": 4, "seed": 3,
                                                          "per_device_train_batch_size": 8, "temperature": 0.8}))
    command = train_command(run)
    assert command.startswith("gtalign games train prisoners-dilemma --param rounds=5 --seat 1 --opponent tit-for-tat "
                              "--behaviour mix:0.5 --continuation equilibrium --samples 8 --episodes 2 --seed 3")
    assert "--trl max_steps=50" in command and "--trl temperature=0.8" in command
    assert "num_generations" not in command and "per_device_train_batch_size" not in command  # the defaults
    assert f"--threads 1 --out {tmp_path / 'pd'}" in command
    assert f"```\n{command}\n```" in markdown([run], [])


# -- the convergence statement ---------------------------------------------------------------------


def test_a_log_that_rises_and_settles_is_called_converging(tmp_path: Path) -> None:
    noise = random.Random(1)
    payoffs = [min(4.0, 0.1 * step) + noise.uniform(-0.5, 0.5) * (1 if step < 40 else 0.05) for step in range(50)]
    summary = summarise(read_run(make_run(tmp_path / "up", payoffs)))
    statement = convergence(summary)
    assert statement.startswith("Converging in this test's sense: the mean moved and the step-to-step spread fell.")
    assert "The mean payoff rose from" in statement and "steps 41–50" in statement


def test_a_flat_noisy_log_is_called_not_converging(tmp_path: Path) -> None:
    noise = random.Random(2)
    payoffs = [2.0 + noise.gauss(0, 1.0) for _ in range(50)]
    summary = summarise(read_run(make_run(tmp_path / "flat", payoffs)))
    statement = convergence(summary)
    assert statement.startswith("No sign of convergence: the mean did not move beyond the noise and the step-to-step "
                                "spread did not fall.")
    assert "is within 2 combined standard errors of the first 20%'s" in statement


def test_a_log_that_moves_but_stays_noisy_is_not_settled(tmp_path: Path) -> None:
    noise = random.Random(3)
    payoffs = [0.1 * step + noise.gauss(0, 0.5) for step in range(50)]
    statement = convergence(summarise(read_run(make_run(tmp_path / "drift", payoffs))))
    assert statement.startswith("Not settled: the mean moved, but the step-to-step spread did not fall.")


def test_too_few_steps_to_judge(tmp_path: Path) -> None:
    statement = convergence(summarise(read_run(make_run(tmp_path / "short", [1.0, 2.0, 3.0]))))
    assert statement.startswith("Too few logged steps (3) to judge convergence")


# -- resumed, in progress --------------------------------------------------------------------------


def _line(run: int, step: int, payoff: float) -> dict[str, Any]:
    return {"run": run, "step": step, "games/payoff_mean": payoff, "games/payoff_var": 0.0, "games/invalid_frac": 0.0}


def test_a_resumed_run_uses_the_newest_line_of_each_repeated_step(tmp_path: Path) -> None:
    log = [_line(1, s, 100.0) for s in range(1, 7)]  # run 1 logged steps 1-6, checkpoint at 4
    log += [_line(2, s, float(s)) for s in range(5, 11)]  # run 2 resumed from checkpoint-4: steps 5-10 again
    starts = [{"run": 1, "started": "t1", "resumed_from": None, "finished": False},
              {"run": 2, "started": "t2", "resumed_from": "checkpoint-4", "finished": True}]
    run = read_run(make_run(tmp_path / "resumed", [], log=log, starts=starts))
    assert run.steps == tuple(range(1, 11)) and run.repeated == 2
    assert run.values("payoff_mean") == (100.0,) * 4 + tuple(float(s) for s in range(5, 11))
    assert run.finished
    text = markdown([run], [])
    assert "2 log lines of steps logged again after a resume were superseded by newer ones" in text
    assert "trained in 2 starts (t1; t2 from checkpoint-4)" in text
    assert "| mean payoff (± standard error) | 100 ± 0 | 9.5 ± 0.5 | -90.5 ± 0.5 |" in text


def test_a_run_in_progress_is_reported_as_far_as_it_got(tmp_path: Path) -> None:
    starts = [{"run": 1, "started": "t1", "resumed_from": None, "finished": False}]
    folder = make_run(tmp_path / "running", KNOWN, starts=starts, trl={"max_steps": 200})
    with (folder / "train_log.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"run": 1, "step": 11, "games/payoff_me')  # a line being written
    run = read_run(folder)
    assert not run.finished and run.steps[-1] == 10 and run.skipped_lines == 1
    text = markdown([run], [])
    assert "10 logged steps, NOT FINISHED: reported as far as it got, step 10 of 200" in text
    assert "1 unreadable log lines were left out" in text
    assert "(so far: the run is not finished)." in convergence(summarise(run))


# -- errors ----------------------------------------------------------------------------------------


def _error(capsys: pytest.CaptureFixture[str], *folders: Path) -> str:
    assert main(["games", "report", *map(str, folders), "--out", str(folders[0].parent / "out")]) == 2
    return capsys.readouterr().err


def test_a_missing_folder_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert f"{tmp_path / 'nope'}: no such folder" in _error(capsys, tmp_path / "nope")


def test_a_folder_without_a_record_is_not_a_games_train_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_run(tmp_path / "run", KNOWN)
    (folder / "gtalign_train.json").unlink()
    error = _error(capsys, folder)
    assert f"{folder} is not a `gtalign games train` run folder: it has no gtalign_train.json" in error


def test_a_welfare_run_is_not_a_games_train_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = make_run(tmp_path / "good", KNOWN)
    folder = make_run(tmp_path / "welfare", KNOWN, mode="welfare")
    error = _error(capsys, good, folder)
    assert f"{folder} is not a `gtalign games train` run folder: its record is a gtalign train grpo run with " \
           "reward mode welfare, not reward mode game" in error
    assert not (tmp_path / "out").exists()  # nothing written when one folder is refused


def test_a_folder_without_rows_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_run(tmp_path / "run", KNOWN)
    (folder / "game_rows.jsonl").unlink()
    assert f"{folder} is not a `gtalign games train` run folder: it has no game_rows.jsonl" in _error(capsys, folder)


def test_a_log_without_games_metrics_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_run(tmp_path / "run", [], log=[{"run": 1, "step": 1, "loss": 0.1, "reward": 0.2},
                                                 {"run": 1, "step": 1, "train_runtime": 3.0}])
    error = _error(capsys, folder)
    assert f"{folder / 'train_log.jsonl'} has no games/ metrics (2 logged lines)" in error


def test_a_run_with_no_log_yet_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_run(tmp_path / "run", KNOWN)
    (folder / "train_log.jsonl").unlink()
    assert f"{folder}: no train_log.jsonl yet: the run has logged no step" in _error(capsys, folder)


# -- the command and its plots ---------------------------------------------------------------------


def test_the_command_writes_the_report_and_readable_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    noise = random.Random(4)
    pd = make_run(tmp_path / "pd-tft", [3 + noise.gauss(0, 1) for _ in range(40)])
    barg = make_run(tmp_path / "barg", [0.5 + noise.gauss(0, 0.1) for _ in range(30)], game="bargaining", seat=0,
                    opponent="equilibrium", starts=[{"run": 1, "started": "t", "finished": False}])
    out = tmp_path / "report"
    assert main(["games", "report", str(pd), str(barg), "--out", str(out), "--title", "Synthetic runs"]) == 0
    printed = capsys.readouterr().out
    assert f"{pd}: prisoners-dilemma, seat 1 vs tit-for-tat: 40 logged steps, finished at step 40" in printed
    assert f"{barg}: bargaining, seat 0 vs equilibrium: 30 logged steps, NOT FINISHED" in printed
    text = (out / "report.md").read_text(encoding="utf-8")
    assert text.startswith("# Synthetic runs\n")
    assert "## prisoners-dilemma, seat 1 vs tit-for-tat\n" in text and "## bargaining, seat 0 vs equilibrium\n" in text
    for name in ("payoff.png", "spread.png", "equilibrium.png"):
        assert (out / name).stat().st_size > 10_000
        assert f"![{name}]({name})" in text
    assert (out / "payoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_with_the_same_label_are_told_apart_by_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = make_run(tmp_path / "seed0", KNOWN), make_run(tmp_path / "seed1", KNOWN)
    assert main(["games", "report", str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "## prisoners-dilemma, seat 1 vs tit-for-tat (seed0)" in text
    assert "## prisoners-dilemma, seat 1 vs tit-for-tat (seed1)" in text


def test_one_run_defaults_to_a_report_folder_inside_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_run(tmp_path / "pd", KNOWN)
    assert main(["games", "report", str(folder)]) == 0
    assert (folder / "report" / "report.md").is_file() and (folder / "report" / "payoff.png").is_file()


@pytest.mark.parametrize(("last", "words"), [
    ((3.0, 5.0), "a difference of +2 is 1.4 standard errors (1.41), no change"),  # 1.41 SE: within 2
    ((5.0, 7.0), "a difference of +4, 2.8 combined standard errors (1.41), more than the 2 taken as a change"),
])
def test_a_change_is_more_than_two_combined_standard_errors(tmp_path: Path, last: tuple[float, float], words: str) -> None:
    payoffs = [1.0, 3.0, *[4.0] * 6, *last]  # first window mean 2 (sd sqrt 2), last window sd sqrt 2: SE sqrt 2
    assert words in convergence(summarise(read_run(make_run(tmp_path / "run", payoffs))))


def test_a_game_with_a_title_is_labelled_by_it(tmp_path: Path) -> None:
    """Beer-Quiche is the `signaling` game with Beer-Quiche's parameters: its title names it."""
    run = read_run(make_run(tmp_path / "bq", [1.0, 2.0], game="signaling", seat=0, opponent="equilibrium",
                            params={"title": "Beer-Quiche (Cho and Kreps)", "prior": [0.1, 0.9]}))
    assert run.label == "Beer-Quiche (Cho and Kreps), seat 0 vs equilibrium"
    assert read_run(make_run(tmp_path / "pd", [1.0, 2.0])).label == "prisoners-dilemma, seat 1 vs tit-for-tat"


def test_a_short_run_is_plotted_on_whole_steps(tmp_path: Path) -> None:
    """A two-step run (CI's) gets ticks at steps 1 and 2, not at 1.25 or 1.75: a GRPO step is a whole number."""
    figures = build_figures([read_run(make_run(tmp_path / "pd", [1.0, 2.0]))])
    assert set(figures) == {"payoff.png", "spread.png", "equilibrium.png"}
    for name, fig in figures.items():
        for ax in fig.axes:
            low, high = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if low <= t <= high]
            assert ticks and all(t == int(t) for t in ticks), (name, ax.get_title(), ticks)
    # the spread has one finite point (step 2) on a two-step run: it must be drawn as a marker, not a 0-length line
    spread = figures["spread.png"].axes[0].lines[0]
    assert spread.get_marker() not in ("None", "", None, " ")
    assert [y for y in spread.get_ydata() if y == y] == pytest.approx([2 ** 0.5 / 2])


def test_noiseless_windows_are_reported_not_divided_by(tmp_path: Path) -> None:
    """Every step alike in both windows (all forfeits early, one answer late): the standard error is 0.
    The report says the mean changed without a ratio to a zero error, and that no spread could fall."""
    moved = convergence(summarise(read_run(make_run(tmp_path / "moved", [-1.0] * 5 + [0.9] * 5))))
    assert "with no step-to-step noise in either window (every step alike), so a change" in moved
    assert moved.startswith("Not settled: the mean moved") and "there was no spread to fall" in moved
    flat = convergence(summarise(read_run(make_run(tmp_path / "flat", [-1.0] * 10))))
    assert flat.startswith("No sign of convergence") and "there was no spread to fall" in flat
