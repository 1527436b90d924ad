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
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

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

    def _flush(self, kind: str) -> None:
        import pyarrow as pa

        batch = self._batches[kind]
        if not batch:
            return
        if kind not in self._writers:
            path = self._folder / f"{kind}.parquet"
            self._writers[kind] = self._stack.enter_context(self._pq.ParquetWriter(path, self._schemas[kind]))
        self._writers[kind].write_table(pa.Table.from_pylist(batch, schema=self._schemas[kind]))
        batch.clear()

    def finish(self) -> str:
        """Flushes everything and returns the dataset hash."""
        for kind in KINDS:
            self._flush(kind)
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
