"""Curated datasets as a person names them: by content hash, or `latest` for a config.

A curate run records its dataset in MLflow (tag `llmops.dataset_hash`, the folder as artifacts
`dataset/`, the eval split as `eval/`, the report as `curation/report.json`), so a train or
evaluate run started later — from the CLI, a Prefect form, or on another worker — finds exactly
those rows. Files are read where the curate run left them when they are on this machine, and
downloaded from the artifact store otherwise.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.paths import llmops_home
from registry.tracking import client, ensure_experiment, stage_filter

_HEX = re.compile(r"^[0-9a-f]{6,64}$")


@dataclass
class CuratedDataset:
    hash: str
    run_id: str | None
    dir: str
    eval_path: str
    eval_hash: str
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def sft_path(self) -> str:
        return str(Path(self.dir) / "sft.jsonl")

    @property
    def pref_path(self) -> str:
        return str(Path(self.dir) / "pref.jsonl")

    @property
    def sft_rows(self) -> int:
        return _lines(self.sft_path)

    @property
    def pref_rows(self) -> int:
        return _lines(self.pref_path)

    def lineage(self) -> dict[str, Any]:
        return {
            "dataset_hash": self.hash,
            "curate_run_id": self.run_id,
            "eval_hash": self.eval_hash,
            "read": self.report.get("read"),
            "kept": self.report.get("kept"),
            "dropped": self.report.get("dropped", {}),
            "pii": self.report.get("pii", {}),
        }


def _lines(path: str) -> int:
    return sum(1 for line in open(path, encoding="utf-8") if line.strip()) if Path(path).exists() else 0


def curate_runs(experiment: str, filter_string: str, max_results: int = 1) -> list:
    exp = ensure_experiment(experiment)
    query = f"{stage_filter('curate')} and attributes.status = 'FINISHED' and {filter_string}"
    return client().search_runs([exp], query, order_by=["attributes.start_time DESC"], max_results=max_results)


def _from_run(run) -> CuratedDataset:
    tags = run.data.tags
    digest = tags["llmops.dataset_hash"]
    local = tags.get("llmops.dataset_dir", "")
    eval_path = tags.get("llmops.eval_path", "")
    report_path = Path(local).parent / "report.json" if local else None
    if local and Path(local, "sft.jsonl").exists() and eval_path and Path(eval_path).exists():
        report = json.loads(report_path.read_text()) if report_path and report_path.exists() else {}
        return CuratedDataset(digest, run.info.run_id, local, eval_path, tags.get("llmops.eval_hash", ""), report)
    return _download(run, digest)


def _download(run, digest: str) -> CuratedDataset:
    """The dataset as the curate run logged it, fetched into the local cache (another machine's run)."""
    import mlflow

    dest = llmops_home() / "cache" / "datasets" / digest[:16]
    if not (dest / "dataset" / "sft.jsonl").exists():
        dest.mkdir(parents=True, exist_ok=True)
        for path in ("dataset", "eval", "curation/report.json"):
            mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=path, dst_path=str(dest))
    evals = sorted((dest / "eval").glob("*"))
    if not evals:
        raise UserError(
            f"dataset {digest[:12]}",
            f"its curate run {run.info.run_id} logged no eval split",
            "curate it again with this version of llmops",
        )
    report_file = dest / "curation" / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return CuratedDataset(
        digest, run.info.run_id, str(dest / "dataset"), str(evals[0]), run.data.tags.get("llmops.eval_hash", ""), report
    )


def resolve_dataset(ref: str, experiment: str, config_name: str) -> CuratedDataset:
    """`latest` (the newest curation of this config) or a dataset hash (or its first 6+ characters)."""
    ref = (ref or "latest").strip()
    if ref == "latest":
        runs = curate_runs(experiment, f"tags.`llmops.config_name` = '{config_name}'")
        if not runs:
            raise UserError(
                "dataset 'latest'",
                f"no finished curation of config {config_name!r} in experiment {experiment!r}",
                "run `llmops curate` (or the curate deployment) first, or give a dataset hash",
            )
        return _from_run(runs[0])
    if _HEX.match(ref.lower()):
        runs = curate_runs(experiment, f"tags.`llmops.dataset_hash` LIKE '{ref.lower()}%'", max_results=50)
        hashes = {r.data.tags["llmops.dataset_hash"] for r in runs}
        if len(hashes) > 1:
            raise UserError(f"dataset {ref!r}", f"matches {len(hashes)} datasets", "give more characters of the hash")
        if runs:
            return _from_run(runs[0])
    if Path(ref).expanduser().exists():
        raise UserError(
            f"dataset {ref!r}",
            "is a path; a run takes a curated dataset, which carries its eval split",
            f"curate it first: llmops curate --input {ref}, then pass the dataset hash it prints",
        )
    raise UserError(
        f"dataset {ref!r}",
        f"no finished curation with that hash in experiment {experiment!r}",
        "use 'latest', or a hash that `llmops curate` printed (see the curate runs in the MLflow UI)",
    )


# --------------------------------------------------------------------------- a curate run's records


def log_curation(run_id: str, result: Any, eval_path: str) -> str:
    """Everything a curate run records, then the tags it is found by (set last: a run that failed
    is never found). `result` is a `tasks.data.report.CurateResult`; returns the eval split's hash."""
    from registry import tracking

    r = result.report
    metrics = {"rows_read": result.read, "rows_kept": result.kept, "rows_dropped": sum(result.dropped.values())}
    metrics |= {f"rows_{kind}": r[f"{kind}_rows"] for kind in ("sft", "pref", "text")}
    metrics |= {f"dropped.{reason}": n for reason, n in result.dropped.items()}
    metrics |= {f"pii.{kind}": n for kind, n in r["pii"].items()}
    metrics |= {f"language.{lang}": n for lang, n in r["languages"].items()}
    for step in r.get("step_figures", []):  # rows in, rows out, CPU seconds and rows/s of every step
        for key in ("rows_in", "rows_out", "cpu_s", "rows_per_s"):
            if step[key] is not None:
                metrics[f"step.{step['step']}.{key}"] = step[key]
    metrics["near_duplicate_clusters"] = r["near_duplicate_clusters"]
    metrics["rows_unreadable"] = r["unreadable_rows"]
    tracking.log_metrics(run_id, metrics)
    c = client()
    for path in (result.report_path, result.quarantine_path, result.card_path, result.clusters_path):
        c.log_artifact(run_id, path, "curation")
    c.log_artifacts(run_id, result.dataset_dir, "dataset")
    c.log_artifact(run_id, eval_path, "eval")
    tracking.log_dataset(run_id, result.dataset_dir, "curated-parquet", result.dataset_hash, "training")
    tracking.log_dataset(run_id, result.sft_path, "curated-sft", result.dataset_hash, "training")
    if Path(result.pref_path).stat().st_size:
        tracking.log_dataset(run_id, result.pref_path, "curated-pref", result.dataset_hash, "training")
    eval_hash = tracking.file_hash(eval_path)
    tracking.log_dataset(run_id, eval_path, "eval", eval_hash, "evaluation")
    record_dataset(run_id, result.dataset_hash, result.dataset_dir, eval_path, eval_hash)
    return eval_hash


def record_dataset(run_id: str, dataset_hash: str, dataset_dir: str, eval_path: str, eval_hash: str) -> None:
    """The tags `resolve_dataset` finds a dataset by."""
    tags = {
        "llmops.dataset_hash": dataset_hash,
        "llmops.dataset_dir": dataset_dir,
        "llmops.eval_path": str(Path(eval_path).resolve()),
        "llmops.eval_hash": eval_hash,
    }
    for key, value in tags.items():
        client().set_tag(run_id, key, value)


def finished_curation(experiment: str, key: str):
    """A finished curate run of the same key whose dataset is still on this machine, or None."""
    for run in curate_runs(experiment, f"tags.`llmops.curate_key` = '{key}'", max_results=5):
        folder = run.data.tags.get("llmops.dataset_dir", "")
        if folder and (Path(folder) / "sft.jsonl").exists() and (Path(folder).parent / "report.json").exists():
            return run
    return None


def reuse_curation(run_id: str, earlier, eval_path: str):
    """Records that this run's dataset is the one an identical earlier run made; returns its
    `CurateResult`, read back from the earlier run's report."""
    from registry import tracking
    from tasks.data.report import CurateResult

    folder = Path(earlier.data.tags["llmops.dataset_dir"])
    report = json.loads((folder.parent / "report.json").read_text())
    result = CurateResult.from_report(report, folder.parent, folder)
    eval_hash = earlier.data.tags.get("llmops.eval_hash", "")
    client().set_tag(run_id, "llmops.reused_from", earlier.info.run_id)
    tracking.log_metrics(run_id, {"rows_read": result.read, "rows_kept": result.kept, "reused": 1.0})
    record_dataset(run_id, result.dataset_hash, result.dataset_dir, eval_path, eval_hash)
    result.eval_hash, result.reused_from = eval_hash, earlier.info.run_id
    return result


def log_progress(run_id: str, rows: int, rows_per_s: float, kept: int, dropped: int) -> None:
    """Rows/s over time in the curate run (step = rows done), so the MLflow UI draws the rate."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    values = {
        "progress.rows_per_s": rows_per_s,
        "progress.rows": rows,
        "progress.kept": kept,
        "progress.dropped": dropped,
    }
    client().log_batch(run_id, metrics=[Metric(k, float(v), now, rows) for k, v in values.items()])
