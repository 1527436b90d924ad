"""Each stage's Prefect form shows what that stage reads: its references and its own config sections.

A deployment's form is its flow's parameters. The stage flows take one whole `RunConfig`, so every
form opened with Data -> Inputs and the demo's row counts, even where the stage reads only the
training settings or the gate. The entry points here are what the deployments run instead: their
parameters are the references a person types, the config file the rest comes from, and only the
sections the stage reads, prefilled from the config the worker was started with ($LLMOPS_CONFIG,
else configs/nightly.yaml). Each builds the RunConfig (the file, with the form's sections in place
of the file's) and runs the stage's own flow body in the same flow run, so a run started from a
form is one run named as its stage, exactly as from the command line.

    stage      sections in its form
    train      model, train, prompt, registry
    evaluate   eval
    promote    gate, registry
    prompt     prompt, gate, eval
    monitor    gate, monitor, eval
    drift      drift

curate and nightly keep the whole config: nightly reads every section, and curate's form is its
engineer's (flows/curate.py).
"""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, Field

from configs.load import default_config, load_config
from configs.schema import (
    DriftConfig,
    EvalConfig,
    GateConfig,
    ModelConfig,
    MonitorConfig,
    PromptConfig,
    RegistryConfig,
    RunConfig,
    TrainConfig,
)

SECTIONS = {
    "train": ("model", "train", "prompt", "registry"),
    "evaluate": ("eval",),
    "promote": ("gate", "registry"),
    "prompt": ("prompt", "gate", "eval"),
    "monitor": ("gate", "monitor", "eval"),
    "drift": ("drift",),
}
_DEFAULT = default_config()  # what the forms open with: the worker's config, as a scheduled run gets it


def _section(name: str):
    """A form field holding one config section, prefilled, described as RunConfig describes it."""
    return Field(getattr(_DEFAULT, name), description=RunConfig.model_fields[name].description)


CONFIG_FILE = Field(
    "",
    description="YAML run config for every section not in this form; empty = the worker's "
    "($LLMOPS_CONFIG, else configs/nightly.yaml). The sections below replace the file's",
)


def run_config(config_file: str, **sections: BaseModel) -> RunConfig:
    """The named config (schema-checked; the flow checks the rest) with the form's sections in place."""
    base = load_config(config_file or None, check=False)
    return RunConfig.model_validate(base.model_dump() | {k: v.model_dump() for k, v in sections.items()})


@flow(name="train")
def train_form(
    dataset: str = Field(
        "latest",
        description="a dataset hash printed by curate (or its first 8+ characters), or `latest` for the "
        "newest curation of this config",
    ),
    config_file: str = CONFIG_FILE,
    model: ModelConfig = _section("model"),
    train: TrainConfig = _section("train"),
    prompt: PromptConfig = _section("prompt"),
    registry: RegistryConfig = _section("registry"),
) -> dict:
    from flows.train import train_flow

    config = run_config(config_file, model=model, train=train, prompt=prompt, registry=registry)
    return train_flow.fn(dataset=dataset, config=config)


@flow(name="evaluate")
def evaluate_form(
    model: str = Field(
        "", description="NAME@ALIAS, NAME/VERSION or a model folder; empty = the challenger of registry.model_name"
    ),
    dataset: str = Field(
        "",
        description="eval items: a dataset hash or `latest` (its eval split), or a JSONL file; empty = the "
        "split the model was trained with",
    ),
    against: str = Field("champion", description="compare with the `champion`, the `previous` champion, or `none`"),
    prompt: str = Field(
        "", description="a registered prompt to generate with (prompts:/NAME@ALIAS); empty = the model's own"
    ),
    fresh: bool = Field(False, description="generate every answer again instead of reusing cached ones"),
    config_file: str = CONFIG_FILE,
    eval: EvalConfig = _section("eval"),
) -> dict:
    from flows.evaluate import evaluate_flow

    config = run_config(config_file, eval=eval)
    return evaluate_flow.fn(model=model, dataset=dataset, against=against, prompt=prompt, fresh=fresh, config=config)


@flow(name="promote")
def promote_form(
    train_run: str = Field(
        "", description="MLflow run id of the train run whose registered version is to be judged (its log names it)"
    ),
    evaluation: str = Field(
        "", description="an evaluate run id to use as the evidence; empty = the newest that fits, or a new one"
    ),
    config_file: str = CONFIG_FILE,
    gate: GateConfig = _section("gate"),
    registry: RegistryConfig = _section("registry"),
) -> dict:
    from flows.promote import promote_flow

    config = run_config(config_file, gate=gate, registry=registry)
    return promote_flow.fn(train_run=train_run, evaluation=evaluation, config=config)


@flow(name="prompt")
def prompt_form(
    candidate: str = Field(
        "",
        description="the prompt to gate: NAME/VERSION, NAME@ALIAS or prompts:/...; empty = prompt.template "
        "below (registered as a new version when its text is new)",
    ),
    model: str = Field("", description="the model both prompts run on; empty = the champion of registry.model_name"),
    dataset: str = Field(
        "", description="eval items (hash, `latest` or a JSONL file); empty = the split the model was trained with"
    ),
    apply: bool = Field(True, description="move the `production` alias when the gate passes (off: compare only)"),
    config_file: str = CONFIG_FILE,
    prompt: PromptConfig = _section("prompt"),
    gate: GateConfig = _section("gate"),
    eval: EvalConfig = _section("eval"),
) -> dict:
    from flows.prompt import prompt_flow

    config = run_config(config_file, prompt=prompt, gate=gate, eval=eval)
    return prompt_flow.fn(prompt=candidate, model=model, dataset=dataset, apply=apply, config=config)


@flow(name="monitor")
def monitor_form(
    model: str = Field("", description="the version to watch (NAME/VERSION, NAME@ALIAS); empty = the champion"),
    dataset: str = Field(
        "", description="eval items (hash, `latest` or a JSONL file); empty = the split it was promoted on"
    ),
    config_file: str = CONFIG_FILE,
    gate: GateConfig = _section("gate"),
    monitor: MonitorConfig = _section("monitor"),
    eval: EvalConfig = _section("eval"),
) -> dict:
    from flows.monitor import monitor_flow

    config = run_config(config_file, gate=gate, monitor=monitor, eval=eval)
    return monitor_flow.fn(model=model, dataset=dataset, config=config)


@flow(name="drift")
def drift_form(
    reference: str = Field(
        "latest",
        description="what the model was trained on: a dataset hash (or its first 6+ characters), a "
        "dataset-<hash> folder, a JSONL/Parquet file, or 'latest' (the newest dataset curated here)",
    ),
    current: str = Field(
        "",
        description="the inputs to check: a JSONL (.jsonl, .jsonl.gz) or Parquet file of prompts in any layout "
        "`llmops curate` reads; empty = $LLMOPS_HOME/inputs/current.jsonl",
    ),
    fail_on_drift: bool = Field(
        True, description="end the flow run Failed when drift is flagged, so a schedule can alert on it"
    ),
    config_file: str = CONFIG_FILE,
    drift: DriftConfig = _section("drift"),
):
    from flows.drift import check_drift_run

    return check_drift_run(run_config(config_file, drift=drift), reference, current, fail_on_drift)


FORMS = {
    "train": train_form,
    "evaluate": evaluate_form,
    "promote": promote_form,
    "prompt": prompt_form,
    "monitor": monitor_form,
    "drift": drift_form,
}
