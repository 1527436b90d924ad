"""The thresholds of the quality step, each written once: `tasks/data/quality.py` reads them from here.

`QualityConfig` holds the published values (Gopher: Rae et al. 2021, Table A1; C4: Raffel et al.
2020; FineWeb's variants where noted); `CurateQualityConfig` the values the curate stage uses,
calibrated on instruction and chat rows (GSM8K, HH).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

TOP_NGRAM_MAX = {2: 0.20, 3: 0.18, 4: 0.16}  # Gopher Table A1
DUP_NGRAM_MAX = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}  # Gopher Table A1


class QualityConfig(BaseModel):
    """Every threshold of `filter_quality`; switch a group off with its `*_enabled` field."""

    model_config = ConfigDict(extra="forbid")

    language_enabled: bool = Field(True, description="Language ID (py3langid) before anything else.")
    allowed_languages: list[str] = Field(["en"], description="ISO 639-1 codes to keep.")
    min_language_score: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Min normalised py3langid probability. FineWeb keeps fastText scores >= 0.65; "
        "py3langid scales scores by text length, so short chat rows score lower and 0.5 is used.",
    )

    gopher_enabled: bool = Field(True, description="Gopher document rules (Rae et al. 2021).")
    min_words: int = Field(
        50, ge=0, description="Gopher: 50. Lower it (e.g. 3) for instruction data, where a good row is short."
    )
    max_words: int = Field(100_000, ge=1, description="Gopher: 100,000.")
    min_mean_word_length: float = Field(3.0, ge=0, description="Gopher: 3 characters.")
    max_mean_word_length: float = Field(10.0, ge=0, description="Gopher: 10 characters.")
    max_symbol_word_ratio: float = Field(0.1, ge=0, description="Gopher: ('#' + ellipses) / words <= 0.1.")
    max_bullet_lines_ratio: float = Field(0.9, ge=0, le=1, description="Gopher: <= 90% bullet lines.")
    max_ellipsis_lines_ratio: float = Field(0.3, ge=0, le=1, description="Gopher: <= 30% lines ending '...'.")
    min_alpha_words_ratio: float = Field(0.8, ge=0, le=1, description="Gopher: >= 80% words with a letter.")
    min_stop_words: int = Field(2, ge=0, description="Gopher: >= 2 of the, be, to, of, and, that, have, with.")

    repetition_enabled: bool = Field(True, description="Gopher repetition rules, per message / field.")
    rep_min_words: int = Field(50, ge=1, description="Shorter messages skip the repetition rules.")
    max_dup_line_fraction: float = Field(0.30, ge=0, le=1, description="Gopher: duplicate lines <= 30%.")
    max_dup_paragraph_fraction: float = Field(0.30, ge=0, le=1, description="Gopher: duplicate paragraphs <= 30%.")
    max_dup_line_char_fraction: float = Field(0.20, ge=0, le=1, description="Gopher: chars in dup lines <= 20%.")
    max_dup_paragraph_char_fraction: float = Field(
        0.20, ge=0, le=1, description="Gopher: chars in duplicate paragraphs <= 20%."
    )
    max_top_ngram_share: dict[int, float] = Field(
        dict(TOP_NGRAM_MAX), description="Gopher: chars in the most frequent n-gram, n=2,3,4: 0.20/0.18/0.16."
    )
    max_dup_ngram_share: dict[int, float] = Field(
        dict(DUP_NGRAM_MAX), description="Gopher: chars in duplicated n-grams, n=5..10: 0.15..0.10."
    )

    c4_enabled: bool = Field(True, description="C4 rules (Raffel et al. 2020).")
    c4_lorem_ipsum: bool = Field(True, description="C4: drop placeholder 'lorem ipsum' text.")
    c4_javascript: bool = Field(True, description="C4 drops 'javascript' lines; we drop the row. Off for code data.")
    c4_curly_brace: bool = Field(False, description="C4 drops any '{'; off since it drops code and JSON answers.")
    c4_policy: bool = Field(True, description="Drop rows mostly made of cookie / privacy-policy lines.")
    max_policy_lines_ratio: float = Field(0.5, ge=0, le=1, description="Share of policy lines above which to drop.")
    c4_terminal_punct: bool = Field(True, description="C4: lines should end in terminal punctuation.")
    terminal_punct_on_chat: bool = Field(
        False, description="Also apply it to chat and preference rows (off: answers are often lists, code or one line)."
    )
    min_terminal_punct_ratio: float = Field(0.5, ge=0, le=1, description="Min share of lines ending . ! ? \" '.")
    terminal_punct_min_lines: int = Field(3, ge=1, description="Rows with fewer lines skip the rule.")
    terminal_punct_numbers: bool = Field(
        False, description="Count a line ending in a digit as ended (calculation steps, '#### 72', number lists)."
    )

    toxicity_enabled: bool = Field(True, description="Word-list toxicity baseline (tasks/data/wordlists).")
    max_toxic_share: float = Field(0.02, ge=0, le=1, description="Max share of listed words; severe terms always drop.")

    max_drop_fraction: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Stop the run when one rule drops more than this share of the rows it saw (1.0: never stop).",
    )
    drop_check_min_rows: int = Field(
        50, ge=1, description="Judge a rule's drop share only once it saw this many rows (one bad row in five is 20%)."
    )

    @model_validator(mode="after")
    def _check_ranges(self) -> QualityConfig:
        errors = []
        if self.min_words > self.max_words:
            errors.append(f"min_words ({self.min_words}) must be <= max_words ({self.max_words})")
        if self.min_mean_word_length > self.max_mean_word_length:
            errors.append("min_mean_word_length must be <= max_mean_word_length")
        if self.language_enabled and not self.allowed_languages:
            errors.append("allowed_languages is empty: name at least one language or set language_enabled=false")
        for name in ("max_top_ngram_share", "max_dup_ngram_share"):
            if any(n < 1 for n in getattr(self, name)):
                errors.append(f"{name}: n-gram sizes must be >= 1")
        if errors:
            raise ValueError("; ".join(errors))
        return self


# How CurateQualityConfig's defaults were chosen (kept out of its docstring, which the Prefect form shows).
#
# Gopher's document rules are off: Gopher drops a page with fewer than 50 words, a mean word
# length under 3, or under 80% of its words holding a letter. An instruction row such as "What is
# 7 + 8?" / "7 + 8 = 15. The answer is 15." fails all three: on the demo data they dropped all 975
# rows at min_words 50 and 974 at min_words 3. Set `gopher_enabled: true` (and the Gopher values
# below) for web text or pre-training corpora.
#
# The other defaults were measured on GSM8K question + solution rows (500, shared/data) and HH
# conversations (1,000), none of them degenerate, against loops and texts said twice:
# - Repetition n-grams: Gopher's shares (0.20/0.18/0.16 for the top 2/3/4-gram, 0.15..0.10 for
#   duplicated 5..10-grams) assume long pages. In a 60-word solution a noun phrase the problem
#   keeps naming ("pink hard hats", 8 times) is 26% of the characters: 52 of 500 GSM8K rows
#   dropped. The highest scores on those rows were 0.36 (top n-gram) and 0.39 (duplicated
#   n-grams); a text said twice scores 0.50 and a loop 0.8-1.0. So: 0.40 and 0.45 for every n.
# - C4 terminal punctuation (applies to text rows): a worked solution's lines end in a result
#   ("12 + 24 = <<12+24=36>>36") and the answer line "#### 72", so 186 of 500 GSM8K rows written
#   as text had under half their lines ending in . ! ?. Lines ending in a digit now count as
#   ended, and the threshold is FineWeb's 0.12 for the same rule (C4's own rule drops lines, not
#   documents): no GSM8K row drops.
class CurateQualityConfig(QualityConfig):
    """Quality thresholds for instruction and chat rows: Gopher's document rules off, looser repetition and
    punctuation limits."""

    gopher_enabled: bool = Field(False, description="Gopher document rules; off for chat data, on for web text.")
    max_top_ngram_share: dict[int, float] = Field(
        {2: 0.40, 3: 0.40, 4: 0.40},
        description="Chars in the most frequent n-gram, n=2,3,4 (Gopher: "
        "0.20/0.18/0.16, too strict for short rows that name one thing often).",
    )
    max_dup_ngram_share: dict[int, float] = Field(
        {n: 0.45 for n in range(5, 11)}, description="Chars in duplicated n-grams, n=5..10 (Gopher: 0.15..0.10)."
    )
    min_terminal_punct_ratio: float = Field(
        0.12, ge=0, le=1, description="Min share of lines that end (FineWeb: 0.12)."
    )
    terminal_punct_numbers: bool = Field(
        True, description="Count a line ending in a digit as ended (calculation steps, '#### 72', number lists)."
    )
