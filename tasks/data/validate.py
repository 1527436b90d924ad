"""Checks each row's shape and normalises its text, so later steps can trust both.

Dedup and length filters compare text; if one copy of an example has a tab where the other has a
space, or a decomposed accent, they would count as different. Normalising once here, before any
comparison, makes those copies equal. Shape checks catch rows a trainer would crash on or learn
nothing from (no user turn, an answer that is not the last turn, a preference pair with the same
answer twice).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from typing import Any, Iterable, Iterator

from tasks.data.records import Ledger, Row

ROLES = frozenset({"system", "user", "assistant"})
PREF_FIELDS = ("prompt", "chosen", "rejected")

_HSPACE = re.compile(r"[^\S\n]+")  # any whitespace except newline: spaces, tabs, NBSP, ...
_BLANKS = re.compile(r"\n{3,}")


_ODD_SPACE = re.compile(r"[^\S\n ]")  # horizontal whitespace other than one plain space
_ASCII_ODD_SPACES = "\t\x0b\x0c\x1c\x1d\x1e\x1f"  # what that class matches in ASCII, once \r is gone


def _regular(s: str) -> bool:
    """Whether the line-by-line rewrite would change nothing: no horizontal whitespace other than
    single spaces, and no space at the start or end of a line. Substring searches, which run at
    memory speed, where one regex over the text cost as much as the rewrite it spares."""
    if "  " in s or "\n " in s or " \n" in s or s.startswith(" ") or s.endswith(" "):
        return False
    if s.isascii():
        return not any(ch in s for ch in _ASCII_ODD_SPACES)
    return _ODD_SPACE.search(s) is None


def normalize_text(s: str) -> str:
    """NFC, one space for each run of horizontal whitespace, at most one blank line in a row.

    Newlines stay: they carry structure (lists, code, paragraphs) a model should learn. Most text
    already has single spaces and no spaces around its newlines: one scan finds that, and the
    line-by-line rewrite, which would change nothing, is skipped (it cost a tenth of a curation).
    """
    s = unicodedata.normalize("NFC", s)
    if "\r" in s:
        s = s.replace("\r\n", "\n").replace("\r", "\n")
    if not _regular(s):
        s = "\n".join(_HSPACE.sub(" ", line).strip(" ") for line in s.split("\n"))
    return (_BLANKS.sub("\n\n", s) if "\n\n\n" in s else s).strip()


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _text_field(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Invalid("wrong_type", f"{where} is a {type(value).__name__}, not a string")
    text = normalize_text(value)
    if not text:
        raise _Invalid("empty_field", f"{where} is empty")
    return text


def _check_sft(data: dict[str, Any]) -> dict[str, Any]:
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise _Invalid("wrong_type", f"messages is a {type(messages).__name__}, not a list")
    if not messages:
        raise _Invalid("empty_field", "messages is empty")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _Invalid("wrong_type", f"messages[{i}] is a {type(m).__name__}, not an object")
        role = m.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise _Invalid("bad_role", f"messages[{i}].role is {role!r}; use one of {sorted(ROLES)}")
        out.append({**m, "content": _text_field(m.get("content"), f"messages[{i}].content")})
    if not any(m["role"] == "user" for m in out):
        raise _Invalid("missing_turn", "no user turn")
    if out[-1]["role"] != "assistant":
        raise _Invalid("missing_turn", f"last turn is {out[-1]['role']!r}, not 'assistant'")
    return {"messages": out}


def _check_pref(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: _text_field(data.get(k), k) for k in PREF_FIELDS}
    if out["chosen"] == out["rejected"]:
        raise _Invalid("same_answers", "chosen and rejected are the same text")
    return out


def _check_text(data: dict) -> dict:
    text = data.get("text")
    if not isinstance(text, str):
        raise _Invalid("wrong_type", f"text is a {type(text).__name__}, not a string")
    text = normalize_text(text)
    if not text:
        raise _Invalid("empty_field", "text is empty")
    return {**data, "text": text}


def validate_rows(rows: Iterable[Row], ledger: Ledger) -> Iterator[Row]:
    """Yields rows with a trainable shape and normalised text; drops the rest with the first problem found."""
    for row in rows:
        try:
            data = {"sft": _check_sft, "pref": _check_pref, "text": _check_text}[row.kind](row.data)
        except _Invalid as bad:
            ledger.drop(row, row.id, bad.reason, bad.detail)
            continue
        yield replace(row, data=data, normalized=True)
