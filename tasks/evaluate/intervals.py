"""Intervals for one model's mean score that respect the score's range: what results, cards and plots show.

Plain Python and numpy (scipy only for the exact interval), so the library (plots) and the registry
(model cards, `llmops evaluate --output`) share one implementation. Paired comparisons of two models
are the gate's, in registry/stats.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

# Largest index matrix (rows x items) a bootstrap builds at once: about 32 MB of int64.
_BOOTSTRAP_CHUNK_CELLS = 4_000_000


def check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1 (got {confidence})")


def resample_indices(rng: np.random.Generator, n: int, n_resamples: int) -> Iterator[np.ndarray]:
    """Index matrices in chunks; both bootstrap paths draw through here so they see the same resamples."""
    rows = max(1, _BOOTSTRAP_CHUNK_CELLS // n)
    done = 0
    while done < n_resamples:
        k = min(rows, n_resamples - done)
        yield rng.integers(0, n, size=(k, n))
        done += k


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion: the set of p a score test at 1 - confidence would not reject.

    Unlike the normal (Wald) or t interval it never leaves [0, 1] and does not collapse to a point
    at 0 or n successes, where an eval set of a weak model lives; its coverage is close to nominal
    for every p (Brown, Cai and DasGupta 2001), where Clopper-Pearson's is conservative.
    """
    check_confidence(confidence)
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1 (got {successes} of {n})")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # At 0 or n successes the bound is exactly 0 or 1; rounding would leave it a hair inside the range,
    # above the observed mean. Clamping to the observed share keeps low <= p <= high always.
    low = 0.0 if successes == 0 else min(p, max(0.0, centre - half))
    high = 1.0 if successes == n else max(p, min(1.0, centre + half))
    return low, high


def clopper_pearson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval from beta quantiles: coverage at least `confidence` for every p."""
    check_confidence(confidence)
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1 (got {successes} of {n})")
    from scipy import stats

    tail = (1.0 - confidence) / 2.0
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, n - successes + 1))
    high = 1.0 if successes == n else float(stats.beta.ppf(1.0 - tail, successes + 1, n - successes))
    return low, high


def bootstrap_mean_interval(
    scores: Sequence[float],
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean, inside `bounds` (the metric's range).

    Resampled means of scores that lie in a range stay in it, so the clip only guards rounding;
    scores outside `bounds` are a bug upstream and raise.
    """
    check_confidence(confidence)
    x = np.asarray(scores, dtype=float)
    if x.ndim != 1 or x.size < 2 or not np.isfinite(x).all():
        raise ValueError(f"a bootstrap interval needs at least 2 finite scores in a flat list (got {x.size})")
    if bounds is not None and (x.min() < bounds[0] or x.max() > bounds[1]):
        raise ValueError(f"scores run from {x.min()} to {x.max()}, outside the metric's range {list(bounds)}")
    rng = np.random.default_rng(seed)
    means = np.concatenate([x[idx].mean(axis=1) for idx in resample_indices(rng, x.size, n_resamples)])
    tail = (1.0 - confidence) / 2.0
    low, high = (float(v) for v in np.quantile(means, [tail, 1.0 - tail]))
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return low, high


def mean_interval(
    scores: Sequence[float],
    binary: bool,
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    binary_method: str = "wilson",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """One model's mean score with an interval that respects the score's range: what results, tags and cards show.

    0/1 scores (`binary`) are a proportion: Wilson (or `binary_method="clopper-pearson"`), which
    stays in [0, 1] even for 1 success in 200 items, where a t interval goes below zero. Graded
    scores get a seeded percentile bootstrap, inside `bounds` (None for an unbounded score such as
    a latency). One graded score has no spread to resample: its interval is None.
    """
    x = [float(s) for s in scores]
    n = len(x)
    if n == 0:
        raise ValueError("no scores: an interval needs at least one item")
    mean = math.fsum(x) / n
    if binary:
        if any(s not in (0.0, 1.0) for s in x):
            raise ValueError("binary=True needs 0/1 scores; pass binary=False for graded scores")
        methods = {"wilson": wilson_interval, "clopper-pearson": clopper_pearson_interval}
        if binary_method not in methods:
            raise ValueError(f"binary_method must be one of {sorted(methods)} (got {binary_method!r})")
        low, high = methods[binary_method](int(sum(x)), n, confidence)
        return {"mean": mean, "ci_low": low, "ci_high": high, "n": n, "method": binary_method}
    if n < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": n, "method": "none (one item)"}
    low, high = bootstrap_mean_interval(x, confidence, bounds, n_resamples, seed)
    return {
        "mean": mean,
        "ci_low": low,
        "ci_high": high,
        "n": n,
        "method": f"percentile bootstrap ({n_resamples} resamples)",
    }


def metric_interval(scores: Sequence[float], metric: str) -> dict[str, Any]:
    """One model's mean on a named metric, with a 95 % interval inside the score's range: Wilson for
    0/1 scores (a proportion never gets a negative lower bound), a percentile bootstrap for graded ones."""
    from tasks.evaluate.suites import BINARY_METRICS, GRADED_METRICS

    if not scores:
        return {"mean": 0.0, "ci_low": None, "ci_high": None, "n": 0, "method": "none (no items)"}
    binary = metric in BINARY_METRICS or set(scores) <= {0.0, 1.0}
    return mean_interval(scores, binary=binary, bounds=(0.0, 1.0) if binary or metric in GRADED_METRICS else None)
