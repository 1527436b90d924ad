"""Promote: register the candidate, mark it `challenger`, and move `champion` only through the gate.

Uncached by design: the decision depends on the registry's state at the moment it is made. If
anything fails after the version was registered, the version is deleted again, so a failed run
leaves the registry as it was. When the gate cannot decide (`needs-approval`) and a Prefect
server is in use, the flow run pauses for a release manager's answer in the Prefect UI.

    llmops promote --config configs/nightly.yaml --train-run RUN_ID
"""

from __future__ import annotations

import os

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.input import RunInput

from configs.schema import RunConfig
from llmops.locks import home_lock
from registry import models, tracking
from registry.audit import record_decision
from registry.card import render_model_card
from registry.gate import GateResult, decide
from tasks.data.demo import QUESTION_TEMPLATE


class Approval(RunInput):
    """What a release manager answers in the Prefect UI when the gate cannot decide."""

    approve: bool = False
    reason: str = ""
    approver: str = ""


def server_in_use() -> bool:
    """True when runs report to a Prefect server a person can open (not a temporary one)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    # The home's own server (llmops/server.py) counts as temporary: nobody is expected at its UI.
    return bool(url) and "ephemeral" not in str(url) and str(url) != os.environ.get("LLMOPS_HOME_PREFECT_URL")


def ask_release_manager(name: str, version: int, gate: GateResult, timeout_s: int) -> Approval | None:
    from prefect.flow_runs import pause_flow_run

    logger = get_run_logger()
    logger.warning(f"{name} v{version} needs approval: " + "; ".join(gate.reasons() or ["evidence inconclusive"]))
    try:
        return pause_flow_run(wait_for_input=Approval.with_initial_data(
            description=f"## {name} v{version} needs a release manager\n\n" + "\n".join(f"- {r}" for r in gate.reasons())),
            timeout=timeout_s)
    except Exception as exc:  # timed out, or the server refused to pause
        logger.warning(f"no approval received ({exc!r}); the champion stays")
        return None


@flow(name="promote")
def promote_flow(config: RunConfig, trained: dict, evaluated: dict, curated: dict,
                 parent_run_id: str | None = None) -> dict:
    reg, logger = config.registry, get_run_logger()
    results = evaluated["results"]
    if "candidate" not in results:
        raise ValueError("the evaluation holds no candidate scores; evaluate the trained model before promoting it")
    gate = decide(config.gate, results)
    with tracking.stage_run(reg.experiment, "promote", parent_run_id) as run_id:
        lineage = {
            "dataset_hash": curated["dataset_hash"],
            "eval_hash": curated.get("eval_hash", ""),
            "config_hash": tracking.config_hash(config.model_dump()),
            "git_commit": tracking.git_commit(),
            "train_run_id": trained["run_id"],
            "eval_run_id": evaluated["run_id"],
            "prompt": f"{reg.prompt_name}/{trained['prompt_version']}",
            "base_model": trained["base"],
        }
        with home_lock(f"registry-{reg.model_name}"):  # processes sharing a home take turns on the registry
            version = models.register_version(reg.model_name, trained["model_uri"], trained["run_id"],
                                              {f"lineage.{k}": v for k, v in lineage.items()})
        try:
            models.set_alias(reg.model_name, "challenger", version.version)
            models.tag_version(reg.model_name, version.version,
                               gate.tags() | {"gate.evidence_run_id": evaluated["run_id"], "gate.decided_by": "gate"})
            card = render_model_card(reg.model_name, version.version, config.model_dump(), lineage, curated,
                                     evaluated["summary"], gate.to_dict(), QUESTION_TEMPLATE)
            tracking.client().log_text(run_id, card, "model_card.md")
            tracking.log_json(run_id, gate.to_dict(), "gate.json")
            models.describe_version(reg.model_name, version.version, card)
            decision, by, why = gate.decision, "gate", "; ".join(gate.reasons()) or "all gate checks passed"
            if decision == "needs-approval" and server_in_use():
                answer = ask_release_manager(reg.model_name, version.version, gate, config.gate.approval_timeout_s)
                if answer is not None:
                    decision = "promote" if answer.approve else "reject"
                    by, why = f"user:{answer.approver or 'release-manager'}", answer.reason or "(no reason given)"
                    models.tag_version(reg.model_name, version.version, {"gate.approval": decision, "gate.decided_by": by,
                                                                         "gate.reason": why})
            with home_lock(f"registry-{reg.model_name}"):
                replaced = models.move_champion(reg.model_name, version.version) if decision == "promote" else None
                record_decision(reg.model_name, version.version, decision, by, why, evidence_run_id=evaluated["run_id"],
                                metrics={k: {"delta": c["delta"], "ci_low": c["ci_low"], "ci_high": c["ci_high"],
                                             "p_value": c["p_value"]} for k, c in gate.comparisons.items()})
        except BaseException:
            models.delete_version(reg.model_name, version.version)
            raise
        tracking.log_params(run_id, {"model_name": reg.model_name, "version": version.version, "decision": decision})
        tracking.log_metrics(run_id, {"promoted": 1.0 if decision == "promote" else 0.0})
        create_markdown_artifact(card, key="model-card", description=f"{reg.model_name} v{version.version}: {decision}")
        if decision == "promote":
            logger.info(f"promoted {reg.model_name} v{version.version} to champion" + (f" (replacing v{replaced})" if replaced else ""))
        elif decision == "needs-approval":
            logger.warning(f"{reg.model_name} v{version.version} needs approval; the champion stays. To approve: "
                           f"llmops promote --model {reg.model_name} --version {version.version} --reason '...'")
        else:
            logger.info(f"kept the champion: v{version.version} rejected: " + "; ".join(gate.reasons()))
        return {"run_id": run_id, "model_name": reg.model_name, "version": version.version,
                "decision": decision, "gate": gate.to_dict(), "replaced": replaced}
