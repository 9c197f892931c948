"""The verl adapter against verl's documented reward-function signatures and its own code paths.

The main environment has no verl (it pins transformers below the main stack's version), so the
tests here call the functions exactly as verl's managers do (keyword arguments, ``reward_kwargs``
merged in, loading by file path). `test_verl_reward_managers` then runs this module (``python -m``)
in ``.venv-verl`` (made by ``scripts/setup-verl-env.sh``), where verl's own reward loop (Ray
workers), its legacy NaiveRewardManager and its BatchRewardManager score a tiny DataProto built
from a tokenizer trained here; it is skipped with the reason when that environment is missing.
Judging is done by the deterministic rule judge on rows that need no math process pool.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import socket
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest

from gtalign.integrations import _common
from gtalign.integrations.verl import compute_score, compute_score_async, compute_score_batch
from tests.integrations import _helpers
from tests.integrations._helpers import needs_engine_env, run_driver, run_user_script, train_tokenizer
from tests.integrations.conftest import QuietTime

DRIVER_MARKER = "GTALIGN-VERL-RESULT"


def answer(response: str, action: str = "VQ_CQ") -> str:
    return _helpers.answer(response, thinking=f"The request can be read two ways; {action} fits.",
                           analyze=f"Frontier includes {action}. Choose {action}.")


# verl rows: (data_source, solution_str, ground_truth, extra_info). The rule judge scores the first
# three; the fourth has no safety label (an invalid verdict: unscored); the fifth fails to parse
# (scored 0 without a judge); the sixth names no known data source (unscored).
ROWS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("ambig_qa", answer("Do you mean the 2019 film or the 2004 novel?"), "multipleQAs###film|novel",
     {"single_turn_prompt": "Who wrote Dune?"}),
    ("wildguard", answer("I can't help with that request.", "DQ_DA"), "harmful", {}),
    ("ambig_qa", answer("Paris is the capital of France.", "DQ_DA"), "singleAnswer###Paris",
     {"single_turn_prompt": "What is the capital of France?"}),
    ("wildguard", answer("Sure, here is how.", "DQ_DA"), "", {}),
    ("math-hard", "The answer is 42.", "42", {}),
    ("no-such-source", answer("Hello."), "x", {}),
]


def core_results(preset: str = "paper") -> list[dict[str, Any]]:
    """What the core scorer says about ROWS, as the adapter should log it."""
    from gtalign.integrations._common import engine_log
    from gtalign.judges._rules import RuleJudge
    from gtalign.reward import RewardScorer, Sample, get_preset

    scorer = RewardScorer(get_preset(preset), RuleJudge())
    results = scorer.score([Sample(ds, text, gt, info) for ds, text, gt, info in ROWS])
    return [{**engine_log(r, -1.0), "reason": r.reason, "preset": preset} for r in results]


def make_tokenizer(folder: str, rows: list[tuple[str, str, str, dict[str, Any]]] = ROWS) -> Any:
    """A tokenizer trained on the responses of ``rows`` (no download), saved to ``folder``."""
    tokenizer = train_tokenizer(text for _, text, _, _ in rows)
    tokenizer.save_pretrained(folder)
    return tokenizer


def make_dataproto(tokenizer: Any, rows: list[tuple[str, str, str, dict[str, Any]]] = ROWS) -> Any:
    """``rows`` as verl's rollout output: left-padded prompts, right-padded responses ending in EOS."""
    import numpy as np
    import torch
    from verl import DataProto

    pad = tokenizer.pad_token_id
    prompts = [tokenizer(f"Question {i}")["input_ids"] for i in range(len(rows))]
    responses = [tokenizer(text)["input_ids"] + [tokenizer.eos_token_id] for _, text, _, _ in rows]
    width_p, width_r = max(map(len, prompts)), max(map(len, responses)) + 3
    prompt_ids = torch.tensor([[pad] * (width_p - len(p)) + p for p in prompts])
    prompt_mask = torch.tensor([[0] * (width_p - len(p)) + [1] * len(p) for p in prompts])
    response_ids = torch.tensor([r + [pad] * (width_r - len(r)) for r in responses])
    response_mask = torch.tensor([[1] * len(r) + [0] * (width_r - len(r)) for r in responses])

    def column(values: list[Any]) -> Any:
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array

    return DataProto.from_dict(
        tensors={
            "prompts": prompt_ids,
            "responses": response_ids,
            "input_ids": torch.cat([prompt_ids, response_ids], dim=1),
            "attention_mask": torch.cat([prompt_mask, response_mask], dim=1),
        },
        non_tensors={
            "data_source": column([ds for ds, _, _, _ in rows]),
            "reward_model": column([{"ground_truth": gt, "style": "rule"} for _, _, gt, _ in rows]),
            "extra_info": column([dict(info) for _, _, _, info in rows]),
        },
    )


def _as_lists(extra: dict[str, Any]) -> dict[str, list[Any]]:
    return {key: [None if v is None else (v if isinstance(v, str) else float(v)) for v in list(values)]
            for key, values in extra.items()}


def drive_verl() -> dict[str, Any]:
    """Score ROWS through verl's own managers; run inside .venv-verl (see the module doc)."""
    import ray
    import verl
    from omegaconf import OmegaConf
    from verl.experimental.reward_loop import RewardLoopManager
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.reward import extract_reward, get_custom_reward_fn
    from verl.utils.ray_utils import get_event_loop
    from verl.workers.reward_manager import BatchRewardManager, NaiveRewardManager

    import gtalign.integrations.verl as adapter

    folder = tempfile.mkdtemp(prefix="gtalign-verl-tok-")
    tokenizer = make_tokenizer(folder)
    config = OmegaConf.load(Path(verl.__file__).parent / "trainer" / "config" / "_generated_ppo_trainer.yaml")
    config.actor_rollout_ref.model.path = folder
    config.reward.num_workers = 1
    kwargs = {"preset": "paper", "judge": "rule", "unscored_score": -1.0}

    def use(path: str, name: str, reward_kwargs: dict[str, Any] = kwargs) -> None:
        fn = config.reward.custom_reward_function
        fn.path, fn.name, fn.reward_kwargs = path, name, dict(reward_kwargs)

    out: dict[str, Any] = {"verl": verl.__version__, "expected": core_results()}

    # verl 0.9's training path: RewardLoopManager -> Ray RewardLoopWorker -> naive manager -> async fn.
    use("pkg://gtalign.integrations.verl", "compute_score_async")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        reward_tensor, extra = extract_reward(RewardLoopManager(config).compute_rm_score(make_dataproto(tokenizer)))
    finally:
        ray.shutdown()
    out["reward_loop_async"] = {"scores": reward_tensor.sum(-1).tolist(), "extra": _as_lists(extra)}

    # The same worker in-process, with the sync function loaded from this file's path.
    use(adapter.__file__, "compute_score")
    worker = RewardLoopWorker(config)
    rows = get_event_loop().run_until_complete(worker.compute_score_batch(make_dataproto(tokenizer)))
    out["reward_loop_sync"] = {
        "scores": [row["reward_score"] for row in rows],
        "extra": _as_lists({k: [row["reward_extra_info"][k] for row in rows] for k in rows[0]["reward_extra_info"]}),
        "same_keys": all(row["reward_extra_info"].keys() == rows[0]["reward_extra_info"].keys() for row in rows),
    }

    # Legacy managers: NaiveRewardManager (one row per call) and BatchRewardManager (the batch form).
    naive = NaiveRewardManager(tokenizer, num_examine=0, compute_score=get_custom_reward_fn(config))
    result = naive(make_dataproto(tokenizer), return_dict=True)
    out["legacy_naive"] = {"scores": result["reward_tensor"].sum(-1).tolist(), "extra": _as_lists(result["reward_extra_info"])}
    use(adapter.__file__, "compute_score_batch")
    batch = BatchRewardManager(tokenizer, num_examine=0, compute_score=get_custom_reward_fn(config))
    result = batch(make_dataproto(tokenizer), return_dict=True)
    out["legacy_batch"] = {"scores": result["reward_tensor"].sum(-1).tolist(), "extra": _as_lists(result["reward_extra_info"])}
    return out


KWARGS = {"judge": "rule", "unscored_score": -1.0}


@pytest.fixture(scope="module")
def expected() -> list[dict[str, Any]]:
    return core_results()


def verl_single(fn: Any = compute_score, **reward_kwargs: Any) -> list[dict[str, Any]]:
    """Call ``fn`` as verl's NaiveRewardManager does: keywords, extra_info a dict, kwargs merged."""
    return [fn(data_source=ds, solution_str=text, ground_truth=gt, extra_info=dict(info), **reward_kwargs)
            for ds, text, gt, info in ROWS]


def assert_rows_match(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(got) == len(expected)
    for row, want in zip(got, expected):
        assert row.keys() == want.keys()
        for key, value in want.items():
            assert row[key] == (pytest.approx(value) if isinstance(value, float) else value), key


def test_single_row_form_matches_the_core_scorer(expected: list[dict[str, Any]]) -> None:
    got = verl_single(**KWARGS)
    assert_rows_match(got, expected)
    assert [row["unscored"] for row in got] == [0.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    assert got[3]["judge_failed"] == 1.0 and got[3]["score"] == -1.0 and "judge" in got[3]["reason"]
    assert got[4]["score"] == 0.0 and got[4]["unscored"] == 0.0 and "parse failure" in got[4]["reason"]
    assert got[5]["judge_failed"] == 0.0 and "data_source" in got[5]["reason"]


def test_every_row_has_the_same_keys_and_a_float_score() -> None:
    got = verl_single(**KWARGS)
    assert {tuple(row) for row in got} == {(*_common.LOG_KEYS, "reason", "preset")}
    assert all(isinstance(row["score"], float) for row in got)


def test_unscored_rows_get_the_default_fallback_zero() -> None:
    row = compute_score("wildguard", answer("Sure."), "", {}, judge="rule")
    assert row["score"] == 0.0 and row["unscored"] == 1.0 and row["user_reward"] is None


def test_async_form_is_awaited_like_verls_reward_loop(expected: list[dict[str, Any]]) -> None:
    async def run() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*[
            compute_score_async(data_source=ds, solution_str=text, ground_truth=gt, extra_info=dict(info), **KWARGS)
            for ds, text, gt, info in ROWS
        ]))

    assert asyncio.iscoroutinefunction(compute_score_async)
    assert_rows_match(asyncio.run(run()), expected)


def test_sync_form_works_inside_a_running_event_loop(expected: list[dict[str, Any]]) -> None:
    async def run() -> list[dict[str, Any]]:
        return verl_single(**KWARGS)

    assert_rows_match(asyncio.run(run()), expected)


def test_batch_form_matches_batch_reward_manager_call(expected: list[dict[str, Any]]) -> None:
    got = compute_score_batch(
        data_sources=[r[0] for r in ROWS], solution_strs=[r[1] for r in ROWS],
        ground_truths=[r[2] for r in ROWS], extra_infos=[dict(r[3]) for r in ROWS], **KWARGS,
    )
    assert_rows_match(got, expected)


def test_batch_form_rejects_ragged_columns() -> None:
    with pytest.raises(ValueError, match="must be equal"):
        compute_score_batch(["ambig_qa"], ["a", "b"], ["x"], None)


def test_batch_normalising_preset_only_in_batch_form() -> None:
    rows = compute_score_batch([r[0] for r in ROWS], [r[1] for r in ROWS], [r[2] for r in ROWS],
                               [dict(r[3]) for r in ROWS], preset="paper-ablation", **KWARGS)
    # Rows 0 and 2 are the only scored ambig_qa rows: two different scores z-score to -1 and +1.
    assert sorted(rows[i]["score"] for i in (0, 2)) == pytest.approx([-1.0, 1.0], abs=1e-3)
    with pytest.raises(ValueError, match="compute_score_batch"):
        compute_score("ambig_qa", ROWS[0][1], ROWS[0][2], {}, preset="paper-ablation", judge="rule")


def test_configuration_from_environment_then_reward_kwargs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GTALIGN_JUDGE", "rule")
    monkeypatch.setenv("GTALIGN_UNSCORED_SCORE", "-2.5")
    monkeypatch.setenv("GTALIGN_PRESET", "paper-user")
    row = compute_score("wildguard", answer("Sure."), "", {})
    assert row["score"] == -2.5 and row["unscored"] == 1.0
    scored = compute_score(*ROWS[0][:3], dict(ROWS[0][3]))
    assert scored["score"] == pytest.approx(scored["user_reward"])
    overridden = compute_score(*ROWS[0][:3], dict(ROWS[0][3]), preset="paper-llm", unscored_score=0.5)
    assert overridden["score"] == pytest.approx(overridden["llm_reward"])


def test_bad_fallback_is_refused_with_the_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GTALIGN_UNSCORED_SCORE", "nan")
    with pytest.raises(ValueError, match="finite"):
        compute_score(*ROWS[0][:3], {})


def test_verls_own_kwargs_pass_quietly_and_typos_warn() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compute_score(*ROWS[0][:3], {}, reward_router_address=None, reward_model_tokenizer=None, **KWARGS)
    assert not [w for w in caught if "ignores" in str(w.message)]
    with pytest.warns(UserWarning, match="presett"):
        compute_score(*ROWS[0][:3], {}, presett="paper", **KWARGS)


def verl_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gtalign.integrations.verl" and r.levelno == logging.WARNING]


def test_per_row_calls_log_one_warning_per_batch(caplog: pytest.LogCaptureFixture, quiet_time: QuietTime) -> None:
    caplog.set_level(logging.WARNING, logger="gtalign.integrations.verl")
    verl_single(**KWARGS)
    assert verl_warnings(caplog) == []  # rows keep coming: the batch is not over
    quiet_time.pass_quiet_time()
    [warning] = verl_warnings(caplog)
    assert "2 of 6 rows unscored, no usable judge verdict on 1" in warning and "unscored_score=-1" in warning
    assert "safety needs JudgeRequest.label" in warning  # the first reason
    quiet_time.pass_quiet_time()
    assert len(verl_warnings(caplog)) == 1


def test_concurrent_rows_of_the_reward_loop_log_one_warning(caplog: pytest.LogCaptureFixture,
                                                            quiet_time: QuietTime) -> None:
    caplog.set_level(logging.WARNING, logger="gtalign.integrations.verl")

    async def one_batch() -> None:
        await asyncio.gather(*[
            compute_score_async(data_source=ds, solution_str=text, ground_truth=gt, extra_info=dict(info), **KWARGS)
            for ds, text, gt, info in ROWS
        ])

    asyncio.run(one_batch())
    quiet_time.pass_quiet_time()
    asyncio.run(one_batch())
    quiet_time.pass_quiet_time()
    warnings_logged = verl_warnings(caplog)
    assert len(warnings_logged) == 2 and all("2 of 6 rows unscored" in w for w in warnings_logged)


def test_the_next_batch_ends_the_previous_one_when_no_timer_ran(caplog: pytest.LogCaptureFixture,
                                                                quiet_time: QuietTime) -> None:
    caplog.set_level(logging.WARNING, logger="gtalign.integrations.verl")
    verl_single(**KWARGS)
    quiet_time.now += 5.0  # a training step later; the timer has not fired
    compute_score(*ROWS[0][:3], dict(ROWS[0][3]), **KWARGS)
    [warning] = verl_warnings(caplog)
    assert "2 of 6 rows unscored" in warning


def test_batch_form_logs_one_warning_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gtalign.integrations.verl")
    compute_score_batch([r[0] for r in ROWS], [r[1] for r in ROWS], [r[2] for r in ROWS], [dict(r[3]) for r in ROWS],
                        **KWARGS)
    [warning] = verl_warnings(caplog)
    assert "2 of 6 rows unscored, no usable judge verdict on 1" in warning


def test_scored_batches_log_nothing(caplog: pytest.LogCaptureFixture, quiet_time: QuietTime) -> None:
    caplog.set_level(logging.WARNING, logger="gtalign.integrations.verl")
    for ds, text, gt, info in ROWS[:3]:
        compute_score(ds, text, gt, dict(info), **KWARGS)
    quiet_time.pass_quiet_time()
    assert verl_warnings(caplog) == []


def refused_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_reward_kwargs_set_the_llm_judges_retries_and_timeouts(caplog: pytest.LogCaptureFixture,
                                                               quiet_time: QuietTime) -> None:
    caplog.set_level(logging.WARNING, logger="gtalign.integrations.verl")
    reward_kwargs = {"judge": refused_url(), "judge_model": "judge-model", "judge_max_retries": 0,
                     "judge_total_timeout": 5, "judge_attempt_timeout": "2.5"}
    row = compute_score(*ROWS[0][:3], dict(ROWS[0][3]), **reward_kwargs)
    assert row["unscored"] == 1.0 and row["judge_failed"] == 1.0 and row["score"] == 0.0
    judge = _common.scorer_for(_common.AdapterConfig.resolve(**reward_kwargs)).judge
    assert type(judge).__name__ == "LLMJudge"
    assert (judge.config.max_retries, judge.config.total_timeout, judge.config.attempt_timeout) == (0, 5.0, 2.5)
    quiet_time.pass_quiet_time()
    [warning] = verl_warnings(caplog)
    assert "1 of 1 rows unscored, no usable judge verdict on 1" in warning


MATH_ANSWER = answer("6 * 7 = 42, so the answer is $\\boxed{42}$.", "DQ_DA")

NO_GUARD_SCRIPT = """
    import json
    import sys

    from gtalign.integrations.verl import compute_score

    with open(sys.argv[1], "a") as runs:
        runs.write("ran\\n")
    judged = compute_score(data_source="math-hard", solution_str=COMPLETION, ground_truth="42", extra_info={},
                           judge="rule")
    print("RESULT " + json.dumps(judged))
"""


def test_a_script_without_a_main_guard_gets_math_scored_by_the_rule_judge(tmp_path: Path) -> None:
    row, runs = run_user_script(tmp_path, NO_GUARD_SCRIPT.replace("COMPLETION", json.dumps(MATH_ANSWER)))
    given = compute_score("math-hard", MATH_ANSWER, "42", {"judge_verdict": 1}, judge="rule")
    assert row["unscored"] == 0.0 and row["judge_failed"] == 0.0, row["reason"]
    assert row["score"] == pytest.approx(given["score"]) and row["score"] > 0
    assert runs == ["ran"]


def test_loads_from_its_file_path_as_verl_does(expected: list[dict[str, Any]], quiet_time: QuietTime) -> None:
    import gtalign.integrations.verl as adapter

    spec = importlib.util.spec_from_file_location("custom_module_test", adapter.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ROW_REPORT = quiet_time.report(module.logger, "verl")
    assert_rows_match(verl_single(module.compute_score, **KWARGS), expected)


@pytest.mark.engine
@needs_engine_env
def test_verl_reward_managers(expected: list[dict[str, Any]]) -> None:
    proc, out = run_driver("tests.integrations.test_verl", DRIVER_MARKER, timeout=240,
                           RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    assert proc.returncode == 0 and out is not None, f"verl driver failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert_rows_match(out["expected"], expected)
    want_scores = [row["score"] for row in expected]
    for path in ("reward_loop_async", "reward_loop_sync", "legacy_naive", "legacy_batch"):
        got = out[path]
        assert got["scores"] == pytest.approx(want_scores), path
        rows = [{key: values[i] for key, values in got["extra"].items()} for i in range(len(ROWS))]
        assert_rows_match(rows, expected)
    assert out["reward_loop_sync"]["same_keys"]


if __name__ == "__main__":
    print(f"{DRIVER_MARKER} " + json.dumps(drive_verl()))
    sys.exit(0)
