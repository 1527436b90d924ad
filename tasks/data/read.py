"""Reads raw JSONL (plain or gzip) into `Row`s, one line at a time.

Corpora arrive dirty: a truncated line, a stray Latin-1 byte, a record in a format nobody asked
for. None of these may stop the run or vanish silently, so each one is dropped through the ledger
with a reason and the raw line goes to the quarantine where a person can read it. Reading streams,
so a file larger than memory is fine.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import IO, Any, Iterator

from tasks.data.records import Ledger, Row

PREF_FIELDS = ("prompt", "chosen", "rejected")


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


def read_jsonl(path: Path, ledger: Ledger) -> Iterator[Row]:
    """Yields one `Row` per good line; counts every non-blank line as read, whatever its fate."""
    path = Path(path)
    with _open_binary(path) as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            ledger.read += 1
            fallback_id = f"{path.name}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                ledger.drop(raw.decode("utf-8", errors="replace").rstrip("\r\n"), fallback_id, "bad_utf8", str(e))
                continue
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # a BOM some editors write; json.loads refuses it
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                ledger.drop(line.rstrip("\r\n"), fallback_id, "bad_json", str(e))
                continue
            if not isinstance(obj, dict):
                ledger.drop(line.rstrip("\r\n"), fallback_id, "bad_json", f"a JSON {type(obj).__name__}, not an object")
                continue
            row_id = str(obj["id"]) if obj.get("id") is not None else fallback_id
            parsed = _kind_and_data(obj)
            if parsed is None:
                ledger.drop(obj, row_id, "unknown_format", f"keys {sorted(obj)}: need messages, or prompt/chosen/rejected")
                continue
            kind, data = parsed
            yield Row(id=row_id, kind=kind, data=data, source=str(path))
