"""Reading the final answer out of generated text: lm-eval's two GSM8K filters, and the project's own rule.

The names mean what they mean in lm-evaluation-harness 0.4.13 (`lm_eval/tasks/gsm8k/gsm8k.yaml`), so a
figure reported as `strict-match` here can be set beside one from lm-eval:

- `strict-match`: the first `#### N` (GSM8K's own answer line). Anything else, "The answer is 7"
  included, is `[invalid]` and scores 0.
- `flexible-extract`: the last run of digits, `$`, `.` and `,` (two or more characters), else the last
  lone digit; `[invalid]` when the text has no digit.
- Both are then compared as lm-eval's gsm8k task compares them: `,`, `$`, everything up to a
  `#### ` and a final `.` removed from prediction and reference, case ignored (`gsm8k_exact_match`).

`final-number` is the project's own, lenient rule (`arithmetic/exact_match`): an explicit answer
marker at its first occurrence, `#### N` before "the answer is N" (the demo format the embedded
model learns), else the last number; commas and trailing zeros dropped ("1,000.50" -> "1000.5").
GSM8K's marker comes first because a GSM8K answer can say "the answer is" in its working and give
another number after `####`, which is the one graded.
"""

from __future__ import annotations

import re

# lm-eval 0.4.13, gsm8k.yaml: filter_list and metric_list (tests check these against the installed copy).
STRICT_MATCH = r"#### (\-?[0-9\.\,]+)"
FLEXIBLE_EXTRACT = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
GSM8K_IGNORE = (",", r"\$", r"(?s).*#### ", r"\.$")
INVALID = "[invalid]"

_STRICT = re.compile(STRICT_MATCH)
_FLEXIBLE = re.compile(FLEXIBLE_EXTRACT)
_IGNORE = [re.compile(p) for p in GSM8K_IGNORE]

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_MARKERS = (
    re.compile(r"####\s*\$?\s*(" + _NUMBER + ")"),
    re.compile(r"answer is\s*:?\s*\$?\s*(" + _NUMBER + ")", re.IGNORECASE),
)
_ANY_NUMBER = re.compile(_NUMBER)


def strict_match(text: str) -> str:
    """lm-eval's `strict-match`: the number after the first `#### `, as written; else `[invalid]`."""
    found = _STRICT.search(text)
    return found.group(1).strip() if found else INVALID


def flexible_extract(text: str) -> str:
    """lm-eval's `flexible-extract`: the last number-like run, as written; else `[invalid]`."""
    found = _FLEXIBLE.findall(text)
    if not found:
        return INVALID
    groups = [g for g in found[-1] if g]
    return groups[0].strip() if groups else INVALID


def gsm8k_normalise(text: str) -> str:
    """What lm-eval's gsm8k exact_match compares: its `regexes_to_ignore` removed in order, lower case."""
    for pattern in _IGNORE:
        text = pattern.sub("", text)
    return text.lower()


def gsm8k_exact_match(prediction: str, reference: str) -> float:
    return float(gsm8k_normalise(prediction) == gsm8k_normalise(reference))


def _clean(number: str) -> str:
    number = number.replace(",", "")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return "0" if number in ("-0", "") else number


def extract_final_number(text: str) -> str:
    """The project's `final-number`: `#### N`, else "the answer is N" (first of each), else the last
    number; "" when the text has no number."""
    for marker in _MARKERS:
        found = marker.search(text)
        if found:
            return _clean(found.group(1))
    numbers = _ANY_NUMBER.findall(text)
    return _clean(numbers[-1]) if numbers else ""
