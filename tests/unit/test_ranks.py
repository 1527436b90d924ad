"""How many ranks a stage trains on, what they are launched with, and what is refused before any work.

The launches themselves (2 ranks over gloo, two "nodes" on 127.0.0.1, a kill and a resume) are in
tests/flows/test_multi_rank.py; this file checks the decisions around them, in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from configs.check import check_launch
from configs.schema import ModelConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_ranks_come_from_num_processes_or_num_gpus():
    assert TrainConfig().ranks == 1
    assert TrainConfig(num_gpus=4, device="cuda").ranks == 4
    assert TrainConfig(num_processes=2, device="cpu").ranks == 2
    assert TrainConfig(num_processes=4, num_gpus=4).ranks == 4
    with pytest.raises(ValidationError, match=r"num_processes \(2\) and num_gpus \(4\) disagree"):
        TrainConfig(num_processes=2, num_gpus=4)


def test_the_method_is_read_in_one_place():
    from tasks.train.common import adapter_config

    assert adapter_config(TrainConfig(method="full")) is None  # trl's switch: no peft config, every weight
    assert adapter_config(TrainConfig(method="lora")).r == 16
    assert TrainConfig(method="qlora").base_quant_bits == 4 and TrainConfig(method="lora").base_quant_bits is None
    assert TrainConfig(method="qlora", quant_bits=8).adapter and not TrainConfig(method="full").adapter


def test_sharded_training_on_a_cpu_is_refused_not_silently_ddp(monkeypatch):
    """accelerate 1.15 turns FSDP and DeepSpeed on for GPU ranks only: on a CPU they would quietly be DDP."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    fsdp = TrainConfig(num_processes=2, device="cpu", accelerate_config="infra/accelerate/fsdp.yaml")
    [problem] = check_launch(fsdp, gpus=0)
    assert problem.startswith("train.accelerate_config: infra/accelerate/fsdp.yaml selects FSDP")
    assert "use infra/accelerate/multi_gpu.yaml" in problem
    assert check_launch(TrainConfig(num_processes=2, device="cpu"), gpus=0) == []
    missing = TrainConfig(num_processes=2, accelerate_config="infra/accelerate/nope.yaml")
    assert check_launch(missing, gpus=0)[0].startswith("train.accelerate_config: infra/accelerate/nope.yaml not found")
    assert check_launch(TrainConfig(accelerate_config="nope.yaml"), gpus=0) == []  # one rank: no launch, no file


def test_a_hand_launch_that_changes_the_precision_is_refused(monkeypatch):
    """`accelerate launch --config_file multi_gpu.yaml` says bf16; transformers would train an fp32 config in it."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    [problem] = check_launch(TrainConfig(precision="fp32"), gpus=0)
    assert "ACCELERATE_MIXED_PRECISION=bf16" in problem and "--mixed_precision no" in problem
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert check_launch(TrainConfig(precision="fp32"), gpus=0) == []
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert "ACCELERATE_USE_FSDP=true" in check_launch(TrainConfig(precision="fp32"), gpus=0)[0]


def test_a_plan_travels_as_plain_json_and_names_what_a_node_lacks(tmp_path):
    from tasks.train.plan import TrainPlan

    data = tmp_path / "sft.jsonl"
    data.write_text("{}\n")
    plan = TrainPlan(
        "sft", str(tmp_path), str(data), "Q: {{question}}", TrainConfig(num_processes=2), ModelConfig(), str(tmp_path)
    )
    again = TrainPlan.read(plan.write(tmp_path / "plans" / "sft.json"))
    assert again == plan and json.loads((tmp_path / "plans" / "sft.json").read_text())["train"]["num_processes"] == 2
    assert plan.problems() == [] and plan.done() is None
    assert (
        TrainPlan(
            "sft", str(tmp_path), str(data), "", TrainConfig(), ModelConfig(), str(tmp_path / "new" / "run")
        ).problems()
        == []
    )  # created when it trains
    blocked = f"{data}/run"  # under a file: cannot be created
    elsewhere = TrainPlan(
        "sft", "/nowhere/base", "/nowhere/sft.jsonl", "{{question}}", TrainConfig(), ModelConfig(), blocked
    )
    assert elsewhere.problems() == [
        "data /nowhere/sft.jsonl is not on this machine",
        "start /nowhere/base is not on this machine",
        f"the run folder {blocked} cannot be written here",
    ]
    hub = TrainPlan("sft", "Qwen/Qwen2.5-0.5B", str(data), "{{question}}", TrainConfig(), ModelConfig(), str(tmp_path))
    assert hub.problems() == []  # a hub name is read from each machine's own cache


def test_launched_ranks_get_the_run_configs_count_precision_and_strategy(tmp_path):
    from tasks.train.launch import launch_command
    from tasks.train.plan import TrainPlan

    train = TrainConfig(num_processes=3, precision="bf16", accelerate_config="infra/accelerate/fsdp.yaml")
    plan = TrainPlan("sft", "b", "d", "{{question}}", train, ModelConfig(), str(tmp_path))
    command = launch_command(tmp_path / "sft.json", plan, 29999)
    flags = dict(zip(command[3::2], command[4::2]))
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[-3:] == ["-m", "tasks.train.ranks", str(tmp_path / "sft.json")]
    assert flags["--config_file"] == str(ROOT / "infra" / "accelerate" / "fsdp.yaml")
    assert (flags["--num_processes"], flags["--mixed_precision"], flags["--main_process_port"]) == (
        "3",
        "bf16",
        "29999",
    )


def test_each_node_runs_the_command_less_the_flags_that_placed_it():
    from llmops.commands.common import without_node_flags

    argv = ["train", "--nnodes", "2", "--node-rank=1", "--set", "a=b", "--master-addr", "10.0.0.1", "--gpus", "8"]
    assert without_node_flags(argv + ["--master-port", "29501"]) == ["train", "--set", "a=b", "--gpus", "8"]


def test_nnodes_without_the_address_of_node_0_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "train", "--nnodes", "2", "--node-rank", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "LLMOPS_HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --nnodes 2: needs the address of the machine with --node-rank 0; "
        "give --master-addr HOST (the same on every machine)"
    )


def test_launched_ranks_that_stop_on_bad_input_give_the_flow_the_same_one_line(base, demo, tmp_path):
    """2 ranks launched by the stage itself; every row's prompt fills max_length, so each rank stops before
    training, and the launcher raises rank 0's UserError rather than 'the ranks failed'."""
    from core.errors import UserError
    from tasks.data.demo import QUESTION_TEMPLATE
    from tasks.train.launch import train_stage
    from tasks.train.plan import TrainPlan

    cfg = TrainConfig.model_validate({"device": "cpu", "num_processes": 2, "sft": {"max_steps": 2, "max_length": 16}})
    plan = TrainPlan("sft", str(base), demo["sft"], QUESTION_TEMPLATE, cfg, ModelConfig(), str(tmp_path / "run"))
    with pytest.raises(UserError) as stopped:
        train_stage(plan, lambda step, figures: None)
    assert stopped.value.subject == "train.sft.max_length=16" and "training rows" in stopped.value.problem
    assert (tmp_path / "run" / "plans" / "sft.json").exists() and not (tmp_path / "run" / "sft_summary.json").exists()
