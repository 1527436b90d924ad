"""Training on several ranks records once: 2 processes over gloo, the CPU stand-in for 2 GPUs.

Real launches of the CLI on a home of this module's own (real Prefect, the home's own server, which
a killed command does not take down with it, and a real MLflow store): `accelerate launch` with
infra/accelerate/multi_gpu.yaml (torchrun underneath; `--mixed_precision no` on a CPU), two "nodes"
on 127.0.0.1, and `train.num_processes: 2`, where the train stage launches its ranks itself.
Whatever the number of ranks, one command gives one flow run per flow, one FINISHED train run and
one registered version. A 2-rank run killed after a checkpoint resumes from it, under the run that
resumed it, with each metric step logged once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MULTI_GPU = ROOT / "infra" / "accelerate" / "multi_gpu.yaml"
STEERED = (
    "PREFECT_HOME",
    "MLFLOW_TRACKING_URI",
    "PREFECT_API_URL",
    "LLMOPS_HOME_PREFECT_URL",
    "LLMOPS_PREFECT_SERVER",
    "RANK",
    "WORLD_SIZE",
)

pytestmark = pytest.mark.slow


def cli_env(home: Path) -> dict[str, str]:
    """A user's shell on this home: the first command starts the home's Prefect server, the others use it.
    (A temporary server per command would outlive a command killed with SIGKILL.)"""
    return {k: v for k, v in os.environ.items() if k not in STEERED} | {"LLMOPS_HOME": str(home)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(home: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", *args], capture_output=True, text=True, env=cli_env(home), cwd=ROOT,
        timeout=timeout,
    )  # fmt: skip


def hand_launch(home: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """What infra/accelerate/multi_gpu.yaml's first line says to run, with 2 ranks on this CPU."""
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(MULTI_GPU)]
    ranks = ["--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(free_port())]
    return subprocess.run(
        [*accelerate, *ranks, "-m", "llmops.cli", *args], capture_output=True, text=True, env=cli_env(home),
        cwd=ROOT, timeout=timeout,
    )  # fmt: skip


def sets(*overrides: str) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def flow_runs(home: Path) -> Counter:
    """Flow runs per flow name, read from the home's Prefect database."""
    with sqlite3.connect(f"file:{home / 'prefect' / 'prefect.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT f.name FROM flow_run r JOIN flow f ON r.flow_id = f.id").fetchall()
    return Counter(name for (name,) in rows)


def store(home: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def runs(home: Path, experiment: str, query: str = "") -> list:
    c = store(home)
    found = c.get_experiment_by_name(experiment)
    return c.search_runs([found.experiment_id], query, max_results=1000) if found else []


def versions(home: Path, model: str) -> dict[int, list[str]]:
    c = store(home)
    return {
        int(v.version): sorted(c.get_model_version(model, v.version).aliases)
        for v in c.search_model_versions(f"name = '{model}'")
    }


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("ranks-home")
    yield home
    cli(home, "stop", "--force", timeout=120)


@pytest.fixture(scope="module")
def small(tiny_overrides) -> list[str]:
    return [*tiny_overrides, "model.tiny.pretrain_steps=20", "train.sft.max_steps=10", "train.preference.max_steps=2"]


@pytest.fixture(scope="module")
def nightly(home, small):
    """One `accelerate launch ... -m llmops.cli nightly` on 2 ranks."""
    done = hand_launch(home, "nightly", *sets(*small, "registry.model_name=ranks", "gate.min_gain_over_base=-1.0"))
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def test_a_hand_launched_nightly_records_once(home, nightly):
    assert nightly.stdout.count("== nightly finished ==") == 1 and nightly.stdout.count("MLflow parent run:") == 1
    assert flow_runs(home) == {"nightly": 1, "curate": 1, "train": 1, "evaluate": 1, "promote": 1}
    stages = Counter(r.data.tags["llmops.stage"] for r in runs(home, "llmops"))
    assert stages == {"nightly": 1, "curate": 1, "train": 1, "evaluate": 1, "promote": 1}
    [train] = runs(home, "llmops", "tags.`llmops.stage` = 'train'")
    assert train.info.status == "FINISHED" and train.data.tags["llmops.train_ranks"] == "2"
    assert train.data.metrics["sft/ranks"] == 2 and train.data.metrics["dpo/ranks"] == 2
    summary = json.loads((home / "runs" / train.info.run_id / "sft_summary.json").read_text())
    assert summary["ranks"] == 2 and summary["steps"] == 10
    assert versions(home, "ranks") == {1: ["challenger", "champion"]}


def test_two_nodes_on_one_machine_record_once(home, nightly, small):
    """`llmops train --nnodes 2` on each "node", over 127.0.0.1: node 0 records, node 1 only trains."""
    flows_before, trains_before = flow_runs(home)["train"], len(runs(home, "llmops", "tags.`llmops.stage` = 'train'"))
    port, env = str(free_port()), cli_env(home)
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmops.cli",
                "train",
                *sets(*small, "registry.model_name=ranks"),
                "--nnodes",
                "2",
                "--node-rank",
                str(k),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                port,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )  # fmt: skip
        for k in (0, 1)
    ]
    (out0, err0), (out1, err1) = (node.communicate(timeout=900) for node in nodes)
    assert [node.returncode for node in nodes] == [0, 0], (err0[-3000:], err1[-3000:])
    assert "trained: ranks v2 is the challenger" in out0 and "on 2 ranks" in out0
    assert "trained" not in out1 and "MLflow run" not in out1  # node 1 prints nothing of its own
    assert flow_runs(home)["train"] == flows_before + 1
    trains = runs(home, "llmops", "tags.`llmops.stage` = 'train'")
    assert len(trains) == trains_before + 1
    newest = max(trains, key=lambda r: r.info.start_time)
    assert newest.info.status == "FINISHED" and newest.data.tags["llmops.train_ranks"] == "2"
    assert versions(home, "ranks") == {1: ["champion"], 2: ["challenger"]}


def test_rank_0_failing_before_training_releases_the_other_rank(home, nightly, small):
    """A bad dataset hash on rank 0: both ranks end (no deadlock), with rank 0's one line and nothing recorded."""
    trains_before = len(runs(home, "llmops", "tags.`llmops.stage` = 'train'"))
    done = hand_launch(home, "train", *sets(*small), "--dataset", "deadbeef", timeout=300)
    assert done.returncode != 0
    # Both ranks and torchrun write to one stream, so a line may start mid-way through another's.
    assert done.stderr.count("error: ") == 1, done.stderr[-3000:]
    assert "error: dataset 'deadbeef': no finished curation with that hash" in done.stderr
    assert len(runs(home, "llmops", "tags.`llmops.stage` = 'train'")) == trains_before


def logged_past_a_checkpoint(home: Path, experiment: str) -> tuple[str, int, int] | None:
    """(run id, newest complete checkpoint, newest logged sft/loss step) of the RUNNING train run, once it
    has logged a step after a checkpoint: a kill then leaves steps that the resumed run trains again."""
    try:
        with sqlite3.connect(f"file:{home / 'mlflow.db'}?mode=ro", uri=True) as db:
            row = db.execute(
                "SELECT r.run_uuid, max(m.step) FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid "
                "JOIN experiments e ON e.experiment_id = r.experiment_id "
                "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'llmops.stage' AND t.value = 'train' "
                "WHERE m.key = 'sft/loss' AND r.status = 'RUNNING' AND e.name = ? GROUP BY r.run_uuid",
                (experiment,),
            ).fetchone()
    except sqlite3.Error:
        return None
    if not row:
        return None
    folder = home / "runs" / row[0] / "checkpoints-sft"
    done = [int(p.parent.name.split("-")[1]) for p in folder.glob("checkpoint-*/trainer_state.json")]
    return (row[0], max(done), row[1]) if done and row[1] > max(done) else None


def rank_processes(home: Path) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if "tasks.train.ranks" in cmd and str(home) in cmd and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.info["pid"])
        except psutil.NoSuchProcess:
            continue
    return found


def test_a_killed_two_rank_run_resumes_from_its_checkpoint(home, nightly, small, tmp_path):
    """`train.num_processes: 2` (the stage launches its ranks), killed after a checkpoint and a logged step
    past it; the same nightly again resumes the train run from that checkpoint with the same steps."""
    overrides = [
        *small,
        "train.num_processes=2",
        "train.sft.max_steps=120",
        "train.save_steps=50",  # a wide window after the first checkpoint: the kill lands before the next
        "registry.experiment=killed",
        "registry.model_name=killed",
        "gate.min_gain_over_base=-1.0",
    ]
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        first = subprocess.Popen(
            [sys.executable, "-m", "llmops.cli", "nightly", *sets(*overrides)], stdout=out, stderr=err,
            env=cli_env(home), cwd=ROOT,
        )  # fmt: skip
    deadline, state = time.monotonic() + 900, None
    while state is None and time.monotonic() < deadline and first.poll() is None:
        state = logged_past_a_checkpoint(home, "killed")
        time.sleep(0.2)
    assert state is not None, f"no checkpoint before the end ({first.poll()}): {(tmp_path / 'err').read_text()[-3000:]}"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    killed_run, checkpoint, _ = state
    deadline = time.monotonic() + 30
    while rank_processes(home) and time.monotonic() < deadline:  # the ranks die with the command
        time.sleep(0.5)
    assert rank_processes(home) == []
    [old_parent] = runs(home, "killed", "tags.`llmops.stage` = 'nightly'")
    logged = max(m.step for m in store(home).get_metric_history(killed_run, "sft/loss"))
    assert logged > checkpoint  # steps the resumed run trains again: without care, logged twice

    again = cli(home, "nightly", *sets(*overrides))
    assert again.returncode == 0, again.stderr[-4000:]
    assert "marked 2 MLflow run(s) KILLED" in again.stderr and f"resuming train run {killed_run}" in again.stderr
    new_parent = next(line.split()[3] for line in again.stdout.splitlines() if line.startswith("MLflow parent run:"))
    c = store(home)
    run = c.get_run(killed_run)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == new_parent != old_parent.info.run_id
    assert "llmops.ended_by" not in run.data.tags and run.data.tags["llmops.train_ranks"] == "2"
    assert c.get_run(old_parent.info.run_id).info.status == "KILLED"
    summary = json.loads((home / "runs" / killed_run / "sft_summary.json").read_text())
    assert summary["steps"] == 120 and summary["ranks"] == 2
    assert summary["resumed_from"].endswith(f"checkpoints-sft/checkpoint-{checkpoint}")
    steps = [m.step for m in c.get_metric_history(killed_run, "sft/loss")]
    assert sorted(steps) == list(range(2, 121, 2))  # every 2nd step (120 // 50), each once
    assert versions(home, "killed") == {1: ["challenger", "champion"]}
    assert [r.info.run_id for r in runs(home, "killed", "tags.`llmops.stage` = 'train'")] == [killed_run]
