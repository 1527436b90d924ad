"""The monitor judges the champion the way the gate judged it: margins, Holm, intervals."""

from __future__ import annotations

import numpy as np

from configs.schema import GateConfig, MetricRule


def suite(scores: list[float], version: str = "v1") -> dict:
    return {
        "version": version,
        "n": len(scores),
        "scores": {"exact_match": scores},
        "means": {"exact_match": float(np.mean(scores))},
        "groups": None,
        "bleu_stats": None,
        "probes": None,
        "ops": {},
    }


def baseline_and_drop(dropped: int, n: int = 400, seed: int = 0) -> tuple[dict, dict]:
    """A champion right on 60% of n items; `dropped` of its right answers planted wrong now."""
    rng = np.random.default_rng(seed)
    before = (rng.random(n) < 0.6).astype(float)
    now = before.copy()
    now[rng.choice(np.flatnonzero(before == 1), size=dropped, replace=False)] = 0.0
    return {"arithmetic": suite(before.tolist())}, {"arithmetic": suite(now.tolist())}


POLICY = GateConfig(rules={"arithmetic/exact_match": MetricRule(max_regression=0.05)}, safety_must_pass=[])


def test_a_drop_smaller_than_the_margin_is_not_a_regression():
    from flows.monitor import assess

    baseline, current = baseline_and_drop(dropped=6)  # -1.5 points, margin 5
    (finding,) = assess(POLICY, baseline, current)
    assert finding["delta"] == -6 / 400 and finding["status"] != "regression"
    assert finding["ci_high"] > -0.05 and finding["margin"] == -0.05


def test_a_drop_larger_than_the_margin_is_a_regression_with_the_gates_evidence():
    from flows.monitor import assess, evidence_tags

    baseline, current = baseline_and_drop(dropped=60)  # -15 points
    (finding,) = assess(POLICY, baseline, current)
    assert finding["status"] == "regression" and finding["ci_high"] < -0.05
    assert finding["p_adjusted"] is not None and finding["mde"] > 0
    tags = evidence_tags([finding])
    assert tags["monitor.arithmetic.exact_match.status"] == "regression"
    assert {"delta", "ci_low", "ci_high", "p_value", "p_adjusted", "mde"} <= {k.rsplit(".", 1)[1] for k in tags}


def test_the_monitor_and_the_gate_read_the_same_numbers():
    from flows.monitor import assess
    from registry.gate import non_inferiority

    baseline, current = baseline_and_drop(dropped=25)
    (finding,) = assess(POLICY, baseline, current)
    comparisons, _, _ = non_inferiority(POLICY, {"candidate": current, "champion": baseline}, "champion")
    gate = comparisons["arithmetic/exact_match"]
    assert (finding["delta"], finding["ci_low"], finding["ci_high"], finding["p_adjusted"]) == (
        gate["delta"],
        gate["ci_low"],
        gate["ci_high"],
        gate["p_adjusted"],
    )


def test_a_suite_whose_items_changed_is_skipped_not_compared():
    from flows.monitor import assess

    baseline, current = baseline_and_drop(dropped=60)
    current["arithmetic"]["version"] = "v2"
    (finding,) = assess(POLICY, baseline, current)
    assert finding["status"] == "skipped"
