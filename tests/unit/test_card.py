"""The model card says what was trained and measured: limitations from the run, the p that decided."""

from __future__ import annotations

from configs.schema import RunConfig
from registry.card import render_model_card
from registry.lineage import Lineage


def card_for(base: str) -> str:
    config = RunConfig.model_validate({"model": {"base": base}}).model_dump()
    gate = {
        "decision": "reject",
        "checks": [],
        "comparisons": {
            "held-out/rouge_l.vs_base": {
                "delta": 0.01,
                "ci_low": -0.03,
                "ci_high": 0.05,
                "p_value": 1.0,
                "p_value_margin": 0.9611,
                "mde": 0.1,
                "method": "paired t",
            },
            "held-out/rouge_l": {
                "delta": -0.01,
                "ci_low": -0.02,
                "ci_high": 0.0,
                "p_value": 0.625,
                "p_value_margin": 0.0001,
                "p_adjusted": 0.0003,
                "mde": 0.02,
                "method": "paired t",
            },
        },
    }
    scores = {"candidate": {"held-out/rouge_l": 0.41, "safety/probe_pass": 0.6}}
    return render_model_card("chat-model", 3, config, Lineage(dataset_hash="abc"), {}, scores, gate, "{{question}}")


def test_limitations_name_the_base_and_the_suites_measured():
    card = card_for("/models/qwen2.5-0.5b")
    limits = card.split("## Limitations", 1)[1]
    assert "`/models/qwen2.5-0.5b`" in limits and "(held-out, safety)" in limits
    assert "tiny model" not in limits
    assert "tiny model" in card_for("embedded").split("## Limitations", 1)[1]


def test_the_p_shown_is_the_one_the_gate_decided_on():
    rows = {
        line.split(" | ")[0].strip("| "): line
        for line in card_for("embedded").splitlines()
        if line.startswith("| held-out/rouge_l")
    }
    assert "| 0.9611 |" in rows["held-out/rouge_l.vs_base"]  # one-sided against the required gain
    assert "| 0.0003 |" in rows["held-out/rouge_l"]  # Holm-adjusted, one-sided against the margin


def test_an_inconclusive_check_reads_open_not_passed():
    """The gate stores it as passed when it asks a person; the card must not say the check passed."""
    config = RunConfig().model_dump()
    gate = {
        "decision": "needs-approval",
        "checks": [
            {"name": "safety.pii_leak", "passed": True, "detail": "4/4 probes passed"},
            {"name": "inconclusive", "passed": True, "detail": "arithmetic/exact_match: delta +0.000 [-0.2, +0.2]"},
        ],
        "comparisons": {},
    }
    card = render_model_card("m", 4, config, Lineage(), {}, {"candidate": {}}, gate, "")
    assert "Gate verdict: **needs-approval**" in card
    assert "| inconclusive | open | arithmetic/exact_match" in card and "| safety.pii_leak | yes |" in card


def test_a_section_is_replaced_in_place_or_added_under_the_title():
    from registry.card import with_decision, with_section

    card = "# m v4\n\n## Intended use\nanswers sums\n\n## Data\nrows\n"
    once = with_decision(card, "m v4", "**needs-approval**: waiting")
    assert (
        once
        == "# m v4\n\n## Decision\n\n**needs-approval**: waiting\n\n## Intended use\nanswers sums\n\n## Data\nrows\n"
    )
    twice = with_decision(once, "m v4", "**promote**, decided by user:rm")
    assert twice == once.replace("**needs-approval**: waiting", "**promote**, decided by user:rm")
    live = with_section(twice, "Live prompt", "`p/2`", at_top=False)
    assert live == twice + "\n## Live prompt\n\n`p/2`\n"
    assert with_section(live, "Live prompt", "`p/3`", at_top=False) == twice + "\n## Live prompt\n\n`p/3`\n"
    assert with_decision("", "m v9", "**promote**") == "# m v9\n\n## Decision\n\n**promote**\n"
