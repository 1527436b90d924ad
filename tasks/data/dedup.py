"""Drops exact and near duplicates, keeping the first copy in stream order.

Duplicates make a model memorise a few examples and leak between train and eval. Exact copies are
found by a hash of the normalised, lower-cased text (`ExactDedup`). Near copies (a word changed, a sentence
appended) are found by MinHash LSH: the index is built at a looser threshold than asked for, since
LSH misses many pairs just above its threshold, and every candidate is then checked with the real
Jaccard similarity of the shingle sets, so a row is only dropped for a pair that truly passes.
Rows are compared within their kind only: a chat and a preference pair never duplicate each other.

Memory: the index holds 8 bytes per band per kept row (128 bytes at 128 permutations and 16
bands), not the texts; a merge briefly doubles it. Verification needs the shingles of earlier kept
rows, so their ids and normalised texts go to an unlinked temporary file (`spill_dir`) and are
read back only for a candidate pair: disk of about the corpus size traded for RAM that does not
grow with it (in-memory shingle sets would cost more than the text, about 3 KB per 2 KB row). The
price is a file read and a shingle set built per verified pair; a small cache keeps the sets of
recent survivors, which clusters reuse.
"""

from __future__ import annotations

import bisect
import hashlib
import multiprocessing
import os
import struct
import tempfile
from array import array
from collections import Counter, OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import xxhash

from tasks.data.minhash import BandIndex, HashFunc, band_keys, batched, lsh_params, ordered_map, pack, packed_signatures
from tasks.data.records import Ledger, Row
from tasks.data.validate import normalize_text


def _normalized(row: Row) -> str:
    """The row's text, normalised. A validated row's text already is: each field was normalised,
    and joining normalised fields with newlines leaves nothing for `normalize_text` to change."""
    return row.text() if row.normalized else normalize_text(row.text())


def exact_keys(rows: Sequence[Row]) -> np.ndarray:
    """64 bits of the sha1 of each row's kind and normalised, lower-cased text: what makes two
    rows exact duplicates. Pure and per row, so worker processes or shards compute them."""
    keys = [hashlib.sha1(f"{row.kind}\0{_normalized(row).lower()}".encode("utf-8")).digest()[:8] for row in rows]
    return np.frombuffer(b"".join(keys), dtype="<u8").copy() if keys else np.empty(0, dtype=np.uint64)


class ExactDedup:
    """Exact duplicates across chunks, decided in input order: the first copy survives.

    Holds 12 bytes per kept row (its 64-bit key and number, in sorted runs like the LSH index)
    and the kept rows' ids in an unlinked temporary file, read back only to name what a duplicate
    repeats; a dict of digests and ids cost about 150 bytes a row. Two different texts are taken
    for duplicates only if their sha1s share 64 bits: about once in 370,000 runs of 10 M rows.
    """

    def __init__(self, spill_dir: str | None = None):
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted keys, kept-row numbers)
        self._ids = _Spill(spill_dir)

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        found = np.full(len(keys), -1, dtype=np.int64)
        for run_keys, numbers in self._runs:
            at = np.minimum(np.searchsorted(run_keys, keys), len(run_keys) - 1)
            hit = run_keys[at] == keys
            found[hit] = numbers[at[hit]]
        return found

    def _add(self, keys: np.ndarray, numbers: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self._runs.append((keys[order], numbers[order].astype(np.int32)))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (k2, n2), (k1, n1) = self._runs.pop(), self._runs.pop()
            keys, numbers = np.concatenate((k1, k2)), np.concatenate((n1, n2))
            order = np.argsort(keys, kind="stable")
            self._runs.append((keys[order], numbers[order]))

    def decide(self, ids: list[str], keys: np.ndarray) -> list[str | None]:
        """Per row: None (kept: first of its key) or the id of the earlier row it repeats."""
        earlier = self._lookup(keys)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        first_in_chunk = first[inverse.ravel()]
        kept = (earlier < 0) & (first_in_chunk == np.arange(len(keys)))
        base = len(self._ids)
        numbers = base + np.cumsum(kept) - 1
        self._ids.append([(ids[i], b"") for i in np.flatnonzero(kept).tolist()])
        self._add(keys[kept], numbers[kept])
        out: list[str | None] = []
        for i, (e, f, k) in enumerate(zip(earlier.tolist(), first_in_chunk.tolist(), kept.tolist())):
            out.append(None if k else self._ids.get(e)[0] if e >= 0 else ids[f])
        return out

    def close(self) -> None:
        self._ids.close()


def dedup_exact(rows: Iterable[Row], ledger: Ledger, chunk_size: int = 1000) -> Iterator[Row]:
    """Drops a row whose normalised, lower-cased text (in its kind) was seen before."""
    exact = ExactDedup()
    try:
        for chunk in batched(rows, chunk_size):
            for row, first in zip(chunk, exact.decide([r.id for r in chunk], exact_keys(chunk))):
                if first is None:
                    yield row
                else:
                    ledger.drop(row, row.id, "exact_duplicate", first)
    finally:
        exact.close()


def word_shingles(text: str, n: int) -> list[bytes]:
    """Distinct word n-grams of the lower-cased text; a text shorter than n words is one shingle."""
    words = text.lower().split()
    if len(words) < n:
        grams = [" ".join(words)]
    else:
        grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return [g.encode("utf-8") for g in dict.fromkeys(grams)]


def shingle_set(norm: bytes, n: int) -> set[tuple[bytes, ...]]:
    """The shingles of a normalised text (`minhash.normalize`) as word tuples: joined with spaces,
    the set `word_shingles` gives for the original. Words hold no space, so two tuples are equal
    exactly when their joins are, and Jaccard is the same; tuples skip the joining (~30 % less)."""
    words = norm.split(b" ") if norm else []
    if len(words) < n:
        return {tuple(words)}
    return set(zip(*(words[i:] for i in range(n))))


def jaccard(a: set, b: set) -> float:
    both = len(a & b)
    union = len(a) + len(b) - both
    return both / union if union else 1.0


def index_threshold(threshold: float) -> float:
    """The looser LSH threshold: 0.15 below the target, but never below half of it (0.8 -> 0.65)."""
    return max(threshold - 0.15, threshold / 2)


class Verdict(NamedTuple):
    kept: bool
    duplicate_of: str | None = None  # id of the earlier kept row it matched
    jaccard: float | None = None


def near_keys(rows: Sequence[Row], settings) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """What `NearDedup.decide_chunk` needs of a chunk (normalised texts, band keys): the costly,
    per-row part of near dedup, computed wherever the rows are."""
    s = settings
    index_at = index_threshold(s.minhash_threshold)
    bands, rows_per_band = (
        (s.minhash_bands, s.minhash_rows) if s.minhash_bands is not None else lsh_params(index_at, s.minhash_num_perm)
    )
    params = {
        "num_perm": s.minhash_num_perm,
        "seed": 1,
        "shingle_words": s.shingle_words,
        "hashfunc": xxhash.xxh32_intdigest,
        "scheme": "affine32",
        "bands": bands,
        "rows": rows_per_band,
    }
    return _chunk_task([r.text() for r in rows], params)


def _chunk_task(texts: Sequence[str], params: dict[str, Any]) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """Worker side: the normalised texts in one buffer (offsets, lengths), and their signatures' band keys."""
    sig_params = {k: params[k] for k in ("num_perm", "seed", "shingle_words", "hashfunc", "scheme")}
    packed = pack(texts)
    keys = band_keys(packed_signatures(packed, **sig_params), params["bands"], params["rows"])
    return packed.buf, packed.offs, packed.lens, keys


class _Spill:
    """Kept rows' ids and normalised texts in an unlinked temporary file, read back by kept-row number."""

    def __init__(self, spill_dir: str | None):
        self._file = tempfile.TemporaryFile(dir=spill_dir)
        self._ends = array("q", [0])
        self._cache: OrderedDict[int, tuple[str, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ends) - 1

    def append(self, records: list[tuple[str, bytes]]) -> None:
        parts = []
        for row_id, norm in records:
            raw = row_id.encode("utf-8")
            parts += (struct.pack("<I", len(raw)), raw, norm)
            self._ends.append(self._ends[-1] + 4 + len(raw) + len(norm))
        self._file.write(b"".join(parts))
        self._file.flush()

    def get(self, number: int) -> tuple[str, bytes]:
        hit = self._cache.get(number)
        if hit is None:
            start = self._ends[number]
            raw = os.pread(self._file.fileno(), self._ends[number + 1] - start, start)
            (n,) = struct.unpack_from("<I", raw)
            hit = self._cache[number] = (raw[4 : 4 + n].decode("utf-8"), raw[4 + n :])
            if len(self._cache) > 256:
                self._cache.popitem(last=False)
        return hit

    def close(self) -> None:
        self._file.close()


class NearDedup:
    """Streaming MinHash LSH near-dedup: verdicts in input order, the first row of a cluster survives.

    Rows arrive as (id, kind, text) and are processed in chunks: signatures and band keys per chunk
    (in `processes` worker processes when above 1), then a sequential pass that checks each row's
    LSH candidates among earlier kept rows of its kind with the exact Jaccard of shingle sets and
    drops it when the best reaches `threshold` (ties go to the earliest kept row).

    The LSH bands default to what datasketch's `MinHashLSH` picks at `index_at` (0.65 for 0.8):
    at 0.8 itself LSH misses a third of the pairs between 0.80 and 0.85. Workers are spawned, not
    forked (Prefect and MLflow hold threads), so a script using `processes` > 1 needs the
    `if __name__ == "__main__":` guard.
    """

    def __init__(
        self,
        threshold: float = 0.8,
        num_perm: int = 128,
        shingle_words: int = 5,
        seed: int = 1,
        *,
        index_at: float | None = None,
        bands: int | None = None,
        rows: int | None = None,
        hashfunc: HashFunc = xxhash.xxh32_intdigest,
        scheme: str = "affine32",
        processes: int = 1,
        chunk_size: int = 1000,
        max_examples: int = 20,
        spill_dir: str | None = None,
    ):
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.index_at = index_threshold(threshold) if index_at is None else index_at
        if (bands is None) != (rows is None):
            raise ValueError("give both bands and rows, or neither (they are then chosen from the index threshold)")
        bands, rows = (bands, rows) if bands is not None else lsh_params(self.index_at, num_perm)
        self.params = {
            "num_perm": num_perm,
            "seed": seed,
            "shingle_words": shingle_words,
            "hashfunc": hashfunc,
            "scheme": scheme,
            "bands": bands,
            "rows": rows,
        }
        band_keys(np.zeros((0, num_perm), np.uint32), bands, rows)  # validates bands x rows early
        self.processes, self.chunk_size, self.max_examples = processes, chunk_size, max_examples
        self._indexes: dict[str, BandIndex] = {}
        self._spill = _Spill(spill_dir)
        self._sets: OrderedDict[int, set[tuple[bytes, ...]]] = OrderedDict()  # recent shingle sets by kept-row number
        self._cluster: Counter[int] = Counter()  # kept-row number -> rows dropped as its duplicates
        self._examples: list[dict[str, Any]] = []
        self.counts = Counter(read=0, kept=0, dropped=0, pairs_verified=0, rejected_by_verification=0)

    def stream(self, records: Iterable[tuple[str, str, str]]) -> Iterator[Verdict]:
        """One verdict per (id, kind, text) record, in order; reads ahead a chunk per worker in flight."""
        chunks = batched(records, self.chunk_size)
        if self.processes <= 1:
            for chunk in chunks:
                yield from self._decide(chunk, _chunk_task([c[2] for c in chunk], self.params))
            return
        with ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            metas: deque[list] = deque()

            def tasks() -> Iterator[tuple]:
                for chunk in chunks:
                    metas.append([c[:2] for c in chunk])
                    yield [c[2] for c in chunk], self.params

            for work in ordered_map(pool, _chunk_task, tasks(), 2 * self.processes):
                yield from self._decide(metas.popleft(), work)

    def decide_chunk(self, meta: list[tuple[str, str]], work: tuple) -> list[Verdict]:
        """Verdicts for one chunk's (id, kind) rows in order, from its `near_keys`."""
        return self._decide(meta, work)

    def _decide(self, meta: list, work: tuple) -> list[Verdict]:
        buf, offs, lens, keys = work
        n = len(meta)
        verdicts = [Verdict(True)] * n
        kinds = [m[1] for m in meta]
        if len(set(kinds)) == 1:
            groups = [(kinds[0], np.arange(n))]
        else:
            groups = [(k, np.flatnonzero(np.array(kinds) == k)) for k in dict.fromkeys(kinds)]
        for kind, pos in groups:
            texts = [buf[o : o + m] for o, m in zip(offs[pos].tolist(), lens[pos].tolist())]
            dropped = self._decide_kind(kind, [meta[p][0] for p in pos.tolist()], texts, keys[pos])
            for r, verdict in dropped.items():
                verdicts[pos[r]] = verdict
        self.counts["read"] += n
        return verdicts

    def _decide_kind(self, kind: str, ids: list[str], texts: list[bytes], keys: np.ndarray) -> dict[int, Verdict]:
        """Decides one kind's rows of a chunk in order; only rows with an LSH candidate reach Python code."""
        index = self._indexes.setdefault(kind, BandIndex(self.params["bands"]))
        first = len(self._spill)  # kept-row number of this chunk's first kept row
        ext_rows, ext_docs = index.query(keys)
        external: dict[int, list[int]] = {}
        for r, d in zip(ext_rows.tolist(), ext_docs.tolist()):
            external.setdefault(r, []).append(d)
        flat = keys.astype(np.uint64) | (np.arange(keys.shape[1], dtype=np.uint64) << np.uint64(32))
        _, inverse, counts = np.unique(flat.ravel(), return_inverse=True, return_counts=True)
        shared = (counts[inverse] > 1).reshape(keys.shape)  # band keys another row of this chunk also has
        has_shared = shared.any(axis=1)
        internal: dict[tuple[int, int], list[int]] = {}  # shared band key -> this chunk's kept rows having it
        dropped: dict[int, Verdict] = {}
        order: list[int] = []  # dropped rows, ascending, to number the kept ones

        def number(r: int) -> int:
            return first + r - bisect.bisect_left(order, r)

        todo = np.union1d(ext_rows, np.flatnonzero(has_shared))
        for r, shared_r, keys_r in zip(todo.tolist(), shared[todo].tolist(), keys[todo].tolist()):
            band_keys_r = [(b, k) for b, (s, k) in enumerate(zip(shared_r, keys_r)) if s]
            inner = sorted({r2 for key in band_keys_r for r2 in internal.get(key, ())})
            cands = [(d, None) for d in sorted(set(external.get(r, ())))] + [(number(r2), r2) for r2 in inner]
            if cands:
                verdict = self._verify(ids[r], texts[r], number(r), cands, ids, texts)
                if not verdict.kept:
                    dropped[r] = verdict
                    order.append(r)
                    continue
            for key in band_keys_r:
                internal.setdefault(key, []).append(r)
        keep = np.ones(len(ids), dtype=bool)
        keep[order] = False
        kept = np.flatnonzero(keep)
        index.add(keys[kept], np.arange(first, first + len(kept), dtype=np.int32))
        self._spill.append([(ids[r], texts[r]) for r in kept.tolist()])
        self.counts["kept"] += len(kept)
        self.counts["dropped"] += len(order)
        return dropped

    def _shingles(self, number: int, text: bytes) -> set[tuple[bytes, ...]]:
        hit = self._sets.pop(number, None)
        if hit is None:
            hit = shingle_set(text, self.params["shingle_words"])
        self._sets[number] = hit  # most recently used last
        if len(self._sets) > 128:
            self._sets.popitem(last=False)
        return hit

    def _verify(
        self,
        row_id: str,
        text: bytes,
        own: int,
        cands: list[tuple[int, int | None]],
        ids: list[str],
        texts: list[bytes],
    ) -> Verdict:
        """Best exact Jaccard among candidates (kept-row number, row in this chunk or None for an earlier chunk)."""
        mine = self._shingles(own, text)
        best, best_j = cands[0], -1.0
        for cand in cands:  # ascending numbers: the earliest kept row wins a tie
            number, r = cand
            other = self._shingles(number, texts[r] if r is not None else self._spill.get(number)[1])
            j = jaccard(mine, other)
            if j > best_j:
                best, best_j = cand, j
        self.counts["pairs_verified"] += len(cands)
        if best_j < self.threshold:
            self.counts["rejected_by_verification"] += 1
            return Verdict(True)
        self._sets.pop(own, None)  # dropped: its number goes to the next kept row
        survivor = ids[best[1]] if best[1] is not None else self._spill.get(best[0])[0]
        self._cluster[best[0]] += 1
        if len(self._examples) < self.max_examples:
            self._examples.append({"kept": survivor, "dropped": row_id, "jaccard": round(best_j, 4)})
        return Verdict(False, survivor, best_j)

    def report(self, largest: int = 10) -> dict[str, Any]:
        """The cluster report, plain data for an artifact: sizes, the largest clusters, example pairs."""
        sizes = Counter(c + 1 for c in self._cluster.values())
        top = sorted(self._cluster.items(), key=lambda kv: (-kv[1], kv[0]))[:largest]
        index_bytes = sum(ix.nbytes for ix in self._indexes.values())
        return {
            **self.counts,
            "threshold": self.threshold,
            "index_threshold": self.index_at,
            **{k: self.params[k] for k in ("num_perm", "seed", "shingle_words", "bands", "rows", "scheme")},
            "hashfunc": getattr(self.params["hashfunc"], "__name__", repr(self.params["hashfunc"])),
            "clusters": len(self._cluster),
            "cluster_sizes": {str(k): sizes[k] for k in sorted(sizes)},
            "largest_clusters": [{"survivor": self._spill.get(num)[0], "size": c + 1} for num, c in top],
            "examples": list(self._examples),
            "index_bytes": index_bytes,
            "index_bytes_per_kept_row": round(index_bytes / max(self.counts["kept"], 1), 1),
        }

    def close(self) -> None:
        self._spill.close()

    def __enter__(self) -> NearDedup:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def dedup_minhash(
    rows: Iterable[Row],
    ledger: Ledger,
    num_perm: int,
    threshold: float,
    shingle_words: int,
    seed: int = 1,
    *,
    processes: int = 1,
    report: dict[str, Any] | None = None,
    bands: int | None = None,
    rows_per_band: int | None = None,
) -> Iterator[Row]:
    """Drops a row whose verified Jaccard with an earlier kept row of its kind reaches `threshold`.

    Reads ahead one chunk of rows (times the workers in flight). Pass a dict as `report` to receive
    `NearDedup.report()` (cluster sizes, example pairs) once the rows are exhausted.
    """
    near = NearDedup(threshold, num_perm, shingle_words, seed, processes=processes, bands=bands, rows=rows_per_band)
    pending: deque[Row] = deque()

    def records() -> Iterator[tuple[str, str, str]]:
        for row in rows:
            pending.append(row)
            yield row.id, row.kind, row.text()

    try:
        for verdict in near.stream(records()):
            row = pending.popleft()
            if verdict.kept:
                yield row
            else:
                ledger.drop(row, row.id, "near_duplicate", f"{verdict.duplicate_of} jaccard={verdict.jaccard:.3f}")
        if report is not None:
            report.update(near.report())
    finally:
        near.close()
