"""The promotion gate: may this candidate replace the champion?

The candidate, the base model and the champion are scored on the same eval items, so the gate
compares paired per-item scores. Each rule in the config becomes a check with its value, its
threshold and whether it passed; the decision is `promote` only if every check passed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from configs.schema import GateConfig


@dataclass
class Check:
    name: str
    value: float
    threshold: float
    passed: bool
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass
class GateResult:
    decision: str  # "promote" or "reject"
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.decision == "promote"

    def reasons(self) -> list[str]:
        return [f"{c.name} = {c.value:+.3f} (needs >= {c.threshold:+.3f})" for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        return {"decision": self.decision, "checks": [asdict(c) for c in self.checks]}


def paired_delta(candidate: list[float], other: list[float]) -> tuple[float, float, float]:
    """Mean of per-item differences with a 95 % normal-approximation confidence interval."""
    if len(candidate) != len(other) or not candidate:
        raise ValueError(f"paired scores need equal, non-empty lists (got {len(candidate)} and {len(other)})")
    diffs = [a - b for a, b in zip(candidate, other)]
    n = len(diffs)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    half = 1.96 * math.sqrt(var / n)
    return mean, mean - half, mean + half


def decide(cfg: GateConfig, candidate: list[float], base: list[float], champion: list[float] | None) -> GateResult:
    cand_mean = sum(candidate) / len(candidate)
    checks = [Check(f"{cfg.metric}", cand_mean, cfg.min_value, cand_mean >= cfg.min_value)]
    gain, lo, hi = paired_delta(candidate, base)
    checks.append(Check(f"{cfg.metric}.gain_over_base", gain, cfg.min_gain_over_base, gain >= cfg.min_gain_over_base, lo, hi))
    if champion is not None:
        delta, lo, hi = paired_delta(candidate, champion)
        checks.append(Check(f"{cfg.metric}.delta_vs_champion", delta, cfg.min_delta_vs_champion,
                            delta >= cfg.min_delta_vs_champion, lo, hi))
    return GateResult("promote" if all(c.passed for c in checks) else "reject", checks)
