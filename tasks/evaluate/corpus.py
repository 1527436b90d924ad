"""Corpus BLEU from per-item sufficient statistics, on the 0-1 scale of every other score.

Corpus BLEU is not a mean of per-item scores: it sums n-gram matches and lengths over the corpus
first. Keeping each item's statistics lets the gate resample items (a paired bootstrap) and still
compute the corpus figure on every resample. sacrebleu reports BLEU as 0-100; here it is divided by
100, because the gate's margins (`max_regression: 0.05`) and the card's columns are on 0-1, and a
0-100 BLEU once let a 0.012 gain pass a 0.05 minimum as "+1.219".
"""

from __future__ import annotations

from typing import Any

import numpy as np


def bleu_stats(outputs: list[str], references: list[str]) -> list[list[float]]:
    """Per-item statistics [hyp_len, ref_len, matches 1-4, totals 1-4], sacrebleu's own extraction."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    return [[float(x) for x in bleu._extract_corpus_statistics([o], [[r]])[0]] for o, r in zip(outputs, references)]


def corpus_bleu(rows: Any) -> float:
    """Corpus BLEU in [0, 1] from summed per-item statistics, with sacrebleu's default "exp" smoothing."""
    total = np.sum(np.asarray(rows, dtype=float), axis=0)
    hyp_len, ref_len, matches, totals = total[0], total[1], total[2:6], total[6:10]
    if hyp_len == 0 or np.any(totals == 0):
        return 0.0
    precisions, smooth = [], 1.0
    for m, t in zip(matches, totals):
        if m == 0:
            smooth *= 2
            precisions.append(1.0 / (smooth * t))
        else:
            precisions.append(m / t)
    log_precision = float(np.mean(np.log(precisions)))
    brevity = 1.0 if hyp_len > ref_len else float(np.exp(1 - ref_len / hyp_len))
    return float(brevity * np.exp(log_precision))
