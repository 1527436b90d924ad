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

from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from configs.load import check_run_config, default_config
from configs.schema import RunConfig
from core.paths import llmops_home
from registry import tracking
from registry.prompts import register_synthetic_templates
from tasks.data import curate as library
from tasks.data.curate import plan_shards
from tasks.data.demo import write_demo_data

generate_demo_data = task(write_demo_data, name="generate-demo-data")
curate_dataset = task(library.curate_dataset, name="curate-dataset")
curate_shard = task(library.curate_shard, name="curate-shard")
merge_shards = task(library.merge_shards, name="merge-shards")


def curate_key(config: RunConfig, inputs: list[str], eval_path: str) -> str:
    """Same inputs (by content), same settings and same curation code: the same dataset. An input
    that cannot be read gets no key, so nothing is reused and curation reports it."""
    try:
        parts = {
            "inputs": [tracking.path_hash(p) for p in inputs],
            "eval": tracking.path_hash(eval_path),
            "curate": config.curate.model_dump(),
            "code": tracking.source_hash("tasks/data"),
        }
    except OSError:
        return "unreadable-input"
    return tracking.config_hash(parts)


@flow(name="curate")
def curate_flow(config: RunConfig = default_config(), parent_run_id: str | None = None) -> dict:
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
    with tracking.stage_run(config.registry.experiment, "curate", parent_run_id, tags) as run_id:
        tracking.log_params(run_id, {"data": data.model_dump(), "curate": config.curate.model_dump()})
        earlier = finished_curation(config.registry.experiment, key) if key != "unreadable-input" else None
        if earlier is not None:
            return reuse_curation(run_id, earlier, eval_path)
        out_dir = llmops_home() / "data" / "curated" / run_id
        synthetic = config.curate.synthetic
        versions = register_synthetic_templates(synthetic.operations) if synthetic.enabled else None
        if config.curate.shards > 1:
            eval_paths = list(dict.fromkeys([eval_path, *config.curate.decontaminate_paths]))
            specs = plan_shards(inputs, config.curate.shards, config.curate.format)
            shards = curate_shard.map(
                specs,
                unmapped(config.curate),
                unmapped(eval_paths),
                unmapped(str(out_dir / "shards")),
                unmapped(versions),
            )
            report = merge_shards([f.result() for f in shards], str(out_dir), config.curate)
        else:
            report = curate_dataset(
                inputs, str(out_dir), config.curate, eval_paths=[eval_path], template_versions=versions
            )

        metrics = {
            "rows_read": report["read"],
            "rows_kept": report["kept"],
            "rows_dropped": sum(report["dropped"].values()),
        }
        metrics |= {f"rows_{kind}": report[f"{kind}_rows"] for kind in ("sft", "pref", "text")}
        metrics |= {f"dropped.{reason}": n for reason, n in report["dropped"].items()}
        metrics |= {f"pii.{kind}": n for kind, n in report["pii"].items()}
        metrics |= {f"language.{lang}": n for lang, n in report["languages"].items()}
        metrics["near_duplicate_clusters"] = report["near_duplicate_clusters"]
        metrics["rows_unreadable"] = report["unreadable_rows"]
        tracking.log_metrics(run_id, metrics)
        for key in ("report_path", "quarantine_path", "card_path", "clusters_path"):
            tracking.client().log_artifact(run_id, report[key], "curation")
        tracking.client().log_artifacts(run_id, report["dataset_dir"], "dataset")
        tracking.client().log_artifact(run_id, eval_path, "eval")
        tracking.log_dataset(run_id, report["dataset_dir"], "curated-parquet", report["dataset_hash"], "training")
        tracking.log_dataset(run_id, report["sft_path"], "curated-sft", report["dataset_hash"], "training")
        if Path(report["pref_path"]).stat().st_size:
            tracking.log_dataset(run_id, report["pref_path"], "curated-pref", report["dataset_hash"], "training")
        eval_hash = tracking.file_hash(eval_path)
        tracking.log_dataset(run_id, eval_path, "eval", eval_hash, "evaluation")
        record_dataset(run_id, report, eval_path, eval_hash)

        table = [{"outcome": "kept", "step": "", "rows": report["kept"]}]
        table += [
            {"outcome": f"dropped: {reason}", "step": step, "rows": n}
            for step, reasons in report["dropped_by_step"].items()
            for reason, n in sorted(reasons.items())
        ]
        create_table_artifact(
            table=table,
            key="curation-report",
            description=f"Curation of {report['read']} rows (dataset {report['dataset_hash'][:12]})",
        )
        create_markdown_artifact(
            Path(report["card_path"]).read_text(encoding="utf-8"),
            key="data-card",
            description=f"Data card of dataset-{report['dataset_hash_short']}",
        )
        get_run_logger().info(f"curated {report['read']} rows: kept {report['kept']}, dropped {report['dropped']}")
        for warning in report["warnings"]:  # an empty input; inputs skipped under curate.allow_unreadable
            get_run_logger().warning(warning)
        return {**report, "run_id": run_id, "eval_path": eval_path, "eval_hash": eval_hash}


def record_dataset(run_id: str, report: dict, eval_path: str, eval_hash: str) -> None:
    """The tags `registry.datasets` finds a dataset by, set last: a run that failed is never found."""
    tags = {
        "llmops.dataset_hash": report["dataset_hash"],
        "llmops.dataset_dir": report["dataset_dir"],
        "llmops.eval_path": str(Path(eval_path).resolve()),
        "llmops.eval_hash": eval_hash,
    }
    for key, value in tags.items():
        tracking.client().set_tag(run_id, key, value)


def finished_curation(experiment: str, key: str):
    """A finished curate run of the same key whose dataset is still on this machine, or None."""
    from registry.datasets import curate_runs

    for run in curate_runs(experiment, f"tags.`llmops.curate_key` = '{key}'", max_results=5):
        folder = run.data.tags.get("llmops.dataset_dir", "")
        if folder and (Path(folder) / "sft.jsonl").exists() and (Path(folder).parent / "report.json").exists():
            return run
    return None


def reuse_curation(run_id: str, earlier, eval_path: str) -> dict:
    """Records that this run's dataset is the one an identical earlier run made, without redoing it."""
    import json

    folder = Path(earlier.data.tags["llmops.dataset_dir"])
    report = json.loads((folder.parent / "report.json").read_text())
    report |= {
        "report_path": str(folder.parent / "report.json"),
        "dataset_dir": str(folder),
        "sft_path": str(folder / "sft.jsonl"),
        "pref_path": str(folder / "pref.jsonl"),
        "quarantine_path": str(folder.parent / "quarantine.jsonl"),
        "card_path": str(folder / "DATACARD.md"),
        "clusters_path": str(folder.parent / "clusters.json"),
    }
    eval_hash = earlier.data.tags.get("llmops.eval_hash", "")
    tracking.client().set_tag(run_id, "llmops.reused_from", earlier.info.run_id)
    tracking.log_metrics(run_id, {"rows_read": report["read"], "rows_kept": report["kept"], "reused": 1.0})
    record_dataset(run_id, report, eval_path, eval_hash)
    get_run_logger().info(
        f"same inputs, settings and code as curate run {earlier.info.run_id}: "
        f"reusing dataset {report['dataset_hash'][:12]}"
    )
    return {
        **report,
        "run_id": run_id,
        "eval_path": eval_path,
        "eval_hash": eval_hash,
        "reused_from": earlier.info.run_id,
    }


def run_curate(config: RunConfig, parent_run_id: str | None = None) -> dict:
    """The curate flow on the task runner the config names (threads, or a Dask cluster)."""
    from flows.runners import with_runner

    return with_runner(curate_flow, config.curate)(config, parent_run_id=parent_run_id)
