"""Model versions, their aliases and how a person names them. Plain reads and single writes live
here; changes that must happen together (a promotion, a rollback) go through registry/promotion.py.

Aliases: `challenger` marks the newest candidate, `champion` the model in service, `previous` the
champion it replaced (what a rollback returns to). A version carries lineage tags (dataset hash,
config hash, git commit, training run, prompt version) and its model card as description.

A person names a model as `NAME@ALIAS`, `NAME/VERSION` (either may start with `models:/`), or a
folder on disk; `resolve_model` turns any of them into a folder the loader can read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from registry.lineage import Lineage
from registry.tracking import client

ALIASES = ("champion", "challenger", "previous")


@dataclass
class VersionInfo:
    name: str
    version: int
    run_id: str
    source: str
    aliases: list[str]
    tags: dict[str, str]
    created: int

    @property
    def lineage(self) -> Lineage:
        """Where the version came from, read from its `lineage.*` tags."""
        return Lineage.from_tags(self.tags)


def _info(mv) -> VersionInfo:
    return VersionInfo(
        mv.name,
        int(mv.version),
        mv.run_id or "",
        mv.source,
        list(mv.aliases or []),
        dict(mv.tags or {}),
        mv.creation_timestamp,
    )


def _missing(exc) -> bool:
    return (
        getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")
        or "not found" in str(exc).lower()
        or "does not exist" in str(exc).lower()
    )


def version_by_alias(name: str, alias: str) -> VersionInfo | None:
    from mlflow.exceptions import MlflowException

    try:
        return _info(client().get_model_version_by_alias(name, alias))
    except MlflowException as exc:
        if _missing(exc) or "alias" in str(exc).lower():
            return None
        raise


def get_version(name: str, version: int) -> VersionInfo | None:
    from mlflow.exceptions import MlflowException

    try:
        return _info(client().get_model_version(name, str(version)))
    except MlflowException as exc:
        if _missing(exc):
            return None
        raise


def list_versions(name: str) -> list[VersionInfo]:
    """Newest first. `search_model_versions` leaves aliases empty, so each version is re-read."""
    c = client()
    found = c.search_model_versions(f"name = '{name}'")
    return sorted((_info(c.get_model_version(name, mv.version)) for mv in found), key=lambda v: -v.version)


def registered_names() -> list[str]:
    """Every registered model; none, without creating it, when the local SQLite store is not there yet."""
    if not _store_exists():
        return []
    return sorted(m.name for m in client().search_registered_models())


def _store_exists() -> bool:
    """False for a local SQLite store whose file does not exist: opening it would create it."""
    import os

    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def require_model(name: str) -> None:
    """A `UserError` naming the models that exist when `name` is not one of them; reads only."""
    known = registered_names()
    if name not in known:
        raise UserError(
            f"model {name!r}",
            f"no registered model named {name!r} (registered: {', '.join(known) or 'none yet'})",
            "see `llmops models`, or run `llmops nightly` to register one",
        )


def versions_of_run(name: str, run_id: str) -> list[VersionInfo]:
    return sorted(
        (_info(mv) for mv in client().search_model_versions(f"name = '{name}' and run_id = '{run_id}'")),
        key=lambda v: -v.version,
    )


def aliases_of(name: str) -> dict[str, int]:
    """alias -> version for the aliases llmops manages (absent aliases are left out)."""
    out = {}
    for alias in ALIASES:
        v = version_by_alias(name, alias)
        if v is not None:
            out[alias] = v.version
    return out


def set_alias(name: str, alias: str, version: int) -> None:
    client().set_registered_model_alias(name, alias, str(version))


def delete_alias(name: str, alias: str) -> None:
    client().delete_registered_model_alias(name, alias)


def tag_version(name: str, version: int, tags: dict[str, str]) -> None:
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(name, str(version), key, str(value))


def untag_version(name: str, version: int, keys: list[str]) -> None:
    c = client()
    for key in keys:
        c.delete_model_version_tag(name, str(version), key)


def describe_version(name: str, version: int, description: str) -> None:
    client().update_model_version(name, str(version), description=description)


def version_description(name: str, version: int) -> str:
    """The version's description (its model card), or empty: MLflow cannot set an absent one back."""
    return client().get_model_version(name, str(version)).description or ""


# ------------------------------------------------------------------------------ references


def parse_model_ref(ref: str) -> tuple[str, str] | None:
    """`models:/name@alias`, `models:/name/3`, `name@alias` or `name/3` -> (name, alias-or-version)."""
    body = ref.strip().removeprefix("models:/")
    if "@" in body:
        name, alias = body.split("@", 1)
        return (name, alias) if name and alias else None
    if "/" in body and body.rsplit("/", 1)[1].isdigit():
        name, version = body.rsplit("/", 1)
        return name, version
    return None


def resolve_version(ref: str) -> VersionInfo:
    """The version a reference names; a `UserError` that lists what exists when it names nothing."""
    parsed = parse_model_ref(ref)
    if parsed is None:
        raise UserError(
            f"model {ref!r}",
            "is not a model reference or a folder on this machine",
            "use NAME@ALIAS (e.g. tiny-arith@champion), NAME/VERSION, or a model folder",
        )
    name, which = parsed
    found = get_version(name, int(which)) if which.isdigit() else version_by_alias(name, which)
    if found is not None:
        return found
    from mlflow.exceptions import MlflowException

    try:
        existing = list_versions(name)
    except MlflowException:
        existing = []
    if not existing:
        known = ", ".join(registered_names()) or "none yet"
        raise UserError(
            f"model {ref!r}",
            f"no registered model named {name!r} (registered: {known})",
            "see `llmops models`, or run `llmops nightly` to register one",
        )
    have = ", ".join(f"v{v.version}" + (f" ({','.join(v.aliases)})" if v.aliases else "") for v in existing)
    what = f"version {which}" if which.isdigit() else f"alias @{which}"
    raise UserError(f"model {ref!r}", f"{name} has no {what} (it has {have})", "see `llmops models`")


def download_model_dir(version: VersionInfo, dest: Path) -> str:
    """Fetches a version's trained folder (an adapter, or full weights), as its training run logged it."""
    import mlflow

    if (dest / "adapter").is_dir() and any((dest / "adapter").iterdir()):
        return str(dest / "adapter")  # already here: versions never change their files
    dest.mkdir(parents=True, exist_ok=True)
    return mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="adapter", dst_path=str(dest))


def resolve_model(ref: str, cache_dir: Path) -> tuple[VersionInfo | None, str]:
    """(version or None, folder) for a registry reference or a folder path."""
    if Path(ref).expanduser().is_dir():
        return None, str(Path(ref).expanduser().resolve())
    version = resolve_version(ref)
    return version, download_model_dir(version, cache_dir / f"{version.name}-v{version.version}")
