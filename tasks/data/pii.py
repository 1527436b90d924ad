"""Masks e-mail addresses and phone numbers before text reaches a model that could repeat them.

The patterns are narrow on purpose: the training data is full of numbers ("12 + 7 = 19", "in
1999", "120 - 45"), and masking those would corrupt the very answers the model learns. A phone
match needs a phone's shape (a leading +, an area code in brackets, or 3-3-4 groups) and at least
nine digits. Masking is idempotent: the placeholders hold no digits and no @, so a second pass
finds nothing, and re-running curation on curated data changes nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Iterator

from tasks.data.records import Row

EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")

PHONE = re.compile(
    r"""
    (?<![\w+])                                  # not the tail of a word, a number or a sum
    (?:
        \+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?   # +44, +1 (555), +44 (0)
        \d{1,4}(?:[ .-]\d{1,4}){1,5}            #   then groups: 20 7946 0958, 555-010-1000
      | \+\d{8,15}                              # +447946095800
      | (?:1[ .-])?                             # optional US trunk prefix: 1-800-...
        (?:\(\d{3}\)\ ?|\d{3}[ .-])             # (555) or 555- / 555. / 555
        \d{3}[ .-]\d{4}                         #   then 123-4567
    )
    (?![\w])                                    # not glued to more digits or letters
    """,
    re.VERBOSE,
)

MIN_PHONE_DIGITS = 9


def mask_pii(text: str) -> tuple[str, Counter[str]]:
    """Returns the masked text and how many of each kind ("email", "phone") were masked."""
    counts: Counter[str] = Counter()

    def email(_: re.Match[str]) -> str:
        counts["email"] += 1
        return "[EMAIL]"

    def phone(m: re.Match[str]) -> str:
        if sum(c.isdigit() for c in m.group()) < MIN_PHONE_DIGITS:
            return m.group()
        counts["phone"] += 1
        return "[PHONE]"

    text = EMAIL.sub(email, text)  # first: an address may hold digits a phone pattern would eat
    return PHONE.sub(phone, text), counts


def mask_rows(rows: Iterable[Row], counts: Counter[str]) -> Iterator[Row]:
    """Masks every text field of each row, adding what it masked to `counts`; drops nothing."""
    for row in rows:
        if row.kind == "sft":
            messages = []
            for m in row.data["messages"]:
                content, c = mask_pii(m["content"])
                counts.update(c)
                messages.append({**m, "content": content})
            data = {**row.data, "messages": messages}
        else:
            data = dict(row.data)
            for key in ("prompt", "chosen", "rejected"):
                data[key], c = mask_pii(data[key])
                counts.update(c)
        yield Row(id=row.id, kind=row.kind, data=data, source=row.source)
