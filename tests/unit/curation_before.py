"""The curation steps as they decided before they were made fast (issue #13), kept as the oracle
`test_data_equivalence.py` compares the fast ones against.

Each function is the earlier code's logic, frozen: the toxicity word list as one regex alternation
over every row, language ID on the whole text with py3langid's own `classify`, every PII pattern on
every text (no trigger check), the Gopher repetition rules computing every n-gram share, the
decontamination index as 64-bit hashes of n-grams, exact dedup as a dict of 160-bit digests,
text normalisation line by line. Only what did not change (the regexes themselves, the Luhn and
IBAN checks) is imported from the project. Slow on purpose: never use it outside tests.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path

import xxhash

from configs.quality import QualityConfig
from tasks.data import pii
from tasks.data.quality import BULLETS, ELLIPSES, POLICY_PHRASES, STOP_WORDS, TERMINAL_PUNCT, _lines, _segments, _words
from tasks.data.records import Row
from tasks.data.toxicity import WORDLIST, _read_terms, _suffix, _term_pattern

# ------------------------------------------------------------------------------------ toxicity


@lru_cache(maxsize=1)
def _alternation(path: Path = WORDLIST) -> tuple[re.Pattern[str], frozenset[str]]:
    groups, severe = [], set()
    for i, (level, term) in enumerate(_read_terms(path)):
        groups.append(f"(?P<t{i}>{_term_pattern(term, _suffix(level))})")
        if level == "severe":
            severe.add(f"t{i}")
    return re.compile("|".join(groups), re.IGNORECASE), frozenset(severe)


def toxic_counts(text: str) -> tuple[int, int]:
    pattern, severe = _alternation()
    mild = strong = 0
    for m in pattern.finditer(text):
        if m.lastgroup in severe:
            strong += 1
        else:
            mild += 1
    return mild, strong


def toxic_reason(text: str, cfg: QualityConfig) -> str | None:
    mild, severe = toxic_counts(text)
    if severe or (mild and mild / max(len(text.split()), 1) > cfg.max_toxic_share):
        return "toxic_words"
    return None


# ------------------------------------------------------------------------------------ language


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    lang, score = _identifier().classify(text)
    return lang, float(score)


def language_reason(text: str, cfg: QualityConfig) -> str | None:
    lang, score = detect_language(text)
    if lang not in cfg.allowed_languages and score >= cfg.min_language_score:
        return "language_not_allowed"
    if score < cfg.min_language_score:
        return "language_low_confidence"
    return None


# ------------------------------------------------------------------------------------ PII


def mask_pii(text: str) -> tuple[str, Counter[str]]:
    """Every pattern, in the masking order, on every text."""
    p, counts = pii, Counter()
    text = p._mask(p.PEM_PRIVATE_KEY, "secret", text, counts)
    text = p._mask(p.OPENAI_KEY, "secret", text, counts, keep=lambda m: p._has_digit(m.group()[3:]))
    text = p._mask(p.AWS_KEY_ID, "secret", text, counts)
    text = p._mask(p.AWS_SECRET, "secret", text, counts, group=2)
    text = p._mask(p.GITHUB_TOKEN, "secret", text, counts)
    text = p._mask(p.BEARER, "secret", text, counts, keep=lambda m: p._has_digit(m.group(2)), group=2)
    text = p._mask(p.EMAIL, "email", text, counts)
    text = p.IBAN_GROUPED.sub(lambda m: p._iban(m, counts), text)
    text = p.IBAN_COMPACT.sub(lambda m: p._iban(m, counts), text)
    text = p._mask(p.CREDIT_CARD, "credit_card", text, counts, keep=p._card_ok)
    text = p._mask(p.SSN, "ssn", text, counts)
    text = p._mask(p.IPV4, "ip_address", text, counts, keep=lambda m: p._is_global_ip(m.group()))
    text = p._mask(
        p.IPV6,
        "ip_address",
        text,
        counts,
        keep=lambda m: sum(bool(g) for g in m.group().split(":")) >= 3 and p._is_global_ip(m.group()),
    )
    phone_ok = lambda m: sum(c.isdigit() for c in m.group()) >= p.MIN_PHONE_DIGITS  # noqa: E731
    return p._mask(p.PHONE, "phone", text, counts, keep=phone_ok), counts


# ------------------------------------------------------------------------------------ quality rules


def gopher_quality(text: str, c: QualityConfig) -> str | None:
    tokens, words = text.split(), _words(text)
    n = len(words)
    if n < c.min_words:
        return "gopher_too_few_words"
    if n > c.max_words:
        return "gopher_too_many_words"
    mean_len = sum(map(len, words)) / n if n else 0.0
    if not c.min_mean_word_length <= mean_len <= c.max_mean_word_length:
        return "gopher_mean_word_length"
    if (text.count("#") + text.count("...") + text.count("…")) / max(n, 1) > c.max_symbol_word_ratio:
        return "gopher_symbol_ratio"
    lines = _lines(text)
    if lines and sum(line.startswith(BULLETS) for line in lines) / len(lines) > c.max_bullet_lines_ratio:
        return "gopher_bullet_lines"
    if lines and sum(line.endswith(ELLIPSES) for line in lines) / len(lines) > c.max_ellipsis_lines_ratio:
        return "gopher_ellipsis_lines"
    if tokens and sum(any(ch.isalpha() for ch in t) for t in tokens) / len(tokens) < c.min_alpha_words_ratio:
        return "gopher_alpha_words"
    if len(STOP_WORDS.intersection(w.lower() for w in words)) < c.min_stop_words:
        return "gopher_stop_words"
    return None


def _duplicates(items: list[str]) -> tuple[int, int]:
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count, chars = count + 1, chars + len(item)
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
            covered[i : i + n] = [True] * n
        else:
            seen.add(gram)
    return sum(len(w) for w, cov in zip(words, covered) if cov) / total_chars


def repetition_reason(text: str, c: QualityConfig) -> str | None:
    words = [w.lower() for w in _words(text)]
    if len(words) < c.rep_min_words:
        return None
    lines = _lines(text)
    dup, dup_chars = _duplicates(lines)
    if dup / len(lines) > c.max_dup_line_fraction:
        return "rep_dup_lines"
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    pdup, pdup_chars = _duplicates(paragraphs)
    if pdup / len(paragraphs) > c.max_dup_paragraph_fraction:
        return "rep_dup_paragraphs"
    if dup_chars / len(text) > c.max_dup_line_char_fraction:
        return "rep_dup_line_chars"
    if pdup_chars / len(text) > c.max_dup_paragraph_char_fraction:
        return "rep_dup_paragraph_chars"
    total_chars = sum(map(len, words))
    for n, limit in sorted(c.max_top_ngram_share.items()):
        if _top_ngram_share(words, n, total_chars) > limit:
            return "rep_top_ngram"
    for n, limit in sorted(c.max_dup_ngram_share.items()):
        if _dup_ngram_share(words, n, total_chars) > limit:
            return "rep_dup_ngram"
    return None


def c4_quality(row: Row, text: str, c: QualityConfig) -> str | None:
    lower = text.lower()
    if c.c4_lorem_ipsum and "lorem ipsum" in lower:
        return "c4_lorem_ipsum"
    if c.c4_javascript and "javascript" in lower:
        return "c4_javascript"
    if c.c4_curly_brace and "{" in text:
        return "c4_curly_brace"
    lines = _lines(lower)
    if c.c4_policy and lines:
        if sum(any(p in line for p in POLICY_PHRASES) for line in lines) / len(lines) > c.max_policy_lines_ratio:
            return "c4_policy"
    if (
        c.c4_terminal_punct
        and (c.terminal_punct_on_chat or row.kind == "text")
        and len(lines) >= c.terminal_punct_min_lines
    ):
        num = c.terminal_punct_numbers
        ended = sum(line.endswith(TERMINAL_PUNCT) or (num and line[-1].isdigit()) for line in lines)
        if ended / len(lines) < c.min_terminal_punct_ratio:
            return "c4_terminal_punct"
    return None


def quality_reason(row: Row, c: QualityConfig) -> str | None:
    """The first failing enabled rule, in the quality step's order; language on the whole text."""
    text = row.text()
    rules = [
        (c.language_enabled, lambda: language_reason(text, c)),
        (c.gopher_enabled, lambda: gopher_quality(text, c)),
        (c.repetition_enabled, lambda: next(filter(None, (repetition_reason(s, c) for s in _segments(row))), None)),
        (c.c4_enabled, lambda: c4_quality(row, text, c)),
        (c.toxicity_enabled, lambda: toxic_reason(text, c)),
    ]
    for enabled, rule in rules:
        if enabled and (reason := rule()) is not None:
            return reason
    return None


# ------------------------------------------------------------------------------------ decontamination

_WORD = re.compile(r"\w+")


def _ngram_hashes(text: str, n: int) -> set[int]:
    words = _WORD.findall(text.lower())
    if not words:
        return set()
    if len(words) < n:
        return {xxhash.xxh3_64_intdigest(" ".join(words).encode("utf-8"))}
    return {xxhash.xxh3_64_intdigest(" ".join(words[i : i + n]).encode("utf-8")) for i in range(len(words) - n + 1)}


def contamination(train_texts: list[str], eval_items: list[tuple[str, str]], n: int) -> list[tuple[str, ...]]:
    """Per training text, the sorted ids of the eval items it shares an n-gram with (empty: kept)."""
    table: dict[int, set[str]] = {}
    for item_id, text in eval_items:
        for h in _ngram_hashes(text, n):
            table.setdefault(h, set()).add(item_id)
    out = []
    for text in train_texts:
        found: set[str] = set()
        for h in _ngram_hashes(text, n):
            found.update(table.get(h, ()))
        out.append(tuple(sorted(found)))
    return out


# ------------------------------------------------------------------------------------ normalisation and exact dedup

_HSPACE = re.compile(r"[^\S\n]+")
_BLANKS = re.compile(r"\n{3,}")


def normalize_text(s: str) -> str:
    s = unicodedata.normalize("NFC", s).replace("\r\n", "\n").replace("\r", "\n")
    lines = (_HSPACE.sub(" ", line).strip(" ") for line in s.split("\n"))
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def exact_duplicates(rows: list[Row]) -> list[str | None]:
    """Per row: None (first of its text) or the id of the earlier row it repeats."""
    first: dict[bytes, str] = {}
    out: list[str | None] = []
    for row in rows:
        key = hashlib.sha1(f"{row.kind}\0{normalize_text(row.text()).lower()}".encode("utf-8")).digest()
        out.append(first.get(key))
        first.setdefault(key, row.id)
    return out
