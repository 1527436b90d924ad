"""validate_rows and normalize_text: each shape problem has its own reason; kept text is normalised."""

from __future__ import annotations

import pytest

from tasks.data.records import Ledger, Row
from tasks.data.validate import normalize_text, validate_rows


def _sft(*turns: tuple[str, object]) -> dict:
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


def test_normalize_text() -> None:
    decomposed = "cafe\u0301"
    assert normalize_text(decomposed) == "caf\u00e9"
    assert normalize_text("  a \t\t b  \r\nc\u00a0 d ") == "a b\nc d"
    assert normalize_text("p1\n\n\n\n \n\np2") == "p1\n\np2"
    assert normalize_text("line1\nline2") == "line1\nline2"
    once = normalize_text(" x\t\ty \n\n\n z ")
    assert normalize_text(once) == once


@pytest.mark.parametrize(
    ("kind", "data", "reason"),
    [
        ("sft", {"messages": "not a list"}, "wrong_type"),
        ("sft", {"messages": ["hi"]}, "wrong_type"),
        ("sft", _sft(("user", 3), ("assistant", "4")), "wrong_type"),
        ("sft", {"messages": []}, "empty_field"),
        ("sft", _sft(("user", "What is 2 + 2?"), ("assistant", "  \n ")), "empty_field"),
        ("sft", _sft(("robot", "beep"), ("assistant", "ok")), "bad_role"),
        ("sft", {"messages": [{"content": "no role"}, {"role": "assistant", "content": "ok"}]}, "bad_role"),
        ("sft", _sft(("system", "be nice"), ("assistant", "ok")), "missing_turn"),
        ("sft", _sft(("user", "hi"), ("assistant", "ok"), ("user", "and?")), "missing_turn"),
        ("pref", {"prompt": "q", "chosen": 1, "rejected": "b"}, "wrong_type"),
        ("pref", {"prompt": " ", "chosen": "a", "rejected": "b"}, "empty_field"),
        ("pref", {"prompt": "q", "chosen": "same  answer", "rejected": "same answer "}, "same_answers"),
    ],
)
def test_invalid_rows_dropped_with_reason(kind: str, data: dict, reason: str) -> None:
    ledger = Ledger()
    ledger.read = 1
    assert list(validate_rows([Row("r1", kind, data)], ledger)) == []
    assert dict(ledger.dropped) == {reason: 1}
    ledger.check_balance()


def test_valid_rows_yielded_normalised() -> None:
    rows = [
        Row(
            "s",
            "sft",
            {
                "messages": [
                    {"role": "system", "content": "Be  brief."},
                    {"role": "user", "content": " Hi\t there "},
                    {"role": "assistant", "content": "Hello", "name": "bot"},
                ]
            },
            source="f",
        ),
        Row("p", "pref", {"prompt": "Q\u00a0?", "chosen": "yes ", "rejected": "no"}),
    ]
    ledger = Ledger()
    out = list(validate_rows(rows, ledger))
    assert not ledger.dropped
    assert [m["content"] for m in out[0].data["messages"]] == ["Be brief.", "Hi there", "Hello"]
    assert out[0].data["messages"][2]["name"] == "bot" and out[0].source == "f"
    assert out[1].data == {"prompt": "Q ?", "chosen": "yes", "rejected": "no"}
