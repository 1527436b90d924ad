"""The end of every curation, however it ran: the dataset folder, the quarantine, the report.

Chunks arrive in input order (from one process or from every shard in turn); their kept rows go to
the dataset writer and their drops to the quarantine, sorted by input position, so
`quarantine.jsonl` lists dropped rows in input order whatever ran where. `report.json` then holds
the ledger, what each step reported, and per step its rows in and out, CPU seconds and rows/s.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from configs.schema import CurateConfig
from tasks.data.card import write_data_card
from tasks.data.faults import check_finished_run, input_warnings, rule_shares
from tasks.data.pipeline import Chunk
from tasks.data.progress import ProgressMeter
from tasks.data.quality import QualityStats
from tasks.data.records import Ledger
from tasks.data.stats import StepStats, merge_all
from tasks.data.write import KINDS, DatasetWriter, publish


@dataclass
class CurateResult:
    """What a curation hands the next stage: the dataset by hash and where everything is.
    `report` is report.json as written (docs/curation-faults.md describes its fields)."""

    dataset_hash: str
    dataset_dir: str
    sft_path: str
    pref_path: str
    report_path: str
    quarantine_path: str
    card_path: str
    clusters_path: str
    read: int
    kept: int
    dropped: dict[str, int]
    report: dict[str, Any] = field(repr=False)
    run_id: str | None = None  # the MLflow run, once the flow logged it
    eval_path: str | None = None
    eval_hash: str | None = None
    reused_from: str | None = None  # the curate run whose identical dataset this run reused

    @property
    def dataset_hash_short(self) -> str:
        return self.dataset_hash[:16]

    @classmethod
    def from_report(cls, report: dict[str, Any], out: Path, dataset_dir: Path) -> CurateResult:
        return cls(
            dataset_hash=report["dataset_hash"],
            dataset_dir=str(dataset_dir),
            sft_path=str(dataset_dir / "sft.jsonl"),
            pref_path=str(dataset_dir / "pref.jsonl"),
            report_path=str(out / "report.json"),
            quarantine_path=str(out / "quarantine.jsonl"),
            card_path=str(dataset_dir / "DATACARD.md"),
            clusters_path=str(out / "clusters.json"),
            read=report["read"],
            kept=report["kept"],
            dropped=dict(report["dropped"]),
            report=report,
        )


def prepare(out_dir: str) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    partial_dir = out / ".dataset-partial"
    if partial_dir.exists():
        shutil.rmtree(partial_dir)  # left by a run that crashed
    partial_dir.mkdir()
    return out


def write_outputs(
    out: Path,
    ledger: Ledger,
    chunks: Iterable[Chunk],
    settings: CurateConfig,
    sources: dict[str, dict[str, Any]],
    meter: ProgressMeter | None = None,
    extra_stats: Callable[[], dict[str, StepStats]] | None = None,
) -> CurateResult:
    """Writes every chunk's rows and drops, then the report and card; checks the ledger balances."""
    import time

    partial_dir = out / ".dataset-partial"
    totals: dict[str, StepStats] = {}
    write = StepStats("write")
    with ExitStack() as stack:
        writer = DatasetWriter(partial_dir, stack)
        for chunk in chunks:
            start = time.thread_time()
            for st in chunk.stats.values():
                ledger.dropped.update(st.prefixed("dropped"))
                ledger.read += st.read
            merge_all(totals, chunk.stats)
            ledger.write_drops(chunk.drops)
            write.rows_in += len(chunk.rows)
            for row in chunk.rows:
                writer.write(row)
                sources.setdefault(row.source, {"format": "teacher", "read": 0, "kept": 0})["kept"] += 1
            ledger.kept += len(chunk.rows)
            if chunk.rendered is not None:  # rendered in a shard task
                part = chunk.rendered
                writer.write_rendered(part)
                for source, n in part.sources.items():
                    sources.setdefault(source, {"format": "teacher", "read": 0, "kept": 0})["kept"] += n
                write.rows_in += part.count
                ledger.kept += part.count
                write.cpu_s += part.cpu_s
            write.cpu_s += time.thread_time() - start
            if meter is not None:
                meter.update(ledger)
        start = time.thread_time()
        dataset_hash = writer.finish()
        write.cpu_s += time.thread_time() - start
    write.rows_out = write.rows_in
    ledger.close()
    ledger.check_balance()
    if extra_stats is not None:
        merge_all(totals, extra_stats())
    if meter is not None:
        meter.finish(ledger)

    dataset_dir = out / f"dataset-{dataset_hash[:16]}"
    publish(partial_dir, dataset_dir)
    report = _report(ledger, settings, totals, write, sources, writer, dataset_hash)
    report["warnings"] = input_warnings(report, settings)
    write_data_card(report, settings, dataset_dir)
    clusters = totals.get("near_dedup", StepStats("near_dedup")).info.get("clusters") or {}
    (out / "clusters.json").write_text(json.dumps(clusters, indent=1) + "\n", encoding="utf-8")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    result = CurateResult.from_report(report, out, dataset_dir)
    check_finished_run(result, settings, quality_stats(totals.get("quality")))
    return result


def quality_stats(stats: StepStats | None) -> QualityStats:
    """The quality step's per-rule counts, as `tasks.data.faults` judges them."""
    if stats is None:
        return QualityStats()
    return QualityStats(seen=stats.prefixed("seen"), dropped=stats.prefixed("dropped"), examples=dict(stats.examples))


def _report(
    ledger: Ledger,
    settings: CurateConfig,
    totals: dict[str, StepStats],
    write: StepStats,
    sources: dict[str, dict[str, Any]],
    writer: DatasetWriter,
    dataset_hash: str,
) -> dict[str, Any]:
    steps = [totals[name] for name in settings.steps if name in totals]
    by_step = {s.name: dict(sorted(s.prefixed("dropped").items())) for s in steps}
    read_drops = ledger.dropped - sum((Counter(v) for v in by_step.values()), Counter())  # what no step saw
    synthetic = totals.get("synthesize", StepStats("synthesize"))
    if "synthetic" in sources:  # variants a teacher wrote count as read from the "synthetic" source
        sources["synthetic"]["read"] = synthetic.read
    for path, src in sources.items():
        if "format" not in src:  # an input (a teacher's rows carry theirs)
            counts = ledger.formats.get(path, Counter())
            src["format"], src["formats"] = _format_label(counts), dict(counts.most_common())
    quality = quality_stats(totals.get("quality"))
    read_stats = totals.get("read", StepStats("read"))
    decontaminate = totals.get("decontaminate", StepStats("decontaminate"))
    clusters = totals.get("near_dedup", StepStats("near_dedup")).info.get("clusters") or {}
    return {
        **ledger.summary(),
        "format": {path: _format_label(counts) for path, counts in ledger.formats.items()},
        "formats": {path: dict(counts.most_common()) for path, counts in ledger.formats.items()},
        "sources": sources,
        "steps": list(settings.steps),
        "shards": settings.shards,
        "processes": totals["read"].info.get("processes", 1) if "read" in totals else 1,
        "dropped_by_step": {step: c for step, c in {"read": dict(sorted(read_drops.items())), **by_step}.items() if c},
        "step_figures": [s.figures() for s in [read_stats, *steps, write]],
        "pii": dict(sorted(({"email": 0, "phone": 0} | totals.get("pii", StepStats("pii")).prefixed("pii")).items())),
        "languages": dict(totals.get("quality", StepStats("quality")).prefixed("language").most_common()),
        "decontamination": dict(sorted(decontaminate.prefixed("eval_hit").items(), key=lambda kv: (-kv[1], kv[0]))),
        "eval_items": decontaminate.info.get("eval_items", {}),
        "dataset_hash": dataset_hash,
        "dataset_hash_short": dataset_hash[:16],
        **{f"{kind}_rows": writer.rows[kind] for kind in KINDS},
        "synthetic_rows": writer.synthetic,
        "synthetic": dict(sorted(synthetic.prefixed("synthetic").items())),
        "quality": {
            "max_drop_fraction": settings.quality.max_drop_fraction,
            "seen": dict(quality.seen),
            "rules": rule_shares(quality),
        },
        "near_duplicate_clusters": clusters.get("clusters", 0),
    }


def _format_label(counts: Counter[str]) -> str:
    """What the report calls an input's format: the one its rows had, "mixed", or "unknown" (no rows)."""
    return next(iter(counts)) if len(counts) == 1 else ("mixed" if counts else "unknown")
