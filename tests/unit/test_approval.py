"""What a release manager reads and answers: the gate's open checks with their numbers, and a form whose
every field is described and whose reason is required for approve and reject alike."""

from __future__ import annotations

import re

import pytest

from configs.schema import GateConfig
from registry.approval import approval_description, approval_title, open_findings
from registry.gate import decide
from tasks.evaluate.results import EvalResults, ProbeTally, SuiteResult

SAFE = SuiteResult(
    version="s",
    ids=[str(i) for i in range(12)],
    scores={"probe_pass": [1.0] * 12},
    probes={"prompt_injection": ProbeTally(8, 8), "pii_leak": ProbeTally(4, 4)},
)


def suite(scores: list[float], key: str) -> SuiteResult:
    return SuiteResult(
        version="v1", ids=[str(i) for i in range(len(scores))], scores={"exact_match": scores}, model_key=key
    )


def gate_on_quality(**settings) -> GateConfig:
    """The operational limits need timings; these tests are about the quality checks' wording."""
    return GateConfig(**({"max_latency_increase": None, "max_cost_increase": None} | settings))


@pytest.fixture(scope="module")
def inconclusive():
    """Same accuracy on different items, 20 of them: a regression beyond the margin cannot be ruled out."""
    results = EvalResults(
        {
            "candidate": {"arithmetic": suite([0.0, 1.0, 1.0, 0.0] * 5, "new"), "safety": SAFE},
            "champion": {"arithmetic": suite([1.0, 0.0] * 10, "old")},
            "base": {"arithmetic": suite([0.0] * 20, "base")},
        }
    )
    gate = decide(gate_on_quality(min_gain_over_base=0.0), results)
    assert gate.decision == "needs-approval"
    return gate


def test_an_inconclusive_check_is_stated_with_delta_ci_p_mde_and_n(inconclusive):
    comp = inconclusive.comparisons["arithmetic/exact_match"]
    [line] = open_findings(inconclusive)  # the gain over base passed, so only the open question is left
    expected = (
        f"arithmetic/exact_match: delta {comp.delta:+.3f} [{comp.ci_low:+.3f}, {comp.ci_high:+.3f}] "
        f"cannot rule out a regression beyond -0.050 (Holm p={comp.p_adjusted:.4f}, "
        f"minimum detectable effect {comp.mde:.3f}); n=20 paired items"
    )
    assert line == expected
    assert inconclusive.reasons() == []  # what the form showed before: nothing, as the check is stored passed


def test_a_failed_check_gets_the_numbers_its_detail_lacks():
    same = [0.0, 1.0] * 10
    results = EvalResults(
        {"candidate": {"arithmetic": suite(same, "new"), "safety": SAFE}, "base": {"arithmetic": suite(same, "base")}}
    )
    gate = decide(gate_on_quality(), results)
    comp = gate.comparisons["arithmetic/exact_match.vs_base"]
    [line] = open_findings(gate)
    assert line.startswith("arithmetic/exact_match.gain_over_base: gain +0.000 [")
    assert line.endswith(f"; minimum detectable effect {comp.mde:.3f}, n=20 paired items")


def test_the_description_states_the_reason_links_the_evidence_and_says_what_each_answer_does(inconclusive):
    findings = open_findings(inconclusive)
    links = {"the card": "http://mlflow/#/models/m/versions/4", "the evaluate run": "http://mlflow/#/runs/e"}
    text = approval_description("tiny-arith", 4, findings, links, 3600, champion=3)
    assert text.startswith(f"### {approval_title('tiny-arith', 4, findings)}\n")
    assert "tiny-arith v4 needs a release manager: arithmetic/exact_match: delta" in text
    assert f"- {findings[0]}" in text
    assert "- [the card](http://mlflow/#/models/m/versions/4)" in text
    assert "- [the evaluate run](http://mlflow/#/runs/e)" in text
    assert "within 60 min" in text and "v3 stays champion" in text


def approval_schema() -> dict:
    """The schema Prefect stores for the pause form, built the way `RunInput.save` builds it."""
    from prefect._internal.pydantic.v2_schema import create_v2_schema

    from flows.promote import Approval

    return create_v2_schema("Approval", model_base=Approval.with_initial_data(description="d"))


def test_every_form_field_is_described_and_required():
    schema = approval_schema()
    assert set(schema["properties"]) == {"decision", "reason", "approver"}
    assert sorted(schema["required"]) == ["approver", "decision", "reason"]
    for name, prop in schema["properties"].items():
        assert len(prop.get("description", "")) > 20, name
    assert schema["properties"]["decision"]["enum"] == ["approve", "reject"]


@pytest.mark.parametrize("answer", ["approve", "reject"])
def test_the_server_refuses_an_answer_without_a_reason(answer):
    """`prefect.server.api.flow_runs.resume_flow_run` validates the input against the stored schema with
    this function: a blank reason is refused before the flow sees it, for approve and reject alike."""
    from prefect.utilities.schema_tools import ValidationError
    from prefect.utilities.schema_tools import validate as server_validate

    schema = approval_schema()
    server_validate(
        {"decision": answer, "reason": "looked at the items", "approver": "rm"}, schema, raise_on_error=True
    )
    for reason in ("", "   "):
        with pytest.raises(ValidationError, match=re.escape("reason")):
            server_validate({"decision": answer, "reason": reason, "approver": "rm"}, schema, raise_on_error=True)
    with pytest.raises(ValidationError):
        server_validate({"decision": answer, "approver": "rm"}, schema, raise_on_error=True)


def test_a_check_that_states_a_p_value_alone_gets_delta_and_interval():
    """`require_improvement`'s open question names only its one-sided p."""
    same = [1.0, 0.0] * 10
    results = EvalResults(
        {
            "candidate": {"arithmetic": suite(same, "new"), "safety": SAFE},
            "champion": {"arithmetic": suite(same, "old")},
        }
    )
    gate = decide(gate_on_quality(require_improvement=True), results)
    comp = gate.comparisons["arithmetic/exact_match"]
    [line] = [f for f in open_findings(gate) if "no significant improvement" in f]  # beside the non-inferiority one
    assert line.startswith("arithmetic/exact_match: no significant improvement over the champion (one-sided p=")
    assert line.endswith(
        f"; delta {comp.delta:+.3f} [{comp.ci_low:+.3f}, {comp.ci_high:+.3f}], "
        f"minimum detectable effect {comp.mde:.3f}, n=20 paired items"
    )
