"""All-or-nothing registry writes: steps that know their undo, and a lock per model of the home.

MLflow's registry has no transactions, and a promotion is several writes (tags, the card, the
audit record, two aliases). A `Transaction` runs each write as a step and remembers how to take it
back; when a later step fails, the steps done are undone newest first, so the registry is as it
was. The routines that use it are in registry/promotion.py.

Processes sharing one LLMOPS_HOME take turns per model: `serialised` holds the home's lock of that
model (`core.locks.home_lock`) from a routine's first read of the aliases to its last write.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable, TypeVar

from core.locks import home_lock
from registry import models

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")
_held = threading.local()  # the model locks this thread holds: a locked routine may call another


def serialised(fn: F) -> F:
    """Runs `fn(name_or_info, ...)` under the home's registry lock of that model."""

    @functools.wraps(fn)
    def wrapper(target, *args, **kwargs):
        name = target if isinstance(target, str) else target.name
        held = getattr(_held, "names", None) or set()
        if name in held:
            return fn(target, *args, **kwargs)
        _held.names = held | {name}
        try:
            with home_lock(f"registry-{name}"):
                return fn(target, *args, **kwargs)
        finally:
            _held.names = held

    return wrapper  # type: ignore[return-value]


class Transaction:
    """Runs steps and remembers their undos; a failure undoes what was done, newest first."""

    def __init__(self, what: str):
        self.what = what
        self._undos: list[tuple[str, Callable[[], None]]] = []

    def step(self, name: str, action: Callable[[], R], undo: Callable[[], None] | None = None) -> R:
        result = action()
        if undo is not None:
            self._undos.append((name, undo))
        return result

    def step_undone_by_result(self, name: str, action: Callable[[], R], undo: Callable[[R], None]) -> R:
        """A step whose undo needs what the action returned (the audit entry it appended, say)."""
        result = action()
        self._undos.append((name, lambda: undo(result)))
        return result

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            return False
        for name, undo in reversed(self._undos):
            try:
                undo()
            except Exception as undo_error:  # keep undoing the rest; say what could not be undone
                log.error("%s: could not undo step %r after %r: %r", self.what, name, exc, undo_error)
        return False


def _restore_alias(name: str, alias: str, version: int | None) -> Callable[[], None]:
    def undo() -> None:
        if version is None:
            try:
                models.delete_alias(name, alias)
            except Exception:  # already absent
                pass
        else:
            models.set_alias(name, alias, version)

    return undo


def alias_step(tx: Transaction, name: str, alias: str, version: int, before: dict[str, int]) -> None:
    tx.step(
        f"alias {alias}", lambda: models.set_alias(name, alias, version), _restore_alias(name, alias, before.get(alias))
    )


def delete_alias_step(tx: Transaction, name: str, alias: str, before: dict[str, int]) -> None:
    tx.step(f"alias {alias}", lambda: models.delete_alias(name, alias), _restore_alias(name, alias, before.get(alias)))


def tags_step(tx: Transaction, info: models.VersionInfo, tags: dict[str, str]) -> None:
    old = {k: info.tags.get(k) for k in tags}

    def undo() -> None:
        models.untag_version(info.name, info.version, [k for k, v in old.items() if v is None])
        models.tag_version(info.name, info.version, {k: v for k, v in old.items() if v is not None})

    tx.step("tags", lambda: models.tag_version(info.name, info.version, tags), undo)


def card_step(tx: Transaction, info: models.VersionInfo, description: str) -> None:
    old = current_card(info)
    tx.step(
        "model card",
        lambda: models.describe_version(info.name, info.version, description),
        lambda: models.describe_version(info.name, info.version, old),
    )


def current_card(info: models.VersionInfo) -> str:
    """The version's description as it is now (its card, or empty)."""
    return models.version_description(info.name, info.version)
