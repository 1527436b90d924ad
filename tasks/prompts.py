"""Prompt templates are data: a text with a `{{question}}` placeholder that wraps each user turn.

The identity template `{{question}}` leaves a dataset's own turns as they are; a task prompt such as
the demo's "Solve: {{question}}" frames every question the same way in training and evaluation.
Which template a model version was trained with is recorded with it (registry/prompts.py), so
evaluation and the model card use that version, not whatever the config says today.
"""

from __future__ import annotations

import re

IDENTITY = "{{question}}"
FIELDS = ("question",)
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def template_fields(template: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER.finditer(template)]


def template_problems(template: str) -> list[str]:
    """What is wrong with a template, for the config check: every problem, each with its fix."""
    fields = template_fields(template)
    problems = []
    unknown = sorted({f for f in fields if f not in FIELDS})
    if unknown:
        problems.append(f"unknown placeholder(s) {', '.join('{{' + f + '}}' for f in unknown)}; "
                        f"a template may use only {', '.join('{{' + f + '}}' for f in FIELDS)}")
    if fields.count("question") != 1:
        problems.append(f"the template must hold {{{{question}}}} exactly once (found {fields.count('question')} times); "
                        "it is where each user turn goes")
    return problems


def render_prompt(template: str, question: str) -> str:
    """The user turn as the model sees it. A placeholder is replaced once, so a question that itself
    contains `{{question}}` is not expanded again."""
    parts = _PLACEHOLDER.split(template, maxsplit=1)
    if len(parts) == 1:  # no placeholder: the config check refuses this, but stay safe
        return template + question
    head, _, tail = parts
    return head + question + tail
