"""Prompt templates in MLflow's prompt registry: versions, the aliases that say which one is live, tags.

A config names its prompt as text (registered as a new version only when no version has that exact
text) or as a registered reference, `prompts:/NAME@ALIAS` or `prompts:/NAME/VERSION`. Every model
version records the prompt version it was trained with (`lineage.prompt`), and the prompt's
`production` alias says which version is live; both are moved only through the gate
(flows/prompt.py) or by a release manager with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import UserError

LIVE_ALIAS = "production"


@dataclass(frozen=True)
class PromptVersion:
    name: str
    version: int
    template: str

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def uri(self) -> str:
        return f"prompts:/{self.name}/{self.version}"


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def _versions(name: str) -> list:
    from mlflow.exceptions import MlflowException

    try:
        return list(_client().search_prompt_versions(name))
    except MlflowException:
        return []


def register_prompt_template(name: str, template: str, commit_message: str = "") -> int:
    """Returns the version whose text equals `template`, registering a new one if none has it.

    Under a lock of the home: MLflow's get-or-create of a new prompt fails for the second of two
    processes that register it at once, and two would register the same text twice.
    """
    import mlflow

    from core.locks import home_lock

    with home_lock(f"prompt-{name}"):
        for pv in sorted(_versions(name), key=lambda p: -int(p.version)):
            if pv.template == template:
                return int(pv.version)
        prompt = mlflow.genai.register_prompt(
            name=name, template=template, commit_message=commit_message or "registered by llmops"
        )
        return int(prompt.version)


def load_prompt(ref: str) -> PromptVersion:
    """`prompts:/NAME@ALIAS`, `prompts:/NAME/VERSION`, `NAME@ALIAS` or `NAME/VERSION` -> the version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    body = ref.removeprefix("prompts:/")
    if "@" not in body and not (body.rsplit("/", 1)[-1].isdigit() and "/" in body):
        raise UserError(
            f"prompt {ref!r}", "is not a prompt reference", "use prompts:/NAME@ALIAS or prompts:/NAME/VERSION"
        )
    try:
        p = mlflow.genai.load_prompt(f"prompts:/{body}")
    except MlflowException:
        name = body.split("@")[0].rsplit("/", 1)[0]
        have = ", ".join(f"v{v.version}" for v in sorted(_versions(name), key=lambda v: int(v.version))) or "none"
        raise UserError(
            f"prompt {ref!r}",
            f"not found in the prompt registry ({name} versions: {have})",
            "see the Prompts tab of the MLflow UI, or give the template text",
        ) from None
    return PromptVersion(p.name, int(p.version), p.template)


def resolve_prompt(name: str, template: str) -> PromptVersion:
    """The config's prompt as a registered version: a reference is loaded, text is registered once."""
    if template.startswith("prompts:/"):
        return load_prompt(template)
    return PromptVersion(name, register_prompt_template(name, template), template)


def load_prompt_template(name: str, version: int) -> str:
    return load_prompt(f"{name}/{version}").template


def live_prompt(name: str) -> PromptVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        pv = _client().get_prompt_version_by_alias(name, LIVE_ALIAS)
    except MlflowException:
        return None
    return PromptVersion(name, int(pv.version), pv.template)


def set_prompt_alias(name: str, alias: str, version: int) -> None:
    import mlflow

    mlflow.genai.set_prompt_alias(name, alias, version)


def delete_prompt_alias(name: str, alias: str) -> None:
    import mlflow

    mlflow.genai.delete_prompt_alias(name, alias)


def tag_prompt_version(name: str, version: int, tags: dict[str, str]) -> None:
    c = _client()
    for key, value in tags.items():
        c.set_prompt_version_tag(name, version, key, str(value))


def restore_prompt_tags(name: str, version: int, old: dict[str, str], keys: list[str]) -> None:
    """Puts `keys` back as they were in `old`: earlier values restored, new keys removed."""
    c = _client()
    for key in keys:
        if key in old:
            c.set_prompt_version_tag(name, version, key, old[key])
        else:
            c.delete_prompt_version_tag(name, version, key)


def prompt_version_tags(name: str, version: int) -> dict[str, str]:
    return dict(_client().get_prompt_version(name, version).tags or {})


def register_synthetic_templates(operations) -> dict[str, int]:
    """Registers `synth-<op>` for each synthetic-data operation; a version is added only when the text changed."""
    from tasks.data.synthetic import TEMPLATES

    return {op: register_prompt_template(f"synth-{op}", TEMPLATES[op], f"synthetic data: {op}") for op in operations}
