"""Train: the base model, then SFT with an adapter (LoRA/QLoRA) or full weights, then DPO.

    llmops train --config configs/nightly.yaml
"""

from __future__ import annotations

import json

from prefect import flow, get_run_logger, task

from configs.schema import RunConfig
from llmops.home import llmops_home
from registry import tracking
from registry.prompts import register_prompt_template
from tasks.data.demo import QUESTION_TEMPLATE
from registry.artifacts import log_trained_model as _log_trained_model
from tasks.model.tiny import build_tiny_model
from tasks.train.dpo import train_dpo as _train_dpo
from tasks.train.sft import train_sft as _train_sft

build_base_model = task(build_tiny_model, name="build-base-model")


@task(name="train-sft")
def train_sft(base: str, data_path: str, template: str, cfg, out_dir: str, run_id: str) -> dict:
    return _train_sft(base, data_path, template, cfg, out_dir, tracking.metric_sink(run_id))


@task(name="train-dpo")
def train_dpo(sft_dir: str, data_path: str, template: str, cfg, out_dir: str, run_id: str) -> dict:
    return _train_dpo(sft_dir, data_path, template, cfg, out_dir, tracking.metric_sink(run_id))


log_trained_model = task(_log_trained_model, name="log-trained-model")


def resolve_base(config: RunConfig) -> str:
    if config.model.base == "embedded":
        return str(build_base_model(config.model.tiny, llmops_home() / "models"))
    return config.model.base


@flow(name="train")
def train_flow(config: RunConfig, curated: dict, parent_run_id: str | None = None) -> dict:
    reg = config.registry
    prompt_version = register_prompt_template(reg.prompt_name, QUESTION_TEMPLATE)
    base = resolve_base(config)
    tags = {"llmops.prompt": f"{reg.prompt_name}/{prompt_version}", "llmops.dataset_hash": curated["dataset_hash"],
            "llmops.base_model": base}
    with tracking.stage_run(reg.experiment, "train", parent_run_id, tags) as run_id:
        tracking.log_params(run_id, {"model": config.model.model_dump(), "train": config.train.model_dump()})
        tracking.log_json(run_id, config.model_dump(), "config/resolved.json")
        tracking.log_dataset(run_id, curated["sft_path"], "curated-sft", curated["dataset_hash"], "training")
        out_dir = llmops_home() / "runs" / run_id

        sft = train_sft(base, curated["sft_path"], QUESTION_TEMPLATE, config.train, str(out_dir), run_id)
        result_dir, summary = sft["path"], {"sft_loss": sft["train_loss"], "sft_seconds": sft["seconds"]}
        if config.train.dpo.enabled and curated.get("pref_rows", 0) > 0:
            dpo = train_dpo(result_dir, curated["pref_path"], QUESTION_TEMPLATE, config.train, str(out_dir), run_id)
            result_dir = dpo["path"]
            summary |= {"dpo_loss": dpo["train_loss"], "dpo_seconds": dpo["seconds"]}
        tracking.log_metrics(run_id, summary)

        model_uri = log_trained_model(run_id, result_dir, f"prompts:/{reg.prompt_name}/{prompt_version}")
        result = {"run_id": run_id, "model_dir": result_dir, "model_uri": model_uri, "base": base,
                  "prompt_version": prompt_version, **summary}
        # What `llmops promote --train-run` needs to gate this run later, from its records alone.
        tracking.log_json(run_id, result, "lineage/trained.json")
        tracking.log_json(run_id, curated, "lineage/curated.json")
        get_run_logger().info(f"trained {config.train.method} on {base}: {json.dumps({k: round(v, 4) for k, v in summary.items()})}")
        return result
