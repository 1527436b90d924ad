"""Nightly: curate, train, evaluate, promote, as one Prefect flow run and one parent MLflow run.

    llmops nightly --config configs/nightly.yaml
"""

from __future__ import annotations

from prefect import flow

from configs.schema import RunConfig
from flows.curate import run_curate
from flows.evaluate import evaluate_flow
from flows.promote import promote_flow
from flows.train import train_flow
from registry import tracking


@flow(name="nightly")
def nightly_flow(config: RunConfig) -> dict:
    with tracking.stage_run(config.registry.experiment, config.name, tags={"llmops.pipeline": "nightly"}) as run_id:
        tracking.log_json(run_id, config.model_dump(), "config/resolved.json")
        curated = run_curate(config, parent_run_id=run_id)
        trained = train_flow(config, curated, parent_run_id=run_id)
        evaluated = evaluate_flow(config, curated["eval_path"], trained["base"], trained["model_dir"],
                                  parent_run_id=run_id)
        promoted = promote_flow(config, trained, evaluated, curated, parent_run_id=run_id)
        primary = config.gate.primary
        cand, base = evaluated["summary"]["candidate"][primary], evaluated["summary"]["base"][primary]
        gain = promoted["gate"]["comparisons"].get(f"{primary}.vs_base", {})
        summary = {"gain_over_base": cand - base, "gain_ci_low": gain.get("ci_low"), "gain_ci_high": gain.get("ci_high"),
                   "candidate_score": cand, "base_score": base,
                   "promoted": 1.0 if promoted["decision"] == "promote" else 0.0}
        tracking.log_metrics(run_id, {k: v for k, v in summary.items() if v is not None})
        return {"run_id": run_id, "curate": curated, "train": trained, "evaluate": evaluated, "promote": promoted, **summary}
