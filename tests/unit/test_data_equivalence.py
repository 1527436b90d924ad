"""The fast curation steps decide what the earlier ones decided (issue #13).

Each changed step is run beside its earlier code (`tests/unit/curation_before.py`) on the shared
data (GSM8K and Anthropic HH samples) and on adversarial text: word boundaries, case, look-alike
characters, Unicode (case variants the regex engine folds, other scripts' digits and spaces,
combining marks, zero-width characters) and seeded random strings from the alphabets each
step's triggers and patterns look at. Every comparison also checks that the cases hit what they
aim at (some rows masked, flagged, dropped), so a test cannot pass on data that triggers nothing.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from configs.quality import CurateQualityConfig, QualityConfig
from tasks.data import pii
from tasks.data.decontaminate import build_ngram_index, decontaminate
from tasks.data.dedup import ExactDedup, exact_keys
from tasks.data.language import PREFIX_CHARS, detect_languages, language_check
from tasks.data.quality import filter_quality
from tasks.data.read import read_rows
from tasks.data.records import Ledger, Row
from tasks.data.toxicity import load_lexicon, toxic_counts
from tasks.data.validate import normalize_text, validate_rows
from tests.unit import curation_before as before


class Reasons:
    """A ledger that remembers each dropped row's reason."""

    def __init__(self):
        self.by_id: dict[str, str] = {}

    def drop(self, row, row_id, reason, detail=""):
        self.by_id[row_id] = reason


@pytest.fixture(scope="module")
def shared_rows(shared_data) -> list[Row]:
    rows = []
    for name in ("gsm8k_train_sample.jsonl", "hh_harmless_sample.jsonl.gz"):
        rows += validate_rows(read_rows(shared_data / name, Ledger()), Ledger())
    assert len(rows) > 1400
    return rows


@pytest.fixture(scope="module")
def shared_texts(shared_rows) -> list[str]:
    """Every text a step sees: whole rows, and each message or field alone."""
    texts = [r.text() for r in shared_rows]
    for r in shared_rows:
        texts += [m["content"] for m in r.data["messages"]] if r.kind == "sft" else []
        texts += [r.data[k] for k in ("prompt", "chosen", "rejected")] if r.kind == "pref" else []
    return texts


def _fuzz(alphabet: list[str], n: int, length: tuple[int, int], seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(*length))) for _ in range(n)]


# ------------------------------------------------------------------------------------ toxicity

_FULLWIDTH = {chr(c): chr(c + 0xFEE0) for c in range(ord("a"), ord("z") + 1)}
_SPACES = [" ", "  ", "\n", "\t", "\u00a0", "\u2003", "\u3000", "\x1c", " . ", "-", "_", "\u200b"]


def _toxic_cases() -> list[str]:
    texts = []
    for _, term in load_lexicon().terms:
        variants = {
            term,
            term.upper(),
            term.title(),
            term.replace("a", "@").replace("e", "3").replace("i", "1").replace("o", "0").replace("s", "$"),
            term.replace("s", "5").replace("t", "7").replace("l", "1").replace("i", "!"),
            "".join(ch * 3 for ch in term),
            term[0] + "*" * (len(term) - 2) + term[-1] if len(term) > 2 else term,
            term[:2] + "**" + term[4:] if len(term) > 4 else term,
            ".".join(term),
            "-".join(term),
            "..".join(term),
            term.replace("k", "\u212a").replace("s", "\u017f"),  # Kelvin sign, long s: IGNORECASE folds both
            term.replace("i", "\u0131"),  # dotless i: not folded to i
            term.upper().replace("I", "\u0130"),  # dotted capital I
            "".join(_FULLWIDTH.get(ch, ch) for ch in term),
            term[:1] + "\u0301" + term[1:],  # a combining accent inside
            term[:1] + "\u200b" + term[1:],  # a zero-width space inside
        }
        for v in sorted(variants):
            texts += [v, f"you {v}!", f"x{v}", f"{v}x", f"{v}s", f"{v}ing", f"{v}ers", f"({v})", f"_{v}_", f"{v}1"]
            texts += [f"1{v}", f"{v}\u00e9", f"\u00e9{v}", f"{v}'s", f"{v}.{v}", f"{v}{v}"]
        if " " in term:
            texts += [term.replace(" ", sp) for sp in _SPACES]
    return texts


def test_toxicity_screen_gives_the_alternations_counts(shared_texts):
    words = sorted({ch for _, t in load_lexicon().terms for ch in t} | set("@301$57!|*.-_ \n\u212a\u017fAEIOUSTK"))
    cases = _toxic_cases() + _fuzz(words, 4000, (3, 40), seed=1) + shared_texts
    fast = [toxic_counts(t) for t in cases]
    slow = [before.toxic_counts(t) for t in cases]
    assert fast == slow
    hits = sum(1 for m, s in slow if m or s)
    assert hits > 2000 and sum(1 for _, s in slow if s) > 300  # the cases do match, mild and severe


# ------------------------------------------------------------------------------------ PII

_PII_CASES = [
    "write to sam.o'neil+tag@mail.example.co.uk or SAM@EXAMPLE.COM today",
    "x@y.z is no address, a.b@c.de is one, and @handle is neither",
    "Call (555) 123-4567, +44 20 7946 0958, +447946095800 or 1-800-555-0199.",
    "Reach ٥٥٥-١٢٣-٤٥٦٧ or ５５５-１２３-４５６７ (other scripts' digits)",
    "12 + 7 = 19, in 1999, 120 - 45 = 75, version 1.2.3.4.5, 3.14159",
    "card 4111 1111 1111 1111, 4111-1111-1111-1112, 378282246310005, 4111111111111111.5",
    "IBAN GB82 WEST 1234 5698 7654 32 ABCD and DE89370400440532013000, DE89370400440532013001",
    "SSN 123-45-6789, 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000",
    "hosts 8.8.8.8, 192.168.1.1, 10.0.0.1, 256.1.1.1, 1.2.3, 1.2.3.4.5 and 2001:4860:4860::8888, ::1, fe80::1",
    "2001:db8::1 is documentation; 2606:4700:4700::1111 is not",
    "key sk-abcdefghij0123456789XYZ and sk-abcdefghijklmnopqrstuvwxyz (no digit)",
    "AKIAABCDEFGHIJKLMNOP and ASIA1234567890ABCDEF; aws_secret_access_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
    "AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "aw\u017f_secret_access_\u212aey=abcdEFGHijklMNOPqrstUVWXyz0123456789ABCD (long s, Kelvin sign)",
    "ghp_" + "a1" * 18 + " and gho_short and Bearer abcdefghijklmnop1234 and Bearer token and Bearer YOUR_TOKEN_HERE",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY----- after",
    "mixed: a@b.io 4111 1111 1111 1111 (555) 123-4567 8.8.8.8 123-45-6789",
]


def _pii_fuzz(n: int, seed: int) -> list[str]:
    """Texts made of number groups, separators, letters and key prefixes: near and true matches."""
    rng = random.Random(seed)
    digits = "0123456789" * 3 + "٣５"

    def piece() -> str:
        kind = rng.randrange(7)
        if kind == 0:
            return "".join(rng.choice(digits) for _ in range(rng.randint(1, 19)))
        if kind == 1:
            return rng.choice(["(", "+", "+1 ", "1-", ""]) + "".join(rng.choice(digits) for _ in range(3))
        if kind == 2:
            return rng.choice(["sk-", "AKIA", "ghp_", "Bearer ", "GB82", "DE89", "aws_secret_access_key=", "::", ":"])
        if kind == 3:
            return rng.choice(["a", "x.y", "mail", "Ab", "fe80", "db8", "2001"]) + rng.choice(["@", ".", ":", ""])
        if kind == 4:
            return ".".join(str(rng.randint(0, 300)) for _ in range(rng.randint(2, 5)))
        if kind == 5:
            return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(rng.randint(2, 20)))
        return rng.choice(["4111", "1111", "5555", "4444", "123", "45", "6789", "0000", "666"])

    seps = [" ", "-", ".", "", " ", ") ", "\u00a0", ", ", "  ", "\n"]
    return ["".join(piece() + rng.choice(seps) for _ in range(rng.randint(1, 9))) for _ in range(n)]


def test_pii_triggers_mask_what_every_pattern_masks(shared_texts):
    cases = _PII_CASES + _pii_fuzz(8000, seed=2) + shared_texts
    fast = [pii.mask_pii(t) for t in cases]
    slow = [before.mask_pii(t) for t in cases]
    assert fast == slow
    kinds = Counter()
    for _, c in slow:
        kinds.update(c)
    assert set(kinds) == set(pii.PLACEHOLDERS) and sum(1 for _, c in slow if c) > 500


def test_ascii_number_triggers_are_the_regex_clusters(shared_texts):
    """On ASCII text the digit clusters come from numpy and a strip per gap, not a regex scan: the
    same triggers on the cases, the fuzz made ASCII (other scripts' digits and no-break spaces
    replaced), and the shared data, and the same masks as the earlier code."""
    ascii_fuzz = [t.replace("٣", "3").replace("５", "5").replace("\u00a0", " ") for t in _pii_fuzz(8000, seed=5)]
    rng = random.Random(6)
    ssn_like = [  # SSN shapes among other marks and digits: the fuzz seldom writes one
        f"{rng.choice(['', 'x', '(', '1-', '12 '])}{rng.randint(0, 999):03d}-{rng.randint(0, 99):02d}"
        f"{rng.choice(['-', '--', ' -', '.'])}{rng.randint(0, 9999):04d}{rng.choice(['', '1', '-', ' 5', 'a'])}"
        for _ in range(200)
    ]
    cases = [t for t in _PII_CASES + ascii_fuzz + ssn_like + shared_texts if t.isascii()]
    assert len(cases) > 9000
    hits = Counter()
    for t in cases:
        fast = pii._ascii_number_triggers(t)
        assert fast == pii._number_triggers(t), t
        hits.update(kind for kind, on in fast.items() if on)
    assert min(hits[k] for k in ("card", "phone", "ssn", "ipv4", "iban")) > 20, hits
    assert [pii.mask_pii(t) for t in ascii_fuzz + ssn_like] == [before.mask_pii(t) for t in ascii_fuzz + ssn_like]


# ------------------------------------------------------------------------------------ language

_LANGUAGE_CASES = [
    "",
    "   ",
    "7",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG WHILE THE FARMER COUNTS APPLES",
    "Le renard brun saute par-dessus le chien paresseux pendant que le fermier compte les pommes.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "狐狸跳过了懒狗，农夫在数苹果。",
    "Лиса прыгает через ленивую собаку.",
    "e\u0301te\u0301 (decomposed accents) " * 3,
    "emoji 🦊🐶🍎 " * 10,
    "x" * (PREFIX_CHARS + 500),
    "The answer is 42. " * 200,
]


def test_language_of_the_prefix_is_py3langids_own(shared_texts):
    """The batched model gives py3langid's language for the first PREFIX_CHARS characters, with its
    probability to 2.2e-4 (one-word texts; 1e-4 on longer ones), and py3langid's own probability
    where the decision is close to the threshold."""
    cases = _LANGUAGE_CASES + shared_texts[:1500]
    fast = detect_languages(cases)
    slow = [before.detect_language(t[:PREFIX_CHARS]) for t in cases]
    assert [lang for lang, _ in fast] == [lang for lang, _ in slow]
    assert max(abs(a - b) for (_, a), (_, b) in zip(fast, slow)) < 2.5e-4
    assert max(abs(a - b) for t, (_, a), (_, b) in zip(cases, fast, slow) if len(t) > 20) < 1e-4
    near = detect_languages(cases, threshold=0.0139)  # the one-word texts' probability: recomputed
    assert [p for _, p in near[:3]] == [p for _, p in slow[:3]]
    assert {"en", "fr", "de", "zh", "ru"} <= {lang for lang, _ in fast}


def test_prefix_language_decisions_match_whole_text_on_the_shared_data(shared_rows):
    """What the prefix changed: the keep/drop decision on every shared row is the whole text's
    (1,497 of 1,497 rows; 316 of them longer than the prefix). docs/curation-speed.md quotes it."""
    cfg = QualityConfig()
    texts = [r.text() for r in shared_rows]
    assert sum(len(t) > PREFIX_CHARS for t in texts) > 300
    check = language_check(cfg.allowed_languages, cfg.min_language_score)
    fast = [check(row, detected) for row, detected in zip(shared_rows, detect_languages(texts))]
    assert fast == [before.language_reason(t, cfg) for t in texts]


# ------------------------------------------------------------------------------------ quality rules


def _quality_cases() -> list[Row]:
    rng = random.Random(3)
    vocab = "the farmer counts apples in a basket near barn river rain of and to with".split()
    texts = [
        "\n".join(["Buy now!"] * 10 + ["A real sentence about the farmer and the apples."] * 3),
        "\n\n".join(["Same paragraph here, with the farmer and the basket."] * 4 + ["Another one ends it."]),
        "- item one\n- item two\n- item three\n* item four\n• item five",
        "Wait...\nAnd then…\nNothing...\nThe end.",
        "Lorem ipsum dolor sit amet, the farmer said to the basket.",
        "Please enable JavaScript to see the farmer's apples.",
        "Terms of use\nPrivacy policy\nThis site uses cookies\nThe farmer counts apples.",
        "Menu\nHome\nAbout\nContact\nThe farmer counts apples near the barn.",
        "{ json: 1 } with the farmer and the apples of the barn",
        "#### 72\n24 + 12 = <<24+12=36>>36\nThe answer is 36",
    ]
    for i in range(1500):  # degenerate text of every degree: few words repeated in runs
        k = rng.choice([2, 3, 5, 8, 14])
        words = [rng.choice(vocab[:k]) for _ in range(rng.randint(20, 220))]
        if rng.random() < 0.5:
            phrase = words[: rng.randint(2, 12)]
            words += phrase * rng.randint(1, 12)
        rng.shuffle(words) if rng.random() < 0.3 else None
        lines = [" ".join(words[j : j + rng.randint(3, 30)]) for j in range(0, len(words), 12)]
        sep = rng.choice([". ", ".\n", "\n", "\n\n", "... ", " # "])
        texts.append(sep.join(lines) + rng.choice(["", ".", "!", "..."]))
    rows = [Row(f"t{i}", "text", {"text": t}) for i, t in enumerate(texts)]
    for i in range(0, len(texts) - 1, 7):  # the same texts as chat and preference rows
        rows.append(
            Row(
                f"s{i}",
                "sft",
                {"messages": [{"role": "user", "content": texts[i]}, {"role": "assistant", "content": texts[i + 1]}]},
            )
        )
        rows.append(Row(f"p{i}", "pref", {"prompt": "Q?", "chosen": texts[i], "rejected": texts[i + 1]}))
    return rows


@pytest.mark.parametrize(
    "cfg",
    [
        CurateQualityConfig(language_enabled=False, max_drop_fraction=1.0),
        QualityConfig(language_enabled=False, terminal_punct_on_chat=True, c4_curly_brace=True),
        QualityConfig(
            language_enabled=False,
            rep_min_words=5,
            max_top_ngram_share={2: 0.1, 3: 0.08, 4: 0.06},
            max_dup_ngram_share={n: 0.05 + 0.01 * n for n in range(5, 11)},
        ),
    ],
    ids=["curate-defaults", "web-defaults", "strict-repetition"],
)
def test_quality_rules_decide_as_before(shared_rows, cfg):
    rows = _quality_cases() + shared_rows
    fast = Reasons()
    kept = {r.id for r in filter_quality(rows, fast, cfg)}
    slow = {r.id: before.quality_reason(r, cfg) for r in rows}
    assert fast.by_id == {rid: reason for rid, reason in slow.items() if reason is not None}
    assert kept == {rid for rid, reason in slow.items() if reason is None}
    assert len(set(fast.by_id.values())) >= 5 and len(kept) > 100


def test_quality_with_language_decides_as_before_on_the_shared_data(shared_rows):
    cfg = CurateQualityConfig(max_drop_fraction=1.0)
    fast = Reasons()
    list(filter_quality(shared_rows, fast, cfg))
    slow = {r.id: before.quality_reason(r, cfg) for r in shared_rows}
    assert fast.by_id == {rid: reason for rid, reason in slow.items() if reason is not None}


# ------------------------------------------------------------------------------------ decontamination


@pytest.mark.parametrize("n", [13, 3])
def test_decontamination_hits_the_same_eval_items(shared_rows, n):
    gsm = [r for r in shared_rows if r.source.endswith("gsm8k_train_sample.jsonl")]
    items = [(f"e{i}", r.text()) for i, r in enumerate(gsm[:120])] + [
        ("short", "What is 2 + 2?"),
        ("uni", "Ça coûte 5 €"),
    ]
    copies = [
        gsm[3].text().upper(),
        "Intro. " + gsm[5].text().replace(" ", "  ").replace(".", " , ") + " Outro.",
        "what is 2+2",
        "What is 2 + 2? And 3 + 3?",
        "ça COÛTE 5€",
        "Ça coûte 5 € and more words after it",
        "١٢٣ ٤٥٦ digits of another script",
    ]
    texts = [r.text() for r in shared_rows] + copies
    rows = [Row(f"r{i}", "text", {"text": t}) for i, t in enumerate(texts)]
    fast = Reasons()
    index = build_ngram_index(items, n)
    hits: Counter[str] = Counter()
    kept = {r.id for r in decontaminate(rows, fast, index, n, hits)}
    slow = before.contamination(texts, items, n)
    assert kept == {f"r{i}" for i, ids in enumerate(slow) if not ids}
    assert hits == Counter(item for ids in slow for item in ids)
    assert len(fast.by_id) >= 120 and "short" in hits


def test_decontamination_on_ascii_bytes_finds_what_the_word_regex_finds(shared_rows):
    """ASCII rows are cut into words by one bytes table (lower case, non-word characters to spaces):
    every ASCII separator and punctuation mark between the words of an eval item, its case changed,
    underscores and digits joined to its words, and the Kelvin sign that lower-cases to an ASCII k."""
    gsm = [r for r in shared_rows if r.source.endswith("gsm8k_train_sample.jsonl")]
    items = [(f"e{i}", r.text()) for i, r in enumerate(gsm[:60])] + [
        ("k", "Kelvin knows 7 keys"),
        ("u", "snake_case x"),
    ]
    rng = random.Random(11)
    marks = [chr(c) for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")]
    copies = []
    for _, text in items:
        words = text.split()
        for _ in range(6):
            joined = "".join(w + "".join(rng.choices(marks, k=rng.randint(1, 3))) for w in words)
            copies.append(rng.choice([joined, joined.upper(), joined.swapcase(), "_" + joined, joined + "9"]))
    copies += [
        "\u212aelvin knows 7 \u212aeys",
        "KELVIN\x1cKNOWS\x1f7\x0bKEYS",
        "snake_case x",
        "snake case x",
        "Snake_Case\tX",
    ]
    rows = [Row(f"r{i}", "text", {"text": t}) for i, t in enumerate(copies)]
    for n in (13, 3):
        fast = Reasons()
        hits: Counter[str] = Counter()
        kept = {r.id for r in decontaminate(rows, fast, build_ngram_index(items, n), n, hits)}
        slow = before.contamination(copies, items, n)
        assert kept == {f"r{i}" for i, ids in enumerate(slow) if not ids}
        assert hits == Counter(item for ids in slow for item in ids)
        assert 100 < len(fast.by_id) < len(rows) and {"k", "u"} <= set(hits)


# ------------------------------------------------------------------------------------ exact dedup


def test_exact_dedup_keeps_the_same_first_copies(shared_rows):
    assert all(r.normalized and normalize_text(r.text()) == r.text() for r in shared_rows)  # what it skips
    rows = list(shared_rows)
    rng = random.Random(4)
    for i in rng.sample(range(len(shared_rows)), 300):  # copies with other case, spacing, composition
        r = shared_rows[i]
        text = r.text()
        variant = rng.choice([text.upper(), text.replace(" ", " \t "), text + "  ", "\u00a0" + text])
        rows.append(Row(f"copy{i}", "text", {"text": normalize_text(variant)}))
        rows.append(Row(f"same{i}", r.kind, r.data))
    rows.append(Row("nfd", "text", {"text": normalize_text("cafe\u0301 au lait")}))
    rows.append(Row("nfc", "text", {"text": "café au lait"}))
    rng.shuffle(rows)
    dedup = ExactDedup()
    fast = []
    for start in range(0, len(rows), 250):
        chunk = rows[start : start + 250]
        fast += dedup.decide([r.id for r in chunk], exact_keys(chunk))
    dedup.close()
    assert fast == before.exact_duplicates(rows)
    assert sum(f is not None for f in fast) >= 300


def test_normalize_text_is_what_it_was():
    alphabet = list("ab c\n\t\r") + ["\u00a0", "\u2003", "\x0b", "\x1c", "\u0301", "e", "\u2028", "  ", "\n\n\n"]
    cases = _fuzz(alphabet, 5000, (0, 30), seed=5) + ["", " ", "\n", "a\r\nb", "  a  b  ", "x\n \ny", "é"]
    assert [normalize_text(t) for t in cases] == [before.normalize_text(t) for t in cases]
