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
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from core.errors import UserError
from core.paths import artifact_root

# When a tracking server last failed every retry (time.monotonic()). Cleanup after that failure
# (marking runs FAILED) makes one quick try instead of waiting through the same retries again.
_server_down_at: float | None = None
DOWN_FOR_S = 120.0


def server_failure(exc: BaseException) -> UserError | None:
    """The UserError for a tracking server that could not be used, or None for any other error.

    MLflow reports a server that is gone, after its retries, as an MlflowException whose context
    holds the requests error; its text is a long URL and a urllib3 repr. This names
    MLFLOW_TRACKING_URI, what happened and what to check instead.
    """
    import requests

    global _server_down_at
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    subject = f"MLFLOW_TRACKING_URI={uri}"
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    text = " ".join(str(e) for e in seen)
    if isinstance(seen[0], UserError):
        return None
    if any(isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in DB_DRIVERS for e in seen):
        missing = next(e.name for e in seen if isinstance(e, ModuleNotFoundError))
        return UserError(
            subject,
            f"the database driver {missing!r} is not installed",
            "install the server extra (pip install 'llmops[server]'), or point MLFLOW_TRACKING_URI "
            "at the team's MLflow server (http://HOST:5000) rather than at its database",
        )
    for e in seen:
        if isinstance(
            e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.RetryError)
        ):
            _server_down_at = time.monotonic()
            return UserError(
                subject,
                f"the MLflow server {_failure_kind(e, text)} ({_retry_summary()})",
                f"check that it is running and reachable from this machine (curl {uri}/health), then run "
                "the command again (MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT set "
                "how long to wait)",
            )
    status = re.search(r"failed with error code (401|403) != 200", text)
    if status and status.group(1) == "401":
        return UserError(
            subject,
            "the MLflow server asks for a login (HTTP 401)",
            "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to your account on it",
        )
    if status and "DNS rebinding" in text:
        return UserError(
            subject,
            "the MLflow server refuses the host name in this address (HTTP 403, Host header)",
            "add that host name to the server's --allowed-hosts, or use a name it already allows",
        )
    if status:
        return UserError(
            subject,
            "the MLflow server denied this request (HTTP 403)",
            "ask its administrator for permission on this experiment or model",
        )
    return None


DB_DRIVERS = {"psycopg", "psycopg2", "asyncpg", "pymysql", "MySQLdb"}


def _failure_kind(exc: BaseException, text: str) -> str:
    import requests

    if isinstance(exc, requests.exceptions.Timeout) or "timed out" in text.lower():
        return f"did not answer within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '120')} s"
    if isinstance(exc, requests.exceptions.RetryError) or "too many" in text and "error responses" in text:
        return "kept answering with server errors (5xx)"
    if "Connection refused" in text:
        return "refused the connection"
    if "Name or service not known" in text or "NameResolutionError" in text:
        return "host name could not be resolved"
    return "could not be reached"


def _retry_summary() -> str:
    retries = int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7"))
    factor = float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2"))
    waited = factor * (2**retries - 2) if retries > 1 else 0
    return f"{retries} retries over about {waited:.0f} s"


def server_recently_down() -> bool:
    return _server_down_at is not None and time.monotonic() - _server_down_at < DOWN_FOR_S


@contextlib.contextmanager
def _quick_while_down() -> Iterator[None]:
    """Right after a server failure, one request with no retries and a short timeout.

    MLflow reads its retry settings per request, so they are lowered around the call. Cleanup
    after the failure (closing runs, undoing a registration) then fails at once instead of
    waiting through the same retries again; if the server is back, it succeeds and clears the
    mark.
    """
    global _server_down_at
    if not server_recently_down():
        yield
        return
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    saved = {k: os.environ.get(k) for k in quick}
    os.environ.update(quick)
    try:
        yield
        _server_down_at = None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _close_failed_run(run_id: str) -> None:
    """Marks a run FAILED. If the server is still gone, the run stays RUNNING on it until the
    next start marks it; the stage's own error is the one reported either way."""
    try:
        client().set_terminated(run_id, status="FAILED")
    except Exception:
        pass


class _Client:
    """MlflowClient whose calls raise `server_failure`'s UserError when the server cannot be used.

    Without it a caller that treats MlflowException as "not found" (no champion yet, no such
    model) would read a server that is down as an empty registry.
    """

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            try:
                with _quick_while_down():
                    return attr(*args, **kwargs)
            except Exception as exc:
                error = server_failure(exc)
                if error is None:
                    raise
                raise error from exc

        return call


def client():
    from mlflow import MlflowClient

    return _Client(MlflowClient())


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
        c.set_tag(run.info.run_id, "llmops.ended_by", f"process {pid} on {host} ended without closing the run")
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
    all_tags = {"llmops.stage": name, "mlflow.runName": name, **process_tags(), **link, **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    commit = git_commit()
    if commit:
        all_tags["mlflow.source.git.commit"] = commit
    if resume_run_id:
        run_id = resume_run_id
        client().update_run(run_id, status="RUNNING")
        for key, value in all_tags.items():
            if key != "mlflow.parentRunId":  # a resumed run stays where it was first nested
                client().set_tag(run_id, key, value)
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
