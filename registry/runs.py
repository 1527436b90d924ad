"""The MLflow reads and writes that flows need about runs, as named functions, and links into MLflow's UI.

Flows wire tasks and registry calls; they do not build MLflow queries or hold a client. What the
promote and drift flows used to do inline lives here: finding the evaluation that still fits a
version, reading the config a version was trained with and the counts of its curation, a drift
check's history, and logging a text or a file to a run by id.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from registry.tracking import client, ensure_experiment, stage_filter

# Where a person opens MLflow's UI when the store is a local file: `make ui` serves it there.
MLFLOW_UI_VAR = "LLMOPS_MLFLOW_UI"
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class EvaluationRun:
    """A finished evaluate run of one version: what it scored, against which champion."""

    run_id: str
    suites: str  # the suites' signature (names and item versions)
    compared_version: str | None  # the champion it was compared with, if any


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    start_time_ms: int
    tags: dict[str, str]
    metrics: dict[str, float]


def evaluations_of(experiment: str, name: str, version: int, run_id: str = "", limit: int = 10) -> list[EvaluationRun]:
    """Finished evaluate runs of `name` v`version`, newest first (only `run_id` when given)."""
    query = (
        f"{stage_filter('evaluate')} and attributes.status = 'FINISHED' and "
        f"tags.`llmops.model_name` = '{name}' and tags.`llmops.model_version` = '{version}'"
    )
    if run_id:
        query += f" and attributes.run_id = '{run_id}'"
    runs = client().search_runs(
        [ensure_experiment(experiment)], query, order_by=["attributes.start_time DESC"], max_results=limit
    )
    return [
        EvaluationRun(r.info.run_id, r.data.tags.get("llmops.suites", ""), r.data.tags.get("llmops.compared_version"))
        for r in runs
    ]


def stage_runs(experiment: str, stage: str, limit: int) -> list[RunRecord]:
    """The newest runs of a stage (`llmops.stage`), newest first."""
    runs = client().search_runs(
        [ensure_experiment(experiment)],
        stage_filter(stage),
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )
    return [RunRecord(r.info.run_id, r.info.start_time, dict(r.data.tags), dict(r.data.metrics)) for r in runs]


def trained_config(train_run_id: str) -> dict[str, Any] | None:
    """The resolved config a train run logged (`config/resolved.json`), or None when it logged none."""
    import mlflow

    try:
        return json.loads(mlflow.artifacts.load_text(f"runs:/{train_run_id}/config/resolved.json"))
    except Exception:  # a version registered some other way, or an artifact store that lost it
        return None


def run_metrics(run_id: str) -> dict[str, float]:
    return dict(client().get_run(run_id).data.metrics) if run_id else {}


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    client().log_text(run_id, text, artifact_file)


def log_file(run_id: str, path: str, folder: str) -> None:
    client().log_artifact(run_id, path, folder)


def set_run_tag(run_id: str, key: str, value: str) -> None:
    client().set_tag(run_id, key, value)


# ------------------------------------------------------------------------------ links


def mlflow_ui() -> str:
    """The address of the MLflow UI that shows this store: the tracking server itself, or for a local
    SQLite store the one `make ui` serves ($LLMOPS_MLFLOW_UI overrides it)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return os.environ.get(MLFLOW_UI_VAR, DEFAULT_MLFLOW_UI).rstrip("/")


def run_url(run_id: str) -> str:
    experiment = client().get_run(run_id).info.experiment_id
    return f"{mlflow_ui()}/#/experiments/{experiment}/runs/{run_id}"


def version_url(name: str, version: int) -> str:
    return f"{mlflow_ui()}/#/models/{name}/versions/{version}"
