"""Paired statistics for the promotion gate: is the challenger really better than the champion?

Both models are scored on the same eval items, so every test here works on per-item pairs
(`a` = challenger, `b` = champion, differences are `a - b`). Pairing removes the item-difficulty
variance that two independent samples would carry, which is what makes a few hundred items
enough to see a one-point change.

Items are often not independent (several questions per source document, several turns per
conversation). Passing `clusters` (one group id per item) switches to cluster-robust standard
errors so that correlated items are not counted as independent evidence.

No test here reports a certainty it does not have. When every paired difference is the same, a
t statistic divides by a standard error of 0 (scipy then says p = 0, or nan): such a comparison
raises `NoSpread`, and the gate asks a person instead of promoting. Binary scores use Tango's score
test and interval for the paired difference (registry/proportions.py), which stay defined with no
discordant pair, and whose interval excludes 0 exactly when the test's p is below 1 - confidence.

Pure numpy and math; scipy (already required by mlflow and datasketch) is imported lazily for the
t and binomial distributions. Nothing here touches Prefect or MLflow, so the gate logic is
testable alone.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from tasks.evaluate.intervals import check_confidence as _check_confidence
from tasks.evaluate.intervals import resample_indices as _resample_indices


class NoSpread(ValueError):
    """Every paired difference is the same: a t or bootstrap interval would have width 0 and its p
    would be 0 or 1 whatever the sample size, so the comparison cannot be judged by it."""


def _paired_arrays(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"paired scores need two flat lists of equal length (got {x.shape} and {y.shape})")
    if x.size < 2:
        raise ValueError(f"paired scores need at least 2 items (got {x.size})")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired scores contain NaN or inf; drop or impute those items before comparing")
    return x, y


def _cluster_se(d: np.ndarray, clusters: Sequence[Hashable]) -> tuple[float, int]:
    """CR1 standard error of the mean difference; returns (se, number of clusters).

    Residuals are summed within each cluster first, so items that move together add up instead of
    averaging out; the G/(G-1) factor corrects the downward bias when clusters are few.
    """
    if len(clusters) != d.size:
        raise ValueError(f"clusters needs one group id per item (got {len(clusters)} ids for {d.size} items)")
    ids: dict[Hashable, int] = {}
    group = np.array([ids.setdefault(c, len(ids)) for c in clusters], dtype=np.intp)
    g = len(ids)
    if g < 2:
        raise ValueError("cluster-robust errors need at least 2 clusters; pass clusters=None for iid items")
    totals = np.bincount(group, weights=d - d.mean(), minlength=g)
    var = g / (g - 1) * float(np.sum(totals**2)) / d.size**2
    return math.sqrt(var), g


def _mean_diff_se(
    a: Sequence[float], b: Sequence[float], clusters: Sequence[Hashable] | None
) -> tuple[float, float, int, int]:
    """(delta, se, n, degrees of freedom) shared by the two-sided and the margin test."""
    x, y = _paired_arrays(a, b)
    d = x - y
    if np.ptp(d) == 0.0:
        raise NoSpread(f"all {d.size} paired differences equal {d[0]:+.4g}: there is no spread to test against")
    if clusters is None:
        return float(d.mean()), float(d.std(ddof=1)) / math.sqrt(d.size), d.size, d.size - 1
    se, g = _cluster_se(d, clusters)
    if se == 0.0:
        raise NoSpread(f"the {g} cluster means of the paired differences are all equal: no spread to test against")
    # With G clusters there are only G independent totals, hence G-1 degrees of freedom.
    return float(d.mean()), se, d.size, g - 1


def paired_mean_diff(
    a: Sequence[float],
    b: Sequence[float],
    clusters: Sequence[Hashable] | None = None,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Mean of `a - b` with a t-based interval and a two-sided p-value for "no difference".

    The t distribution (df = n-1, or G-1 with clusters) rather than the normal keeps small eval
    sets and few clusters from looking more certain than they are. When every difference is the
    same the standard error is 0 and nothing can be said: `NoSpread` is raised.
    """
    _check_confidence(confidence)
    from scipy import stats

    delta, se, n, df = _mean_diff_se(a, b, clusters)
    p_value = float(2.0 * stats.t.sf(abs(delta) / se, df))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df)) * se
    return {
        "delta": delta,
        "ci_low": delta - half,
        "ci_high": delta + half,
        "se": se,
        "n": n,
        "df": df,
        "p_value": min(1.0, p_value),
    }


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Exact McNemar test for paired 0/1 scores.

    Only discordant pairs carry information about which model is better; under H0 each one is a
    fair coin, so the p-value is an exact two-sided binomial tail on them. The exact form stays
    valid for the handful of discordant pairs a small eval set produces, where the chi-square
    approximation does not. `b01` counts items `a` got wrong and `b` got right.
    """
    from registry.proportions import discordant_pairs

    b10, b01, n = discordant_pairs(a, b)
    m = b01 + b10
    if m == 0:
        p_value = 1.0
    else:
        from scipy import stats

        # binom.cdf rather than a sum of math.comb terms: exact to float precision and fast at
        # tens of thousands of discordant pairs, where big-integer sums take tens of seconds.
        p_value = min(1.0, 2.0 * float(stats.binom.cdf(min(b01, b10), m, 0.5)))
    return {"b01": b01, "b10": b10, "n_discordant": m, "n": n, "p_value": p_value}


def _is_mean(metric_fn: Callable[..., float] | None) -> bool:
    return metric_fn is None or metric_fn in (np.mean, statistics.mean, statistics.fmean)


def paired_bootstrap(
    a: Sequence[Any],
    b: Sequence[Any],
    metric_fn: Callable[[list[Any]], float] | None,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    margin: float = 0.0,
) -> dict[str, float]:
    """Paired bootstrap of `metric_fn(a) - metric_fn(b)` for corpus-level metrics.

    Corpus BLEU or F1 is not a mean of per-item scores, so no t-test applies; resampling the same
    item indices for both models keeps the pairing. `a` and `b` may hold numbers or whole items
    (e.g. (hypothesis, reference) tuples) as long as `metric_fn` accepts a list of them. A mean
    metric (None, np.mean, statistics.mean/fmean) takes a vectorised path.

    The interval is the percentile interval. The p-value is twice the share of resamples whose
    delta lands on the other side of zero (ties count against the challenger), with the usual +1
    correction so a finite run never reports p = 0; `p_value_margin` is the one-sided share at or
    below `margin` (H1: delta > margin), corrected the same way. When every resample gives the same
    delta (the two lists score alike item by item) there is no spread to judge: `NoSpread`.
    """
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1 (got {n_resamples})")
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"paired bootstrap needs two lists of equal length >= 2 (got {len(a)} and {len(b)})")
    rng = np.random.default_rng(seed)
    n = len(a)

    if _is_mean(metric_fn):
        x, y = _paired_arrays(a, b)
        d = x - y
        delta = float(d.mean())
        deltas = np.concatenate([d[idx].mean(axis=1) for idx in _resample_indices(rng, n, n_resamples)])
    else:
        items_a, items_b = list(a), list(b)
        delta = float(metric_fn(items_a)) - float(metric_fn(items_b))
        deltas = np.fromiter(
            (
                float(metric_fn([items_a[i] for i in row])) - float(metric_fn([items_b[i] for i in row]))
                for idx in _resample_indices(rng, n, n_resamples)
                for row in idx
            ),
            dtype=float,
            count=n_resamples,
        )

    if np.ptp(deltas) == 0.0:
        raise NoSpread(f"all {n_resamples} resampled deltas equal {deltas[0]:+.4g}: there is no spread to judge")
    tail = (1.0 - confidence) / 2.0
    ci_low, ci_high = np.quantile(deltas, [tail, 1.0 - tail])
    if delta == 0.0:
        p_value = 1.0
    else:
        flips = int(np.sum(deltas <= 0.0)) if delta > 0 else int(np.sum(deltas >= 0.0))
        p_value = min(1.0, 2.0 * (flips + 1) / (n_resamples + 1))
    return {
        "delta": delta,
        "ci_low": float(ci_low),
        "ci_high": float(ci_high),
        "p_value": p_value,
        "p_value_margin": min(1.0, (int(np.sum(deltas <= margin)) + 1) / (n_resamples + 1)),
        "n_resamples": n_resamples,
    }


def one_sided_margin_test(
    a: Sequence[float],
    b: Sequence[float],
    margin: float,
    clusters: Sequence[Hashable] | None = None,
) -> dict[str, float]:
    """One-sided t-test of H0: mean(a - b) <= margin against H1: mean(a - b) > margin.

    With margin > 0 this asks "better by at least `margin`"; with margin < 0 it is a
    non-inferiority test ("not worse than the champion by more than |margin|"), which is what a
    gate wants when the challenger wins on cost or latency and only must not regress quality.
    """
    from scipy import stats

    delta, se, _, df = _mean_diff_se(a, b, clusters)
    return {"p_value": float(stats.t.sf((delta - margin) / se, df)), "delta": delta, "margin": float(margin)}


def holm(p_values: dict[str, float], alpha: float = 0.05) -> dict[str, dict[str, float | bool]]:
    """Holm–Bonferroni step-down adjustment across the metrics a gate checks together.

    Checking several metrics at alpha each inflates the chance that some regression "passes" by
    luck; Holm controls the family-wise error at alpha and is uniformly more powerful than plain
    Bonferroni. Adjusted p-values are made monotone in the sorted order and capped at 1, so
    `reject` is simply `p_adjusted <= alpha`.
    """
    for name, p in p_values.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-value for {name!r} must lie in [0, 1] (got {p})")
    m = len(p_values)
    ordered = sorted(p_values.items(), key=lambda kv: kv[1])
    out: dict[str, dict[str, float | bool]] = {}
    running = 0.0
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (m - rank) * p))
        out[name] = {"p_value": p, "p_adjusted": running, "reject": running <= alpha}
    return {name: out[name] for name in p_values}


def minimum_detectable_effect(
    n: int,
    baseline_rate: float | None = None,
    sd: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    paired_discordance: float | None = None,
) -> float:
    """Smallest true mean difference a two-sided test at `alpha` finds with probability `power`.

    Reported next to a "no significant difference" so that a reader can tell "no effect" from
    "eval set too small to see one". All forms are (z_{1-alpha/2} + z_{power}) * SE, with SE from
    the first input given:

    - `paired_discordance` (share of items where exactly one model is right, binary scores):
      SE = sqrt(discordance / n), since under H0 each difference is -1, 0 or +1 with variance
      equal to the discordance rate.
    - `sd` (standard deviation of per-item differences): SE = sd / sqrt(n).
    - `baseline_rate` p: SE = sqrt(2 p (1 - p) / n), the unpaired two-proportion form. It ignores
      the pairing and so overstates the MDE; use it only before any paired run exists.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of items (got {n})")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError(f"alpha and power must lie strictly between 0 and 1 (got {alpha}, {power})")
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0) + NormalDist().inv_cdf(power)
    if paired_discordance is not None:
        if not 0.0 <= paired_discordance <= 1.0:
            raise ValueError(f"paired_discordance is a share of items, in [0, 1] (got {paired_discordance})")
        return z * math.sqrt(paired_discordance / n)
    if sd is not None:
        if sd < 0:
            raise ValueError(f"sd must be non-negative (got {sd})")
        return z * sd / math.sqrt(n)
    if baseline_rate is not None:
        if not 0.0 <= baseline_rate <= 1.0:
            raise ValueError(f"baseline_rate is a proportion, in [0, 1] (got {baseline_rate})")
        return z * math.sqrt(2.0 * baseline_rate * (1.0 - baseline_rate) / n)
    raise ValueError("minimum_detectable_effect needs one of paired_discordance, sd or baseline_rate")


@dataclass
class Comparison:
    """One paired comparison, as the gate decides on it and the card, tags and audit log show it.

    `p_value` is two-sided for "no difference" and comes from the same procedure as the interval, so
    the interval excludes 0 exactly when p < 1 - confidence. `p_value_margin` is one-sided against
    `margin` (H1: delta > margin): the p the gate decides on, Holm-adjusted across rules into
    `p_adjusted`. Every figure is on the metric's own 0-1 scale; for an operational figure
    (`ops.*`) delta is the relative rise of the candidate over the champion.
    """

    name: str
    method: str
    n: int
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    margin: float
    p_value_margin: float
    mde: float | None = None
    p_adjusted: float | None = None
    se: float | None = None
    n_clusters: int | None = None
    b01: int | None = None  # binary: items the candidate got wrong and the other right
    b10: int | None = None
    p_value_exact: float | None = None  # binary: McNemar's exact p, for the record

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def summarise_comparison(
    name: str,
    a: Sequence[float],
    b: Sequence[float],
    binary: bool,
    margin: float = 0.0,
    clusters: Sequence[Hashable] | None = None,
) -> Comparison:
    """Everything the gate and the model card need about one metric.

    Binary scores on independent items: Tango's score test and interval (registry/proportions.py),
    with McNemar's exact p kept as `p_value_exact`. Graded scores, and binary ones in clusters
    (where McNemar's independence fails): the paired t, cluster-robust with `clusters`. The MDE
    uses the observed discordance (binary; at least one discordant pair is assumed so it is never
    0) or the sd of differences, scaled by the cluster-robust/iid SE ratio when clusters exist.
    Raises `NoSpread` where the t test has nothing to judge on.
    """
    from registry.proportions import paired_proportions

    x, y = _paired_arrays(a, b)
    n = int(x.size)
    if binary and clusters is None:
        score = paired_proportions(x, y, margin=margin)
        discordant = score["b10"] + score["b01"]
        return Comparison(
            name=name,
            method="Tango score (McNemar at 0)",
            n=n,
            delta=score["delta"],
            ci_low=score["ci_low"],
            ci_high=score["ci_high"],
            p_value=score["p_value"],
            margin=float(margin),
            p_value_margin=score["p_value_margin"],
            mde=minimum_detectable_effect(n, paired_discordance=max(discordant, 1) / n),
            b01=score["b01"],
            b10=score["b10"],
            p_value_exact=mcnemar_exact(x, y)["p_value"],
        )
    diff = paired_mean_diff(x, y, clusters=clusters)
    out = Comparison(
        name=name,
        method="paired t" if clusters is None else "paired t, cluster-robust",
        n=n,
        delta=diff["delta"],
        ci_low=diff["ci_low"],
        ci_high=diff["ci_high"],
        p_value=diff["p_value"],
        margin=float(margin),
        p_value_margin=one_sided_margin_test(x, y, margin, clusters=clusters)["p_value"],
        se=diff["se"],
    )
    if binary:
        mc = mcnemar_exact(x, y)
        out.b01, out.b10 = mc["b01"], mc["b10"]
        mde = minimum_detectable_effect(n, paired_discordance=max(mc["n_discordant"], 1) / n)
    else:
        mde = minimum_detectable_effect(n, sd=float(np.std(x - y, ddof=1)))
    if clusters is not None:
        out.n_clusters = int(diff["df"]) + 1
        iid_se = float(np.std(x - y, ddof=1)) / math.sqrt(n)
        if iid_se > 0:
            mde *= diff["se"] / iid_se
    out.mde = mde
    return out


def corpus_comparison(
    name: str, a: Sequence[Any], b: Sequence[Any], metric_fn: Callable[[list[Any]], float], margin: float
) -> Comparison:
    """A corpus-level metric (BLEU from per-item statistics) by a 10,000-resample paired bootstrap."""
    boot = paired_bootstrap(a, b, metric_fn, n_resamples=10_000, seed=0, margin=margin)
    return Comparison(
        name=name,
        method="paired bootstrap",
        n=len(a),
        delta=boot["delta"],
        ci_low=boot["ci_low"],
        ci_high=boot["ci_high"],
        p_value=boot["p_value"],
        margin=float(margin),
        p_value_margin=boot["p_value_margin"],
    )


def relative_rise(name: str, candidate: Sequence[float], other: Sequence[float], limit: float) -> Comparison:
    """How much more a paired operational figure (seconds, dollars per batch) costs the candidate.

    On the log scale a rise is a difference, so the paired t applies to log(candidate / other)
    per pair; back on the ratio scale the estimate is the geometric mean rise, and the interval
    its image. `p_value_margin` is one-sided for H1: rise < limit, the gate's pass condition.
    """
    from scipy import stats

    x, y = _paired_arrays(candidate, other)
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError(f"{name}: operational figures must be positive to compare as ratios")
    logs = np.log(x) - np.log(y)
    delta, se, n, df = _mean_diff_se(logs, np.zeros_like(logs), None)
    half = float(stats.t.ppf(0.975, df)) * se
    bound = math.log1p(limit)
    return Comparison(
        name=name,
        method="paired t on log ratios",
        n=n,
        delta=math.expm1(delta),
        ci_low=math.expm1(delta - half),
        ci_high=math.expm1(delta + half),
        p_value=float(2.0 * stats.t.sf(abs(delta) / se, df)),
        margin=float(limit),
        p_value_margin=float(stats.t.cdf((delta - bound) / se, df)),
        se=se,
    )
