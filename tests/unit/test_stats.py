"""registry.stats against values worked out here by hand, by scipy, or by simulation with fixed seeds."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats as sps

from registry.stats import (
    NoSpread,
    holm,
    mcnemar_exact,
    minimum_detectable_effect,
    one_sided_margin_test,
    paired_bootstrap,
    paired_mean_diff,
    summarise_comparison,
)


def _binary_pairs(b01: int, b10: int, both_right: int = 5, both_wrong: int = 5) -> tuple[list[int], list[int]]:
    a = [0] * b01 + [1] * b10 + [1] * both_right + [0] * both_wrong
    b = [1] * b01 + [0] * b10 + [1] * both_right + [0] * both_wrong
    return a, b


# --- McNemar -----------------------------------------------------------------------------------


def test_mcnemar_matches_the_binomial_tail_worked_by_hand():
    a, b = _binary_pairs(b01=2, b10=8)
    out = mcnemar_exact(a, b)
    by_hand = 2 * (math.comb(10, 0) + math.comb(10, 1) + math.comb(10, 2)) / 2**10
    assert (out["b01"], out["b10"], out["n_discordant"]) == (2, 8, 10)
    assert out["p_value"] == pytest.approx(by_hand) == pytest.approx(0.109375)
    assert out["p_value"] == pytest.approx(sps.binomtest(2, 10, 0.5).pvalue)


def test_mcnemar_is_symmetric_and_capped_at_one():
    a, b = _binary_pairs(b01=2, b10=8)
    swapped = mcnemar_exact(b, a)
    assert (swapped["b01"], swapped["b10"]) == (8, 2)
    assert swapped["p_value"] == mcnemar_exact(a, b)["p_value"]
    assert mcnemar_exact(*_binary_pairs(b01=3, b10=3))["p_value"] == 1.0


def test_identical_scores_give_no_difference_and_no_false_certainty():
    a = [1, 0, 1, 1, 0, 1, 0, 0]
    mc = mcnemar_exact(a, list(a))
    assert (mc["b01"], mc["b10"], mc["p_value"]) == (0, 0, 1.0)
    # A t interval of width 0 and p = 1 (or p = 0 for a constant non-zero difference) would claim a
    # certainty 8 items cannot give: the t test refuses, naming why.
    with pytest.raises(NoSpread, match="all 8 paired differences equal"):
        paired_mean_diff(a, list(a))
    with pytest.raises(NoSpread):
        one_sided_margin_test([1.0, 1.0], [0.0, 0.0], margin=0.05)


def test_mcnemar_rejects_graded_scores():
    with pytest.raises(ValueError, match="0/1 scores"):
        mcnemar_exact([0.5, 1.0], [1.0, 0.0])


# --- paired mean difference --------------------------------------------------------------------


def test_paired_mean_diff_matches_scipy_paired_t_test():
    rng = np.random.default_rng(1)
    b = rng.uniform(0, 1, 40)
    a = b + rng.normal(0.05, 0.1, 40)
    out = paired_mean_diff(a.tolist(), b.tolist(), confidence=0.9)
    ref = sps.ttest_rel(a, b)
    d = a - b
    se = d.std(ddof=1) / math.sqrt(40)
    half = sps.t.ppf(0.95, 39) * se
    assert out["n"] == 40 and out["df"] == 39
    assert out["delta"] == pytest.approx(d.mean())
    assert out["se"] == pytest.approx(se)
    assert out["p_value"] == pytest.approx(ref.pvalue)
    assert (out["ci_low"], out["ci_high"]) == (pytest.approx(d.mean() - half), pytest.approx(d.mean() + half))


def test_interval_covers_the_true_delta_in_most_simulations():
    rng = np.random.default_rng(2024)
    true_delta, hits = 0.1, 0
    for _ in range(200):
        b = rng.binomial(1, 0.6, 60).astype(float)
        a = b + rng.normal(true_delta, 0.5, 60)
        out = paired_mean_diff(a, b)
        hits += out["ci_low"] <= true_delta <= out["ci_high"]
    assert hits / 200 >= 0.90


def test_cluster_robust_se_grows_when_items_in_a_cluster_move_together():
    rng = np.random.default_rng(3)
    per_cluster = rng.normal(0.0, 1.0, 20)
    d = np.repeat(per_cluster, 10)  # 20 clusters of 10 identical differences
    clusters = np.repeat([f"doc{i}" for i in range(20)], 10).tolist()
    b = np.zeros_like(d)
    iid = paired_mean_diff(d, b)
    robust = paired_mean_diff(d, b, clusters=clusters)
    # CR1 by hand: sum within-cluster residual totals, square, scale by G/(G-1) / n^2.
    totals = 10 * (per_cluster - d.mean())
    by_hand = math.sqrt(20 / 19 * np.sum(totals**2) / 200**2)
    assert robust["se"] == pytest.approx(by_hand)
    assert robust["se"] > 2.5 * iid["se"]  # about sqrt(10) times larger
    assert robust["df"] == 19 and robust["delta"] == pytest.approx(iid["delta"])


def test_singleton_clusters_reduce_to_iid_up_to_the_small_sample_factors():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.1, 1, 50), rng.normal(0, 1, 50)
    iid = paired_mean_diff(a, b)
    robust = paired_mean_diff(a, b, clusters=list(range(50)))
    assert robust["se"] == pytest.approx(iid["se"])  # n/(n-1) from CR1 matches ddof=1


def test_bad_inputs_say_what_to_fix():
    with pytest.raises(ValueError, match="equal length"):
        paired_mean_diff([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="one group id per item"):
        paired_mean_diff([1, 2, 3], [1, 2, 2], clusters=["x", "y"])
    with pytest.raises(ValueError, match="at least 2 clusters"):
        paired_mean_diff([1, 2, 3], [1, 2, 2], clusters=["x", "x", "x"])


# --- one-sided margin test ---------------------------------------------------------------------


def test_non_inferiority_passes_a_small_regression_inside_the_margin():
    rng = np.random.default_rng(5)
    b = rng.uniform(0, 1, 400)
    a = b + rng.normal(-0.01, 0.05, 400)
    inside = one_sided_margin_test(a, b, margin=-0.05)
    superiority = one_sided_margin_test(a, b, margin=0.0)
    assert inside["p_value"] < 0.001 and superiority["p_value"] > 0.5
    d = a - b
    t_stat = (d.mean() + 0.05) / (d.std(ddof=1) / math.sqrt(400))
    assert inside["p_value"] == pytest.approx(sps.t.sf(t_stat, 399))
    assert inside["margin"] == -0.05 and inside["delta"] == pytest.approx(d.mean())


def test_margin_test_is_half_the_two_sided_p_at_zero_margin():
    rng = np.random.default_rng(6)
    a, b = rng.normal(0.2, 1, 80), rng.normal(0, 1, 80)
    two_sided = paired_mean_diff(a, b)
    assert two_sided["delta"] > 0
    assert one_sided_margin_test(a, b, 0.0)["p_value"] == pytest.approx(two_sided["p_value"] / 2)


# --- Holm --------------------------------------------------------------------------------------


def test_holm_on_known_p_values():
    out = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert list(out) == ["a", "b", "c"]
    assert {k: v["p_adjusted"] for k, v in out.items()} == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})
    assert {k: v["reject"] for k, v in out.items()} == {"a": True, "b": False, "c": False}


def test_holm_is_monotone_and_capped():
    capped = holm({"x": 0.6, "y": 0.7, "z": 0.001, "w": 0.02})
    # z: 4*0.001; w: 3*0.02; x: 2*0.6 capped at 1; y: 1*0.7 lifted to 1 by monotonicity.
    assert {k: v["p_adjusted"] for k, v in capped.items()} == pytest.approx({"x": 1.0, "y": 1.0, "z": 0.004, "w": 0.06})
    lifted = holm({"p1": 0.01, "p2": 0.011, "p3": 0.02})
    # raw products 0.03, 0.022, 0.02 fall; step-down keeps the running maximum.
    assert [v["p_adjusted"] for v in lifted.values()] == pytest.approx([0.03, 0.03, 0.03])
    assert holm({}) == {}


# --- paired bootstrap --------------------------------------------------------------------------


def test_bootstrap_of_the_mean_agrees_with_the_t_interval():
    rng = np.random.default_rng(7)
    b = rng.binomial(1, 0.55, 500).astype(float)
    a = np.where(rng.uniform(size=500) < 0.15, 1 - b, b)  # flip 15 % of answers
    boot = paired_bootstrap(a, b, np.mean, n_resamples=4000, seed=0)
    t = paired_mean_diff(a, b)
    assert boot["delta"] == pytest.approx(t["delta"])
    assert boot["ci_low"] <= boot["delta"] <= boot["ci_high"]
    assert abs(boot["ci_low"] - t["ci_low"]) < 0.02 and abs(boot["ci_high"] - t["ci_high"]) < 0.02
    assert boot["n_resamples"] == 4000


def test_general_path_sees_the_same_resamples_as_the_vectorised_path():
    rng = np.random.default_rng(8)
    a, b = rng.uniform(size=60).tolist(), rng.uniform(size=60).tolist()
    fast = paired_bootstrap(a, b, statistics.fmean, n_resamples=300, seed=11)
    slow = paired_bootstrap(a, b, lambda xs: sum(xs) / len(xs), n_resamples=300, seed=11)
    for key in ("delta", "ci_low", "ci_high", "p_value"):
        assert slow[key] == pytest.approx(fast[key])


def test_bootstrap_of_a_corpus_metric_over_items():
    # A BLEU-like ratio: total matches over total length, not a mean of per-item ratios.
    def corpus_precision(items: list[tuple[int, int]]) -> float:
        return sum(m for m, _ in items) / sum(t for _, t in items)

    rng = np.random.default_rng(9)
    lengths = rng.integers(5, 30, 200)
    champion = [(int(rng.binomial(t, 0.5)), int(t)) for t in lengths]
    challenger = [(min(t, m + int(rng.binomial(t, 0.1))), t) for m, t in champion]
    out = paired_bootstrap(challenger, champion, corpus_precision, n_resamples=500, seed=0)
    assert out["delta"] == pytest.approx(corpus_precision(challenger) - corpus_precision(champion))
    assert 0 < out["ci_low"] <= out["delta"] <= out["ci_high"]
    assert out["p_value"] == pytest.approx(2 / 501)  # no resample flips sign; +1 keeps p above 0


def test_bootstrap_refuses_identical_lists_and_gives_a_large_p_for_noise():
    a = [0.1, 0.5, 0.9, 0.3]
    with pytest.raises(NoSpread):
        paired_bootstrap(a, list(a), None, n_resamples=200)
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=300), rng.normal(size=300)
    noise = paired_bootstrap(x, y, np.mean, n_resamples=2000, seed=1)
    assert noise["p_value"] == pytest.approx(paired_mean_diff(x, y)["p_value"], abs=0.05)


# --- minimum detectable effect -----------------------------------------------------------------


def test_mde_shrinks_with_the_square_root_of_n():
    for kw in ({"paired_discordance": 0.2}, {"sd": 0.4}, {"baseline_rate": 0.7}):
        small, big = minimum_detectable_effect(100, **kw), minimum_detectable_effect(400, **kw)
        assert small / big == pytest.approx(2.0)


def test_mde_formulas_and_their_precedence():
    z = 1.959964 + 0.841621
    assert minimum_detectable_effect(400, paired_discordance=0.16) == pytest.approx(z * 0.02, rel=1e-5)
    assert minimum_detectable_effect(100, sd=0.5) == pytest.approx(z * 0.05, rel=1e-5)
    assert minimum_detectable_effect(200, baseline_rate=0.5) == pytest.approx(z * 0.05, rel=1e-5)
    both = minimum_detectable_effect(400, sd=5.0, paired_discordance=0.16)
    assert both == pytest.approx(z * 0.02, rel=1e-5)
    with pytest.raises(ValueError, match="needs one of"):
        minimum_detectable_effect(100)


# --- summary -----------------------------------------------------------------------------------


def test_summary_for_binary_scores_uses_the_score_test_and_its_interval():
    from registry.proportions import paired_proportions

    a, b = _binary_pairs(b01=2, b10=8, both_right=30, both_wrong=10)
    out = summarise_comparison("exact_match", a, b, binary=True, margin=-0.02)
    score = paired_proportions(a, b, margin=-0.02)
    assert out.name == "exact_match" and out.n == 50 and out.method.startswith("Tango")
    assert (out.ci_low, out.ci_high, out.p_value) == (score["ci_low"], score["ci_high"], score["p_value"])
    assert out.p_value_margin == score["p_value_margin"]
    assert (out.b01, out.b10) == (2, 8) and out.p_value_exact == pytest.approx(0.109375)
    assert out.mde == pytest.approx(minimum_detectable_effect(50, paired_discordance=10 / 50))


def test_summary_for_graded_scores_and_clusters():
    rng = np.random.default_rng(12)
    b = rng.uniform(size=120)
    a = b + np.repeat(rng.normal(0.02, 0.1, 12), 10)
    clusters = np.repeat(np.arange(12), 10).tolist()
    plain = summarise_comparison("rougeL", a, b, binary=False)
    robust = summarise_comparison("rougeL", a, b, binary=False, clusters=clusters)
    assert plain.p_value == pytest.approx(paired_mean_diff(a, b)["p_value"])
    assert plain.mde == pytest.approx(minimum_detectable_effect(120, sd=float(np.std(a - b, ddof=1))))
    assert robust.n_clusters == 12
    assert robust.se > plain.se and robust.mde > plain.mde
    assert plain.b01 is None and "b01" not in plain.to_dict()


# --- one model's mean with an interval inside the score's range ---------------------------------

from tasks.evaluate.intervals import bootstrap_mean_interval, clopper_pearson_interval, mean_interval, wilson_interval  # noqa: E402


def test_one_success_in_200_keeps_the_lower_bound_at_or_above_zero():
    scores = [1.0] + [0.0] * 199
    old = paired_mean_diff(scores, [0.0] * 200)  # the t interval the issue reported: [-0.005, 0.015]
    assert old["ci_low"] < 0
    out = mean_interval(scores, binary=True)
    assert out["mean"] == pytest.approx(0.005) and out["n"] == 200 and out["method"] == "wilson"
    assert 0.0 <= out["ci_low"] < 0.005 < out["ci_high"] <= 1.0
    exact = mean_interval(scores, binary=True, binary_method="clopper-pearson")
    assert 0.0 <= exact["ci_low"] < out["ci_low"] and exact["method"] == "clopper-pearson"


@pytest.mark.parametrize(
    "successes,n", [(0, 200), (1, 200), (3, 200), (100, 200), (199, 200), (200, 200), (1, 1), (7, 12)]
)
def test_wilson_and_exact_intervals_match_scipy(successes, n):
    ref = sps.binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(successes, n) == pytest.approx((ref.low, ref.high), abs=1e-12)
    ref = sps.binomtest(successes, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson_interval(successes, n) == pytest.approx((ref.low, ref.high), abs=1e-12)
    for low, high in (wilson_interval(successes, n), clopper_pearson_interval(successes, n)):
        assert 0.0 <= low <= successes / n <= high <= 1.0


def test_wilson_covers_a_small_true_rate_in_most_simulations():
    rng = np.random.default_rng(3)
    p, n = 0.01, 200
    hits = 0
    for x in rng.binomial(n, p, size=2000):
        low, high = wilson_interval(int(x), n)
        hits += low <= p <= high
    assert 0.90 <= hits / 2000 <= 0.99  # nominal 95 %; Wilson oscillates around it for small p


def test_graded_scores_get_a_bootstrap_interval_inside_the_range():
    scores = [0.0] * 199 + [0.9]  # a t interval of these reaches below 0
    out = mean_interval(scores, binary=False)
    assert out["method"].startswith("percentile bootstrap")
    assert 0.0 <= out["ci_low"] < out["mean"] < out["ci_high"] <= 1.0
    assert paired_mean_diff(scores, [0.0] * 200)["ci_low"] < 0 <= out["ci_low"]
    # the same seed gives the same interval; the interval of the mean is close to the t interval on symmetric data
    assert mean_interval(scores, binary=False) == out
    sym = np.random.default_rng(0).uniform(0.3, 0.7, size=400)
    boot, t = bootstrap_mean_interval(sym), paired_mean_diff(sym, [0.0] * 400)
    assert boot == pytest.approx((t["ci_low"], t["ci_high"]), abs=0.003)


def test_interval_edge_cases_and_bad_input():
    assert mean_interval([1.0], binary=True)["ci_low"] > 0.0  # Wilson is defined for one item
    one = mean_interval([0.4], binary=False)
    assert (one["mean"], one["ci_low"], one["ci_high"]) == (0.4, None, None)
    same = mean_interval([0.5] * 20, binary=False)
    assert same["ci_low"] == same["ci_high"] == 0.5
    unbounded = mean_interval([120.0, 250.0, 90.0], binary=False, bounds=None)  # a latency in ms
    assert 90.0 <= unbounded["ci_low"] <= unbounded["ci_high"] <= 250.0
    with pytest.raises(ValueError, match="no scores"):
        mean_interval([], binary=True)
    with pytest.raises(ValueError, match="0/1 scores"):
        mean_interval([0.5, 1.0], binary=True)
    with pytest.raises(ValueError, match="outside the metric's range"):
        mean_interval([0.5, 1.5], binary=False)
    with pytest.raises(ValueError, match="binary_method"):
        mean_interval([0.0, 1.0], binary=True, binary_method="wald")


def test_wilson_bounds_contain_the_observed_share_exactly_at_the_edges():
    from tasks.evaluate.intervals import mean_interval, wilson_interval

    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    for k in range(0, 11):
        low, high = wilson_interval(k, 10)
        assert low <= k / 10 <= high
    zero = mean_interval([0.0] * 10, binary=True)
    assert zero["ci_low"] == 0.0 <= zero["mean"] <= zero["ci_high"]
