"""mask_pii: contact details go, numbers that carry the task's meaning stay, a second pass is a no-op."""

from __future__ import annotations

from collections import Counter

import pytest

from tasks.data.pii import mask_pii, mask_rows
from tasks.data.records import Row


@pytest.mark.parametrize(
    ("text", "masked", "counts"),
    [
        ("Write to tom.5@example.com today.", "Write to [EMAIL] today.", {"email": 1}),
        ("ana_b+tag@mail.co.uk, bob@x.org", "[EMAIL], [EMAIL]", {"email": 2}),
        ("Call +44 20 7946 0958 now", "Call [PHONE] now", {"phone": 1}),
        ("call +1 555-010-1000.", "call [PHONE].", {"phone": 1}),
        ("Office: (555) 123-4567", "Office: [PHONE]", {"phone": 1}),
        ("555-123-4567 or 555.123.4567", "[PHONE] or [PHONE]", {"phone": 2}),
        ("+44 (0) 20 7946 0958", "[PHONE]", {"phone": 1}),
        (
            "(Sent by tom.3@example.com, call +1 555-010-1003.) Tom has 3 apples.",
            "(Sent by [EMAIL], call [PHONE].) Tom has 3 apples.",
            {"email": 1, "phone": 1},
        ),
    ],
)
def test_masks_contacts(text: str, masked: str, counts: dict) -> None:
    out, c = mask_pii(text)
    assert out == masked
    assert c == Counter(counts)
    again, c2 = mask_pii(out)
    assert again == out and not c2  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "12",
        "3 + 4 = 7",
        "In 1999 and 2024 we met.",
        "120 - 45 = 75",
        "2024-01-15",
        "3.14159265",
        "10 + 20 + 30 + 40 = 100",
        "192.168.1.1",
        "+1 555",
        "7 + 8 = 15. The answer is 15.",
        "12+345-678",
    ],
)
def test_numbers_left_alone(text: str) -> None:
    assert mask_pii(text) == (text, Counter())


def test_mask_rows_masks_every_field_and_counts() -> None:
    rows = [
        Row(
            "s",
            "sft",
            {
                "messages": [
                    {"role": "user", "content": "I am a@b.io"},
                    {"role": "assistant", "content": "Hi, 555-123-4567"},
                ]
            },
        ),
        Row("p", "pref", {"prompt": "mail c@d.com", "chosen": "ok +44 20 7946 0958", "rejected": "e@f.net"}),
        Row("n", "sft", {"messages": [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}]}),
    ]
    counts: Counter[str] = Counter()
    out = list(mask_rows(rows, counts))
    assert [r.id for r in out] == ["s", "p", "n"]
    assert [m["content"] for m in out[0].data["messages"]] == ["I am [EMAIL]", "Hi, [PHONE]"]
    assert out[1].data == {"prompt": "mail [EMAIL]", "chosen": "ok [PHONE]", "rejected": "[EMAIL]"}
    assert out[2].data == rows[2].data
    assert counts == Counter({"email": 3, "phone": 2})
