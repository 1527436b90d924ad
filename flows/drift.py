"""Drift: are today's inputs still like the data the model was trained on?

    llmops drift --reference latest --current inputs.jsonl
    PREFECT_API_URL=http://127.0.0.1:4200/api   # then serve drift_deployment() (daily, 06:00 UTC)

The statistics and the verdict are `tasks.drift`'s; the thresholds are the config's `drift:`
section. Every run is an MLflow run tagged `llmops.stage=drift` holding each statistic as a
metric (one run a day gives the time series), the result as JSON, the figure of this check and
one of every statistic across the past checks of the same reference; the reference and current
files are its dataset inputs. A flagged set also gets a Prefect markdown artifact,
and with `fail_on_drift` the flow run ends Failed, which is what a schedule's notification
fires on (the CLI exits with code 3 instead).

The parameters are plain strings and a flag so that the Prefect UI renders a form a person can
fill in, not a nested config.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed
from pydantic import Field

from core.paths import llmops_home
from registry import tracking
from tasks.drift import check as library
from tasks.drift.plot import plot_drift, plot_history

DRIFT_CRON = "0 6 * * *"
DEFAULT_CURRENT = "inputs/current.jsonl"  # under $LLMOPS_HOME

check_input_drift = task(library.check_drift, name="check-input-drift")
plot_input_drift = task(plot_drift, name="plot-input-drift")
HISTORY_RUNS = 400  # a year of daily checks, and some


def curated_root() -> Path:
    return llmops_home() / "data" / "curated"


def current_path(current: str) -> str:
    return current or str(llmops_home() / DEFAULT_CURRENT)


def drift_history(experiment: str, reference: str) -> list[dict]:
    """The metrics of the latest checks of this reference (this one included), oldest first."""
    from datetime import datetime, timezone

    runs = tracking.client().search_runs(
        [tracking.ensure_experiment(experiment)],
        tracking.stage_filter("drift"),
        order_by=["attributes.start_time DESC"],
        max_results=HISTORY_RUNS,
    )
    # The reference is compared here, not in the filter string, so that no quote in a path can break the query.
    return [
        {"time": datetime.fromtimestamp(r.info.start_time / 1000, tz=timezone.utc), "metrics": r.data.metrics}
        for r in reversed(runs)
        if r.data.tags.get("llmops.drift.reference") == reference
    ]


def registered_dataset(reference: str, config) -> str:
    """`latest` or a dataset hash as the registry knows it (the curate runs in MLflow, so a dataset
    curated on another worker is fetched); a path, or a name the registry does not know, as given."""
    from core.errors import UserError
    from registry.datasets import resolve_dataset

    if Path(reference).expanduser().exists():
        return reference
    try:
        return resolve_dataset(reference, config.registry.experiment, config.name).dir
    except UserError:
        return reference  # tasks.drift searches $LLMOPS_HOME itself and says what it found


@flow(name="drift")
def drift_flow(
    reference: str = Field(
        "latest",
        description="what the model was trained on: a dataset hash (or its first 6+ "
        "characters), a dataset-<hash> folder, a JSONL/Parquet file, or 'latest' (the newest "
        "dataset curated under $LLMOPS_HOME)",
    ),
    current: str = Field(
        "",
        description="the inputs to check: a JSONL (.jsonl, .jsonl.gz) or Parquet file of "
        "prompts in any layout `llmops curate` reads; empty = $LLMOPS_HOME/inputs/current.jsonl",
    ),
    config_path: str = Field(
        "", description="YAML run config whose drift: section holds the thresholds; empty = configs/nightly.yaml"
    ),
    overrides: list[str] = Field([], description="config overrides, KEY=VALUE each, e.g. drift.max_far_share=0.2"),
    fail_on_drift: bool = Field(
        True, description="end the flow run Failed when drift is flagged, so a schedule can alert on it"
    ),
):
    from configs.load import load_config

    config = load_config(config_path or None, overrides, check=False)  # the machine check is about training
    current = current_path(current)
    logger = get_run_logger()
    with tracking.stage_run(config.registry.experiment, "drift", tags={"llmops.drift.reference": reference}) as run_id:
        tracking.log_params(run_id, {"drift": config.drift.model_dump(), "reference": reference, "current": current})
        result, arrays = check_input_drift(
            registered_dataset(reference, config),
            current,
            config.drift,
            curated_root(),
            llmops_home() / "cache" / "embeddings",
        )
        for side, context in ((result.reference, "reference"), (result.current, "current")):
            for path in side["paths"]:
                digest = tracking.file_hash(path) if Path(path).is_file() else Path(path).name
                tracking.log_dataset(run_id, path, f"drift-{context}", digest, context)
        tracking.log_metrics(run_id, result.metrics())
        tracking.log_json(run_id, result.to_dict(), "drift/result.json")
        plot = plot_input_drift(
            result,
            arrays,
            llmops_home() / "plots" / f"drift-{run_id}.png",
            f"input drift: {Path(current).name} against {reference}",
        )
        tracking.client().log_artifact(run_id, str(plot), "drift")
        history = plot_history(
            drift_history(config.registry.experiment, reference),
            result.checks,
            llmops_home() / "plots" / f"drift-{run_id}" / "history.png",
            f"input drift against {reference}, check by check",
        )
        tracking.client().log_artifact(run_id, str(history), "drift")
        tracking.client().set_tag(run_id, "llmops.drift.flagged", str(result.flagged).lower())
        report = f"reference: {', '.join(result.reference['paths'])}\ncurrent: {current}\n\n{result.table()}"
        (logger.warning if result.flagged else logger.info)("\n" + report)
        if result.flagged:
            create_markdown_artifact(
                f"# Input drift: {', '.join(result.reasons)}\n\n```\n{report}\n```\n\nMLflow run `{run_id}`",
                key="input-drift",
                description=f"{Path(current).name}: DRIFT ({', '.join(result.reasons)})",
            )
    summary = {
        "run_id": run_id,
        "flagged": result.flagged,
        "reasons": result.reasons,
        "result": result.to_dict(),
        "table": result.table(),
        "plot": str(plot),
        "current": current,
    }
    if result.flagged and fail_on_drift:
        return Failed(message=f"input drift: {', '.join(result.reasons)} (MLflow run {run_id})", data=summary)
    return summary


def drift_deployment(cron: str = DRIFT_CRON):
    """The daily drift check as a deployment: the newest curated dataset against $LLMOPS_HOME/inputs/current.jsonl."""
    return drift_flow.to_deployment(
        name="drift",
        cron=cron,
        tags=["llmops", "scheduled"],
        description="Daily input drift check against the training data; fails when flagged.",
    )
