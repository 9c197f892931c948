"""``gtalign data sft`` and the held-out evaluation: a paper benchmark's train split loses the rows
that ask one of its test questions (counted in the summary) unless --allow-eval-data, --split test
is refused, and every output row records the prompt mode it was built for, which ``gtalign train
sft`` reads back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gtalign.cli._main import main
from gtalign.training._config import config_from_settings
from gtalign.training._train_data import load_rows, normalise_question
from tests.training.test_train_data_guards import HELD_OUT, TEST_QUESTIONS, TRAIN_ROWS, paper_dir, paper_row, write_parquet  # noqa: F401


def sft(*args: str | Path) -> int:
    return main(["data", "sft", *map(str, args)])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_train_split_loses_the_rows_asking_its_test_questions(paper_dir: Path, tmp_path: Path,  # noqa: F811
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sft.jsonl"
    assert sft("math-hard", "--data", paper_dir, "-o", out) == 0
    assert [r["id"] for r in read_jsonl(out)] == [f"math-hard/train/{i}" for i in range(len(TRAIN_ROWS)) if i not in HELD_OUT]
    err = " ".join(capsys.readouterr().err.split())
    assert ("held-out questions: math-hard/train: 3 rows dropped: their question is in the held-out math-hard test split "
            "(--allow-eval-data keeps them)") in err
    kept = tmp_path / "all.jsonl"
    assert sft("math-hard", "--data", paper_dir, "-o", kept, "--allow-eval-data") == 0
    assert len(read_jsonl(kept)) == len(TRAIN_ROWS)
    assert "held-out questions" not in capsys.readouterr().err


def test_limit_samples_after_the_held_out_rows_are_dropped(paper_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    held = {normalise_question(q) for q in TEST_QUESTIONS}
    for seed in range(6):
        out = tmp_path / f"sft{seed}.jsonl"
        assert sft("math-hard", "--data", paper_dir, "--limit", "3", "--seed", seed, "-o", out, "-q") == 0
        records = read_jsonl(out)
        assert len(records) == 3
        assert not any(normalise_question(r["extra_info"]["single_turn_prompt"]) in held for r in records)


def test_a_missing_test_split_is_said_and_nothing_dropped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "paper"
    write_parquet(folder / "train_test" / "math-hard" / "train.parquet", TRAIN_ROWS)
    out = tmp_path / "sft.jsonl"
    assert sft("math-hard", "--data", folder, "-o", out) == 0
    assert len(read_jsonl(out)) == len(TRAIN_ROWS)
    assert "math-hard/train: held-out math-hard test split: not read" in " ".join(capsys.readouterr().err.split())


def test_the_test_split_is_refused_unless_allowed(paper_dir: Path, tmp_path: Path,  # noqa: F811
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sft.jsonl"
    assert sft("math-hard", "--data", paper_dir, "--split", "test", "-o", out) == 2
    assert "--split test is the held-out evaluation split" in capsys.readouterr().err and not out.exists()
    assert sft("math-hard", "--data", paper_dir, "--split", "test", "--allow-eval-data", "-o", out, "-q") == 0
    assert len(read_jsonl(out)) == len(TEST_QUESTIONS)


@pytest.mark.parametrize("prompt", ["stored", "builder"])
def test_each_row_records_its_prompt_mode_and_train_sft_reads_it(prompt: str, paper_dir: Path, tmp_path: Path,  # noqa: F811
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sft.jsonl"
    assert sft("math-hard", "--data", paper_dir, "--prompt", prompt, "-o", out) == 0
    records = read_jsonl(out)
    assert {r["prompt_mode"] for r in records} == {prompt}
    keys = list(records[0])
    assert keys[keys.index("target_source") + 1] == "prompt_mode"
    assert f"; prompt mode {prompt}" in capsys.readouterr().err
    config = config_from_settings("sft", {"data": [str(out)], "output_dir": str(tmp_path / "run"), "data_dir": str(paper_dir),
                                          "eval": {"benchmarks": ["math-hard"], "data": str(paper_dir)}})
    rows = load_rows(config)
    assert rows.prompt_mode == prompt and len(rows.rows) == len(records)
    assert config.eval_config(model="/m", default_prompt=rows.prompt_mode).prompt == prompt


def test_a_files_rows_are_guarded_when_train_sft_reads_them(paper_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """gtalign data sft checks a benchmark name read from the paper's layout; a file's rows are
    built as they are and checked when gtalign train sft reads them, by their data_source."""
    source = tmp_path / "rows.jsonl"
    rows = [paper_row("math-hard", q, "4") for q in [*TEST_QUESTIONS, "What is 8 / 2?"]]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "sft.jsonl"
    assert sft(source, "-o", out, "-q") == 0
    assert len(read_jsonl(out)) == 4
    loaded = load_rows(config_from_settings("sft", {"data": [str(out)], "output_dir": "o", "data_dir": str(paper_dir)}))
    assert len(loaded.rows) == 1 and loaded.dropped_eval == {str(out): 3}
    assert loaded.rows[0]["prompt"][-1]["content"].endswith("What is 8 / 2?")
