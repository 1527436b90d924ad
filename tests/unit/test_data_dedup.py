"""dedup_exact and dedup_minhash on real datasketch: what is dropped, under which reason, keeping whom."""

from __future__ import annotations

import xxhash
from datasketch import MinHash, MinHashLSH

from tasks.data.dedup import dedup_exact, dedup_minhash, index_threshold, jaccard, word_shingles
from tasks.data.records import Ledger, Row

BASE = (
    "the quick brown fox jumps over the lazy dog while the farmer counts seven red apples "
    "in a wooden basket near the old barn before the evening rain starts falling"
).split()
OTHER = (
    "a model trained on duplicated examples memorises them and scores well on a leaked test set "
    "which is why every curation pipeline removes copies before any training run begins today"
).split()
assert len(BASE) == 30 and len(OTHER) == 30


def _sft(row_id: str, answer: str, question: str = "Tell me a story.") -> Row:
    return Row(
        row_id, "sft", {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
    )


def _edit(words: list[str], i: int, new: str) -> str:
    return " ".join(words[:i] + [new] + words[i + 1 :])


def _run_minhash(rows: list[Row], **kw) -> tuple[list[Row], Ledger]:
    params = {"num_perm": 128, "threshold": 0.8, "shingle_words": 5} | kw
    ledger = Ledger()
    ledger.read = len(rows)
    kept = list(ledger.count_kept(dedup_minhash(rows, ledger, **params)))
    ledger.check_balance()
    return kept, ledger


def _shingle_set(text: str, n: int) -> set[int]:
    return {xxhash.xxh64_intdigest(g) for g in word_shingles(text, n)}


def test_exact_duplicates_ignore_case_and_whitespace() -> None:
    rows = [_sft("a", "Hello World"), _sft("b", "hello   world"), _sft("c", "Hello world!"), _sft("d", "HELLO WORLD")]
    ledger = Ledger()
    kept = list(dedup_exact(rows, ledger))
    assert [r.id for r in kept] == ["a", "c"]
    assert ledger.dropped == {"exact_duplicate": 2}


def test_exact_duplicate_detail_names_first_row(tmp_path) -> None:
    q = tmp_path / "q.jsonl"
    ledger = Ledger(q)
    list(dedup_exact([_sft("first", "x y"), _sft("second", "x y")], ledger))
    ledger.close()
    assert '"id": "second", "reason": "exact_duplicate", "detail": "first"' in q.read_text()


def test_one_word_edit_is_near_duplicate_unrelated_survives() -> None:
    rows = [_sft("orig", " ".join(BASE)), _sft("edited", _edit(BASE, 29, "stop")), _sft("other", " ".join(OTHER))]
    kept, ledger = _run_minhash(rows)
    assert [r.id for r in kept] == ["orig", "other"]
    assert ledger.dropped == {"near_duplicate": 1}


def test_mid_text_edit_with_short_shingles_and_detail(tmp_path) -> None:
    q = tmp_path / "q.jsonl"
    ledger = Ledger(q)
    rows = [_sft("orig", " ".join(BASE)), _sft("edited", _edit(BASE, 15, "green"))]
    ledger.read = 2
    kept = list(ledger.count_kept(dedup_minhash(rows, ledger, num_perm=128, threshold=0.8, shingle_words=2)))
    ledger.close()
    ledger.check_balance()
    assert [r.id for r in kept] == ["orig"]
    expected = jaccard(_shingle_set(rows[0].text(), 2), _shingle_set(rows[1].text(), 2))
    assert expected >= 0.8
    assert f'"reason": "near_duplicate", "detail": "orig jaccard={expected:.3f}"' in q.read_text()


def test_candidate_below_threshold_is_verified_and_kept() -> None:
    # A mid-text edit with 5-word shingles: true Jaccard about 0.68, inside the loose LSH band.
    a, b = _sft("a", " ".join(BASE)), _sft("b", _edit(BASE, 15, "green"))
    j = jaccard(_shingle_set(a.text(), 5), _shingle_set(b.text(), 5))
    threshold = 0.72
    assert index_threshold(threshold) < j < threshold
    # Precondition: the LSH index really proposes the pair, so keeping it is the verification's doing.
    lsh = MinHashLSH(threshold=index_threshold(threshold), num_perm=128)
    sigs = []
    for row in (a, b):
        mh = MinHash(num_perm=128, seed=1, hashfunc=xxhash.xxh32_intdigest)
        mh.update_batch(word_shingles(row.text(), 5))
        sigs.append(mh)
    lsh.insert("a", sigs[0])
    assert lsh.query(sigs[1]) == ["a"]

    kept, ledger = _run_minhash([a, b], threshold=threshold)
    assert [r.id for r in kept] == ["a", "b"]
    assert not ledger.dropped
    kept, ledger = _run_minhash([a, b], threshold=j - 0.01)  # the same pair, a threshold it passes
    assert [r.id for r in kept] == ["a"] and ledger.dropped == {"near_duplicate": 1}


def test_first_seen_survives_and_kinds_are_not_compared() -> None:
    text = BASE[:10], BASE[10:20], BASE[20:]
    sft = Row(
        "s",
        "sft",
        {
            "messages": [
                {"role": "user", "content": " ".join(text[0])},
                {"role": "user", "content": " ".join(text[1])},
                {"role": "assistant", "content": " ".join(text[2])},
            ]
        },
    )
    pref = Row("p", "pref", dict(zip(("prompt", "chosen", "rejected"), (" ".join(t) for t in text))))
    assert sft.text() == pref.text()
    kept, ledger = _run_minhash([sft, pref, _sft("s2", " ".join(BASE))], shingle_words=3)
    assert [r.id for r in kept] == ["s", "p"]
    assert ledger.dropped == {"near_duplicate": 1}
    ledger2 = Ledger()
    assert [r.id for r in dedup_exact([sft, pref], ledger2)] == ["s", "p"]


def test_short_texts_use_one_shingle() -> None:
    assert word_shingles("Two Words", 5) == [b"two words"]
    kept, ledger = _run_minhash([_sft("a", "yes", "ok"), _sft("b", "yes", "ok"), _sft("c", "no", "ok")])
    assert [r.id for r in kept] == ["a", "c"] and ledger.dropped == {"near_duplicate": 1}
