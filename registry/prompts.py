"""Prompt templates in MLflow's prompt registry: one new version only when the text changes."""

from __future__ import annotations


def register_prompt_template(name: str, template: str, commit_message: str = "") -> int:
    """Returns the version whose text equals `template`, registering it if the latest differs.

    Under a lock of the home: MLflow's get-or-create of a new prompt fails for the second of two
    processes that register it at once, and two would register the same text twice.
    """
    import mlflow

    from llmops.locks import home_lock

    with home_lock(f"prompt-{name}"):
        try:
            latest = mlflow.genai.load_prompt(f"prompts:/{name}@latest")
        except Exception:  # no such prompt yet: MLflow raises its own exception type per store
            latest = None
        if latest is not None and latest.template == template:
            return int(latest.version)
        prompt = mlflow.genai.register_prompt(name=name, template=template, commit_message=commit_message or "registered by llmops")
        return int(prompt.version)


def load_prompt_template(name: str, version: int) -> str:
    import mlflow

    return mlflow.genai.load_prompt(f"prompts:/{name}/{version}").template


def register_synthetic_templates(operations) -> dict[str, int]:
    """Registers `synth-<op>` for each synthetic-data operation; a version is added only when the text changed."""
    from tasks.data.synthetic import TEMPLATES

    return {op: register_prompt_template(f"synth-{op}", TEMPLATES[op], f"synthetic data: {op}") for op in operations}
