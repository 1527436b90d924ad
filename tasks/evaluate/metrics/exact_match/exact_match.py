"""Exact match as an `evaluate` module that ships with the project.

`evaluate.load("exact_match")` fetches its script from the Hugging Face Hub and fails offline, so
the project keeps its own module script and loads it by path. The score per pair is 1.0 when the
two strings are equal after the optional normalisations, else 0.0; `compute` returns the mean and
the per-item scores, since the promotion gate needs paired per-item results.
"""

import datasets
import evaluate

_DESCRIPTION = "Share of predictions equal to their reference, after optional normalisation."
_KWARGS = """
Args:
    predictions: list of str.
    references: list of str.
    ignore_case: bool, compare case-insensitively.
    strip: bool, ignore leading and trailing whitespace.
Returns:
    exact_match: float in [0, 1].
    scores: list of 0.0/1.0 per pair.
"""


class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, ignore_case=False, strip=True):
        scores = []
        for pred, ref in zip(predictions, references):
            if strip:
                pred, ref = pred.strip(), ref.strip()
            if ignore_case:
                pred, ref = pred.lower(), ref.lower()
            scores.append(1.0 if pred == ref else 0.0)
        mean = sum(scores) / len(scores) if scores else 0.0
        return {"exact_match": mean, "scores": scores}
