"""Drops training rows that share a word 13-gram with an evaluation item, as GPT-3 and later did.

An eval score means little if the model trained on the test answers. Following Brown et al. 2020
(GPT-3, Appendix C) we index every 13-gram of every eval item and drop any training row that
contains one. Words are lower-cased runs of letters and digits (`\\w+`), so punctuation, case and
spacing do not hide a copy. Each n-gram is stored as a 64-bit xxh3 hash: a corpus of eval sets
fits in a few MB, and a false hit needs a 64-bit collision.

A text shorter than n words becomes one n-gram of all its words, on both sides. So a short eval
item ("What is 2 + 2?") only catches a training row that is exactly that text, never a long row
that happens to contain it: indexing short items inside long rows would flag every row that says
"paris" because an eval answer is "Paris".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import xxhash

from tasks.data.records import Ledger, Row

_WORD = re.compile(r"\w+")


@dataclass
class NgramIndex:
    """Hashed eval n-grams -> the ids of the eval items that contain them."""

    n: int
    table: dict[int, tuple[str, ...]] = field(default_factory=dict)
    items: int = 0


def _hash(words: list[str]) -> int:
    return xxhash.xxh3_64_intdigest(" ".join(words).encode("utf-8"))


def ngram_hashes(text: str, n: int) -> set[int]:
    """64-bit hashes of the text's lower-cased word n-grams (the whole text if shorter than n)."""
    words = _WORD.findall(text.lower())
    if not words:
        return set()
    if len(words) < n:
        return {_hash(words)}
    return {_hash(words[i : i + n]) for i in range(len(words) - n + 1)}


def build_ngram_index(eval_texts: Iterable[tuple[str, str]], n: int = 13) -> NgramIndex:
    """Indexes `(eval item id, text)` pairs; an n-gram shared by several items keeps every id."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    table: dict[int, set[str]] = {}
    items = 0
    for item_id, text in eval_texts:
        items += 1
        for h in ngram_hashes(text, n):
            table.setdefault(h, set()).add(item_id)
    return NgramIndex(n=n, table={h: tuple(sorted(ids)) for h, ids in table.items()}, items=items)


def decontaminate(
    rows: Iterable[Row], ledger: Ledger, index: NgramIndex, n: int = 13, hits: Counter[str] | None = None
) -> Iterator[Row]:
    """Drops rows sharing any n-gram with an eval item (`eval_contamination`, detail = item ids).

    `hits` counts, per eval item id, how many training rows it caught: the report names the eval
    items that leaked, so their scores can be read with care or the items retired.
    """
    if n != index.n:
        raise ValueError(f"decontaminate(n={n}) does not match the index built with n={index.n}; pass n={index.n}")
    for row in rows:
        found: set[str] = set()
        for h in ngram_hashes(row.text(), n):
            found.update(index.table.get(h, ()))
        if not found:
            yield row
            continue
        ids = sorted(found)
        if hits is not None:
            hits.update(ids)
        ledger.drop(row, row.id, "eval_contamination", detail=",".join(ids[:20]))
