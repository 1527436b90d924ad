"""Promote: gate the version a training run registered, and move `champion` only if it passes.

    llmops promote --train-run RUN_ID

Uncached by design: the decision depends on the registry's state at the moment it is made. The
evidence is an evaluation of that version against the current champion on the config's suites:
the newest finished one when it still fits (same suites and items, same champion), else a fresh
one. Every registry write (tags, card, audit record, aliases) then happens in one transaction-like
routine (registry/promotion.py), so a failure leaves the registry as it was. When the gate cannot
decide (`needs-approval`) and a Prefect server is in use, the flow run pauses for a release
manager's answer in the Prefect UI.
"""

from __future__ import annotations

import dataclasses
import os

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.input import RunInput

from configs.load import check_run_config, default_config
from configs.schema import RunConfig
from core.errors import UserError
from flows.evaluate import evaluate_flow
from registry import models, tracking
from registry.card import render_model_card
from registry.evaluation import stored_results
from registry.gate import GateDecision, decide
from registry.promotion import apply_decision
from registry.prompts import load_prompt
from tasks.evaluate.intervals import metric_interval
from tasks.evaluate.run import load_suites, suites_signature


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


def ask_release_manager(name: str, version: int, gate: GateDecision, timeout_s: int) -> Approval | None:
    from prefect.flow_runs import pause_flow_run

    logger = get_run_logger()
    logger.warning(f"{name} v{version} needs approval: " + "; ".join(gate.reasons() or ["evidence inconclusive"]))
    try:
        return pause_flow_run(
            wait_for_input=Approval.with_initial_data(
                description=f"## {name} v{version} needs a release manager\n\n"
                + "\n".join(f"- {r}" for r in gate.reasons())
            ),
            timeout=timeout_s,
        )
    except Exception as exc:  # timed out, or the server refused to pause
        logger.warning(f"no approval received ({exc!r}); the champion stays")
        return None


def trained_version(config: RunConfig, train_run: str) -> models.VersionInfo:
    if not train_run:
        raise UserError("train_run", "is empty", "give the MLflow run id of a train run (printed by `llmops train`)")
    found = models.versions_of_run(config.registry.model_name, train_run)
    if not found:
        raise UserError(
            f"train run {train_run!r}",
            f"registered no version of {config.registry.model_name!r}",
            "check the run id (MLflow UI, experiment " + config.registry.experiment + ") and registry.model_name",
        )
    return found[0]


def fitting_evaluation(config: RunConfig, version: models.VersionInfo, evaluation: str) -> str | None:
    """The newest finished evaluation of `version` that still fits: same suites and items, same champion."""
    champion = models.version_by_alias(version.name, "champion")
    expected = suites_signature(load_suites(config.eval, _eval_path_of(config, version)))
    query = (
        f"tags.`llmops.stage` = 'evaluate' and attributes.status = 'FINISHED' and "
        f"tags.`llmops.model_name` = '{version.name}' and tags.`llmops.model_version` = '{version.version}'"
    )
    if evaluation:
        query += f" and attributes.run_id = '{evaluation}'"
    runs = tracking.client().search_runs(
        [tracking.ensure_experiment(config.registry.experiment)],
        query,
        order_by=["attributes.start_time DESC"],
        max_results=10,
    )
    for run in runs:
        compared = run.data.tags.get("llmops.compared_version")
        same_champion = compared == (
            str(champion.version) if champion and champion.version != version.version else None
        )
        if run.data.tags.get("llmops.suites") == expected and same_champion:
            return run.info.run_id
    return None


def _eval_path_of(config: RunConfig, version: models.VersionInfo) -> str:
    from registry.contenders import eval_split

    return eval_split("", version, config)


@flow(name="promote")
def promote_flow(
    train_run: str = "", evaluation: str = "", config: RunConfig = default_config(), parent_run_id: str | None = None
) -> dict:
    """Gate the version a training run registered: promote it to champion, reject it, or ask a person.

    Args:
        train_run: MLflow run id of the train run whose registered version is to be judged.
        evaluation: an evaluate run id to use as the evidence; empty = the newest that fits, or a new one.
        config: the run config; `gate` and `registry` are what this stage reads.
        parent_run_id: MLflow run to nest this run under (set by nightly; leave empty).
    """
    check_run_config(config)
    reg, logger = config.registry, get_run_logger()
    version = trained_version(config, train_run)
    eval_run = fitting_evaluation(config, version, evaluation)
    if eval_run is None:
        if evaluation:
            logger.warning(
                f"evaluation {evaluation} does not fit (other suites, or the champion changed): evaluating again"
            )
        eval_run = evaluate_flow(
            model=f"{version.name}/{version.version}", config=config, parent_run_id=parent_run_id
        ).run_id
    results = stored_results(eval_run)
    if "candidate" not in results:
        raise UserError(
            f"evaluation {eval_run}", "holds no candidate scores", "evaluate the version before promoting it"
        )
    summary = results.summary()
    gate = decide(config.gate, results)
    with tracking.stage_run(
        reg.experiment, "promote", parent_run_id, {"llmops.model_version": str(version.version)}
    ) as run_id:
        prompt = load_prompt(version.lineage.prompt) if version.lineage.prompt else None
        lineage = dataclasses.replace(version.lineage, eval_run_id=eval_run)
        curated = tracking.client().get_run(lineage.curate_run_id).data.metrics if lineage.curate_run_id else {}
        card = render_model_card(
            reg.model_name,
            version.version,
            _trained_config(version, config),
            lineage,
            _data_report(curated),
            summary,
            gate.to_dict(),
            prompt.template if prompt else "",
            {
                f"{s}/{m}": metric_interval(v, m)
                for s, r in results.of("candidate").items()
                for m, v in r.scores.items()
            },
        )
        tracking.client().log_text(run_id, card, "model_card.md")
        tracking.log_json(run_id, gate.to_dict(), "gate.json")
        decision, by, why = gate.decision, "gate", "; ".join(gate.reasons()) or "all gate checks passed"
        tags = gate.tags() | {"gate.evidence_run_id": eval_run, "gate.decided_by": "gate"}
        if decision == "needs-approval" and server_in_use():
            answer = ask_release_manager(reg.model_name, version.version, gate, config.gate.approval_timeout_s)
            if answer is not None:
                decision = "promote" if answer.approve else "reject"
                by, why = f"user:{answer.approver or 'release-manager'}", answer.reason or "(no reason given)"
                tags |= {"gate.approval": decision, "gate.decided_by": by, "gate.reason": why}
        metrics = gate.evidence()
        replaced = apply_decision(
            reg.model_name,
            version.version,
            decision,
            by,
            why,
            evidence_run_id=eval_run,
            tags=tags,
            card=card,
            metrics=metrics,
        )
        tracking.log_params(run_id, {"model_name": reg.model_name, "version": version.version, "decision": decision})
        tracking.log_metrics(run_id, {"promoted": 1.0 if decision == "promote" else 0.0})
        create_markdown_artifact(card, key="model-card", description=f"{reg.model_name} v{version.version}: {decision}")
        if decision == "promote":
            logger.info(
                f"promoted {reg.model_name} v{version.version} to champion"
                + (f" (replacing v{replaced})" if replaced else "")
            )
            if reg.merge_on_promotion:
                _log_merged_copy(run_id, version)
        elif decision == "needs-approval":
            logger.warning(
                f"{reg.model_name} v{version.version} needs approval; the champion stays. To approve: "
                f"llmops promote --model {reg.model_name} --version {version.version} --reason '...'"
            )
        else:
            logger.info(f"kept the champion: v{version.version} rejected: " + "; ".join(gate.reasons()))
        return {
            "run_id": run_id,
            "model_name": reg.model_name,
            "version": version.version,
            "decision": decision,
            "gate": gate.to_dict(),
            "replaced": replaced,
            "evaluation": eval_run,
            "summary": summary,
        }


def _trained_config(version: models.VersionInfo, config: RunConfig) -> dict:
    """The config the version was trained with (its train run logged it), for the card's training section."""
    import json

    import mlflow

    try:
        trained = json.loads(mlflow.artifacts.load_text(f"runs:/{version.run_id}/config/resolved.json"))
    except Exception:  # a version registered some other way: the current config is the best description
        return config.model_dump()
    return trained | {"registry": config.model_dump()["registry"]}


def _data_report(curate_metrics: dict) -> dict:
    """The curate run's counts as the model card shows them."""
    return {
        "read": int(curate_metrics.get("rows_read", 0)),
        "kept": int(curate_metrics.get("rows_kept", 0)),
        "dropped": {k.removeprefix("dropped."): int(v) for k, v in curate_metrics.items() if k.startswith("dropped.")},
        "pii": {k.removeprefix("pii."): int(v) for k, v in curate_metrics.items() if k.startswith("pii.")},
    }


def _log_merged_copy(run_id: str, version: models.VersionInfo) -> None:
    """A self-contained copy of the new champion, for serving (registry.merge_on_promotion)."""
    from core.paths import llmops_home
    from registry.artifacts import log_merged_model

    folder = models.download_model_dir(
        version, llmops_home() / "cache" / "models" / f"{version.name}-v{version.version}"
    )
    uri = log_merged_model(
        run_id,
        folder,
        f"prompts:/{version.lineage.prompt}" if version.lineage.prompt else None,
        version.lineage.base_model or None,
    )
    models.tag_version(version.name, version.version, {"llmops.merged_model_uri": uri})
