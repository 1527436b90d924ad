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

What a text matches is defined by one regex alternation over every term (longest first), but
running that alternation over every row cost half of a curation's CPU: at each position Python's
regex engine tries all 56 alternatives. So a text first goes through a linear-time screen: it is
folded to a canonical form (each letter's look-alikes to one symbol, case folded as the regex folds
it, separators removed, repeated symbols collapsed) and scanned once by an Aho-Corasick automaton
(ahocorasick-rs) holding every term's canonical spellings, with each inner letter either kept or
starred. Any regex match of a term folds to a string containing one of that term's spellings, so a
text the automaton passes holds no match, and the alternation runs only on the rare text it flags,
restricted to the terms it flagged (a term that cannot match anywhere never changes what the
alternation finds). The counts are therefore the alternation's own, at about 1/100 of the cost.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from configs.quality import QualityConfig
from tasks.data.records import Row

WORDLIST = Path(__file__).parent / "wordlists" / "toxic_en.txt"

_LOOKALIKES = {"a": "a@4", "e": "e3", "i": "i1!|", "o": "o0", "s": "s$5", "t": "t7", "l": "l1"}
_MILD_SUFFIX = r"(?:s|es|ed|er|ers|ing|in)?"
_SEPARATORS = "._-"  # what `[._-]?` may put between two letters of a term


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


class Lexicon(NamedTuple):
    terms: tuple[tuple[str, str], ...]  # (level, term), longest term first: the alternation's order
    pattern: re.Pattern[str]  # the alternation over every term: what a match is
    severe: frozenset[str]  # group names (t<index>) of severe terms
    screen: object  # ahocorasick_rs.BytesAhoCorasick over the canonical spellings
    spelled: tuple[frozenset[int], ...]  # per spelling of the screen, the indexes of the terms it stands for
    fold: np.ndarray  # canonical symbol (a byte; 0: removed) of every code point


def _read_terms(path: Path) -> list[tuple[str, str]]:
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
    return entries


@lru_cache(maxsize=1)
def _fold_table() -> np.ndarray:
    """The canonical symbol of every code point, for the characters the term regexes can match.

    The classes (`_LOOKALIKES`) overlap only on "1" (i and l), so i and l share the symbol "i".
    Case is folded the way the regex's IGNORECASE folds it, which reaches beyond ASCII (the Kelvin
    sign is a "k", a long s an "s"): those characters are found by asking the regex engine itself.
    Whitespace (what `\\s` matches) becomes one space, `*` stays, separators are removed (0); any
    other character becomes "#", which no spelling holds.
    """
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    symbol = {ch: ch for ch in "abcdefghijklmnopqrstuvwxyz0123456789"}
    for letter, cls in _LOOKALIKES.items():
        for ch in cls:
            symbol[ch] = "i" if letter in "il" else letter
    symbol["l"] = "i"
    for ch in "abcdefghijklmnopqrstuvwxyz":  # the case variants IGNORECASE lets a letter match
        for variant in re.findall(f"[{ch}]", everything, re.IGNORECASE):
            symbol[variant] = symbol[ch]
    table = np.full(0x110000, ord("#"), dtype=np.uint8)
    for ch, sym in symbol.items():
        table[ord(ch)] = ord(sym)
    for ch in re.findall(r"\s", everything):
        table[ord(ch)] = ord(" ")
    table[ord("*")] = ord("*")
    for ch in _SEPARATORS:
        table[ord(ch)] = 0
    table.flags.writeable = False
    return table


def fold(text: str, table: np.ndarray | None = None) -> bytes:
    """The canonical form the screen scans: symbols per `_fold_table`, repeated symbols collapsed."""
    table = _fold_table() if table is None else table
    if text.isascii():
        codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    else:  # surrogatepass: JSON may carry a lone surrogate, which is no letter either
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    sym = table[codes]
    sym = sym[sym != 0]
    if len(sym) > 1:
        keep = np.empty(len(sym), dtype=bool)
        keep[0] = True
        np.not_equal(sym[1:], sym[:-1], out=keep[1:])
        sym = sym[keep]
    return sym.tobytes()


def _collapse(s: str) -> str:
    return "".join(ch for i, ch in enumerate(s) if i == 0 or ch != s[i - 1])


def _spellings(term: str, table: np.ndarray) -> set[str]:
    """The canonical forms of every way the term's regex can spell it, suffix left out: each inner
    letter as its symbol or as '*', words joined by one space, repeated symbols collapsed."""
    words = []
    for word in term.split():
        options = [[chr(table[ord(ch)])] + (["*"] if 0 < i < len(word) - 1 else []) for i, ch in enumerate(word)]
        words.append(["".join(p) for p in itertools.product(*options)])
    return {_collapse(" ".join(combo)) for combo in itertools.product(*words)}


@lru_cache(maxsize=4)
def load_lexicon(path: Path = WORDLIST) -> Lexicon:
    """The alternation (longest term first), its severe group names, and the screen in front of it."""
    import ahocorasick_rs

    entries = _read_terms(path)
    table = _fold_table()
    groups, severe = [], set()
    spelled: dict[str, set[int]] = {}
    for i, (level, term) in enumerate(entries):
        groups.append(f"(?P<t{i}>{_term_pattern(term, _suffix(level))})")
        if level == "severe":
            severe.add(f"t{i}")
        for spelling in _spellings(term, table):
            spelled.setdefault(spelling, set()).add(i)
    keys = sorted(spelled)
    # A DFA: built once (milliseconds), it scans about 3x faster than the default NFA.
    screen = ahocorasick_rs.BytesAhoCorasick(
        [k.encode("ascii") for k in keys], implementation=ahocorasick_rs.Implementation.DFA
    )
    return Lexicon(
        tuple(entries),
        re.compile("|".join(groups), re.IGNORECASE),
        frozenset(severe),
        screen,
        tuple(frozenset(spelled[k]) for k in keys),
        table,
    )


def _suffix(level: str) -> str:
    return "s?" if level == "severe" else _MILD_SUFFIX


@lru_cache(maxsize=256)
def _alternation(path: Path, indexes: frozenset[int]) -> re.Pattern[str]:
    """The alternation over only these terms, in the full alternation's order and group names."""
    lex = load_lexicon(path)
    groups = [f"(?P<t{i}>{_term_pattern(lex.terms[i][1], _suffix(lex.terms[i][0]))})" for i in sorted(indexes)]
    return re.compile("|".join(groups), re.IGNORECASE)


def flagged_terms(text: str, path: Path = WORDLIST) -> frozenset[int]:
    """Indexes of the terms that may match somewhere in `text` (the screen); empty: none can."""
    lex = load_lexicon(path)
    hits = lex.screen.find_matches_as_indexes(fold(text, lex.fold), overlapping=True)
    if not hits:
        return frozenset()
    return frozenset().union(*(lex.spelled[key] for key, _, _ in hits))


def toxic_counts(text: str, path: Path = WORDLIST) -> tuple[int, int]:
    """(mild, severe) matches in `text`; a listed phrase counts once."""
    flagged = flagged_terms(text, path)
    if not flagged:
        return 0, 0
    severe = load_lexicon(path).severe
    mild = strong = 0
    for m in _alternation(path, flagged).finditer(text):
        if m.lastgroup in severe:
            strong += 1
        else:
            mild += 1
    return mild, strong


def toxic_words(row: Row, cfg: QualityConfig, path: Path = WORDLIST, text: str | None = None) -> str | None:
    """Drops (`toxic_words`) a row with any severe term or with listed words over
    `cfg.max_toxic_share` of its words; the default 0.02 lets one swear word through in a 50-word
    answer, not two. `text`: the row's text when the caller has it already."""
    text = row.text() if text is None else text
    mild, severe = toxic_counts(text, path)
    if severe:
        return "toxic_words"
    if mild and mild / max(len(text.split()), 1) > cfg.max_toxic_share:
        return "toxic_words"
    return None
