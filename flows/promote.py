"""Promote: register the candidate, mark it `challenger`, and move `champion` only through the gate.

Uncached by design: the decision depends on the registry's state at the moment it is made. If
anything fails after the version was registered, the version is deleted again, so a failed run
leaves the registry as it was.

    llmops promote --config configs/nightly.yaml --train-run RUN_ID
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from configs.schema import RunConfig
from registry import models, tracking
from registry.card import render_model_card
from registry.gate import decide
from tasks.data.demo import QUESTION_TEMPLATE


@flow(name="promote")
def promote_flow(config: RunConfig, trained: dict, evaluated: dict, curated: dict,
                 parent_run_id: str | None = None) -> dict:
    reg = config.registry
    scores = evaluated["scores"]
    if "candidate" not in scores:
        raise ValueError("the evaluation holds no candidate scores; evaluate the trained model before promoting it")
    gate = decide(config.gate, scores["candidate"], scores["base"], scores.get("champion"))
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
        version = models.register_version(reg.model_name, trained["model_uri"], trained["run_id"],
                                          {f"lineage.{k}": v for k, v in lineage.items()})
        try:
            models.set_alias(reg.model_name, "challenger", version.version)
            gate_tags = {"gate.decision": gate.decision, "gate.evidence_run_id": evaluated["run_id"]}
            for c in gate.checks:
                gate_tags[f"gate.{c.name}.value"] = f"{c.value:.4f}"
                if c.ci_low is not None:
                    gate_tags[f"gate.{c.name}.ci_low"] = f"{c.ci_low:.4f}"
                    gate_tags[f"gate.{c.name}.ci_high"] = f"{c.ci_high:.4f}"
            models.tag_version(reg.model_name, version.version, gate_tags)
            card = render_model_card(reg.model_name, version.version, config.model_dump(), lineage, curated,
                                     evaluated["exact_match"], gate.to_dict(), QUESTION_TEMPLATE)
            tracking.client().log_text(run_id, card, "model_card.md")
            tracking.log_json(run_id, gate.to_dict(), "gate.json")
            models.describe_version(reg.model_name, version.version, card)
            replaced = models.move_champion(reg.model_name, version.version) if gate.passed else None
        except BaseException:
            models.delete_version(reg.model_name, version.version)
            raise
        tracking.log_params(run_id, {"model_name": reg.model_name, "version": version.version, "decision": gate.decision})
        tracking.log_metrics(run_id, {"promoted": 1.0 if gate.passed else 0.0})
        create_markdown_artifact(card, key="model-card", description=f"{reg.model_name} v{version.version}: {gate.decision}")
        if gate.passed:
            get_run_logger().info(f"promoted {reg.model_name} v{version.version} to champion" + (f" (replacing v{replaced})" if replaced else ""))
        else:
            get_run_logger().info(f"kept the champion: v{version.version} rejected: " + "; ".join(gate.reasons()))
        return {"run_id": run_id, "model_name": reg.model_name, "version": version.version,
                "decision": gate.decision, "gate": gate.to_dict(), "replaced": replaced}
