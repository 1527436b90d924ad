"""The curation step: raw corpora in, one dataset folder out, every input row kept or quarantined.

The steps run in the order `CurateConfig.steps` lists, over the inputs as one stream of chunks
(`tasks.data.pipeline`), so no step holds the corpus in memory, and a row leaves at the first
step that fails it, under that step's reason, into `quarantine.jsonl`. The default order is
cheap-before-expensive with two fixed points: `validate` comes first (the config refuses anything
else) because it normalises the text every later step compares; PII is masked late, on the
survivors, so the masks never make two different rows look alike, and decontamination then checks
the text training will really see against the run's eval split. The per-row steps run on every
core (`curate.processes`); dedup decides in input order in this process; the output is the same
for any number of processes. The ledger must balance (read = kept + dropped + rows lost where an
input broke) or the step fails rather than hand training a silently shrunken set. An input that
cannot be read is recorded and the others are curated; `tasks.data.faults` then decides, once
everything is written, whether the run stops (unreadable inputs, a quality rule that dropped too
much) or only warns.

Outputs, under `out_dir`: `report.json`, `quarantine.jsonl`, and `dataset-<hash16>/` holding one
Parquet file per kind present (`sft`, `pref`, `text`), the `sft.jsonl` / `pref.jsonl` that training
reads, and `DATACARD.md`. The hash is the sha256 of sft.jsonl, NUL, pref.jsonl (then NUL and the
text rows as JSON lines, when there are any): it names exactly what was written, so a training run
can record which data it saw, and the same rows always land in the same folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

from configs.schema import CurateConfig
from tasks.data.pipeline import CHUNK_ROWS, Chunk, process_count, run_local
from tasks.data.progress import Progress, ProgressMeter
from tasks.data.read import UnreadableInput, input_bytes, line_cap, read_rows
from tasks.data.records import Ledger, Row
from tasks.data.report import CurateResult, prepare, write_outputs
from tasks.data.stats import StepStats

Listener = tuple[Callable[[Progress], None], float]  # (callable, seconds between calls)


def _read_inputs(
    inputs: list[str], ledger: Ledger, fmt: str, sources: dict[str, dict[str, Any]], cap: int
) -> Iterator[Row]:
    """Every input's rows in turn; one that cannot be read is recorded in the ledger and skipped."""
    for p in inputs:
        path = str(Path(p))
        source = sources.setdefault(path, {"read": 0, "kept": 0})
        try:
            rows = read_rows(Path(path), ledger, fmt, cap=cap)
        except UnreadableInput as e:
            ledger.mark_unreadable(path, e.problem, e.fix)
            continue
        before = ledger.read
        for row in rows:
            row.pos = ledger.read - 1
            yield row
        source["read"] += ledger.read - before


def read_chunks(rows: Iterator[Row], ledger: Ledger, processes: int = 1) -> Iterator[Chunk]:
    """Rows in chunks of `CHUNK_ROWS`, each with the quarantine lines of the records the reader
    dropped among them (by position) and the read step's own figures."""
    ledger.pending = []
    while True:
        start = time.thread_time()
        stats = StepStats("read", info={"processes": processes})
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) >= CHUNK_ROWS:
                break
        pending, ledger.pending = ledger.pending, []
        drops = [(pos, line) for pos, _, line in pending]
        for _, reason, _ in pending:
            stats.counts[f"dropped/{reason}"] += 1
        stats.rows_out = len(batch)
        stats.rows_in = len(batch) + len(drops)
        stats.cpu_s = time.thread_time() - start
        if not batch and not drops:
            return
        yield Chunk(batch, drops=drops, stats={"read": stats})


def curate_dataset(
    inputs: list[str],
    out_dir: str,
    settings: CurateConfig,
    eval_paths: list[str] | None = None,
    template_versions: dict[str, int | str] | None = None,
    progress: list[Listener] | None = None,
) -> CurateResult:
    """Runs the configured steps, in order, over every input as one stream; writes the dataset
    folder, quarantine, report and card. `eval_paths` (the run's eval split) and
    `settings.decontaminate_paths` are what the decontaminate step indexes; `progress` listeners
    are called with a `Progress` as chunks are written."""
    out = prepare(out_dir)
    ledger = Ledger(out / "quarantine.jsonl")
    sources: dict[str, dict[str, Any]] = {}
    total = sum(input_bytes(Path(p)) for p in inputs)
    processes = process_count(settings, total)
    meter = ProgressMeter(total, progress or [])
    try:
        rows = _read_inputs(inputs, ledger, settings.format, sources, line_cap(settings.max_chars))
        chunks = read_chunks(rows, ledger, processes)
        evals = list(dict.fromkeys([*(eval_paths or []), *settings.decontaminate_paths]))
        done = run_local(chunks, settings, evals, processes, template_versions, lambda: ledger.read)
        return write_outputs(out, ledger, done, settings, sources, meter)
    finally:
        ledger.close()
