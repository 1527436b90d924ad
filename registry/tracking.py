"""The MLflow store every stage writes to: experiment, stage runs nested under a parent, inputs.

Runs are addressed by id, never through MLflow's thread-local "active run", because Prefect may
run a task on another thread than its flow. A stage run started inside the nightly flow names
the nightly run as its parent, which is what nests it in the MLflow UI.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

from llmops.home import artifact_root


def client():
    from mlflow import MlflowClient

    return MlflowClient()


def ensure_experiment(name: str) -> str:
    """The experiment's id; a new local experiment keeps its artifacts under $LLMOPS_HOME."""
    import mlflow
    from mlflow.exceptions import MlflowException

    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if os.environ.get("MLFLOW_TRACKING_URI", "").startswith("sqlite:"):
        location = (artifact_root() / name).as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it since we looked
        existing = mlflow.get_experiment_by_name(name)
        if existing is None:
            raise
        return existing.experiment_id


def init_store() -> None:
    """Creates a new local SQLite store from one process at a time.

    Several processes opening a brand-new SQLite database at once corrupt it for good (MLflow's
    schema migrations race: `table _alembic_tmp_latest_metrics already exists`); once it exists,
    concurrent writers are fine. A store elsewhere (a server, PostgreSQL) is left to itself.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith("sqlite:///"):
        return
    from llmops.locks import file_lock

    with file_lock(Path(uri.removeprefix("sqlite:///"))):
        client().search_experiments(max_results=1)


def process_tags() -> dict[str, str]:
    """Which process opens a run: what `reap_dead_runs` checks later."""
    import socket

    from llmops.server import process_started

    started = process_started(os.getpid())
    return {"llmops.host": socket.gethostname(), "llmops.pid": str(os.getpid()),
            "llmops.pid_started": f"{started:.3f}" if started else ""}


def reap_dead_runs() -> list[str]:
    """Marks KILLED every RUNNING run opened on this host by a process that no longer runs.

    A process killed with SIGKILL cannot end its runs, and MLflow would show them RUNNING
    forever. Runs of other hosts (a shared tracking server) and runs without the process tags
    (written by older versions) are left alone. Returns the ids of the runs it ended.
    """
    import socket

    from llmops.server import is_alive

    c, host = client(), socket.gethostname()
    experiments = [e.experiment_id for e in c.search_experiments()]
    if not experiments:
        return []
    reaped = []
    for run in c.search_runs(experiments, f"attributes.status = 'RUNNING' and tags.`llmops.host` = '{host}'",
                             max_results=1000):
        tags = run.data.tags
        try:
            pid, started = int(tags["llmops.pid"]), float(tags["llmops.pid_started"]) if tags.get("llmops.pid_started") else None
        except (KeyError, ValueError):
            continue
        if is_alive(pid, started):
            continue
        c.set_tag(run.info.run_id, "llmops.ended_by", f"process {pid} on {host} ended without closing the run")
        c.set_terminated(run.info.run_id, status="KILLED")
        reaped.append(run.info.run_id)
    return reaped


@contextlib.contextmanager
def stage_run(experiment: str, name: str, parent_run_id: str | None = None, tags: dict[str, str] | None = None) -> Iterator[str]:
    """Starts a run by id, ends it FINISHED or FAILED; yields the run id. Tagged with its process."""
    all_tags = {"llmops.stage": name, "mlflow.runName": name, **process_tags(), **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    commit = git_commit()
    if commit:
        all_tags["mlflow.source.git.commit"] = commit
    run = client().create_run(ensure_experiment(experiment), tags=all_tags, run_name=name)
    run_id = run.info.run_id
    try:
        yield run_id
    except BaseException:
        client().set_terminated(run_id, status="FAILED")
        raise
    client().set_terminated(run_id, status="FINISHED")


def log_params(run_id: str, params: dict[str, Any], prefix: str = "") -> None:
    """Flattens a nested config into dotted MLflow params."""
    from mlflow.entities import Param

    flat: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else k)
        else:
            flat[key] = str(value)[:6000]

    walk(params, prefix)
    items = [Param(k, v) for k, v in sorted(flat.items())]
    for start in range(0, len(items), 100):
        client().log_batch(run_id, params=items[start : start + 100])


def log_metrics(run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client().log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def metric_sink(run_id: str):
    """A step sink for the training library: each logged step's figures go to this run, by id."""

    def sink(step: int, figures: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        client().log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in figures.items()])

    return sink


def log_json(run_id: str, payload: Any, artifact_file: str) -> None:
    client().log_text(run_id, json.dumps(payload, indent=1, default=str), artifact_file)


def log_dataset(run_id: str, path: str, name: str, digest: str, context: str) -> None:
    """Records a file or folder as a dataset input of the run: its path and content hash as digest.

    No rows are loaded: a curated corpus can be far larger than memory, and its counts are
    already the curate run's metrics.
    """
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a local path matches two equivalent source types; MLflow says so
        source = resolve_dataset_source(str(path))
    dataset = MetaDataset(source, name=name, digest=digest[:36])
    client().log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(),
                                                       tags=[InputTag("mlflow.data.context", context)])])


def file_hash(*paths: str | Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""
