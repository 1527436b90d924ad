"""What a training run leaves in MLflow: the trained folder, lean by default, and a merged copy when asked.

The trained folder (artifact `adapter/`: a LoRA/QLoRA adapter with its tokenizer, or full weights)
is what evaluation and the registry load. An adapter names its base in `llmops_base.json` (a hub
name and revision, or a local path and content hash), so a version is megabytes, not the 16-32 GB
a merged 8 B model costs every night. A merged copy, servable on its own through MLflow's
transformers flavour (`model`), is logged only when `registry.log_merged` is true, or on
promotion when `registry.merge_on_promotion` is. MLflow's own PEFT path is not used: for a base
that is a local folder it saves the adapter alone and reloads a broken model.
"""

from __future__ import annotations

from registry.tracking import client

# Given explicitly: MLflow's inference of a pipeline's requirements imports torchvision.
PIP_REQUIREMENTS = ["torch==2.13.0", "transformers==5.24.0", "accelerate==1.15.0", "peft==0.21.2"]
TRAINED_FOLDER = "adapter"


def log_trained_folder(run_id: str, folder: str) -> str:
    """Logs the trained folder; returns its artifact URI, the source a model version is registered from."""
    client().log_artifacts(run_id, folder, artifact_path=TRAINED_FOLDER)
    return f"{client().get_run(run_id).info.artifact_uri.rstrip('/')}/{TRAINED_FOLDER}"


def log_merged_model(run_id: str, folder: str, prompt_uri: str | None = None, base: str | None = None) -> str:
    """A merged, self-contained copy through MLflow's transformers flavour; returns its model URI."""
    import mlflow
    import transformers

    from tasks.model.load import Placement, load_merged, release

    model, tokenizer = load_merged(folder, Placement(), base)
    pipe = transformers.pipeline("text-generation", model=model, tokenizer=tokenizer)
    # log_model only writes to the fluent active run; resume ours by id on this thread.
    with mlflow.start_run(run_id=run_id):
        info = mlflow.transformers.log_model(
            transformers_model=pipe,
            name="model",
            task="llm/v1/chat",
            pip_requirements=PIP_REQUIREMENTS,
            prompts=[prompt_uri] if prompt_uri else None,
        )
    del model, pipe
    release()
    return info.model_uri
