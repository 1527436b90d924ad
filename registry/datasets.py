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
