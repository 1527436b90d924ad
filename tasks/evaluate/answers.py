"""Reading the final answer out of generated text, GSM8K style."""

from __future__ import annotations

import re

_ANSWER = re.compile(r"answer is\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)
_GSM8K = re.compile(r"####\s*(-?[\d,]*\.?\d+)")
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def _clean(number: str) -> str:
    number = number.replace(",", "").rstrip(".")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number


def extract_final_number(text: str) -> str:
    """The number after "The answer is" or "####"; else the last number in the text; else ""."""
    for pattern in (_ANSWER, _GSM8K):
        found = pattern.findall(text)
        if found:
            return _clean(found[-1])
    numbers = _NUMBER.findall(text)
    return _clean(numbers[-1]) if numbers else ""
