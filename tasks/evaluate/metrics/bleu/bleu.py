"""BLEU as an `evaluate` module that ships with the project, loaded by path.

Computed with sacrebleu (13a tokenisation, 4-grams). sacrebleu reports 0..100; this module
divides by 100 so that every score in the project is on a 0..1 scale. `bleu` is the corpus score,
the standard figure (n-gram counts pooled over all pairs, not a mean of sentence scores). The
per-item `scores` are sentence BLEU with `effective_order=True`, as sacrebleu recommends for
single sentences: without it any short answer lacking a 4-gram match scores 0.
"""

import datasets
import evaluate

_DESCRIPTION = "Corpus BLEU of predictions against their reference (0..1), with per-item sentence BLEU."
_KWARGS = """
Args:
    predictions: list of str.
    references: list of str (one reference per prediction).
Returns:
    bleu: float in [0, 1], sacrebleu's corpus BLEU / 100.
    scores: list of float in [0, 1], sentence BLEU (effective order) / 100 per pair.
"""


class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Papineni et al., 2002; Post, 2018 (sacreBLEU).",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        from sacrebleu.metrics import BLEU

        sentence = BLEU(effective_order=True)
        scores = [min(1.0, sentence.sentence_score(p, [r]).score / 100) for p, r in zip(predictions, references)]
        corpus = min(1.0, BLEU().corpus_score(list(predictions), [list(references)]).score / 100) if scores else 0.0
        return {"bleu": corpus, "scores": scores}
