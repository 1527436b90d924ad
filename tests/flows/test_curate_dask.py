"""Sharded curation on a real Dask cluster (issue #13): a `dask scheduler` and two `dask worker`
processes on 127.0.0.1, a real Prefect server, and `llmops curate` in a process of its own.

The dataset it prints must be the one a single process makes of the same inputs with the default
step order (dedup before PII masking), on a corpus with rows that differ only in an e-mail address
or a phone number; and both workers must have run shard tasks (the scheduler's task stream says
which ran what).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from configs.schema import CurateConfig
from tasks.data.curate import curate_dataset
from tests.curation_corpus import eval_file, write_corpus
from tests.servers import HOST, VENV_BIN, free_port, prefect_server, started

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) == 0


def test_two_dask_worker_processes_give_the_one_process_dataset(tmp_path):
    from distributed import Client

    inputs = write_corpus(tmp_path, rows_per_file=800)
    eval_path = eval_file(tmp_path, inputs)
    settings = CurateConfig(quality={"max_drop_fraction": 1.0})
    one = curate_dataset(inputs, str(tmp_path / "one"), settings, [eval_path])
    assert one.report["pii"]["email"] == 2 and one.report["pii"]["phone"] == 2  # the twins, both kept

    with prefect_server(tmp_path / "prefect") as pf:
        env = pf.client_env(
            {
                "PATH": os.environ["PATH"],
                "HOME": os.environ.get("HOME", "/tmp"),
                "LLMOPS_HOME": str(tmp_path / "home"),
                "PYTHONPATH": str(ROOT),
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "DASK_CONFIG": str(ROOT / "infra" / "dask"),  # the workers as infra/dask/README.md starts them
            }
        )
        port = free_port()
        address = f"tcp://{HOST}:{port}"
        scheduler = [str(VENV_BIN / "dask"), "scheduler", "--host", HOST, "--port", str(port), "--no-dashboard"]
        worker = [str(VENV_BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard"]
        with (
            started(
                scheduler,
                name="dask scheduler",
                log=tmp_path / "scheduler.log",
                env=env,
                ready=lambda: _listening(port),
            ),
            started(
                worker + ["--local-directory", str(tmp_path / "w1")],
                name="dask worker 1",
                log=tmp_path / "w1.log",
                env=env,
            ),
            started(
                worker + ["--local-directory", str(tmp_path / "w2")],
                name="dask worker 2",
                log=tmp_path / "w2.log",
                env=env,
            ),
            Client(address, timeout=60) as client,
        ):
            client.wait_for_workers(2, timeout=180)
            workers = set(client.scheduler_info()["workers"])
            # infra/dask/dask.yaml took effect: glibc keeps its adaptive malloc thresholds
            assert set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == {None}
            client.get_task_stream()  # starts the scheduler's record of which worker ran what
            out = subprocess.run(
                [sys.executable, "-m", "llmops.cli", "curate", *(a for p in inputs for a in ("--input", p))]
                + ["--output", str(tmp_path / "out"), "--set", f"data.eval_path={eval_path}"]
                + ["--set", "curate.quality.max_drop_fraction=1.0", "--set", "curate.shards=2"]
                + ["--set", "curate.task_runner=dask", "--set", f"curate.dask_address={address}"],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                timeout=900,
            )
            ran_on = {record["worker"] for record in client.get_task_stream()}
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-1] == f"dataset {one.dataset_hash}"  # the CLI's last line
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["shards"] == 2 and report["kept"] + sum(report["dropped"].values()) == report["read"] == one.read
    assert report["dropped"] == one.dropped and report["pii"] == one.report["pii"]
    assert (tmp_path / "out" / "quarantine.jsonl").read_bytes() == Path(one.quarantine_path).read_bytes()
    assert ran_on == workers and len(workers) == 2  # both worker processes ran shard tasks
