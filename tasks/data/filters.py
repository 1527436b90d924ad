"""Length filter: rows too short to teach anything, or too long to fit a training window.

Measured on `row.text()` in characters, not tokens, so the filter needs no tokenizer and gives the
same answer whatever model trains next.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from tasks.data.records import Ledger, Row, apply_filter


def filter_length(rows: Iterable[Row], ledger: Ledger, min_chars: int, max_chars: int) -> Iterator[Row]:
    """Keeps rows with `min_chars <= len(text) <= max_chars`; drops others as too_short / too_long."""

    def check(row: Row) -> str | None:
        n = len(row.text())
        if n < min_chars:
            return "too_short"
        if n > max_chars:
            return "too_long"
        return None

    return apply_filter(rows, check, ledger, detail=f"min_chars={min_chars} max_chars={max_chars}")
