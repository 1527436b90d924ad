"""What a prompt template may hold: one `{{question}}` where each user turn goes, and nothing else.

The config check (`PromptConfig`) and the library that renders templates (`tasks/prompts.py`) read
the same rules from here.
"""

from __future__ import annotations

import re

IDENTITY = "{{question}}"
FIELDS = ("question",)
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def template_fields(template: str) -> list[str]:
    return [m.group(1) for m in PLACEHOLDER.finditer(template)]


def template_problems(template: str) -> list[str]:
    """What is wrong with a template, for the config check: every problem, each with its fix."""
    fields = template_fields(template)
    problems = []
    unknown = sorted({f for f in fields if f not in FIELDS})
    if unknown:
        problems.append(
            f"unknown placeholder(s) {', '.join('{{' + f + '}}' for f in unknown)}; "
            f"a template may use only {', '.join('{{' + f + '}}' for f in FIELDS)}"
        )
    if fields.count("question") != 1:
        problems.append(
            f"the template must hold {{{{question}}}} exactly once (found {fields.count('question')} times); "
            "it is where each user turn goes"
        )
    return problems
