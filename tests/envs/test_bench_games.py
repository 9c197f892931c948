"""benchmarks/bench_games.py (the Figure-3 experiment) on real `gtalign games play` output of fixed
strategies, and its step runner (benchmarks/_steps.py) on real child processes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from gtalign.cli import main as gtalign_main

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("bench_games")


def _play(out: Path, *args: str) -> None:
    assert gtalign_main(["games", "play", *args, "--out", str(out), "-q"]) == 0


def test_episode_summary_of_real_play_output(bench, tmp_path: Path) -> None:
    path = tmp_path / "eq.jsonl"
    _play(path, "prisoners-dilemma", "--player", "equilibrium", "--opponent", "equilibrium", "--episodes", "3")
    summary = bench.summarise_episodes(path)
    # five rounds of mutual defection pay P = 1 each; the equilibrium never leaves equilibrium play
    assert (summary.episodes, summary.payoff(0).mean, summary.payoff(0).se) == (3, 5.0, 0.0)
    assert (summary.distance(0).mean, summary.answers[0], summary.invalid[0], summary.forfeits[0]) == (0.0, 15, 0, 0)

    always_cooperate = tmp_path / "c.jsonl"
    _play(always_cooperate, "prisoners-dilemma", "--player", "always-cooperate", "--episodes", "2")
    summary = bench.summarise_episodes(always_cooperate)
    assert (summary.payoff(0).mean, summary.distance(0).mean) == (0.0, 1.0)  # the sucker's payoff S = 0, never the equilibrium


def test_episode_summary_counts_refused_answers_and_forfeits_of_the_learner_only(bench, tmp_path: Path) -> None:
    path = tmp_path / "eq.jsonl"
    _play(path, "beer-quiche", "--player", "equilibrium", "--episodes", "2")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    # a learner that answered nonsense three times at its first move and forfeited, as a model's episode is written
    rows[0]["records"] = [rows[0]["records"][0]] + [
        {"player": 0, "text": "hmm", "action": None, "error": "the answer names no move", "attempt": k} for k in range(3)]
    rows[0]["forfeit"], rows[0]["payoffs"], rows[0]["distance"] = 0, [-1.0, 0.0], [None, None]
    rows[1]["records"].append({"player": 1, "text": "?", "action": None, "error": "opponent's refusal", "attempt": 0})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    summary = bench.summarise_episodes(path)
    assert (summary.answers[0], summary.invalid[0], summary.forfeits[0]) == (4, 3, 1)
    assert summary.invalid[1] == 1  # the opponent's refusal is counted in its own seat
    assert summary.payoff(0).n == 2 and summary.payoff(0).mean == pytest.approx((-1.0 + rows[1]["payoffs"][0]) / 2)
    assert summary.distance(0).n == 1  # the forfeited episode has no distance


def test_estimate_is_mean_and_standard_error() -> None:
    from gtalign.cli._games import MeanSE

    e = MeanSE.of([1.0, 2.0, 3.0, 4.0])
    assert e.mean == 2.5 and e.se == pytest.approx((5 / 3) ** 0.5 / 2) and e.n == 4
    assert str(MeanSE.of([])) == "n/a" and str(MeanSE.of([2.0])) == "2.000"
    assert str(e) == "2.500 ± 0.645"


def test_steps_name_the_starts_and_resume_from_the_recorded_settings(bench, tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    out = tmp_path / "run"
    parse = bench.argparse.Namespace
    first = bench._settings(parse(out=out, adapter=None, threads=1, steps=30, episodes=12, rows=200))
    names = [step.name for step in bench.steps(first)]
    assert names[:3] == ["ref-prisoners-dilemma", "ref-bargaining", "ref-beer-quiche"]
    assert not any("gtalign" in name for name in names) and len(names) == 3 + 3 * 3
    with_adapter = bench._settings(parse(out=out, adapter=adapter, threads=1, steps=30, episodes=12, rows=200))
    names = [step.name for step in bench.steps(with_adapter)]
    assert "train-gtalign-bargaining" in names and len(names) == 3 + 6 * 3
    train = dict((step.name, step.commands) for step in bench.steps(with_adapter))["train-gtalign-bargaining"][0]
    assert train[train.index("--model") + 1] == str(adapter.resolve())
    after = dict((step.name, step.commands) for step in bench.steps(with_adapter))["eval-gtalign-bargaining-after"][0]
    assert after[after.index("--backend") + 1] == f"embedded:{out.resolve() / 'train-gtalign-bargaining' / 'final'}"

    out.mkdir()
    (out / "settings.json").write_text(json.dumps({"adapter": str(adapter), "steps": 5, "episodes": 2, "rows": 9}))
    resumed = bench._settings(parse(out=out, adapter=None, threads=1, steps=30, episodes=12, rows=200))
    assert (resumed.adapter, resumed.steps, resumed.episodes, resumed.rows) == (adapter, 5, 2, 9)


def test_report_on_reference_runs_has_no_machine_paths(bench, tmp_path: Path) -> None:
    out = tmp_path / "run"
    s = bench.Settings(out.resolve(), None, 1, 30, 12, 200)
    game = bench.GAMES[2]
    step = next(step for step in bench.steps(s) if step.name == f"ref-{game.name}")
    short = tuple(tuple("5" if value == str(bench.REFERENCE_EPISODES) else value for value in command) for command in step.commands)
    code = bench.run_steps(s.out, [bench.Step(step.name, short)], threads=1)
    assert code == 0 and (out / f"ref-{game.name}.done").exists()
    text = bench.report(s)
    assert f"| {game.name} | equilibrium strategy | 5 |" in text
    assert str(tmp_path) not in text and "OUT/ref-beer-quiche-random.jsonl" in text
    assert "not yet: ref-prisoners-dilemma, ref-bargaining" in text


def test_step_runner_skips_finished_steps_and_stops_at_a_failure(tmp_path: Path) -> None:
    steps = _load("_steps")
    marker = tmp_path / "ran.txt"
    write = (sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')")
    fail = (sys.executable, "-c", "raise SystemExit(3)")
    plan = [steps.Step("one", (write,)), steps.Step("two", (fail,)), steps.Step("three", (write,))]
    assert steps.run_steps(tmp_path, plan, threads=1) == 3
    assert marker.read_text() == "x" and (tmp_path / "one.done").exists() and not (tmp_path / "two.done").exists()
    assert steps.run_steps(tmp_path, plan, threads=1) == 3  # "one" is not run again
    assert marker.read_text() == "x"
    logged = steps.steps_log(tmp_path, r"(raise)")
    assert {(row["step"], row["exit"]) for row in logged} == {("one", 0), ("two", 3)}
    assert steps.run_steps(tmp_path, plan, threads=1, only=["three"]) == 0 and marker.read_text() == "xx"


def test_a_run_folder_keeps_its_adapter_and_names_ignored_flags(bench, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for adapter in (first, second):
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text("{}")
    out = tmp_path / "run"
    out.mkdir()
    (out / "settings.json").write_text(json.dumps({"adapter": str(first.resolve()), "steps": 30, "episodes": 12, "rows": 200}))
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["report", "--out", str(out), "--adapter", str(second)])
    assert exit_info.value.code == 2
    assert f"was started from the adapter {first.resolve()}" in capsys.readouterr().err
    s = bench._settings(bench.argparse.Namespace(out=out, adapter=None, threads=1, steps=5, episodes=None, rows=None))
    assert (s.adapter, s.steps) == (first.resolve(), 30)
    assert "--steps 5 ignored: the run folder" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--only", "--until"])
def test_an_unknown_step_name_is_a_usage_error(bench, tmp_path: Path, flag: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["run", "--out", str(tmp_path / "run"), flag, "train-base-prisoner"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no step named 'train-base-prisoner'" in err and "train-base-prisoners-dilemma" in err
    assert not (tmp_path / "run").exists()  # nothing was run or recorded


def test_the_default_run_folder_inside_the_checkout_reads_as_out(bench) -> None:
    out = bench.OUT
    command = f"{bench.ROOT}/.venv/bin/gtalign games play x --out {out}/ref-x.jsonl -q"
    assert bench.portable(command, {"OUT": out, "ADAPTER": None}) == ".venv/bin/gtalign games play x --out OUT/ref-x.jsonl -q"


def test_the_table_shows_how_many_episodes_a_distance_is_over(bench, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    _play(out / "eval-base-beer-quiche-before.jsonl", "beer-quiche", "--player", "equilibrium", "--episodes", "3")
    rows = [json.loads(line) for line in (out / "eval-base-beer-quiche-before.jsonl").read_text().splitlines()]
    rows[0]["distance"], rows[0]["forfeit"] = [None, None], 0
    (out / "eval-base-beer-quiche-before.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    table = "\n".join(bench._episode_table(bench.Settings(out, None, 1, 30, 12, 200)))
    assert "| beer-quiche | base model, before (unfinished) | 3 |" in table and "0.000 ± 0.000 (n=2)" in table
    (out / "eval-base-beer-quiche-before.done").write_text("1 s\n")
    table = "\n".join(bench._episode_table(bench.Settings(out, None, 1, 30, 12, 200)))
    assert "| beer-quiche | base model, before | 3 |" in table


def test_report_write_draws_each_games_plots_into_its_own_new_folder(bench, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.cli.test_games_report import make_run

    out = tmp_path / "run"
    make_run(out / "train-base-prisoners-dilemma", [0.1 * k for k in range(12)])
    monkeypatch.setattr(bench, "FIGURES", tmp_path / "figures")
    text = bench.report(bench.Settings(out, None, 1, 30, 12, 200), write_figures=True)
    assert {p.name for p in (tmp_path / "figures" / "games_prisoners-dilemma").glob("*.png")} == {
        "payoff.png", "spread.png", "equilibrium.png"}
    assert "(figures/games_prisoners-dilemma/payoff.png)" in text
    assert "Folder `OUT/train-base-prisoners-dilemma`" in text and str(tmp_path) not in text


def test_a_cut_off_episode_line_is_an_error_naming_the_file_and_line(bench, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "ref-bargaining-equilibrium.jsonl").write_text('{"episode": 0}\n{"broken\n')
    assert bench.main(["report", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "ref-bargaining-equilibrium.jsonl, line 2: not a JSON line" in err and "Traceback" not in err


def test_a_line_that_is_not_an_episode_is_an_error_naming_the_line(bench, tmp_path: Path) -> None:
    path = tmp_path / "eq.jsonl"
    _play(path, "prisoners-dilemma", "--player", "equilibrium", "--episodes", "2")
    first, second = path.read_text().splitlines()
    path.write_text(first + "\n" + json.dumps({"episode": 1, "learner": 0}) + "\n")
    with pytest.raises(ValueError, match=r"eq\.jsonl, line 2: not a `gtalign games play --out` episode \(KeyError"):
        bench.summarise_episodes(path)
    path.write_text(first + "\n\n" + second + "\n")  # blank lines are skipped, not episodes
    assert bench.summarise_episodes(path).episodes == 2
