"""Vectorised MinHash against real datasketch, and NearDedup's verdicts, survivors and cluster report."""

from __future__ import annotations

import random

import numpy as np
import pytest
import xxhash
from datasketch import MinHash, MinHashLSH
from datasketch.hashfunc import sha1_hash32

from tasks.data.dedup import NearDedup, dedup_minhash, jaccard, shingle_set, word_shingles
from tasks.data.minhash import (
    BandIndex,
    band_keys,
    lsh_params,
    minhash_signatures,
    normalize,
    pack,
    parallel_signatures,
    to_datasketch,
    xxh32_spans,
)
from tasks.data.records import Ledger, Row

_rng = random.Random(7)
VOCAB = [f"w{i}" for i in range(400)] + ["naïve", "ÉCOLE", "straße", "x\x1cy", "A", "b"]
DOCS = [
    "",
    " \t\n ",
    "one",
    "Two  Words",
    "tabs\tand\nnew lines\r\nand  double  spaces ",
    "non-breaking\u00a0space and\u2003em space in Ünïcödé TEXT",
    *(" ".join(_rng.choice(VOCAB) for _ in range(n)) for n in (4, 5, 6, 40, 300)),
]


def _datasketch(text: str, num_perm: int, seed: int, n: int, hashfunc=xxhash.xxh32_intdigest, scheme="affine32"):
    m = MinHash(num_perm=num_perm, seed=seed, hashfunc=hashfunc, scheme=scheme)
    m.update_batch(word_shingles(text, n))
    return m


def _edit(words: list[str], positions: list[int]) -> str:
    return " ".join("EDITED" if i in positions else w for i, w in enumerate(words))


def test_xxh32_spans_equal_xxhash_for_every_length() -> None:
    rng = random.Random(0)
    buf = bytes(rng.randrange(256) for _ in range(3000))
    starts = np.array([rng.randrange(0, 2800) for _ in range(500)])
    lengths = np.array(list(range(100)) + [rng.randrange(0, 200) for _ in range(400)])
    expected = [xxhash.xxh32_intdigest(buf[s : s + n]) for s, n in zip(starts, lengths)]
    assert xxh32_spans(buf, starts, lengths).tolist() == expected


def test_pack_equals_per_text_normalisation() -> None:
    packed = pack(DOCS)
    assert packed.buf == b"\n".join(normalize(t) for t in DOCS)
    assert [packed.text(i) for i in range(len(DOCS))] == [normalize(t) for t in DOCS]
    words = [packed.buf[s:e] for s, e in zip(packed.word_start, packed.word_end)]
    assert words == [w for t in DOCS for w in normalize(t).split()]
    assert normalize("x\x1cy") == b"x y"  # str.split() treats \x1c as whitespace; so must the numpy path


@pytest.mark.parametrize("num_perm", [64, 128])
@pytest.mark.parametrize("seed", [1, 42])
@pytest.mark.parametrize("n", [1, 3, 5])
def test_signatures_equal_datasketch(num_perm: int, seed: int, n: int) -> None:
    sigs = minhash_signatures(DOCS, num_perm, seed, n)
    assert sigs.dtype == np.uint32 and sigs.shape == (len(DOCS), num_perm)
    for text, sig in zip(DOCS, sigs):
        np.testing.assert_array_equal(sig, _datasketch(text, num_perm, seed, n).hashvalues)


@pytest.mark.parametrize("hashfunc,scheme", [(sha1_hash32, "affine32"), (xxhash.xxh64_intdigest, "affine64")])
def test_other_hash_functions_and_affine64_equal_datasketch(hashfunc, scheme) -> None:
    sigs = minhash_signatures(DOCS, 64, 3, 5, hashfunc=hashfunc, scheme=scheme)
    for text, sig in zip(DOCS, sigs):
        np.testing.assert_array_equal(sig, _datasketch(text, 64, 3, 5, hashfunc, scheme).hashvalues)


def test_unsupported_scheme_and_bad_lsh_settings_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="legacy"):
        minhash_signatures(["a b"], scheme="legacy")
    with pytest.raises(ValueError, match="both bands and rows"):
        NearDedup(bands=8)
    with pytest.raises(ValueError, match="exceeds num_perm"):
        NearDedup(num_perm=64, bands=10, rows=10)


def test_wrapped_signatures_serve_datasketch_lsh_both_ways() -> None:
    words = DOCS[-1].split()
    texts = [" ".join(words), _edit(words, [150]), " ".join(reversed(words))]
    sigs = minhash_signatures(texts, 128, 1, 5)
    wrapped = [to_datasketch(s, seed=1) for s in sigs]
    theirs = [_datasketch(t, 128, 1, 5) for t in texts]
    assert wrapped[0] == theirs[0] and wrapped[0].jaccard(theirs[1]) == theirs[0].jaccard(theirs[1])
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    lsh.insert("orig", wrapped[0])
    lsh.insert("reversed", theirs[2])
    assert lsh.query(theirs[1]) == ["orig"]  # datasketch's own sketch finds the wrapped one
    assert lsh.query(wrapped[2]) == ["reversed"]  # and a wrapped sketch finds datasketch's
    theirs_loose = MinHashLSH(threshold=0.65, num_perm=128)
    assert lsh_params(0.65, 128) == (theirs_loose.b, theirs_loose.r)


def test_band_index_finds_every_document_sharing_a_band_across_merged_runs() -> None:
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**32, size=(50, 4), dtype=np.uint32)
    keys[30, 2] = keys[3, 2]  # doc 30 shares band 2 with doc 3
    keys[40] = keys[3]  # doc 40 shares every band with doc 3
    index = BandIndex(4)
    for lo in range(0, 50, 7):  # several adds, so runs merge
        index.add(keys[lo : lo + 7], np.arange(lo, min(lo + 7, 50)))
    assert len(index) == 50 and len(index.runs) < 8 and index.nbytes == 50 * 4 * 8
    rows, docs = index.query(keys[[3, 10]])
    assert list(zip(rows.tolist(), docs.tolist())) == [(0, 3), (0, 30), (0, 40), (1, 10)]
    assert band_keys(np.zeros((2, 8), np.uint32), 2, 4).shape == (2, 2)


def test_parallel_signatures_equal_serial() -> None:
    texts = DOCS * 3
    serial = minhash_signatures(texts, 64, 1, 5)
    parallel = np.concatenate(list(parallel_signatures(texts, processes=2, shard_size=4, num_perm=64)))
    np.testing.assert_array_equal(parallel, serial)


def _cluster_corpus() -> list[tuple[str, str, str]]:
    rng = random.Random(3)
    base = [rng.choice(VOCAB[:400]) for _ in range(120)]
    other = [rng.choice(VOCAB[:400]) for _ in range(120)]
    return [
        ("a", "doc", " ".join(base)),
        ("x", "doc", " ".join(other)),
        ("a1", "doc", _edit(base, [100])),  # J about 0.92: drop, as a copy of a
        ("a2", "doc", _edit(base, [10])),  # the same again, from another chunk when chunks are small
        ("half", "doc", _edit(base, list(range(0, 120, 12)))),  # ten edits: J far below 0.8, kept
        ("x1", "pref", " ".join(other)),  # another kind: never compared with x
    ]


@pytest.mark.parametrize("chunk_size", [1, 2, 1000])
def test_near_dedup_keeps_first_of_cluster_and_reports_it(chunk_size: int) -> None:
    near = NearDedup(threshold=0.8, chunk_size=chunk_size, max_examples=1)
    verdicts = dict(zip([r[0] for r in _cluster_corpus()], near.stream(_cluster_corpus())))
    assert {k for k, v in verdicts.items() if v.kept} == {"a", "x", "half", "x1"}
    texts = {r[0]: shingle_set(normalize(r[2]), 5) for r in _cluster_corpus()}
    for dup in ("a1", "a2"):
        assert verdicts[dup].duplicate_of == "a"
        assert verdicts[dup].jaccard == pytest.approx(jaccard(texts[dup], texts["a"])) and verdicts[dup].jaccard >= 0.8
    report = near.report()
    near.close()
    assert report["read"] == 6 and report["kept"] == 4 and report["dropped"] == 2
    assert report["clusters"] == 1 and report["cluster_sizes"] == {"3": 1}
    assert report["largest_clusters"] == [{"survivor": "a", "size": 3}]
    assert report["examples"] == [{"kept": "a", "dropped": "a1", "jaccard": round(verdicts["a1"].jaccard, 4)}]
    assert (report["bands"], report["rows"]) == lsh_params(0.65, 128)
    assert report["index_bytes_per_kept_row"] == report["bands"] * 8


def test_below_threshold_candidate_is_verified_and_kept() -> None:
    rows = _cluster_corpus()
    j = jaccard(shingle_set(normalize(rows[0][2]), 5), shingle_set(normalize(rows[4][2]), 5))
    near = NearDedup(threshold=0.5, index_at=0.2, chunk_size=3)  # the loose index proposes the pair
    verdicts = list(near.stream([rows[0], rows[4]]))
    assert j < 0.5 and [v.kept for v in verdicts] == [True, True]
    assert near.report()["rejected_by_verification"] == 1
    near.close()


def test_parallel_near_dedup_gives_the_same_verdicts() -> None:
    rows = _cluster_corpus() * 2
    rows = [(f"{i}-{r[0]}", r[1], r[2]) for i, r in enumerate(rows)]
    serial, parallel = NearDedup(chunk_size=2), NearDedup(chunk_size=2, processes=2)
    assert list(parallel.stream(rows)) == list(serial.stream(rows))
    assert parallel.report() == serial.report()
    serial.close(), parallel.close()


def test_dedup_minhash_fills_the_cluster_report() -> None:
    rows = [
        Row(i, "sft", {"messages": [{"role": "user", "content": t}]})
        if kind == "doc"
        else Row(i, "pref", {"prompt": t, "chosen": "", "rejected": ""})
        for i, kind, t in _cluster_corpus()
    ]
    ledger, report = Ledger(), {}
    ledger.read = len(rows)
    kept = list(ledger.count_kept(dedup_minhash(rows, ledger, 128, 0.8, 5, report=report)))
    ledger.check_balance()
    assert [r.id for r in kept] == ["a", "x", "half", "x1"]
    assert ledger.dropped == {"near_duplicate": 2}
    assert report["clusters"] == 1 and report["largest_clusters"][0] == {"survivor": "a", "size": 3}
