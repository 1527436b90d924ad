"""MinHash signatures for whole batches of documents, bit-identical to datasketch's, and a compact LSH index.

datasketch builds one `MinHash` per document and hashes each shingle in Python: about 4 k docs/s
per core on 2 KB documents (6 k with `MinHash.bulk`), most of it spent joining n-grams and calling
the hash function one shingle at a time. Here a batch of documents becomes one byte buffer;
shingles are (start, length) spans into it, hashed by a numpy xxh32 over all spans at once, then
permuted as datasketch 2.0's `affine32` scheme does (MurmurHash3 fmix32 pre-mix,
`a * h + b mod 2^32`, min per document): about 22 k docs/s per core (`bench/dedup.py`). The result
equals `MinHash(num_perm, seed, hashfunc=xxhash.xxh32_intdigest).update_batch(shingles)` value for
value, so a signature wrapped by `to_datasketch` serves datasketch's `MinHashLSH` (and its Redis
storage, which holds the same hash values). Another `hashfunc` (datasketch's default
`sha1_hash32`, say) works too, on a per-shingle Python path that is only about 1.7x datasketch;
compatibility holds whenever datasketch is given the same hashfunc and scheme.

A shingle is a run of `shingle_words` lower-cased words joined by one space, exactly as
`tasks.data.dedup.word_shingles` builds it; a text with fewer words is one shingle.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import multiprocessing
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import xxhash

HashFunc = Callable[[bytes], int]
SCHEMES = ("affine32", "affine64")
_GRAMS_PER_BLOCK = 8192  # shingles per permutation block: num_perm x 8192 values, a few MB
_SPANS_PER_BLOCK = 65536  # shingles hashed per numpy pass
_PAD = b"\0" * 32  # lets the reads of a span's unused steps stay inside the buffer

# xxh32 primes (the public XXH32 specification)
_P1, _P2, _P3, _P4, _P5 = (np.uint32(p) for p in (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1))
_ACC_INIT = [np.uint32(v) for v in ((0x9E3779B1 + 0x85EBCA77) & 0xFFFFFFFF, 0x85EBCA77, 0, -0x9E3779B1 & 0xFFFFFFFF)]
_FMIX = {  # MurmurHash3 finalizers, the pre-mix datasketch's affine schemes apply once per input hash
    np.uint32: (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16),
    np.uint64: (33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33),
}


def normalize(text: str) -> bytes:
    """Lower-cased words joined by single spaces, UTF-8: every shingle is a contiguous span of this."""
    return " ".join(text.lower().split()).encode("utf-8")


@functools.lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int, scheme: str = "affine32") -> np.ndarray:
    """The [2, num_perm] (a, b) datasketch draws for this seed, taken from datasketch itself so they cannot drift."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme {scheme!r} is not supported; use one of {SCHEMES} ('legacy' is datasketch < 2.0)")
    from datasketch import MinHash

    perms = np.array(MinHash(num_perm=num_perm, seed=seed, scheme=scheme).permutations)
    perms.flags.writeable = False
    return perms


def to_datasketch(signature: np.ndarray, seed: int = 1, scheme: str = "affine32", hashfunc: HashFunc | None = None):
    """Wraps one signature row as a `datasketch.MinHash` (sharing cached permutations, so wrapping is cheap)."""
    from datasketch import MinHash

    perms = permutations(len(signature), seed, scheme)
    return MinHash(
        seed=seed, hashvalues=signature, permutations=perms, scheme=scheme, hashfunc=hashfunc or xxhash.xxh32_intdigest
    )


class Packed(NamedTuple):
    """A batch of normalised texts in one buffer (newline-separated) with its word boundaries."""

    buf: bytes
    offs: np.ndarray  # start of each text in `buf`
    lens: np.ndarray  # byte length of each normalised text
    word_start: np.ndarray  # every word of the batch, in order
    word_end: np.ndarray
    word_doc: np.ndarray  # the text each word belongs to

    def text(self, i: int) -> bytes:
        return self.buf[self.offs[i] : self.offs[i] + self.lens[i]]


def pack(texts: Sequence[str]) -> Packed:
    """`normalize` for a whole batch, vectorised: equal to `b"\\n".join(normalize(t) for t in texts)`.

    An ASCII text is only lower-cased and encoded here; runs of whitespace are collapsed and trimmed
    with numpy over the joined bytes. Other texts go through `normalize` first (Unicode whitespace
    is more than ASCII bytes can tell); the numpy pass leaves them unchanged.
    """
    parts = [t.lower().encode() if t.isascii() else normalize(t) for t in texts]
    seps = np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))[:-1] + 1) - 1
    raw = b"\n".join(parts)
    u8 = np.frombuffer(raw, dtype=np.uint8)
    word = (u8 > 32) | ((u8 < 28) & ((u8 < 9) | (u8 > 13)))  # not one of str.split()'s ASCII whitespace
    edges = np.diff(word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    words = np.diff(np.searchsorted(starts, seps), prepend=0, append=len(starts))  # words per text
    doc = np.repeat(np.arange(len(parts)), words)
    gap = np.zeros(len(doc), dtype=np.int64)  # 1 after a word that another word of its text follows
    gap[:-1] = doc[:-1] == doc[1:]
    joins = ends[gap == 1]
    size = ends - starts
    if len(joins) + len(seps) == len(u8) - int(np.count_nonzero(word)) and not (u8[joins] != 32).any():
        buf, new_start = raw, starts  # already single-spaced and trimmed (validated text usually is)
    else:
        keep = word.copy()
        keep[joins] = True
        keep[seps] = True
        out = u8.copy()
        out[joins] = 32
        buf = out[keep].tobytes()
        # new positions from word-level sums (a cumsum over every byte would cost more than all the rest)
        new_start = np.cumsum(size + gap) - size - gap + doc  # earlier words, their gaps, a newline per earlier text
    new_end = new_start + size
    first = np.cumsum(words) - words
    has = np.flatnonzero(words)
    lens = np.zeros(len(parts), dtype=np.int64)
    lens[has] = new_end[first[has] + words[has] - 1] - new_start[first[has]]
    offs = np.zeros(len(parts), dtype=np.int64)
    np.cumsum(lens[:-1] + 1, out=offs[1:])
    return Packed(buf, offs, lens, new_start, new_end, doc)


def shingle_spans(packed: Packed, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, length) of every n-word shingle of a packed batch, texts in order, plus shingles per text.

    Duplicate shingles are kept: MinHash takes a minimum, so a repeat changes nothing.
    """
    word_start, word_end, doc = packed.word_start, packed.word_end, packed.word_doc
    words_per_doc = np.bincount(doc, minlength=len(packed.offs))
    first = np.arange(max(len(doc) - n + 1, 0))
    first = first[doc[first] == doc[first + n - 1]]
    starts, ends, docs = word_start[first], word_end[first + n - 1], doc[first]
    short = np.flatnonzero(words_per_doc < n)  # one shingle: the whole (possibly empty) text
    if short.size:
        docs = np.concatenate((docs, short))
        order = np.argsort(docs, kind="stable")
        starts = np.concatenate((starts, packed.offs[short]))[order]
        ends = np.concatenate((ends, packed.offs[short] + packed.lens[short]))[order]
        docs = docs[order]
    return starts, ends - starts, np.bincount(docs, minlength=len(packed.offs))


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    """Rotates left in place."""
    high = x >> np.uint32(32 - r)
    x <<= np.uint32(r)
    x |= high
    return x


def _round(acc: np.ndarray | np.uint32, word: np.ndarray, mul: np.uint32, rot: int, mul2: np.uint32) -> np.ndarray:
    """rotl(acc + word * mul, rot) * mul2 in uint32, in place in `word` (a fresh gather)."""
    word *= mul
    word += acc
    _rotl(word, rot)
    word *= mul2
    return word


def xxh32_spans(buf: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """`xxhash.xxh32_intdigest(buf[s:s+l])` (seed 0) for every span at once, following the XXH32 spec.

    Every span runs the same steps on whole arrays; a step that a span's length skips is computed
    anyway and discarded with a mask, which is cheaper than gathering and scattering subsets.
    """
    data = buf + _PAD
    word = np.empty(len(buf) + 16, dtype=np.uint32)  # word[i]: the little-endian uint32 starting at byte i
    for j in range(4):
        view = np.frombuffer(data, dtype="<u4", offset=j, count=(len(data) - j) // 4)
        word[j::4] = view[: len(word[j::4])]

    def at(offset: int, index: np.ndarray) -> np.ndarray:
        return np.take(word[offset:], index)

    out = np.empty(len(starts), dtype=np.uint32)
    for i in range(0, len(starts), _SPANS_PER_BLOCK):  # blocks that stay in cache
        s, n = starts[i : i + _SPANS_PER_BLOCK], lengths[i : i + _SPANS_PER_BLOCK]
        stripes = n >> 4
        acc = [_round(v, at(4 * k, s), _P2, 13, _P1) for k, v in enumerate(_ACC_INIT)]
        for t in range(1, int(stripes.max(initial=0))):  # 16-byte stripes past the first: few spans
            live = np.flatnonzero(stripes > t)
            p = s[live] + 16 * t
            for k, v in enumerate(acc):
                v[live] = _round(v[live], at(4 * k, p), _P2, 13, _P1)
        h = _rotl(acc[0], 1)
        h += _rotl(acc[1], 7)
        h += _rotl(acc[2], 12)
        h += _rotl(acc[3], 18)
        h[stripes == 0] = _P5
        h += n.astype(np.uint32)
        p = s + (n & ~15)
        rest = (n & 15).astype(np.uint8)
        for t in range(3):  # remaining 4-byte words
            np.copyto(h, _round(h, at(4 * t, p), _P3, 17, _P4), where=(rest >> 2) > t)
        p += n & 12
        for t in range(3):  # remaining bytes
            byte = at(t, p)
            byte &= np.uint32(0xFF)
            np.copyto(h, _round(h, byte, _P5, 11, _P1), where=(rest & 3) > t)
        h ^= h >> np.uint32(15)
        h *= _P2
        h ^= h >> np.uint32(13)
        h *= _P3
        h ^= h >> np.uint32(16)
        out[i : i + _SPANS_PER_BLOCK] = h
    return out


def _fmix(h: np.ndarray) -> np.ndarray:
    t = h.dtype.type
    s1, m1, s2, m2, s3 = (t(c) for c in _FMIX[t])
    h = h ^ (h >> s1)
    h *= m1
    h ^= h >> s2
    h *= m2
    return h ^ (h >> s3)


def _hash_spans(buf: bytes, starts: np.ndarray, lengths: np.ndarray, hashfunc: HashFunc, dtype) -> np.ndarray:
    if hashfunc is xxhash.xxh32_intdigest and dtype is np.uint32:
        return xxh32_spans(buf, starts, lengths)
    grams = [buf[s : s + n] for s, n in zip(starts.tolist(), lengths.tolist())]
    try:
        return np.fromiter(map(hashfunc, grams), dtype=dtype, count=len(grams))
    except OverflowError as err:
        raise ValueError(
            f"hashfunc returned a value wider than {dtype.__name__}: use a hash of the scheme's width"
        ) from err


def packed_signatures(
    packed: Packed,
    num_perm: int = 128,
    seed: int = 1,
    shingle_words: int = 5,
    hashfunc: HashFunc = xxhash.xxh32_intdigest,
    scheme: str = "affine32",
) -> np.ndarray:
    """Signatures [texts, num_perm] of a packed batch (see `pack`)."""
    a, b = permutations(num_perm, seed, scheme)
    dtype = a.dtype.type
    if not len(packed.offs):
        return np.empty((0, num_perm), dtype=dtype)
    starts, lengths, per_doc = shingle_spans(packed, shingle_words)
    hv = _fmix(_hash_spans(packed.buf, starts, lengths, hashfunc, dtype))
    first = np.zeros(len(per_doc) + 1, dtype=np.int64)
    np.cumsum(per_doc, out=first[1:])
    out = np.empty((num_perm, len(per_doc)), dtype=dtype)
    cuts = np.unique(np.searchsorted(first, np.arange(0, first[-1], _GRAMS_PER_BLOCK), side="right") - 1)
    cuts = np.append(cuts, len(per_doc))
    work = np.empty((num_perm, int(np.diff(first[cuts]).max())), dtype=dtype)  # reused: no page faults per block
    a, b = a[:, None], b[:, None]
    for i, j in zip(cuts[:-1].tolist(), cuts[1:].tolist()):  # whole documents per block, permutations x shingles
        lo, hi = first[i], first[j]
        block = work[:, : hi - lo]
        np.multiply(a, hv[None, lo:hi], out=block)
        block += b
        out[:, i:j] = np.minimum.reduceat(block, first[i:j] - lo, axis=1)
    return np.ascontiguousarray(out.T)


def minhash_signatures(
    texts: Sequence[str],
    num_perm: int = 128,
    seed: int = 1,
    shingle_words: int = 5,
    hashfunc: HashFunc = xxhash.xxh32_intdigest,
    scheme: str = "affine32",
) -> np.ndarray:
    """Signatures [len(texts), num_perm], equal to datasketch's for the same shingles, seed, hashfunc and scheme."""
    return packed_signatures(pack(texts), num_perm, seed, shingle_words, hashfunc, scheme)


def _signature_shard(texts: Sequence[str], params: dict) -> np.ndarray:
    return minhash_signatures(texts, **params)


def parallel_signatures(
    texts: Iterable[str], processes: int = 2, shard_size: int = 2000, executor: Executor | None = None, **params
) -> Iterator[np.ndarray]:
    """Signatures of consecutive shards of `texts`, computed in worker processes, yielded in input order.

    Lazy on both sides: at most two shards per worker are in flight, so memory holds those and the
    caller's current shard, not the corpus. `executor` reuses a pool the caller owns (and warmed up);
    otherwise one of `processes` spawned workers lives for this call, or none when `processes` is 1.
    """
    shards = batched(texts, shard_size)
    if executor is None and processes <= 1:
        yield from (_signature_shard(s, params) for s in shards)
        return
    with contextlib.ExitStack() as stack:
        if executor is None:
            spawn = multiprocessing.get_context("spawn")
            executor = stack.enter_context(ProcessPoolExecutor(processes, mp_context=spawn))
        yield from ordered_map(executor, _signature_shard, ((s, params) for s in shards), 2 * max(processes, 1))


def ordered_map(executor: Executor, fn: Callable, arg_tuples: Iterable[tuple], ahead: int) -> Iterator:
    """`fn(*args)` for each args on `executor`, in input order, with at most `ahead` submitted and not yielded."""
    flight: deque[Future] = deque()
    for args in arg_tuples:
        flight.append(executor.submit(fn, *args))
        if len(flight) >= ahead:
            yield flight.popleft().result()
    while flight:
        yield flight.popleft().result()


def batched(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


@functools.lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) that datasketch's `MinHashLSH(threshold, num_perm)` picks: same bands, same candidates."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 0.5, 0.5)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """A 32-bit key per band [docs, bands]: equal bands, equal keys; rare unequal ones collide (verification
    catches them, and per-band tables keep that rare: about one false candidate per 4 billion / kept rows)."""
    if bands * rows > signatures.shape[1]:
        raise ValueError(f"bands x rows = {bands * rows} exceeds num_perm = {signatures.shape[1]}")
    x = signatures[:, : bands * rows].reshape(len(signatures), bands, rows).astype(np.uint64)
    h = np.full(x.shape[:2], 0x9E3779B97F4A7C15, dtype=np.uint64)
    for j in range(rows):
        h ^= x[:, :, j]
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
    return _fmix(h).astype(np.uint32)


class BandIndex:
    """Band keys of indexed documents: per band, sorted uint32 keys and their int32 document numbers.

    Eight bytes per band per document, in a few sorted runs merged as they grow (a log-structured
    merge), so lookups are vectorised `searchsorted` calls and there is no per-entry Python object.
    Each band of a run is an array of its own, and two runs merge one band at a time, each band's
    old arrays let go as soon as its merged one exists: a merge needs about a band's worth of
    memory beyond the index, where merging whole runs at once needed twice the index (at 10 M
    documents and 16 bands, 2.6 GB more).
    """

    def __init__(self, bands: int):
        self.bands = bands
        self.runs: list[tuple[list[np.ndarray], list[np.ndarray]]] = []  # per band: (sorted keys, docs)

    def __len__(self) -> int:
        return sum(len(k[0]) for k, _ in self.runs)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for k, d in self.runs for a in (*k, *d))

    def add(self, keys: np.ndarray, docs: np.ndarray) -> None:
        if not len(keys):
            return
        docs = docs.astype(np.int32)
        run: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        for band in range(keys.shape[1]):
            order = np.argsort(keys[:, band], kind="stable")
            run[0].append(np.ascontiguousarray(keys[order, band], dtype=np.uint32))
            run[1].append(docs[order])
        self.runs.append(run)
        while len(self.runs) > 1 and len(self.runs[-2][0][0]) <= 2 * len(self.runs[-1][0][0]):
            (k2, d2), (k1, d1) = self.runs.pop(), self.runs.pop()
            merged: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
            for band in range(self.bands):
                k, d = np.concatenate((k1[band], k2[band])), np.concatenate((d1[band], d2[band]))
                k1[band] = k2[band] = d1[band] = d2[band] = None  # type: ignore[call-overload]
                order = np.argsort(k, kind="stable")  # stable: earlier documents first
                merged[0].append(k[order])
                merged[1].append(d[order])
                del k, d, order
            self.runs.append(merged)

    def query(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (query row, document) pairs sharing at least one band key, sorted by row then document."""
        found = []
        for run_keys, run_docs in self.runs:
            for band in range(self.bands):
                q = keys[:, band]
                lo = np.searchsorted(run_keys[band], q, "left")
                count = np.searchsorted(run_keys[band], q, "right") - lo
                hit = np.flatnonzero(count)
                if not hit.size:
                    continue
                count = count[hit]
                rows = np.repeat(hit, count)
                pos = np.repeat(lo[hit] - np.cumsum(count) + count, count) + np.arange(rows.size)
                found.append((rows.astype(np.int64) << 32) | run_docs[band][pos].astype(np.int64))
        if not found:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        pairs = np.unique(np.concatenate(found))
        return pairs >> 32, pairs & 0xFFFFFFFF
