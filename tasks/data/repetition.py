"""Gopher's repetition rules (Rae et al. 2021, Table A1), decided mostly from bounds.

Every text the quality step sees goes through these rules, and counting each n-gram share exactly
(n = 2..10, tuples of words) was the step's largest cost. Natural text stays far below every
limit, so the shares are first bounded from what the bigrams say (`_Grams`), and computed exactly
only for a text whose bound reaches a limit: the decisions are those of computing them all.

The bounds need each word's length and something equal for equal words, not the words
themselves: `word_stats` reads both from the text's code points in a few numpy passes, several
times cheaper than splitting, stripping, measuring and hashing some 300 Python strings a row.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from functools import cached_property, lru_cache
from typing import Protocol

import numpy as np

from configs.quality import QualityConfig

PUNCT = string.punctuation + "“”‘’…–—«»"  # what a word is stripped of at both ends

_MAX_CHARS = 1 << 16  # longer texts (rare) take the word-list path
_BASE = 0x100000001B3  # odd, so invertible mod 2^64: a word's hash does not depend on where it is


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The class of every code point (0: whitespace as `str.split` sees it, 1: `PUNCT`, 2: other),
    and the powers of `_BASE` and of its inverse mod 2^64."""
    cls = np.full(0x110000, 2, dtype=np.uint8)
    cls[[ord(c) for c in PUNCT]] = 1
    cls[list(map(ord, filter(str.isspace, map(chr, range(0x110000)))))] = 0
    one = np.ones(1, dtype=np.uint64)
    powers, inverses = (
        np.concatenate((one, np.cumprod(np.full(_MAX_CHARS - 1, b, dtype=np.uint64))))  # wraps mod 2^64
        for b in (_BASE, pow(_BASE, -1, 1 << 64))
    )
    return cls, powers, inverses


def word_stats(lower: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(length, hash) of each of `_stripped(lower.split())`'s words, in order; None for a text too
    long for the tables.

    A word is a whitespace-separated token stripped of `PUNCT` at both ends: it runs from a token's
    first other character to its last, so two consecutive "other" characters belong to one word
    exactly when no whitespace lies between them. A word's hash is its code points' polynomial
    (plus one) mod 2^64 (wrapping uint64 arithmetic), divided by the power of its start: equal words hash
    equal wherever they stand; two different words may collide, which the bounds allow.
    """
    if len(lower) > _MAX_CHARS:
        return None
    cls, powers, inverses = _tables()
    if lower.isascii():
        codes = np.frombuffer(lower.encode("ascii"), dtype=np.uint8)
    else:  # surrogatepass: JSON may carry a lone surrogate, an "other" character like any
        codes = np.frombuffer(lower.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    kinds = cls[codes]
    inner = np.flatnonzero(kinds == 2)
    if not len(inner):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    spaces = np.cumsum(kinds == 0, dtype=np.int32)[inner]
    first = np.empty(len(inner), dtype=bool)
    last = np.empty(len(inner), dtype=bool)
    first[0] = last[-1] = True
    np.not_equal(spaces[1:], spaces[:-1], out=first[1:])
    last[:-1] = first[1:]
    starts, ends = inner[first], inner[last] + 1
    prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
    np.cumsum((codes + np.uint64(1)) * powers[: len(codes)], out=prefix[1:])  # + 1: a NUL counts too
    return ends - starts, (prefix[ends] - prefix[starts]) * inverses[starts]


class Text(Protocol):
    """What the rules read of a text (`tasks.data.quality.TextView` computes each once)."""

    text: str
    lower: str
    lines: list[str]
    lower_words: list[str]


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(number, characters) of items that repeat an earlier item; the first copy is not counted."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _grams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(words[i:] for i in range(n))))


def _dup_ngram_share(words: list[str], n: int, total_chars: int) -> float:
    grams = _grams(words, n)
    if len(set(grams)) == len(grams):  # no n-gram repeats: nothing is covered (most rows, at n = 5)
        return 0.0
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(words)
    for i, gram in enumerate(grams):
        if gram in seen:
            covered[i : i + n] = [True] * n  # overlapping repeats count each word once
        else:
            seen.add(gram)
    return sum(len(w) for w, c in zip(words, covered) if c) / total_chars


class _Grams:
    """A text's word n-gram shares: bounds from the bigrams, exact counts on demand.

    Two facts bound every n-gram share by what the bigrams say. The most frequent n-gram (n >= 2)
    occurs at most as often as the most frequent bigram (each occurrence starts with one), and holds
    at most the characters of the longest run of n words. And the words that repeated n-grams cover
    (n >= 2) are among those that repeated bigrams cover. Bigrams are compared by their words'
    hashes: a collision can only make two bigrams look alike, which raises a bound, never lowers it.
    """

    def __init__(self, view: Text, lengths: np.ndarray, hashes: np.ndarray):
        self.view, self.lengths, self.hashes = view, lengths, hashes
        self.total = int(lengths.sum())

    @cached_property
    def words(self) -> list[str]:
        return self.view.lower_words

    @cached_property
    def _bigrams(self) -> tuple[int, int]:
        """(most occurrences of one bigram, characters of the words that repeated bigrams cover), at least."""
        h = self.hashes
        if len(h) < 2:
            return 0, 0
        with np.errstate(over="ignore"):
            keys = h[:-1] * np.uint64(1000003) + h[1:]
        order = keys.argsort(kind="stable")  # equal keys: the first occurrence first
        ordered = keys[order]
        same = ordered[1:] == ordered[:-1]
        if not same.any():
            return 1, 0
        starts = np.flatnonzero(np.concatenate(([True], ~same, [True])))
        repeats = order[1:][same]  # every occurrence of a bigram after its first
        covered = np.zeros(len(h), dtype=bool)
        covered[repeats] = covered[repeats + 1] = True
        return int(np.diff(starts).max()), int(self.lengths[covered].sum())

    @cached_property
    def _cumulative(self) -> np.ndarray:
        return np.concatenate(([0], np.cumsum(self.lengths)))

    def top_share(self, n: int) -> float:
        grams = Counter(zip(*(self.words[i:] for i in range(n))))
        if not grams:
            return 0.0
        gram, count = grams.most_common(1)[0]
        return 0.0 if count < 2 else count * sum(map(len, gram)) / self.total

    def top_bound(self, n: int) -> float:
        """At least `top_share(n)`, for n >= 2."""
        most = self._bigrams[0]
        if most < 2 or len(self.lengths) < n:
            return 0.0
        c = self._cumulative  # the most characters n consecutive words hold
        return most * int((c[n:] - c[:-n]).max()) / self.total

    def dup_bound(self) -> float:
        """At least every `_dup_ngram_share` for n >= 2."""
        return self._bigrams[1] / self.total


def _stats(view: Text) -> tuple[np.ndarray, np.ndarray]:
    stats = word_stats(view.lower)
    if stats is not None:
        return stats
    words = view.lower_words
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    return lengths, np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)


def repetition_reason(view: Text, cfg: QualityConfig) -> str | None:
    """Gopher's repetition rules on one text; texts under `cfg.rep_min_words` words pass untested,
    since there one repeated line or phrase is a large share by accident, not a sign of degenerate
    text.

    The duplicated n-gram shares only fall as n grows (a repeated n-gram is made of two repeated
    (n-1)-grams, so what n covers, n-1 covers too); once the smallest n's share is within every
    limit, the larger ones cannot exceed theirs and are not computed. Shares that `_Grams` bounds
    within their limits are not computed either.
    """
    lengths, hashes = _stats(view)
    if len(lengths) < cfg.rep_min_words:
        return None
    text = view.text
    lines = view.lines
    dup, dup_chars = _duplicates(lines)
    if dup / len(lines) > cfg.max_dup_line_fraction:
        return "rep_dup_lines"
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    pdup, pdup_chars = _duplicates(paragraphs)
    if pdup / len(paragraphs) > cfg.max_dup_paragraph_fraction:
        return "rep_dup_paragraphs"
    if dup_chars / len(text) > cfg.max_dup_line_char_fraction:
        return "rep_dup_line_chars"
    if pdup_chars / len(text) > cfg.max_dup_paragraph_char_fraction:
        return "rep_dup_paragraph_chars"
    grams = _Grams(view, lengths, hashes)
    for n, limit in sorted(cfg.max_top_ngram_share.items()):
        if n >= 2 and grams.top_bound(n) <= limit:
            continue
        if grams.top_share(n) > limit:
            return "rep_top_ngram"
    limits = sorted(cfg.max_dup_ngram_share.items())
    lowest = min((limit for _, limit in limits), default=0.0)
    if limits and limits[0][0] >= 2 and grams.dup_bound() <= lowest:
        return None
    for n, limit in limits:
        share = _dup_ngram_share(grams.words, n, grams.total)
        if share > limit:
            return "rep_dup_ngram"
        if share <= lowest:  # every larger n shares at most this much
            break
    return None
