"""ROUGE-L as an `evaluate` module that ships with the project, loaded by path.

`evaluate.load("rouge")` fetches its script from the Hugging Face Hub and fails offline; this
module calls `rouge_score` directly. Per item it gives the ROUGE-L F-measure (longest common
subsequence of tokens), on a 0..1 scale like every other score in the project, and `compute`
returns their mean plus the per-item list, because the promotion gate pairs items.

rouge_score's default tokenizer lower-cases and keeps only ASCII letters and digits, so text in
other scripts tokenises to nothing and scores 0: use chrF for such text.
"""

import datasets
import evaluate

_DESCRIPTION = "Mean ROUGE-L F-measure of predictions against their reference, with per-item scores."
_KWARGS = """
Args:
    predictions: list of str.
    references: list of str (one reference per prediction).
    use_stemmer: bool, Porter-stem tokens before matching (default False).
Returns:
    rouge_l: float in [0, 1], the mean of the per-item F-measures.
    scores: list of float in [0, 1], one per pair.
"""


class RougeL(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, 2004. ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, use_stemmer=False):
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
        scores = [float(scorer.score(ref, pred)["rougeL"].fmeasure) for pred, ref in zip(predictions, references)]
        mean = sum(scores) / len(scores) if scores else 0.0
        return {"rouge_l": mean, "scores": scores}
