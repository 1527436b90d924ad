"""Curate: raw corpora in, a clean dataset folder out, and every dropped row accounted for.

    llmops curate --config configs/nightly.yaml
    llmops curate --input hh.jsonl.gz --output out/      (see `llmops curate --help`)

The steps and their thresholds come from `config.curate`; the run's eval split is always one of
the sets the training rows are decontaminated against.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from configs.schema import RunConfig
from llmops.home import llmops_home
from registry import tracking
from registry.prompts import register_synthetic_templates
from tasks.data import curate as library
from tasks.data.curate import plan_shards
from tasks.data.demo import write_demo_data

generate_demo_data = task(write_demo_data, name="generate-demo-data")
curate_dataset = task(library.curate_dataset, name="curate-dataset")
curate_shard = task(library.curate_shard, name="curate-shard")
merge_shards = task(library.merge_shards, name="merge-shards")


@flow(name="curate")
def curate_flow(config: RunConfig, parent_run_id: str | None = None) -> dict:
    data = config.data
    with tracking.stage_run(config.registry.experiment, "curate", parent_run_id) as run_id:
        if data.inputs:
            inputs, eval_path = list(data.inputs), data.eval_path
        else:
            demo = generate_demo_data(llmops_home() / "data" / f"demo-seed{data.seed}", data.seed,
                                      data.demo_train_rows, data.demo_pref_rows, data.demo_eval_rows)
            inputs, eval_path = [demo["train"], demo["pref"]], demo["eval"]
        tracking.log_params(run_id, {"data": data.model_dump(), "curate": config.curate.model_dump()})
        out_dir = llmops_home() / "data" / "curated" / run_id
        synthetic = config.curate.synthetic
        versions = register_synthetic_templates(synthetic.operations) if synthetic.enabled else None
        if config.curate.shards > 1:
            eval_paths = list(dict.fromkeys([eval_path, *config.curate.decontaminate_paths]))
            specs = plan_shards(inputs, config.curate.shards, config.curate.format)
            shards = curate_shard.map(specs, unmapped(config.curate), unmapped(eval_paths), unmapped(str(out_dir / "shards")),
                                      unmapped(versions))
            report = merge_shards([f.result() for f in shards], str(out_dir), config.curate)
        else:
            report = curate_dataset(inputs, str(out_dir), config.curate, eval_paths=[eval_path], template_versions=versions)

        metrics = {"rows_read": report["read"], "rows_kept": report["kept"],
                   "rows_dropped": sum(report["dropped"].values())}
        metrics |= {f"rows_{kind}": report[f"{kind}_rows"] for kind in ("sft", "pref", "text")}
        metrics |= {f"dropped.{reason}": n for reason, n in report["dropped"].items()}
        metrics |= {f"pii.{kind}": n for kind, n in report["pii"].items()}
        metrics |= {f"language.{lang}": n for lang, n in report["languages"].items()}
        metrics["near_duplicate_clusters"] = report["near_duplicate_clusters"]
        metrics["rows_unreadable"] = report["unreadable_rows"]
        tracking.log_metrics(run_id, metrics)
        for key in ("report_path", "quarantine_path", "card_path", "clusters_path"):
            tracking.client().log_artifact(run_id, report[key], "curation")
        tracking.log_dataset(run_id, report["dataset_dir"], "curated-parquet", report["dataset_hash"], "training")
        tracking.log_dataset(run_id, report["sft_path"], "curated-sft", report["dataset_hash"], "training")
        if Path(report["pref_path"]).stat().st_size:
            tracking.log_dataset(run_id, report["pref_path"], "curated-pref", report["dataset_hash"], "training")
        eval_hash = tracking.file_hash(eval_path)
        tracking.log_dataset(run_id, eval_path, "eval", eval_hash, "evaluation")
        tracking.client().set_tag(run_id, "llmops.dataset_hash", report["dataset_hash"])

        table = [{"outcome": "kept", "step": "", "rows": report["kept"]}]
        table += [{"outcome": f"dropped: {reason}", "step": step, "rows": n}
                  for step, reasons in report["dropped_by_step"].items() for reason, n in sorted(reasons.items())]
        create_table_artifact(table=table, key="curation-report",
                              description=f"Curation of {report['read']} rows (dataset {report['dataset_hash'][:12]})")
        create_markdown_artifact(Path(report["card_path"]).read_text(encoding="utf-8"), key="data-card",
                                 description=f"Data card of dataset-{report['dataset_hash_short']}")
        get_run_logger().info(f"curated {report['read']} rows: kept {report['kept']}, dropped {report['dropped']}")
        for warning in report["warnings"]:  # an empty input; inputs skipped under curate.allow_unreadable
            get_run_logger().warning(warning)
        return {**report, "run_id": run_id, "eval_path": eval_path, "eval_hash": eval_hash}


def run_curate(config: RunConfig, parent_run_id: str | None = None) -> dict:
    """The curate flow on the task runner the config names (threads, or a Dask cluster)."""
    from flows.runners import with_runner

    return with_runner(curate_flow, config.curate)(config, parent_run_id=parent_run_id)
