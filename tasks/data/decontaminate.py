"""Drops training rows that share a word 13-gram with an evaluation item, as GPT-3 and later did.

An eval score means little if the model trained on the test answers. Following Brown et al. 2020
(GPT-3, Appendix C) we index every 13-gram of every eval item and drop any training row that
contains one. Words are lower-cased runs of letters and digits (`\\w+`), so punctuation, case and
spacing do not hide a copy. Each n-gram is stored as the tuple of its words' numbers in the eval
sets' vocabulary, so a hit is never a collision, and a training row is only cut into n-grams
along runs of words the eval sets hold.

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

from tasks.data.records import Ledger, Row

_WORD = re.compile(r"\w+")


@dataclass
class NgramIndex:
    """Eval n-grams -> the ids of the eval items that contain them.

    An n-gram is kept as the tuple of its words' numbers in `vocab`, the eval sets' own words:
    exact (no hash to collide), and a training row's n-gram can only be an eval n-gram when all
    its words are in `vocab`, which rules out most rows before any n-gram is built.
    """

    n: int
    table: dict[tuple[int, ...], tuple[str, ...]] = field(default_factory=dict)
    items: int = 0
    vocab: dict[str, int] = field(default_factory=dict)
    ascii_vocab: dict[bytes, int] = field(init=False)  # `vocab`'s ASCII words as bytes, same numbers

    def __post_init__(self) -> None:
        self.ascii_vocab = {w.encode("ascii"): i for w, i in self.vocab.items() if w.isascii()}


# In ASCII text a word character (`\w`) is a letter, a digit or "_": every other character can
# become a space, and `split` then finds the same words as the regex, several times faster.
_ASCII_NON_WORD = str.maketrans({c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")})


# The same on ASCII bytes, lower-casing in the same table: `bytes.translate` is a plain table lookup.
_BYTES_WORDS = bytes(
    c + 32 if 65 <= c <= 90 else c if chr(c).isalnum() or c == 95 else 32 if c < 128 else c for c in range(256)
)


def _words(text: str) -> list[str]:
    lower = text.lower()
    if lower.isascii():
        return lower.translate(_ASCII_NON_WORD).split()
    return _WORD.findall(lower)


def _row_words(text: str, index: NgramIndex) -> tuple[list[str] | list[bytes], dict]:
    """A training text's words and the vocabulary to number them by: ASCII text (most) as bytes."""
    if text.isascii():
        return text.encode("ascii").translate(_BYTES_WORDS).split(), index.ascii_vocab
    return _words(text), index.vocab


def ngram_keys(words: list[str], n: int, vocab: dict[str, int], grow: bool = False) -> set[tuple[int, ...]]:
    """The text's word n-grams (the whole text if shorter than n) as tuples of word numbers.

    With `grow`, unknown words are numbered (building the index); otherwise an n-gram holding a
    word outside `vocab` cannot be an eval n-gram and is left out.
    """
    if not words:
        return set()
    if grow:
        ids = [vocab.setdefault(w, len(vocab)) for w in words]
        return {tuple(ids)} if len(ids) < n else set(zip(*(ids[i:] for i in range(n))))
    known = bytes(map(vocab.__contains__, words))  # 1 per word in the eval vocabulary: C loops, not Python ones
    if 0 not in known:
        ids = list(map(vocab.__getitem__, words))
        return {tuple(ids)} if len(ids) < n else set(zip(*(ids[i:] for i in range(n))))
    keys: set[tuple[int, ...]] = set()
    if len(words) < n:
        return keys
    for m in re.finditer(b"\x01{%d,}" % n, known):  # n-grams inside each run of known words, numbered
        run = list(map(vocab.__getitem__, words[m.start() : m.end()]))
        keys.update(zip(*(run[i:] for i in range(n))))
    return keys


def build_ngram_index(eval_texts: Iterable[tuple[str, str]], n: int = 13) -> NgramIndex:
    """Indexes `(eval item id, text)` pairs; an n-gram shared by several items keeps every id."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    vocab: dict[str, int] = {}
    table: dict[tuple[int, ...], set[str]] = {}
    items = 0
    for item_id, text in eval_texts:
        items += 1
        for key in ngram_keys(_words(text), n, vocab, grow=True):
            table.setdefault(key, set()).add(item_id)
    return NgramIndex(n=n, table={k: tuple(sorted(ids)) for k, ids in table.items()}, items=items, vocab=vocab)


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
        words, vocab = _row_words(row.text(), index)
        for key in ngram_keys(words, n, vocab):
            found.update(index.table.get(key, ()))
        if not found:
            yield row
            continue
        ids = sorted(found)
        if hits is not None:
            hits.update(ids)
        ledger.drop(row, row.id, "eval_contamination", detail=",".join(ids[:20]))
