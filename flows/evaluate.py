"""Evaluate: the candidate, the current champion and the base model, on the same held-out items.

    llmops evaluate --config configs/nightly.yaml [--model models:/tiny-arith@champion]
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from configs.schema import RunConfig
from llmops.home import llmops_home
from registry import tracking
from registry.models import download_model_dir, version_by_alias
from tasks.data.demo import QUESTION_TEMPLATE
from tasks.evaluate.plot import plot_scores
from tasks.evaluate.score import read_eval_items, score_model


@flow(name="evaluate")
def evaluate_flow(config: RunConfig, eval_path: str, base: str, candidate_dir: str | None = None,
                  parent_run_id: str | None = None) -> dict:
    reg = config.registry
    with tracking.stage_run(reg.experiment, "evaluate", parent_run_id) as run_id:
        items = read_eval_items(eval_path, config.eval.limit)
        tracking.log_params(run_id, {"eval": config.eval.model_dump(), "eval_items": len(items)})
        tracking.log_dataset(run_id, eval_path, "eval", tracking.file_hash(eval_path), "evaluation")
        models = {"base": base}
        if candidate_dir:
            models["candidate"] = candidate_dir
        champion = version_by_alias(reg.model_name, "champion")
        if champion is not None:
            models["champion"] = download_model_dir(champion, llmops_home() / "cache" / "champion" / run_id)

        results = {who: score_model.with_options(name=f"score-{who}")(path, items, QUESTION_TEMPLATE, config.eval)
                   for who, path in models.items()}
        client = tracking.client()
        for who, res in results.items():
            tracking.log_metrics(run_id, {f"exact_match.{who}": res["exact_match"],
                                          f"seconds_per_item.{who}": res["seconds_per_item"]})
            client.log_table(run_id, data={k: [r[k] for r in res["rows"]] for k in res["rows"][0]},
                             artifact_file=f"eval/{who}_items.json")
        plot = plot_scores({w: r["scores"] for w, r in results.items()}, llmops_home() / "plots" / f"{run_id}.png",
                           f"Held-out exact match ({len(items)} items)")
        client.log_artifact(run_id, str(plot), "eval")
        lines = ["| model | exact match |", "|---|---|"] + [f"| {w} | {r['exact_match']:.3f} |" for w, r in results.items()]
        create_markdown_artifact("\n".join(lines), key="eval-scores", description="Exact match on the held-out split")
        get_run_logger().info("exact match: " + ", ".join(f"{w} {r['exact_match']:.3f}" for w, r in results.items()))
        return {
            "run_id": run_id,
            "n_items": len(items),
            "exact_match": {w: r["exact_match"] for w, r in results.items()},
            "scores": {w: r["scores"] for w, r in results.items()},
            "champion_version": champion.version if champion else None,
        }
