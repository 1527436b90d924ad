"""The model card: what a version is for, what it learned from, how it scored, and what was decided.

Generated from the run's own records, so it cannot drift from what was trained. It is logged as
an artifact of the promotion run and set as the model version's description. Its Decision section
(right under the title) is the one part rewritten later: by the registry routine that records a
release manager's decision (registry/promotion.py), so the card never reads `needs-approval` after
a person approved, and the gate's own verdict stays below it.
"""

from __future__ import annotations

from typing import Any

from registry.lineage import Lineage


def render_model_card(
    model_name: str,
    version: int,
    config: dict[str, Any],
    lineage: Lineage,
    data_report: dict[str, Any],
    scores: dict[str, dict[str, float]],
    gate: dict[str, Any],
    prompt: str,
    intervals: dict[str, dict[str, Any]] | None = None,
) -> str:
    """`intervals`: the candidate's 95 % interval per suite/metric (`tasks.evaluate.intervals.metric_interval`),
    shown beside its mean."""
    train = config["train"]
    pref = train.get("preference") or {"enabled": False}
    lines = [
        f"# {model_name} v{version}",
        "",
        "## Intended use",
        config["registry"]["intended_use"],
        "",
        "## Data",
        f"- Curated dataset hash: `{(lineage.dataset_hash or '?')}`",
        f"- Rows read {data_report.get('read', '?')}, kept {data_report.get('kept', '?')}; dropped by reason: "
        + (", ".join(f"{k} {v}" for k, v in sorted(data_report.get("dropped", {}).items())) or "none"),
        "- PII masked: " + (", ".join(f"{k} {v}" for k, v in sorted(data_report.get("pii", {}).items())) or "none"),
        "",
        "## Training",
        f"- Base model: `{config['model']['base']}`",
        f"- Method: {train['method']} (r={train['lora']['r']}, alpha={train['lora']['alpha']}), "
        f"precision {train['precision']}",
        f"- SFT: {train['sft']['max_steps']} steps, lr {train['sft']['learning_rate']}"
        + (", packed" if train.get("packing") else "")
        + "; "
        + (
            f"{pref['method'].upper()}: {pref['max_steps']} steps, beta {pref['beta']}"
            if pref["enabled"]
            else "no preference tuning"
        ),
        f"- Prompt version `{(lineage.prompt or '?')}` (trained and evaluated with it): `{prompt}`",
        f"- Training run: `{(lineage.train_run_id or '?')}`; config hash `{(lineage.config_hash or '?')[:12]}`; "
        f"git commit `{lineage.git_commit or 'unknown'}`",
        "",
        "## Evaluation (same items for every model; the candidate with its 95% interval)",
    ]
    who = list(scores)
    metrics = sorted({m for per_model in scores.values() for m in per_model})
    lines += ["| suite/metric | " + " | ".join(who) + " |", "|---" * (len(who) + 1) + "|"]
    intervals = intervals or {}

    def cell(w: str, m: str) -> str:
        if m not in scores[w]:
            return ""
        ci = intervals.get(m) if w == "candidate" else None
        return f"{scores[w][m]:.3f}" + (
            f" [{ci['ci_low']:.3f}, {ci['ci_high']:.3f}]" if ci and ci.get("ci_low") is not None else ""
        )

    for m in metrics:
        lines.append(f"| {m} | " + " | ".join(cell(w, m) for w in who) + " |")
    lines += ["", f"Gate verdict: **{gate['decision']}**", "", "| check | passed | evidence |", "|---|---|---|"]
    for c in gate["checks"]:
        lines.append(f"| {c['name']} | {check_status(c['name'], c['passed'])} | {c['detail']} |")
    if gate.get("comparisons"):
        # The p that decided: one-sided against the margin (or the gain over base), Holm-adjusted across rules.
        lines += [
            "",
            "| comparison | delta | 95% CI | p (one-sided vs margin, Holm) | MDE | method |",
            "|---|---|---|---|---|---|",
        ]
        for name, c in gate["comparisons"].items():
            mde = f"{c['mde']:.3f}" if c.get("mde") is not None else ""
            lines.append(
                f"| {name} | {c['delta']:+.3f} | [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | "
                f"{c.get('p_adjusted', c.get('p_value_margin', c['p_value'])):.4f} | {mde} | {c.get('method', '')} |"
            )
    lines += [
        "",
        "## Limitations",
        *limitations(config, metrics),
    ]
    return "\n".join(lines) + "\n"


def data_report(curate_metrics: dict[str, float]) -> dict[str, Any]:
    """The curate run's counts (its MLflow metrics) as the card's Data section shows them."""
    return {
        "read": int(curate_metrics.get("rows_read", 0)),
        "kept": int(curate_metrics.get("rows_kept", 0)),
        "dropped": {k.removeprefix("dropped."): int(v) for k, v in curate_metrics.items() if k.startswith("dropped.")},
        "pii": {k.removeprefix("pii."): int(v) for k, v in curate_metrics.items() if k.startswith("pii.")},
    }


def limitations(config: dict[str, Any], metrics: list[str]) -> list[str]:
    """What the card cannot promise, from what was trained and measured rather than fixed text."""
    base = config["model"]["base"]
    suites = sorted({m.split("/", 1)[0] for m in metrics})
    model = (
        "- A tiny model built and trained in minutes: it gets many answers wrong and knows nothing outside the task."
        if base == "embedded"
        else f"- Fine-tuned from `{base}`: it keeps that model's limitations and learned only what its dataset holds."
    )
    return [
        model,
        f"- Scores come from the suites above ({', '.join(suites) or 'none'}) on their items only; "
        "they say nothing about other tasks, languages or inputs unlike those items.",
    ]


def check_status(name: str, passed: bool) -> str:
    """An inconclusive check is neither: the gate stores it as passed when it asks a person (its
    `on_inconclusive: needs-approval`), which must not read as evidence that it passed."""
    if name == "inconclusive":
        return "open"
    return "yes" if passed else "no"


def with_section(card: str, title: str, body: str, at_top: bool = True) -> str:
    """The card with section `## title` holding `body`: replaced where it is, else added under the
    card's title (`at_top`) or at its end."""
    heading = f"## {title}"
    lines = card.rstrip("\n").split("\n") if card.strip() else []
    body_lines = body.strip("\n").split("\n")
    start = next((i for i, line in enumerate(lines) if line == heading), None)
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = [heading, "", *body_lines] + ([""] if end < len(lines) else [])
    elif at_top and lines and lines[0].startswith("# "):
        lines[1:1] = ["", heading, "", *body_lines] + ([] if len(lines) > 1 and not lines[1].strip() else [""])
    else:
        lines += ([""] if lines else []) + [heading, "", *body_lines]
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n"


def with_decision(card: str, title: str, decision_markdown: str) -> str:
    """The card with its Decision section set; a version without a card gets one with its title."""
    return with_section(card if card.strip() else f"# {title}\n", "Decision", decision_markdown)
