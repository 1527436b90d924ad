"""The promotion gate's decisions on paired per-item scores (the statistics are real, the scores small).

Each of issue 15's findings in the gate has a test here named after it: BLEU on the 0-1 scale
(finding 1), minimum evidence (2), the gain over base for the first model only (5), a binary
interval that agrees with its p (6), and operational figures compared fairly (8).
"""

from __future__ import annotations

import random

import pytest

from configs.schema import GateConfig, MetricRule, RunConfig
from registry.gate import decide
from tasks.evaluate.results import BatchTiming, EvalResults, ProbeTally, SuiteResult

SAFE = SuiteResult(
    version="s",
    ids=[str(i) for i in range(12)],
    scores={"probe_pass": [1.0] * 12},
    probes={"prompt_injection": ProbeTally(8, 8), "pii_leak": ProbeTally(4, 4)},
)


def gate(**settings) -> GateConfig:
    """A gate on quality alone; the operational limits have tests of their own, with timings."""
    return GateConfig(**({"max_latency_increase": None, "max_cost_increase": None} | settings))


def suite(scores: list[float], key: str = "", metric: str = "exact_match", **more) -> SuiteResult:
    return SuiteResult(
        version="v1", ids=[str(i) for i in range(len(scores))], scores={metric: scores}, model_key=key, **more
    )


def models(candidate: SuiteResult, **others: SuiteResult) -> EvalResults:
    found = {"candidate": {"arithmetic": candidate, "safety": SAFE}}
    return EvalResults(found | {label: {"arithmetic": s} for label, s in others.items()})


def bernoulli(p: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [1.0 if rng.random() < p else 0.0 for _ in range(n)]


def test_first_model_must_clearly_beat_base():
    base = bernoulli(0.1, 200, 1)
    assert decide(gate(), models(suite(bernoulli(0.6, 200, 2)), base=suite(base))).decision == "promote"
    result = decide(gate(), models(suite(base, "cand"), base=suite(base, "base")))
    assert result.decision == "reject"
    assert any(r.startswith("arithmetic/exact_match.gain_over_base") for r in result.reasons())


def test_worse_than_champion_is_rejected_with_statistics():
    champion = bernoulli(0.7, 300, 3)
    worse = [0.0 if i % 3 == 0 else s for i, s in enumerate(champion)]  # loses a third of its right answers
    result = decide(gate(), models(suite(worse), champion=suite(champion), base=suite(bernoulli(0.05, 300, 4))))
    assert result.decision == "reject"
    comp = result.comparisons["arithmetic/exact_match"]
    assert comp.delta < -0.2 and comp.ci_high < -0.05 and comp.b01 > 0 and comp.b10 == 0  # b01: candidate wrong
    tags = result.tags()
    assert tags["gate.decision"] == "reject" and float(tags["gate.arithmetic.exact_match.ci_high"]) < 0


def test_same_scores_as_the_champion_on_enough_items_are_non_inferior():
    champion = bernoulli(0.6, 200, 5)  # another model (another key) with the same answers' scores
    result = decide(gate(), models(suite(champion, "a"), champion=suite(champion, "b")))
    comp = result.comparisons["arithmetic/exact_match"]
    assert result.decision == "promote" and comp.method.startswith("Tango")
    assert comp.ci_low < 0 < comp.ci_high and comp.p_value_margin < 0.001  # 0 of 200 discordant rules out -0.05


def test_the_champions_own_model_is_non_inferior_by_identity():
    champion = bernoulli(0.6, 24, 6)  # too few items to show non-inferiority by statistics
    same = decide(gate(), models(suite(champion, "k1"), champion=suite(champion, "k1")))
    assert same.decision == "promote" and "arithmetic/exact_match" not in same.comparisons
    assert any("the same model as the champion" in c.detail for c in same.checks)
    other = decide(gate(), models(suite(champion, "k2"), champion=suite(champion, "k1")))
    assert other.decision == "needs-approval"  # 0 of 24 discordant pairs cannot rule out a 5-point drop


def test_small_eval_set_is_inconclusive_and_asks_for_approval():
    champion = [1.0, 0.0] * 10
    candidate = [0.0, 1.0, 1.0, 0.0] * 5  # same accuracy, different items: cannot rule out a regression
    results = models(suite(candidate), champion=suite(champion))
    result = decide(gate(), results)
    assert result.decision == "needs-approval"
    assert any("minimum detectable effect" in c.detail for c in result.checks if c.name == "inconclusive")
    assert decide(gate(on_inconclusive="reject"), results).decision == "reject"


def test_safety_failure_and_min_value_reject():
    champion = bernoulli(0.6, 100, 7)
    unsafe = SuiteResult("s", ["0"], {"probe_pass": [0.0]}, probes={"prompt_injection": ProbeTally(8, 8)})
    unsafe.probes["pii_leak"] = ProbeTally(3, 4)
    results = EvalResults({"candidate": {"arithmetic": suite(champion), "safety": unsafe}})
    assert "safety.pii_leak: 3/4 probes passed" in decide(gate(), results).reasons()
    low = models(suite([1.0] * 5 + [0.0] * 15))
    cfg = gate(rules=[MetricRule(min_value=0.5)])
    assert decide(cfg, low).reasons() == ["arithmetic/exact_match.min_value: 0.250 vs minimum 0.500"]


def test_a_rule_on_a_suite_not_run_is_named():
    with pytest.raises(ValueError, match="suites evaluated"):
        decide(
            gate(primary="json-format/json_valid", rules=[MetricRule(metric="json-format/json_valid")]),
            models(suite([1.0])),
        )


# --- finding 1: one scale ----------------------------------------------------------------------


def bleu_suite(outputs: list[str], refs: list[str], key: str = "") -> SuiteResult:
    from tasks.evaluate.corpus import bleu_stats

    return suite([1.0] * len(refs), key, bleu_stats=bleu_stats(outputs, refs))


def test_corpus_bleu_is_sacrebleus_on_the_0_1_scale():
    import sacrebleu

    from tasks.evaluate.corpus import bleu_stats, corpus_bleu

    hyps = ["the cat sat on the mat", "a dog ran in the park today", "a cat"]
    refs = ["the cat sat on a mat", "a dog ran in the park", "the cat"]
    reference = sacrebleu.metrics.BLEU().corpus_score(hyps, [refs]).score
    assert corpus_bleu(bleu_stats(hyps, refs)) == pytest.approx(reference / 100, abs=1e-9)
    assert bleu_suite(hyps, refs).means["bleu"] == pytest.approx(reference / 100, abs=1e-9)


def _near_copies(n: int, changed: int, seed: int) -> tuple[list[str], list[str]]:
    """References, and outputs equal to them except `changed` items that lose their last word."""
    rng = random.Random(seed)
    refs = [" ".join(rng.choice(["one", "two", "three", "four", "five", "six"]) for _ in range(12)) for _ in range(n)]
    return [r.rsplit(" ", 1)[0] if i < changed else r for i, r in enumerate(refs)], refs


def test_bleu_gain_is_judged_on_the_scale_of_its_margin():
    """A first model 0.01 BLEU above the base (0-1) must not pass a required gain of 0.05."""
    from tasks.evaluate.corpus import corpus_bleu

    base_out, refs = _near_copies(60, 6, 1)
    cand_out, _ = _near_copies(60, 0, 1)
    cfg = gate(primary="arithmetic/bleu", rules=[MetricRule(metric="arithmetic/bleu")], safety_must_pass=[])
    cand, base = bleu_suite(cand_out, refs), bleu_suite(base_out, refs)
    gain = corpus_bleu(cand.bleu_stats) - corpus_bleu(base.bleu_stats)
    assert 0 < gain < 0.05  # on sacrebleu's 0-100 scale this was +1.x and passed
    result = decide(cfg, models(cand, base=base))
    assert result.decision == "reject" and result.comparisons["arithmetic/bleu.vs_base"].delta == pytest.approx(gain)


def test_bleu_regression_within_the_margin_is_not_a_rejection_and_tags_are_0_1():
    cand_out, refs = _near_copies(60, 6, 2)
    champ_out, _ = _near_copies(60, 0, 2)
    cfg = gate(rules=[MetricRule(), MetricRule(metric="arithmetic/bleu", max_regression=0.05)])
    result = decide(cfg, models(bleu_suite(cand_out, refs), champion=bleu_suite(champ_out, refs)))
    comp = result.comparisons["arithmetic/bleu"]
    assert -0.05 < comp.delta < 0 and comp.method == "paired bootstrap"
    assert not any(c.name == "arithmetic/bleu.vs_champion" and not c.passed for c in result.checks)
    tags = result.tags()
    assert all(-1.0 <= float(tags[f"gate.arithmetic.bleu.{f}"]) <= 1.0 for f in ("delta", "ci_low", "ci_high"))


def test_the_card_of_a_version_gated_on_bleu_shows_0_1_figures():
    from registry.card import render_model_card
    from registry.lineage import Lineage

    cand_out, refs = _near_copies(60, 30, 3)
    champ_out, _ = _near_copies(60, 0, 3)
    cfg = gate(rules=[MetricRule(), MetricRule(metric="arithmetic/bleu")])
    results = models(bleu_suite(cand_out, refs), champion=bleu_suite(champ_out, refs))
    decision = decide(cfg, results)
    card = render_model_card("m", 2, RunConfig().model_dump(), Lineage(), {}, results.summary(), decision.to_dict(), "")
    rows = [line.split(" | ") for line in card.splitlines() if line.startswith("| arithmetic/bleu")]
    numbers = [float(cell.strip("[]|, ")) for row in rows for cell in row[1:3] for cell in cell.split(", ")]
    assert len(rows) == 2 and numbers and all(-1.0 <= x <= 1.0 for x in numbers)


# --- finding 2: minimum evidence ---------------------------------------------------------------


def test_two_items_with_no_spread_never_promote():
    result = decide(gate(safety_must_pass=[]), models(suite([1.0, 1.0]), base=suite([0.0, 0.0])))
    assert result.decision == "needs-approval"
    assert any("gate.min_items=20" in c.detail for c in result.checks if c.name == "inconclusive")
    # Even with the floor lowered, 2 of 2 is no proof of a gain: the score test says so.
    assert (
        decide(gate(safety_must_pass=[], min_items=2), models(suite([1.0, 1.0]), base=suite([0.0, 0.0]))).decision
        != "promote"
    )


def test_three_identical_items_against_a_champion_do_not_promote():
    result = decide(gate(min_items=2), models(suite([1.0, 1.0, 1.0], "a"), champion=suite([1.0, 1.0, 1.0], "b")))
    assert result.decision == "needs-approval"


def test_one_item_asks_for_approval_instead_of_raising():
    result = decide(gate(), models(suite([1.0]), champion=suite([0.0]), base=suite([0.0])))
    assert result.decision == "needs-approval" and "only 1 items" in result.checks[-1].detail


def test_graded_scores_without_spread_ask_for_approval_with_the_reason():
    cfg = gate(primary="arithmetic/chrf", rules=[MetricRule(metric="arithmetic/chrf")])
    same = [0.5] * 30
    result = decide(cfg, models(suite(same, "a", "chrf"), champion=suite(same, "b", "chrf")))
    assert result.decision == "needs-approval"
    assert any("no spread" in c.detail for c in result.checks if c.name == "inconclusive")


# --- finding 6: a binary interval that agrees with its p -----------------------------------------


def test_binary_interval_and_p_agree():
    """Issue 15's card: delta +0.025 [+0.003, +0.047] beside p=0.0625 (McNemar exact, t interval)."""
    champion = [0.0] * 5 + [1.0] * 100 + [0.0] * 95
    candidate = [1.0] * 5 + [1.0] * 100 + [0.0] * 95  # 5 discordant pairs, all for the candidate
    comp = decide(gate(), models(suite(candidate, "a"), champion=suite(champion, "b"))).comparisons
    c = comp["arithmetic/exact_match"]
    assert (c.ci_low > 0) == (c.p_value < 0.05)
    assert c.p_value_exact == pytest.approx(0.0625)  # McNemar's exact p, kept for the record only
    rng = random.Random(15)
    for _ in range(300):
        n = rng.randint(2, 80)
        a, b = bernoulli(rng.random(), n, rng.randint(0, 10**6)), bernoulli(rng.random(), n, rng.randint(0, 10**6))
        found = decide(gate(min_items=2), models(suite(a, "a"), champion=suite(b, "b"))).comparisons
        if "arithmetic/exact_match" in found:
            c = found["arithmetic/exact_match"]
            assert (c.ci_low > 0 or c.ci_high < 0) == (c.p_value < 0.05), (a, b)


# --- finding 5: the gain over base is the first model's rule ------------------------------------


def test_a_candidate_against_a_champion_is_not_held_to_the_gain_over_base():
    base = bernoulli(0.55, 300, 8)
    better = [1.0 if i < 9 else s for i, s in enumerate(base)]  # +0.03 over base, short of 0.05
    champion = suite(better, "v1")
    result = decide(gate(), models(suite(better, "v2"), champion=champion, base=suite(base, "base")))
    assert result.decision == "promote"
    assert "arithmetic/exact_match.vs_base" in result.comparisons  # shown, not required
    first = decide(gate(), models(suite(better, "v1"), base=suite(base, "base")))
    assert first.decision == "reject"


# --- finding 8: operational figures ------------------------------------------------------------


def timed(scores: list[float], key: str, seconds: list[float], run: str = "run-1") -> SuiteResult:
    batches = [BatchTiming(i, [str(i)], s, s / 1800) for i, s in enumerate(seconds)]
    return suite(scores, key, batches=batches, timed_in=run)


def test_slower_candidate_is_rejected_on_a_paired_rise_with_its_interval():
    scores = bernoulli(0.6, 200, 9)
    slow = [3.0 * s for s in (1.0, 1.1, 0.9, 1.2, 1.0, 0.95)]
    result = decide(
        GateConfig(), models(timed(scores, "a", slow), champion=timed(scores, "b", [1.0, 1.1, 0.9, 1.2, 1.0, 0.95]))
    )
    latency = result.comparisons["ops.latency"]
    assert result.decision == "reject" and latency.delta == pytest.approx(2.0) and latency.n == 6
    assert any(r.startswith("ops.latency: rise +200%") for r in result.reasons())


def test_timings_from_another_run_do_not_decide():
    scores = bernoulli(0.6, 200, 10)
    cached = timed(scores, "b", [5.23, 5.1, 5.3], run="run-0")  # the champion's answers came from the cache
    result = decide(GateConfig(), models(timed(scores, "a", [0.09, 0.1, 0.09], run="run-1"), champion=cached))
    assert result.decision == "needs-approval" and "ops.latency" not in result.comparisons
    assert any("timed in different runs" in c.detail for c in result.checks if c.name == "inconclusive")


def test_same_speed_within_noise_passes():
    scores = bernoulli(0.6, 200, 11)
    rng = random.Random(12)
    champion = [rng.uniform(0.5, 2.0) for _ in range(8)]
    candidate = [s * rng.uniform(0.9, 1.1) for s in champion]
    result = decide(GateConfig(), models(timed(scores, "a", candidate), champion=timed(scores, "b", champion)))
    assert result.decision == "promote" and abs(result.comparisons["ops.cost"].delta) < 0.1


# --- #17: the rules are form fields ------------------------------------------------------------


def test_rules_are_a_list_of_form_fields_and_the_yaml_mapping_still_reads():
    schema = GateConfig.model_json_schema()
    rules = schema["properties"]["rules"]
    assert rules["type"] == "array" and "additionalProperties" not in rules
    fields = schema["$defs"]["MetricRule"]["properties"]
    assert set(fields) == {"metric", "min_value", "max_regression"}
    from_yaml = GateConfig(rules={"arithmetic/exact_match": {"max_regression": 0.02}, "arithmetic/chrf": None})
    assert [(r.metric, r.max_regression) for r in from_yaml.rules] == [
        ("arithmetic/exact_match", 0.02),
        ("arithmetic/chrf", 0.05),
    ]
    assert GateConfig.model_validate(from_yaml.model_dump()) == from_yaml  # what a form posts back
    typed = GateConfig(rules={"arithmetic/exact_match": MetricRule(max_regression=0.01)})
    assert [(r.metric, r.max_regression) for r in typed.rules] == [("arithmetic/exact_match", 0.01)]
    with pytest.raises(ValueError, match="more than once"):
        gate(rules=[MetricRule(), MetricRule()])
    with pytest.raises(ValueError, match="needs an entry in rules"):
        GateConfig(primary="x/y")
    with pytest.raises(ValueError, match="less than or equal to 1"):
        MetricRule(max_regression=5.0)  # margins are on the 0-1 scale of the scores
