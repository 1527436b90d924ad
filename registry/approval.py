"""What a release manager reads before deciding: each open or failed gate check, with its numbers.

The gate stores an inconclusive check as passed when it hands the decision to a person
(`on_inconclusive: needs-approval`), so "the checks that failed" is empty exactly when someone must
decide, and the approval form used to say only "evidence inconclusive". Here every check that did
not pass, and every inconclusive one, is written out with the effect, its 95 % interval, the p-value
the gate decided on, the minimum detectable effect (MDE) and the number of paired items (n).

What this reads of the gate's result, and nothing more: each check's `name`, `passed` and `detail`;
and in `comparisons[key]` the fields `delta`, `ci_low`, `ci_high`, `mde` and `n` (each comparison a
dict or an object with those attributes).
"""

from __future__ import annotations

from typing import Any


def _field(comparison: Any, name: str) -> Any:
    return comparison.get(name) if isinstance(comparison, dict) else getattr(comparison, name, None)


def _comparison_for(check: Any, comparisons: dict[str, Any]) -> Any:
    """The comparison a check reports on: `<key>.gain_over_base` reads `<key>.vs_base`; an
    inconclusive check's detail starts with its key; a rule check is named `<key>.<label>`."""
    name, detail = check.name, check.detail
    candidates = []
    if name.endswith(".gain_over_base"):
        candidates.append(name.removesuffix(".gain_over_base") + ".vs_base")
    candidates += [detail.split(":", 1)[0], name.rsplit(".", 1)[0], name]
    return next((comparisons[key] for key in candidates if key in comparisons), None)


def open_findings(gate: Any) -> list[str]:
    """One line per failed or inconclusive check, the numbers a person decides on included."""
    comparisons = gate.comparisons or {}
    lines = []
    for check in gate.checks:
        if check.passed and check.name != "inconclusive":
            continue
        text = check.detail if check.name == "inconclusive" else f"{check.name}: {check.detail}"
        comparison = _comparison_for(check, comparisons)
        extra = []
        if comparison is not None:
            delta, low, high = (_field(comparison, f) for f in ("delta", "ci_low", "ci_high"))
            mde, n = _field(comparison, "mde"), _field(comparison, "n")
            if "[" not in text and None not in (delta, low, high):  # a check that states a p-value alone
                extra.append(f"delta {delta:+.3f} [{low:+.3f}, {high:+.3f}]")
            if mde is not None and "minimum detectable effect" not in text:
                extra.append(f"minimum detectable effect {mde:.3f}")
            if n is not None:
                extra.append(f"n={n} paired items")
        lines.append(text + (f"; {', '.join(extra)}" if extra else ""))
    return lines


def approval_title(name: str, version: int, findings: list[str]) -> str:
    first = findings[0] if findings else "the evidence is inconclusive"
    more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
    return f"{name} v{version} needs a release manager: {first}{more}"


def approval_description(
    name: str, version: int, findings: list[str], links: dict[str, str], timeout_s: int, champion: int | None
) -> str:
    """The Markdown a paused run shows beside its form: title, the reason with numbers, the links,
    and what each answer does."""
    stays = f"v{champion} stays champion" if champion is not None else "no version becomes champion"
    lines = [
        f"### {approval_title(name, version, findings)}",
        "",
        "The gate could not decide. What it could not settle, with the numbers (delta and 95% CI of the "
        "candidate minus the champion or base, the p-value the gate decided on, the minimum detectable effect "
        "at this size, n paired items):",
        "",
        *[f"- {line}" for line in findings or ["(no open check recorded: see the card)"]],
        "",
        "Read before deciding:",
        "",
        *[f"- [{label}]({url})" for label, url in links.items()],
        "",
        f"**approve** makes v{version} champion now (the current champion becomes `previous`); **reject** keeps "
        f"the champion. Either way your reason is recorded on the version, in its card and in the audit log. "
        f"Without an answer within {timeout_s // 60} min the run ends, v{version} stays `needs-approval` and {stays}.",
    ]
    return "\n".join(lines)
