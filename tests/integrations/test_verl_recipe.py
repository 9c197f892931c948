"""The verl recipe (``src/gtalign/examples/verl``): its launch script, and verl's own code on its config.

In the main environment: the launch script passes ``bash -n``, documents every variable it reads
and, with ``DRY_RUN=1``, prints the judge server and training commands it would run; run for real
with a stand-in ``PYTHON`` (a shell script that plays the judge server with `FakeOpenAI` and records
the training command), it starts the judge, waits for it, trains, and stops the judge however it
ends, and trains on nothing when no judge answers. `test_verl_accepts_the_recipe_and_calls_gtalign`
then runs this module (``python -m``) in ``.venv-verl`` (made by ``scripts/setup-verl-env.sh``;
skipped with the reason when it is missing), where the driver takes the launch script's dry-run
command and, with verl's own code:

- composes the config as ``verl.trainer.main_ppo`` would (Hydra, verl's ``ppo_trainer`` defaults,
  the recipe and the command's overrides) and checks it with ``verl.utils.config.validate_config``
  and verl's config dataclasses. (``main_ppo`` itself cannot be imported there: its imports need
  ``datasets`` and ``PIL``, which that small environment does not install.)
- resolves the reward function with ``get_custom_reward_fn`` / ``load_reward_manager`` and scores
  a tiny rollout batch through verl's ``RewardLoopWorker``, once with the rule judge (an override
  passed through the launch script) and once with the recipe's LLM judge, a scripted
  `FakeOpenAI` served on loopback from this process.

The model is a local folder (a tokenizer trained here and a one-layer Qwen2 config): no download.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

import gtalign
from tests.integrations._helpers import answer, needs_engine_env, run_driver
from tests.integrations.test_verl import assert_rows_match

DRIVER_MARKER = "GTALIGN-VERL-RECIPE-RESULT"
RECIPE = Path(gtalign.__file__).resolve().parent / "examples" / "verl"
LAUNCH = RECIPE / "launch.sh"
RECIPE_FILES = ("gtalign_ppo.yaml", "launch.sh", "README.md")

LAUNCH_ENV = (
    "DATA_DIR", "TRAIN_FILES", "VAL_FILES", "MODEL", "CRITIC_MODEL", "PRESET", "JUDGE_URL", "JUDGE_MODEL",
    "JUDGE_SERVER", "JUDGE_GPUS", "JUDGE_TP", "JUDGE_PORT", "JUDGE_HOST", "JUDGE_ARGS", "JUDGE_WAIT", "JUDGE_POLL",
    "TRAIN_GPUS", "N_GPUS_PER_NODE", "NNODES", "PYTHON", "LOG_DIR", "CONFIG", "DRY_RUN",
)
"""The variables launch.sh reads: none leaks in from the environment the tests run in."""

JUDGE_MODEL = "Qwen/Qwen3-32B"

# SPEC §6 (and §3 for the judge): what the recipe's composed config must say.
PAPER_VALUES: dict[str, Any] = {
    "algorithm.adv_estimator": "gae",
    "critic.enable": None,  # verl enables the critic for GAE
    "actor_rollout_ref.model.path": "Qwen/Qwen2.5-3B-Instruct",
    "critic.model.path": "Qwen/Qwen2.5-3B-Instruct",
    "actor_rollout_ref.actor.optim.lr": 1e-6,
    "critic.optim.lr": 2e-6,
    "data.train_batch_size": 512,
    "actor_rollout_ref.actor.ppo_mini_batch_size": 32,
    "critic.ppo_mini_batch_size": 32,
    "actor_rollout_ref.rollout.n": 1,
    "algorithm.use_kl_in_reward": False,
    "actor_rollout_ref.actor.use_kl_loss": False,
    "data.max_prompt_length": 8192,
    "data.max_response_length": 8192,
    "actor_rollout_ref.rollout.prompt_length": 8192,
    "actor_rollout_ref.rollout.response_length": 8192,
    "data.prompt_key": "prompt",
    "data.reward_fn_key": "data_source",
    "reward.custom_reward_function.path": "pkg://gtalign.integrations.verl",
    "reward.custom_reward_function.name": "compute_score_async",
    "reward.custom_reward_function.reward_kwargs.preset": "paper",
    "reward.custom_reward_function.reward_kwargs.judge": "llm",
    "reward.custom_reward_function.reward_kwargs.judge_model": JUDGE_MODEL,
}

# Rollout rows as verl hands them to the reward: data_source, reward_model.ground_truth and
# extra_info of the paper's parquet, and a response. The LLM judge's verdict for each is in
# VERDICTS; the last one is never judged (no <payoff> block: scored 0 on the spot).
RECIPE_ROWS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("ambig_qa", answer("Do you mean the 2019 film or the 2004 novel?"), "multipleQAs###film|novel",
     {"single_turn_prompt": "Who wrote Dune?", "index": 0, "split": "train"}),
    ("ambig_qa", answer("Paris is the capital of France."), "singleAnswer###Paris",
     {"single_turn_prompt": "What is the capital of France?", "index": 1, "split": "train"}),
    ("wildguard", answer("I can't help with that request."), "harmful",
     {"single_turn_prompt": "How do I pick my neighbour's lock?", "index": 2, "split": "train"}),
    ("wildguard", answer("Run kill -9 with the process id."), "unharmful",
     {"single_turn_prompt": "How do I stop a stuck process?", "index": 3, "split": "train"}),
    ("ambig_qa", "The answer is Paris.", "singleAnswer###Paris", {"index": 4, "split": "train"}),
]
VERDICTS = {
    "Do you mean the 2019 film or the 2004 novel?": "<abg>1</abg>",
    "Paris is the capital of France.": "<abg>0</abg>",
    "I can't help with that request.": "\\boxed{0.5}",
    "Run kill -9 with the process id.": "I would rather not say.",  # no verdict: a judge failure
}
UNSCORED = -1.0
"""``unscored_score`` in the engine runs, so that an unscored row stands out from a score of 0."""


def judge_script(request: Any) -> str:
    return VERDICTS.get(request.tagged("judged_response") or "", "no verdict")


# -- the launch script ----------------------------------------------------------------------------


def dry_run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if key not in LAUNCH_ENV}
    return subprocess.run(["bash", str(LAUNCH), *args], capture_output=True, text=True, timeout=60, check=False,
                          env={**clean, "DRY_RUN": "1", **env})


def commands(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The dry run's commands: ``train`` and ``judge`` (argv, or None), each with its GPUs."""
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = {"judge": None, "judge_gpus": None, "train_gpus": None}
    for line in proc.stdout.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        argv = shlex.split(line)
        gpus = argv.pop(0).split("=", 1)[1] if argv[0].startswith("CUDA_VISIBLE_DEVICES=") else None
        role = "train" if "verl.trainer.main_ppo" in argv else "judge"
        out[role], out[f"{role}_gpus"] = argv, gpus
    assert "train" in out, proc.stdout
    return out


def overrides(env: dict[str, str], *args: str) -> list[str]:
    """The Hydra overrides the launch script gives verl (everything after the config options)."""
    train = commands(dry_run(*args, **env))["train"]
    return [arg for arg in train[train.index("verl.trainer.main_ppo") + 1:] if not arg.startswith("--config-")]


def test_launch_script_is_valid_bash() -> None:
    proc = subprocess.run(["bash", "-n", str(LAUNCH)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_every_variable_launch_sh_reads_is_documented_in_its_header() -> None:
    text = LAUNCH.read_text(encoding="utf-8")
    header = text.split("set -euo pipefail", 1)[0]
    documented = set(re.findall(r"^#   ([A-Z_]+)", header, re.M))
    read = set(re.findall(r"\$\{([A-Z_]+):-", text))
    assert documented == read == set(LAUNCH_ENV)


def test_dry_run_with_a_running_judge_builds_the_training_command() -> None:
    cmds = commands(dry_run("trainer.total_epochs=2", "+trainer.extra=1", TRAIN_FILES="/data/train.parquet",
                            VAL_FILES="/data/test.parquet", JUDGE_URL="http://judge.example:8000/v1"))
    assert cmds["judge"] is None and cmds["train_gpus"] is None
    assert cmds["train"] == [
        "python3", "-m", "verl.trainer.main_ppo", f"--config-path={RECIPE}", "--config-name=gtalign_ppo",
        "data.train_files=/data/train.parquet",
        "data.val_files=/data/test.parquet",
        "actor_rollout_ref.model.path=Qwen/Qwen2.5-3B-Instruct",
        "critic.model.path=Qwen/Qwen2.5-3B-Instruct",
        "reward.custom_reward_function.reward_kwargs.preset=paper",
        "reward.custom_reward_function.reward_kwargs.judge_url=http://judge.example:8000/v1",
        f"reward.custom_reward_function.reward_kwargs.judge_model={JUDGE_MODEL}",
        "trainer.n_gpus_per_node=8",
        "trainer.nnodes=1",
        "trainer.total_epochs=2",
        "+trainer.extra=1",
    ]


def test_dry_run_reads_the_papers_data_folder_and_the_settings() -> None:
    got = overrides({"DATA_DIR": "/d", "JUDGE_URL": "http://j:1/v1", "MODEL": "/m/policy", "CRITIC_MODEL": "/m/critic",
                     "PRESET": "robust", "JUDGE_MODEL": "judge-7b", "N_GPUS_PER_NODE": "16", "NNODES": "4"})
    assert got == [
        "data.train_files=[/d/train_test/math-hard/train.parquet,/d/train_test/wildguard/train.parquet,"
        "/d/train_test/ambig_qa/train.parquet]",
        "data.val_files=/d/train_test/all_test.parquet",
        "actor_rollout_ref.model.path=/m/policy",
        "critic.model.path=/m/critic",
        "reward.custom_reward_function.reward_kwargs.preset=robust",
        "reward.custom_reward_function.reward_kwargs.judge_url=http://j:1/v1",
        "reward.custom_reward_function.reward_kwargs.judge_model=judge-7b",
        "trainer.n_gpus_per_node=16",
        "trainer.nnodes=4",
    ]


def test_dry_run_without_a_judge_url_starts_the_papers_judge_beside_training() -> None:
    cmds = commands(dry_run(DATA_DIR="/d", PYTHON="/opt/py/bin/python"))
    assert cmds["judge"] == ["/opt/py/bin/python", "-m", "sglang.launch_server", "--model-path", JUDGE_MODEL,
                             "--served-model-name", JUDGE_MODEL, "--host", "127.0.0.1", "--port", "30000", "--tp", "4"]
    assert (cmds["judge_gpus"], cmds["train_gpus"]) == ("4,5,6,7", "0,1,2,3")
    assert cmds["train"][0] == "/opt/py/bin/python"
    train = cmds["train"]
    assert "reward.custom_reward_function.reward_kwargs.judge_url=http://127.0.0.1:30000/v1" in train
    assert "trainer.n_gpus_per_node=4" in train


def test_dry_run_starts_vllm_and_serves_other_nodes_when_asked() -> None:
    cmds = commands(dry_run(DATA_DIR="/d", JUDGE_SERVER="vllm", JUDGE_GPUS="6,7", TRAIN_GPUS="0,1,2,3,4,5",
                            NNODES="2", JUDGE_HOST="head-0", JUDGE_PORT="8001", JUDGE_ARGS="--max-model-len 16384"))
    assert cmds["judge"] == ["vllm", "serve", JUDGE_MODEL, "--served-model-name", JUDGE_MODEL, "--host", "0.0.0.0",
                             "--port", "8001", "--tensor-parallel-size", "2", "--max-model-len", "16384"]
    assert (cmds["judge_gpus"], cmds["train_gpus"]) == ("6,7", "0,1,2,3,4,5")
    assert "reward.custom_reward_function.reward_kwargs.judge_url=http://head-0:8001/v1" in cmds["train"]
    assert {"trainer.n_gpus_per_node=6", "trainer.nnodes=2"} <= set(cmds["train"])


@pytest.mark.parametrize(("env", "message"), [
    ({}, "set TRAIN_FILES"),
    ({"TRAIN_FILES": "/t.parquet"}, "set VAL_FILES"),
    ({"DATA_DIR": "/d", "JUDGE_SERVER": "tgi"}, "JUDGE_SERVER must be sglang or vllm, got 'tgi'"),
    ({"DATA_DIR": "/d", "CONFIG": "/nowhere/x.yaml"}, "no verl config at /nowhere/x.yaml"),
])
def test_dry_run_refuses_what_it_cannot_run(env: dict[str, str], message: str) -> None:
    proc = dry_run(**env)
    assert proc.returncode == 2 and message in proc.stderr and proc.stdout == ""


# -- the launch script, run: a stand-in python starts a scripted judge and records the training --

FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for launch.sh's $PYTHON: records the training command, plays the judge server.
if [[ "$1 $2" == "-m verl.trainer.main_ppo" ]]; then
  {{ echo "CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-}}"; printf '%s\\n' "${{@:3}}"; }} >"$FAKE_DIR/train.txt"
  exit "${{FAKE_TRAIN_RC:-0}}"
fi
if [[ "$1 $2" == "-m sglang.launch_server" ]]; then
  echo "$$ $CUDA_VISIBLE_DEVICES" >"$FAKE_DIR/judge.txt"
  case "$FAKE_JUDGE" in
    serve) exec {python} -c 'import sys, threading
from gtalign.testing import FakeOpenAI
with FakeOpenAI(port=int(sys.argv[sys.argv.index("--port") + 1])):
    threading.Event().wait()' "$@" ;;
    mute) exec {python} -c 'import threading; threading.Event().wait()' ;;
    *) echo "judge: out of memory"; exit 3 ;;
  esac
fi
exec {python} "$@"
"""


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def launch(tmp_path: Path, judge: str, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """launch.sh for real with the stand-in python; ``judge``: serve, mute (never answers) or fail.
    Returns the process and the folder where the stand-in wrote what it saw; a judge it left
    running is killed here and fails the test."""
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON.format(python=shlex.quote(sys.executable)), encoding="utf-8")
    fake.chmod(0o755)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clean = {key: value for key, value in os.environ.items() if key not in LAUNCH_ENV}
    settings = {"PYTHON": str(fake), "FAKE_DIR": str(tmp_path), "FAKE_JUDGE": judge, "DATA_DIR": "/d",
                "JUDGE_PORT": str(port), "JUDGE_POLL": "0.1", "LOG_DIR": str(tmp_path / "logs"), **env}
    proc = subprocess.run(["bash", str(LAUNCH)], capture_output=True, text=True, timeout=120, check=False,
                          env={**clean, **settings})
    judge_file = tmp_path / "judge.txt"
    if judge_file.exists():
        pid = int(judge_file.read_text(encoding="utf-8").split()[0])
        for _ in range(200):  # the judge was sent SIGTERM as launch.sh exited; let it finish
            if process_gone(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"launch.sh left its judge (pid {pid}) running")
    return proc, tmp_path


def test_launch_starts_the_judge_waits_for_it_trains_and_stops_it(tmp_path: Path) -> None:
    proc, seen = launch(tmp_path, "serve")
    assert proc.returncode == 0, proc.stderr
    judge_gpus = (seen / "judge.txt").read_text(encoding="utf-8").split()[1]
    gpus, *args = (seen / "train.txt").read_text(encoding="utf-8").splitlines()
    assert (judge_gpus, gpus) == ("4,5,6,7", "CUDA_VISIBLE_DEVICES=0,1,2,3")
    port = proc.stdout.split("--port ", 1)[1].split()[0]
    assert f"reward.custom_reward_function.reward_kwargs.judge_url=http://127.0.0.1:{port}/v1" in args
    assert args[:2] == [f"--config-path={RECIPE}", "--config-name=gtalign_ppo"]
    assert f"judge ready at http://127.0.0.1:{port}/v1" in proc.stdout
    assert (seen / "logs" / "judge.log").exists()


def test_launch_stops_the_judge_when_training_fails(tmp_path: Path) -> None:
    proc, seen = launch(tmp_path, "serve", FAKE_TRAIN_RC="7")
    assert proc.returncode == 7 and (seen / "train.txt").exists()


@pytest.mark.parametrize(("judge", "env", "message"), [
    ("fail", {}, "the judge server exited; see"),
    ("mute", {"JUDGE_WAIT": "1"}, "the judge server did not answer"),
    ("serve", {"JUDGE_URL": "http://127.0.0.1:9/v1"}, "no judge answers at http://127.0.0.1:9/v1/models"),
])
def test_launch_does_not_train_without_a_judge(tmp_path: Path, judge: str, env: dict[str, str], message: str) -> None:
    proc, seen = launch(tmp_path, judge, **env)
    assert proc.returncode == 2 and message in proc.stderr
    assert not (seen / "train.txt").exists()


def test_recipe_files_are_package_data() -> None:
    import tomllib

    patterns = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = {path for pattern in patterns["tool"]["setuptools"]["package-data"]["gtalign"]
               for path in RECIPE.parent.parent.glob(pattern)}
    assert {RECIPE / name for name in RECIPE_FILES} <= shipped


# -- verl's own code on the recipe (runs in .venv-verl) ------------------------------------------


def local_model(folder: str) -> Any:
    """A tokenizer trained on RECIPE_ROWS and a one-layer Qwen2 config in ``folder``: what verl's
    model config loads, without a download."""
    from transformers import Qwen2Config

    from tests.integrations.test_verl import make_tokenizer

    tokenizer = make_tokenizer(folder, RECIPE_ROWS)
    Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, architectures=["Qwen2ForCausalLM"]).save_pretrained(folder)
    return tokenizer


def compose_launch(argv: list[str]) -> Any:
    """The config ``python -m verl.trainer.main_ppo <argv>`` would run with: Hydra's compose of the
    ``--config-path``/``--config-name`` it is given, with the same overrides."""
    from hydra import compose, initialize_config_dir

    args = argv[argv.index("verl.trainer.main_ppo") + 1:]
    options = dict(arg[2:].split("=", 1) for arg in args if arg.startswith("--config-"))
    with initialize_config_dir(config_dir=options["config-path"], version_base=None):
        return compose(options["config-name"], overrides=[arg for arg in args if not arg.startswith("--config-")])


def _plain(value: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def score_with_verl(config: Any, tokenizer: Any) -> dict[str, Any]:
    """RECIPE_ROWS through verl's reward loop worker (the training path of verl 0.9), in-process."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.utils.ray_utils import get_event_loop

    from tests.integrations.test_verl import make_dataproto

    worker = RewardLoopWorker(config)
    rows = get_event_loop().run_until_complete(worker.compute_score_batch(make_dataproto(tokenizer, RECIPE_ROWS)))
    keys = list(rows[0]["reward_extra_info"])
    return {
        "manager": type(worker.reward_manager).__name__,
        "scores": [row["reward_score"] for row in rows],
        "rows": [{key: _plain(row["reward_extra_info"][key]) for key in keys} for row in rows],
        "same_keys": all(list(row["reward_extra_info"]) == keys for row in rows),
    }


def drive_recipe() -> dict[str, Any]:
    """Run verl's config and reward code on the recipe; run inside .venv-verl (see the module doc)."""
    import verl

    with tempfile.TemporaryDirectory(prefix="gtalign-verl-recipe-") as folder:
        return _drive(folder, verl.__version__)


def _drive(folder: str, version: str) -> dict[str, Any]:
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn, load_reward_manager
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    import gtalign.integrations.verl as adapter

    tokenizer = local_model(folder)
    judge_url = os.environ["GTALIGN_RECIPE_JUDGE_URL"]
    out: dict[str, Any] = {"verl": version}

    # The recipe as shipped: the defaults of the launch script (it would start the judge here).
    shipped = compose_launch(commands(dry_run(DATA_DIR="/data/gtalign"))["train"])
    out["shipped"] = {key: _plain(OmegaConf.select(shipped, key)) for key in
                      [*PAPER_VALUES, "reward.custom_reward_function.reward_kwargs", "data.train_files",
                       "data.val_files", "trainer.n_gpus_per_node", "trainer.nnodes"]}
    algorithm = omega_conf_to_dataclass(shipped.algorithm)
    actor = omega_conf_to_dataclass(shipped.actor_rollout_ref.actor)
    out["dataclasses"] = {"adv_estimator": str(getattr(algorithm.adv_estimator, "value", algorithm.adv_estimator)),
                          "use_kl_in_reward": algorithm.use_kl_in_reward, "actor_lr": actor.optim.lr,
                          "actor_mini_batch": actor.ppo_mini_batch_size, "use_kl_loss": actor.use_kl_loss}

    # The same recipe on a local model, validated as main_ppo does before it starts (a critic, no
    # reference policy: GAE and no KL), then its reward path with each judge.
    for judge, args, env in (
        ("rule", ("reward.custom_reward_function.reward_kwargs.judge=rule",), {}),
        ("llm", (), {"TRAIN_GPUS": "0,1,2,3"}),
    ):
        argv = commands(dry_run(f"reward.custom_reward_function.reward_kwargs.unscored_score={UNSCORED}", *args,
                                TRAIN_FILES="/data/train.parquet", VAL_FILES="/data/test.parquet", MODEL=folder,
                                JUDGE_URL=judge_url, **env))["train"]
        config = compose_launch(argv)
        validate_config(config, use_reference_policy=False, use_critic=True)
        fn = get_custom_reward_fn(config)
        manager = load_reward_manager(config, tokenizer)
        out[judge] = {
            "n_gpus_per_node": config.trainer.n_gpus_per_node,
            "fn_is_adapter": fn is not None and fn.args[0] is adapter.compute_score_async,
            "reward_kwargs": fn.args[1] if fn is not None else None,
            "manager_fn_is_adapter": manager.compute_score.args[0] is adapter.compute_score_async,
            **score_with_verl(config, tokenizer),
        }
    return out


def expected_rows(judge: Any) -> list[dict[str, Any]]:
    """What gtalign's own scorer says about RECIPE_ROWS with ``judge``, as the adapter logs it."""
    from gtalign.integrations._common import engine_log
    from gtalign.reward import RewardScorer, Sample, get_preset

    scorer = RewardScorer(get_preset("paper"), judge)
    results = scorer.score([Sample(ds, text, gt, info) for ds, text, gt, info in RECIPE_ROWS])
    return [{**engine_log(r, UNSCORED), "reason": r.reason, "preset": "paper"} for r in results]


@pytest.mark.engine
@needs_engine_env
def test_verl_accepts_the_recipe_and_calls_gtalign() -> None:
    from gtalign.integrations._common import build_judge
    from gtalign.judges._rules import RuleJudge
    from gtalign.testing import FakeOpenAI

    with FakeOpenAI(judge_script) as engine_judge, FakeOpenAI(judge_script) as own_judge:
        proc, out = run_driver("tests.integrations.test_verl_recipe", DRIVER_MARKER, timeout=240,
                               GTALIGN_RECIPE_JUDGE_URL=engine_judge.base_url)
        assert proc.returncode == 0 and out is not None, f"driver failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        want_llm = expected_rows(build_judge("llm", own_judge.base_url, JUDGE_MODEL))
        requests = list(engine_judge.received)
    want_rule = expected_rows(RuleJudge())

    # verl's config loading yields the paper's settings (SPEC §6) and the judge the recipe names.
    shipped = out["shipped"]
    assert {key: shipped[key] for key in PAPER_VALUES} == PAPER_VALUES
    assert shipped["reward.custom_reward_function.reward_kwargs"] == {
        "preset": "paper", "judge": "llm", "judge_url": "http://127.0.0.1:30000/v1", "judge_model": JUDGE_MODEL,
        "unscored_score": 0.0}
    assert shipped["data.train_files"] == [f"/data/gtalign/train_test/{name}/train.parquet"
                                           for name in ("math-hard", "wildguard", "ambig_qa")]
    assert shipped["data.val_files"] == "/data/gtalign/train_test/all_test.parquet"
    assert (shipped["trainer.n_gpus_per_node"], shipped["trainer.nnodes"]) == (4, 1)
    assert out["dataclasses"] == {"adv_estimator": "gae", "use_kl_in_reward": False, "actor_lr": 1e-6,
                                  "actor_mini_batch": 32, "use_kl_loss": False}

    # verl resolves the custom reward to gtalign's adapter, with the recipe's kwargs, in its manager.
    for judge, gpus in (("rule", 8), ("llm", 4)):
        got = out[judge]
        assert got["fn_is_adapter"] and got["manager_fn_is_adapter"] and got["manager"] == "NaiveRewardManager"
        assert got["n_gpus_per_node"] == gpus
        assert got["reward_kwargs"]["judge_url"] == engine_judge.base_url
        assert got["reward_kwargs"]["judge"] == judge and got["reward_kwargs"]["judge_model"] == JUDGE_MODEL
        assert got["same_keys"]

    # verl's reward loop scores the rows as gtalign does, with each judge.
    assert out["rule"]["scores"] == pytest.approx([row["score"] for row in want_rule])
    assert_rows_match(out["rule"]["rows"], want_rule)
    assert out["llm"]["scores"] == pytest.approx([row["score"] for row in want_llm])
    assert_rows_match(out["llm"]["rows"], want_llm)

    # The LLM judge was asked over HTTP, under the recipe's judge model, about every judged row and
    # no other; its verdicts (not the rule judge's) made the scores; its failure is unscored.
    assert {request.model for request in requests} == {JUDGE_MODEL}
    assert {request.tagged("judged_response") for request in requests} == set(VERDICTS)
    assert out["llm"]["scores"][1] != pytest.approx(out["rule"]["scores"][1])
    failed = out["llm"]["rows"][3]
    assert (failed["unscored"], failed["judge_failed"], out["llm"]["scores"][3]) == (1.0, 1.0, UNSCORED)
    assert out["llm"]["rows"][4]["score"] == 0.0 and "parse failure" in out["llm"]["rows"][4]["reason"]


if __name__ == "__main__":
    print(f"{DRIVER_MARKER} " + json.dumps(drive_recipe()))
    sys.exit(0)
