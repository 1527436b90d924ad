"""Where the embedded default keeps its state, and the environment every entry point sets first.

Everything a local run writes lives under one folder, `$LLMOPS_HOME` (default `./.llmops`):
MLflow's SQLite database and artifacts, Prefect's home, the built base model, data and training
outputs. A team points the same commands at its servers by setting `MLFLOW_TRACKING_URI` and
`PREFECT_API_URL`; nothing here overrides a value that is already set.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path

from llmops.errors import UserError

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
        raise UserError(subject, f"{home} is not writable ({why})",
                        f"make it writable (e.g. chmod u+w {home}) or {fix}") from None
    for name in WRITTEN_INSIDE:
        inner = home / name
        if inner.exists() and not os.access(inner, os.W_OK | (os.X_OK if inner.is_dir() else 0)):
            raise UserError(subject, f"{inner} is not writable", f"make it writable (e.g. chmod -R u+w {home}) or {fix}")


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


def prepare_home() -> None:
    """What a command that runs flows needs, once its config has been found good.

    Not part of `setup_environment`: a bad config must fail before anything is started or
    written. Points Prefect at the home's server (llmops/server.py), creates the MLflow store from
    one process, and marks KILLED the runs that processes killed earlier left RUNNING.
    """
    import sys

    from llmops.server import ensure_server
    from registry.tracking import init_store, reap_dead_runs

    ensure_server()
    init_store()
    reaped = reap_dead_runs()
    if reaped:
        print(f"marked {len(reaped)} MLflow run(s) KILLED that a killed process had left RUNNING: "
              + ", ".join(reaped), file=sys.stderr)


class UserErrorLogFilter:
    """Drops Prefect's own report of a `UserError` raised in a flow or task.

    Prefect 3.9 logs a failing run three ways, each to stderr: "Task run failed with exception"
    and "Encountered exception during execution" with the traceback (exc_info), then "Finished in
    state Failed('... encountered an exception <Type>: <message>')". For a UserError the CLI prints
    the one line that matters itself, so all three are noise; the run's state still records it.
    """

    _STATE = re.compile(r"encountered an exception:? (\w+):")

    def filter(self, record: logging.LogRecord) -> bool:
        from llmops.errors import UserError

        if record.exc_info and isinstance(record.exc_info[1], UserError):
            return False
        found = self._STATE.search(record.getMessage())
        return not (found and found.group(1) in _names(UserError))


def _names(cls: type) -> set[str]:
    return {cls.__name__}.union(*(_names(sub) for sub in cls.__subclasses__()))


# The loggers Prefect's flow and task engines log through (prefect/logging/logging.yml).
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
_USER_ERROR_FILTER = UserErrorLogFilter()


def quiet_libraries(debug: bool = False) -> None:
    """Silences warnings that say nothing actionable about a local run (each was read and judged),
    and Prefect's tracebacks of user errors; `debug` puts those tracebacks back."""
    import warnings

    for name in RUN_LOGGERS:  # a logger's filters survive Prefect's dictConfig; its handlers would not
        if debug:
            logging.getLogger(name).removeFilter(_USER_ERROR_FILTER)
        else:
            logging.getLogger(name).addFilter(_USER_ERROR_FILTER)

    # bitsandbytes on CPU: an optional kernel package is missing; the slower path works.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # MLflow looks for a hub model card and licence for the local model folder.
    logging.getLogger("mlflow.transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
    warnings.filterwarnings("ignore", message=".*tensor.detach.*")
