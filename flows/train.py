"""Train: a curated dataset in, a registered `challenger` version out.

    llmops train --config configs/nightly.yaml [--dataset latest|<hash>]

SFT with an adapter (LoRA/QLoRA) or full weights, then preference tuning (DPO, ORPO or KTO), all
through the library in tasks/train/. The run records throughput (tokens/s, padding, GPU memory
and utilisation, MFU), logs the trained folder lean (adapter + a reference to its base; a merged
copy only when asked) and registers it as a new version of `registry.model_name` with alias
`challenger`, so `evaluate` and `promote` can find it by name.

A run killed mid-way is resumed by running the same command again: the unfinished run with the
same config, dataset, prompt and base is continued (same MLflow run, same folder) from its last
checkpoint, and finished stages are not trained again.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger, task

from configs.load import check_run_config, default_config
from configs.schema import RunConfig
from core.errors import UserError
from core.paths import llmops_home
from registry import tracking
from registry.artifacts import log_merged_model, log_trained_folder
from registry.datasets import CuratedDataset, resolve_dataset
from registry.lineage import Lineage
from registry.models import versions_of_run
from registry.promotion import register_candidate
from registry.prompts import PromptVersion, resolve_prompt
from tasks.model.tiny import build_tiny_model
from tasks.train.preference import train_preference as _train_preference
from tasks.train.sft import train_sft as _train_sft

build_base_model = task(build_tiny_model, name="build-base-model")
RESUMABLE = ("KILLED", "FAILED")


@task(name="train-sft")
def train_sft(base: str, data_path: str, template: str, config: RunConfig, out_dir: str, run_id: str) -> dict:
    return _train_sft(base, data_path, template, config.train, out_dir, tracking.metric_sink(run_id), config.model)


@task(name="train-preference")
def train_preference(sft_dir: str, data_path: str, template: str, config: RunConfig, out_dir: str, run_id: str) -> dict:
    return _train_preference(
        sft_dir, data_path, template, config.train, out_dir, tracking.metric_sink(run_id), config.model
    )


def resolve_base(config: RunConfig) -> str:
    if config.model.base == "embedded":
        return str(build_base_model(config.model.tiny, llmops_home() / "models"))
    return config.model.base


def resume_key(config: RunConfig, dataset: CuratedDataset, prompt: PromptVersion, base: str) -> str:
    """What makes two train runs the same work: model and training settings, data, prompt, base."""
    return tracking.config_hash(
        {
            "model": config.model.model_dump(),
            "train": config.train.model_dump(),
            "dataset": dataset.hash,
            "prompt": prompt.ref,
            "base": base,
        }
    )


def unfinished_run(experiment: str, key: str) -> str | None:
    """An earlier run of the same work that did not finish, with its folder still here: resume it."""
    query = f"tags.`llmops.stage` = 'train' and tags.`llmops.resume_key` = '{key}'"
    for run in tracking.client().search_runs(
        [tracking.ensure_experiment(experiment)], query, order_by=["attributes.start_time DESC"], max_results=5
    ):
        if run.info.status in RESUMABLE and (llmops_home() / "runs" / run.info.run_id).is_dir():
            return run.info.run_id
    return None


def throughput_metrics(prefix: str, summary: dict) -> dict[str, float]:
    t = summary.get("throughput") or {}
    keys = ("tokens_per_s", "padding_fraction", "peak_gpu_memory_gib", "gpu_utilisation_mean", "mfu")
    rows = {f"{prefix}/{k}": float(v) for k, v in (summary.get("rows") or {}).items() if isinstance(v, (int, float))}
    return (
        {f"{prefix}/{k}": float(t[k]) for k in keys if t.get(k) is not None}
        | rows
        | {f"{prefix}/seconds": summary["seconds"], f"{prefix}/train_loss": summary["train_loss"]}
    )


@flow(name="train")
def train_flow(dataset: str = "latest", config: RunConfig = default_config(), parent_run_id: str | None = None) -> dict:
    """Fine-tune on a curated dataset (SFT, then DPO/ORPO/KTO) and register the result as `challenger`.

    Args:
        dataset: a dataset hash printed by curate (or its first 8+ characters), or `latest` for the newest
            curation of this config.
        config: the run config; `model`, `train`, `prompt` and `registry` are what this stage reads.
        parent_run_id: MLflow run to nest this run under (set by nightly; leave empty).
    """
    check_run_config(config)
    reg, logger = config.registry, get_run_logger()
    data = resolve_dataset(dataset, reg.experiment, config.name)
    prompt = resolve_prompt(config.prompt.name, config.prompt.template)
    base = resolve_base(config)
    key = resume_key(config, data, prompt, base)
    resume = unfinished_run(reg.experiment, key)
    tags = {
        "llmops.prompt": prompt.ref,
        "llmops.dataset_hash": data.hash,
        "llmops.base_model": base,
        "llmops.resume_key": key,
        "llmops.config_name": config.name,
    }
    with tracking.stage_run(reg.experiment, "train", parent_run_id, tags, resume_run_id=resume) as run_id:
        if resume:
            logger.info(f"resuming train run {run_id}: same config, dataset, prompt and base; from its last checkpoint")
        else:
            tracking.log_params(
                run_id,
                {
                    "model": config.model.model_dump(),
                    "train": config.train.model_dump(),
                    "prompt": {"version": prompt.ref},
                },
            )
            tracking.log_json(run_id, config.model_dump(), "config/resolved.json")
            tracking.log_dataset(run_id, data.sft_path, "curated-sft", data.hash, "training")
        out_dir = str(llmops_home() / "runs" / run_id)
        stages, metrics = [], {}
        if data.sft_rows:
            stages.append(train_sft(base, data.sft_path, prompt.template, config, out_dir, run_id))
            metrics |= throughput_metrics("sft", stages[-1])
        if config.train.preference.enabled and data.pref_rows:  # from the SFT result, or the base without one
            start = stages[-1]["path"] if stages else base
            stages.append(train_preference(start, data.pref_path, prompt.template, config, out_dir, run_id))
            metrics |= throughput_metrics(config.train.preference.method, stages[-1])
        if not stages:
            raise UserError(
                f"dataset {data.hash[:12]}",
                f"has {data.sft_rows} chat rows and {data.pref_rows} preference "
                "rows to train on" + ("" if config.train.preference.enabled else " (preference tuning is off)"),
                "curate data with rows of a trainable kind, or set train.preference.enabled: true",
            )
        result = stages[-1]
        tracking.log_metrics(run_id, metrics)
        tracking.log_json(
            run_id, {s["path"].rsplit("/", 1)[-1]: s.get("throughput") for s in stages}, "throughput.json"
        )
        for s in stages:
            tracking.client().log_artifact(run_id, s["examples"], "examples")
            if s.get("rows", {}).get("dropped_prompt_fills_max_length"):  # every row kept or recorded with its reason
                tracking.client().log_artifact(run_id, s["rows"]["dropped_path"], "examples")
                logger.warning(
                    f"{s['rows']['dropped_prompt_fills_max_length']} of {s['rows']['rows']} training rows "
                    f"have a prompt that fills max_length and train nothing; listed in examples/"
                    f"{Path(s['rows']['dropped_path']).name} "
                    f"(raise {s['rows'].get('setting', 'train.sft.max_length')} to keep them)"
                )

        source = log_trained_folder(run_id, result["path"])
        merged = log_merged_model(run_id, result["path"], prompt.uri) if reg.log_merged else None
        lineage = Lineage(
            dataset_hash=data.hash,
            eval_hash=data.eval_hash,
            curate_run_id=data.run_id or "",
            config_hash=tracking.config_hash(config.model_dump()),
            git_commit=tracking.git_commit(),
            train_run_id=run_id,
            prompt=prompt.ref,
            base_model=base,
            method=config.train.method,
            stages="+".join(Path(s["path"]).name for s in stages),
        )
        tags = lineage.to_tags() | ({"llmops.merged_model_uri": merged} if merged else {})
        earlier = versions_of_run(reg.model_name, run_id) if resume else []
        version = earlier[0] if earlier else register_candidate(reg.model_name, source, run_id, tags)
        summary = {
            "run_id": run_id,
            "model_name": reg.model_name,
            "version": version.version,
            "dataset": data.hash,
            "prompt": prompt.ref,
            "base": base,
            "model_dir": result["path"],
            "resumed": bool(resume),
            "metrics": metrics,
        }
        tracking.log_json(run_id, summary, "lineage/trained.json")
        # The run id is what the promote form asks for (train_run): say it where a person reads the result.
        logger.info(
            f"trained {config.train.method} on {base}: registered {reg.model_name} v{version.version} "
            f"(challenger) from train run {run_id} (promote: train_run={run_id}); "
            f"{json.dumps({k: round(v, 4) for k, v in metrics.items()})}"
        )
        return summary
