"""The promotion gate's decisions on paired per-item scores (the statistics are real, the scores small)."""

from __future__ import annotations

import random

import pytest

from configs.schema import GateConfig, MetricRule
from registry.gate import bleu_from_stats, decide

SAFE = {
    "probes": {
        "prompt_injection": {"passed": 8, "total": 8, "all_passed": True},
        "pii_leak": {"passed": 4, "total": 4, "all_passed": True},
    }
}


def suite(scores: list[float], latency: float = 0.1) -> dict:
    return {
        "n": len(scores),
        "scores": {"exact_match": scores},
        "ops": {"latency_p95_s": latency, "cost_per_1k_queries": 1.0},
    }


def bernoulli(p: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [1.0 if rng.random() < p else 0.0 for _ in range(n)]


def test_first_model_must_clearly_beat_base():
    base = bernoulli(0.1, 200, 1)
    good = {
        "candidate": {"arithmetic": suite(bernoulli(0.6, 200, 2)), "safety": SAFE},
        "base": {"arithmetic": suite(base)},
    }
    assert decide(GateConfig(), good).decision == "promote"
    same = {"candidate": {"arithmetic": suite(base), "safety": SAFE}, "base": {"arithmetic": suite(base)}}
    result = decide(GateConfig(), same)
    assert result.decision == "reject"
    assert any(r.startswith("arithmetic/exact_match.gain_over_base") for r in result.reasons())


def test_worse_than_champion_is_rejected_with_statistics():
    champion = bernoulli(0.7, 300, 3)
    worse = [0.0 if i % 3 == 0 else s for i, s in enumerate(champion)]  # loses a third of its right answers
    results = {
        "candidate": {"arithmetic": suite(worse), "safety": SAFE},
        "champion": {"arithmetic": suite(champion)},
        "base": {"arithmetic": suite(bernoulli(0.05, 300, 4))},
    }
    result = decide(GateConfig(), results)
    assert result.decision == "reject"
    comp = result.comparisons["arithmetic/exact_match"]
    assert (
        comp["delta"] < -0.2 and comp["ci_high"] < -0.05 and comp["b01"] > 0 and comp["b10"] == 0
    )  # b01: candidate wrong, champion right
    tags = result.tags()
    assert tags["gate.decision"] == "reject" and float(tags["gate.arithmetic.exact_match.ci_high"]) < 0


def test_identical_model_is_non_inferior_and_promoted():
    champion = bernoulli(0.6, 200, 5)
    results = {
        "candidate": {"arithmetic": suite(champion), "safety": SAFE},
        "champion": {"arithmetic": suite(champion)},
        "base": {"arithmetic": suite(bernoulli(0.05, 200, 6))},
    }
    assert decide(GateConfig(), results).decision == "promote"


def test_small_eval_set_is_inconclusive_and_asks_for_approval():
    champion = [1.0, 0.0] * 10
    candidate = [0.0, 1.0, 1.0, 0.0] * 5  # same accuracy, different items: cannot rule out a regression
    results = {
        "candidate": {"arithmetic": suite(candidate), "safety": SAFE},
        "champion": {"arithmetic": suite(champion)},
    }
    result = decide(GateConfig(), results)
    assert result.decision == "needs-approval"
    assert any("minimum detectable effect" in c.detail for c in result.checks if c.name == "inconclusive")
    assert decide(GateConfig(on_inconclusive="reject"), results).decision == "reject"


def test_safety_failure_and_latency_rise_reject():
    champion = bernoulli(0.6, 100, 7)
    unsafe = {"probes": SAFE["probes"] | {"pii_leak": {"passed": 3, "total": 4, "all_passed": False}}}
    results = {
        "candidate": {"arithmetic": suite(champion), "safety": unsafe},
        "champion": {"arithmetic": suite(champion)},
    }
    assert "safety.pii_leak: 3/4 probes passed" in decide(GateConfig(), results).reasons()
    slow = {
        "candidate": {"arithmetic": suite(champion, latency=0.5), "safety": SAFE},
        "champion": {"arithmetic": suite(champion, latency=0.1)},
    }
    reasons = decide(GateConfig(max_latency_increase=0.5), slow).reasons()
    assert any(r.startswith("arithmetic.latency_p95_s") for r in reasons)


def test_min_value_and_missing_suite_errors():
    results = {"candidate": {"arithmetic": suite([1.0, 0.0, 0.0, 0.0]), "safety": SAFE}}
    cfg = GateConfig(rules={"arithmetic/exact_match": MetricRule(min_value=0.5)})
    assert decide(cfg, results).reasons() == ["arithmetic/exact_match.min_value: 0.250 vs minimum 0.500"]
    with pytest.raises(ValueError, match="suites evaluated"):
        decide(GateConfig(primary="json-format/json_valid", rules={"json-format/json_valid": MetricRule()}), results)


def test_primary_needs_a_rule():
    with pytest.raises(ValueError, match="needs an entry in rules"):
        GateConfig(primary="x/y")


def test_corpus_bleu_from_stats_matches_sacrebleu():
    import sacrebleu

    hyps, refs = (
        ["the cat sat on the mat", "a dog ran in the park today", "a cat"],
        ["the cat sat on a mat", "a dog ran in the park", "the cat"],
    )
    bleu = sacrebleu.metrics.BLEU()
    rows = [bleu._extract_corpus_statistics([h], [[r]])[0] for h, r in zip(hyps, refs)]
    assert bleu_from_stats(rows) == pytest.approx(bleu.corpus_score(hyps, [refs]).score, abs=1e-6)


def test_corpus_bleu_rule_uses_paired_bootstrap():
    from tasks.evaluate.run import bleu_stats

    refs = [f"the answer is {i} because {i} apples were left" for i in range(40)]
    good = bleu_stats(refs, refs)
    bad = bleu_stats([f"answer {i}" for i in range(40)], refs)

    def res(stats):
        return {"n": 40, "scores": {"exact_match": [1.0] * 40}, "bleu_stats": stats}

    cfg = GateConfig(rules={"arithmetic/exact_match": MetricRule(), "arithmetic/bleu": MetricRule(max_regression=1.0)})
    worse = decide(cfg, {"candidate": {"arithmetic": res(bad), "safety": SAFE}, "champion": {"arithmetic": res(good)}})
    comp = worse.comparisons["arithmetic/bleu"]
    assert comp["method"] == "paired bootstrap" and comp["delta"] < -50 and comp["ci_high"] < -1.0
    assert worse.decision == "reject"
