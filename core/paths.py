"""Where a home keeps its state, and the environment every entry point sets first.

Everything a local run writes lives under one folder, `$LLMOPS_HOME` (default `./.llmops`):
MLflow's SQLite database and artifacts, Prefect's home, the built base model, data and training
outputs. A team points the same commands at its servers by setting `MLFLOW_TRACKING_URI` and
`PREFECT_API_URL`; nothing here overrides a value that is already set.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from core.errors import UserError

# What a local run writes into, besides the home itself: each must stay writable once it exists.
WRITTEN_INSIDE = ("prefect", "prefect/prefect.db", "mlflow.db", "artifacts", "models", "data", "runs", "cache", "locks")


def llmops_home() -> Path:
    return Path(os.environ.get("LLMOPS_HOME", ".llmops")).resolve()


def _home_subject() -> str:
    """LLMOPS_HOME as the user set it, or the default it fell back to."""
    given = os.environ.get("LLMOPS_HOME")
    return f"LLMOPS_HOME={given}" if given else f"LLMOPS_HOME (unset, so {llmops_home()})"


def check_home(home: Path) -> None:
    """Creates the home and proves it writable, so a bad one fails here in a second, by name.

    Without this a read-only home surfaced minutes later as Prefect's "Timed out while attempting
    to connect to ephemeral Prefect API server" (the cause, SQLite's "unable to open database
    file", buried in its output), and a home under a file as a NotADirectoryError traceback.
    """
    subject, fix = _home_subject(), "set LLMOPS_HOME to a folder you can write (it is created if missing)"
    if home.exists() and not home.is_dir():
        raise UserError(subject, f"{home} is a file, not a folder", fix)
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        blocker = next((p for p in home.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise UserError(subject, f"cannot create {home}: {blocker} is a file, not a folder", fix) from None
        raise UserError(subject, f"cannot create {home} ({err.strerror or err})", fix) from None
    probe = home / f".write-test-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as err:
        why = "read-only file system" if err.errno == errno.EROFS else (err.strerror or str(err))
        raise UserError(
            subject, f"{home} is not writable ({why})", f"make it writable (e.g. chmod u+w {home}) or {fix}"
        ) from None
    for name in WRITTEN_INSIDE:
        inner = home / name
        if inner.exists() and not os.access(inner, os.W_OK | (os.X_OK if inner.is_dir() else 0)):
            raise UserError(
                subject, f"{inner} is not writable", f"make it writable (e.g. chmod -R u+w {home}) or {fix}"
            )


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{llmops_home() / 'mlflow.db'}"


def artifact_root() -> Path:
    return llmops_home() / "artifacts"


def setup_environment() -> Path:
    """Sets defaults for offline, local running. Must run before prefect or mlflow is imported.

    Raises `UserError` naming LLMOPS_HOME when the home cannot be created or written.
    """
    home = llmops_home()
    check_home(home)
    defaults = {
        "PREFECT_HOME": str(home / "prefect"),
        # The ephemeral Prefect server's 20 s default start-up timeout was seen to expire under load.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        # lm-eval and evaluate log from helper threads outside any run context; keep those local.
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # Progress bars of small artifact downloads (the audit log, a card) would bury one-line errors.
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_TRACKING_URI": tracking_uri(),
        # A tracking server that has gone away: MLflow 3.17's defaults (7 retries, backoff factor 2,
        # 120 s timeout) wait about 4 minutes per call, and a run makes many calls. urllib3 sleeps
        # factor * 2**(k-1) s before retry k >= 2, so 5 retries at factor 1 give up after about
        # 30 s (+ up to 4 s jitter): long enough to ride out a server restart. The timeout bounds
        # a server that accepts but never answers; raise it for very large model uploads.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "1.0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
        # No model hub is reachable: fail fast instead of retrying for half a minute.
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return home
