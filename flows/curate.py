"""Curate: raw corpora in, a clean dataset folder out, and every dropped row accounted for.

    llmops curate --config configs/nightly.yaml
    llmops curate --input hh.jsonl.gz --output out/      (see `llmops curate --help`)

The steps and their thresholds come from `config.curate`; the run's eval split is always one of
the sets the training rows are decontaminated against. The dataset is named by its content hash,
which is what `train` takes (`dataset=<hash>` or `latest`), and is logged with its eval split so a
worker on another machine finds the same rows. Curating the same inputs with the same settings and
code again reuses the finished dataset instead of redoing the work (a re-run after a crash).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact
from prefect.context import FlowRunContext

from configs.load import check_run_config, default_config
from configs.schema import RunConfig
from core.paths import llmops_home
from registry import datasets, tracking
from registry.prompts import register_synthetic_templates
from tasks.data import curate as library
from tasks.data import shard_schedule as schedule
from tasks.data import shards as sharded
from tasks.data.demo import write_demo_data
from tasks.data.progress import Progress, watched
from tasks.data.report import CurateResult

generate_demo_data = task(write_demo_data, name="generate-demo-data")
curate_dataset = task(library.curate_dataset, name="curate-dataset")
read_shard = task(sharded.read_shard, name="curate-read-shard")
shard_rows = task(sharded.shard_rows, name="curate-shard-rows")
synthesize_shards = task(sharded.synthesize_shards, name="curate-synthesize-shards")

LOG_EVERY_S = 10  # a plain progress line in the run's log at most this often
TRACK_EVERY_S = 10  # rows/s to MLflow
ARTIFACT_EVERY_S = 2  # the Prefect progress artifact


def curate_key(config: RunConfig, inputs: list[str], eval_path: str) -> str:
    """Same inputs (by content), same settings and same curation code: the same dataset. An input
    that cannot be read gets no key, so nothing is reused and curation reports it. How many
    processes or shards ran it is not part of the key: they give the same dataset."""
    try:
        settings = config.curate.model_dump(exclude={"processes", "shards", "task_runner", "dask_address"})
        parts = {
            "inputs": [tracking.path_hash(p) for p in inputs],
            "eval": tracking.path_hash(eval_path),
            "curate": settings,
            "code": tracking.source_hash("tasks/data"),
        }
    except OSError:
        return "unreadable-input"
    return tracking.config_hash(parts)


def progress_listeners(run_id: str) -> list:
    """What a running curation reports to: a log line (kept off a terminal that draws a live bar),
    a Prefect progress artifact, rows/s in the MLflow run."""
    logger = get_run_logger()
    artifact = create_progress_artifact(0.0, key="curation-progress", description="Curation: share of the input read")

    def log(p: Progress) -> None:
        logger.info(p.line(), extra={"llmops_progress": True} if watched() else {})

    def show(p: Progress) -> None:
        from prefect.artifacts import update_progress_artifact

        if p.fraction is not None:
            update_progress_artifact(artifact, progress=100 * p.fraction, description=p.line())

    def track(p: Progress) -> None:
        datasets.log_progress(run_id, p.rows, p.rows_per_s, p.kept, p.dropped)

    return [(log, LOG_EVERY_S), (show, ARTIFACT_EVERY_S), (track, TRACK_EVERY_S)]


@flow(name="curate")
def curate_flow(config: RunConfig = default_config(), parent_run_id: str | None = None) -> CurateResult:
    """Curate the config's inputs (or the demo data) into a dataset named by its content hash.

    Args:
        config: the run config; its `data` and `curate` sections are what this stage reads.
        parent_run_id: MLflow run to nest this run under (set by nightly; leave empty).
    """
    check_run_config(config)
    data = config.data
    if data.inputs:
        inputs, eval_path = list(data.inputs), data.eval_path
    else:
        demo = generate_demo_data(
            llmops_home() / "data" / f"demo-seed{data.seed}",
            data.seed,
            data.demo_train_rows,
            data.demo_pref_rows,
            data.demo_eval_rows,
        )
        inputs, eval_path = [demo["train"], demo["pref"]], demo["eval"]
    key = curate_key(config, inputs, eval_path)
    tags = {"llmops.config_name": config.name, "llmops.curate_key": key}
    logger = get_run_logger()
    with tracking.stage_run(config.registry.experiment, "curate", parent_run_id, tags) as run_id:
        tracking.log_params(run_id, {"data": data.model_dump(), "curate": config.curate.model_dump()})
        earlier = datasets.finished_curation(config.registry.experiment, key) if key != "unreadable-input" else None
        if earlier is not None:
            result = datasets.reuse_curation(run_id, earlier, eval_path)
            logger.info(
                f"same inputs, settings and code as curate run {earlier.info.run_id}: "
                f"reusing dataset {result.dataset_hash[:12]}"
            )
            logger.info(f"dataset {result.dataset_hash}")
            return replace(result, run_id=run_id, eval_path=eval_path)
        out_dir = llmops_home() / "data" / "curated" / run_id
        synthetic = config.curate.synthetic
        versions = register_synthetic_templates(synthetic.operations) if synthetic.enabled else None
        eval_paths = list(dict.fromkeys([eval_path, *config.curate.decontaminate_paths]))
        listeners = progress_listeners(run_id)
        if config.curate.shards > 1:
            result = run_shards(config, inputs, eval_paths, out_dir, versions, listeners)
        else:
            result = curate_dataset(
                inputs, str(out_dir), config.curate, [eval_path], template_versions=versions, progress=listeners
            )
        eval_hash = datasets.log_curation(run_id, result, eval_path)
        publish_artifacts(result)
        logger.info(f"curated {result.read} rows: kept {result.kept}, dropped {result.dropped}")
        for warning in result.report["warnings"]:  # an empty input; inputs skipped under curate.allow_unreadable
            logger.warning(warning)
        logger.info(f"dataset {result.dataset_hash}")
        return replace(result, run_id=run_id, eval_path=eval_path, eval_hash=eval_hash)


def run_shards(config: RunConfig, inputs, eval_paths, out_dir: Path, versions, listeners) -> CurateResult:
    """The shards' tasks as Prefect task runs on the flow's task runner, each started as soon as
    what it reads is done (`tasks.data.shard_schedule`); dedup where its state lives, the merge
    here as the shards finish: the configured step order, on whatever runs the mapped tasks."""
    settings = config.curate
    specs = sharded.plan_shards(inputs, settings.shards, settings.format)
    on = OnPrefect(FlowRunContext.get().task_runner)
    return schedule.curate_shards(specs, settings, eval_paths, str(out_dir), on, versions, listeners)


class OnPrefect:
    """Where `tasks.data.shard_schedule` runs a sharded curation's tasks in a flow: each as a
    Prefect task run on the flow's task runner; the dedup calls on a Dask actor (a Dask runner) or
    in a thread of this process (a thread pool), where their state stays between shards."""

    TASKS = {
        sharded.read_shard: read_shard,
        sharded.shard_rows: shard_rows,
        sharded.synthesize_shards: synthesize_shards,
    }

    def __init__(self, runner):
        client = runner.client if type(runner).__name__ == "DaskTaskRunner" else None
        self.resident = schedule.DaskResident(client) if client is not None else schedule.LocalResident()

    def submit(self, fn, *args):
        return self.TASKS[fn].submit(*args)

    def ordered(self, fn, *args):
        return self.resident.call(fn, *args)

    def done(self, future) -> bool:
        return getattr(future, "wrapped_future", future).done()

    def result(self, future):
        return future.result()

    def close(self) -> None:
        self.resident.close()


def publish_artifacts(result: CurateResult) -> None:
    """The curation table and the data card, in the flow run's Artifacts tab."""
    table = [{"outcome": "kept", "step": "", "rows": result.kept}]
    table += [
        {"outcome": f"dropped: {reason}", "step": step, "rows": n}
        for step, reasons in result.report["dropped_by_step"].items()
        for reason, n in sorted(reasons.items())
    ]
    create_table_artifact(
        table=table,
        key="curation-report",
        description=f"Curation of {result.read} rows: dataset {result.dataset_hash}",
    )
    create_table_artifact(
        table=result.report["step_figures"],
        key="curation-steps",
        description="Rows in and out, CPU seconds and rows per CPU-second of each step",
    )
    create_markdown_artifact(
        Path(result.card_path).read_text(encoding="utf-8"),
        key="data-card",
        description=f"Data card of dataset-{result.dataset_hash_short}",
    )


def run_curate(config: RunConfig, parent_run_id: str | None = None) -> CurateResult:
    """The curate flow on the task runner the config names (threads, or a Dask cluster)."""
    from flows.runners import with_runner

    return with_runner(curate_flow, config.curate)(config, parent_run_id=parent_run_id)


def progress_filter() -> logging.Filter:
    """For the CLI's terminal: a filter that keeps the flow's plain progress lines off the console
    while the live bar shows the same figures (the run's log in Prefect keeps them)."""

    class NoProgress(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not getattr(record, "llmops_progress", False)

    return NoProgress()
