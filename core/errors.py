"""The one error a person can act on: which input is wrong, and what to do about it.

Raise `UserError` wherever bad input is found (a file, a flag, a model reference, a folder); the
CLI prints it as one line on stderr and exits with code 2, with no traceback unless `--debug`.
Anything else that escapes is a bug in llmops and is reported as such. It lives on the ground
floor (`core/`), so every layer may raise it.
"""

from __future__ import annotations


class UserError(Exception):
    """`subject`: the input as the user named it; `problem`: what is wrong; `fix`: what to do next."""

    exit_code = 2

    def __init__(self, subject: str, problem: str, fix: str = ""):
        self.subject, self.problem, self.fix = subject, problem, fix
        text = f"{subject}: {problem}" + (f"; {fix}" if fix else "")
        super().__init__(" ".join(text.split()))  # one line, whatever the parts held
