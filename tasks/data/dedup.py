"""Drops exact and near duplicates, keeping the first copy in stream order.

Duplicates make a model memorise a few examples and leak between train and eval. Exact copies are
found by a hash of the normalised, lower-cased text. Near copies (a word changed, a sentence
appended) are found by MinHash LSH: the index is built at a looser threshold than asked for, since
LSH misses many pairs just above its threshold, and every candidate is then checked with the real
Jaccard similarity of the shingle sets, so a row is only dropped for a pair that truly passes.
Rows are compared within their kind only: a chat and a preference pair never duplicate each other.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Iterator

import xxhash
from datasketch import MinHash, MinHashLSH

from tasks.data.records import Ledger, Row
from tasks.data.validate import normalize_text


def dedup_exact(rows: Iterable[Row], ledger: Ledger) -> Iterator[Row]:
    """Drops a row whose normalised, lower-cased text was seen before; keeps 20-byte digests, not texts."""
    first_id: dict[bytes, str] = {}
    for row in rows:
        key = hashlib.sha1(f"{row.kind}\0{normalize_text(row.text()).lower()}".encode("utf-8")).digest()
        if key in first_id:
            ledger.drop(row, row.id, "exact_duplicate", first_id[key])
            continue
        first_id[key] = row.id
        yield row


def word_shingles(text: str, n: int) -> list[bytes]:
    """Distinct word n-grams of the lower-cased text; a text shorter than n words is one shingle."""
    words = text.lower().split()
    if len(words) < n:
        grams = [" ".join(words)]
    else:
        grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return [g.encode("utf-8") for g in dict.fromkeys(grams)]


def jaccard(a: set[int] | frozenset[int], b: set[int] | frozenset[int]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def index_threshold(threshold: float) -> float:
    """The looser LSH threshold: 0.15 below the target, but never below half of it (0.8 -> 0.65)."""
    return max(threshold - 0.15, threshold / 2)


def dedup_minhash(
    rows: Iterable[Row],
    ledger: Ledger,
    num_perm: int,
    threshold: float,
    shingle_words: int,
    seed: int = 1,
) -> Iterator[Row]:
    """Drops a row whose verified Jaccard with an earlier kept row of its kind reaches `threshold`.

    Memory grows with the kept rows (one signature in the index and one set of 64-bit shingle
    hashes each), not with their text.
    """
    loose = index_threshold(threshold)
    indexes: dict[str, MinHashLSH] = {}
    kept: dict[int, tuple[str, frozenset[int]]] = {}  # LSH key -> (row id, shingle hashes)
    for row in rows:
        grams = word_shingles(row.text(), shingle_words)
        shingles = frozenset(xxhash.xxh64_intdigest(g) for g in grams)
        mh = MinHash(num_perm=num_perm, seed=seed, hashfunc=xxhash.xxh32_intdigest)
        mh.update_batch(grams)
        lsh = indexes.get(row.kind)
        if lsh is None:
            lsh = indexes[row.kind] = MinHashLSH(threshold=loose, num_perm=num_perm)
        best_key, best_j = -1, -1.0
        for key in sorted(lsh.query(mh)):  # sorted: the earliest kept row wins a tie
            j = jaccard(shingles, kept[key][1])
            if j > best_j:
                best_key, best_j = key, j
        if best_key >= 0 and best_j >= threshold:
            ledger.drop(row, row.id, "near_duplicate", f"{kept[best_key][0]} jaccard={best_j:.3f}")
            continue
        key = len(kept)
        kept[key] = (row.id, shingles)
        lsh.insert(key, mh)
        yield row
