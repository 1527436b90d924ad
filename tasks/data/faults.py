"""What stops a finished curation run, and what it only warns about.

Both are judged after every output is written, so that the person reading the error can open
`report.json` and the quarantine and see for themselves: an input that could not be read (the run
curated the others, then fails unless `curate.allow_unreadable`), and a quality rule that dropped
more than `curate.quality.max_drop_fraction` of the rows it saw (a rule calibrated for another kind
of text, far more often than a corpus that bad). An input that held no rows only warns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configs.quality import QualityConfig
from configs.schema import CurateConfig
from core.errors import UserError
from tasks.data.quality import QualityStats

# The config field that relaxes each rule, and the group (`*_enabled`) it belongs to.
RELAX_FIELD = {
    "language_not_allowed": "allowed_languages",
    "language_low_confidence": "min_language_score",
    "gopher_too_few_words": "min_words",
    "gopher_too_many_words": "max_words",
    "gopher_mean_word_length": "min_mean_word_length",
    "gopher_symbol_ratio": "max_symbol_word_ratio",
    "gopher_bullet_lines": "max_bullet_lines_ratio",
    "gopher_ellipsis_lines": "max_ellipsis_lines_ratio",
    "gopher_alpha_words": "min_alpha_words_ratio",
    "gopher_stop_words": "min_stop_words",
    "rep_dup_lines": "max_dup_line_fraction",
    "rep_dup_paragraphs": "max_dup_paragraph_fraction",
    "rep_dup_line_chars": "max_dup_line_char_fraction",
    "rep_dup_paragraph_chars": "max_dup_paragraph_char_fraction",
    "rep_top_ngram": "max_top_ngram_share",
    "rep_dup_ngram": "max_dup_ngram_share",
    "c4_lorem_ipsum": "c4_lorem_ipsum",
    "c4_javascript": "c4_javascript",
    "c4_curly_brace": "c4_curly_brace",
    "c4_policy": "max_policy_lines_ratio",
    "c4_terminal_punct": "min_terminal_punct_ratio",
    "toxic_words": "max_toxic_share",
}
GROUP_PREFIX = {"language_": "language", "gopher_": "gopher", "rep_": "repetition", "c4_": "c4", "toxic": "toxicity"}


def rule_group(reason: str) -> str:
    return next(group for prefix, group in GROUP_PREFIX.items() if reason.startswith(prefix))


def rule_shares(stats: QualityStats) -> dict[str, dict[str, float | int]]:
    """Per rule that dropped anything: rows its group saw, rows it dropped, and the share."""
    out = {}
    for reason, n in sorted(stats.dropped.items()):
        seen = stats.seen[rule_group(reason)]
        out[reason] = {"seen": seen, "dropped": n, "fraction": round(n / seen, 4) if seen else 0.0}
    return out


def rule_over_limit(stats: QualityStats, cfg: QualityConfig) -> tuple[str, dict[str, float | int]] | None:
    """The rule with the largest share over `max_drop_fraction`, among rules whose group saw at
    least `drop_check_min_rows` rows; None when every rule stays within the limit."""
    over = [
        (r, s)
        for r, s in rule_shares(stats).items()
        if s["seen"] >= cfg.drop_check_min_rows and s["fraction"] > cfg.max_drop_fraction
    ]
    return max(over, key=lambda rs: (rs[1]["fraction"], rs[0])) if over else None


class CurationStopped(UserError):
    """A run that wrote its outputs and then stopped; `result` is what it wrote (with its paths),
    so that a caller can still copy the outputs where the user asked for them."""

    def __init__(self, subject: str, problem: str, fix: str, result: Any):
        super().__init__(subject, problem, fix)
        self.result = result

    def __reduce__(self):  # rebuilt from its parts when Prefect or Dask moves it between processes
        return type(self), (self.subject, self.problem, self.fix, self.result)


def input_warnings(report: dict[str, Any], settings: CurateConfig) -> list[str]:
    """One line per input worth a look that does not stop the run."""
    broken = {u["path"] for u in report["unreadable"]}
    warnings = [
        f"{path}: holds no rows (an empty file?); nothing was curated from it"
        for path, src in report["sources"].items()
        if src["read"] == 0 and path not in broken
    ]
    if settings.allow_unreadable:
        warnings += [
            f"{u['path']}: {u['reason']} (skipped: curate.allow_unreadable is true)" for u in report["unreadable"]
        ]
    return warnings


def check_finished_run(result: Any, settings: CurateConfig, stats: QualityStats) -> None:
    """Raises `CurationStopped` (carrying `result`, a `CurateResult`) for unreadable inputs (unless
    allowed), then for a rule over its limit."""
    report = result.report
    unreadable = report["unreadable"]
    where = f"report: {result.report_path}"
    if unreadable and not settings.allow_unreadable:
        if len(unreadable) == 1:
            u = unreadable[0]
            raise CurationStopped(
                u["path"],
                u["reason"],
                "; ".join(
                    filter(
                        None,
                        [
                            u["fix"],
                            "the other inputs were curated" if len(report["sources"]) > 1 else "",
                            "set curate.allow_unreadable=true to accept what could be read",
                            where,
                        ],
                    )
                ),
                result,
            )
        listing = "; ".join(f"{u['path']}: {u['reason']}" for u in unreadable)
        raise CurationStopped(
            f"{len(unreadable)} inputs",
            f"cannot be read: {listing}",
            f"fix or remove them, or set curate.allow_unreadable=true to accept what could be read; {where}",
            result,
        )
    over = rule_over_limit(stats, settings.quality)
    if over is None:
        return
    reason, share = over
    q = settings.quality
    field = RELAX_FIELD[reason]
    examples = "; ".join(f"[{_example_name(e)}] {e['text']!r}" for e in stats.examples.get(reason, []))
    inputs = ", ".join(Path(p).name for p in report["sources"])
    raise CurationStopped(
        f"quality rule {reason}",
        f"dropped {share['dropped']} of the {share['seen']} rows it saw in {inputs} ({share['fraction']:.1%}), "
        f"more than curate.quality.max_drop_fraction={q.max_drop_fraction}; examples: {examples}",
        f"if such rows are wanted, relax it with --set curate.quality.{field}=... (now {getattr(q, field)}) or "
        f"turn the group off with curate.quality.{rule_group(reason)}_enabled=false; every dropped row is in "
        f"{result.quarantine_path}; {where}",
        result,
    )


def _example_name(example: dict[str, str]) -> str:
    name = Path(example["source"]).name
    return example["id"] if not name or example["id"].startswith(name) else f"{name} {example['id']}"
