"""Curate: raw JSONL in, a clean dataset out, and every dropped row accounted for.

    llmops curate --config configs/nightly.yaml
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from configs.schema import RunConfig
from llmops.home import llmops_home
from registry import tracking
from tasks.data.curate import curate_dataset
from tasks.data.demo import generate_demo_data


@flow(name="curate")
def curate_flow(config: RunConfig, parent_run_id: str | None = None) -> dict:
    data = config.data
    with tracking.stage_run(config.registry.experiment, "curate", parent_run_id) as run_id:
        if data.inputs:
            inputs, eval_path = list(data.inputs), data.eval_path
        else:
            demo = generate_demo_data(str(llmops_home() / "data" / f"demo-seed{data.seed}"), data.seed,
                                      data.demo_train_rows, data.demo_pref_rows, data.demo_eval_rows)
            inputs, eval_path = [demo["train"], demo["pref"]], demo["eval"]
        tracking.log_params(run_id, {"data": data.model_dump(), "curate": config.curate.model_dump()})
        out_dir = llmops_home() / "data" / "curated" / run_id
        report = curate_dataset(inputs, str(out_dir), config.curate)

        metrics = {"rows_read": report["read"], "rows_kept": report["kept"],
                   "rows_dropped": sum(report["dropped"].values())}
        metrics |= {f"dropped.{reason}": n for reason, n in report["dropped"].items()}
        metrics |= {f"pii.{kind}": n for kind, n in report["pii"].items()}
        tracking.log_metrics(run_id, metrics)
        tracking.client().log_artifact(run_id, report["report_path"], "curation")
        tracking.client().log_artifact(run_id, report["quarantine_path"], "curation")
        tracking.log_dataset(run_id, report["sft_path"], "curated-sft", report["dataset_hash"], "training")
        if Path(report["pref_path"]).stat().st_size:
            tracking.log_dataset(run_id, report["pref_path"], "curated-pref", report["dataset_hash"], "training")
        eval_hash = tracking.file_hash(eval_path)
        tracking.log_dataset(run_id, eval_path, "eval", eval_hash, "evaluation")
        tracking.client().set_tag(run_id, "llmops.dataset_hash", report["dataset_hash"])

        table = [{"outcome": "kept", "rows": report["kept"]}]
        table += [{"outcome": f"dropped: {reason}", "rows": n} for reason, n in sorted(report["dropped"].items())]
        create_table_artifact(table=table, key="curation-report",
                              description=f"Curation of {report['read']} rows (dataset {report['dataset_hash'][:12]})")
        get_run_logger().info(f"curated {report['read']} rows: kept {report['kept']}, dropped {report['dropped']}")
        return {**report, "run_id": run_id, "eval_path": eval_path, "eval_hash": eval_hash}
