"""The repetition rules' word statistics read from code points are those of the word list.

`word_stats` stands in for `_stripped(lower.split())` (lengths, and hashes equal exactly for equal
words) in the bounds that decide most rows, so these tests hold it to the word list on the shared
data and on adversarial text: every character `str.split` takes for whitespace (ASCII separators
\\x1c-\\x1f, Unicode spaces), every punctuation character a word is stripped of, punctuation inside
words and alone, combining marks, lone surrogates, characters whose lower case is longer, and
texts past the tables' length; and the decisions against the earlier code on degenerate text.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from configs.quality import CurateQualityConfig, QualityConfig
from tasks.data.quality import TextView
from tasks.data.repetition import _MAX_CHARS, PUNCT, repetition_reason, word_stats
from tests.unit import curation_before as before

SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace()]
ALPHABET = (
    list("abcXYZ019_")
    + list(PUNCT)
    + SPACES
    + ["\u0301", "\u200b", "\ud800", "\u0130", "\u00df", "\ufb03", "\u212a", "é", "ж", "漢", "\x00", "\x7f"]
)


def _fuzz(n: int, seed: int, alphabet: list[str] = ALPHABET) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        weights = [rng.random() for _ in alphabet]
        texts.append("".join(rng.choices(alphabet, weights, k=rng.randint(0, 400))))
    return texts


def _assert_same_words(text: str) -> None:
    view = TextView(text)
    words = view.lower_words
    stats = word_stats(view.lower)
    assert stats is not None
    lengths, hashes = stats
    assert lengths.tolist() == list(map(len, words))
    first: dict[str, int] = {}
    for word, h in zip(words, hashes.tolist()):
        assert first.setdefault(word, h) == h, f"{word!r} hashed two ways"
    assert len(set(first.values())) == len(first), "two different words collided"


def test_word_stats_match_the_word_list_on_adversarial_text():
    texts = _fuzz(600, seed=7) + _fuzz(600, seed=8, alphabet=[chr(c) for c in range(128)])  # utf-32 and ASCII
    texts += [
        "",
        "   ",
        "...",
        "«word»",
        "a\x1cb\x1dc\x1ed\x1ff",
        "don't stop—now… 'quoted' “curly” end.",
        "İstanbul İSTANBUL istanbul",  # 'İ'.lower() is two code points
        "x\u00a0y\u2003z\u3000w\u0085v\u2028u",
        "--a--b-- a--b a-b ab",
        "Zürich zürich ZÜRICH",
    ]
    hit_space = hit_punct = ascii = 0
    for text in texts:
        _assert_same_words(text)
        hit_space += any(s in text for s in SPACES if s not in " \n")
        hit_punct += any(p in text for p in PUNCT)
        ascii += text.isascii()
    assert hit_space > 1000 and hit_punct > 1000 and ascii > 600  # the cases reach what they aim at


def test_word_stats_match_the_word_list_on_the_shared_data(shared_data):
    import gzip
    import json

    texts = []
    for name in ("gsm8k_train_sample.jsonl", "hh_harmless_sample.jsonl.gz"):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(shared_data / name, "rt", encoding="utf-8") as f:
            texts += [json.dumps(json.loads(line)) for line in f]
    assert len(texts) > 1000
    for text in texts:
        _assert_same_words(text)


def test_texts_past_the_tables_take_the_word_list_and_decide_as_before():
    phrase = "the farmer counts the apples in the basket near the barn "
    long = phrase * (_MAX_CHARS // len(phrase) + 5)
    assert word_stats(long.lower()) is None
    mixed = " ".join(f"w{i}" for i in range(_MAX_CHARS // 4)) + " " + phrase * 40
    for text in (long, mixed):
        for cfg in (CurateQualityConfig(), QualityConfig()):
            assert repetition_reason(TextView(text), cfg) == before.repetition_reason(text, cfg)
    assert repetition_reason(TextView(long), QualityConfig()) == "rep_top_ngram"


@pytest.mark.parametrize("seed", range(3))
def test_repetition_decides_as_before_on_fuzzed_words(seed):
    """Degenerate word salads with punctuation and whitespace of every kind between the words, under
    the Gopher limits and under tight ones, so the bounds reach their limits and the exact path runs."""
    rng = random.Random(seed)
    vocab = ["apple", "Apple", "APPLE.", "(apple)", "barn", "barn,", "«barn»", "é", "İ", "ß", "x—y", "—", "..."]
    tight = QualityConfig(
        rep_min_words=5, max_top_ngram_share={2: 0.1, 3: 0.08, 4: 0.06}, max_dup_ngram_share={5: 0.1, 7: 0.08}
    )
    reasons = set()
    for _ in range(300):
        words = [rng.choice(vocab[: rng.randint(2, len(vocab))]) for _ in range(rng.randint(3, 120))]
        text = "".join(w + rng.choice([" ", "  ", "\t", "\x1c", "\u00a0", "\u3000", " - "]) for w in words)
        for cfg in (QualityConfig(), tight):
            reason = repetition_reason(TextView(text), cfg)
            assert reason == before.repetition_reason(text, cfg), text
            reasons.add(reason)
    assert {"rep_top_ngram", None} <= reasons


def test_hashes_do_not_depend_on_where_a_word_stands():
    lengths, hashes = word_stats("apple " * 3 + "x" * 1000 + " apple")
    assert lengths.tolist() == [5, 5, 5, 1000, 5]
    assert len(set(hashes[[0, 1, 2, 4]].tolist())) == 1 and hashes.dtype == np.uint64
