"""The dataset folder a curation run writes: training JSONL, Parquet per kind, and its content hash.

Rows arrive as a stream and leave the same way: JSONL lines as they come, Parquet in batches of
1024 rows, so the writer never holds the dataset. The folder is written under a temporary name and
moved into place only when complete, so a crashed run never leaves a half dataset under a real name.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from tasks.data.records import Row

PARQUET_BATCH_ROWS = 1024
KINDS = ("sft", "pref", "text")


def _parquet_schemas():
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return {
        "sft": pa.schema([("id", pa.string()), ("messages", pa.list_(message))]),
        "pref": pa.schema(
            [("id", pa.string()), ("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())]
        ),
        "text": pa.schema([("id", pa.string()), ("text", pa.string())]),
    }


@dataclass
class RenderedRows:
    """Kept rows as the dataset holds them (JSONL lines, Arrow tables per kind), rendered where they
    were curated: a shard task renders its own rows, so the merge of the shards (one process) only
    appends, hashes and encodes Parquet, instead of serialising every row itself."""

    count: int = 0
    lines: dict[str, str] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)  # pyarrow.Table per kind
    kinds: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    synthetic: int = 0
    cpu_s: float = 0.0


def render_rows(rows: Iterable[Row]) -> RenderedRows:
    """The bytes `DatasetWriter.write` would write for these rows, in order."""
    import pyarrow as pa

    start = time.thread_time()
    out = RenderedRows()
    lines: dict[str, list[str]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        record = row.to_json()
        lines.setdefault(row.kind, []).append(json.dumps(record, ensure_ascii=False) + "\n")
        records.setdefault(row.kind, []).append(record)
        out.sources[row.source] += 1
        out.synthetic += bool(row.data.get("synthetic"))
    schemas = _parquet_schemas()
    for kind, batch in records.items():
        out.lines[kind] = "".join(lines[kind])
        out.tables[kind] = pa.Table.from_pylist(batch, schema=schemas[kind])
        out.kinds[kind] = len(batch)
    out.count = sum(out.kinds.values())
    out.cpu_s = time.thread_time() - start
    return out


class DatasetWriter:
    """JSONL for training (sft, pref: always written), Parquet per kind present, in 1024-row batches."""

    def __init__(self, folder: Path, stack: ExitStack):
        import pyarrow.parquet as pq

        self._pq, self._folder, self._stack = pq, folder, stack
        self._schemas = _parquet_schemas()
        self.jsonl = {
            k: stack.enter_context(open(folder / f"{k}.jsonl", "w", encoding="utf-8", newline="\n"))
            for k in ("sft", "pref")
        }
        self._text_lines = stack.enter_context(tempfile.TemporaryFile(dir=folder))  # hashed, not kept
        self._writers: dict[str, Any] = {}
        self._batches: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
        self._tables: dict[str, list[Any]] = {k: [] for k in KINDS}  # rendered rows not yet in a row group
        self.rows: Counter[str] = Counter({k: 0 for k in KINDS})
        self.synthetic = 0

    def write(self, row: Row) -> None:
        record = row.to_json()
        line = json.dumps(record, ensure_ascii=False) + "\n"
        if row.kind == "text":
            self._text_lines.write(line.encode("utf-8"))
        else:
            self.jsonl[row.kind].write(line)
        self.rows[row.kind] += 1
        self.synthetic += bool(row.data.get("synthetic"))  # a marker only a format that keeps it can carry
        batch = self._batches[row.kind]
        batch.append(record)
        if len(batch) >= PARQUET_BATCH_ROWS:
            self._flush(row.kind)

    def write_rendered(self, part: RenderedRows) -> None:
        """Rows `render_rows` rendered elsewhere, in their place in the stream: the same files as
        writing them one by one (Parquet row groups of `PARQUET_BATCH_ROWS` across parts too)."""
        for kind, text in part.lines.items():
            if kind == "text":
                self._text_lines.write(text.encode("utf-8"))
            else:
                self.jsonl[kind].write(text)
            self._flush(kind)  # rows written one by one before this part go first
            self._tables[kind].append(part.tables[kind])
            self._write_groups(kind)
        self.rows.update(part.kinds)
        self.synthetic += part.synthetic

    def _write_groups(self, kind: str, last: bool = False) -> None:
        import pyarrow as pa

        pending = self._tables[kind]
        size = sum(map(len, pending))
        if size < PARQUET_BATCH_ROWS and not (last and size):
            return
        table = pa.concat_tables(pending)
        done = 0
        while size - done >= PARQUET_BATCH_ROWS or (last and done < size):
            self._write_table(kind, table.slice(done, PARQUET_BATCH_ROWS).combine_chunks())
            done += min(PARQUET_BATCH_ROWS, size - done)
        self._tables[kind] = [table.slice(done)] if done < size else []

    def _write_table(self, kind: str, table) -> None:
        if kind not in self._writers:
            path = self._folder / f"{kind}.parquet"
            self._writers[kind] = self._stack.enter_context(self._pq.ParquetWriter(path, self._schemas[kind]))
        self._writers[kind].write_table(table)

    def _flush(self, kind: str, last: bool = False) -> None:
        """The rows written one by one, as a table: a row group of their own when nothing rendered is
        pending (always so without rendered parts), else joined to the pending tables."""
        import pyarrow as pa

        batch = self._batches[kind]
        if batch:
            table = pa.Table.from_pylist(batch, schema=self._schemas[kind])
            batch.clear()
            if not self._tables[kind] and (last or len(table) >= PARQUET_BATCH_ROWS):
                self._write_table(kind, table)
            else:
                self._tables[kind].append(table)
        self._write_groups(kind, last)

    def finish(self) -> str:
        """Flushes everything and returns the dataset hash."""
        for kind in KINDS:
            self._flush(kind, last=True)
        for f in self.jsonl.values():
            f.flush()
        h = hashlib.sha256()
        # A NUL between files: JSON lines never hold a raw NUL, so moving a row between files changes the hash.
        for i, path in enumerate(self._folder / f"{k}.jsonl" for k in ("sft", "pref")):
            if i:
                h.update(b"\0")
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        if self.rows["text"]:
            h.update(b"\0")
            self._text_lines.seek(0)
            for chunk in iter(lambda: self._text_lines.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()


def publish(partial_dir: Path, final: Path) -> None:
    """Moves the finished folder into place; the same rows written again replace their folder."""
    if final.exists():
        shutil.rmtree(final)
    partial_dir.rename(final)
