"""Train: a curated dataset in, a registered `challenger` version out.

    llmops train --config configs/nightly.yaml [--dataset latest|<hash>]

SFT with an adapter (LoRA/QLoRA) or full weights, then preference tuning (DPO, ORPO or KTO), all
through the library in tasks/train/. The run records throughput (tokens/s, padding, GPU memory
and utilisation, MFU), logs the trained folder lean (adapter + a reference to its base; a merged
copy only when asked) and registers it as a new version of `registry.model_name` with alias
`challenger`, so `evaluate` and `promote` can find it by name.

A run killed mid-way is resumed by running the same command again: the unfinished run with the
same config, dataset, prompt and base is continued (same MLflow run, same folder, now nested under
the run that resumed it) from its last checkpoint, and finished stages are not trained again.

On several GPUs (`train.num_gpus`, `llmops train --gpus N`) each stage launches its ranks with
accelerate; launched by hand (`accelerate launch ... -m llmops.cli train`) this process is rank 0 of
the launch. Either way this flow, its MLflow run and the registered version exist once: the other
ranks only train (tasks/train/launch.py, tasks/train/distributed.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger, task

from configs.check import with_worker_gpus
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
from registry.training import RESUME_KEY_TAG, log_stage_files, log_summary_metrics, unfinished_run
from tasks.model.tiny import build_tiny_model
from tasks.train import distributed
from tasks.train.launch import train_stage
from tasks.train.plan import TrainPlan
from tasks.train.result import StageResult

build_base_model = task(build_tiny_model, name="build-base-model")


@dataclass(frozen=True)
class TrainResult:
    """What a train run hands on: the version it registered (as `challenger`) and where it came from."""

    run_id: str  # the MLflow train run: what `promote --train-run` takes
    model_name: str
    version: int
    dataset: str  # the curated dataset's hash
    prompt: str  # the prompt version trained with: NAME/VERSION
    base: str
    model_dir: str  # the trained folder of the last stage
    resumed: bool  # an unfinished run of the same work was continued
    ranks: int  # data-parallel ranks it trained on
    metrics: dict[str, float] = field(default_factory=dict)


@task(name="train-sft")
def train_sft(plan: TrainPlan, run_id: str, resumed: bool) -> StageResult:
    return train_stage(plan, tracking.metric_sink(run_id, resumed))


@task(name="train-preference")
def train_preference(plan: TrainPlan, run_id: str, resumed: bool) -> StageResult:
    return train_stage(plan, tracking.metric_sink(run_id, resumed))


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


def stage_metrics(prefix: str, stage: StageResult) -> dict[str, float]:
    t, rows = stage.throughput, stage.rows
    keys = ("tokens_per_s", "padding_fraction", "peak_gpu_memory_gib", "gpu_utilisation_mean", "mfu")
    counts = {"rows": rows.rows, "dropped_prompt_fills_max_length": rows.dropped_prompt_fills_max_length}
    return (
        {f"{prefix}/{k}": float(t[k]) for k in keys if t.get(k) is not None}
        | {f"{prefix}/{k}": float(v) for k, v in counts.items()}
        | {f"{prefix}/seconds": stage.seconds, f"{prefix}/train_loss": stage.train_loss, f"{prefix}/ranks": stage.ranks}
    )


@flow(name="train")
def train_flow(
    dataset: str = "latest", config: RunConfig = default_config(), parent_run_id: str | None = None
) -> TrainResult:
    """Fine-tune on a curated dataset (SFT, then DPO/ORPO/KTO) and register the result as `challenger`.

    Args:
        dataset: a dataset hash printed by curate (or its first 8+ characters), or `latest` for the newest
            curation of this config.
        config: the run config; `model`, `train`, `prompt` and `registry` are what this stage reads.
            `train.num_gpus` above 1 trains on that many GPUs of the worker, one rank each.
        parent_run_id: MLflow run to nest this run under (set by nightly; leave empty).
    """
    try:
        return _train(dataset, config, parent_run_id)
    finally:
        distributed.release()  # ranks a person launched with this one: not needed for what follows


def _train(dataset: str, config: RunConfig, parent_run_id: str | None) -> TrainResult:
    config = check_run_config(with_worker_gpus(config))  # a GPU pool's gpus_per_run, unless the config says
    reg, logger = config.registry, get_run_logger()
    data = resolve_dataset(dataset, reg.experiment, config.name)
    prompt = resolve_prompt(config.prompt.name, config.prompt.template)
    base = resolve_base(config)
    key = resume_key(config, data, prompt, base)
    runs = llmops_home() / "runs"
    resume = unfinished_run(reg.experiment, key, runs)
    ranks = distributed.current().world if distributed.launched() else config.train.ranks
    tags = {
        "llmops.prompt": prompt.ref,
        "llmops.dataset_hash": data.hash,
        "llmops.base_model": base,
        RESUME_KEY_TAG: key,
        "llmops.config_name": config.name,
        "llmops.train_ranks": str(ranks),
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
        if ranks > 1:
            how = "of this launch" if distributed.launched() else f"launched with {config.train.accelerate_config}"
            logger.info(f"training on {ranks} data-parallel ranks {how}; rank 0 records and registers")

        def plan(stage: str, start: str, data_path: str) -> TrainPlan:
            return TrainPlan(stage, start, data_path, prompt.template, config.train, config.model, str(runs / run_id))

        stages: list[StageResult] = []
        metrics: dict[str, float] = {}
        if data.sft_rows:
            stages.append(train_sft(plan("sft", base, data.sft_path), run_id, bool(resume)))
            metrics |= stage_metrics("sft", stages[-1])
        if config.train.preference.enabled and data.pref_rows:  # from the SFT result, or the base without one
            method = config.train.preference.method
            start = stages[-1].path if stages else base
            stages.append(train_preference(plan(method, start, data.pref_path), run_id, bool(resume)))
            metrics |= stage_metrics(method, stages[-1])
        if not stages:
            raise UserError(
                f"dataset {data.hash[:12]}",
                f"has {data.sft_rows} chat rows and {data.pref_rows} preference "
                "rows to train on" + ("" if config.train.preference.enabled else " (preference tuning is off)"),
                "curate data with rows of a trainable kind, or set train.preference.enabled: true",
            )
        result = stages[-1]
        log_summary_metrics(run_id, metrics, bool(resume))
        tracking.log_json(run_id, {s.stage: s.throughput for s in stages}, "throughput.json")
        for s in stages:
            log_stage_files(run_id, s)  # every row kept or recorded with its reason
            if s.rows.dropped_prompt_fills_max_length:
                logger.warning(
                    f"{s.rows.dropped_prompt_fills_max_length} of {s.rows.rows} training rows "
                    f"have a prompt that fills max_length and train nothing; listed in examples/"
                    f"{Path(s.rows.dropped_path).name} (raise {s.rows.setting} to keep them)"
                )

        source = log_trained_folder(run_id, result.path)
        merged = log_merged_model(run_id, result.path, prompt.uri) if reg.log_merged else None
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
            stages="+".join(s.stage for s in stages),
        )
        tags = lineage.to_tags() | ({"llmops.merged_model_uri": merged} if merged else {})
        earlier = versions_of_run(reg.model_name, run_id) if resume else []
        version = earlier[0] if earlier else register_candidate(reg.model_name, source, run_id, tags)
        trained = TrainResult(
            run_id=run_id,
            model_name=reg.model_name,
            version=int(version.version),
            dataset=data.hash,
            prompt=prompt.ref,
            base=base,
            model_dir=result.path,
            resumed=bool(resume),
            ranks=ranks,
            metrics=metrics,
        )
        tracking.log_json(run_id, asdict(trained), "lineage/trained.json")
        # The run id is what the promote form asks for (train_run): say it where a person reads the result.
        logger.info(
            f"trained {config.train.method} on {base}: registered {reg.model_name} v{version.version} "
            f"(challenger) from train run {run_id} (promote: train_run={run_id}); "
            f"{json.dumps({k: round(v, 4) for k, v in metrics.items()})}"
        )
        return trained
