"""The curation step: raw JSONL in, clean `sft.jsonl` and `pref.jsonl` out, every drop accounted for.

The steps form one stream (read -> validate -> exact dedup -> near dedup -> length -> PII), so no
step holds the corpus in memory. The order matters: text is normalised before anything compares
it; cheap exact dedup runs before MinHash; PII is masked last, on the rows that survive, so the
masks never make two different rows look alike. The ledger must balance (read = kept + dropped)
or the step fails rather than hand training a silently shrunken set. The dataset hash names
exactly what was written, so a training run can record which data it saw.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from prefect import task

from configs.schema import CurateConfig
from tasks.data.dedup import dedup_exact, dedup_minhash
from tasks.data.filters import filter_length
from tasks.data.pii import mask_rows
from tasks.data.read import read_jsonl
from tasks.data.records import Ledger, Row
from tasks.data.validate import validate_rows


def _read_all(inputs: list[str], ledger: Ledger) -> Iterator[Row]:
    for path in inputs:
        yield from read_jsonl(Path(path), ledger)


def _sha256_files(*paths: Path) -> str:
    # A NUL between files: JSON lines never hold a raw NUL, so moving a row between files changes the hash.
    h = hashlib.sha256()
    for i, path in enumerate(paths):
        if i:
            h.update(b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


@task(name="curate-dataset")
def curate_dataset(inputs: list[str], out_dir: str, settings: CurateConfig) -> dict[str, Any]:
    """Writes the kept rows, the quarantine and `report.json`; returns the report plus the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "sft": out / "sft.jsonl",
        "pref": out / "pref.jsonl",
        "quarantine": out / "quarantine.jsonl",
        "report": out / "report.json",
    }
    ledger = Ledger(paths["quarantine"])
    pii: Counter[str] = Counter({"email": 0, "phone": 0})
    rows_by_kind: Counter[str] = Counter()
    try:
        rows = validate_rows(_read_all(inputs, ledger), ledger)
        rows = dedup_exact(rows, ledger)
        rows = dedup_minhash(
            rows, ledger, settings.minhash_num_perm, settings.minhash_threshold, settings.shingle_words
        )
        rows = filter_length(rows, ledger, settings.min_chars, settings.max_chars)
        if settings.mask_pii:
            rows = mask_rows(rows, pii)
        with (
            open(paths["sft"], "w", encoding="utf-8", newline="\n") as sft,
            open(paths["pref"], "w", encoding="utf-8", newline="\n") as pref,
        ):
            files = {"sft": sft, "pref": pref}
            for row in ledger.count_kept(rows):
                files[row.kind].write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
                rows_by_kind[row.kind] += 1
    finally:
        ledger.close()
    ledger.check_balance()

    dataset_hash = _sha256_files(paths["sft"], paths["pref"])
    report: dict[str, Any] = {
        **ledger.summary(),
        "pii": dict(sorted(pii.items())),
        "dataset_hash": dataset_hash,
        "dataset_hash_short": dataset_hash[:16],
        "sft_rows": rows_by_kind["sft"],
        "pref_rows": rows_by_kind["pref"],
    }
    paths["report"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report | {f"{name}_path": str(path) for name, path in paths.items()}
