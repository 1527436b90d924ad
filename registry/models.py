"""Model versions and their aliases. Every write to the MLflow model registry happens here.

Aliases: `challenger` marks the newest candidate, `champion` the model in service, `previous` the
champion it replaced (what a rollback returns to). A version carries lineage tags (dataset hash,
config hash, git commit, training run) and its model card as description.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from registry.tracking import client

ALIASES = ("champion", "challenger", "previous")


@dataclass
class VersionInfo:
    version: int
    run_id: str
    source: str
    aliases: list[str]
    tags: dict[str, str]
    created: int


def _info(mv) -> VersionInfo:
    return VersionInfo(int(mv.version), mv.run_id or "", mv.source, list(mv.aliases or []), dict(mv.tags or {}), mv.creation_timestamp)


def version_by_alias(name: str, alias: str) -> VersionInfo | None:
    from mlflow.exceptions import MlflowException

    try:
        return _info(client().get_model_version_by_alias(name, alias))
    except MlflowException:
        return None


def list_versions(name: str) -> list[VersionInfo]:
    """Newest first. `search_model_versions` leaves aliases empty, so each version is re-read."""
    c = client()
    found = c.search_model_versions(f"name = '{name}'")
    return sorted((_info(c.get_model_version(name, mv.version)) for mv in found), key=lambda v: -v.version)


def registered_names() -> list[str]:
    return sorted(m.name for m in client().search_registered_models())


def _version_source(c, model_uri: str) -> tuple[str, str | None]:
    """(source, model_id) in a form a tracking server accepts.

    A server refuses `models:/m-...` unless the request also names the logged model, and checks
    that the source lies inside that model's (or the run's) artifact location; a local store
    takes anything. So a logged model is registered from its storage location with its id, and
    a `runs:/` URI from the run's artifact location it stands for.
    """
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

    body = model_uri.removeprefix("models:/")
    if model_uri.startswith("models:/") and "/" not in body and "@" not in body:
        return c.get_logged_model(body).artifact_location, body
    if RunsArtifactRepository.is_runs_uri(model_uri):
        return RunsArtifactRepository.get_underlying_uri(model_uri), None
    return model_uri, None


def register_version(name: str, model_uri: str, run_id: str, tags: dict[str, str]) -> VersionInfo:
    """Registers a logged model as a new version of `name` (creating `name` on first use).

    A registered model created here is deleted again if its first version cannot be created,
    so a refused registration leaves no empty model behind.
    """
    from mlflow.exceptions import MlflowException

    c = client()
    source, model_id = _version_source(c, model_uri)
    created = False
    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, description="Fine-tuned by llmops; see each version's model card.")
        created = True
    try:
        mv = c.create_model_version(name, source=source, run_id=run_id, tags=tags, model_id=model_id)
    except BaseException:
        if created:
            with contextlib.suppress(Exception):  # the registration's own error is the one to report
                c.delete_registered_model(name)
        raise
    return _info(c.get_model_version(name, mv.version))


def delete_version(name: str, version: int) -> None:
    """Undoes a registration whose promotion step failed, so a failed run leaves no trace."""
    c = client()
    c.delete_model_version(name, str(version))
    if not c.search_model_versions(f"name = '{name}'"):
        c.delete_registered_model(name)


def set_alias(name: str, alias: str, version: int) -> None:
    client().set_registered_model_alias(name, alias, str(version))


def tag_version(name: str, version: int, tags: dict[str, str]) -> None:
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(name, str(version), key, str(value))


def describe_version(name: str, version: int, description: str) -> None:
    client().update_model_version(name, str(version), description=description)


def move_champion(name: str, version: int) -> int | None:
    """Makes `version` the champion; the champion it replaces keeps alias `previous`."""
    current = version_by_alias(name, "champion")
    if current is not None and current.version != version:
        set_alias(name, "previous", current.version)
    set_alias(name, "champion", version)
    return current.version if current else None


def promote_version(name: str, version: int, by: str, why: str, evidence_run_id: str | None = None) -> int | None:
    """A release manager's promotion: moves `champion`, keeps `previous`, records the decision."""
    from registry.audit import record_decision

    replaced = move_champion(name, version)
    tag_version(name, version, {"gate.decision": "promote", "gate.decided_by": by, "gate.reason": why})
    record_decision(name, version, "promote", by, why, evidence_run_id, {"replaced": replaced})
    return replaced


def rollback(name: str, by: str, why: str) -> tuple[int, int]:
    """Moves `champion` back to `previous`; returns (demoted version, restored version)."""
    from registry.audit import record_decision

    current, previous = version_by_alias(name, "champion"), version_by_alias(name, "previous")
    if current is None or previous is None:
        raise ValueError(f"{name} has no {'champion' if current is None else 'previous'} version to roll back "
                         "(see `llmops models`)")
    set_alias(name, "champion", previous.version)
    client().delete_registered_model_alias(name, "previous")
    tag_version(name, current.version, {"rollback.by": by, "rollback.reason": why})
    record_decision(name, previous.version, "rollback", by, why, metrics={"demoted": current.version})
    return current.version, previous.version


def parse_model_ref(ref: str) -> tuple[str, str] | None:
    """`models:/name@alias` or `models:/name/3` or `name@alias` -> (name, alias-or-version)."""
    body = ref.removeprefix("models:/")
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, alias
    if "/" in body and body.rsplit("/", 1)[1].isdigit():
        name, version = body.rsplit("/", 1)
        return name, version
    return None


def resolve_version(ref: str) -> VersionInfo | None:
    parsed = parse_model_ref(ref)
    if parsed is None:
        return None
    name, which = parsed
    if which.isdigit():
        return _info(client().get_model_version(name, which))
    return version_by_alias(name, which)


def download_model_dir(version: VersionInfo, dest: Path) -> str:
    """Fetches a version's adapter (or full model) folder, as logged by the training run."""
    import mlflow

    dest.mkdir(parents=True, exist_ok=True)
    return mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="adapter", dst_path=str(dest))
