"""Evaluate: the candidate, the current champion and the base model, on the same items of every suite.

    llmops evaluate --config configs/nightly.yaml [--model models:/tiny-arith@champion] [--suite arithmetic]
"""

from __future__ import annotations

import json

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from configs.schema import RunConfig
from llmops.home import llmops_home
from registry import tracking
from registry.models import download_model_dir, version_by_alias
from registry.stats import paired_mean_diff
from tasks.evaluate.plot import plot_scores
from tasks.evaluate import run as library

evaluate_model = task(library.evaluate_model, name="evaluate-model")
evaluate_harness = task(library.evaluate_harness, name="evaluate-harness")
from tasks.evaluate.suites import DATA_DIR, load_suite

NEEDS_EVAL_SPLIT = {"arithmetic", "held-out"}
BUNDLED = {"json-format": DATA_DIR / "json_format.jsonl", "safety": DATA_DIR / "safety_probes.jsonl"}


def load_suites(config: RunConfig, eval_path: str) -> list:
    return [load_suite(name, eval_path if name in NEEDS_EVAL_SPLIT else None, config.eval.limit) for name in config.eval.suites]


def mean_with_ci(scores: list[float]) -> dict:
    """Mean and 95 % t interval of per-item scores (a paired difference against zero)."""
    if len(scores) < 2:
        return {"mean": scores[0] if scores else 0.0, "ci_low": None, "ci_high": None, "n": len(scores)}
    d = paired_mean_diff(scores, [0.0] * len(scores))
    return {"mean": d["delta"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "n": len(scores)}


@flow(name="evaluate")
def evaluate_flow(config: RunConfig, eval_path: str, base: str | None = None, candidate_dir: str | None = None,
                  parent_run_id: str | None = None, compare_champion: bool = True, fresh: bool = False) -> dict:
    reg, logger = config.registry, get_run_logger()
    with tracking.stage_run(reg.experiment, "evaluate", parent_run_id) as run_id:
        suites = load_suites(config, eval_path)
        tracking.log_params(run_id, {"eval": config.eval.model_dump(),
                                     "suites": {s.name: f"{s.version} ({len(s.items)} items)" for s in suites}})
        for s in suites:
            data_path = eval_path if s.name in NEEDS_EVAL_SPLIT else BUNDLED[s.name]
            tracking.log_dataset(run_id, str(data_path), f"eval-{s.name}", s.version, "evaluation")
        models = {}
        if candidate_dir:
            models["candidate"] = candidate_dir
        champion = version_by_alias(reg.model_name, "champion") if compare_champion else None
        if champion is not None:
            models["champion"] = download_model_dir(champion, llmops_home() / "cache" / "models" / f"{reg.model_name}-v{champion.version}")
        if base:
            models["base"] = base
        # `fresh` re-generates every item (monitoring asks how the model answers now, not last time).
        cache_root = str(llmops_home() / "cache" / ("eval-fresh" if fresh else "eval") / (run_id if fresh else ""))
        evaluated = {who: evaluate_model.with_options(name=f"evaluate-{who}")(path, suites, config.eval, cache_root)
                     for who, path in models.items()}
        results = {who: e["suites"] for who, e in evaluated.items()}
        if config.eval.harness_tasks:
            for who, path in models.items():
                results[who] |= evaluate_harness.with_options(name=f"harness-{who}")(
                    path, config.eval.harness_tasks, eval_path, config.eval.limit)
        summary = {who: {f"{s}/{m}": v for s, r in per.items() for m, v in r["means"].items()} for who, per in results.items()}
        report = _log_results(run_id, results, summary)
        logger.info("\n" + report)
        return {"run_id": run_id, "results": results, "summary": summary,
                "champion_version": champion.version if champion else None,
                "model_keys": {who: e["model_key"] for who, e in evaluated.items()}}


def _log_results(run_id: str, results: dict, summary: dict) -> str:
    client = tracking.client()
    metrics = {}
    for who, per_suite in results.items():
        for suite, r in per_suite.items():
            metrics |= {f"{suite}.{m}.{who}": v for m, v in r["means"].items()}
            metrics |= {f"{suite}.ops.{k}.{who}": v for k, v in r["ops"].items()}
            table = {"id": r["ids"], "output": r["outputs"], **{m: v for m, v in r["scores"].items()}}
            client.log_table(run_id, data=table, artifact_file=f"eval/{who}/{suite}_items.json")
    tracking.log_metrics(run_id, metrics)
    per_item = {who: {s: {"ids": r["ids"], "scores": r["scores"], "version": r["version"]} for s, r in per.items()}
                for who, per in results.items()}
    client.log_text(run_id, json.dumps(per_item), "eval/per_item_scores.json")
    primary = {who: per["arithmetic"]["scores"]["exact_match"] for who, per in results.items() if "arithmetic" in per}
    if primary:
        n = len(next(iter(primary.values())))
        plot = plot_scores(primary, llmops_home() / "plots" / f"{run_id}.png", f"arithmetic exact match ({n} items)")
        client.log_artifact(run_id, str(plot), "eval")
    who = list(summary)
    keys = sorted({k for per in summary.values() for k in per})
    lines = ["| suite/metric | " + " | ".join(who) + " |", "|---" * (len(who) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(f"{summary[w][k]:.3f}" if k in summary[w] else "" for w in who) + " |" for k in keys]
    report = "\n".join(lines)
    create_markdown_artifact(report, key="eval-scores", description="Scores per suite and model, same items for every model")
    return report
