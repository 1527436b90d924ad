"""Language ID with py3langid, whose model ships inside the wheel: nothing is fetched at run time.

py3langid (a maintained fork of Lui & Baldwin's langid.py) is a naive Bayes model over byte
n-grams covering 97 languages. With `norm_probs=True` it returns a probability; it divides the
scores by the square root of the text's length before the softmax, so short texts get lower
confidence, and a one-word row rarely clears the threshold. Curation runs on chat rows whose
`text()` joins prompt and answer, which is long enough in practice; lower `min_score` for very
short data rather than skipping the check.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Iterable

from tasks.data.records import Row

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    # Imported here: loading the model takes about half a second, which `llmops --help` should not pay.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability in [0, 1]) of the most likely language."""
    lang, score = _identifier().classify(text)
    return lang, float(score)


def language_check(
    allowed: Iterable[str] = ("en",), min_score: float = 0.5, counts: Counter[str] | None = None
) -> Callable[[Row], str | None]:
    """A check for `apply_filter`: drops rows in another language or detected with low confidence.

    Every row it sees adds its detected language to `counts`, kept or not, so the report shows
    what the corpus held. The language is checked before the score: a confident French row is
    `language_not_allowed`, an unsure row in any language is `language_low_confidence`.
    """
    keep = frozenset(allowed)

    def check(row: Row) -> str | None:
        lang, score = detect_language(row.text())
        if counts is not None:
            counts[lang] += 1
        if lang not in keep and score >= min_score:
            return "language_not_allowed"
        if score < min_score:
            return "language_low_confidence"
        return None

    return check
