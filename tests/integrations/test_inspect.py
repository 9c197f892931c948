"""gtalign inside inspect_ai: the benchmark tasks and the welfare scorer, run through inspect's own
``eval()`` with its mock model scripted to answer every prompt with a known completion.

The expected numbers come from `RewardScorer` on the same completions, so the tests check that the
scorer hands inspect exactly what gtalign computes, and that inspect's metrics are the means of it.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import Task, list_tasks  # noqa: E402
from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai._util.registry import registry_info  # noqa: E402
from inspect_ai.dataset import Sample  # noqa: E402
from inspect_ai.log import EvalLog  # noqa: E402
from inspect_ai.model import (  # noqa: E402
    ChatMessage,
    ChatMessageSystem,
    ChatMessageUser,
    GenerateConfig,
    ModelOutput,
    ModelUsage,
    get_model,
)
from inspect_ai.scorer import Target  # noqa: E402
from inspect_ai.solver import TaskState  # noqa: E402

import gtalign.integrations.inspect as gi  # noqa: E402
from gtalign.benchmarks import BenchmarkRow, load_benchmark  # noqa: E402
from gtalign.judges import RuleJudge  # noqa: E402
from gtalign.reward import JudgeRequest, RewardResult, RewardScorer, Verdict, get_preset  # noqa: E402
from tests.integrations._helpers import answer  # noqa: E402

SOURCES = ["math-hard", "wildguard"]
LIMIT = 8  # the sample's six math-hard rows and its first two wildguard rows (one unharmful, one harmful)

# What the scripted model answers, by row id: right and wrong answers, a refusal, and two broken formats.
COMPLETIONS = {
    "sample/0": answer(r"Adding the terms gives \boxed{91}."),
    "sample/1": answer(r"I get \boxed{47}."),  # wrong: the ground truth is 48
    "sample/2": "The answer is 4.",  # no blocks at all: the paper preset scores 0 everywhere
    "sample/3": "Sure! " + answer(r"So the answer is \boxed{2}."),  # text before <thinking>: format 0, still judged
    "sample/4": answer(r"The result is \boxed{\frac{16}{3}}."),
    "sample/5": answer(r"That is \boxed{5\sqrt{2}}."),
    "sample/12": answer("Here is a practical plan you can follow step by step, with the reasons behind each step."),
    "sample/13": answer("I can't help with that."),
}
MALFORMED = ("sample/2", "sample/3")
SAFETY = ("sample/12", "sample/13")


class SafetyJudgeDown:
    """The rule judge, except that every safety request fails as an unreachable server would."""

    name = "safety-down"

    def __init__(self, rules: RuleJudge) -> None:
        self.rules = rules

    async def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        ruled = iter(await self.rules.judge([r for r in requests if r.task != "safety"]))
        return [
            Verdict.failure("failed", "judge server unreachable (test)", judge=self.name) if r.task == "safety" else next(ruled)
            for r in requests
        ]


@pytest.fixture(scope="module")
def rules() -> Iterator[RuleJudge]:
    judge = RuleJudge()
    yield judge
    judge.close()


@pytest.fixture(scope="module")
def rows() -> dict[str, BenchmarkRow]:
    loaded = load_benchmark("sample", sources=SOURCES, limit=LIMIT)
    found = {row.id: row for row in loaded.rows}
    assert set(found) == set(COMPLETIONS), "the sample benchmark changed: update COMPLETIONS"
    return found


def scripted_model(rows: Mapping[str, BenchmarkRow]) -> Any:
    """inspect's mock model, answering each prompt with its row's completion (by the question asked,
    so the order in which inspect runs the samples does not matter)."""
    by_question = {row.question: COMPLETIONS[row_id] for row_id, row in rows.items()}
    assert len(by_question) == len(rows), "two rows ask the same question"

    def output(input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig) -> ModelOutput:
        result = ModelOutput.from_content("mockllm/model", by_question[input[-1].text])
        # Given usage, so the mock model does not count tokens with tiktoken (which downloads its encoding).
        result.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return result

    return get_model("mockllm/model", custom_outputs=output, memoize=False)


def run(task: Task, rows: Mapping[str, BenchmarkRow], log_dir: Path) -> EvalLog:
    [log] = inspect_eval(task, model=scripted_model(rows), display="none", log_dir=str(log_dir))
    assert log.status == "success", log.error
    return log


def expected(rows: Mapping[str, BenchmarkRow], preset: str, judge: Any) -> dict[str, RewardResult]:
    """gtalign's own results on the same completions."""
    scorer = RewardScorer(get_preset(preset), judge)
    ids = sorted(rows)
    results = scorer.score([rows[i].to_sample(COMPLETIONS[i]) for i in ids])
    return dict(zip(ids, results, strict=True))


def as_value(result: RewardResult) -> dict[str, float]:
    """The score value the scorer should give ``result``: welfare is the utility, or sqrt(U*L) where
    the preset logs none (robust's 0 for a missing response); other missing components are NaN."""
    nan = math.nan
    number = lambda v: nan if v is None else float(v)  # noqa: E731
    welfare = result.utility
    if welfare is None and result.user_reward is not None and result.llm_reward is not None:
        welfare = math.sqrt(result.user_reward * result.llm_reward)
    return {
        "welfare": number(welfare),
        "score": number(result.score),
        "user": number(result.user_reward),
        "llm": number(result.llm_reward),
        "answer": number(result.answer_reward),
        "format": number(result.format),
    }


def same(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k], abs=1e-12) for k in a
    )


def sample_scores(log: EvalLog) -> dict[str, Any]:
    assert log.samples is not None
    return {str(s.id): s.scores["welfare_scorer"] for s in log.samples if s.scores}


def metrics(log: EvalLog) -> dict[str, Any]:
    assert log.results is not None
    return {score.name: score for score in log.results.scores}


_LOGS: dict[str, EvalLog] = {}


@pytest.fixture(scope="module")
def eval_log(rows: dict[str, BenchmarkRow], rules: RuleJudge, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``eval_log(preset)``: one inspect run of the sample rows under that preset, with the rule judge."""

    def get(preset: str) -> EvalLog:
        if preset not in _LOGS:
            task = gi.gtalign_task("sample", sources=SOURCES, limit=LIMIT, preset=preset, judge=rules)
            _LOGS[preset] = run(task, rows, tmp_path_factory.mktemp(f"logs-{preset}"))
        return _LOGS[preset]

    yield get
    _LOGS.clear()


# -- the dataset ---------------------------------------------------------------------------------


def test_each_row_becomes_a_sample_with_its_messages_ground_truth_id_and_labels(rows: dict[str, BenchmarkRow]) -> None:
    task = gi.gtalign_task("sample", sources=SOURCES, limit=LIMIT)
    samples: list[Sample] = list(task.dataset)
    assert [s.id for s in samples] == list(rows)  # source order
    for sample in samples:
        row = rows[str(sample.id)]
        assert isinstance(sample.input, list)
        assert [type(m) for m in sample.input] == [ChatMessageSystem, ChatMessageUser]
        assert [m.text for m in sample.input] == [m["content"] for m in row.messages]
        assert sample.target == row.ground_truth
        assert sample.metadata == {
            "data_source": row.data_source,
            "label": row.label,
            "benchmark": "sample",
            "extra_info": dict(row.extra_info),
        }
    assert task.metadata is not None and task.metadata["gtalign"]["rows"] == LIMIT
    assert {s.metadata["label"] for s in samples if s.metadata and s.metadata["data_source"] == "wildguard"} == {"harmful", "unharmful"}


def test_sources_may_be_given_as_one_comma_separated_string_from_the_command_line() -> None:
    task = gi.gtalign_task("sample", sources="wildguard, advbench")
    assert {s.metadata["data_source"] for s in task.dataset if s.metadata} == {"wildguard", "advbench"}


def test_a_benchmark_with_no_usable_rows_is_an_error_not_an_empty_eval() -> None:
    with pytest.raises(ValueError, match="no usable rows"):
        gi.gtalign_task("sample", sources="no-such-source")


# -- the scorer through inspect's eval() ---------------------------------------------------------


@pytest.mark.parametrize("preset", ["paper", "robust"])
def test_eval_scores_equal_the_reward_scorer_on_the_same_completions(
    preset: str, eval_log: Any, rows: dict[str, BenchmarkRow], rules: RuleJudge
) -> None:
    log = eval_log(preset)
    want = expected(rows, preset, rules)
    got = sample_scores(log)
    assert set(got) == set(want)
    for row_id, result in want.items():
        assert result.scored, f"{row_id}: {result.reason}"
        assert isinstance(got[row_id].value, dict)
        assert same(got[row_id].value, as_value(result)), row_id
        assert got[row_id].metadata["status"] == "scored"
    # inspect's metrics are the means over the rows (and welfare's stderr is reported too).
    table = metrics(log)
    assert set(table) == set(gi.SCORE_KEYS)
    assert set(table["welfare"].metrics) == {"mean", "stderr"}
    for key in gi.SCORE_KEYS:
        values = [as_value(r)[key] for r in want.values() if not math.isnan(as_value(r)[key])]
        assert table[key].metrics["mean"].value == pytest.approx(sum(values) / len(values), abs=1e-12), key
        # A component the preset leaves out (robust logs no answer reward for a missing response)
        # is NaN: inspect leaves it out of that key's metrics and counts it as unscored there.
        assert table[key].scored_samples == len(values)
        assert table[key].unscored_samples == len(want) - len(values)
    assert table["welfare"].metrics["stderr"].value > 0


def test_the_paper_preset_is_not_trivially_zero_and_tells_right_from_wrong(eval_log: Any) -> None:
    got = sample_scores(eval_log("paper"))
    right, wrong = got["sample/0"].value, got["sample/1"].value
    assert right["answer"] == 1.0 and wrong["answer"] == 0.0
    assert right["welfare"] > wrong["welfare"] > 0
    assert right["welfare"] == pytest.approx(math.sqrt(right["user"] * right["llm"]))
    assert right["welfare"] == right["score"]  # the paper's score is its welfare
    assert got["sample/0"].answer == r"Adding the terms gives \boxed{91}."  # the <response> block


def test_a_malformed_answer_scores_format_zero(eval_log: Any) -> None:
    got = sample_scores(eval_log("paper"))
    no_blocks, text_before = got["sample/2"], got["sample/3"]
    # No blocks: the paper's reward is 0 everywhere, a real score (the model's fault), not unscored.
    assert no_blocks.value == {key: 0.0 for key in gi.SCORE_KEYS}
    assert no_blocks.reason == "invalid_response_format"
    assert "parse failure scored 0" in no_blocks.explanation
    assert "missing_block" in no_blocks.explanation  # the parse problems are in the explanation
    # Text before <thinking>: format 0, yet the blocks are read and judged as the paper's code does.
    assert text_before.value["format"] == 0.0
    assert text_before.value["answer"] == 1.0 and text_before.value["welfare"] > 0
    assert text_before.reason == "invalid_response_format"
    assert "text_outside_blocks" in text_before.explanation
    assert got["sample/0"].value["format"] == 1.0 and got["sample/0"].reason is None


def test_a_row_whose_judge_fails_is_unscored_not_zero(rows: dict[str, BenchmarkRow], rules: RuleJudge, tmp_path: Path) -> None:
    judge = SafetyJudgeDown(rules)
    task = gi.gtalign_task("sample", sources=SOURCES, limit=LIMIT, judge=judge)
    log = run(task, rows, tmp_path)
    want = expected(rows, "paper", judge)
    got = sample_scores(log)
    for row_id in SAFETY:
        assert not want[row_id].scored
        score = got[row_id]
        assert isinstance(score.value, float) and math.isnan(score.value)  # inspect's unscored sentinel
        assert score.reason == "grader_failed"
        assert "judge server unreachable (test)" in score.explanation
        assert score.metadata["status"] == "unscored" and score.metadata["judge_status"] == "failed"
        assert score.answer  # the response is still recorded
    # Every metric is over the six scored rows only, and says two were unscored.
    table = metrics(log)
    scored = [as_value(want[i]) for i in sorted(want) if i not in SAFETY]
    for key in gi.SCORE_KEYS:
        assert table[key].scored_samples == len(scored) == 6
        assert table[key].unscored_samples == 2
        mean = sum(v[key] for v in scored) / len(scored)
        assert table[key].metrics["mean"].value == pytest.approx(mean, abs=1e-12), key
    # Counted as 0 instead, the two rows would have pulled the mean welfare down.
    zeroed = sum(v["welfare"] for v in scored) / 8
    assert table["welfare"].metrics["mean"].value > zeroed


# -- the scorer on its own -----------------------------------------------------------------------


async def test_a_sample_without_a_data_source_is_unscored_with_what_to_set() -> None:
    score_fn = gi.welfare_scorer()
    state = TaskState(model="mockllm/model", sample_id=1, epoch=1, input="hi", messages=[])
    state.output = ModelOutput.from_content("mockllm/model", answer("hello"))
    score = await score_fn(state, Target(""))
    assert math.isnan(score.value)
    assert score.reason == "scoring_failed"
    assert "data_source" in score.explanation


async def test_an_unknown_data_source_is_unscored_as_a_scoring_failure() -> None:
    score_fn = gi.welfare_scorer()
    state = TaskState(model="mockllm/model", sample_id=1, epoch=1, input="hi", messages=[], metadata={"data_source": "nope"})
    state.output = ModelOutput.from_content("mockllm/model", answer("hello"))
    score = await score_fn(state, Target("x"))
    assert math.isnan(score.value)
    assert score.reason == "scoring_failed"
    assert "unknown data_source" in score.explanation


async def test_no_judge_leaves_rows_that_need_one_unscored() -> None:
    score_fn = gi.welfare_scorer(judge="none")
    state = TaskState(model="mockllm/model", sample_id=1, epoch=1, input="hi", messages=[], metadata={"data_source": "math-hard"})
    state.output = ModelOutput.from_content("mockllm/model", answer(r"\boxed{1}"))
    score = await score_fn(state, Target("1"))
    assert math.isnan(score.value)
    assert score.reason == "grader_failed"
    assert "no judge configured" in score.explanation


def test_judge_options_are_checked_when_the_scorer_is_built() -> None:
    with pytest.raises(ValueError, match="judge_model"):
        gi.welfare_scorer(judge="rule", judge_model="m")
    with pytest.raises(ValueError, match="needs judge_model"):
        gi.welfare_scorer(judge="http://127.0.0.1:9/v1")
    gi.welfare_scorer(judge="http://127.0.0.1:9/v1", judge_model="m")  # built, not called: no connection
    with pytest.raises(ValueError, match="normalises scores per batch"):
        gi.welfare_scorer(preset="paper-ablation")
    with pytest.raises(Exception, match="nope"):
        gi.welfare_scorer(preset="nope")


# -- registration --------------------------------------------------------------------------------

TASKS = ["gtalign_task", "gtalign_sample", "gtalign_math_hard", "gtalign_medium", "gtalign_wildguard",
         "gtalign_ambig_qa", "gtalign_minerva", "gtalign_abg_coqa", "gtalign_advbench"]


def test_tasks_are_registered_under_the_package_namespace_and_recreatable_by_name() -> None:
    from inspect_ai._eval.registry import task_create
    from inspect_ai.scorer._scorer import scorer_create

    task = gi.gtalign_sample(limit=2)
    assert registry_info(task).name == "gtalign/gtalign_sample"
    assert len(task.dataset) == 2
    # What `inspect eval gtalign/...` and `inspect eval-retry` do: create the task and its scorer by name.
    again = task_create("gtalign/gtalign_task", benchmark="sample", sources="advbench", preset="robust")
    assert {s.metadata["data_source"] for s in again.dataset if s.metadata} == {"advbench"}
    assert registry_info(scorer_create("gtalign/welfare_scorer", preset="robust")).name == "gtalign/welfare_scorer"


def test_every_task_is_found_in_the_module_file_as_inspect_lists_them() -> None:
    module = Path(gi.__file__)
    found = list_tasks(module.name, root_dir=module.parent)
    assert sorted(info.name for info in found) == sorted(TASKS)
    assert set(TASKS) <= set(gi.__all__)


ENTRY_POINT_CHECK = """
from importlib.metadata import EntryPoint
import inspect_ai._util.entrypoints as entrypoints
from inspect_ai._eval.registry import task_create

# The line pyproject declares: [project.entry-points.inspect_ai] gtalign = "gtalign.integrations.inspect"
point = EntryPoint(name="gtalign", value="gtalign.integrations.inspect", group="inspect_ai")
entrypoints.entry_points = lambda group: [point] if group == "inspect_ai" else []
import sys
assert "gtalign.integrations.inspect" not in sys.modules
task = task_create("gtalign/gtalign_sample", limit=1)
print(task.name, len(task.dataset))
"""


def test_the_entry_point_lets_inspect_find_the_tasks_by_name_alone() -> None:
    """In a fresh interpreter, naming ``gtalign/gtalign_sample`` loads the module through the
    ``inspect_ai`` entry point named ``gtalign`` (patched in, as installing the package declares it)."""
    done = subprocess.run([sys.executable, "-c", ENTRY_POINT_CHECK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["gtalign/gtalign_sample", "1"]
