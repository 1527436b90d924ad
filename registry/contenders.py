"""Who an evaluation scores, and on what: the models, their prompts, their bases, the eval items.

A registered version generates with the prompt version it was trained with and on the base its
adapter names; the champion (or the previous one) is found by alias; the base model is the
candidate's base with the candidate's prompt. A bare model folder is nobody's version: it gets the
config's prompt text without registering it, and the demo's eval split is written only when a suite
reads it, so evaluating a folder records an evaluate run and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from configs.schema import RunConfig
from core.errors import UserError
from core.paths import llmops_home
from registry.models import VersionInfo, resolve_model, version_by_alias
from registry.prompts import PromptVersion, load_prompt, resolve_prompt

AGAINST = ("champion", "previous", "none")


@dataclass
class Contender:
    folder: str
    prompt: PromptVersion
    version: VersionInfo | None = None
    base: str | None = None  # where the base an adapter names is on this machine


def prompt_label(prompt: PromptVersion) -> str:
    """`NAME/VERSION`, or what an unregistered text is (version 0: a folder's config prompt)."""
    return prompt.ref if prompt.version else f"{prompt.name} (config text, not registered)"


def version_prompt(version: VersionInfo | None, config: RunConfig) -> PromptVersion:
    """The prompt a model generates with: its version's own, else the config's (registered once)."""
    ref = version.lineage.prompt if version else None
    return load_prompt(ref) if ref else resolve_prompt(config.prompt.name, config.prompt.template)


def folder_prompt(config: RunConfig) -> PromptVersion:
    """The config's prompt for a bare folder: a registered reference is loaded, text is used as is."""
    if config.prompt.template.startswith("prompts:/"):
        return load_prompt(config.prompt.template)
    return PromptVersion(config.prompt.name, 0, config.prompt.template)


def eval_split(dataset: str, version: VersionInfo | None, config: RunConfig) -> str:
    """A JSONL file of items; a dataset's eval split (hash or `latest`); the split the version was
    trained with; or, for a bare folder, `data.eval_path` or the demo's eval split (that file alone)."""
    from registry.datasets import resolve_dataset

    if dataset and Path(dataset).expanduser().is_file():
        return str(Path(dataset).expanduser().resolve())
    ref = dataset or (version.lineage.dataset_hash if version else "")
    if ref:
        return resolve_dataset(ref, config.registry.experiment, config.name).eval_path
    if config.data.eval_path:
        return config.data.eval_path
    from tasks.data.demo import write_demo_eval

    d = config.data
    return write_demo_eval(llmops_home() / "data" / f"demo-seed{d.seed}", d.seed, d.demo_eval_rows)


def base_for(version: VersionInfo | None, local_base: Callable[[], str]) -> str:
    """Where the base a version's adapter names is here: the recorded one when it is a folder on this
    machine or a hub name, else `local_base()` (the config's, built if it is the embedded one)."""
    recorded = version.lineage.base_model if version else None
    if recorded and (Path(recorded).is_dir() or not recorded.startswith("/")):
        return recorded
    return local_base()


def contenders(
    config: RunConfig, model: str, against: str, prompt: str, local_base: Callable[[], str]
) -> dict[str, Contender]:
    """The candidate, the model it is compared with (`champion`, `previous`) and the base model."""
    cache = llmops_home() / "cache" / "models"
    if against not in AGAINST:
        raise UserError(f"against={against!r}", "is not a comparison", "use champion, previous or none")
    version, folder = resolve_model(model or f"{config.registry.model_name}@challenger", cache)
    if prompt:
        chosen = load_prompt(prompt)
    else:
        chosen = version_prompt(version, config) if version else folder_prompt(config)
    out = {"candidate": Contender(folder, chosen, version, base_for(version, local_base) if version else None)}
    name = version.name if version is not None else config.registry.model_name
    other = version_by_alias(name, against) if against != "none" else None
    if other is not None and (version is None or other.version != version.version):
        _, other_folder = resolve_model(f"{other.name}/{other.version}", cache)
        out[against] = Contender(other_folder, version_prompt(other, config), other, base_for(other, local_base))
    if against != "none":
        out["base"] = Contender(base_for(version, local_base), chosen)
    return out
