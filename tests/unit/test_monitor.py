"""The monitor judges the champion the way the gate judged it: margins, Holm, intervals."""

from __future__ import annotations

import numpy as np

from configs.schema import GateConfig, MetricRule
from tasks.evaluate.results import EvalResults, SuiteResult


def suite(scores: list[float], version: str = "v1", key: str = "champion-weights") -> SuiteResult:
    return SuiteResult(
        version=version, ids=[str(i) for i in range(len(scores))], scores={"exact_match": scores}, model_key=key
    )


def baseline_and_drop(dropped: int, n: int = 400, seed: int = 0) -> tuple[dict, dict]:
    """A champion right on 60% of n items; `dropped` of its right answers planted wrong now."""
    rng = np.random.default_rng(seed)
    before = (rng.random(n) < 0.6).astype(float)
    now = before.copy()
    now[rng.choice(np.flatnonzero(before == 1), size=dropped, replace=False)] = 0.0
    return {"arithmetic": suite(before.tolist())}, {"arithmetic": suite(now.tolist())}


POLICY = GateConfig(rules=[MetricRule(max_regression=0.05)], safety_must_pass=[])


def test_a_drop_smaller_than_the_margin_is_not_a_regression():
    from flows.monitor import assess

    baseline, current = baseline_and_drop(dropped=6)  # -1.5 points, margin 5
    (finding,) = assess(POLICY, baseline, current)
    assert finding.delta == -6 / 400 and finding.status == "ok"
    assert finding.ci_high > -0.05 and finding.margin == -0.05


def test_a_drop_larger_than_the_margin_is_a_regression_with_the_gates_evidence():
    from flows.monitor import assess, evidence_tags

    baseline, current = baseline_and_drop(dropped=60)  # -15 points
    (finding,) = assess(POLICY, baseline, current)
    assert finding.status == "regression" and finding.ci_high < -0.05
    assert finding.p_adjusted is not None and finding.mde > 0
    tags = evidence_tags([finding])
    assert tags["monitor.arithmetic.exact_match.status"] == "regression"
    assert {"delta", "ci_low", "ci_high", "p_value", "p_adjusted", "mde"} <= {k.rsplit(".", 1)[1] for k in tags}


def test_the_monitor_and_the_gate_read_the_same_numbers():
    from flows.monitor import assess
    from registry.gate import non_inferiority

    baseline, current = baseline_and_drop(dropped=25)
    current["arithmetic"].model_key = "other"  # the gate's identity shortcut is not the point here
    (finding,) = assess(POLICY, baseline, current)
    comparisons, _, _ = non_inferiority(POLICY, EvalResults({"candidate": current, "champion": baseline}), "champion")
    gate = comparisons["arithmetic/exact_match"]
    assert (finding.delta, finding.ci_low, finding.ci_high, finding.p_adjusted) == (
        gate.delta,
        gate.ci_low,
        gate.ci_high,
        gate.p_adjusted,
    )


def test_the_same_weights_are_judged_on_their_answers_not_their_key():
    """The monitor re-asks the champion's own weights: a changed library or device could change the
    answers, so it compares them, and a handful of unchanged answers proves no absence of a drop."""
    from flows.monitor import assess

    few = [1.0, 0.0, 1.0] * 4  # 12 items, the same answers now as at promotion
    (finding,) = assess(POLICY, {"arithmetic": suite(few)}, {"arithmetic": suite(list(few))})
    assert finding.status == "inconclusive" and "gate.min_items=20" in finding.why
    baseline, current = baseline_and_drop(dropped=60)  # the same key, and yet a drop: caught
    assert assess(POLICY, baseline, current)[0].status == "regression"


def test_a_suite_whose_items_changed_is_skipped_not_compared():
    from flows.monitor import assess

    baseline, current = baseline_and_drop(dropped=60)
    current["arithmetic"].version = "v2"
    (finding,) = assess(POLICY, baseline, current)
    assert finding.status == "skipped"
