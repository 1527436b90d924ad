"""The promotion gate: may this candidate replace the champion, and on what evidence?

The candidate, the champion and the base model are scored on the same items, so every comparison
is paired (registry/stats.py), and every figure is on the scores' 0-1 scale. Three outcomes:

- `reject`: a hard rule failed: a safety probe, a minimum score, a regression beyond the allowed
  margin that the data show with confidence, a rise in generation time or cost beyond its limit
  that the data show, or (for the first model) no clear gain over the base model.
- `promote`: every rule passed: the first model beats the base model by `min_gain_over_base`;
  a candidate against a champion is shown non-inferior on every watched metric (one-sided test
  against the margin, Holm-corrected across metrics), or has the champion's very weights and prompt.
- `needs-approval`: nothing failed, but the eval set cannot tell: the interval straddles a margin,
  fewer than `min_items` items were scored, or the paired differences have no spread to judge. A
  release manager decides; `on_inconclusive: reject` turns this into a rejection.

What the gate reads is `tasks.evaluate.results.EvalResults`; what it returns is a `GateDecision`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from configs.schema import GateConfig, MetricRule
from registry import stats
from registry.stats import Comparison, NoSpread
from tasks.evaluate.corpus import corpus_bleu
from tasks.evaluate.results import EvalResults
from tasks.evaluate.suites import BINARY_METRICS

CORPUS_METRICS = {"bleu"}  # compared by paired bootstrap over per-item n-gram statistics
EVIDENCE_FIELDS = ("delta", "ci_low", "ci_high", "p_value", "p_adjusted", "mde")


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None


@dataclass
class GateDecision:
    decision: str  # "promote", "reject" or "needs-approval"
    checks: list[Check] = field(default_factory=list)
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.decision == "promote"

    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for gate.json, the card and the flow's return value (a comparison's unset fields left out)."""
        return {
            "decision": self.decision,
            "checks": [asdict(c) for c in self.checks],
            "comparisons": {name: c.to_dict() for name, c in self.comparisons.items()},
        }

    def evidence(self) -> dict[str, dict[str, float]]:
        """Effect, interval and p of every comparison, as the audit log records them."""
        return {
            k: {f: getattr(c, f) for f in ("delta", "ci_low", "ci_high", "p_value")}
            for k, c in self.comparisons.items()
        }

    def tags(self) -> dict[str, str]:
        """Per-metric evidence as model-version tags: gate.<suite>.<metric>.delta / ci_low / ci_high / p_value ..."""
        out = {"gate.decision": self.decision}
        for name, comp in self.comparisons.items():
            key = name.replace("/", ".")
            for field_name in EVIDENCE_FIELDS:
                value = getattr(comp, field_name)
                if value is not None:
                    out[f"gate.{key}.{field_name}"] = f"{value:.4f}"
        return out


def compare(results: EvalResults, key: str, other: str, margin: float) -> Comparison:
    """The candidate against `other` on one `suite/metric`; raises NoSpread where nothing can be judged."""
    suite, metric = key.split("/", 1)
    mine, theirs = results.of("candidate")[suite], results.of(other)[suite]
    if metric in CORPUS_METRICS:
        return stats.corpus_comparison(key, mine.bleu_stats, theirs.bleu_stats, corpus_bleu, margin)
    groups = mine.groups
    clusters = groups if groups and 1 < len(set(groups)) < len(groups) else None
    return stats.summarise_comparison(
        key,
        results.scores("candidate", key),
        results.scores(other, key),
        binary=metric in BINARY_METRICS,
        margin=margin,
        clusters=clusters,
    )


def too_few_items(policy: GateConfig, results: EvalResults, key: str) -> str | None:
    """Why `key` cannot be judged on this eval set's size, or None."""
    n = results.of("candidate")[key.split("/", 1)[0]].n
    if n < policy.min_items:
        return f"{key}: only {n} items were scored; the gate needs at least gate.min_items={policy.min_items}"
    return None


def same_model(results: EvalResults, suite: str, other: str) -> bool:
    """The candidate is the other's very weights, prompt and number format on this suite: same answers."""
    theirs = results.of(other).get(suite)
    mine = results.of("candidate")[suite].model_key
    return bool(mine) and theirs is not None and mine == theirs.model_key


def non_inferiority(
    policy: GateConfig, results: EvalResults, other: str, label: str = "vs_champion", by_identity: bool = True
) -> tuple[dict[str, Comparison], list[Check], list[str]]:
    """The candidate against `other` on every rule: one-sided tests at each margin, Holm across rules.

    A rule fails when the whole interval lies below -max_regression (a regression beyond the margin
    the data show), passes when non-inferiority is shown, and is open otherwise: too few items, no
    spread, or an interval that straddles the margin. With `by_identity`, a candidate that is the
    other's very model (same key) passes without statistics: its answers are the other's. The
    promotion gate asks this of a challenger against the champion; the monitor asks it of the
    champion now against the champion when it was promoted, without `by_identity`, since finding
    out whether the same weights still answer the same is what it is for.
    """
    checks: list[Check] = []
    open_questions: list[str] = []
    comparisons: dict[str, Comparison] = {}
    rules: dict[str, MetricRule] = {}
    for key, rule in policy.rule_map().items():
        if by_identity and same_model(results, key.split("/", 1)[0], other):
            checks.append(Check(f"{key}.{label}", True, f"the same model as the {other} (weights, prompt, precision)"))
            continue
        short = too_few_items(policy, results, key)
        if short:
            open_questions.append(short)
            continue
        try:
            comparisons[key] = compare(results, key, other, margin=-rule.max_regression)
        except NoSpread as why:
            open_questions.append(f"{key}: {why}")
            continue
        rules[key] = rule
    adjusted = stats.holm({k: c.p_value_margin for k, c in comparisons.items()}, alpha=policy.alpha)
    for key, comp in comparisons.items():
        margin = rules[key].max_regression
        comp.p_adjusted = float(adjusted[key]["p_adjusted"])
        span = f"delta {comp.delta:+.3f} [{comp.ci_low:+.3f}, {comp.ci_high:+.3f}]"
        evidence = (comp.delta, comp.ci_low, comp.ci_high, comp.p_value)
        if comp.ci_high < -margin:
            checks.append(
                Check(f"{key}.{label}", False, f"{span} is a regression beyond the margin -{margin:.3f}", *evidence)
            )
        elif adjusted[key]["reject"]:
            detail = f"{span}: non-inferior at margin -{margin:.3f} (Holm p={comp.p_adjusted:.4f})"
            checks.append(Check(f"{key}.{label}", True, detail, *evidence))
        else:
            mde = f", minimum detectable effect {comp.mde:.3f}" if comp.mde else ""
            open_questions.append(
                f"{key}: {span} cannot rule out a regression beyond -{margin:.3f} (Holm p={comp.p_adjusted:.4f}{mde})"
            )
    return comparisons, checks, open_questions


def decide(policy: GateConfig, results: EvalResults) -> GateDecision:
    checks: list[Check] = []
    comparisons: dict[str, Comparison] = {}
    open_questions: list[str] = []
    candidate = results.of("candidate")
    for key in {policy.primary, *policy.rule_map()}:  # a rule on a suite or metric that was not run is a config error
        suite, metric = key.split("/", 1)
        if metric not in CORPUS_METRICS:
            results.scores("candidate", key)
        elif suite not in candidate or not candidate[suite].bleu_stats:
            raise ValueError(f"gate rule '{key}': suite '{suite}' has no reference texts for corpus {metric}")

    checks += _safety_checks(policy, results)
    checks += _min_value_checks(policy, results)
    open_questions += [short for key in policy.rule_map() if (short := too_few_items(policy, results, key))]

    if "champion" in results:
        found, rule_checks, questions = non_inferiority(policy, results, "champion")
        comparisons |= found
        checks += rule_checks
        open_questions += questions
        if policy.require_improvement:
            open_questions += _improvement_question(policy, results)
        ops_comparisons, ops_checks, ops_questions = _ops_checks(policy, results)
        comparisons |= ops_comparisons
        checks += ops_checks
        open_questions += ops_questions
    if "base" in results:
        # The first model must beat the base; against a champion the gain is shown, not required.
        gain, gain_checks, gain_questions = _gain_over_base(policy, results, required="champion" not in results)
        comparisons |= gain
        checks += gain_checks
        open_questions += gain_questions

    open_questions = list(dict.fromkeys(open_questions))  # a small eval set is named once, not per rule
    if any(not c.passed for c in checks):
        decision = "reject"
    elif open_questions:
        decision = policy.on_inconclusive
        checks += [Check("inconclusive", policy.on_inconclusive != "reject", text) for text in open_questions]
    else:
        decision = "promote"
    return GateDecision(decision, checks, comparisons)


def _safety_checks(policy: GateConfig, results: EvalResults) -> list[Check]:
    safety = results.of("candidate").get("safety")
    probes = safety.probes if safety else {}
    checks = []
    for kind in policy.safety_must_pass:
        tally = probes.get(kind)
        if tally is None:
            checks.append(Check(f"safety.{kind}", False, "no probes of this kind were run (add the safety suite)"))
            continue
        detail = f"{tally.passed}/{tally.total} probes passed"
        checks.append(Check(f"safety.{kind}", tally.all_passed, detail, value=tally.passed / max(tally.total, 1)))
    return checks


def _min_value_checks(policy: GateConfig, results: EvalResults) -> list[Check]:
    checks = []
    for rule in policy.rules:
        if rule.min_value is None:
            continue
        suite, metric = rule.metric.split("/", 1)
        mean = results.of("candidate")[suite].means[metric]
        detail = f"{mean:.3f} vs minimum {rule.min_value:.3f}"
        checks.append(Check(f"{rule.metric}.min_value", mean >= rule.min_value, detail, value=mean))
    return checks


def _gain_over_base(
    policy: GateConfig, results: EvalResults, required: bool
) -> tuple[dict[str, Comparison], list[Check], list[str]]:
    """One-sided test of "better than the base by more than min_gain_over_base" on the primary metric."""
    key, name = policy.primary, f"{policy.primary}.gain_over_base"
    short = too_few_items(policy, results, key)
    if short:
        return {}, [], [short] if required else []
    try:
        comp = compare(results, key, "base", margin=policy.min_gain_over_base)
    except NoSpread as why:
        return {}, [], [f"{name}: {why}"] if required else []
    found = {f"{key}.vs_base": comp}
    if not required:
        return found, [], []
    gain_ok = comp.p_value_margin < policy.alpha
    detail = (
        f"gain {comp.delta:+.3f} [{comp.ci_low:+.3f}, {comp.ci_high:+.3f}], one-sided p={comp.p_value_margin:.4f}; "
        f"needs >= {policy.min_gain_over_base:+.3f} at alpha {policy.alpha}"
    )
    return found, [Check(name, gain_ok, detail, comp.delta, comp.ci_low, comp.ci_high, comp.p_value_margin)], []


def _improvement_question(policy: GateConfig, results: EvalResults) -> list[str]:
    key = policy.primary
    if same_model(results, key.split("/", 1)[0], "champion"):
        return [f"{key}: no improvement can be shown: the candidate is the champion's own model"]
    if too_few_items(policy, results, key):
        return []  # already an open question
    try:
        comp = compare(results, key, "champion", margin=0.0)
    except NoSpread as why:
        return [f"{key}: no improvement can be shown ({why})"]
    if comp.p_value_margin >= policy.alpha:
        return [f"{key}: no significant improvement over the champion (one-sided p={comp.p_value_margin:.4f})"]
    return []


def timed_pairs(results: EvalResults, figure: str) -> tuple[list[float], list[float], str]:
    """Seconds or dollars per batch of the candidate and the champion: the same items, timed in one run.

    Returns both lists, paired, and why batches were left out (untimed, timed in another run, or
    holding other items).
    """
    attr = {"latency": "seconds", "cost": "cost_usd"}[figure]
    mine, theirs, left_out = [], [], []
    for suite, cand in results.of("candidate").items():
        champ = results.of("champion").get(suite)
        if champ is None or not cand.batches:
            continue
        if cand.timed_in != champ.timed_in:
            left_out.append(f"{suite}: timed in different runs")
            continue
        by_index = {b.index: b for b in champ.batches}
        for batch in cand.batches:
            other = by_index.get(batch.index)
            if other is None or other.ids != batch.ids:
                left_out.append(f"{suite} batch {batch.index}: not timed for both on the same items")
                continue
            mine.append(getattr(batch, attr))
            theirs.append(getattr(other, attr))
    return mine, theirs, "; ".join(left_out)


def _ops_checks(policy: GateConfig, results: EvalResults) -> tuple[dict[str, Comparison], list[Check], list[str]]:
    """Generation time and cost of the candidate against the champion's, paired batch by batch.

    Judged like quality: a rise shown beyond the limit rejects, a rise shown below it passes, and an
    interval that straddles the limit, or too few batches to tell, asks for approval.
    """
    comparisons, checks, questions = {}, [], []
    if all(same_model(results, suite, "champion") for suite in results.of("candidate")):
        return comparisons, checks, questions  # the same model: the same cost, whatever the clock says
    for figure, limit in policy.ops_limits().items():
        mine, theirs, left_out = timed_pairs(results, figure)
        name = f"ops.{figure}"
        note = f" (left out: {left_out})" if left_out else ""
        if len(mine) < 2:
            questions.append(
                f"{name}: {len(mine)} batch(es) timed for both models in this run; at least 2 are needed "
                f"(more items, or a smaller eval.batch_size){note}"
            )
            continue
        try:
            comp = stats.relative_rise(name, mine, theirs, limit)
        except NoSpread as why:
            questions.append(f"{name}: {why}{note}")
            continue
        comparisons[name] = comp
        span = f"rise {comp.delta:+.0%} [{comp.ci_low:+.0%}, {comp.ci_high:+.0%}] over {comp.n} batches"
        evidence = (comp.delta, comp.ci_low, comp.ci_high, comp.p_value)
        if comp.ci_low > limit:
            checks.append(Check(name, False, f"{span} is beyond the limit +{limit:.0%}{note}", *evidence))
        elif comp.p_value_margin < policy.alpha:
            checks.append(Check(name, True, f"{span}: below the limit +{limit:.0%}{note}", *evidence))
        else:
            questions.append(
                f"{name}: {span} cannot rule out a rise beyond +{limit:.0%} (p={comp.p_value_margin:.4f}){note}"
            )
    return comparisons, checks, questions
