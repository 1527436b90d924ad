"""filter_length drops by the length of row.text() with the reason named."""

from __future__ import annotations

from tasks.data.filters import filter_length
from tasks.data.records import Ledger, Row


def _row(row_id: str, answer: str) -> Row:
    return Row(
        row_id, "sft", {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": answer}]}
    )


def test_filter_length_reasons() -> None:
    rows = [_row("short", "4"), _row("edge-lo", "abcdef"), _row("edge-hi", "x" * 18), _row("long", "x" * 19)]
    ledger = Ledger()
    ledger.read = len(rows)
    kept = list(ledger.count_kept(filter_length(rows, ledger, min_chars=8, max_chars=20)))
    assert [r.id for r in kept] == ["edge-lo", "edge-hi"]  # "Q\n" + 6 chars = 8, "Q\n" + 18 = 20
    assert ledger.dropped == {"too_short": 1, "too_long": 1}
    ledger.check_balance()
