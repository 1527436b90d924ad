"""Reads raw corpora (JSONL, gzip, Parquet, `datasets` folders) into `Row`s, one record at a time.

Corpora arrive dirty: a truncated line, a stray Latin-1 byte, a record in a format nobody asked
for. None of these may stop the run or vanish silently, so each one is dropped through the ledger
with a reason and the raw record goes to the quarantine where a person can read it. Every reader
streams (lines, Parquet batches, a memory-mapped Arrow table), so a corpus larger than memory is
fine. `read_rows` maps any supported layout onto `Row` through `tasks.data.formats`; `read_jsonl`
is the older reader that takes `messages` or prompt/chosen/rejected rows mixed in one file.
"""

from __future__ import annotations

import gzip
import json
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import IO, Any, Iterator

from tasks.data.formats import DETECT_ROWS, FORMATS, FormatError, detect_format, map_row
from tasks.data.records import Ledger, Row

PREF_FIELDS = ("prompt", "chosen", "rejected")
PARQUET_BATCH_ROWS = 1024
JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")


def _open_binary(path: Path) -> IO[bytes]:
    # Bytes, not text: a bad byte must cost one line, not raise out of the whole file.
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _kind_and_data(obj: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """Only the format's own fields travel on, so stray keys never reach training."""
    if "messages" in obj:
        return "sft", {"messages": obj["messages"]}
    if all(k in obj for k in PREF_FIELDS):
        return "pref", {k: obj[k] for k in PREF_FIELDS}
    return None


def _jsonl_objects(path: Path, ledger: Ledger | None, start: int = 0, stop: int | None = None
                   ) -> Iterator[tuple[str, dict[str, Any]]]:
    """(fallback id, object) per good line. With a ledger, counts every non-blank line and drops bad ones;
    without one (peeking at the format), skips bad lines silently. `start`/`stop` select records
    (non-blank lines, from 0) so that shards of one file are read, and counted, by different workers."""
    index = -1
    with _open_binary(path) as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            index += 1
            if index < start:
                continue
            if stop is not None and index >= stop:
                break
            if ledger is not None:
                ledger.read += 1
            fallback_id = f"{path.name}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if ledger is not None:
                    ledger.drop(raw.decode("utf-8", errors="replace").rstrip("\r\n"), fallback_id, "bad_utf8", str(e))
                continue
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # a BOM some editors write; json.loads refuses it
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                if ledger is not None:
                    ledger.drop(line.rstrip("\r\n"), fallback_id, "bad_json", str(e))
                continue
            if not isinstance(obj, dict):
                if ledger is not None:
                    detail = f"a JSON {type(obj).__name__}, not an object"
                    ledger.drop(line.rstrip("\r\n"), fallback_id, "bad_json", detail)
                continue
            yield fallback_id, obj


def read_jsonl(path: Path, ledger: Ledger) -> Iterator[Row]:
    """Yields one `Row` per good line; counts every non-blank line as read, whatever its fate."""
    path = Path(path)
    for fallback_id, obj in _jsonl_objects(path, ledger):
        row_id = str(obj["id"]) if obj.get("id") is not None else fallback_id
        parsed = _kind_and_data(obj)
        if parsed is None:
            ledger.drop(obj, row_id, "unknown_format", f"keys {sorted(obj)}: need messages, or prompt/chosen/rejected")
            continue
        kind, data = parsed
        yield Row(id=row_id, kind=kind, data=data, source=str(path))


def _parquet_objects(path: Path, ledger: Ledger | None, start: int = 0, stop: int | None = None
                     ) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        index = 0
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            if index + batch.num_rows <= start:
                index += batch.num_rows
                continue
            if stop is not None and index >= stop:
                break
            for obj in batch.to_pylist():
                if index < start or (stop is not None and index >= stop):
                    index += 1
                    continue
                if ledger is not None:
                    ledger.read += 1
                yield f"{path.name}:{index}", obj
                index += 1


def _dataset_objects(path: Path, ledger: Ledger | None, start: int = 0, stop: int | None = None
                     ) -> Iterator[tuple[str, dict[str, Any]]]:
    import datasets

    ds = datasets.load_from_disk(str(path))  # memory-mapped Arrow: rows are read as iterated
    if isinstance(ds, datasets.DatasetDict):
        raise ValueError(
            f"{path} holds a DatasetDict with splits {sorted(ds)}; "
            f"pass one split's folder, e.g. {path / next(iter(ds))}"
        )
    stop = len(ds) if stop is None else min(stop, len(ds))
    for index in range(start, stop):
        obj = ds[index]
        if ledger is not None:
            ledger.read += 1
        yield f"{path.name}:{index}", obj


def _objects_reader(path: Path):
    if path.is_dir():
        if not (path / "dataset_dict.json").exists() and not (path / "state.json").exists():
            raise ValueError(f"{path} is a folder but not one written by datasets' save_to_disk (no state.json)")
        return _dataset_objects
    name = path.name.lower()
    if name.endswith(".parquet"):
        return _parquet_objects
    if name.endswith(JSONL_SUFFIXES):
        if name.endswith((".json", ".json.gz")):
            with _open_binary(path) as f:
                if f.read(4096).lstrip().lstrip(b"\xef\xbb\xbf").startswith(b"["):
                    raise ValueError(
                        f"{path} holds one JSON array, not JSON Lines (one object per line); "
                        "convert it, e.g. jq -c '.[]' in.json > out.jsonl"
                    )
        return _jsonl_objects
    raise ValueError(f"cannot read {path}: use .jsonl, .json, .jsonl.gz, .parquet or a datasets save_to_disk folder")


def read_objects(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(fallback id, raw record) for every good record of any supported file, bad ones skipped
    uncounted: for reading reference sets (eval items) whatever their layout."""
    path = Path(path)
    return _objects_reader(path)(path, None)


def detect_file_format(path: Path) -> str:
    """The format of a file from its first rows (see `formats.detect_format`), without counting anything.

    Returns "unknown" for a file with no readable record at all: every line of it will be dropped
    as bad JSON or UTF-8 anyway, so no format is needed.
    """
    path = Path(path)
    with closing(read_objects(path)) as peek:  # closes the file now, not at garbage collection
        objs = [obj for _, obj in islice(peek, DETECT_ROWS)]
    return detect_format(objs) if objs else "unknown"


def count_records(path: Path) -> int:
    """How many records a file holds (what `start`/`stop` index), without parsing them."""
    path = Path(path)
    reader = _objects_reader(path)
    if reader is _jsonl_objects:
        with _open_binary(path) as f:
            return sum(1 for raw in f if raw.strip())
    if reader is _parquet_objects:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    import datasets

    return len(datasets.load_from_disk(str(path)))


def read_rows(path: Path, ledger: Ledger, fmt: str = "auto", start: int = 0, stop: int | None = None) -> Iterator[Row]:
    """Yields one `Row` per record that fits `fmt`; every other record is dropped with its reason.

    Detection and the checks on the file happen here, before the first row, so a wrong file fails
    at once; the format used goes to `ledger.formats[str(path)]` for the run's report.
    """
    path = Path(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use 'auto' or one of {sorted(FORMATS)}")
    objects = _objects_reader(path)
    if fmt == "auto":
        fmt = detect_file_format(path)
    ledger.formats[str(path)] = fmt
    return _mapped_rows(path, objects(path, ledger, start, stop), fmt, ledger)


def _mapped_rows(
    path: Path, objects: Iterator[tuple[str, dict[str, Any]]], fmt: str, ledger: Ledger
) -> Iterator[Row]:
    for fallback_id, obj in objects:
        row_id = str(obj["id"]) if obj.get("id") is not None else fallback_id
        if fmt not in FORMATS:  # "unknown": only possible if the file changed since detection
            ledger.drop(obj, row_id, "unknown_format", f"keys {sorted(obj)}: no format was detected")
            continue
        try:
            kind, data = map_row(fmt, obj)
        except FormatError as e:
            ledger.drop(obj, row_id, e.reason, e.detail)
            continue
        yield Row(id=row_id, kind=kind, data=data, source=str(path))
