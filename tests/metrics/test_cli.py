"""``gtalign metrics``: tables per run and per comparison, --json, and errors that say what failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gtalign.cli._main import main
from gtalign.eval import RunHeader, config_hash, write_records

from tests.metrics._records import record


def _run(folder: Path, name: str, welfare: list[float]) -> Path:
    folder.mkdir(parents=True)
    config = {"name": name}
    records = [record(f"wildguard/{i}", source="wildguard", label="harmful", u=w, l=w, answer_reward=0.5, judge_value=0.5)
               for i, w in enumerate(welfare)]
    records.append(record("wildguard/99", source="wildguard", status="generation_failed"))
    with (folder / "run.jsonl").open("w", encoding="utf-8") as handle:
        write_records([RunHeader(config, config_hash(config), "0.0", "today"), *records], handle)
        handle.write("{torn")
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    return _run(tmp_path / "a", "base", [0.2, 0.4, 0.6]), _run(tmp_path / "b", "gtalign", [0.3, 0.4, 0.5])


def test_tables_for_each_run_and_the_comparison(runs, capsys) -> None:
    assert main(["metrics", str(runs[0]), str(runs[1]), "--resamples", "20"]) == 0
    out, err = capsys.readouterr()
    assert "base" in out and "gtalign" in out and "wildguard" in out
    assert "welfare sqrt(U*L)" in out and "generation failed" in out
    assert "gtalign vs base" in out and "research formula" in out
    assert "skipped 1 line(s)" in err


def test_json_holds_every_result(runs, capsys) -> None:
    assert main(["metrics", str(runs[0]), str(runs[1]), "--json", "--resamples", "20", "--epsilon", "0.2"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in document["runs"]] == ["base", "gtalign"]
    assert document["runs"][0]["metrics"]["sources"]["wildguard"]["counts"]["generation_failed"] == 1
    assert document["runs"][0]["problems"][0]["reason"].startswith("truncated line")
    (comparison,) = document["comparisons"]
    assert (comparison["a"], comparison["b"], comparison["epsilon"]) == ("base", "gtalign", 0.2)
    welfare = comparison["sources"]["all"]["welfare"]
    assert (welfare["wins"], welfare["ties"], welfare["losses"]) == (1, 1, 1)


def test_one_run_and_same_names_are_told_apart(tmp_path: Path, capsys) -> None:
    first = _run(tmp_path / "x", "same", [0.5])
    second = _run(tmp_path / "y", "same", [0.5])
    assert main(["metrics", str(first), str(second), "--json", "--resamples", "0"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)["runs"]] == ["same", "same (2)"]


def test_an_unreadable_input_fails_with_its_path(tmp_path: Path, capsys) -> None:
    assert main(["metrics", str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err


def test_usage_errors(capsys) -> None:
    assert main(["metrics"]) == 2
    assert main(["metrics", "x", "--epsilon", "-1"]) == 2


def test_bootstrap_flag_reaches_the_metrics_and_the_comparison(runs, capsys) -> None:
    assert main(["metrics", str(runs[0]), str(runs[1]), "--json", "--resamples", "20", "--bootstrap", "cluster"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [r["metrics"]["bootstrap"] for r in document["runs"]] == ["cluster", "cluster"]
    assert document["comparisons"][0]["bootstrap"] == "cluster"
    assert main(["metrics", str(runs[0]), "--json", "--resamples", "20"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["metrics"]["bootstrap"] == "two-level"
    assert main(["metrics", str(runs[0]), "--bootstrap", "nested"]) == 2


def test_the_flags_choices_are_the_metrics_bootstraps() -> None:
    from gtalign.cli._metrics import BOOTSTRAP_CHOICES
    from gtalign.metrics import BOOTSTRAPS

    assert BOOTSTRAP_CHOICES == BOOTSTRAPS
