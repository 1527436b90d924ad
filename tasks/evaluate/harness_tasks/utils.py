"""Filters the offline lm-eval tasks share, so lm-eval and the in-house score read answers alike."""

from __future__ import annotations

from tasks.evaluate.answers import extract_final_number


def final_number(resps, docs):
    """lm-eval `custom` filter: each response becomes its final number ("" when there is none)."""
    return [[extract_final_number(r) for r in inst] for inst in resps]
