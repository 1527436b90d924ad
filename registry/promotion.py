"""Every change to a model's versions and aliases, as one transaction-like routine.

A promotion is several writes: the decision record on the version (its tags and the card's
Decision section, registry/decision.py), an entry in the audit log, then two aliases (`previous` to
the old champion, `champion` to the new one). A failure between two of them used to leave a
half-promoted model (`previous` moved, `champion` not). Here each write is a step that knows its
undo (registry/transaction.py); steps run in a fixed order — check the version and the aliases
first, then the version's tags and card, then the audit record, the aliases last — and when any
step fails, the steps already done are undone in reverse, so the registry is as it was.
Registering a candidate, a release manager's decision (in the Prefect form or by hand) and a
prompt gate's decision (the prompt's `production` alias and the champion's card) work the same way.

Processes sharing one LLMOPS_HOME (two nightlies at once) take turns: each public routine holds a
lock of the home per model from its first read of the aliases to its last write, so no routine
acts on aliases another is moving. A routine on a model or version that does not exist says so
before it takes any lock, so a typo leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from typing import Any

from core.errors import UserError
from core.locks import home_lock
from registry import models, prompts
from registry.audit import record_decision, remove_decision
from registry.card import with_decision, with_section
from registry.decision import DECISIONS, Decision
from registry.gate import GateDecision
from registry.tracking import client
from registry.transaction import (
    Transaction,
    alias_step,
    card_step,
    current_card,
    delete_alias_step,
    serialised,
    tags_step,
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
    return tx.step_undone_by_result(
        "audit record",
        lambda: record_decision(name, version, action, by, why, evidence_run_id, metrics),
        lambda entry: remove_decision(name, entry),
    )


def decision_step(
    tx: Transaction, info: models.VersionInfo, record: Decision, tags: dict[str, str], card: str | None
) -> None:
    """The decision record on the version: its tags (with `tags`, the gate's evidence), and the
    card (`card`, or the version's own) with its Decision section rewritten."""
    tags_step(tx, info, tags | record.tags())
    text = with_decision(
        current_card(info) if card is None else card, f"{info.name} v{info.version}", record.markdown()
    )
    card_step(tx, info, text)


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
    verdict: str | None = None,
) -> int | None:
    """Records a decision on `version` and, for `promote`, moves the aliases.

    A decision about the version (`registry.decision.DECISIONS`) becomes its decision record: the
    `gate.*` tags and the card's Decision section, written in this same routine. `verdict` is the
    gate's own; left None (a person deciding later), the verdict already on the version is kept
    beside the new decision. Other actions (the monitor's `regression`) are audit entries with the
    caller's `tags`. Returns the champion it replaced (None if none, or if it was not a promotion).
    """
    info = _existing_version(name, version)
    before = models.aliases_of(name)
    replaced = before.get("champion") if decision == "promote" and before.get("champion") != version else None
    served = served_prompt(info) if decision == "promote" else None
    record = None
    if decision in DECISIONS:
        earlier = Decision.from_tags(info.tags)
        kept = earlier.verdict if earlier else ""
        record = Decision(decision, by, why, kept if verdict is None else verdict, evidence_run_id or "")
    with _prompt_lock(served), Transaction(f"{decision} {name} v{version}") as tx:
        if record is not None:
            decision_step(tx, info, record, tags or {}, card)
        else:
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
def show_pending(name: str, version: int, tags: dict[str, str], card: str) -> None:
    """While a paused run waits for a release manager: the gate's evidence as tags and the card (its
    Decision section saying who is awaited) on the version, so MLflow shows what the form shows.
    No alias moves and no audit entry: nothing is decided yet."""
    info = _existing_version(name, version)
    with Transaction(f"show {name} v{version} awaiting approval") as tx:
        tags_step(tx, info, tags)
        card_step(tx, info, card)


def promote_by_hand(name: str, version: int, by: str, why: str) -> int | None:
    """A release manager's promotion: checked first (before any lock), then recorded and applied in
    one routine; the gate's verdict on the version stays beside the decision."""
    if not why.strip():
        raise UserError(
            "--reason", "a promotion by hand needs a reason", "say why, e.g. --reason 'approved after review'"
        )
    _existing_version(name, version)
    return apply_decision(name, version, "promote", by, why)


def rollback(name: str, by: str, why: str) -> tuple[int, int]:
    """Moves `champion` back to `previous`; returns (demoted version, restored version)."""
    models.require_model(name)
    return _rollback(name, by, why)


@serialised
def _rollback(name: str, by: str, why: str) -> tuple[int, int]:
    before = models.aliases_of(name)
    current, previous = before.get("champion"), before.get("previous")
    if current is None or previous is None:
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
        delete_alias_step(tx, name, "previous", before)
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
        earlier = Decision.from_tags(champion.tags)
        manual = Decision("manual-promotion", "manual (outside llmops)", why, earlier.verdict if earlier else "")
        decision_step(tx, champion, manual, {}, None)
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
    how = "moved through the prompt gate" if by == "gate" else f"promoted by hand, {by}"
    body = f"`{live.ref}` ({how}; trained with `{version.lineage.prompt or '?'}`):\n\n```\n{live.template}\n```"
    card = with_section(current_card(version), "Live prompt", body, at_top=False)
    tags_step(tx, version, {"prompt.live": live.ref})
    card_step(tx, version, card)
