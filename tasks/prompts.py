"""Prompt templates are data: a text with a `{{question}}` placeholder that wraps each user turn.

The identity template `{{question}}` leaves a dataset's own turns as they are; a task prompt such as
the demo's "Solve: {{question}}" frames every question the same way in training and evaluation.
Which template a model version was trained with is recorded with it (registry/prompts.py), so
evaluation and the model card use that version, not whatever the config says today.
"""

from __future__ import annotations

from configs.prompts import PLACEHOLDER


def render_prompt(template: str, question: str) -> str:
    """The user turn as the model sees it. A placeholder is replaced once, so a question that itself
    contains `{{question}}` is not expanded again."""
    parts = PLACEHOLDER.split(template, maxsplit=1)
    if len(parts) == 1:  # no placeholder: the config check refuses this, but stay safe
        return template + question
    head, _, tail = parts
    return head + question + tail
