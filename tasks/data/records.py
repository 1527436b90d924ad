"""The one record type every data step streams, and the ledger that accounts for every drop.

A curation run is a chain of generators: each step takes an iterator of `Row` and yields the rows
it keeps. A step that drops a row hands it to the shared `Ledger` with a reason, so the run can
prove `kept + sum(dropped) + unreadable rows == read` and a reviewer can read every rejected row in
the quarantine. An input that cannot be read at all, or breaks part-way (a truncated gzip), is no
row's fault: it goes to `Ledger.unreadable` with its reason instead, and the record cut off at the
break is its one unreadable row.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


@dataclass
class Row:
    """One example. `data` holds its kind's fields: `messages`; `prompt`/`chosen`/`rejected`; or `text`."""

    id: str
    kind: str  # "sft" (chat messages), "pref" (preference pair) or "text" (plain text, pre-training)
    data: dict[str, Any]
    source: str = ""
    pos: int = 0  # position in the run's input: the quarantine lists drops in this order
    normalized: bool = False  # every text field as `validate.normalize_text` leaves it (set by validate)

    def text(self) -> str:
        """All human-readable text of the row, in a stable order: what dedup and filters look at."""
        if self.kind == "sft":
            return "\n".join(m["content"] for m in self.data["messages"])
        if self.kind == "text":
            return self.data["text"]
        return "\n".join(self.data[k] for k in ("prompt", "chosen", "rejected"))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.data}


class Ledger:
    """Counts reads and drops by reason, and writes each dropped row to the quarantine file."""

    def __init__(self, quarantine_path: Path | None = None):
        self.read = 0
        self.bytes_read = 0  # of JSONL input (uncompressed): what the progress ETA is measured in
        self.kept = 0
        self.dropped: Counter[str] = Counter()
        self.formats: dict[str, Counter[str]] = {}  # input path -> rows per format they were read as
        self.unreadable: list[dict[str, Any]] = []  # {"path", "reason", "fix", "rows"} per input or broken tail
        self._path = quarantine_path
        self._file = None
        self.pending: list[tuple[int, str, str]] | None = None  # when a list: drops wait here (see `drop`)
        if quarantine_path is not None:
            quarantine_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(quarantine_path, "w", encoding="utf-8")

    def drop(self, row: Row | dict[str, Any] | str, row_id: str, reason: str, detail: str = "") -> None:
        """Counts the drop and writes its quarantine line, or, while `pending` is a list, leaves
        both to the pipeline: (position of the row just read, reason, line) waits there."""
        if self._file is not None or self.pending is not None:
            payload = row.to_json() if isinstance(row, Row) else row
            record = {"id": row_id, "reason": reason, "detail": detail, "row": payload}
            # default=str: rows from Parquet or Arrow can hold values JSON has no type for (bytes, dates).
            line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
            if self.pending is not None:
                self.pending.append((self.read - 1, reason, line))
                return
            self._file.write(line)
        self.dropped[reason] += 1

    def write_drops(self, drops: list[tuple[int, str]]) -> None:
        """Quarantine lines of drops counted elsewhere (by a step's `StepStats`), in input order."""
        if self._file is not None:
            self._file.writelines(line for _, line in sorted(drops, key=lambda d: d[0]))

    def mark_unreadable(self, path: str, reason: str, fix: str = "", rows: int = 0) -> None:
        """`rows`: records already counted as read that the break swallowed (the one cut off at it)."""
        self.unreadable.append({"path": str(path), "reason": reason, "fix": fix, "rows": rows})

    @property
    def unreadable_rows(self) -> int:
        return sum(u["rows"] for u in self.unreadable)

    def count_kept(self, rows: Iterable[Row]) -> Iterator[Row]:
        """Wraps the last step of a chain so the ledger knows how many rows came out."""
        for row in rows:
            self.kept += 1
            yield row

    def absorb(
        self,
        read: int,
        dropped: dict[str, int],
        quarantine_path: Path | None = None,
        unreadable: list[dict[str, Any]] | None = None,
    ) -> None:
        """Takes over a shard's accounting: its reads, its drops, its unreadable inputs and its
        quarantine lines, in order."""
        self.read += read
        self.dropped.update(dropped)
        self.unreadable += unreadable or []
        if self._file is not None and quarantine_path is not None and quarantine_path.exists():
            with open(quarantine_path, encoding="utf-8") as f:
                for line in f:
                    self._file.write(line)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def check_balance(self) -> None:
        """Raises if any row went missing: every row read must be kept, dropped with a reason, or
        cut off where its input broke."""
        total = self.kept + sum(self.dropped.values()) + self.unreadable_rows
        if total != self.read:
            raise RuntimeError(
                f"curation lost rows: read {self.read}, kept {self.kept}, "
                f"dropped {sum(self.dropped.values())} ({dict(self.dropped)}), unreadable {self.unreadable_rows}"
            )

    def summary(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "unreadable": list(self.unreadable),
            "unreadable_rows": self.unreadable_rows,
        }


def apply_filter(
    rows: Iterable[Row], check: Callable[[Row], str | None], ledger: Ledger, detail: str = ""
) -> Iterator[Row]:
    """Keeps rows for which `check` returns None; drops the others under the reason it returned."""
    for row in rows:
        reason = check(row)
        if reason is None:
            yield row
        else:
            ledger.drop(row, row.id, reason, detail)
