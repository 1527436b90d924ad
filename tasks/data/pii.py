"""Masks personal data and secrets before text reaches a model that could repeat them.

The patterns are narrow on purpose: the training data is full of numbers ("12 + 7 = 19", "in
1999", "120 - 45", "version 1.2.3"), and masking those would corrupt the very answers the model
learns. So every kind needs its own shape and, where one exists, its own checksum:

- phone: a leading +, an area code in brackets, or 3-3-4 groups, and at least nine digits;
- credit card: 13-19 digits, compact or as a 4-digit group then groups of 3-6 split by single
  spaces or dashes (4-4-4-4, Amex 4-6-5), passing the Luhn check, so a random 16-digit id stays
  and a list of small numbers never reads as a card;
- IBAN: ISO 13616 layout (country, two check digits, 11-30 letters/digits, upper case, compact or
  in groups of four) passing the mod-97 check;
- SSN: ddd-dd-dddd minus the numbers the SSA never issues (area 000, 666, 9xx; group 00; serial
  0000);
- IP address: four dotted octets 0-255 (three parts is a version string, five is not an address)
  or a valid IPv6 with at least three written groups; only *global* addresses are masked. Private,
  loopback, link-local and documentation ranges (192.168.1.1, 10.0.0.1, ::1, 2001:db8::) identify
  no one, and networking answers are full of them;
- secret: `sk-` keys with 20+ characters including a digit, AWS key ids (AKIA/ASIA + 16), the
  40-character value after `aws_secret_access_key`, GitHub tokens (ghp_/gho_/ghs_/ghu_/ghr_ + 36),
  the token of a `Bearer` header (16+ characters with a digit, so "Bearer token" prose and
  YOUR_TOKEN placeholders stay) and whole PEM private-key blocks.

Secrets go first (a PEM block or a token holds digits other patterns would bite into), then
e-mail, then the checksummed numbers, then phones. Masking is idempotent: no placeholder holds a
digit, an @ or a key prefix, so a second pass finds nothing, and re-running curation on curated
data changes nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import replace
from typing import Callable, Iterable, Iterator

import numpy as np

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

CREDIT_CARD = re.compile(r"(?<![\w+.-])(?:\d{13,19}|\d{4}(?:[ -]\d{3,6}){2,4})(?![\w-]|\.\d)")

IBAN_COMPACT = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b")
IBAN_GROUPED = re.compile(r"\b[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?\b")

SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")

IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)")
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")

PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----", re.DOTALL
)
OPENAI_KEY = re.compile(r"(?<![\w-])sk-[A-Za-z0-9_-]{20,}")
AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
AWS_SECRET = re.compile(r"(?i)(aws_secret_access_key[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])")
GITHUB_TOKEN = re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b")
BEARER = re.compile(r"(\bBearer\s+)([A-Za-z0-9._~+/-]{16,}=*)")

PLACEHOLDERS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "credit_card": "[CREDIT_CARD]",
    "iban": "[IBAN]",
    "ip_address": "[IP_ADDRESS]",
    "ssn": "[SSN]",
    "secret": "[SECRET]",
}


def luhn_ok(digits: str) -> bool:
    """The payment-card check digit (ISO/IEC 7812): doubles every second digit from the right."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_ok(m: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", m.group())
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def iban_ok(iban: str) -> bool:
    """ISO 13616 / ISO 7064 mod-97: move the first four characters to the end, letters to 10..35."""
    s = iban.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def _is_global_ip(text: str) -> bool:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:  # octet over 255, leading zeros, malformed IPv6
        return False
    return addr.is_global


def _iban(m: re.Match[str], counts: Counter[str]) -> str:
    # A grouped match can swallow a following upper-case word ("... 7654 32 ABCD"): retry shorter.
    candidate = m.group()
    while True:
        if iban_ok(candidate):
            counts["iban"] += 1
            return PLACEHOLDERS["iban"] + m.group()[len(candidate) :]
        if " " not in candidate:
            return m.group()
        candidate = candidate.rsplit(" ", 1)[0]


def _mask(
    pattern: re.Pattern[str],
    kind: str,
    text: str,
    counts: Counter[str],
    keep: Callable[[re.Match[str]], bool] = lambda m: True,
    group: int = 0,
) -> str:
    """Replaces matches that pass `keep` by the kind's placeholder (only `group` of the match)."""

    def sub(m: re.Match[str]) -> str:
        if not keep(m):
            return m.group()
        counts[kind] += 1
        if group == 0:
            return PLACEHOLDERS[kind]
        return m.group()[: m.start(group) - m.start()] + PLACEHOLDERS[kind] + m.group()[m.end(group) - m.start() :]

    return pattern.sub(sub, text)


def _has_digit(s: str) -> bool:
    return any(c.isdigit() for c in s)


_DIGIT = re.compile(r"\d")


def _digits(text: str) -> int:
    """How many characters `\\d` matches (any script's decimal digits, not only ASCII ones)."""
    if text.isascii():
        return sum(map(text.count, "0123456789"))
    return len(_DIGIT.findall(text))


# What any match of a pattern (any that its `keep` accepts) must contain. The number triggers are
# made of digits and the marks between them, so a match lies inside one *cluster* (a digit, then
# digits and marks): a text is scanned once for its clusters, and the triggers read only those.
TRIGGERS = {
    "card": re.compile(r"\d(?:[ -]?\d){12}"),  # 13+ digits, at most one space or dash between two
    "phone": re.compile(r"\d(?:[ .()+-]{0,3}\d){8}"),  # 9+ digits, at most two marks between two
    "ssn": re.compile(r"\d{3}-\d{2}-\d{4}"),
    "ipv4": re.compile(r"\d\.\d{1,3}\.\d{1,3}\.\d"),
}
_CLUSTER = re.compile(r"\d[\d .()+-]*")
_TWO_DIGITS = re.compile(r"\d\d")
# A kept IPv6 match has three written groups, so one of them lies between two colons ("::" alone,
# as in reStructuredText, is no address).
_IPV6_TRIGGER = re.compile(r":[0-9A-Fa-f]{1,4}:")
# After an IBAN's country and check digits: 11+ letters or digits (compact), or two groups of four.
_IBAN_TAIL = re.compile(r"[A-Z0-9]{11}| [A-Z0-9]{4} [A-Z0-9]{4}")
_GITHUB_TRIGGER = re.compile(r"gh[pousr]_")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ASCII_DIGITS = frozenset("0123456789")


_MARKS = " .()+-"  # what may lie between two digits of one cluster
_NEEDS = {"card": 13, "phone": MIN_PHONE_DIGITS, "ssn": 9, "ipv4": 4}  # digits in any match


def _ascii_clusters(text: str) -> list[tuple[int, int, int]]:
    """(first digit, one past the last digit, digits) of each cluster of an ASCII text, where `\\d`
    is 0-9: the digits' positions come from one numpy pass, and two consecutive digits share a
    cluster when only marks lie between them. A cluster's trailing marks are left out: every
    trigger ends on a digit."""
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    positions = np.flatnonzero((codes - np.uint8(48)) < 10).tolist()  # uint8 wraps below "0"
    if not positions:
        return []
    clusters = []
    start = prev = positions[0]
    count = 1
    for p in positions[1:]:
        if p == prev + 1 or not text[prev + 1 : p].strip(_MARKS):
            count += 1
        else:
            clusters.append((start, prev + 1, count))
            start, count = p, 1
        prev = p
    clusters.append((start, prev + 1, count))
    return clusters


def _triggers(text: str) -> dict[str, bool]:
    """Which patterns can match in `text`: the cheap part of `mask_pii`."""
    found = _ascii_number_triggers(text) if text.isascii() else _number_triggers(text)
    found["ipv6"] = text.count(":") >= 2 and _IPV6_TRIGGER.search(text) is not None
    found["github"] = "_" in text and _GITHUB_TRIGGER.search(text) is not None
    return found


def _ascii_number_triggers(text: str) -> dict[str, bool]:
    """`_number_triggers` for an ASCII text, from `_ascii_clusters` (a regex scan for clusters
    costs about as much as the rest of `mask_pii` on text without personal data)."""
    clusters = _ascii_clusters(text)
    found = {
        kind: any(n >= _NEEDS[kind] and t.search(text, a, b) for a, b, n in clusters) for kind, t in TRIGGERS.items()
    }
    # An IBAN opens with two capitals then two digits (which open a cluster), then its tail.
    found["iban"] = any(
        a >= 2
        and n >= 2
        and text[a - 1] in _UPPER
        and text[a - 2] in _UPPER
        and text[a + 1] in _ASCII_DIGITS
        and _IBAN_TAIL.match(text, a + 2)
        for a, _, n in clusters
    )
    return found


def _number_triggers(text: str) -> dict[str, bool]:
    """Which number patterns (card, phone, SSN, IPv4, IBAN) can match, from the clusters a regex
    finds (any script's digits)."""
    found = dict.fromkeys(["card", "phone", "ssn", "ipv4", "iban"], False)
    digits = _digits(text)
    if digits >= 2:
        clusters = list(_CLUSTER.finditer(text))
        for kind, trigger in TRIGGERS.items():
            found[kind] = digits >= _NEEDS[kind] and any(trigger.search(m.group()) for m in clusters)
        # An IBAN opens with two capitals then two digits (which open a cluster), then its tail.
        found["iban"] = any(
            m.start() >= 2
            and text[m.start() - 1] in _UPPER
            and text[m.start() - 2] in _UPPER
            and _TWO_DIGITS.match(m.group())
            and _IBAN_TAIL.match(text, m.start() + 2)
            for m in clusters
        )
    return found


def mask_pii(text: str) -> tuple[str, Counter[str]]:
    """Returns the masked text and how many of each kind (see `PLACEHOLDERS`) were masked.

    Each pattern runs only on a text holding what any of its matches must hold (`_triggers`, an @
    for an address, "sk-" for a key...): most rows hold no trigger for most patterns, and a
    pattern's scan costs far more than its trigger's. The triggers are read from the unmasked
    text, which is safe because a placeholder holds no digit, @, colon, dash or key prefix:
    masking only takes away what a trigger looks for.
    """
    counts: Counter[str] = Counter()
    found = _triggers(text)
    if "-----BEGIN" in text:
        text = _mask(PEM_PRIVATE_KEY, "secret", text, counts)
    if "sk-" in text:
        text = _mask(OPENAI_KEY, "secret", text, counts, keep=lambda m: _has_digit(m.group()[3:]))
    if "AKIA" in text or "ASIA" in text:
        text = _mask(AWS_KEY_ID, "secret", text, counts)
    if "aws_secret_access_key" in text.casefold():  # casefold folds what IGNORECASE does (ſ, K too)
        text = _mask(AWS_SECRET, "secret", text, counts, group=2)
    if found["github"]:
        text = _mask(GITHUB_TOKEN, "secret", text, counts)
    if "Bearer" in text:
        text = _mask(BEARER, "secret", text, counts, keep=lambda m: _has_digit(m.group(2)), group=2)
    if "@" in text:
        text = _mask(EMAIL, "email", text, counts)  # before numbers: an address may hold digits
    if found["iban"]:
        text = IBAN_GROUPED.sub(lambda m: _iban(m, counts), text)
        text = IBAN_COMPACT.sub(lambda m: _iban(m, counts), text)
    if found["card"]:
        text = _mask(CREDIT_CARD, "credit_card", text, counts, keep=_card_ok)
    if found["ssn"]:
        text = _mask(SSN, "ssn", text, counts)
    if found["ipv4"]:
        text = _mask(IPV4, "ip_address", text, counts, keep=lambda m: _is_global_ip(m.group()))
    if found["ipv6"]:
        text = _mask(
            IPV6,
            "ip_address",
            text,
            counts,
            keep=lambda m: sum(bool(g) for g in m.group().split(":")) >= 3 and _is_global_ip(m.group()),
        )
    if found["phone"]:
        keep_phone = lambda m: sum(c.isdigit() for c in m.group()) >= MIN_PHONE_DIGITS  # noqa: E731
        text = _mask(PHONE, "phone", text, counts, keep=keep_phone)
    return text, counts


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
            for key in ("text",) if row.kind == "text" else ("prompt", "chosen", "rejected"):
                data[key], c = mask_pii(data[key])
                counts.update(c)
        yield replace(row, data=data, normalized=False)  # a mask may sit where spaces were
