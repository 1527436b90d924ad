"""Logging a trained result to its MLflow run: the adapter folder, and a servable model.

The adapter folder (`adapter/`) is what evaluation and the registry load: small, and it names its
base. The merged model is logged with MLflow's transformers flavour (`model`) so it can be
registered and served on its own. MLflow's own PEFT path is not used: for a base model that is a
local folder rather than a hub name it saves the adapter alone and reloads a broken model.
"""

from __future__ import annotations

# Given explicitly: MLflow's inference of a pipeline's requirements imports torchvision.
PIP_REQUIREMENTS = ["torch==2.13.0", "transformers==5.24.0", "accelerate==1.15.0"]


def log_trained_model(run_id: str, adapter_dir: str, prompt_uri: str | None = None) -> str:
    import mlflow
    import transformers

    from tasks.evaluate.generate import load_for_eval

    client = mlflow.MlflowClient()
    client.log_artifacts(run_id, adapter_dir, artifact_path="adapter")
    model, tokenizer = load_for_eval(adapter_dir)
    pipe = transformers.pipeline("text-generation", model=model, tokenizer=tokenizer)
    # log_model only writes to the fluent active run; resume ours by id on this thread.
    with mlflow.start_run(run_id=run_id):
        info = mlflow.transformers.log_model(
            transformers_model=pipe, name="model", task="llm/v1/chat",
            pip_requirements=PIP_REQUIREMENTS, prompts=[prompt_uri] if prompt_uri else None,
        )
    return info.model_uri

