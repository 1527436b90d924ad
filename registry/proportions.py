"""Tango's score test and interval for the difference of two paired proportions (0/1 scores on the same items).

Why this and not McNemar's exact p beside a t interval: the two came from different procedures, so
a card could show "delta +0.025 [+0.003, +0.047], p=0.0625", an interval that excludes 0 beside a
p above 0.05. Here the test and the interval are one statistic: the interval is the set of
differences the score test does not reject, so it excludes 0 exactly when the two-sided p at 0 is
below 1 - confidence. At a difference of 0 the statistic is McNemar's (without continuity
correction), and the same statistic tests a non-zero margin, which McNemar's cannot. It stays
defined with no discordant pair, where a t interval collapses to a point: 0 of 200 discordant
pairs rules out a 5-point regression, 0 of 3 does not.

With `b10` items only the challenger got right, `b01` items only the other got right, and n pairs,
the difference is delta = (b10 - b01) / n. Under H0: delta = d0 the restricted maximum-likelihood
share of (0, 1) pairs q solves 2n q^2 + W q - b01 d0 (1 - d0) = 0 with W = -b10 - b01 + d0 (2n -
b10 + b01), and Z(d0) = (b10 - b01 - n d0) / sqrt(n (2q + d0 (1 - d0))) (Tango 1998, Stat Med 17:891).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np


def discordant_pairs(a: Sequence[float], b: Sequence[float]) -> tuple[int, int, int]:
    """(b10, b01, n): items only `a` got right, items only `b` got right, and all pairs."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 1:
        raise ValueError(f"paired 0/1 scores need two flat lists of equal, non-zero length (got {x.shape}, {y.shape})")
    if not (np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all()):
        raise ValueError("a paired proportion needs 0/1 scores; use the paired t interval for graded scores")
    return int(np.sum((x == 1) & (y == 0))), int(np.sum((x == 0) & (y == 1))), int(x.size)


def restricted_share(b10: int, b01: int, n: int, d0: float) -> float:
    """The maximum-likelihood share of (0, 1) pairs when the true difference is `d0`."""
    w = -b10 - b01 + d0 * (2 * n - b10 + b01)
    disc = max(0.0, w * w + 8.0 * n * b01 * d0 * (1.0 - d0))
    return (-w + math.sqrt(disc)) / (4.0 * n)


def score_statistic(b10: int, b01: int, n: int, d0: float) -> float:
    """Tango's Z for H0: delta = d0; +-inf where the data rule d0 out with certainty (d0 = -1 and a
    pair that is not (0, 1), say), 0 where they sit exactly on it."""
    if not -1.0 <= d0 <= 1.0:
        raise ValueError(f"a difference of proportions lies in [-1, 1] (got {d0})")
    q = restricted_share(b10, b01, n, d0)
    variance = n * (2.0 * q + d0 * (1.0 - d0))
    numerator = b10 - b01 - n * d0
    if variance <= 1e-12 * n:
        return 0.0 if abs(numerator) <= 1e-9 * n else math.copysign(math.inf, numerator)
    return numerator / math.sqrt(variance)


def _root(f, low: float, high: float) -> float:
    from scipy.optimize import brentq

    return float(brentq(f, low, high, xtol=1e-12, rtol=1e-12))


def score_interval(b10: int, b01: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The differences the two-sided score test at 1 - confidence does not reject.

    Z falls as d0 rises, and is 0 at the observed difference, so each bound is the one root of
    Z(d0) = +-z on its side; where no root exists the bound is the end of the range, -1 or 1.
    """
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    estimate = (b10 - b01) / n
    low = estimate
    if estimate > -1.0:
        low = (
            -1.0
            if score_statistic(b10, b01, n, -1.0) <= z
            else _root(lambda d: score_statistic(b10, b01, n, d) - z, -1.0, estimate)
        )
    high = estimate
    if estimate < 1.0:
        high = (
            1.0
            if score_statistic(b10, b01, n, 1.0) >= -z
            else _root(lambda d: score_statistic(b10, b01, n, d) + z, estimate, 1.0)
        )
    return low, high


def paired_proportions(
    a: Sequence[float], b: Sequence[float], margin: float = 0.0, confidence: float = 0.95
) -> dict[str, float]:
    """Difference of paired 0/1 scores: estimate, score interval, two-sided p at 0, one-sided p at `margin`.

    `p_value_margin` tests H0: delta <= margin against H1: delta > margin (a gain of at least a
    positive margin, or non-inferiority within a negative one).
    """
    from scipy.stats import norm

    b10, b01, n = discordant_pairs(a, b)
    low, high = score_interval(b10, b01, n, confidence)
    return {
        "delta": (b10 - b01) / n,
        "ci_low": low,
        "ci_high": high,
        "p_value": min(1.0, float(2.0 * norm.sf(abs(score_statistic(b10, b01, n, 0.0))))),
        "p_value_margin": float(norm.sf(score_statistic(b10, b01, n, margin))),
        "b10": b10,
        "b01": b01,
        "n": n,
    }
