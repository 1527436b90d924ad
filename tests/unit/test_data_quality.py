"""Quality filters: each rule drops its crafted text under its own reason; clean prose passes all."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from configs.quality import QualityConfig
from tasks.data.language import detect_language, language_check
from tasks.data.quality import (
    c4_quality,
    filter_quality,
    gopher_quality,
    gopher_repetition,
    quality_checks,
    repetition_reason,
)
from tasks.data.records import Ledger, Row
from tasks.data.toxicity import toxic_counts, toxic_words

CLEAN = (
    "The river that runs through the old town has shaped the lives of the people who live beside it "
    "for many centuries. In spring, melting snow from the mountains swells the water, and farmers along "
    "the banks prepare their fields with care. Children learn to swim in the calm pools near the bridge, "
    "while older residents remember the great flood of their youth. Today the council works with "
    "engineers to protect homes and to keep the water clean for everyone."
)
SENTENCES = [s.strip() + "." for s in CLEAN.split(".") if s.strip()]
FRENCH = (
    "Le chat est assis sur le tapis et regarde les oiseaux par la fenêtre pendant que la pluie tombe "
    "doucement sur le jardin. Les enfants jouent dans la maison et leur mère prépare le dîner."
)
GERMAN = "Der Hund läuft schnell durch den Park und spielt mit dem roten Ball, während die Sonne scheint."
UNIQUE = [f"w{i}x" for i in range(200)]  # distinct filler words for the repetition rules

_REP = {"min_words": "rep_min_words"}  # repetition_reason's old keyword names, as QualityConfig fields
_C4 = {"curly_brace": "c4_curly_brace", "terminal_punct": "c4_terminal_punct"}


def _sft(text: str, row_id: str = "r") -> Row:
    return Row(row_id, "sft", {"messages": [{"role": "assistant", "content": text}]})


def _pref(prompt: str, chosen: str = "Yes.", rejected: str = "No.") -> Row:
    return Row("p", "pref", {"prompt": prompt, "chosen": chosen, "rejected": rejected})


def test_clean_prose_passes_every_default_check() -> None:
    assert len(CLEAN.split()) == 80
    for row in (_sft(CLEAN), _pref(CLEAN, "Thank you, that is clear.", "Fine.")):
        assert [check(row) for check in quality_checks(QualityConfig())] == [None] * 5


@pytest.mark.parametrize(
    ("text", "kwargs", "reason"),
    [
        ("Hello there, how are you?", {}, "gopher_too_few_words"),
        (CLEAN, {"min_words": 5, "max_words": 10}, "gopher_too_many_words"),
        ("it is a cat and a dog " * 10, {}, "gopher_mean_word_length"),
        ("internationalization notwithstanding " * 30, {}, "gopher_mean_word_length"),
        (CLEAN + " ##########", {}, "gopher_symbol_ratio"),
        ("- the farmers of the valley have planted wheat and barley\n" * 6, {}, "gopher_bullet_lines"),
        ("\n".join(s[:-1] + "..." if i % 2 else s for i, s in enumerate(SENTENCES)), {}, "gopher_ellipsis_lines"),
        (CLEAN + " 12" * 30, {}, "gopher_alpha_words"),
        ("Bright morning light fills quiet streets while bakers open shops early. " * 6, {}, "gopher_stop_words"),
    ],
)
def test_gopher_reasons(text: str, kwargs: dict, reason: str) -> None:
    assert gopher_quality(_sft(text), QualityConfig(**kwargs)) == reason


def test_gopher_min_words_is_configurable_for_short_instruction_rows() -> None:
    row = _sft("What is the capital of France? The capital of France is Paris.")
    assert gopher_quality(row) == "gopher_too_few_words"
    assert gopher_quality(row, QualityConfig(min_words=5)) is None


def _lines(*parts: str) -> str:
    return "\n".join(parts)


A, B, C, D = (" ".join(UNIQUE[i * 10 : i * 10 + 10]) for i in range(4))  # four distinct 10-word lines
E, F = (" ".join(UNIQUE[i * 10 : i * 10 + 10]) for i in range(4, 6))


@pytest.mark.parametrize(
    ("text", "kwargs", "reason"),
    [
        (_lines(A, B, C, D, A, A), {}, "rep_dup_lines"),  # 2 of 6 lines repeat: 0.33 > 0.30
        (_lines(A, B) + "\n\n" + _lines(C, D, E, F) + "\n\n" + _lines(A, B), {}, "rep_dup_paragraphs"),  # 1/3
        (
            _lines(A + " " + B + " " + C, D, E, F, "w190x", "w191x", "w192x", A + " " + B + " " + C),
            {},
            "rep_dup_line_chars",
        ),  # 1 of 8 lines, but over 20% of the characters
        (
            _lines(A, B) + "\n\n" + _lines(C, D) + "\n\n" + E + "\n\n" + F + "\n\n" + _lines(A, B),
            {"max_dup_line_char_fraction": 1.0},
            "rep_dup_paragraph_chars",
        ),  # 1/5 paragraphs, ~29% chars
        (" ".join(f"{w} data science" for w in UNIQUE[:20]), {}, "rep_top_ngram"),
        (" ".join(UNIQUE[:40] + UNIQUE[:15] + UNIQUE[40:60]), {}, "rep_dup_ngram"),  # 15 of 75 words repeat
    ],
)
def test_repetition_reasons(text: str, kwargs: dict, reason: str) -> None:
    assert repetition_reason(text, QualityConfig(**{_REP.get(k, k): v for k, v in kwargs.items()})) == reason
    if not kwargs:
        assert gopher_repetition(_sft(text)) == reason


def test_repetition_skips_short_texts_and_looks_inside_each_field() -> None:
    assert repetition_reason("Hi\nHi\nHi\nHi") is None  # under 50 words: a repeat here is no signal
    assert repetition_reason(" ".join(UNIQUE[:60])) is None
    # chosen and rejected may share most of their text; that is not repetition within either.
    assert gopher_repetition(_pref("Summarise it.", CLEAN, CLEAN)) is None
    assert gopher_repetition(_pref("Summarise it.", _lines(A, B, C, D, A, A), CLEAN)) == "rep_dup_lines"


@pytest.mark.parametrize(
    ("row", "kwargs", "reason"),
    [
        (_sft("Lorem ipsum dolor sit amet, consectetur adipiscing elit."), {}, "c4_lorem_ipsum"),
        (_sft("Please enable JavaScript to view this page."), {}, "c4_javascript"),
        (_sft('Return {"name": "Ada"} as JSON.'), {"curly_brace": True}, "c4_curly_brace"),
        (_sft("Read our privacy policy.\nThis site uses cookies.\nWelcome home."), {}, "c4_policy"),
        (Row(id="t", kind="text", data={"text": "first line\nsecond line\nthird line"}), {}, "c4_terminal_punct"),
        (_pref("first line\nsecond line\nthird line"), {"terminal_punct_on_chat": True}, "c4_terminal_punct"),
        (_sft("first line\nsecond line\nthird line"), {"terminal_punct_on_chat": True}, "c4_terminal_punct"),
    ],
)
def test_c4_reasons(row: Row, kwargs: dict, reason: str) -> None:
    assert c4_quality(row, QualityConfig(**{_C4.get(k, k): v for k, v in kwargs.items()})) == reason


def test_c4_defaults_spare_code_and_chat_lists() -> None:
    assert c4_quality(_sft('Return {"name": "Ada"} as JSON.')) is None  # curly braces off by default
    assert c4_quality(_sft("- eggs\n- milk\n- flour")) is None  # chat rows skip terminal punctuation
    assert c4_quality(_pref("One line only")) is None  # under 3 lines: no verdict


def test_language_detection_and_check() -> None:
    lang, score = detect_language(CLEAN)
    assert lang == "en" and score > 0.9
    assert detect_language(FRENCH)[0] == "fr"
    assert detect_language(GERMAN)[0] == "de"
    counts: Counter[str] = Counter()
    check = language_check(["en"], min_score=0.5, counts=counts)
    assert check(_sft(CLEAN), detect_language(CLEAN)) is None
    assert check(_sft(FRENCH), detect_language(FRENCH)) == "language_not_allowed"
    assert check(_sft(GERMAN), detect_language(GERMAN)) == "language_not_allowed"
    assert check(_sft("Hi"), detect_language("Hi")) == "language_low_confidence"
    assert counts["en"] == 1 and counts["fr"] == 1 and counts["de"] == 1 and sum(counts.values()) == 4
    assert language_check(["en", "fr"])(_sft(FRENCH), detect_language(FRENCH)) is None


def test_toxicity_word_list() -> None:
    assert toxic_counts("What the f**k, this is sh1t and fuuuck") == (3, 0)
    assert toxic_counts("Scunthorpe, spiced rice, prickly pear, classic assessment, shiitake") == (0, 0)
    assert toxic_words(_sft(CLEAN), QualityConfig()) is None
    assert toxic_words(_sft(CLEAN + " Damn, that is shit."), QualityConfig()) is None  # 1 mild word in 85: under 2%
    assert toxic_words(_sft(CLEAN + " Shit, shit, that is shit."), QualityConfig()) == "toxic_words"  # 3 in 85
    assert toxic_words(_sft(CLEAN + " Go kill yourself."), QualityConfig()) == "toxic_words"  # severe: any occurrence


def test_toxicity_rejects_a_malformed_word_list(tmp_path: Path) -> None:
    bad = tmp_path / "list.txt"
    bad.write_text("awful stuff\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected '<mild|severe> <term>'"):
        toxic_words(_sft("x"), QualityConfig(), path=bad)


def test_filter_quality_drops_at_first_failing_rule_and_balances() -> None:
    rows = [
        _sft(CLEAN, "clean"),
        _sft(FRENCH, "fr"),
        _sft("Short answer.", "short"),
        _sft(CLEAN + " Lorem ipsum dolor sit amet.", "lorem"),
        _sft(CLEAN + " You should kill yourself.", "toxic"),
    ]
    ledger = Ledger()
    ledger.read = len(rows)
    langs: Counter[str] = Counter()
    kept = list(ledger.count_kept(filter_quality(rows, ledger, QualityConfig(), langs)))
    assert [r.id for r in kept] == ["clean"]
    assert ledger.dropped == {
        "language_not_allowed": 1,
        "language_low_confidence": 1,
        "c4_lorem_ipsum": 1,
        "toxic_words": 1,
    }
    assert langs == {"en": 4, "fr": 1}  # every row seen is counted, kept or dropped
    ledger.check_balance()
    # With language ID off and short rows allowed, the short row gets through Gopher's word count.
    cfg = QualityConfig(language_enabled=False, min_words=2, min_stop_words=0)
    assert len(quality_checks(cfg)) == 4
    assert [r.id for r in filter_quality(rows[2:3], Ledger(), cfg)] == ["short"]


def test_quality_config_is_strict_and_names_every_bad_field() -> None:
    with pytest.raises(ValidationError, match="min_word"):
        QualityConfig(min_word=3)  # typo: extra="forbid"
    with pytest.raises(ValidationError) as err:
        QualityConfig(min_words=10, max_words=5, min_mean_word_length=12, allowed_languages=[])
    message = str(err.value)
    assert "min_words" in message and "min_mean_word_length" in message and "allowed_languages" in message
    assert all(f.description for f in QualityConfig.model_fields.values())
    off = QualityConfig(
        language_enabled=False, gopher_enabled=False, repetition_enabled=False, c4_enabled=False, toxicity_enabled=False
    )
    assert quality_checks(off) == []


def test_terminal_punctuation_spares_chat_and_pref_by_default():
    assert c4_quality(_pref("first line\nsecond line\nthird line")) is None


def test_text_rows_pass_through_validate_mask_and_repetition():
    from tasks.data.pii import mask_rows
    from tasks.data.validate import validate_rows

    ledger = Ledger()
    rows = [
        Row(id="a", kind="text", data={"text": "  Mail  me at a@b.org\n"}),
        Row(id="b", kind="text", data={"text": " "}),
        Row(id="c", kind="text", data={"text": 3}),
    ]
    counts: Counter[str] = Counter()
    kept = list(mask_rows(validate_rows(rows, ledger), counts))
    assert [r.data["text"] for r in kept] == ["Mail me at [EMAIL]"] and counts["email"] == 1
    assert dict(ledger.dropped) == {"empty_field": 1, "wrong_type": 1}
    assert gopher_repetition(kept[0]) is None


# --- calibration on real instruction rows (../shared/data) -----------------------------------


def _gsm8k(shared_data: Path, as_text: bool) -> list[Row]:
    from tasks.data.validate import normalize_text

    rows = []
    for i, line in enumerate((shared_data / "gsm8k_train_sample.jsonl").read_text().splitlines()):
        q, a = (normalize_text(x) for x in json.loads(line).values())
        data = (
            {"text": q + "\n" + a}
            if as_text
            else {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        )
        rows.append(Row(f"gsm8k:{i}", "text" if as_text else "sft", data))
    return rows


def _drops(rows: list[Row], cfg: QualityConfig) -> Counter[str]:
    ledger = Ledger()
    list(filter_quality(rows, ledger, cfg))
    return Counter(ledger.dropped)


def test_why_the_web_values_drop_gsm8k_solutions_on_real_rows(shared_data) -> None:
    """Gopher's n-gram shares and C4's punctuation rule, as published, on GSM8K's own rows."""
    web = QualityConfig(language_enabled=False, gopher_enabled=False, toxicity_enabled=False)
    sft, text = _gsm8k(shared_data, as_text=False), _gsm8k(shared_data, as_text=True)
    # "pink hard hats", named 8 times in a 64-word question: the top 2-gram holds 26% of the characters.
    assert "pink hard hats" in sft[17].text() and gopher_repetition(sft[17]) == "rep_top_ngram"
    # A solution that restates the problem's phrases ("the first hundred years' ship") repeats 5-grams.
    assert gopher_repetition(sft[10]) == "rep_dup_ngram"
    # Solution lines end in a result ("12*52=<<12*52=624>>624 pages a year") and "#### 624".
    assert text[4].text().endswith("#### 624") and c4_quality(text[4]) == "c4_terminal_punct"
    assert _drops(sft, web) == {"rep_top_ngram": 38, "rep_dup_ngram": 14}
    assert _drops(text, web) == {"rep_top_ngram": 35, "rep_dup_ngram": 35, "c4_terminal_punct": 173}


def test_the_curate_defaults_keep_gsm8k_and_hh_and_still_catch_degenerate_text(shared_data) -> None:
    from configs.quality import CurateQualityConfig
    from tasks.data.faults import rule_over_limit
    from tasks.data.formats import map_hh
    from tasks.data.quality import QualityStats

    cfg = CurateQualityConfig()
    assert _drops(_gsm8k(shared_data, as_text=False), cfg) == {}
    assert _drops(_gsm8k(shared_data, as_text=True), cfg) == {}
    hh = []
    with gzip.open(shared_data / "hh_harmless_sample.jsonl.gz", "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            try:
                hh.append(Row(f"hh:{i}", "pref", map_hh(json.loads(line))))
            except Exception:  # noqa: BLE001 - a few transcripts cannot be split; the reader drops them
                continue
    stats = QualityStats()
    list(filter_quality(hh, Ledger(), cfg, stats=stats))
    assert rule_over_limit(stats, cfg) is None and not any(r.startswith(("rep_", "c4_")) for r in stats.dropped)
    # What the repetition rules are for still goes: a loop, and an answer said twice.
    repetition = {"cfg": cfg}
    assert gopher_repetition(_sft("I'm sorry, I can't help with that. " * 10), **repetition) == "rep_top_ngram"
    twice = " ".join(SENTENCES) + " " + " ".join(SENTENCES)
    assert gopher_repetition(_sft(twice), **repetition) == "rep_dup_ngram"
    assert gopher_repetition(_sft("The answer is 5. " * 15), **repetition) == "rep_top_ngram"
