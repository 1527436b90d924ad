"""Several llmops processes on one LLMOPS_HOME, one killed mid-run, and the home's Prefect server.

The end-to-end tests run the real CLI in subprocesses with the default per-home Prefect server
(llmops/server.py), on a home of this module's own, and stop that server at the end. They share
the home, so the second reuses the server and base model the first one made.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEERED_BY_CONFTEST = (
    "PREFECT_HOME",
    "MLFLOW_TRACKING_URI",
    "PREFECT_API_URL",
    "LLMOPS_HOME_PREFECT_URL",
    "LLMOPS_PREFECT_SERVER",
)


def cli_env(home: Path) -> dict[str, str]:
    """The environment of a user's shell: only LLMOPS_HOME set, so the per-home server is used."""
    return {k: v for k, v in os.environ.items() if k not in STEERED_BY_CONFTEST} | {"LLMOPS_HOME": str(home)}


def start_cli(home: Path, logs: Path, *args: str) -> subprocess.Popen:
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "llmops.cli", *args], stdout=out, stderr=err, env=cli_env(home), cwd=ROOT
        )


def run_cli(home: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(home),
        cwd=ROOT,
        timeout=timeout,
    )


def prefect_processes(home: Path) -> list[int]:
    """Pids of live processes serving Prefect for this home (a per-home or a temporary server)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if (
                ("prefect" in cmd or "uvicorn" in cmd)
                and "server" in cmd
                and proc.status() != psutil.STATUS_ZOMBIE
                and proc.environ().get("PREFECT_HOME") == str(home / "prefect")
            ):
                found.append(proc.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def recorded_server(home: Path) -> list[int]:
    """The Prefect server the home's record names: the child of its idle watcher (the recorded pid)."""
    import psutil

    from llmops.server import read_state

    return [child.pid for child in psutil.Process(read_state(home)["pid"]).children()]


def store(home: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def running_runs(home: Path) -> list:
    c = store(home)
    experiments = [e.experiment_id for e in c.search_experiments()]
    return c.search_runs(experiments, "attributes.status = 'RUNNING'") if experiments else []


def wait_for(condition, proc: subprocess.Popen, logs: Path, what: str, limit_s: float = 900):
    """Polls `condition` while `proc` runs; the limit only keeps a broken run from hanging the suite."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(
                f"the command ended (code {proc.returncode}) before {what}: {(logs / 'stderr').read_text()[-3000:]}"
            )
        time.sleep(0.5)
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("one-home")
    yield home
    run_cli(home, "stop", "--force", timeout=120)  # whatever a failed test left running


@pytest.fixture(scope="module")
def small(tiny_overrides) -> list[str]:
    """`tiny_overrides`, smaller still: two runs share two cores, and only their bookkeeping is judged."""
    return [*tiny_overrides, "model.tiny.pretrain_steps=20", "train.sft.max_steps=10", "train.preference.max_steps=2"]


pytestmark = pytest.mark.slow


def test_two_nightlies_at_once_on_one_home(home, small, tmp_path):
    from llmops.server import live_clients

    sets = [arg for o in [*small, "gate.min_gain_over_base=-1.0"] for arg in ("--set", o)]
    procs = [start_cli(home, tmp_path / f"nightly-{i}", "nightly", *sets) for i in range(2)]
    wait_for(lambda: len(live_clients(home)) == 2, procs[0], tmp_path / "nightly-0", "both used the server")
    refused = run_cli(home, "stop", timeout=120)  # both still run: stopping the server would fail them
    assert refused.returncode == 2 and "in use by running llmops process" in refused.stderr
    assert {p.wait(timeout=1800) for p in procs} == {0}, [
        (tmp_path / f"nightly-{i}" / "stderr").read_text()[-3000:] for i in range(2)
    ]

    stderr = [(tmp_path / f"nightly-{i}" / "stderr").read_text() for i in range(2)]
    assert sum("starting the Prefect server" in err for err in stderr) == 1  # one server, shared
    assert prefect_processes(home) == recorded_server(home)
    built = [p.name for p in (home / "models").iterdir() if p.is_dir()]
    assert len(built) == 1 and built[0].startswith("tiny-")  # the base model was built once

    c = store(home)
    parents = [
        line.split()[3]
        for i in range(2)
        for line in (tmp_path / f"nightly-{i}" / "stdout").read_text().splitlines()
        if line.startswith("MLflow parent run:")
    ]
    experiment = c.get_experiment_by_name("llmops").experiment_id
    trains = {
        c.search_runs([experiment], f"tags.mlflow.parentRunId = '{p}' and tags.`llmops.stage` = 'train'")[0].info.run_id
        for p in parents
    }
    assert len(trains) == 2
    versions = {
        int(v.version): c.get_model_version("tiny-arith", v.version)
        for v in c.search_model_versions("name = 'tiny-arith'")
    }
    assert sorted(versions) == [1, 2]
    assert {v.tags["lineage.train_run_id"] for v in versions.values()} == trains  # each registered once
    holders = {alias: [n for n, v in versions.items() if alias in v.aliases] for alias in ("champion", "challenger")}
    assert len(holders["champion"]) == 1 and len(holders["challenger"]) == 1
    audit_run = c.search_runs(
        [c.get_experiment_by_name("llmops-audit").experiment_id], "tags.`llmops.audit_model` = 'tiny-arith'"
    )
    assert len(audit_run) == 1
    entries = [
        json.loads(line)
        for line in Path(c.download_artifacts(audit_run[0].info.run_id, "audit.jsonl", str(tmp_path)))
        .read_text()
        .splitlines()
    ]
    assert sorted(e["version"] for e in entries) == [1, 2]
    promoted = [e["version"] for e in entries if e["action"] == "promote"]
    assert promoted and holders["champion"] == promoted[-1:]  # the last promotion holds the champion
    if len(promoted) == 2:
        assert "previous" in versions[promoted[0]].aliases
    assert running_runs(home) == []


def sft_has_started(home: Path, experiment: str) -> bool:
    """A RUNNING train run of `experiment` has logged SFT loss: the kill lands inside SFT."""
    try:
        with sqlite3.connect(f"file:{home / 'mlflow.db'}?mode=ro", uri=True) as db:
            return (
                db.execute(
                    "SELECT count(*) FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid "
                    "JOIN experiments e ON e.experiment_id = r.experiment_id "
                    "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'llmops.stage' AND t.value = 'train' "
                    "WHERE m.key = 'sft/loss' AND r.status = 'RUNNING' AND e.name = ?",
                    (experiment,),
                ).fetchone()[0]
                > 0
            )
    except sqlite3.Error:  # not created yet
        return False


def sft_checkpoints(home: Path) -> list[Path]:
    """Complete SFT checkpoints (the trainer writes trainer_state.json last) of every train run."""
    return list((home / "runs").glob("*/checkpoints-sft/checkpoint-*/trainer_state.json"))


def test_killed_nightly_leaves_no_running_run_and_no_stray_server(home, small, tmp_path):
    """Killed inside SFT after a checkpoint: the next start marks its runs KILLED, the same `train`
    command resumes the killed train run from that checkpoint, and no server is orphaned."""
    from llmops.server import read_state

    sets = [arg for o in [*small, "train.sft.max_steps=400", "registry.experiment=killed"] for arg in ("--set", o)]
    logs = tmp_path / "killed"
    earlier = set(sft_checkpoints(home))  # the home is shared: other tests' runs left theirs
    nightly = start_cli(home, logs, "nightly", *sets)
    wait_for(
        lambda: sft_has_started(home, "killed") and set(sft_checkpoints(home)) - earlier,
        nightly,
        logs,
        "SFT wrote a checkpoint",
    )
    nightly.send_signal(signal.SIGKILL)
    nightly.wait(timeout=60)
    left = {r.info.run_id: r.data.tags["llmops.stage"] for r in running_runs(home)}
    assert sorted(left.values()) == ["nightly", "train"]  # what a kill used to leave RUNNING forever

    # The next command on this home ends them.
    curate = run_cli(home, "curate", *sets)
    assert curate.returncode == 0, curate.stderr[-3000:]
    assert "marked 2 MLflow run(s) KILLED" in curate.stderr
    assert running_runs(home) == []
    for run_id in left:
        run = store(home).get_run(run_id)
        assert run.info.status == "KILLED" and f"process {nightly.pid} " in run.data.tags["llmops.ended_by"]

    # The same training, started again, continues the killed run from its last checkpoint.
    killed_train = next(run_id for run_id, stage in left.items() if stage == "train")
    train = run_cli(home, "train", *sets)
    assert train.returncode == 0, train.stderr[-3000:]
    assert "trained (resumed)" in train.stdout and f"MLflow run: {killed_train}" in train.stdout
    assert store(home).get_run(killed_train).info.status == "FINISHED"
    summary = json.loads((home / "runs" / killed_train / "sft_summary.json").read_text())
    assert summary["steps"] == 400 and "/checkpoints-sft/checkpoint-" in summary["resumed_from"]

    # No server was orphaned: the only one is the documented per-home server, which `llmops stop` ends.
    state = read_state(home)
    assert prefect_processes(home) == recorded_server(home)
    stop = run_cli(home, "stop", timeout=120)
    assert (
        stop.returncode == 0 and f"stopped the Prefect server of LLMOPS_HOME={home} (pid {state['pid']}" in stop.stdout
    )
    assert prefect_processes(home) == [] and read_state(home) is None
    assert "no Prefect server is recorded" in run_cli(home, "stop", timeout=120).stdout
