"""decontaminate drops training rows that copy a 13-word span of an eval item and names the item."""

from __future__ import annotations

from collections import Counter

import pytest

from tasks.data.decontaminate import build_ngram_index, decontaminate, ngram_keys
from tasks.data.records import Ledger, Row

EVAL = [
    (
        "gsm8k/17",
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
    ),
    ("arc/3", "Which gas do plants absorb from the air to make their food through photosynthesis?"),
    ("short/1", "What is 2 + 2?"),
]


def _row(row_id: str, text: str) -> Row:
    return Row(row_id, "sft", {"messages": [{"role": "user", "content": text}]})


def test_row_with_a_13_word_eval_span_is_dropped_and_reported() -> None:
    index = build_ngram_index(EVAL)
    assert index.n == 13 and index.items == 3
    rows = [
        # 13 words of gsm8k/17, with different case and punctuation around them.
        _row("leak", "Homework: SHE SOLD HALF AS MANY CLIPS IN MAY... how many clips did Natalia sell? Help!"),
        _row("near", "she sold half as many clips in May how many clips did"),  # 12 words: no full 13-gram
        _row("clean", "Explain how a rainbow forms after a summer storm, step by step, for a child."),
        _row("short", "what is 2+2"),  # a short eval item matches only as the whole text
        _row("contains-short", "Tell me: what is 2 + 2? And then what is 3 + 3?"),
    ]
    ledger = Ledger()
    ledger.read = len(rows)
    hits: Counter[str] = Counter()
    kept = list(ledger.count_kept(decontaminate(rows, ledger, index, hits=hits)))
    assert [r.id for r in kept] == ["near", "clean", "contains-short"]
    assert ledger.dropped == {"eval_contamination": 2}
    assert hits == Counter({"gsm8k/17": 1, "short/1": 1})
    ledger.check_balance()


def test_drop_detail_names_the_eval_items(tmp_path) -> None:
    import json

    shared = "the quick brown fox jumps over the lazy dog while the farmer watches from the gate"
    index = build_ngram_index([("a/1", shared), ("b/2", "Intro. " + shared)])
    ledger = Ledger(tmp_path / "q.jsonl")
    assert list(decontaminate([_row("x", shared.upper())], ledger, index)) == []
    ledger.close()
    record = json.loads((tmp_path / "q.jsonl").read_text())
    assert record["reason"] == "eval_contamination" and record["detail"] == "a/1,b/2"


def test_ngram_keys_and_mismatched_n() -> None:
    vocab: dict[str, int] = {}
    assert len(ngram_keys("one two three four".split(), 2, vocab, grow=True)) == 3
    assert len(ngram_keys(["one", "two"], 13, vocab)) == 1 and ngram_keys([], 13, vocab) == set()
    # a row's n-grams are only those made of words the eval sets hold: "five" cuts the runs
    assert ngram_keys("one two five three four".split(), 2, vocab) == {(0, 1), (2, 3)}
    with pytest.raises(ValueError, match="pass n=13"):
        list(decontaminate([], Ledger(), build_ngram_index(EVAL), n=8))
