"""Where the embedded default keeps its state, and the environment every entry point sets first.

Everything a local run writes lives under one folder, `$LLMOPS_HOME` (default `./.llmops`):
MLflow's SQLite database and artifacts, Prefect's home, the built base model, data and training
outputs. A team points the same commands at its servers by setting `MLFLOW_TRACKING_URI` and
`PREFECT_API_URL`; nothing here overrides a value that is already set.
"""

from __future__ import annotations

import os
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


def quiet_libraries() -> None:
    """Silences warnings that say nothing actionable about a local run (each was read and judged)."""
    import logging
    import warnings

    # bitsandbytes on CPU: an optional kernel package is missing; the slower path works.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # MLflow looks for a hub model card and licence for the local model folder.
    logging.getLogger("mlflow.transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
    warnings.filterwarnings("ignore", message=".*tensor.detach.*")
