"""Toxicity baseline: a short word list kept in the repo, matched on word boundaries.

A list is crude (it misses insults made of polite words and cannot tell quoting from abuse), but it
is transparent, instant, and needs no model download; a classifier can replace it behind the same
check. C4 (Raffel et al. 2020) drops a page on any listed word; chat data holds casual profanity
that is not harmful to keep in a prompt, so here "mild" terms only drop a row above a share of its
words, while "severe" terms (slurs, incitement to self-harm, threats) drop it on first sight.

Matching tolerates the usual dodges: letter-for-digit swaps (sh1t, @sshole), repeated letters
(fuuuck), "*" for inner letters (f**k), dots or dashes between letters (f.u.c.k) and, for mild
terms, a few suffixes (-s, -ed, -er, -ing). Severe terms take only a plural -s, because suffixes
turn short slurs into ordinary words.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from tasks.data.records import Row

WORDLIST = Path(__file__).parent / "wordlists" / "toxic_en.txt"

_LOOKALIKES = {"a": "a@4", "e": "e3", "i": "i1!|", "o": "o0", "s": "s$5", "t": "t7", "l": "l1"}
_MILD_SUFFIX = r"(?:s|es|ed|er|ers|ing|in)?"


def _term_pattern(term: str, suffix: str) -> str:
    """A regex for one term: each letter in its look-alikes (repeatable), inner letters also '*'."""
    words = []
    for word in term.split():
        parts = []
        for i, ch in enumerate(word):
            cls = "[" + re.escape(_LOOKALIKES.get(ch, ch)) + "]+"
            parts.append(f"(?:{cls}|\\*+)" if 0 < i < len(word) - 1 else cls)
        words.append("[._-]?".join(parts))
    return r"(?<![a-z0-9])" + r"\s+".join(words) + suffix + r"(?![a-z0-9])"


@lru_cache(maxsize=4)
def load_lexicon(path: Path = WORDLIST) -> tuple[re.Pattern[str], frozenset[str]]:
    """One alternation over every term (longest first) and the set of group names that are severe."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        level, _, term = line.partition(" ")
        if level not in ("mild", "severe") or not term:
            raise ValueError(f"{path}: bad line {line!r}; expected '<mild|severe> <term>'")
        entries.append((level, term.strip().lower()))
    entries.sort(key=lambda e: -len(e[1]))
    groups, severe = [], set()
    for i, (level, term) in enumerate(entries):
        suffix = "s?" if level == "severe" else _MILD_SUFFIX
        groups.append(f"(?P<t{i}>{_term_pattern(term, suffix)})")
        if level == "severe":
            severe.add(f"t{i}")
    return re.compile("|".join(groups), re.IGNORECASE), frozenset(severe)


def toxic_counts(text: str, path: Path = WORDLIST) -> tuple[int, int]:
    """(mild, severe) matches in `text`; a listed phrase counts once."""
    pattern, severe = load_lexicon(path)
    mild = strong = 0
    for m in pattern.finditer(text):
        if m.lastgroup in severe:
            strong += 1
        else:
            mild += 1
    return mild, strong


def toxic_words(row: Row, *, max_share: float = 0.02, path: Path = WORDLIST) -> str | None:
    """Drops (`toxic_words`) a row with any severe term or with listed words over `max_share` of its
    words; the default 0.02 lets one swear word through in a 50-word answer, not two."""
    text = row.text()
    mild, severe = toxic_counts(text, path)
    if severe:
        return "toxic_words"
    if mild and mild / max(len(text.split()), 1) > max_share:
        return "toxic_words"
    return None
