"""Where the embedded default keeps its state, and the environment every entry point sets first.

Everything a local run writes lives under one folder, `$LLMOPS_HOME` (default `./.llmops`):
MLflow's SQLite database and artifacts, Prefect's home, the built base model, data and training
outputs. A team points the same commands at its servers by setting `MLFLOW_TRACKING_URI` and
`PREFECT_API_URL`; nothing here overrides a value that is already set.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path


def llmops_home() -> Path:
    return Path(os.environ.get("LLMOPS_HOME", ".llmops")).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{llmops_home() / 'mlflow.db'}"


def artifact_root() -> Path:
    return llmops_home() / "artifacts"


def setup_environment() -> Path:
    """Sets defaults for offline, local running. Must run before prefect or mlflow is imported."""
    home = llmops_home()
    home.mkdir(parents=True, exist_ok=True)
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
