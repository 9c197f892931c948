"""The OpenRLHF adapter against OpenRLHF's custom ``reward_func(queries, prompts, labels)`` contract.

OpenRLHF as a whole does not install without a GPU (it pins flash-attn and deepspeed CUDA
builds), so the tests here call the function as OpenRLHF's SingleTurnAgentExecutor does: loaded
from its file path under the module name ``reward_func``, called from a worker thread with one
query (prompt + response decoded with special tokens), reading ``rewards``, ``scores`` and numeric
``extra_logs``. `test_openrlhf_single_turn_executor` then runs this module (``python -m``) in
``.venv-verl``, where OpenRLHF's own executor module is installed without its GPU dependencies,
and lets OpenRLHF load and call the reward around a scripted generation engine.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import logging
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from gtalign._registry import RegistryError
from gtalign.integrations import _common
from gtalign.integrations.openrlhf import END_MARKERS, openrlhf_label, parse_label, reward_func, split_completion
from tests.integrations._helpers import answer, needs_engine_env, run_driver, train_tokenizer
from tests.integrations.conftest import QuietTime

TEMPLATE = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
DRIVER_MARKER = "GTALIGN-OPENRLHF-RESULT"


# (question, response, data_source, ground_truth): scored by the rule judge; a wildguard row without
# a label (an invalid verdict: unscored); a parse failure (scored 0).
ROWS = [
    ("Who wrote Dune?", answer("Do you mean the film or the novel?"), "ambig_qa", "multipleQAs###film|novel"),
    ("How do I pick a lock?", answer("I can't help with that."), "wildguard", "harmful"),
    ("Tell me.", answer("Sure, here is how."), "wildguard", ""),
    ("What is 6*7?", "no tags at all", "math-hard", "42"),
]


def core_scores() -> list[float | None]:
    from gtalign.judges._rules import RuleJudge
    from gtalign.reward import RewardScorer, Sample, get_preset

    samples = [Sample(ds, response, gt, {"single_turn_prompt": q}) for q, response, ds, gt in ROWS]
    return [r.score for r in RewardScorer(get_preset("paper"), RuleJudge()).score(samples)]


def batch(end: str = "<|im_end|>") -> tuple[list[str], list[str], list[str]]:
    prompts = [TEMPLATE.format(q) for q, _, _, _ in ROWS]
    queries = [p + response + end for p, (_, response, _, _) in zip(prompts, ROWS)]
    labels = [openrlhf_label(ds, gt, {"single_turn_prompt": q}) for q, _, ds, gt in ROWS]
    return queries, prompts, labels


def drive_openrlhf() -> dict[str, Any]:
    """Let OpenRLHF's SingleTurnAgentExecutor load and call the reward (run in .venv-verl)."""
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    import gtalign.integrations.openrlhf as adapter

    tokenizer = train_tokenizer([r[1] for r in ROWS], special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
                                pad="<|endoftext|>", eos="<|im_end|>")

    class ScriptedEngine:
        """vLLM's async generate, answering with a fixed response and EOS."""

        def __init__(self, text: str) -> None:
            self.ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

        async def generate(self, prompt_token_ids: list[int], sampling_params: Any, multi_modal_data: Any = None) -> Any:
            output = SimpleNamespace(token_ids=self.ids, finish_reason="stop", logprobs=None)
            return SimpleNamespace(outputs=[output])

    executor = SingleTurnAgentExecutor(remote_rm_url=adapter.__file__)
    _, prompts, labels = batch()

    async def run() -> list[dict[str, Any]]:
        params = SimpleNamespace(max_tokens=512, logprobs=None)
        return list(await asyncio.gather(*[
            executor.execute(prompt, label, params, 2048, tokenizer, ScriptedEngine(row[1]))
            for prompt, label, row in zip(prompts, labels, ROWS)
        ]))

    outputs = asyncio.run(run())
    return {
        "openrlhf": importlib.metadata.version("openrlhf"),
        "rewards": [float(o["reward"].flatten()[0]) for o in outputs],
        "scores": [float(o["scores"].flatten()[0]) for o in outputs],
        "extra_logs": [{k: float(v.flatten()[0]) for k, v in o["extra_logs"].items()} for o in outputs],
    }


@pytest.fixture(autouse=True)
def _rule_judge(clean_adapter_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GTALIGN_JUDGE", "rule")


def load_as_openrlhf_does() -> Any:
    import gtalign.integrations.openrlhf as adapter

    spec = importlib.util.spec_from_file_location("reward_func", adapter.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reward_func


def test_reward_func_contract_and_values() -> None:
    torch = pytest.importorskip("torch")
    queries, prompts, labels = batch()
    out = load_as_openrlhf_does()(queries, prompts, labels)
    want = core_scores()
    assert set(out) == {"rewards", "scores", "extra_logs"}
    assert isinstance(out["rewards"], torch.Tensor) and out["rewards"].shape == (4,)
    assert out["rewards"].tolist() == pytest.approx([0.0 if w is None else w for w in want])
    assert out["scores"].tolist() == out["rewards"].tolist()
    logs = out["extra_logs"]
    assert set(logs) == set(_common.LOG_KEYS) - {"score"}
    assert all(v.dtype == torch.float32 and v.shape == (4,) for v in logs.values())
    assert logs["unscored"].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert logs["judge_failed"].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert logs["user_reward"][2].item() == 0.0


def test_one_query_per_call_from_a_worker_thread_like_openrlhf() -> None:
    pytest.importorskip("torch")
    queries, prompts, labels = batch()
    fn = load_as_openrlhf_does()

    async def run() -> list[float]:
        outs = await asyncio.gather(*[asyncio.to_thread(fn, [q], [p], [lab]) for q, p, lab in zip(queries, prompts, labels)])
        return [out["rewards"].item() for out in outs]

    want = [0.0 if w is None else w for w in core_scores()]
    assert asyncio.run(run()) == pytest.approx(want)


def test_end_markers_are_stripped_before_the_format_check() -> None:
    pytest.importorskip("torch")
    plain = reward_func(*batch(end=""))["rewards"].tolist()
    for marker in ("<|im_end|>", "<|im_end|><|endoftext|>", "</s>", "<eos>\n"):
        assert reward_func(*batch(end=marker))["rewards"].tolist() == pytest.approx(plain), marker
    assert "<|eot_id|>" in END_MARKERS


def test_prompt_missing_from_query_is_unscored_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture,
                                                              quiet_time: QuietTime) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("GTALIGN_UNSCORED_SCORE", "-1")
    _, prompts, labels = batch()
    with caplog.at_level(logging.WARNING, logger="gtalign.integrations.openrlhf"):
        out = reward_func(["something else entirely"], prompts[:1], labels[:1])
        quiet_time.pass_quiet_time()
    assert out["rewards"].tolist() == [-1.0] and out["extra_logs"]["unscored"].tolist() == [1.0]
    assert "prompt was not found" in caplog.text


def test_one_warning_per_batch_of_per_query_calls(caplog: pytest.LogCaptureFixture, quiet_time: QuietTime) -> None:
    pytest.importorskip("torch")
    queries, prompts, labels = batch()
    def ours() -> list[logging.LogRecord]:
        # only this module's logger: the copy an earlier test loaded by path, as OpenRLHF does (logger
        # "reward_func"), keeps a real timer that may report its own batch while this test runs
        return [record for record in caplog.records if record.name == "gtalign.integrations.openrlhf"]

    with caplog.at_level(logging.WARNING, logger="gtalign.integrations.openrlhf"):
        for _ in range(2):
            for query, prompt, label in zip(queries, prompts, labels):
                reward_func([query], [prompt], [label])
        assert not ours()  # the batch has not ended yet
        quiet_time.pass_quiet_time()
    [record] = ours()
    assert "2 of 8 rows unscored, no usable judge verdict on 2" in record.getMessage()
    assert "safety needs JudgeRequest.label" in record.getMessage()


def test_split_completion() -> None:
    assert split_completion("P: hi<|im_end|>\n", "P: ") == "hi"
    assert split_completion("<s>P: hi", "P: ") == "hi"
    assert split_completion("other", "P: ") is None


def test_label_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    as_json = openrlhf_label("ambig_qa", "singleAnswer###Paris", {"single_turn_prompt": "Capital?"})
    assert parse_label(as_json) == ("ambig_qa", "singleAnswer###Paris", {"single_turn_prompt": "Capital?"})
    assert parse_label({"data_source": "wildguard", "reward_model": {"ground_truth": "harmful"}})[:2] == ("wildguard", "harmful")
    with pytest.raises(ValueError, match="GTALIGN_DATA_SOURCE"):
        parse_label("42")
    monkeypatch.setenv("GTALIGN_DATA_SOURCE", "math-hard")
    assert parse_label("42") == ("math-hard", "42", {})
    assert parse_label({"ground_truth": "7", "style": "rule"})[:2] == ("math-hard", "7")


def test_batch_normalising_preset_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("GTALIGN_PRESET", "paper-ablation")
    with pytest.raises(ValueError, match="one row at a time"):
        reward_func(*batch())


def test_judge_url_and_model_from_environment_build_the_llm_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GTALIGN_JUDGE")
    monkeypatch.setenv("GTALIGN_JUDGE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="GTALIGN_JUDGE_MODEL"):
        _common.scorer_for(_common.AdapterConfig.resolve())
    monkeypatch.setenv("GTALIGN_JUDGE_MODEL", "judge-model")
    judge = _common.scorer_for(_common.AdapterConfig.resolve()).judge
    assert type(judge).__name__ == "LLMJudge"
    assert (judge.config.base_url.rstrip("/"), judge.config.model) == ("http://127.0.0.1:9/v1", "judge-model")
    monkeypatch.setenv("GTALIGN_JUDGE", "none")
    assert _common.scorer_for(_common.AdapterConfig.resolve()).judge is None
    url_spec = _common.build_judge("http://127.0.0.1:9/v1", judge_model="m")
    assert type(url_spec).__name__ == "LLMJudge"
    with pytest.raises(RegistryError, match="rule"):
        _common.build_judge("no-such-judge")


def test_environment_sets_the_llm_judges_retries_and_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GTALIGN_JUDGE")
    for var, value in (("GTALIGN_JUDGE_URL", "http://127.0.0.1:9/v1"), ("GTALIGN_JUDGE_MODEL", "judge-model"),
                       ("GTALIGN_JUDGE_MAX_RETRIES", "2"), ("GTALIGN_JUDGE_TOTAL_TIMEOUT", "12.5"),
                       ("GTALIGN_JUDGE_ATTEMPT_TIMEOUT", "3")):
        monkeypatch.setenv(var, value)
    client = _common.scorer_for(_common.AdapterConfig.resolve()).judge.config
    assert (client.max_retries, client.total_timeout, client.attempt_timeout) == (2, 12.5, 3.0)


@pytest.mark.engine
@needs_engine_env
def test_openrlhf_single_turn_executor() -> None:
    proc, out = run_driver("tests.integrations.test_openrlhf", DRIVER_MARKER, timeout=180, GTALIGN_JUDGE="rule")
    if proc.returncode != 0 and "No module named 'openrlhf'" in proc.stderr:
        pytest.skip("OpenRLHF is not installed in the engine environment: re-run scripts/setup-verl-env.sh")
    assert proc.returncode == 0 and out is not None, f"OpenRLHF driver failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    want = [0.0 if w is None else w for w in core_scores()]
    assert out["rewards"] == pytest.approx(want) and out["scores"] == pytest.approx(want)
    assert [row["unscored"] for row in out["extra_logs"]] == [0.0, 0.0, 1.0, 0.0]


if __name__ == "__main__":
    print(f"{DRIVER_MARKER} " + json.dumps(drive_openrlhf()))
    sys.exit(0)
