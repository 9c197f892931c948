"""The shipped accelerate and DeepSpeed configs are valid launch configurations, checked here without
GPUs by the launchers' own code: accelerate reads each file (unknown keys refused), ``accelerate
launch``'s argument parsing and validation fill in the run, accelerate prepares the workers'
environment, torchrun builds its launch config (nodes, processes per node, rendezvous) and the
worker command, a DeepSpeed config is loaded by accelerate's DeepSpeedPlugin as a worker would,
and the worker's gtalign arguments parse. Then a real ``accelerate launch -m gtalign.cli train``
(one CPU process) runs a dry run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gtalign.cli._main import build_parser, main
from tests.training.test_train_fixtures import grpo_data  # noqa: F401

pytestmark = pytest.mark.engine  # accelerate's and torchrun's launch code runs here

pytest.importorskip("accelerate")
pytest.importorskip("trl")

CONFIGS = ("accelerate_multi_gpu.yaml", "accelerate_multi_node.yaml", "accelerate_zero2.yaml", "accelerate_zero3.yaml")
WORKER_ARGS = ["train", "grpo", "--config", "grpo.yaml", "--out", "runs/grpo"]


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples as a user gets them: copied by ``gtalign train examples DIR``."""
    folder = tmp_path_factory.mktemp("examples")
    assert main(["train", "examples", str(folder)]) == 0
    return folder


def launch(config_file: Path) -> tuple[Any, Any, dict[str, str]]:
    """What ``accelerate launch --config_file FILE -m gtalign.cli ...`` computes before it starts
    any process: the validated arguments, the config's defaults and the workers' environment."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(config_file), "-m", "gtalign.cli", *WORKER_ARGS])
    args, defaults, mixed_precision_from_config = _validate_launch_command(args)
    if args.use_deepspeed:  # as launch_command does before calling the DeepSpeed launcher
        fields = list(defaults.deepspeed_config)
        args.deepspeed_fields_from_accelerate_config = ",".join(fields + ["mixed_precision"] * mixed_precision_from_config)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    return args, defaults, env


@pytest.mark.parametrize("name", CONFIGS)
def test_the_shipped_accelerate_config_is_a_valid_launch(examples: Path, name: str) -> None:
    import torch.distributed.run as torchrun
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import _filter_args

    path = examples / name
    cluster = ClusterConfig.from_yaml_file(str(path))  # accelerate's own loader: unknown keys are refused
    args, _, env = launch(path)
    assert args.num_processes == cluster.num_processes and args.num_machines == cluster.num_machines

    # torchrun's own launch config from the arguments accelerate hands it (what _run_torchrun does)
    filtered = _filter_args(args, torchrun.get_args_parser(),
                            ["--training_script", args.training_script, "--training_script_args", args.training_script_args])
    launch_config, command, command_args = torchrun.config_from_args(filtered)
    assert launch_config.max_nodes == cluster.num_machines
    assert launch_config.nproc_per_node * cluster.num_machines == cluster.num_processes
    if cluster.num_machines > 1:
        assert launch_config.rdzv_endpoint == f"{cluster.main_process_ip}:{cluster.main_process_port}"
    assert command == sys.executable and command_args[-len(WORKER_ARGS) - 2:] == ["-m", "gtalign.cli", *WORKER_ARGS]
    assert build_parser().parse_args(WORKER_ARGS).train_kind == "grpo"  # the worker's gtalign command line parses

    if args.use_deepspeed:
        from accelerate.utils import DeepSpeedPlugin, patch_environment

        ds_file = Path(env["ACCELERATE_DEEPSPEED_CONFIG_FILE"])
        assert ds_file.parent == examples and ds_file.is_file()  # the copy in DIR, not a path relative to the cwd
        stage = json.loads(ds_file.read_text())["zero_optimization"]["stage"]
        with patch_environment(**{k: v for k, v in env.items() if k.startswith("ACCELERATE_")}):
            plugin = DeepSpeedPlugin()  # what each worker's Accelerator builds from that environment
        assert plugin.zero_stage == stage == int(name[-6])
        assert plugin.zero3_init_flag == (stage == 3)
    else:
        assert env["ACCELERATE_MIXED_PRECISION"] == cluster.mixed_precision == "bf16"


def test_accelerate_launch_runs_gtalign_train(grpo_data: Path, tmp_path: Path) -> None:  # noqa: F811
    accelerate = Path(sys.executable).with_name("accelerate")
    if not accelerate.exists():
        pytest.skip("no accelerate command next to this Python")
    out = tmp_path / "run"
    done = subprocess.run(
        [str(accelerate), "launch", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "-m", "gtalign.cli", "train", "grpo", "--data", str(grpo_data), "--out", str(out),
         "--lora", "--num-generations", "2", "--batch-size", "2", "--dry-run"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "gtalign train grpo: dry run: every setting checked" in done.stderr and not out.exists()
