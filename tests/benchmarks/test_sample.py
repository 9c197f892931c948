"""The shipped `sample`: enough short rows per task, in the paper's row shape, with ground truths
every task's scale accepts, prompts from gtalign's builder, and rows both presets can score."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from gtalign.benchmarks import BenchmarkRow, get_benchmark, load_benchmark
from gtalign.game import PayoffMatrix
from gtalign.judges import RuleJudge
from gtalign.judges._rules import check_math
from gtalign.protocol import build_messages, render_answer
from gtalign.reward import RewardScorer
from gtalign.reward._tasks import ambiguity_label

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_FILE = Path(str(get_benchmark("sample").path))
MINIMUM = {"math-hard": 6, "medium": 6, "ambig_qa": 6, "wildguard": 6, "minerva": 3, "abg-coqa": 3, "advbench": 3}
REFRESH = "run: python -m tests.benchmarks.refresh_sample"


def raw_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAMPLE_FILE.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def sample() -> tuple[BenchmarkRow, ...]:
    benchmark = load_benchmark("sample")
    assert benchmark.skipped == () and benchmark.warnings == ()
    return benchmark.rows


def test_counts_per_task(sample: tuple[BenchmarkRow, ...]) -> None:
    counts = Counter(row.data_source for row in sample)
    assert set(counts) == set(MINIMUM)
    assert all(counts[task] >= n for task, n in MINIMUM.items()), counts
    assert len(sample) == get_benchmark("sample").rows
    assert [row.id for row in sample] == [f"sample/{i}" for i in range(len(sample))]


def test_rows_have_the_papers_column_shape_and_short_questions() -> None:
    for index, row in enumerate(raw_rows()):
        assert set(row) == {"prompt", "data_source", "reward_model", "extra_info"}, index
        assert isinstance(row["reward_model"]["ground_truth"], str) and row["reward_model"]["ground_truth"].strip()
        question = row["extra_info"]["single_turn_prompt"]
        if row["data_source"] == "abg-coqa":  # the paper's shape: the passage and earlier turns in the prompt
            assert set(row["extra_info"]) == {"ground_truth", "single_turn_prompt"}
            assert row["extra_info"]["ground_truth"] == row["reward_model"]["ground_truth"]
            question = question.rpartition("Question:\n")[2]
            assert question and len(row["extra_info"]["single_turn_prompt"].split()) < 120, index
        else:
            assert row["extra_info"]["chat_history"] == [{"role": "user", "content": question}], index
        assert len(question.split()) <= 30 and question.count(". ") <= 1, (index, question)


def test_stored_prompts_come_from_gtalign_builder() -> None:
    for index, row in enumerate(raw_rows()):
        assert row["prompt"] == build_messages(row["extra_info"]["single_turn_prompt"]), f"row {index}: {REFRESH}"


def test_labels_mix_both_classes(sample: tuple[BenchmarkRow, ...]) -> None:
    labels = {task: Counter(row.label for row in sample if row.data_source == task) for task in MINIMUM}
    assert set(labels["ambig_qa"]) == {"ambiguous", "clear"} and set(labels["abg-coqa"]) == {"ambiguous", "clear"}
    assert set(labels["wildguard"]) == {"harmful", "unharmful"}
    assert set(labels["advbench"]) == {"harmful"}
    assert all(set(labels[task]) == {""} for task in ("math-hard", "medium", "minerva"))


def test_ground_truths_are_valid_on_their_tasks_scale(sample: tuple[BenchmarkRow, ...]) -> None:
    for row in sample:
        truth = row.ground_truth
        if row.data_source in ("math-hard", "minerva"):
            assert check_math(f"The answer is $\\boxed{{{truth}}}$.", truth).correct is True, truth
        elif row.data_source == "medium":
            assert 60 <= len(truth.split()) <= 160, row.id
        elif row.data_source == "ambig_qa":
            label, reference = ambiguity_label(truth)
            assert label in ("ambiguous", "clear") and reference.strip(), row.id
            if label == "ambiguous":
                assert reference.startswith("There are multiple meanings of the question.Meaning 0: ")
                assert "; Answer 0: " in reference and "Meaning 1: " in reference
        elif row.data_source == "abg-coqa":
            assert truth in ("ambiguous", "non_ambiguous") and ambiguity_label(truth)[0]
        elif row.data_source == "wildguard":
            assert truth in ("harmful", "unharmful")
        else:  # advbench: only the attack's target sentence, never any content
            assert truth.startswith("Sure, here is ") and len(truth.split()) <= 20 and "\n" not in truth


MATRIX = PayoffMatrix.from_dict(
    {
        "DQ_AQ": {"LLM": 2.0, "user": 2.5},
        "DQ_CQ": {"LLM": 1.0, "user": 1.5},
        "DQ_DA": {"LLM": 3.0, "user": 3.5},
        "VQ_AQ": {"LLM": 2.5, "user": 2.0},
        "VQ_CQ": {"LLM": 2.0, "user": 1.0},
        "VQ_DA": {"LLM": 1.0, "user": 0.5},
    }
)


def answer(row: BenchmarkRow) -> str:
    """A hand-written four-block answer fitting the row's task."""
    if row.data_source in ("math-hard", "minerva"):
        response = f"Working it through step by step gives the final answer $\\boxed{{{row.ground_truth}}}$."
    elif row.data_source == "medium":
        response = row.ground_truth
    elif row.label == "harmful":
        response = "I can't help with that, because it could hurt someone. I can help you write a respectful message instead."
    else:
        response = "Here is a direct answer to your question, based on what you asked."
    return render_answer(
        "The question is definite, so a direct answer saves the user's time. A clarifying question would add effort for little gain.",
        MATRIX,
        "The Pareto frontier is DQ_DA alone, since it is best for both. Chosen key: DQ_DA, the largest total welfare.",
        response,
    )


@pytest.mark.parametrize("preset", ["paper", "robust"])
def test_paper_and_robust_presets_score_an_answer_to_every_row(sample: tuple[BenchmarkRow, ...], preset: str) -> None:
    with RuleJudge(math_timeout=30) as judge:
        results = RewardScorer(preset, judge).score([row.to_sample(answer(row)) for row in sample])
    for row, result in zip(sample, results, strict=True):
        assert result.scored and result.score is not None and result.score > 0, (row.id, result.reason)
        assert result.judge_status == "ok", (row.id, result.reason)
        if row.data_source in ("math-hard", "minerva"):
            assert result.judge_value == 1.0, row.id


def test_sample_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gtalign"]
    relative = SAMPLE_FILE.relative_to(ROOT / "src" / "gtalign").as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


def test_sample_is_not_taken_from_the_papers_data(paper_data: Path) -> None:
    ours = {row["extra_info"]["single_turn_prompt"].strip().lower() for row in raw_rows()}
    truths = {row["reward_model"]["ground_truth"] for row in raw_rows() if len(row["reward_model"]["ground_truth"]) > 20}
    for file in sorted(paper_data.rglob("*.parquet")):
        table = pq.read_table(file, columns=["extra_info", "reward_model"]).to_pylist()
        theirs = {str((r["extra_info"] or {}).get("single_turn_prompt") or "").strip().lower() for r in table}
        assert not ours & theirs, file
        assert not truths & {r["reward_model"]["ground_truth"] for r in table}, file
