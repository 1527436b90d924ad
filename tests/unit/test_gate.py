"""The promotion gate's rules, on paired per-item scores."""

from __future__ import annotations

import pytest

from configs.schema import GateConfig
from registry.gate import decide, paired_delta


def test_paired_delta_and_interval():
    mean, lo, hi = paired_delta([1, 1, 1, 0], [0, 1, 0, 0])
    assert mean == pytest.approx(0.5) and lo < 0.5 < hi
    with pytest.raises(ValueError, match="equal"):
        paired_delta([1], [1, 0])


def test_first_model_must_beat_base():
    cfg = GateConfig(min_gain_over_base=0.1)
    assert decide(cfg, [1, 1, 0, 0], [1, 0, 0, 0], None).decision == "promote"
    result = decide(cfg, [1, 0, 0, 0], [1, 0, 0, 0], None)
    assert result.decision == "reject"
    assert result.reasons() == ["exact_match.gain_over_base = +0.000 (needs >= +0.100)"]


def test_worse_than_champion_is_rejected():
    cfg = GateConfig(min_gain_over_base=0.0, min_delta_vs_champion=0.0)
    result = decide(cfg, [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0])
    assert result.decision == "reject"
    check = {c.name: c for c in result.checks}["exact_match.delta_vs_champion"]
    assert check.value == pytest.approx(-0.25) and not check.passed and check.ci_low < check.value


def test_min_value():
    assert decide(GateConfig(min_value=0.9, min_gain_over_base=-1), [1, 0], [0, 0], None).decision == "reject"
