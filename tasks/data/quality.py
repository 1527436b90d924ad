"""Heuristic quality filters from the web-corpus papers, as small checks usable with `apply_filter`.

Each check is `check(row, cfg, view=None) -> None | reason`: None keeps the row, a reason string
drops it under that name in the ledger. Every threshold is read from the `QualityConfig` it is
given (configs/quality.py writes each one once); its defaults are the published values:

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

import itertools
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Callable, Iterable, Iterator

from configs.quality import QualityConfig
from tasks.data.minhash import batched
from tasks.data.records import Ledger, Row
from tasks.data.repetition import PUNCT
from tasks.data.repetition import repetition_reason as _repetition

Check = Callable[..., str | None]  # check(row, view=None) -> None (keep) or the drop reason

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})  # Gopher's list
BULLETS = ("•", "‣", "◦", "⁃", "●", "▪", "-", "*")
ELLIPSES = ("...", "…")
TERMINAL_PUNCT = (".", "!", "?", '"', "'", "”", "’")
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def _words(text: str) -> list[str]:
    """Whitespace tokens with surrounding punctuation removed; punctuation-only tokens are not words."""
    return _stripped(text.split())


def _stripped(tokens: list[str]) -> list[str]:
    return list(filter(None, map(str.strip, tokens, itertools.repeat(PUNCT))))  # C loops, not a generator


class TextView:
    """One text and what the rules compute from it, each at most once (the rules used to split,
    strip and lower-case the same row three or four times)."""

    def __init__(self, text: str, language: tuple[str, float] | None = None):
        self.text = text
        self._language = language

    @cached_property
    def tokens(self) -> list[str]:
        return self.text.split()

    @cached_property
    def words(self) -> list[str]:
        return _stripped(self.tokens)

    @cached_property
    def lower_words(self) -> list[str]:
        """`words`, lower-cased: the same as splitting the lower-cased text (lower-casing never makes
        or unmakes whitespace or the punctuation words are stripped of)."""
        return _stripped(self.lower.split())

    @cached_property
    def lines(self) -> list[str]:
        return _lines(self.text)

    @cached_property
    def lower(self) -> str:
        return self.text.lower()

    @cached_property
    def lower_lines(self) -> list[str]:
        return _lines(self.lower)

    @property
    def language(self) -> tuple[str, float]:
        if self._language is None:
            from tasks.data.language import detect_language

            self._language = detect_language(self.text)
        return self._language


def _view(row: Row, view: TextView | None) -> TextView:
    return view if view is not None else TextView(row.text())


# ---------------------------------------------------------------- Gopher quality (Rae et al. 2021)


def gopher_quality(row: Row, cfg: QualityConfig = QualityConfig(), view: TextView | None = None) -> str | None:
    """Gopher's document rules. Stop words count distinct words, as the paper phrases it."""
    v = _view(row, view)
    text, tokens, words = v.text, v.tokens, v.words
    n = len(words)
    if n < cfg.min_words:
        return "gopher_too_few_words"
    if n > cfg.max_words:
        return "gopher_too_many_words"
    mean_len = sum(map(len, words)) / n if n else 0.0
    if not cfg.min_mean_word_length <= mean_len <= cfg.max_mean_word_length:
        return "gopher_mean_word_length"
    symbols = text.count("#") + text.count("...") + text.count("…")
    if symbols / max(n, 1) > cfg.max_symbol_word_ratio:
        return "gopher_symbol_ratio"
    lines = v.lines
    if lines and sum(line.startswith(BULLETS) for line in lines) / len(lines) > cfg.max_bullet_lines_ratio:
        return "gopher_bullet_lines"
    if lines and sum(line.endswith(ELLIPSES) for line in lines) / len(lines) > cfg.max_ellipsis_lines_ratio:
        return "gopher_ellipsis_lines"
    if tokens and sum(any(c.isalpha() for c in t) for t in tokens) / len(tokens) < cfg.min_alpha_words_ratio:
        return "gopher_alpha_words"
    if len(STOP_WORDS.intersection(w.lower() for w in words)) < cfg.min_stop_words:
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


def repetition_reason(text: str | TextView, cfg: QualityConfig = QualityConfig()) -> str | None:
    """Gopher's repetition rules on one text (`tasks.data.repetition`)."""
    return _repetition(text if isinstance(text, TextView) else TextView(text), cfg)


def gopher_repetition(row: Row, cfg: QualityConfig = QualityConfig(), view: TextView | None = None) -> str | None:
    """`repetition_reason` on each message (sft) or field (pref); the first failing one decides."""
    for segment in _segments(row):
        seg = view if view is not None and row.kind == "text" else TextView(segment)
        reason = repetition_reason(seg, cfg)
        if reason is not None:
            return reason
    return None


# --------------------------------------------------------------------- C4 rules (Raffel et al.)


def c4_quality(row: Row, cfg: QualityConfig = QualityConfig(), view: TextView | None = None) -> str | None:
    """C4's page rules, applied to whole rows.

    C4 removes single lines that mention "javascript" (cookie/JS warnings); a training row has no
    lines to spare, so we drop the whole row. Turn it off for coding data. C4 drops pages with
    any policy line; FineWeb-style we drop only rows where such lines are over half the lines.
    With `terminal_punct_numbers`, a line ending in a digit counts as ended: a calculation step
    ("24 + 12 = <<24+12=36>>36"), an answer line ("#### 72") or an item of a list of numbers is a
    finished statement, not the menu or button text the rule was written to catch.
    """
    v = _view(row, view)
    lower = v.lower
    if cfg.c4_lorem_ipsum and "lorem ipsum" in lower:
        return "c4_lorem_ipsum"
    if cfg.c4_javascript and "javascript" in lower:
        return "c4_javascript"
    if cfg.c4_curly_brace and "{" in v.text:
        return "c4_curly_brace"
    lines = v.lower_lines
    if cfg.c4_policy and lines:
        boiler = sum(any(p in line for p in POLICY_PHRASES) for line in lines)
        if boiler / len(lines) > cfg.max_policy_lines_ratio:
            return "c4_policy"
    if (
        cfg.c4_terminal_punct
        and (cfg.terminal_punct_on_chat or row.kind == "text")
        and len(lines) >= cfg.terminal_punct_min_lines
    ):
        numbers = cfg.terminal_punct_numbers
        ended = sum(line.endswith(TERMINAL_PUNCT) or (numbers and line[-1].isdigit()) for line in lines)
        if ended / len(lines) < cfg.min_terminal_punct_ratio:
            return "c4_terminal_punct"
    return None


def _toxicity(row: Row, cfg: QualityConfig, view: TextView | None = None) -> str | None:
    from tasks.data.toxicity import toxic_words

    return toxic_words(row, cfg, text=_view(row, view).text)


def _language(cfg: QualityConfig, counts: Counter[str] | None) -> Check:
    from tasks.data.language import language_check

    check = language_check(cfg.allowed_languages, cfg.min_language_score, counts)
    return lambda row, view=None: check(row, _view(row, view).language)


def named_checks(cfg: QualityConfig, language_counts: Counter[str] | None = None) -> list[tuple[str, Check]]:
    """(group, check) for the enabled groups, most telling reason first: a French page drops as
    `language_not_allowed`, not as `gopher_stop_words`. `language_counts` receives the detected
    language of each row seen. A check is `check(row, view=None)`, `view` the row's `TextView`."""
    checks: list[tuple[str, Check]] = []
    if cfg.language_enabled:
        checks.append(("language", _language(cfg, language_counts)))
    for group, enabled, check in (
        ("gopher", cfg.gopher_enabled, gopher_quality),
        ("repetition", cfg.repetition_enabled, gopher_repetition),
        ("c4", cfg.c4_enabled, c4_quality),
        ("toxicity", cfg.toxicity_enabled, _toxicity),
    ):
        if enabled:
            checks.append((group, partial(check, cfg=cfg)))
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


LANGUAGE_BATCH = 256  # rows whose language is found in one vectorised pass


def filter_quality(
    rows: Iterable[Row],
    ledger: Ledger,
    cfg: QualityConfig,
    language_counts: Counter[str] | None = None,
    stats: QualityStats | None = None,
) -> Iterator[Row]:
    """Keeps rows that pass every enabled check; drops at the first failure under its reason.
    `stats`, when given, counts what each group saw and each rule dropped. Rows are taken a batch
    at a time, so that their languages are found in one pass."""
    checks = named_checks(cfg, language_counts)
    stats = stats if stats is not None else QualityStats()
    for block in batched(rows, LANGUAGE_BATCH):
        texts = [row.text() for row in block]
        languages: list = [None] * len(block)
        if cfg.language_enabled:
            from tasks.data.language import detect_languages

            languages = detect_languages(texts, cfg.min_language_score)
        for row, text, language in zip(block, texts, languages):
            view = TextView(text, language)
            for group, c in checks:
                stats.seen[group] += 1
                reason = c(row, view=view)
                if reason is not None:
                    stats.count_drop(reason, row)
                    ledger.drop(row, row.id, reason, "quality")
                    break
            else:
                yield row
