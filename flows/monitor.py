"""Monitor: re-run the frozen suites on the champion and compare with the scores it was promoted on.

    llmops evaluate --model models:/tiny-arith@champion

A significant drop on a gate metric is a regression: the flow tags the model version, writes a
Prefect artifact, and (if `monitor.rollback_on_regression`) moves `champion` back to `previous`.
The CLI exits with code 3 so a scheduler can alert on it.
"""

from __future__ import annotations

import json

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from configs.schema import RunConfig
from flows.evaluate import evaluate_flow
from registry import models, tracking
from registry.audit import record_decision
from registry.stats import paired_mean_diff


def stored_baseline(version: models.VersionInfo) -> dict:
    """Per-item scores of the evaluation this version was promoted on."""
    import mlflow

    run_id = version.tags.get("gate.evidence_run_id")
    if not run_id:
        raise ValueError(f"v{version.version} has no gate.evidence_run_id tag: it was not promoted through the gate")
    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/eval/per_item_scores.json"))["candidate"]


@flow(name="monitor")
def monitor_flow(config: RunConfig, eval_path: str, model_dir: str, version: int) -> dict:
    reg, logger = config.registry, get_run_logger()
    info = models.resolve_version(f"models:/{reg.model_name}/{version}")
    baseline = stored_baseline(info)
    now = evaluate_flow(config, eval_path, candidate_dir=model_dir, compare_champion=False, fresh=True)
    findings = []
    for key in config.gate.rules:
        suite, metric = key.split("/", 1)
        before, current = baseline.get(suite), now["results"]["candidate"].get(suite)
        if before is None or current is None or before["version"] != current["version"]:
            findings.append({"metric": key, "status": "skipped", "why": "suite not in both runs, or its items changed"})
            continue
        d = paired_mean_diff(current["scores"][metric], before["scores"][metric], confidence=1 - config.monitor.alpha)
        regressed = d["ci_high"] < 0
        findings.append({"metric": key, "status": "regression" if regressed else "ok", "delta": d["delta"],
                         "ci_low": d["ci_low"], "ci_high": d["ci_high"], "p_value": d["p_value"]})
    regression = any(f["status"] == "regression" for f in findings)
    tags = {"monitor.last_run_id": now["run_id"], "monitor.regression": str(regression).lower()}
    tags |= {f"monitor.{f['metric'].replace('/', '.')}.delta": f"{f['delta']:.4f}" for f in findings if "delta" in f}
    models.tag_version(reg.model_name, version, tags)
    rolled_back = None
    if regression:
        why = "; ".join(f"{f['metric']} {f['delta']:+.3f} [{f['ci_low']:+.3f}, {f['ci_high']:+.3f}]"
                        for f in findings if f["status"] == "regression")
        record_decision(reg.model_name, version, "regression", "monitor", why, now["run_id"])
        if config.monitor.rollback_on_regression:
            try:
                rolled_back = models.rollback(reg.model_name, "monitor", f"regression: {why}")
            except ValueError as err:
                logger.error(f"regression found but no rollback possible: {err}")
    lines = ["| metric | status | delta | 95% CI |", "|---|---|---|---|"]
    lines += [f"| {f['metric']} | {f['status']} | {f.get('delta', 0):+.3f} | "
              + (f"[{f['ci_low']:+.3f}, {f['ci_high']:+.3f}]" if "ci_low" in f else "") + " |" for f in findings]
    create_markdown_artifact("\n".join(lines), key="champion-monitor",
                             description=f"{reg.model_name} v{version}: {'REGRESSION' if regression else 'no regression'}")
    tracking.log_json(now["run_id"], findings, "monitor/findings.json")
    (logger.error if regression else logger.info)(f"{reg.model_name} v{version} monitor: " + json.dumps(findings))
    return {"run_id": now["run_id"], "regression": regression, "findings": findings, "rolled_back": rolled_back}
