"""Monitor: re-run the frozen suites on the champion and judge it against the scores it was promoted on.

    llmops evaluate --model tiny-arith@champion

The judgement is the promotion gate's own: every gate rule is tested one-sided against its
`max_regression` margin, Holm-corrected across rules, with effect, interval, p-value and minimum
detectable effect (registry.gate.non_inferiority). A rule whose whole interval lies below the
margin is a regression: the flow tags the version with the same kind of evidence the gate writes,
records it in the audit log, writes a Prefect artifact and (if `monitor.rollback_on_regression`)
moves `champion` back to `previous`. The CLI exits with code 3 so a scheduler can alert on it. A
drop smaller than the margin is not a regression, exactly as it would not block a promotion.
"""

from __future__ import annotations

import json

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from configs.load import check_run_config, default_config
from configs.schema import GateConfig, RunConfig
from core.errors import UserError
from flows.evaluate import evaluate_flow, stored_results
from registry import models, tracking
from registry.gate import non_inferiority
from registry.promotion import apply_decision, rollback


def stored_baseline(version: models.VersionInfo) -> dict:
    """What this version scored in the evaluation it was promoted on (the gate's evidence run)."""
    run_id = version.tags.get("gate.evidence_run_id")
    if not run_id:
        raise UserError(
            f"model {version.name}/{version.version}",
            "was not promoted through the gate (no evidence run)",
            "monitor a version the gate promoted, or run `llmops promote --train-run ...` for it",
        )
    return stored_results(run_id)["candidate"]


def assess(policy: GateConfig, baseline: dict, current: dict) -> list[dict]:
    """One finding per gate rule: `regression`, `ok`, `inconclusive`, or `skipped` when the suite's
    items changed since the baseline (their scores cannot be paired)."""
    rules = {}
    findings = []
    for key, rule in policy.rules.items():
        suite = key.split("/", 1)[0]
        if suite not in baseline or suite not in current or baseline[suite]["version"] != current[suite]["version"]:
            findings.append({"metric": key, "status": "skipped", "why": "suite not in both runs, or its items changed"})
        else:
            rules[key] = rule
    if not rules:
        return findings
    scoped = policy.model_copy(update={"rules": rules})
    comparisons, checks, _ = non_inferiority(
        scoped, {"candidate": current, "baseline": baseline}, "baseline", "vs_baseline"
    )
    status = {c.name.removesuffix(".vs_baseline"): "ok" if c.passed else "regression" for c in checks}
    for key, comp in comparisons.items():
        findings.append(
            {
                "metric": key,
                "status": status.get(key, "inconclusive"),
                "margin": -rules[key].max_regression,
                **{f: comp.get(f) for f in ("delta", "ci_low", "ci_high", "p_value", "p_adjusted", "mde")},
            }
        )
    return findings


def evidence_tags(findings: list[dict]) -> dict[str, str]:
    tags = {}
    for f in findings:
        for field in ("delta", "ci_low", "ci_high", "p_value", "p_adjusted", "mde"):
            if f.get(field) is not None:
                tags[f"monitor.{f['metric'].replace('/', '.')}.{field}"] = f"{f[field]:.4f}"
        tags[f"monitor.{f['metric'].replace('/', '.')}.status"] = f["status"]
    return tags


@flow(name="monitor")
def monitor_flow(model: str = "", dataset: str = "", config: RunConfig = default_config()) -> dict:
    """Re-evaluate the champion and judge it, with the gate's statistics, against its promotion scores.

    Args:
        model: the version to watch; empty = the champion of registry.model_name.
        dataset: eval items (hash, `latest` or a JSONL file); empty = the split it was promoted on.
        config: the run config; `gate.rules` (margins), `monitor` and `eval` are what this stage reads.
    """
    check_run_config(config)
    reg, logger = config.registry, get_run_logger()
    info = models.resolve_version(model or f"{reg.model_name}@champion")
    baseline = stored_baseline(info)
    now = evaluate_flow(config=config, model=f"{info.name}/{info.version}", dataset=dataset, against="none", fresh=True)
    findings = assess(config.gate, baseline, now["results"]["candidate"])
    regression = any(f["status"] == "regression" for f in findings)
    models.tag_version(
        info.name,
        info.version,
        evidence_tags(findings) | {"monitor.last_run_id": now["run_id"], "monitor.regression": str(regression).lower()},
    )
    rolled_back = None
    if regression:
        why = "; ".join(
            f"{f['metric']} {f['delta']:+.3f} [{f['ci_low']:+.3f}, {f['ci_high']:+.3f}] "
            f"beyond margin {f['margin']:+.3f}"
            for f in findings
            if f["status"] == "regression"
        )
        apply_decision(
            info.name,
            info.version,
            "regression",
            "monitor",
            why,
            evidence_run_id=now["run_id"],
            metrics={f["metric"]: {k: f.get(k) for k in ("delta", "ci_low", "ci_high", "p_value")} for f in findings},
        )
        if config.monitor.rollback_on_regression:
            try:
                rolled_back = rollback(info.name, "monitor", f"regression: {why}")
            except UserError as err:
                logger.error(f"regression found but no rollback possible: {err}")
    lines = ["| metric | status | delta | 95% CI | margin |", "|---|---|---|---|---|"]
    lines += [
        f"| {f['metric']} | {f['status']} | {f.get('delta') or 0:+.3f} | "
        + (f"[{f['ci_low']:+.3f}, {f['ci_high']:+.3f}]" if f.get("ci_low") is not None else "")
        + f" | {f.get('margin', 0):+.3f} |"
        for f in findings
    ]
    create_markdown_artifact(
        "\n".join(lines),
        key="champion-monitor",
        description=f"{info.name} v{info.version}: {'REGRESSION' if regression else 'no regression'}",
    )
    tracking.log_json(now["run_id"], findings, "monitor/findings.json")
    (logger.error if regression else logger.info)(f"{info.name} v{info.version} monitor: " + json.dumps(findings))
    return {
        "run_id": now["run_id"],
        "version": info.version,
        "regression": regression,
        "findings": findings,
        "rolled_back": rolled_back,
    }
