"""Language ID with py3langid, whose model ships inside the wheel: nothing is fetched at run time.

py3langid (a maintained fork of Lui & Baldwin's langid.py) is a naive Bayes model over byte
n-grams covering 97 languages. With `norm_probs=True` it returns a probability; it divides the
scores by the square root of the text's length before the softmax, so short texts get lower
confidence, and a one-word row rarely clears the threshold. Curation runs on chat rows whose
`text()` joins prompt and answer, which is long enough in practice; lower `min_score` for very
short data rather than skipping the check.

Two things keep it cheap on a corpus. Only the first `PREFIX_CHARS` characters are classified:
language does not change half-way through a document often enough to pay for reading all of it.
Against whole-text ID, the 1,000-character prefix gave the same language and the same keep/drop
decision on all 1,497 rows of the shared GSM8K and HH samples (316 of them longer than the
prefix), and the same language on 1,000 of 1,000 generated ~2 KB documents, with one more
`language_low_confidence` drop (agreement 99.9 %); see docs/curation-speed.md. And the features
are found for a whole batch at once: py3langid walks its n-gram automaton byte by byte in Python
(about 0.2 µs a byte). That automaton forgets everything older than its longest n-gram, so its
state after any byte depends only on the last `_WINDOW` bytes; the walk becomes `_WINDOW` numpy
gathers over every position of the batch, and the batch is scored with one sparse product. The
features and the arithmetic are py3langid's, so a prefix gets the language `py3langid.classify`
gives it, with its probability to 2.2e-4, and a decision near a threshold is py3langid's own
(`detect_languages`; tests/unit/test_data_equivalence.py checks both).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np

from tasks.data.records import Row

PREFIX_CHARS = 1000  # characters of a text that decide its language
_WINDOW = 6  # bytes after which py3langid's automaton is in the same state whatever came before
_PAD = b"\0" * (_WINDOW - 1)  # byte 0 keeps the automaton at its start state: a document's own start


class _Model(NamedTuple):
    nextmove: np.ndarray
    rowbase: np.ndarray
    output: np.ndarray
    ptc: np.ndarray  # features x classes, float32 (shipped as float16: converted once, not per row)
    pc: np.ndarray
    classes: list[str]
    alias_pairs: list[tuple[int, int]]
    two: np.ndarray  # the state after bytes (a, b) from the start state, at a * 256 + b: two steps in one


@lru_cache(maxsize=1)
def _model() -> _Model:
    # Loaded when first needed: about half a second, which `llmops --help` should not pay.
    ident = _identifier()
    nextmove = np.asarray(ident.tk_nextmove, dtype=np.int32)
    rowbase = np.asarray(ident._rowbase, dtype=np.int32)
    pairs = np.arange(65536, dtype=np.int32)
    after_first = nextmove[rowbase[0] + (pairs >> 8)]
    return _Model(
        nextmove,
        rowbase,
        np.asarray(ident.tk_output, dtype=np.int32),
        np.ascontiguousarray(ident.nb_ptc, dtype=np.float32),
        ident.nb_pc,
        list(ident.nb_classes),
        list(ident._alias_pairs),
        nextmove[rowbase[after_first] + (pairs & 255)],
    )


def _encode(text: str) -> bytes:
    """py3langid's own preparation of a text: lower-cased when all upper case, NFC, UTF-8."""
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


def _features(encoded: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(document, feature) of every feature the automaton emits, in byte order, for a batch."""
    m = _model()
    lens = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    buf = np.frombuffer(_PAD + _PAD.join(encoded), dtype=np.uint8)
    n = len(buf) - len(_PAD)
    state = m.two[(buf[:n].astype(np.int32) << 8) | buf[1 : n + 1]]  # the first two bytes of each window
    for k in range(2, _WINDOW):  # position i ends up in the state the walk reaches over bytes i-5..i
        state = m.nextmove[m.rowbase[state] + buf[k : k + n]]
    emitted = m.output[state]
    doc = np.repeat(np.arange(len(encoded), dtype=np.int64), lens + len(_PAD))[:n]
    real = np.ones(n, dtype=bool)  # the pads between documents emit nothing
    pad_starts = np.cumsum(lens + len(_PAD))[:-1] - len(_PAD)
    for k in range(len(_PAD)):
        real[pad_starts + k] = False
    hit = real & (emitted >= 0)
    return doc[hit], emitted[hit]


CLOSE = 1e-3  # a probability this near the threshold, or this near the runner-up's, is py3langid's own


def detect_languages(texts: Sequence[str], threshold: float | None = None) -> list[tuple[str, float]]:
    """(ISO 639-1 code, probability in [0, 1]) of each text's first `PREFIX_CHARS` characters.

    py3langid's scoring, for a batch: log(1 + count) of each feature times the model's table, plus
    the priors, scaled by 1/sqrt(bytes), softmax, aliased labels folded. Summed in float32 and in
    another order than py3langid's, so a probability may differ from its own a little (at most
    2.2e-4 on the shared data and the adversarial cases of tests/unit/test_data_equivalence.py,
    on one-word texts). So that no decision depends on that, a text whose best probability lies
    within `CLOSE` of `threshold`, or of the second-best language's, is classified again by
    py3langid itself.
    """
    if not texts:
        return []
    import scipy.sparse as sp

    m = _model()
    prefixes = [t[:PREFIX_CHARS] for t in texts]
    encoded = [_encode(t) for t in prefixes]
    doc, feats = _features(encoded)
    width = m.ptc.shape[0]
    wide = len(encoded) * width >= 2**31  # int32 keys sort in about half the time
    keys, counts = np.unique(doc * width + feats if wide else doc.astype(np.int32) * width + feats, return_counts=True)
    rows = keys // width
    indptr = np.searchsorted(rows, np.arange(len(encoded) + 1))
    weights = sp.csr_matrix(
        (np.log1p(counts.astype(np.float32)), keys - rows * width, indptr), shape=(len(encoded), width)
    )
    scores = np.asarray(weights @ m.ptc) + m.pc
    nbytes = np.fromiter(map(len, encoded), dtype=np.float64, count=len(encoded))
    scores *= (1.0 / np.sqrt(np.maximum(nbytes, 1.0))).astype(np.float32)[:, None]
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    scores /= scores.sum(axis=1, keepdims=True)
    for i, j in m.alias_pairs:
        scores[:, i] += scores[:, j]
        scores[:, j] = 0.0
    top2 = np.sort(scores, axis=1)[:, -2:]
    close = top2[:, 1] - top2[:, 0] < CLOSE
    if threshold is not None:
        close |= np.abs(top2[:, 1] - threshold) < CLOSE
    best = scores.argmax(axis=1)
    out = [(m.classes[b], float(scores[k, b])) for k, b in enumerate(best.tolist())]
    for k in np.flatnonzero(close).tolist():
        lang, p = _identifier().classify(prefixes[k])
        out[k] = (lang, float(p))
    return out


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability in [0, 1]) of the most likely language of the text's prefix."""
    return detect_languages([text])[0]


def language_check(
    allowed: Iterable[str] = ("en",), min_score: float = 0.5, counts: Counter[str] | None = None
) -> Callable[[Row, tuple[str, float]], str | None]:
    """A check on a row and its detected (language, score): drops rows in another language or
    detected with low confidence.

    Every row it sees adds its detected language to `counts`, kept or not, so the report shows
    what the corpus held. The language is checked before the score: a confident French row is
    `language_not_allowed`, an unsure row in any language is `language_low_confidence`.
    """
    keep = frozenset(allowed)

    def check(row: Row, detected: tuple[str, float]) -> str | None:
        lang, score = detected
        if counts is not None:
            counts[lang] += 1
        if lang not in keep and score >= min_score:
            return "language_not_allowed"
        if score < min_score:
            return "language_low_confidence"
        return None

    return check
