"""Heuristic quality filters from the web-corpus papers, as small checks usable with `apply_filter`.

Each check is `check(row, *, thresholds) -> None | reason`: None keeps the row, a reason string
drops it under that name in the ledger. Defaults are the published values:

- Gopher: Rae et al. 2021, "Scaling Language Models" (MassiveText quality and repetition rules,
  Appendix A and Table A1); FineWeb (Penedo et al. 2024) re-implements them in datatrove.
- C4: Raffel et al. 2020 ("lorem ipsum", "javascript", "{", policy boilerplate, terminal
  punctuation), with FineWeb's variants where noted.

Those rules were written for web pages. Instruction and chat rows are shorter and often hold code,
JSON or lists, so `QualityConfig` keeps every threshold and every rule group switchable, and
switches off by default the rules that mostly hurt such data (curly braces; terminal punctuation
on chat rows). `filter_quality` runs the checks in order and drops a row at the first that fails,
so each drop is counted once under the most specific reason. `configs.quality.CurateQualityConfig`
holds the values the curate stage uses, calibrated on instruction and chat rows (GSM8K, HH).

A rule that drops a large share of a corpus is more often miscalibrated for that corpus than right
about it (C4's punctuation rule once dropped 28% of GSM8K's worked solutions), so `QualityStats`
counts, per rule, the rows its group saw and the rows it dropped; the curation stops
(`tasks.data.faults`) when one drops more than `max_drop_fraction` of what it saw.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Iterable, Iterator

from configs.quality import DUP_NGRAM_MAX, TOP_NGRAM_MAX, QualityConfig
from tasks.data.records import Ledger, Row, apply_filter

Check = Callable[[Row], str | None]

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})  # Gopher's list
BULLETS = ("•", "‣", "◦", "⁃", "●", "▪", "-", "*")
ELLIPSES = ("...", "…")
TERMINAL_PUNCT = (".", "!", "?", '"', "'", "”", "’")
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies")
_PUNCT = string.punctuation + "“”‘’…–—«»"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def _words(text: str) -> list[str]:
    """Whitespace tokens with surrounding punctuation removed; punctuation-only tokens are not words."""
    return [w for w in (t.strip(_PUNCT) for t in text.split()) if w]


# ---------------------------------------------------------------- Gopher quality (Rae et al. 2021)


def gopher_quality(
    row: Row,
    *,
    min_words: int = 50,
    max_words: int = 100_000,
    min_mean_word_length: float = 3.0,
    max_mean_word_length: float = 10.0,
    max_symbol_word_ratio: float = 0.1,
    max_bullet_lines_ratio: float = 0.9,
    max_ellipsis_lines_ratio: float = 0.3,
    min_alpha_words_ratio: float = 0.8,
    min_stop_words: int = 2,
) -> str | None:
    """Gopher's document rules. Stop words count distinct words, as the paper phrases it."""
    text = row.text()
    tokens = text.split()
    words = _words(text)
    n = len(words)
    if n < min_words:
        return "gopher_too_few_words"
    if n > max_words:
        return "gopher_too_many_words"
    mean_len = sum(map(len, words)) / n if n else 0.0
    if not min_mean_word_length <= mean_len <= max_mean_word_length:
        return "gopher_mean_word_length"
    symbols = text.count("#") + text.count("...") + text.count("…")
    if symbols / max(n, 1) > max_symbol_word_ratio:
        return "gopher_symbol_ratio"
    lines = _lines(text)
    if lines and sum(line.startswith(BULLETS) for line in lines) / len(lines) > max_bullet_lines_ratio:
        return "gopher_bullet_lines"
    if lines and sum(line.endswith(ELLIPSES) for line in lines) / len(lines) > max_ellipsis_lines_ratio:
        return "gopher_ellipsis_lines"
    if tokens and sum(any(c.isalpha() for c in t) for t in tokens) / len(tokens) < min_alpha_words_ratio:
        return "gopher_alpha_words"
    if len(STOP_WORDS.intersection(w.lower() for w in words)) < min_stop_words:
        return "gopher_stop_words"
    return None


# ------------------------------------------------------------- Gopher repetition (Rae et al. 2021)


def _segments(row: Row) -> list[str]:
    # Repetition is measured inside each message / field, never across them: a preference pair's
    # chosen and rejected answers share text by design, and an answer may quote its prompt.
    if row.kind == "sft":
        return [m["content"] for m in row.data["messages"]]
    if row.kind == "text":
        return [row.data["text"]]
    return [row.data[k] for k in ("prompt", "chosen", "rejected")]


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(number, characters) of items that repeat an earlier item; the first copy is not counted."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _top_ngram_share(words: list[str], n: int, total_chars: int) -> float:
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0.0
    gram, count = grams.most_common(1)[0]
    return 0.0 if count < 2 else count * sum(map(len, gram)) / total_chars


def _dup_ngram_share(words: list[str], n: int, total_chars: int) -> float:
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(words)
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if gram in seen:
            covered[i : i + n] = [True] * n  # overlapping repeats count each word once
        else:
            seen.add(gram)
    return sum(len(w) for w, c in zip(words, covered) if c) / total_chars


def repetition_reason(
    text: str,
    *,
    min_words: int = 50,
    max_dup_line_fraction: float = 0.30,
    max_dup_paragraph_fraction: float = 0.30,
    max_dup_line_char_fraction: float = 0.20,
    max_dup_paragraph_char_fraction: float = 0.20,
    max_top_ngram_share: dict[int, float] | None = None,
    max_dup_ngram_share: dict[int, float] | None = None,
) -> str | None:
    """Gopher's repetition rules on one text; texts under `min_words` words pass untested, since
    there one repeated line or phrase is a large share by accident, not a sign of degenerate text."""
    words = [w.lower() for w in _words(text)]
    if len(words) < min_words:
        return None
    lines = _lines(text)
    dup, dup_chars = _duplicates(lines)
    if dup / len(lines) > max_dup_line_fraction:
        return "rep_dup_lines"
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    pdup, pdup_chars = _duplicates(paragraphs)
    if pdup / len(paragraphs) > max_dup_paragraph_fraction:
        return "rep_dup_paragraphs"
    if dup_chars / len(text) > max_dup_line_char_fraction:
        return "rep_dup_line_chars"
    if pdup_chars / len(text) > max_dup_paragraph_char_fraction:
        return "rep_dup_paragraph_chars"
    total_chars = sum(map(len, words))
    for n, limit in sorted((max_top_ngram_share or TOP_NGRAM_MAX).items()):
        if _top_ngram_share(words, n, total_chars) > limit:
            return "rep_top_ngram"
    for n, limit in sorted((max_dup_ngram_share or DUP_NGRAM_MAX).items()):
        if _dup_ngram_share(words, n, total_chars) > limit:
            return "rep_dup_ngram"
    return None


def gopher_repetition(row: Row, **thresholds: object) -> str | None:
    """`repetition_reason` on each message (sft) or field (pref); the first failing one decides."""
    for segment in _segments(row):
        reason = repetition_reason(segment, **thresholds)  # type: ignore[arg-type]
        if reason is not None:
            return reason
    return None


# --------------------------------------------------------------------- C4 rules (Raffel et al.)


def c4_quality(
    row: Row,
    *,
    lorem_ipsum: bool = True,
    javascript: bool = True,
    curly_brace: bool = False,
    policy: bool = True,
    max_policy_lines_ratio: float = 0.5,
    terminal_punct: bool = True,
    terminal_punct_on_chat: bool = False,
    min_terminal_punct_ratio: float = 0.5,
    terminal_punct_min_lines: int = 3,
    terminal_punct_numbers: bool = False,
) -> str | None:
    """C4's page rules, applied to whole rows.

    C4 removes single lines that mention "javascript" (cookie/JS warnings); a training row has no
    lines to spare, so we drop the whole row. Turn it off for coding data. C4 drops pages with
    any policy line; FineWeb-style we drop only rows where such lines are over half the lines.
    With `terminal_punct_numbers`, a line ending in a digit counts as ended: a calculation step
    ("24 + 12 = <<24+12=36>>36"), an answer line ("#### 72") or an item of a list of numbers is a
    finished statement, not the menu or button text the rule was written to catch.
    """
    text = row.text()
    lower = text.lower()
    if lorem_ipsum and "lorem ipsum" in lower:
        return "c4_lorem_ipsum"
    if javascript and "javascript" in lower:
        return "c4_javascript"
    if curly_brace and "{" in text:
        return "c4_curly_brace"
    lines = _lines(lower)
    if policy and lines:
        boiler = sum(any(p in line for p in POLICY_PHRASES) for line in lines)
        if boiler / len(lines) > max_policy_lines_ratio:
            return "c4_policy"
    if terminal_punct and (terminal_punct_on_chat or row.kind == "text") and len(lines) >= terminal_punct_min_lines:
        ended = sum(line.endswith(TERMINAL_PUNCT) or (terminal_punct_numbers and line[-1].isdigit()) for line in lines)
        if ended / len(lines) < min_terminal_punct_ratio:
            return "c4_terminal_punct"
    return None


def named_checks(cfg: QualityConfig, language_counts: Counter[str] | None = None) -> list[tuple[str, Check]]:
    """(group, check) for the enabled groups, most telling reason first: a French page drops as
    `language_not_allowed`, not as `gopher_stop_words`. `language_counts` receives the detected
    language of each row seen."""
    checks: list[tuple[str, Check]] = []
    if cfg.language_enabled:
        from tasks.data.language import language_check

        checks.append(("language", language_check(cfg.allowed_languages, cfg.min_language_score, language_counts)))
    if cfg.gopher_enabled:
        checks.append(
            (
                "gopher",
                partial(
                    gopher_quality,
                    min_words=cfg.min_words,
                    max_words=cfg.max_words,
                    min_mean_word_length=cfg.min_mean_word_length,
                    max_mean_word_length=cfg.max_mean_word_length,
                    max_symbol_word_ratio=cfg.max_symbol_word_ratio,
                    max_bullet_lines_ratio=cfg.max_bullet_lines_ratio,
                    max_ellipsis_lines_ratio=cfg.max_ellipsis_lines_ratio,
                    min_alpha_words_ratio=cfg.min_alpha_words_ratio,
                    min_stop_words=cfg.min_stop_words,
                ),
            )
        )
    if cfg.repetition_enabled:
        checks.append(
            (
                "repetition",
                partial(
                    gopher_repetition,
                    min_words=cfg.rep_min_words,
                    max_dup_line_fraction=cfg.max_dup_line_fraction,
                    max_dup_paragraph_fraction=cfg.max_dup_paragraph_fraction,
                    max_dup_line_char_fraction=cfg.max_dup_line_char_fraction,
                    max_dup_paragraph_char_fraction=cfg.max_dup_paragraph_char_fraction,
                    max_top_ngram_share=cfg.max_top_ngram_share,
                    max_dup_ngram_share=cfg.max_dup_ngram_share,
                ),
            )
        )
    if cfg.c4_enabled:
        checks.append(
            (
                "c4",
                partial(
                    c4_quality,
                    lorem_ipsum=cfg.c4_lorem_ipsum,
                    javascript=cfg.c4_javascript,
                    curly_brace=cfg.c4_curly_brace,
                    policy=cfg.c4_policy,
                    max_policy_lines_ratio=cfg.max_policy_lines_ratio,
                    terminal_punct=cfg.c4_terminal_punct,
                    terminal_punct_on_chat=cfg.terminal_punct_on_chat,
                    min_terminal_punct_ratio=cfg.min_terminal_punct_ratio,
                    terminal_punct_min_lines=cfg.terminal_punct_min_lines,
                    terminal_punct_numbers=cfg.terminal_punct_numbers,
                ),
            )
        )
    if cfg.toxicity_enabled:
        from tasks.data.toxicity import toxic_words

        checks.append(("toxicity", partial(toxic_words, max_share=cfg.max_toxic_share)))
    return checks


def quality_checks(cfg: QualityConfig, language_counts: Counter[str] | None = None) -> list[Check]:
    """The enabled checks in run order (see `named_checks`)."""
    return [check for _, check in named_checks(cfg, language_counts)]


# ------------------------------------------------------------------------- drop shares per rule


@dataclass
class QualityStats:
    """Rows each group saw (`seen`, by group) and rows each rule dropped (`dropped`, by reason);
    Counters, so that the stats of shards add up."""

    seen: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # the first 3 rows each rule dropped

    def count_drop(self, reason: str, row: Row) -> None:
        self.dropped[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < 3:
            examples.append({"id": row.id, "source": row.source, "text": " ".join(row.text().split())[:80]})


def filter_quality(
    rows: Iterable[Row],
    ledger: Ledger,
    cfg: QualityConfig,
    language_counts: Counter[str] | None = None,
    stats: QualityStats | None = None,
) -> Iterator[Row]:
    """Keeps rows that pass every enabled check; drops at the first failure under its reason.
    `stats`, when given, counts what each group saw and each rule dropped."""
    checks = named_checks(cfg, language_counts)
    stats = stats if stats is not None else QualityStats()

    def check(row: Row) -> str | None:
        for group, c in checks:
            stats.seen[group] += 1
            reason = c(row)
            if reason is not None:
                stats.count_drop(reason, row)
                return reason
        return None

    return apply_filter(rows, check, ledger, detail="quality")
