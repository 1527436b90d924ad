"""How far a curation is: rows, rows/s, kept, dropped, and an ETA from the input's size in bytes.

The runner updates a `ProgressMeter` after every chunk it writes; the meter hands a `Progress`
snapshot to each listener at most once per its interval. Listeners are plain callables: the flow
passes one that logs a line every 10 s, updates a Prefect progress artifact and logs rows/s to
MLflow; the CLI's live bar subscribes with `watch` (printing lives in the CLI, not here).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

_WATCHERS: list[Callable[[Progress], None]] = []


@dataclass(frozen=True)
class Progress:
    rows: int
    kept: int
    dropped: int
    bytes_read: int
    bytes_total: int
    elapsed_s: float
    done: bool = False

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.bytes_read / self.bytes_total) if self.bytes_total else None

    @property
    def eta_s(self) -> float | None:
        f = self.fraction
        return self.elapsed_s * (1 - f) / f if f else None

    def line(self) -> str:
        """The plain line logs get: every figure, `rows/s` among them."""
        pct = f" ({self.fraction:.0%} of the input)" if self.fraction is not None else ""
        eta = f", ETA {_clock(self.eta_s)}" if self.eta_s is not None and not self.done else ""
        return (
            f"curate: {self.rows:,} rows{pct}, {self.rows_per_s:,.0f} rows/s, kept {self.kept:,}, "
            f"dropped {self.dropped:,}, {_clock(self.elapsed_s)} elapsed{eta}"
        )


def _clock(seconds: float | None) -> str:
    s = int(seconds or 0)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressMeter:
    """Turns the ledger's counts into `Progress` for listeners, each at most every `interval` s."""

    def __init__(self, bytes_total: int, listeners: list[tuple[Callable[[Progress], None], float]]):
        self.bytes_total = bytes_total
        self.listeners = [*listeners, *((w, 0.5) for w in _WATCHERS)]
        self.start = time.monotonic()
        self._last = [float("-inf")] * len(self.listeners)

    def snapshot(self, ledger, done: bool = False) -> Progress:
        return Progress(
            rows=ledger.read,
            kept=ledger.kept,
            dropped=sum(ledger.dropped.values()),
            bytes_read=ledger.bytes_read,
            bytes_total=self.bytes_total,
            elapsed_s=time.monotonic() - self.start,
            done=done,
        )

    def update(self, ledger, done: bool = False) -> None:
        now = time.monotonic()
        due = [i for i, (_, every) in enumerate(self.listeners) if done or now - self._last[i] >= every]
        if not due:
            return
        progress = self.snapshot(ledger, done)
        for i in due:
            self._last[i] = now
            self.listeners[i][0](progress)

    def finish(self, ledger) -> None:
        self.update(ledger, done=True)


@contextmanager
def watch(listener: Callable[[Progress], None]) -> Iterator[None]:
    """Every curation in this process reports to `listener` (twice a second) while inside."""
    _WATCHERS.append(listener)
    try:
        yield
    finally:
        _WATCHERS.remove(listener)


def watched() -> bool:
    """Whether something draws progress live (the CLI's bar): plain progress lines can then stay off the terminal."""
    return bool(_WATCHERS)
