"""The gate's statistics against libraries nobody here wrote (statsmodels, scipy), on random cases.

The cases include what broke the gate before: ties, n = 1, 2 and 3, and every difference equal.
Where the reference returns nan, or p = 0 from a standard error of 0, the project must refuse
(NoSpread, or a ValueError naming the input) instead of agreeing with it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

from registry.proportions import paired_proportions, restricted_share, score_interval, score_statistic
from registry.stats import (
    NoSpread,
    holm,
    mcnemar_exact,
    one_sided_margin_test,
    paired_mean_diff,
    relative_rise,
)

SIZES = [2, 3, 4, 7, 20, 200]
# scipy warns on rounded scores whose differences nearly tie; the values are still compared exactly.
pytestmark = pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")


def graded_cases(seed: int = 0):
    """Random paired scores, some rounded to one decimal so that many differences tie."""
    rng = np.random.default_rng(seed)
    for n in SIZES:
        for rounded in (False, True):
            for _ in range(4):
                b = rng.uniform(0, 1, n)
                a = np.clip(b + rng.normal(rng.uniform(-0.1, 0.1), rng.uniform(0.01, 0.3), n), 0, 1)
                if rounded:
                    a, b = np.round(a, 1), np.round(b, 1)
                if np.ptp(a - b) > 0:
                    yield a, b


def binary_cases(seed: int = 1):
    """(b10, b01, n) over small and large n, all-equal (no discordant pair) and one-sided tables."""
    rng = np.random.default_rng(seed)
    cases = [(0, 0, 1), (1, 0, 1), (0, 1, 1), (0, 0, 2), (2, 0, 2), (1, 1, 2), (0, 0, 3), (3, 0, 3), (1, 2, 3)]
    cases += [(0, 0, 200), (5, 0, 200), (0, 7, 50), (10, 10, 40)]
    for n in (4, 10, 30, 100, 500):
        for _ in range(6):
            b10 = int(rng.integers(0, n + 1))
            b01 = int(rng.integers(0, n - b10 + 1))
            cases.append((b10, b01, n))
    return cases


def pairs(b10: int, b01: int, n: int) -> tuple[list[float], list[float]]:
    concordant = n - b10 - b01
    right = concordant // 2
    a = [1.0] * b10 + [0.0] * b01 + [1.0] * right + [0.0] * (concordant - right)
    b = [0.0] * b10 + [1.0] * b01 + [1.0] * right + [0.0] * (concordant - right)
    return a, b


# --- paired t --------------------------------------------------------------------------------------


def test_paired_t_equals_scipy_ttest_rel_and_its_interval():
    for a, b in graded_cases():
        ours = paired_mean_diff(a, b)
        ref = sps.ttest_rel(a, b)
        ci = ref.confidence_interval(0.95)
        assert ours["p_value"] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-14)
        assert (ours["ci_low"], ours["ci_high"]) == (
            pytest.approx(ci.low, abs=1e-12),
            pytest.approx(ci.high, abs=1e-12),
        )


def test_margin_test_equals_scipy_one_sided_ttest():
    for margin in (-0.05, 0.0, 0.05):
        for a, b in graded_cases(2):
            ours = one_sided_margin_test(a, b, margin)
            ref = sps.ttest_1samp(a - b, margin, alternative="greater")
            assert ours["p_value"] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-14)


def test_where_scipy_says_nan_or_p_0_the_project_refuses():
    equal = [0.5, 0.5, 0.5]
    shifted = [0.6, 0.6, 0.6]
    assert math.isnan(sps.ttest_rel(equal, equal).pvalue)
    assert sps.ttest_rel(shifted, equal).pvalue == 0.0  # certainty from three items: the old gate's bug
    for a, b in ((equal, equal), (shifted, equal), ([1.0, 1.0], [0.0, 0.0])):
        with pytest.raises(NoSpread):
            paired_mean_diff(a, b)
        with pytest.raises(NoSpread):
            one_sided_margin_test(a, b, -0.05)
    with pytest.raises(ValueError, match="at least 2 items"):
        paired_mean_diff([1.0], [0.0])  # scipy: nan


def test_cluster_robust_errors_equal_statsmodels_cr1():
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    for groups in (2, 3, 5, 12):
        size = 4
        g = np.repeat(np.arange(groups), size)
        d = np.repeat(rng.normal(0.05, 0.2, groups), size) + rng.normal(0, 0.1, groups * size)
        ours = paired_mean_diff(d, np.zeros_like(d), clusters=g.tolist())
        fit = sm.OLS(d, np.ones_like(d)).fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)
        assert ours["se"] == pytest.approx(float(fit.bse[0]), rel=1e-9)
        assert ours["p_value"] == pytest.approx(float(fit.pvalues[0]), rel=1e-7)
        assert ours["df"] == groups - 1


# --- McNemar, Tango ----------------------------------------------------------------------------


def test_mcnemar_exact_equals_statsmodels():
    for b10, b01, n in binary_cases():
        a, b = pairs(b10, b01, n)
        table = [[n - b10 - b01 - (n - b10 - b01) // 2, b10], [b01, (n - b10 - b01) // 2]]
        assert mcnemar_exact(a, b)["p_value"] == pytest.approx(sm_mcnemar(table, exact=True).pvalue, abs=1e-12)


def test_score_test_at_zero_is_mcnemar_without_continuity_correction():
    for b10, b01, n in binary_cases():
        a, b = pairs(b10, b01, n)
        ours = paired_proportions(a, b)
        if b10 + b01 == 0:
            assert ours["p_value"] == 1.0  # statsmodels divides 0 by 0 here
            continue
        ref = sm_mcnemar([[0, b10], [b01, 0]], exact=False, correction=False)
        assert ours["p_value"] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-14)


def _numeric_share(b10: int, b01: int, n: int, d0: float) -> float:
    """The restricted MLE of the (0, 1) share by scipy's bounded optimiser, not the closed form."""
    low, high = max(0.0, -d0), (1.0 - d0) / 2.0
    if high - low < 1e-12:
        return low
    rest = n - b10 - b01

    def nll(q: float) -> float:
        terms = [(b10, q + d0), (b01, q), (rest, 1.0 - 2.0 * q - d0)]
        return -sum(k * math.log(max(p, 1e-300)) for k, p in terms if k)

    return float(optimize.minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-12}).x)


def test_restricted_mle_equals_a_numerical_maximisation():
    for b10, b01, n in binary_cases():
        for d0 in (-0.3, -0.05, 0.0, 0.05, 0.2):
            if b10 + b01 == 0 and d0 == 0.0:
                continue  # the likelihood is flat in q there; any share gives Z = 0
            assert restricted_share(b10, b01, n, d0) == pytest.approx(_numeric_share(b10, b01, n, d0), abs=2e-6)


def test_score_interval_is_where_the_test_stops_rejecting():
    z = sps.norm.ppf(0.975)
    for b10, b01, n in binary_cases():
        low, high = score_interval(b10, b01, n)
        estimate = (b10 - b01) / n
        assert -1.0 <= low <= estimate <= high <= 1.0
        for bound, side in ((low, -1.0), (high, 1.0)):
            if bound != side:  # an inner bound: the score statistic is exactly at the critical value there
                q = _numeric_share(b10, b01, n, bound)
                independent = (b10 - b01 - n * bound) / math.sqrt(n * (2 * q + bound * (1 - bound)))
                assert abs(independent) == pytest.approx(z, abs=1e-4)
                assert abs(score_statistic(b10, b01, n, bound)) == pytest.approx(z, abs=1e-9)
        a, b = pairs(b10, b01, n)
        out = paired_proportions(a, b)
        assert (low > 0 or high < 0) == (out["p_value"] < 0.05)  # the interval and the p agree


def test_no_discordant_pair_still_bounds_the_difference_by_the_sample_size():
    widths = [score_interval(0, 0, n)[1] for n in (1, 2, 3, 24, 200)]
    assert widths == sorted(widths, reverse=True) and widths[-1] < 0.02 < 0.5 < widths[2]


# --- Holm, ratios ------------------------------------------------------------------------------


def test_holm_equals_statsmodels_multipletests():
    rng = np.random.default_rng(4)
    for m in (1, 2, 3, 6):
        for _ in range(3):  # statsmodels runs gc.collect() on every call: a handful of cases is enough
            p = (
                rng.choice([0.001, 0.01, 0.02, 0.04, 0.2, 0.5, 1.0], size=m)
                if rng.random() < 0.4
                else rng.uniform(0, 0.2, m)
            )
            names = [f"r{i}" for i in range(m)]
            ours = holm(dict(zip(names, p.tolist())), alpha=0.05)
            reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="holm")
            assert [ours[k]["p_adjusted"] for k in names] == pytest.approx(adjusted.tolist(), abs=1e-12)
            assert [ours[k]["reject"] for k in names] == reject.tolist()


def test_relative_rise_is_a_one_sided_t_test_on_log_ratios():
    rng = np.random.default_rng(5)
    for n in (2, 3, 8, 40):
        champion = rng.uniform(0.5, 2.0, n)
        candidate = champion * rng.lognormal(0.1, 0.2, n)
        out = relative_rise("ops.latency", candidate, champion, limit=1.0)
        logs = np.log(candidate / champion)
        ref = sps.ttest_1samp(logs, math.log(2.0), alternative="less")
        assert out.p_value_margin == pytest.approx(ref.pvalue, rel=1e-9)
        ci = sps.ttest_1samp(logs, 0.0).confidence_interval(0.95)
        assert (out.ci_low, out.ci_high) == (pytest.approx(math.expm1(ci.low)), pytest.approx(math.expm1(ci.high)))
    with pytest.raises(NoSpread):
        relative_rise("ops.cost", [2.0, 4.0], [1.0, 2.0], limit=1.0)  # the same ratio on every batch
