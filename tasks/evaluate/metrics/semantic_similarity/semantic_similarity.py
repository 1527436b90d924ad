"""Semantic similarity as an `evaluate` module that ships with the project, loaded by path.

Per item: the cosine similarity of the all-MiniLM-L6-v2 sentence embeddings of the prediction
and its reference (`tasks.evaluate.embed`, offline, one model per process). It credits an
answer worded differently from the reference, which exact match, ROUGE-L, chrF and BLEU do not:
like BERTScore, but one vector per text instead of token matching, which is cheap on a CPU.

Scale: [0, 1]. A cosine lies in [-1, 1], but MiniLM puts unrelated sentences near 0 and rarely
below; negative values are clipped to 0, so that, as for every score in the project, 0 means
"nothing in common" and a gate margin reads the same way on every metric. A blank prediction
scores 0 (1 if the reference is blank too), like the other metrics' empty output.
`compute` returns the mean and the per-item scores, because the promotion gate pairs items.

The embedding code is imported inside `_compute`: `evaluate` checks a module's top-level imports
as pip packages, and `tasks` is this project, not one.
"""

import datasets
import evaluate

_DESCRIPTION = "Mean cosine similarity (clipped to [0, 1]) of sentence embeddings of predictions and references."
_KWARGS = """
Args:
    predictions: list of str.
    references: list of str (one reference per prediction).
    batch_size: int, texts embedded at a time (default 64).
Returns:
    semantic_similarity: float in [0, 1], the mean of the per-item scores.
    scores: list of float in [0, 1], one per pair.
"""


class SemanticSimilarity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Reimers and Gurevych, 2019. Sentence-BERT; model sentence-transformers/all-MiniLM-L6-v2.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, batch_size=64):
        from tasks.evaluate.embed import embed_texts

        unique = sorted({t for t in list(predictions) + list(references) if t.strip()})
        vectors = dict(zip(unique, embed_texts(unique, batch_size))) if unique else {}
        scores = []
        for pred, ref in zip(predictions, references):
            if pred.strip() == ref.strip() or not pred.strip() or not ref.strip():
                scores.append(1.0 if pred.strip() == ref.strip() else 0.0)  # exact, not 0.99999994
                continue
            cosine = float(vectors[pred] @ vectors[ref])
            scores.append(min(1.0, max(0.0, cosine)))
        mean = sum(scores) / len(scores) if scores else 0.0
        return {"semantic_similarity": mean, "scores": scores}
