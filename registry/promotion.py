"""Every change to a model's versions and aliases, as one transaction-like routine.

MLflow's registry has no transactions, and a promotion is several writes: tags and the model card
on the version, an entry in the audit log, then two aliases (`previous` to the old champion,
`champion` to the new one). A failure between two of them used to leave a half-promoted model
(`previous` moved, `champion` not). Here each write is a step that knows its undo; steps run in a
fixed order — check the version and the aliases first, then the version's tags and card, then the
audit record, the aliases last — and when any step fails, the steps already done are undone in
reverse, so the registry is as it was. Registering a candidate, and a prompt gate's decision (the
prompt's `production` alias and the champion's card), work the same way.

Processes sharing one LLMOPS_HOME (two nightlies at once) take turns: each public routine holds a
lock of the home per model (`core.locks.home_lock`) from its first read of the aliases to its
last write, so no routine acts on aliases another is moving.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from typing import Any, Callable, TypeVar

from core.errors import UserError
from core.locks import home_lock
from registry import models, prompts
from registry.audit import record_decision, remove_decision
from registry.gate import GateDecision
from registry.tracking import client

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
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

    def step(self, name: str, action: Callable[[], Any], undo: Callable[[], None] | None = None) -> Any:
        result = action()
        if undo is not None:
            self._undos.append((name, undo))
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


def tags_step(tx: Transaction, info: models.VersionInfo, tags: dict[str, str]) -> None:
    old = {k: info.tags.get(k) for k in tags}

    def undo() -> None:
        models.untag_version(info.name, info.version, [k for k, v in old.items() if v is None])
        models.tag_version(info.name, info.version, {k: v for k, v in old.items() if v is not None})

    tx.step("tags", lambda: models.tag_version(info.name, info.version, tags), undo)


def card_step(tx: Transaction, info: models.VersionInfo, description: str) -> None:
    old = client().get_model_version(info.name, str(info.version)).description or ""
    tx.step(
        "model card",
        lambda: models.describe_version(info.name, info.version, description),
        lambda: models.describe_version(info.name, info.version, old),
    )


def audit_step(
    tx: Transaction,
    name: str,
    version: int | None,
    action: str,
    by: str,
    why: str,
    evidence_run_id: str | None = None,
    metrics: dict | None = None,
) -> dict:
    entry = tx.step("audit record", lambda: record_decision(name, version, action, by, why, evidence_run_id, metrics))
    tx._undos.append(("audit record", lambda: remove_decision(name, entry)))
    return entry


def _existing_version(name: str, version: int) -> models.VersionInfo:
    info = models.get_version(name, version)
    if info is None:
        models.resolve_version(f"{name}/{version}")  # raises the UserError that lists what exists
    return info


# ------------------------------------------------------------------------------ registration


@serialised
def register_candidate(name: str, source: str, run_id: str, tags: dict[str, str]) -> models.VersionInfo:
    """Registers a trained folder as a new version of `name` and marks it `challenger`.

    `source` must be a location the tracking server accepts: the artifact URI of the folder the
    training run logged (a local path on SQLite, `mlflow-artifacts:/…` behind a server).
    """
    from mlflow.exceptions import MlflowException

    c = client()
    with Transaction(f"register {name}") as tx:
        try:
            c.get_registered_model(name)
        except MlflowException:
            tx.step(
                "registered model",
                lambda: c.create_registered_model(
                    name, description="Fine-tuned by llmops; see each version's model card."
                ),
                lambda: c.delete_registered_model(name),
            )
        before = models.aliases_of(name)
        mv = tx.step(
            "version",
            lambda: c.create_model_version(name, source=source, run_id=run_id, tags=tags),
            lambda: c.delete_model_version(name, mv.version),
        )
        alias_step(tx, name, "challenger", int(mv.version), before)
    return models.get_version(name, int(mv.version))


@serialised
def unregister_candidate(info: models.VersionInfo, challenger_before: int | None) -> None:
    """Undoes `register_candidate` when a later stage of the same pipeline failed."""
    c = client()
    with Transaction(f"unregister {info.name} v{info.version}"):
        if challenger_before is not None and models.get_version(info.name, challenger_before) is not None:
            models.set_alias(info.name, "challenger", challenger_before)
        c.delete_model_version(info.name, str(info.version))
        if not c.search_model_versions(f"name = '{info.name}'"):
            c.delete_registered_model(info.name)


# ------------------------------------------------------------------------------ decisions


@serialised
def apply_decision(
    name: str,
    version: int,
    decision: str,
    by: str,
    why: str,
    *,
    evidence_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    card: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> int | None:
    """Records a gate or release-manager decision on `version` and, for `promote`, moves the aliases.

    Returns the champion it replaced (None if none, or if it was not a promotion).
    """
    info = _existing_version(name, version)
    before = models.aliases_of(name)
    replaced = before.get("champion") if decision == "promote" and before.get("champion") != version else None
    served = served_prompt(info) if decision == "promote" else None
    with _prompt_lock(served), Transaction(f"{decision} {name} v{version}") as tx:
        if tags:
            tags_step(tx, info, tags)
        if card is not None:
            card_step(tx, info, card)
        audit_step(
            tx,
            name,
            version,
            decision,
            by,
            why,
            evidence_run_id,
            (metrics or {}) | ({"replaced": replaced} if replaced else {}),
        )
        if decision == "promote":
            if replaced is not None:
                alias_step(tx, name, "previous", replaced, before)
            alias_step(tx, name, "champion", version, before)
            if served:
                _prompt_follows(tx, *served, "promote", by, f"{name} v{version} promoted: {why}")
    return replaced


@serialised
def promote_by_hand(name: str, version: int, by: str, why: str) -> int | None:
    """A release manager's promotion: checked first, then recorded and applied in one routine."""
    if not why.strip():
        raise UserError(
            "--reason", "a promotion by hand needs a reason", "say why, e.g. --reason 'approved after review'"
        )
    return apply_decision(
        name, version, "promote", by, why, tags={"gate.decision": "promote", "gate.decided_by": by, "gate.reason": why}
    )


@serialised
def rollback(name: str, by: str, why: str) -> tuple[int, int]:
    """Moves `champion` back to `previous`; returns (demoted version, restored version)."""
    before = models.aliases_of(name)
    current, previous = before.get("champion"), before.get("previous")
    if current is None or previous is None:
        if name not in models.registered_names():
            models.resolve_version(f"{name}@champion")  # raises, naming the models that exist
        raise UserError(
            f"model {name!r}",
            f"has no {'champion' if current is None else 'previous'} version to roll back to",
            "see `llmops models` and `llmops models history " + name + "`",
        )
    if current == previous:
        raise UserError(
            f"model {name!r}",
            f"champion and previous are both v{current}: there is nothing to roll back to",
            f"promote the version you want by hand: llmops promote --model {name} --version N --reason ...",
        )
    info = _existing_version(name, current)
    served = served_prompt(_existing_version(name, previous))
    with _prompt_lock(served), Transaction(f"rollback {name}") as tx:
        tags_step(tx, info, {"rollback.by": by, "rollback.reason": why})
        audit_step(tx, name, previous, "rollback", by, why, metrics={"demoted": current})
        alias_step(tx, name, "champion", previous, before)
        tx.step(
            "alias previous", lambda: models.delete_alias(name, "previous"), _restore_alias(name, "previous", previous)
        )
        if served:
            _prompt_follows(tx, *served, "rollback", by, f"{name} rolled back to v{previous}: {why}")
    return current, previous


def served_prompt(info: models.VersionInfo) -> tuple[str, int] | None:
    """(prompt name, version) a version served as champion: the one the prompt gate last made live on
    it (`prompt.live`), else the one it was trained with (`lineage.prompt`)."""
    ref = info.tags.get("prompt.live") or info.lineage.prompt
    prompt, _, number = ref.removeprefix("prompts:/").rpartition("/")
    return (prompt, int(number)) if prompt and number.isdigit() else None


def _prompt_lock(served: tuple[str, int] | None) -> contextlib.AbstractContextManager:
    """The prompt's lock of the home, taken after the model's (the order every routine keeps)."""
    return home_lock(f"prompt-{served[0]}") if served else contextlib.nullcontext()


def _prompt_follows(tx: Transaction, prompt: str, version: int, action: str, by: str, why: str) -> None:
    """The prompt follows the champion: `production` moves to the prompt the new champion serves (a
    promoted version's own; a restored one's, see `served_prompt`), so a serving system never loads a
    pair the gate did not evaluate. Only when the prompt has that alias and it points elsewhere:
    without it, the champion serves its own prompt already."""
    live = prompts.live_prompt(prompt)
    if live is None or live.version == version:
        return
    tx.step(
        f"prompt {prompt} alias production",
        lambda: prompts.set_prompt_alias(prompt, prompts.LIVE_ALIAS, version),
        lambda: prompts.set_prompt_alias(prompt, prompts.LIVE_ALIAS, live.version),
    )
    audit_step(tx, f"prompt:{prompt}", version, action, by, why, metrics={"replaced": live.version})


# ------------------------------------------------------------------------------ moves made elsewhere

CHAMPION_MOVES = ("promote", "rollback", "manual-promotion")


def recorded_champion(name: str) -> int | None:
    """The version the audit log last made champion (a promotion, a rollback, a recorded manual move)."""
    from registry.audit import read_audit

    for entry in reversed(read_audit(name)):
        if entry["action"] in CHAMPION_MOVES and entry.get("version") is not None:
            return int(entry["version"])
    return None


@serialised
def reconcile_champion(name: str) -> dict | None:
    """Notices a `champion` alias moved outside llmops (the MLflow UI, the API) and records it.

    The move is written to the audit log as a manual promotion; the champion the log knew becomes
    `previous`, as a promotion would have made it, so the new champion can be compared with it.
    Returns what was recorded, or None when the alias is where the log says.
    """
    champion = models.version_by_alias(name, "champion")
    known = recorded_champion(name)
    if champion is None or champion.version == known:
        return None
    before = models.aliases_of(name)
    who = "outside llmops (MLflow records no author for an alias move)"
    why = f"champion alias moved to v{champion.version} outside llmops (the log had v{known if known else 'none'})"
    served = served_prompt(champion)
    with _prompt_lock(served), Transaction(f"record manual promotion of {name} v{champion.version}") as tx:
        tags_step(tx, champion, {"gate.decided_by": "manual (outside llmops)", "gate.decision": "manual-promotion"})
        audit_step(tx, name, champion.version, "manual-promotion", who, why, metrics={"replaced": known})
        if known is not None and known != champion.version and models.get_version(name, known) is not None:
            alias_step(tx, name, "previous", known, before)
        if served:
            _prompt_follows(tx, *served, "manual-promotion", who, f"{name}: {why}")
    return {"version": champion.version, "replaced": known, "by": who, "why": why}


@serialised
def apply_prompt_decision(
    version: models.VersionInfo,
    candidate: prompts.PromptVersion,
    live: prompts.PromptVersion,
    decision: str,
    by: str,
    why: str,
    evidence_run_id: str | None,
    gate: GateDecision | None,
) -> None:
    """A prompt gate's decision: evidence on the prompt version, an audit entry, then (on promote) the
    `production` alias and the champion's card naming the prompt it now serves.

    Holds the model's lock (the champion's card and tags) and then the prompt's (its alias), so a model
    promotion or another prompt decision on the same home waits instead of interleaving its writes.
    """
    with home_lock(f"prompt-{candidate.name}"):
        before = prompts.live_prompt(candidate.name)
        tags = (
            (gate.tags() if gate else {"gate.decision": decision})
            | {
                "gate.decided_by": by,
                "gate.reason": why[:4000],
                "gate.model_version": f"{version.name}/{version.version}",
                "gate.compared_with": live.ref,
            }
            | ({"gate.evidence_run_id": evidence_run_id} if evidence_run_id else {})
        )
        with Transaction(f"{decision} prompt {candidate.ref}") as tx:
            old = prompts.prompt_version_tags(candidate.name, candidate.version)
            tx.step(
                "prompt tags",
                lambda: prompts.tag_prompt_version(candidate.name, candidate.version, tags),
                lambda: prompts.restore_prompt_tags(candidate.name, candidate.version, old, list(tags)),
            )
            metrics = gate.evidence() if gate else {}
            audit_step(tx, f"prompt:{candidate.name}", candidate.version, decision, by, why, evidence_run_id, metrics)
            if decision == "promote":
                tx.step(
                    "alias production",
                    lambda: prompts.set_prompt_alias(candidate.name, prompts.LIVE_ALIAS, candidate.version),
                    (lambda: prompts.set_prompt_alias(candidate.name, prompts.LIVE_ALIAS, before.version))
                    if before
                    else (lambda: prompts.delete_prompt_alias(candidate.name, prompts.LIVE_ALIAS)),
                )
                _show_live_prompt(tx, version, candidate, by)


def _show_live_prompt(tx: Transaction, version: models.VersionInfo, live: prompts.PromptVersion, by: str) -> None:
    """The champion's card and tags name the prompt version now served with it, and who moved it there."""
    card = client().get_model_version(version.name, str(version.version)).description or ""
    marker = "\n## Live prompt\n"
    how = "moved through the prompt gate" if by == "gate" else f"promoted by hand, {by}"
    card = (
        card.split(marker)[0].rstrip() + f"\n{marker}`{live.ref}` ({how}; trained with "
        f"`{version.lineage.prompt or '?'}`):\n\n```\n{live.template}\n```\n"
    )
    tags_step(tx, version, {"prompt.live": live.ref})
    card_step(tx, version, card)
