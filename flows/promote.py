"""Promote: gate the version a training run registered, and move `champion` only if it passes.

    llmops promote --train-run RUN_ID

Uncached by design: the decision depends on the registry's state at the moment it is made. The
evidence is an evaluation of that version against the current champion on the config's suites:
the newest finished one when it still fits (same suites and items, same champion), else a fresh
one. Every registry write (the decision record, the card, the audit record, the aliases) then
happens in one transaction-like routine (registry/promotion.py), so a failure leaves the registry
as it was.

When the gate cannot decide (`needs-approval`) and a person can answer (a team's server, or a run
started from a deployment on the home's server), the run pauses: the card, saying what is awaited,
is on the version and in a Prefect artifact while it waits, and the form states each open check
with its numbers and links the card and the evaluate run. The answer becomes the version's
decision, with the gate's verdict kept beside it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import TerminationSignal
from prefect.input import RunInput
from pydantic import Field

from configs.load import check_run_config, default_config
from configs.schema import RunConfig
from core.errors import UserError
from flows.evaluate import evaluate_flow
from registry import models, runs, tracking
from registry.approval import approval_description, approval_title, open_findings
from registry.card import data_report, render_model_card, with_decision
from registry.decision import Decision, pending_markdown
from registry.evaluation import stored_results
from registry.gate import GateDecision, decide
from registry.promotion import apply_decision, show_pending
from registry.prompts import load_prompt
from tasks.evaluate.intervals import metric_interval
from tasks.evaluate.results import EvalResults
from tasks.evaluate.run import load_suites, suites_signature

# Set by llmops/server.py to the API URL of the home's own server (flows may not import llmops).
HOME_SERVER_VAR = "LLMOPS_HOME_PREFECT_URL"


class Approval(RunInput):
    """A release manager's answer to a version the gate could not judge."""

    decision: Literal["approve", "reject"] = Field(
        description="approve: this version becomes champion now (the champion becomes `previous`); "
        "reject: the champion stays"
    )
    reason: str = Field(
        min_length=1,
        pattern=r"\S",
        description="why, in a sentence (required either way): written on the version (gate.reason), "
        "in its card and in the audit log",
    )
    approver: str = Field(
        min_length=1, pattern=r"\S", description="your name: the decision is recorded as made by user:NAME"
    )


def attended() -> bool:
    """True when a person may answer a pause: the run reports to a server other than the home's own
    (a team's), or it was started from a deployment (a form or a schedule, the home's server too).
    A command typed in a terminal on the home's server is not paused: nobody watches its UI."""
    from prefect.settings import get_current_settings

    url = str(get_current_settings().api.url or "")
    if not url or "ephemeral" in url:
        return False
    return url != os.environ.get(HOME_SERVER_VAR) or started_from_deployment()


def started_from_deployment() -> bool:
    from prefect import get_client
    from prefect.runtime import flow_run

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run.root_flow_run_id).deployment_id is not None


def ask_release_manager(
    name: str, version: int, findings: list[str], links: dict[str, str], timeout_s: int, champion: int | None
) -> Approval | None:
    from prefect.flow_runs import pause_flow_run

    get_run_logger().warning(approval_title(name, version, findings))
    try:
        return pause_flow_run(
            wait_for_input=Approval.with_initial_data(
                description=approval_description(name, version, findings, links, timeout_s, champion)
            ),
            timeout=timeout_s,
        )
    except Exception as exc:  # timed out, or the server refused to pause
        get_run_logger().warning(f"no answer from a release manager ({exc!r}); the champion stays")
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
    from registry.contenders import eval_split

    champion = models.version_by_alias(version.name, "champion")
    expected = suites_signature(load_suites(config.eval, eval_split("", version, config)))
    compared = str(champion.version) if champion and champion.version != version.version else None
    for run in runs.evaluations_of(config.registry.experiment, version.name, version.version, evaluation):
        if run.suites == expected and run.compared_version == compared:
            return run.run_id
    return None


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
        model = f"{version.name}/{version.version}"
        eval_run = evaluate_flow(model=model, config=config, parent_run_id=parent_run_id).run_id
    results = stored_results(eval_run)
    if "candidate" not in results:
        raise UserError(
            f"evaluation {eval_run}", "holds no candidate scores", "evaluate the version before promoting it"
        )
    summary = results.summary()
    gate = decide(config.gate, results)
    title = f"{reg.model_name} v{version.version}"
    with tracking.stage_run(
        reg.experiment, "promote", parent_run_id, {"llmops.model_version": str(version.version)}
    ) as run_id:
        card = model_card(config, version, eval_run, results, summary, gate)
        runs.log_text(run_id, card, "model_card.md")
        tracking.log_json(run_id, gate.to_dict(), "gate.json")
        findings = open_findings(gate)
        evidence = gate.tags() | {"gate.evidence_run_id": eval_run}
        decision, by, why = gate.decision, "gate", "; ".join(findings) or "all gate checks passed"

        def record(decision: str, by: str, why: str) -> int | None:
            return apply_decision(
                reg.model_name,
                version.version,
                decision,
                by,
                why,
                evidence_run_id=eval_run,
                tags=evidence,
                card=card,
                metrics=gate.evidence(),
                verdict=gate.decision,
            )

        if decision == "needs-approval" and attended():
            try:
                answer = await_release_manager(config, version, gate, findings, card, evidence, eval_run, run_id)
            except TerminationSignal:  # cancelled (or its worker stopped) while it waited: no one decided
                record(decision, by, f"{why}; the run that waited for a release manager was stopped unanswered")
                raise
            if answer is not None:
                decision = "promote" if answer.decision == "approve" else "reject"
                by, why = f"user:{answer.approver.strip()}", answer.reason.strip()
        replaced = record(decision, by, why)
        tracking.log_params(run_id, {"model_name": reg.model_name, "version": version.version, "decision": decision})
        tracking.log_metrics(run_id, {"promoted": 1.0 if decision == "promote" else 0.0})
        final = models.version_description(reg.model_name, version.version)  # the card with its Decision
        runs.log_text(run_id, final, "model_card.md")
        create_markdown_artifact(
            final, key="model-card", description=f"{title}: {decision}" + (f" ({by})" if by != "gate" else "")
        )
        if decision == "promote":
            logger.info(f"promoted {title} to champion" + (f" (replacing v{replaced})" if replaced else ""))
            if reg.merge_on_promotion:
                _log_merged_copy(run_id, version)
        elif decision == "needs-approval":
            logger.warning(
                f"{title} needs approval; the champion stays. To approve: "
                f"llmops promote --model {reg.model_name} --version {version.version} --reason '...'"
            )
        else:
            logger.info(f"kept the champion: v{version.version} rejected by {by}: {why}")
        return {
            "run_id": run_id,
            "model_name": reg.model_name,
            "version": version.version,
            "decision": decision,
            "verdict": gate.decision,
            "decided_by": by,
            "reason": why,
            "gate": gate.to_dict(),
            "replaced": replaced,
            "evaluation": eval_run,
            "summary": summary,
        }


def model_card(
    config: RunConfig,
    version: models.VersionInfo,
    eval_run: str,
    results: EvalResults,
    summary: dict,
    gate: GateDecision,
) -> str:
    """The card from the run's own records: the config it was trained with, its curation's counts,
    its prompt, every score with the candidate's interval, and the gate's verdict with its checks."""
    prompt = load_prompt(version.lineage.prompt) if version.lineage.prompt else None
    lineage = dataclasses.replace(version.lineage, eval_run_id=eval_run)
    trained = runs.trained_config(version.run_id)
    # A version registered some other way: the current config is the best description of it.
    trained = trained | {"registry": config.model_dump()["registry"]} if trained else config.model_dump()
    return render_model_card(
        config.registry.model_name,
        version.version,
        trained,
        lineage,
        data_report(runs.run_metrics(lineage.curate_run_id)),
        summary,
        gate.to_dict(),
        prompt.template if prompt else "",
        {f"{s}/{m}": metric_interval(v, m) for s, r in results.of("candidate").items() for m, v in r.scores.items()},
    )


def await_release_manager(
    config: RunConfig,
    version: models.VersionInfo,
    gate: GateDecision,
    findings: list[str],
    card: str,
    evidence: dict[str, str],
    eval_run: str,
    run_id: str,
) -> Approval | None:
    """Shows the card (awaiting a release manager) on the version and as a Prefect artifact, then
    pauses with a form that states the reason with its numbers and links both."""
    from prefect.runtime import flow_run
    from prefect.settings import get_current_settings

    name, number, timeout_s = version.name, version.version, config.gate.approval_timeout_s
    until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() + timeout_s))
    where = f"flow run [{flow_run.name}]({flow_run.ui_url})" if flow_run.ui_url else f"flow run {flow_run.name}"
    waiting = with_decision(card, f"{name} v{number}", pending_markdown(findings, f"the Prefect UI, {where}", until))
    pending = Decision("needs-approval", "gate", "waiting for a release manager: " + "; ".join(findings), gate.decision)
    show_pending(name, number, evidence | pending.tags(), waiting)
    artifact = create_markdown_artifact(
        waiting, key="model-card", description=f"{name} v{number}: needs-approval, waiting for a release manager"
    )
    links = {f"{name} v{number} in MLflow (its card and tags)": runs.version_url(name, number)}
    ui = str(get_current_settings().ui_url or "").rstrip("/")
    if ui:
        links[f"the card of {name} v{number} (Prefect artifact)"] = f"{ui}/artifacts/artifact/{artifact}"
    links[f"the evaluate run {eval_run[:12]} (MLflow): per-item scores of candidate, champion, base"] = runs.run_url(
        eval_run
    )
    links[f"this promote run {run_id[:12]} (MLflow)"] = runs.run_url(run_id)
    champion = models.version_by_alias(name, "champion")
    return ask_release_manager(
        name, number, findings, links, timeout_s, champion.version if champion is not None else None
    )


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
