"""The model card: what a version is for, what it learned from, and how it scored.

Generated from the run's own records, so it cannot drift from what was trained. It is logged as
an artifact of the promotion run and set as the model version's description.
"""

from __future__ import annotations

from typing import Any


def render_model_card(
    model_name: str, version: int, config: dict[str, Any], lineage: dict[str, str], data_report: dict[str, Any],
    scores: dict[str, float], gate: dict[str, Any], prompt: str,
) -> str:
    train = config["train"]
    lines = [
        f"# {model_name} v{version}",
        "",
        "## Intended use",
        "Answers short arithmetic word problems (addition and subtraction) with a final line "
        "\"The answer is N.\". Built by the llmops nightly pipeline as a demonstration of the platform; "
        "not for any decision that matters.",
        "",
        "## Data",
        f"- Curated dataset hash: `{lineage.get('dataset_hash', '?')}`",
        f"- Rows read {data_report.get('read', '?')}, kept {data_report.get('kept', '?')}; dropped by reason: "
        + (", ".join(f"{k} {v}" for k, v in sorted(data_report.get("dropped", {}).items())) or "none"),
        f"- PII masked: " + (", ".join(f"{k} {v}" for k, v in sorted(data_report.get("pii", {}).items())) or "none"),
        "",
        "## Training",
        f"- Base model: `{config['model']['base']}`",
        f"- Method: {train['method']} (r={train['lora']['r']}, alpha={train['lora']['alpha']}), precision {train['precision']}",
        f"- SFT: {train['sft']['max_steps']} steps, lr {train['sft']['learning_rate']}; "
        + (f"DPO: {train['dpo']['max_steps']} steps, beta {train['dpo']['beta']}" if train["dpo"]["enabled"] else "no DPO"),
        f"- Prompt template (`{lineage.get('prompt', '?')}`): `{prompt}`",
        f"- Training run: `{lineage.get('train_run_id', '?')}`; config hash `{lineage.get('config_hash', '?')[:12]}`; "
        f"git commit `{lineage.get('git_commit', '') or 'unknown'}`",
        "",
        "## Evaluation (held-out split, exact match on the final number)",
        "| model | exact match |",
        "|---|---|",
    ]
    lines += [f"| {who} | {value:.3f} |" for who, value in scores.items()]
    lines += ["", f"Gate decision: **{gate['decision']}**", "", "| check | value | threshold | 95% CI | passed |", "|---|---|---|---|---|"]
    for c in gate["checks"]:
        ci = f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]" if c.get("ci_low") is not None else ""
        lines.append(f"| {c['name']} | {c['value']:+.3f} | {c['threshold']:+.3f} | {ci} | {'yes' if c['passed'] else 'no'} |")
    lines += [
        "",
        "## Limitations",
        "- A tiny model trained in minutes: it gets many sums wrong, and knows nothing outside the task.",
        "- Scores come from one synthetic eval split; they say nothing about other tasks or languages.",
    ]
    return "\n".join(lines) + "\n"
