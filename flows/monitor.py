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

from dataclasses import asdict, dataclass

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from configs.load import check_run_config, default_config
from configs.schema import GateConfig, RunConfig
from core.errors import UserError
from flows.evaluate import evaluate_flow
from registry import models, tracking
from registry.evaluation import stored_results
from registry.gate import EVIDENCE_FIELDS, non_inferiority
from registry.promotion import apply_decision, rollback
from tasks.evaluate.results import EvalResults, SuiteResult


@dataclass
class Finding:
    """One gate rule, judged on the champion now against its promotion scores."""

    metric: str
    status: str  # "regression", "ok", "inconclusive" or "skipped"
    why: str = ""
    margin: float | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    mde: float | None = None

    def span(self) -> str:
        return f"{self.delta:+.3f} [{self.ci_low:+.3f}, {self.ci_high:+.3f}]"


@dataclass
class MonitorResult:
    run_id: str
    version: int
    regression: bool
    findings: list[Finding]
    rolled_back: tuple[int, int] | None


def stored_baseline(version: models.VersionInfo) -> dict[str, SuiteResult]:
    """What this version scored in the evaluation it was promoted on (the gate's evidence run)."""
    run_id = version.tags.get("gate.evidence_run_id")
    if not run_id:
        raise UserError(
            f"model {version.name}/{version.version}",
            "was not promoted through the gate (no evidence run)",
            "monitor a version the gate promoted, or run `llmops promote --train-run ...` for it",
        )
    return stored_results(run_id).of("candidate")


def assess(policy: GateConfig, baseline: dict[str, SuiteResult], current: dict[str, SuiteResult]) -> list[Finding]:
    """One finding per gate rule: `regression`, `ok`, `inconclusive` (with why), or `skipped` when the
    suite's items changed since the baseline (their scores cannot be paired)."""
    rules = []
    findings = []
    for rule in policy.rules:
        suite = rule.metric.split("/", 1)[0]
        if suite not in baseline or suite not in current or baseline[suite].version != current[suite].version:
            findings.append(Finding(rule.metric, "skipped", "suite not in both runs, or its items changed"))
        else:
            rules.append(rule)
    if not rules:
        return findings
    scoped = policy.model_copy(update={"rules": rules})
    results = EvalResults({"candidate": current, "baseline": baseline})
    comparisons, checks, questions = non_inferiority(scoped, results, "baseline", "vs_baseline", by_identity=False)
    status = {c.name.removesuffix(".vs_baseline"): "ok" if c.passed else "regression" for c in checks}
    for rule in rules:
        comp = comparisons.get(rule.metric)
        why = next((q.split(": ", 1)[1] for q in questions if q.startswith(f"{rule.metric}: ")), "")
        evidence = {f: getattr(comp, f) for f in EVIDENCE_FIELDS} if comp else {}
        findings.append(
            Finding(rule.metric, status.get(rule.metric, "inconclusive"), why, -rule.max_regression, **evidence)
        )
    return findings


def evidence_tags(findings: list[Finding]) -> dict[str, str]:
    tags = {}
    for f in findings:
        key = f"monitor.{f.metric.replace('/', '.')}"
        for field in EVIDENCE_FIELDS:
            if getattr(f, field) is not None:
                tags[f"{key}.{field}"] = f"{getattr(f, field):.4f}"
        tags[f"{key}.status"] = f.status
    return tags


@flow(name="monitor")
def monitor_flow(model: str = "", dataset: str = "", config: RunConfig = default_config()) -> MonitorResult:
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
    findings = assess(config.gate, baseline, now.results.of("candidate"))
    regression = any(f.status == "regression" for f in findings)
    models.tag_version(
        info.name,
        info.version,
        evidence_tags(findings) | {"monitor.last_run_id": now.run_id, "monitor.regression": str(regression).lower()},
    )
    rolled_back = None
    if regression:
        why = "; ".join(
            f"{f.metric} {f.span()} beyond margin {f.margin:+.3f}" for f in findings if f.status == "regression"
        )
        apply_decision(
            info.name,
            info.version,
            "regression",
            "monitor",
            why,
            evidence_run_id=now.run_id,
            metrics={f.metric: {k: getattr(f, k) for k in ("delta", "ci_low", "ci_high", "p_value")} for f in findings},
        )
        if config.monitor.rollback_on_regression:
            try:
                rolled_back = rollback(info.name, "monitor", f"regression: {why}")
            except UserError as err:
                logger.error(f"regression found but no rollback possible: {err}")
    lines = ["| metric | status | delta | 95% CI | margin | why |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {f.metric} | {f.status} | "
        + (f"{f.delta:+.3f} | [{f.ci_low:+.3f}, {f.ci_high:+.3f}]" if f.delta is not None else " | ")
        + (f" | {f.margin:+.3f}" if f.margin is not None else " | ")
        + f" | {f.why} |"
        for f in findings
    ]
    create_markdown_artifact(
        "\n".join(lines),
        key="champion-monitor",
        description=f"{info.name} v{info.version}: {'REGRESSION' if regression else 'no regression'}",
    )
    tracking.log_json(now.run_id, [asdict(f) for f in findings], "monitor/findings.json")
    (logger.error if regression else logger.info)(
        f"{info.name} v{info.version} monitor: " + "; ".join(f"{f.metric} {f.status}" for f in findings)
    )
    return MonitorResult(now.run_id, info.version, regression, findings, rolled_back)
