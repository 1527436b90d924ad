"""The GPU work pool's `gpus_per_run` reaches the train flow: Prefect's own rendering of the pool's
base job template (infra/prefect-gpu-pool.json), then the config the flow trains with."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from configs.check import WORKER_GPUS, with_worker_gpus
from configs.load import load_config
from core.errors import UserError

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "prefect-gpu-pool.json"


def test_the_pool_turns_gpus_per_run_into_the_flow_runs_environment(prefect_harness):
    from prefect.workers.process import ProcessJobConfiguration

    template = json.loads(TEMPLATE.read_text())
    render = lambda values: asyncio.run(ProcessJobConfiguration.from_template_and_values(template, values))  # noqa: E731
    job = render({"gpus_per_run": 2, "env": {"LLMOPS_HOME": "/var/lib/llmops"}})  # train-gpu's job variables
    assert job.env == {"LLMOPS_GPUS_PER_RUN": "2", "LLMOPS_HOME": "/var/lib/llmops"}
    assert render({}).env == {"LLMOPS_GPUS_PER_RUN": "1"}  # the pool's default


def test_the_flow_trains_on_the_pools_gpus_unless_the_config_names_its_own(monkeypatch):
    monkeypatch.setenv(WORKER_GPUS, "4")
    config = load_config(None, [], check=False)
    assert config.train.device == "cpu"  # configs/nightly.yaml, made for the CPU
    on_pool = with_worker_gpus(config).train
    assert (on_pool.num_gpus, on_pool.ranks, on_pool.device) == (4, 4, "cuda")
    own = load_config(None, ["train.num_gpus=2", "train.device=cuda"], check=False)
    assert with_worker_gpus(own).train.num_gpus == 2
    cpu = load_config(None, ["train.num_processes=2"], check=False)
    assert with_worker_gpus(cpu).train.num_gpus == 0
    monkeypatch.delenv(WORKER_GPUS)
    assert with_worker_gpus(config) is config
    monkeypatch.setenv(WORKER_GPUS, "two")
    with pytest.raises(UserError, match="LLMOPS_GPUS_PER_RUN=two: is not a number of GPUs"):
        with_worker_gpus(config)
