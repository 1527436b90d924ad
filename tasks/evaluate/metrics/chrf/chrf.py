"""chrF as an `evaluate` module that ships with the project, loaded by path.

Computed with sacrebleu's `CHRF` (character n-grams up to 6, beta 2; `word_order=2` gives chrF++).
sacrebleu reports 0..100; this module divides by 100 so that every score in the project is on a
0..1 scale and gate thresholds read the same way for each metric.

Two different figures, named apart: `chrf` is sacrebleu's corpus chrF (character n-gram statistics
pooled over all pairs, what `sacrebleu -m chrf` prints); `sentence_chrf` is the mean of the
per-pair sentence scores in `scores`. The suites report `sentence_chrf`, because the promotion gate
pairs the per-item scores across models, and a mean of per-item scores is what such a pairing tests.
"""

import datasets
import evaluate

_DESCRIPTION = "Corpus chrF and mean sentence chrF of predictions against their reference (0..1), with per-item scores."
_KWARGS = """
Args:
    predictions: list of str.
    references: list of str (one reference per prediction).
    word_order: int, 0 for chrF (default), 2 for chrF++.
Returns:
    chrf: float in [0, 1], sacrebleu's corpus chrF / 100.
    sentence_chrf: float in [0, 1], the mean of `scores`.
    scores: list of float in [0, 1], sentence chrF / 100 per pair.
"""


class Chrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Popovic, 2015. chrF: character n-gram F-score for automatic MT evaluation.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, word_order=0):
        from sacrebleu.metrics import CHRF

        chrf = CHRF(word_order=word_order)
        scores = [min(1.0, chrf.sentence_score(p, [r]).score / 100) for p, r in zip(predictions, references)]
        corpus = min(1.0, chrf.corpus_score(list(predictions), [list(references)]).score / 100) if scores else 0.0
        mean = sum(scores) / len(scores) if scores else 0.0
        return {"chrf": corpus, "sentence_chrf": mean, "scores": scores}
