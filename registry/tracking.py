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
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from core.paths import artifact_root
from registry.outage import GuardedClient, server_failure

STAGE_TAG = "llmops.stage"
PARENT_TAG = "mlflow.parentRunId"
ENDED_BY_TAG = "llmops.ended_by"  # what `reap_dead_runs` notes on a run it ended


def _close_failed_run(run_id: str) -> None:
    """Marks a run FAILED. If the server is still gone, the run stays RUNNING on it until the
    next start marks it; the stage's own error is the one reported either way."""
    try:
        client().set_terminated(run_id, status="FAILED")
    except Exception:
        pass


def client():
    from mlflow import MlflowClient

    return GuardedClient(MlflowClient())


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
    from core.locks import file_lock

    with file_lock(Path(uri.removeprefix("sqlite:///"))):
        client().search_experiments(max_results=1)


def process_tags() -> dict[str, str]:
    """Which process opens a run: what `reap_dead_runs` checks later."""
    import socket

    from core.process import process_started

    started = process_started(os.getpid())
    return {
        "llmops.host": socket.gethostname(),
        "llmops.pid": str(os.getpid()),
        "llmops.pid_started": f"{started:.3f}" if started else "",
    }


def reap_dead_runs(is_alive: Callable[[int, float | None], bool]) -> list[str]:
    """Marks KILLED every RUNNING run opened on this host by a process that no longer runs.

    A process killed with SIGKILL cannot end its runs, and MLflow would show them RUNNING
    forever. Runs of other hosts (a shared tracking server) and runs without the process tags
    (written by older versions) are left alone. `is_alive(pid, started)` tells a live process from a
    dead one (`core.process.is_alive`; the caller passes it). Returns the ids of the runs it ended.
    """
    import socket

    c, host = client(), socket.gethostname()
    experiments = [e.experiment_id for e in c.search_experiments()]
    if not experiments:
        return []
    reaped = []
    for run in c.search_runs(
        experiments, f"attributes.status = 'RUNNING' and tags.`llmops.host` = '{host}'", max_results=1000
    ):
        tags = run.data.tags
        try:
            pid, started = (
                int(tags["llmops.pid"]),
                float(tags["llmops.pid_started"]) if tags.get("llmops.pid_started") else None,
            )
        except (KeyError, ValueError):
            continue
        if is_alive(pid, started):
            continue
        c.set_tag(run.info.run_id, ENDED_BY_TAG, f"process {pid} on {host} ended without closing the run")
        c.set_terminated(run.info.run_id, status="KILLED")
        reaped.append(run.info.run_id)
    return reaped


def prefect_link() -> dict[str, str]:
    """Tags naming the Prefect flow run this code runs in, if any, so each UI leads to the other: the
    MLflow run's description links the flow run, and the flow run's log names the MLflow run.
    Prefect is only looked at when the caller already imported it (the registry does not need it)."""
    import sys

    if "prefect" not in sys.modules:
        return {}
    from prefect.runtime import flow_run

    if not flow_run.id:
        return {}
    link = {"llmops.prefect_flow_run_id": flow_run.id, "llmops.prefect_flow_run": flow_run.name or ""}
    url = flow_run.ui_url
    if url:
        link |= {
            "llmops.prefect_flow_run_url": url,
            "mlflow.note.content": f"Prefect flow run [{flow_run.name}]({url}) ({flow_run.flow_name})",
        }
    return link


def _announce(run_id: str, experiment: str, name: str) -> None:
    """The flow run's log names the MLflow run; called only inside a flow run (`prefect_link` found one)."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        get_run_logger().info(f"MLflow run {run_id} ({name}, experiment {experiment!r})")
    except MissingContextError:
        pass


def stage_filter(stage: str) -> str:
    """The search filter for the runs of one stage (`train`, `curate`, ...): spelled here, once."""
    return f"tags.`{STAGE_TAG}` = '{stage}'"


def _resume(run_id: str, tags: dict[str, str], parent_run_id: str | None) -> None:
    """A resumed run joins the command that resumed it: nested under its parent (or none), RUNNING again,
    without the `ended_by` note the reaper left when its first process died."""
    c = client()
    c.update_run(run_id, status="RUNNING")
    for key, value in tags.items():
        c.set_tag(run_id, key, value)
    old = c.get_run(run_id).data.tags
    for key in ([] if parent_run_id else [PARENT_TAG]) + [ENDED_BY_TAG]:
        if key in old:
            c.delete_tag(run_id, key)


@contextlib.contextmanager
def stage_run(
    experiment: str,
    name: str,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    resume_run_id: str | None = None,
) -> Iterator[str]:
    """Starts a run by id (or continues `resume_run_id`, an unfinished run of the same work), ends it
    FINISHED or FAILED; yields the run id. Tagged with its process (see `reap_dead_runs`)."""
    link = prefect_link()
    all_tags = {STAGE_TAG: name, "mlflow.runName": name, **process_tags(), **link, **(tags or {})}
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    commit = git_commit()
    if commit:
        all_tags["mlflow.source.git.commit"] = commit
    if resume_run_id:
        run_id = resume_run_id
        _resume(run_id, all_tags, parent_run_id)
    else:
        run_id = client().create_run(ensure_experiment(experiment), tags=all_tags, run_name=name).info.run_id
    if link:
        _announce(run_id, experiment, name)
    try:
        yield run_id
    except BaseException as exc:
        error = server_failure(exc) if isinstance(exc, Exception) else None
        _close_failed_run(run_id)
        if error is not None:
            raise error from exc
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

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client().log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def metric_sink(run_id: str, resumed: bool = False):
    """A step sink for the training library: each logged step's figures go to this run, by id.

    Each (metric, step) is logged once. A resumed run redoes the steps after its last checkpoint (all
    of them, when it was killed before the first); those already in the run keep the value logged
    first, from the same checkpoint, data order and seeds, instead of appearing twice in the history.
    """
    seen: dict[str, set[int]] = {}

    def logged(key: str) -> set[int]:
        if key not in seen:
            seen[key] = {m.step for m in client().get_metric_history(run_id, key)} if resumed else set()
        return seen[key]

    def sink(step: int, figures: dict[str, float]) -> None:

        from mlflow.entities import Metric

        fresh = {k: v for k, v in figures.items() if step not in logged(k)}
        if not fresh:
            return
        now = int(time.time() * 1000)
        client().log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in fresh.items()])
        for key in fresh:
            seen[key].add(step)

    return sink


def log_file(run_id: str, path: str | Path, folder: str) -> None:
    """One local file as an artifact of the run, under `folder`."""
    client().log_artifact(run_id, str(path), folder)


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
    client().log_inputs(
        run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])]
    )


def file_hash(*paths: str | Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def path_hash(path: str | Path) -> str:
    """A file's sha256, or a folder's over its files' relative names and contents."""
    path = Path(path)
    if not path.is_dir():
        return file_hash(path)
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(path)}\0{file_hash(f)}\0".encode())
    return digest.hexdigest()


def source_hash(package: str) -> str:
    """The project's own code under `package` (e.g. tasks/data): a cache key part that changes with the code."""
    root = Path(__file__).resolve().parents[1] / package
    digest = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        digest.update(f"{f.relative_to(root)}\0".encode() + f.read_bytes())
    return digest.hexdigest()


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""
