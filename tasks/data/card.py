"""The data card: what a curated dataset holds and how it was made, next to the data itself.

A reviewer deciding whether to train on a dataset, or a reader wondering why a model knows
something, needs the answers in one page without rerunning anything: where the rows came from,
what was removed and why, which thresholds did it, what was masked, which eval items leaked. Every
number here comes from the run's `report.json` and every threshold from its config, so the card
cannot drift from what was done. It is written into the dataset folder and travels with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configs.schema import CurateConfig

STEP_DOC = {
    "read": "parse each record, map the layout it fits onto a row; lines over the reading cap are too_long",
    "validate": "check the shape a trainer needs; normalise Unicode and whitespace",
    "synthesize": "a teacher model writes variants of kept rows; they pass every later step too",
    "exact_dedup": "drop a row whose normalised, lower-cased text was seen before (per kind)",
    "near_dedup": "drop a row whose verified Jaccard with an earlier kept row reaches the threshold",
    "length": "drop rows outside the character range",
    "quality": "language ID, heuristic quality rules and the toxicity word list",
    "pii": "mask e-mails, phone numbers, cards, IBANs, SSNs, IPs and secrets (drops nothing)",
    "decontaminate": "drop a row that shares a word n-gram with an eval item",
}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _step_settings(step: str, s: CurateConfig) -> str:
    q = s.quality
    if step == "near_dedup":
        return (
            f"MinHash, {s.minhash_num_perm} permutations, Jaccard >= {s.minhash_threshold}, "
            f"{s.shingle_words}-word shingles"
        )
    if step == "length":
        return f"{s.min_chars} <= characters <= {s.max_chars}"
    if step == "pii":
        return "on" if s.mask_pii else "off (mask_pii: false)"
    if step == "synthesize":
        syn = s.synthetic
        return (
            f"teacher {syn.teacher}, {', '.join(syn.operations)}, {syn.variants_per_seed} per seed"
            if syn.enabled
            else "off"
        )
    if step == "decontaminate":
        return f"{s.decontaminate_n}-word n-grams"
    if step == "quality":
        groups = [
            name
            for name, on in (
                ("language", q.language_enabled),
                ("gopher", q.gopher_enabled),
                ("repetition", q.repetition_enabled),
                ("c4", q.c4_enabled),
                ("toxicity", q.toxicity_enabled),
            )
            if on
        ]
        return ", ".join(groups) or "every group off"
    return ""


def _quality_lines(s: CurateConfig) -> list[str]:
    q = s.quality
    off = "off"
    return [
        "- Language ID (py3langid): "
        + (f"keep {q.allowed_languages} at score >= {q.min_language_score}" if q.language_enabled else off),
        "- Gopher document rules: "
        + (
            f"{q.min_words} <= words <= {q.max_words}, "
            f"mean word length {q.min_mean_word_length}-{q.max_mean_word_length}, "
            f"symbols/words <= {q.max_symbol_word_ratio}, bullet lines <= {q.max_bullet_lines_ratio}, "
            f"ellipsis lines <= {q.max_ellipsis_lines_ratio}, alphabetic words >= {q.min_alpha_words_ratio}, "
            f"stop words >= {q.min_stop_words}"
            if q.gopher_enabled
            else "off (web-page rules; they drop short instruction rows, see CurateQualityConfig)"
        ),
        "- Gopher repetition (per message / field): "
        + (
            f"from {q.rep_min_words} words; duplicate lines <= {q.max_dup_line_fraction}, "
            f"duplicate paragraphs <= {q.max_dup_paragraph_fraction}, chars in duplicate lines <= "
            f"{q.max_dup_line_char_fraction}, in duplicate paragraphs <= {q.max_dup_paragraph_char_fraction}, "
            f"top n-gram share {q.max_top_ngram_share}, duplicated n-gram share {q.max_dup_ngram_share}"
            if q.repetition_enabled
            else off
        ),
        "- C4 rules: "
        + (
            f"lorem ipsum {_on(q.c4_lorem_ipsum)}, javascript {_on(q.c4_javascript)}, curly brace "
            f"{_on(q.c4_curly_brace)}, policy lines {_on(q.c4_policy)} "
            f"(drop above {q.max_policy_lines_ratio} of lines), "
            f"terminal punctuation {_on(q.c4_terminal_punct)} (>= {q.min_terminal_punct_ratio} of lines, rows of "
            f"{q.terminal_punct_min_lines}+ lines, chat rows {_on(q.terminal_punct_on_chat)}, lines ending in a digit "
            f"count as ended: {_on(q.terminal_punct_numbers)})"
            if q.c4_enabled
            else off
        ),
        "- Toxicity word list: "
        + (f"listed words <= {q.max_toxic_share} of words; severe terms always drop" if q.toxicity_enabled else off),
        f"- No rule may drop more than {q.max_drop_fraction:.0%} of the rows it saw (judged from "
        f"{q.drop_check_min_rows} rows on), or the run stops",
    ]


def _source_format(src: dict[str, Any], settings: CurateConfig) -> str:
    formats = src.get("formats") or {}
    if len(formats) > 1:
        return "mixed: " + ", ".join(f"{fmt} {n}" for fmt, n in formats.items()) + " (per row)"
    return src["format"] + (" (auto-detected)" if settings.format == "auto" else "")


def _unreadable_lines(report: dict[str, Any]) -> list[str]:
    if not report.get("unreadable"):
        return []
    return [
        "",
        "Could not be read (`curate.allow_unreadable` decides whether the run fails):",
        "",
        _table(
            ["input", "why", "rows cut off"], [[f"`{u['path']}`", u["reason"], u["rows"]] for u in report["unreadable"]]
        ),
    ]


def render_data_card(report: dict[str, Any], settings: CurateConfig) -> str:
    read, kept = report["read"], report["kept"]
    dropped = sum(report["dropped"].values())
    step_of = {reason: step for step, reasons in report["dropped_by_step"].items() for reason in reasons}
    synthetic = report.get("synthetic_rows", 0)
    out = [
        f"# Data card: dataset-{report['dataset_hash_short']}",
        "",
        "Curated by `llmops curate`. Content hash (sha256 of sft.jsonl, NUL, pref.jsonl"
        + (", NUL, the text rows as JSON lines" if report["text_rows"] else "")
        + f"): `{report['dataset_hash']}`.",
        "",
        "## Contents",
        "",
        _table(
            ["", "rows"],
            [
                ["read", read],
                ["kept", f"{kept} ({_pct(kept, read)})"],
                ["dropped", f"{dropped} ({_pct(dropped, read)})"],
                ["chat (sft)", report["sft_rows"]],
                ["preference pairs", report["pref_rows"]],
                ["plain text", report["text_rows"]],
            ],
        ),
        "",
        "Files: "
        + ", ".join(f"`{k}.parquet`" for k in ("sft", "pref", "text") if report[f"{k}_rows"])
        + (", " if kept else "")
        + "`sft.jsonl`, `pref.jsonl` (what training reads).",
        "",
        f"Synthetic share: {_pct(synthetic, kept) if kept else '0.0%'} "
        f"({synthetic} kept rows carry a `synthetic` marker).",
        "",
        "## Sources",
        "",
        _table(
            ["input", "format", "read", "kept"],
            [
                [f"`{path}`", _source_format(src, settings), src["read"], src["kept"]]
                for path, src in report["sources"].items()
            ],
        ),
        *_unreadable_lines(report),
        "",
        "## Steps, in run order",
        "",
        "A row leaves at the first step that fails it; its reason and the row are in `quarantine.jsonl`.",
        "",
        _table(
            ["step", "what it does", "settings", "dropped"],
            [
                [
                    step,
                    STEP_DOC[step],
                    _step_settings(step, settings),
                    sum(report["dropped_by_step"].get(step, {}).values()),
                ]
                for step in ["read", *report["steps"]]
            ],
        ),
        "",
        "## Drop reasons",
        "",
        _table(
            ["reason", "step", "rows", "share of read"],
            [
                [reason, step_of.get(reason, ""), n, _pct(n, read)]
                for reason, n in sorted(report["dropped"].items(), key=lambda kv: (-kv[1], kv[0]))
            ],
        )
        if report["dropped"]
        else "None.",
        "",
        "## Filters and thresholds",
        "",
        f"- Length: {settings.min_chars} <= characters <= {settings.max_chars} (too_short / too_long)",
        "- Exact dedup: sha1 of the normalised, lower-cased text, within each kind; the first copy stays",
        f"- Near dedup: MinHash LSH with {settings.minhash_num_perm} permutations over {settings.shingle_words}-word "
        f"shingles; a candidate is dropped when its exact Jaccard with an earlier kept row is >= "
        f"{settings.minhash_threshold}",
        *_quality_lines(settings),
        "",
        "## PII",
        "",
        (
            "Masked with placeholders such as [EMAIL], rows kept:\n\n"
            + _table(["kind", "masked"], [[k, n] for k, n in report["pii"].items()])
        )
        if "pii" in report["steps"] and settings.mask_pii
        else "Not masked (the pii step did not run).",
        "",
        "## Decontamination",
        "",
    ]
    if "decontaminate" not in report["steps"]:
        out.append("Not run: the rows were not checked against any eval set.")
    else:
        sets = report["eval_items"]
        out.append(
            f"Rows sharing a {settings.decontaminate_n}-word n-gram with an item of "
            + (", ".join(f"`{p}` ({n} items)" for p, n in sets.items()) or "no eval set")
            + f" were dropped: {report['dropped'].get('eval_contamination', 0)} rows."
        )
        hits = list(report["decontamination"].items())
        if hits:
            out += ["", _table(["eval item", "training rows caught"], [[i, n] for i, n in hits[:20]])]
            if len(hits) > 20:
                out.append(f"\n... and {len(hits) - 20} more items (all in report.json).")
    out += ["", "## Languages", ""]
    if report["languages"]:
        seen = sum(report["languages"].values())
        out.append(
            "Detected on the rows the quality step saw (py3langid):\n\n"
            + _table(["language", "rows", "share"], [[k, n, _pct(n, seen)] for k, n in report["languages"].items()])
        )
    else:
        out.append("Not measured (the quality step or its language check did not run).")
    return "\n".join(out) + "\n"


def write_data_card(report: dict[str, Any], settings: CurateConfig, dataset_dir: Path) -> Path:
    path = Path(dataset_dir) / "DATACARD.md"
    path.write_text(render_data_card(report, settings), encoding="utf-8")
    return path
