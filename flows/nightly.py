"""Nightly: curate, train, evaluate, promote, as one Prefect flow run and one parent MLflow run.

    llmops nightly --config configs/nightly.yaml

The same four flows a person can start one by one, joined by the references each records: the
dataset hash, the train run and the version it registered, the evaluate run. If evaluation or the
gate fails, the version this run registered is removed again, so a failed night leaves the
registry as it was.

On several ranks (`train.num_gpus`, or `accelerate launch ... -m llmops.cli nightly`) this flow runs
once, on rank 0: curation, evaluation and promotion happen once, and the other ranks join only the
training stages, released as soon as training ends (flows/train.py).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from configs.load import check_run_config, default_config
from configs.schema import RunConfig
from flows.curate import run_curate
from flows.evaluate import evaluate_flow
from flows.promote import promote_flow
from flows.train import train_flow
from registry import models, tracking
from registry.promotion import reconcile_champion, unregister_candidate


@flow(name="nightly")
def nightly_flow(config: RunConfig = default_config()) -> dict:
    """Curate, train, evaluate and promote, as one run.

    Args:
        config: the run config (the form starts from configs/nightly.yaml); every section is used.
    """
    check_run_config(config)
    reg = config.registry
    with tracking.stage_run(reg.experiment, config.name, tags={"llmops.pipeline": "nightly"}) as run_id:
        tracking.log_json(run_id, config.model_dump(), "config/resolved.json")
        manual = check_manual_promotion(config, run_id)
        curated = run_curate(config, parent_run_id=run_id)
        challenger_before = (
            models.aliases_of(reg.model_name).get("challenger") if reg.model_name in models.registered_names() else None
        )
        trained = train_flow(config=config, dataset=curated.dataset_hash, parent_run_id=run_id)
        try:
            evaluated = evaluate_flow(
                config=config,
                model=f"{reg.model_name}/{trained.version}",
                dataset=curated.dataset_hash,
                parent_run_id=run_id,
            )
            promoted = promote_flow(
                train_run=trained.run_id, evaluation=evaluated.run_id, config=config, parent_run_id=run_id
            )
        except BaseException:
            undo_registration(reg.model_name, trained.version, challenger_before)
            raise
        primary = config.gate.primary
        means = evaluated.summary
        cand, base = means["candidate"][primary], means["base"][primary]
        gain = promoted["gate"]["comparisons"].get(f"{primary}.vs_base", {})
        summary = {
            "gain_over_base": cand - base,
            "gain_ci_low": gain.get("ci_low"),
            "gain_ci_high": gain.get("ci_high"),
            "candidate_score": cand,
            "base_score": base,
            "promoted": 1.0 if promoted["decision"] == "promote" else 0.0,
        }
        tracking.log_metrics(run_id, {k: v for k, v in summary.items() if v is not None})
        return {
            "run_id": run_id,
            "curate": curated,
            "train": trained,
            "evaluate": evaluated,
            "promote": promoted,
            "manual_promotion": manual,
            **summary,
        }


def check_manual_promotion(config: RunConfig, parent_run_id: str) -> dict | None:
    """A champion moved outside llmops is recorded, then compared with the one it replaced."""
    name = config.registry.model_name
    moved = reconcile_champion(name) if name in models.registered_names() else None
    if moved is None:
        return None
    get_run_logger().warning(f"{name} v{moved['version']} was made champion outside llmops: {moved['why']}")
    if moved["replaced"] is not None:
        moved["evaluation"] = evaluate_flow(
            config=config, model=f"{name}@champion", against="previous", parent_run_id=parent_run_id
        ).summary
    return moved


def undo_registration(name: str, version: int, challenger_before: int | None) -> None:
    """Removes the version this night registered, unless a decision already stands on it."""
    info = models.get_version(name, version)
    if info is None or "champion" in info.aliases or info.tags.get("gate.decision"):
        return
    unregister_candidate(info, challenger_before)
