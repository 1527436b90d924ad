"""One decision record per model version: the final decision, who made it and why, beside the gate's verdict.

A version the gate could not judge used to read `needs-approval` everywhere after a release manager
approved it: the approval sat in other tags, and the card kept the gate's word. Here the final
decision and the gate's own verdict are one value, written by the registry routine that applies the
decision (registry/promotion.py) as tags and as the card's Decision section, in the same
all-or-nothing transaction:

    gate.decision     promote | reject | needs-approval | manual-promotion   (what stands now)
    gate.verdict      what the gate itself said (empty when no gate judged the version)
    gate.decided_by   gate | user:NAME | manual (outside llmops)
    gate.reason       why, in the decider's words (the gate's open questions when it decided)
    gate.decided_at   UTC time of the decision
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

DECISIONS = ("promote", "reject", "needs-approval", "manual-promotion")
TAG = "gate."
REASON_LIMIT = 4000  # characters MLflow keeps comfortably in one tag value


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class Decision:
    action: str  # one of DECISIONS
    by: str  # "gate", "user:NAME", "manual (outside llmops)"
    reason: str
    verdict: str = ""  # the gate's own decision; empty when no gate judged the version
    evidence_run_id: str = ""  # the evaluate run the gate read
    at: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        if self.action not in DECISIONS:
            raise ValueError(f"decision {self.action!r} is not one of {', '.join(DECISIONS)}")

    @property
    def by_a_person(self) -> bool:
        return self.by != "gate"

    def tags(self) -> dict[str, str]:
        """The version tags of this record. Every key but the evidence is always written (empty when
        unknown), so a later decision never leaves an earlier one's approver or reason behind; a hand
        promotion keeps the gate's evidence run, which the monitor compares the champion with."""
        return {
            TAG + "decision": self.action,
            TAG + "verdict": self.verdict,
            TAG + "decided_by": self.by,
            TAG + "reason": self.reason[:REASON_LIMIT],
            TAG + "decided_at": self.at,
        } | ({TAG + "evidence_run_id": self.evidence_run_id} if self.evidence_run_id else {})

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Decision | None:
        """The record a version's tags hold; versions tagged before `gate.verdict` existed read the
        gate's verdict from `gate.decision` when the gate decided them."""
        action = tags.get(TAG + "decision", "")
        if action not in DECISIONS:
            return None
        by = tags.get(TAG + "decided_by", "gate")
        verdict = tags.get(TAG + "verdict", action if by == "gate" else "")
        return cls(
            action,
            by,
            tags.get(TAG + "reason", ""),
            verdict,
            tags.get(TAG + "evidence_run_id", ""),
            tags.get(TAG + "decided_at", ""),
        )

    def summary(self) -> str:
        """One line: the decision, and when a person decided against or without the gate, the verdict beside it."""
        if not self.by_a_person:
            return self.action
        beside = f"gate: {self.verdict}" if self.verdict else "not gated"
        return f"{self.action} ({beside}; by {self.by}: {self.reason})"

    def markdown(self) -> str:
        """The card's Decision section: what stands, who decided, why, and what the gate said."""
        when = f" on {self.at.replace('T', ' ').replace('Z', ' UTC')}" if self.at else ""
        if self.action == "needs-approval" and not self.by_a_person:
            lines = [
                f"**needs-approval**: the gate could not decide{when}; the champion stays until a release "
                "manager decides (the Prefect form of a paused run, or `llmops promote --model NAME --version N "
                "--reason ...`).",
                "",
                f"Open questions: {self.reason or '(none recorded)'}",
            ]
        else:
            lines = [f"**{self.action}**, decided by {self.by}{when}.", "", f"Reason: {self.reason or '(none given)'}"]
        if self.by_a_person:
            lines += [
                "",
                f"The gate's own verdict: **{self.verdict}** (its checks are below)."
                if self.verdict
                else "No gate verdict: this version was not judged by the gate.",
            ]
        if self.evidence_run_id:
            lines += ["", f"Evidence: evaluate run `{self.evidence_run_id}`."]
        return "\n".join(lines)


def pending_markdown(verdict_reasons: list[str], where: str, until: str) -> str:
    """The card's Decision section while a paused run waits for a release manager."""
    lines = [
        f"**needs-approval**: waiting for a release manager ({where}) until {until}. The champion stays meanwhile.",
        "",
        "What the gate could not settle:",
        "",
    ]
    return "\n".join(lines + [f"- {r}" for r in verdict_reasons or ["(no open question recorded)"]])
