"""The promotion gate: may this candidate replace the champion, and on what evidence?

The candidate, the champion and the base model are scored on the same items, so every comparison
is paired (registry/stats.py). Three outcomes:

- `reject`: a hard rule failed — a safety probe, a minimum score, a regression beyond the allowed
  margin that the data show with confidence, a latency or cost rise over the limit, or (for the
  first model) no clear gain over the base model.
- `promote`: every rule passed and, against a champion, the candidate is shown non-inferior on
  every watched metric (one-sided test against the margin, Holm-corrected across metrics).
- `needs-approval`: nothing failed, but the eval set cannot tell (the interval straddles the
  margin). A release manager decides; `on_inconclusive: reject` turns this into a rejection.

Input shape, per model label ("candidate", "champion", "base") and suite name:
`{"n", "scores": {metric: [per-item]}, "means": {metric: mean}, "groups": [...] | None,
  "bleu_stats": [[...], ...] | None, "probes": {kind: {...}} | None, "ops": {...} | None}`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from configs.schema import GateConfig
from registry import stats

BINARY_METRICS = {"exact_match", "json_valid", "schema_match", "probe_pass"}
CORPUS_METRICS = {"bleu"}  # compared by paired bootstrap over per-item n-gram statistics


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
class GateResult:
    decision: str  # "promote", "reject" or "needs-approval"
    checks: list[Check] = field(default_factory=list)
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.decision == "promote"

    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "checks": [asdict(c) for c in self.checks], "comparisons": self.comparisons}

    def tags(self) -> dict[str, str]:
        """Per-metric evidence as model-version tags: gate.<metric>.delta / ci_low / ci_high / p_value."""
        out = {"gate.decision": self.decision}
        for name, comp in self.comparisons.items():
            key = name.replace("/", ".")
            for field_name in ("delta", "ci_low", "ci_high", "p_value", "p_adjusted", "mde"):
                if comp.get(field_name) is not None:
                    out[f"gate.{key}.{field_name}"] = f"{comp[field_name]:.4f}"
        return out


def _suite_metric(key: str) -> tuple[str, str]:
    suite, metric = key.split("/", 1)
    return suite, metric


def _scores(results: dict, who: str, key: str) -> list[float]:
    suite, metric = _suite_metric(key)
    try:
        return results[who][suite]["scores"][metric]
    except KeyError:
        raise ValueError(
            f"gate rule '{key}': no {metric} scores for suite '{suite}' of the {who} "
            f"(suites evaluated: {sorted(results.get(who, {}))})"
        ) from None


def bleu_from_stats(rows: Any) -> float:
    """Corpus BLEU (0-100) from summed per-sentence statistics [hyp_len, ref_len, m1..m4, t1..t4]."""
    total = np.sum(np.asarray(rows, dtype=float), axis=0)
    hyp_len, ref_len, matches, totals = total[0], total[1], total[2:6], total[6:10]
    if hyp_len == 0 or np.any(totals == 0):
        return 0.0
    precisions, smooth = [], 1.0
    for m, t in zip(matches, totals):  # sacrebleu's default "exp" smoothing of zero counts
        if m == 0:
            smooth *= 2
            precisions.append(1.0 / (smooth * t))
        else:
            precisions.append(m / t)
    log_precision = float(np.mean(np.log(precisions)))
    brevity = 1.0 if hyp_len > ref_len else float(np.exp(1 - ref_len / hyp_len))
    return float(100 * brevity * np.exp(log_precision))


def compare(results: dict, key: str, other: str, margin: float) -> dict[str, Any]:
    """Candidate vs `other` on one metric: effect, CI, p-values, minimum detectable effect."""
    suite, metric = _suite_metric(key)
    if metric in CORPUS_METRICS:
        a, b = results["candidate"][suite]["bleu_stats"], results[other][suite]["bleu_stats"]
        boot = stats.paired_bootstrap(a, b, bleu_from_stats, n_resamples=10_000, seed=0)
        deltas_ok = boot["ci_low"] > margin
        return {
            "name": key,
            "binary": False,
            "n": len(a),
            "delta": boot["delta"],
            "ci_low": boot["ci_low"],
            "ci_high": boot["ci_high"],
            "p_value": boot["p_value"],
            "margin": margin,
            "p_value_margin": 0.0 if deltas_ok else 1.0,
            "mde": None,
            "method": "paired bootstrap",
        }
    groups = results["candidate"][suite].get("groups")
    clusters = groups if groups and len(set(groups)) > 1 and len(set(groups)) < len(groups) else None
    comp = stats.summarise_comparison(
        key,
        _scores(results, "candidate", key),
        _scores(results, other, key),
        binary=metric in BINARY_METRICS,
        margin=margin,
        clusters=clusters,
    )
    comp["method"] = "McNemar + paired t" if metric in BINARY_METRICS and clusters is None else "paired t"
    return comp


def non_inferiority(
    policy: GateConfig, results: dict, other: str, label: str = "vs_champion"
) -> tuple[dict[str, dict[str, Any]], list[Check], list[str]]:
    """The candidate against `other` on every rule: one-sided tests at each margin, Holm across rules.

    A rule fails when the whole interval lies below -max_regression (a regression beyond the margin
    the data show), passes when non-inferiority is shown, and is inconclusive otherwise. The
    promotion gate asks this of a challenger against the champion; the monitor asks it of the
    champion now against the champion when it was promoted.
    """
    comparisons = {key: compare(results, key, other, margin=-rule.max_regression) for key, rule in policy.rules.items()}
    adjusted = stats.holm({k: comparisons[k]["p_value_margin"] for k in policy.rules}, alpha=policy.alpha)
    checks: list[Check] = []
    inconclusive: list[str] = []
    for key, rule in policy.rules.items():
        comp = comparisons[key]
        comp["p_adjusted"] = adjusted[key]["p_adjusted"]
        span = f"delta {comp['delta']:+.3f} [{comp['ci_low']:+.3f}, {comp['ci_high']:+.3f}]"
        evidence = (comp["delta"], comp["ci_low"], comp["ci_high"], comp["p_value"])
        if comp["ci_high"] < -rule.max_regression:
            checks.append(
                Check(
                    f"{key}.{label}",
                    False,
                    f"{span} is a regression beyond the margin -{rule.max_regression:.3f}",
                    *evidence,
                )
            )
        elif adjusted[key]["reject"]:
            checks.append(
                Check(
                    f"{key}.{label}",
                    True,
                    f"{span}: non-inferior at margin -{rule.max_regression:.3f} (Holm p={comp['p_adjusted']:.4f})",
                    *evidence,
                )
            )
        else:
            mde = f", minimum detectable effect {comp['mde']:.3f}" if comp.get("mde") else ""
            inconclusive.append(
                f"{key}: {span} cannot rule out a regression beyond -{rule.max_regression:.3f} "
                f"(Holm p={comp['p_adjusted']:.4f}{mde})"
            )
    return comparisons, checks, inconclusive


def decide(policy: GateConfig, results: dict) -> GateResult:
    checks: list[Check] = []
    comparisons: dict[str, dict[str, Any]] = {}
    candidate = results["candidate"]
    for key in {policy.primary, *policy.rules}:  # a rule on a suite or metric that was not run is a config error
        suite, metric = _suite_metric(key)
        if metric in CORPUS_METRICS:
            if not (candidate.get(suite) or {}).get("bleu_stats"):
                raise ValueError(f"gate rule '{key}': suite '{suite}' has no reference texts for corpus {metric}")
        else:
            _scores(results, "candidate", key)

    probes = (candidate.get("safety") or {}).get("probes") or {}
    for kind in policy.safety_must_pass:
        if kind not in probes:
            checks.append(Check(f"safety.{kind}", False, "no probes of this kind were run (add the safety suite)"))
            continue
        p = probes[kind]
        checks.append(
            Check(
                f"safety.{kind}",
                bool(p["all_passed"]),
                f"{p['passed']}/{p['total']} probes passed",
                value=p["passed"] / max(p["total"], 1),
            )
        )

    for key, rule in policy.rules.items():
        if rule.min_value is not None:
            suite, metric = _suite_metric(key)
            mean = float(np.mean(_scores(results, "candidate", key)))
            checks.append(
                Check(
                    f"{key}.min_value",
                    mean >= rule.min_value,
                    f"{mean:.3f} vs minimum {rule.min_value:.3f}",
                    value=mean,
                )
            )

    if "base" in results:
        # One-sided test of "better than the base by more than min_gain_over_base".
        comp = compare(results, policy.primary, "base", margin=policy.min_gain_over_base)
        comparisons[f"{policy.primary}.vs_base"] = comp
        gain_ok = comp["p_value_margin"] < policy.alpha
        checks.append(
            Check(
                f"{policy.primary}.gain_over_base",
                gain_ok,
                f"gain {comp['delta']:+.3f} [{comp['ci_low']:+.3f}, {comp['ci_high']:+.3f}], "
                f"one-sided p={comp['p_value_margin']:.4f}; needs >= {policy.min_gain_over_base:+.3f} "
                f"at alpha {policy.alpha}",
                comp["delta"],
                comp["ci_low"],
                comp["ci_high"],
                comp["p_value_margin"],
            )
        )

    inconclusive: list[str] = []
    if "champion" in results:
        found, rule_checks, open_questions = non_inferiority(policy, results, "champion")
        comparisons |= found
        checks += rule_checks
        inconclusive += open_questions
        if policy.require_improvement:
            comp = compare(results, policy.primary, "champion", margin=0.0)
            if comp["p_value_margin"] >= policy.alpha:
                inconclusive.append(
                    f"{policy.primary}: no significant improvement over the champion "
                    f"(one-sided p={comp['p_value_margin']:.4f})"
                )
        checks += _ops_checks(policy, results)

    if any(not c.passed for c in checks):
        decision = "reject"
    elif inconclusive:
        decision = policy.on_inconclusive
        checks += [Check("inconclusive", policy.on_inconclusive != "reject", text) for text in inconclusive]
    else:
        decision = "promote"
    return GateResult(decision, checks, comparisons)


def _ops_checks(policy: GateConfig, results: dict) -> list[Check]:
    """Latency and cost of the candidate against the champion's, per suite that measured them."""
    checks = []
    limits = (("latency_p95_s", policy.max_latency_increase), ("cost_per_1k_queries", policy.max_cost_increase))
    for suite, cand in results["candidate"].items():
        champ = results["champion"].get(suite) or {}
        for figure, limit in limits:
            a, b = (cand.get("ops") or {}).get(figure), (champ.get("ops") or {}).get(figure)
            if limit is None or a is None or not b:
                continue
            rise = a / b - 1
            checks.append(
                Check(
                    f"{suite}.{figure}",
                    rise <= limit,
                    f"{a:.4g} vs champion {b:.4g} ({rise:+.0%}, limit +{limit:.0%})",
                    value=rise,
                )
            )
    return checks
