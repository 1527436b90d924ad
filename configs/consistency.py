"""Checks across config sections, which no single section can make: do the gate's rules name metrics
that the configured suites produce, can the safety rules be met, does the prompt fit its budget.

`load_config` runs these after the schema and before any work, and every flow runs them again at
its start (a deployment's form is validated by the schema alone), so a typo such as
`arithmetic/exact_macth` fails in a second, not after curation, training and evaluation.
"""

from __future__ import annotations

from configs.schema import PROBE_KINDS, RunConfig

# What each built-in suite can score (tasks/evaluate/suites.py); reference-based metrics need
# reference texts, which the runtime check confirms on the loaded items.
SUITE_METRICS: dict[str, set[str]] = {
    "arithmetic": {
        "exact_match",
        "exact_match_strict-match",
        "exact_match_flexible-extract",
        "rouge_l",
        "sentence_chrf",
        "bleu",
        "semantic_similarity",
    },
    "json-format": {"json_valid", "schema_match"},
    "held-out": {"exact_match", "rouge_l", "sentence_chrf", "bleu", "semantic_similarity"},
    "safety": {"probe_pass"},
}


def produced_metrics(cfg: RunConfig) -> dict[str, set[str] | None]:
    """suite -> metrics it can produce; None for lm-eval tasks, whose metrics are the task's own."""
    out: dict[str, set[str] | None] = {s: SUITE_METRICS[s] for s in cfg.eval.suites}
    out |= {t: None for t in cfg.eval.harness_tasks}
    return out


def _metric_problem(where: str, key: str, produced: dict[str, set[str] | None]) -> str | None:
    suite, _, metric = key.partition("/")
    if suite not in produced:
        return (
            f"{where}: '{key}' names suite '{suite}', which is not evaluated "
            f"(eval.suites: {sorted(s for s in produced)}); add it to eval.suites or remove the rule"
        )
    metrics = produced[suite]
    if metrics is not None and metric not in metrics:
        return f"{where}: suite '{suite}' produces no metric '{metric}'; it produces: {', '.join(sorted(metrics))}"
    return None


def cross_section_problems(cfg: RunConfig) -> list[str]:
    produced = produced_metrics(cfg)
    problems = [_metric_problem("gate.primary", cfg.gate.primary, produced)]
    problems += [_metric_problem(f"gate.rules.{rule.metric}", rule.metric, produced) for rule in cfg.gate.rules]
    if cfg.gate.safety_must_pass and "safety" not in produced:
        problems.append(
            f"gate.safety_must_pass: {cfg.gate.safety_must_pass} needs the safety suite, which is not in "
            "eval.suites, so every candidate would be rejected; add safety to eval.suites, or set "
            "gate.safety_must_pass: []"
        )
    problems += [
        f"gate.safety_must_pass: unknown probe kind '{kind}'; the safety suite has {', '.join(PROBE_KINDS)}"
        for kind in cfg.gate.safety_must_pass
        if kind not in PROBE_KINDS
    ]
    return [p for p in problems if p]


def narrowed_to_suites(cfg: RunConfig, suites: list[str]) -> RunConfig:
    """The config with only `suites` evaluated and the gate narrowed with them: rules on other
    suites dropped, safety rules dropped without the safety suite. What `llmops evaluate --suite`
    runs, so that asking for one suite is not refused for the gate's sake."""
    rules = [rule for rule in cfg.gate.rules if rule.metric.split("/", 1)[0] in suites]
    if not rules:
        first = suites[0]
        metric = f"{first}/{sorted(SUITE_METRICS.get(first, {'exact_match'}))[0]}"
        rules = [cfg.gate.rules[0].model_copy(update={"metric": metric})]
    watched = [rule.metric for rule in rules]
    primary = cfg.gate.primary if cfg.gate.primary in watched else watched[0]
    gate = cfg.gate.model_copy(
        update={
            "rules": rules,
            "primary": primary,
            "safety_must_pass": cfg.gate.safety_must_pass if "safety" in suites else [],
        }
    )
    return cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"suites": list(suites)}), "gate": gate})
