"""What each curation step reports, in one shape the runner adds up: datatrove's `stat_update`.

A step gets a `StepStats` where it used to get the run's ledger: it drops a row with `drop` (the
row's reason is counted as `dropped/<reason>` and the row kept for the quarantine, by its input
position) and counts anything else with `stat_update("pii/email")`, `stat_update("language/en")`.
The runner counts rows in, rows out and CPU seconds around each call, and adds the stats of every
chunk, worker process and shard with `merge`, so a report never depends on where a step ran.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tasks.data.records import Row


@dataclass
class StepStats:
    name: str
    counts: Counter[str] = field(default_factory=Counter)
    read: int = 0  # rows the step made (a teacher's variants): they count as read
    rows_in: int = 0
    rows_out: int = 0
    cpu_s: float = 0.0
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # first rows per drop reason
    info: dict[str, Any] = field(default_factory=dict)  # facts that do not add up (the dedup's cluster report)
    drops: list[tuple[int, str]] = field(default_factory=list)  # (input position, quarantine line), not merged

    def stat_update(self, *labels: str, value: int = 1) -> None:
        for label in labels:
            self.counts[label] += value

    def drop(self, row: Row | dict[str, Any] | str, row_id: str, reason: str, detail: str = "", pos: int = -1) -> None:
        """The ledger's `drop`: counted under `dropped/<reason>`, the row kept for the quarantine."""
        self.counts[f"dropped/{reason}"] += 1
        payload = row.to_json() if isinstance(row, Row) else row
        record = {"id": row_id, "reason": reason, "detail": detail, "row": payload}
        position = row.pos if isinstance(row, Row) else pos
        # default=str: rows from Parquet or Arrow can hold values JSON has no type for (bytes, dates).
        self.drops.append((position, json.dumps(record, ensure_ascii=False, default=str) + "\n"))

    def example(self, reason: str, row: Row, limit: int = 3) -> None:
        kept = self.examples.setdefault(reason, [])
        if len(kept) < limit:
            kept.append({"id": row.id, "source": row.source, "text": " ".join(row.text().split())[:80]})

    def prefixed(self, prefix: str) -> Counter[str]:
        """The counts under `prefix/`, without it: `prefixed("dropped")` is the drops by reason."""
        return Counter({k[len(prefix) + 1 :]: v for k, v in self.counts.items() if k.startswith(prefix + "/")})

    def merge(self, other: StepStats) -> None:
        self.counts.update(other.counts)
        self.read += other.read
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.cpu_s += other.cpu_s
        for reason, rows in other.examples.items():  # the first three, in input order
            kept = self.examples.setdefault(reason, [])
            kept += rows[: 3 - len(kept)]
        for key, value in other.info.items():
            self.info.setdefault(key, value)

    def figures(self) -> dict[str, Any]:
        """The step's row in the report: rows in and out, CPU seconds, rows per CPU-second."""
        return {
            "step": self.name,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "cpu_s": round(self.cpu_s, 3),
            "rows_per_s": round(self.rows_in / self.cpu_s) if self.cpu_s > 0 else None,
        }


def merge_all(into: dict[str, StepStats], stats: dict[str, StepStats]) -> None:
    for name, s in stats.items():
        into.setdefault(name, StepStats(name)).merge(s)
