"""What an evaluate run records in MLflow, and reading it back: the gate and the monitor judge what was stored.

Per model and suite: a table of every item's output and scores, the means and operational figures
as metrics, per-item scores (`eval/per_item_scores.json`), the whole `EvalResults` without the
generated texts (`eval/results.json`, what `stored_results` reads), and a plot of the gate's
primary metric.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from registry import tracking
from tasks.evaluate.results import EvalResults
from tasks.evaluate.run import suite_source
from tasks.evaluate.suites import Suite


def log_inputs(run_id: str, params: dict[str, Any], suites: list[Suite], eval_path: str | None) -> None:
    """The run's settings, and each suite's items as an MLflow dataset input (name, version, source file)."""
    tracking.log_params(run_id, params | {"suites": {s.name: f"{s.version} ({len(s.items)} items)" for s in suites}})
    for s in suites:
        tracking.log_dataset(run_id, suite_source(s, eval_path), f"eval-{s.name}", s.version, "evaluation")


def log_results(run_id: str, results: EvalResults, primary: str) -> None:
    client = tracking.client()
    metrics: dict[str, float] = {}
    for who, per_suite in results.models.items():
        for suite, r in per_suite.items():
            metrics |= {f"{suite}.{m}.{who}": v for m, v in r.means.items()}
            metrics |= {f"{suite}.ops.{k}.{who}": v for k, v in r.ops.items()}
            table = {"id": r.ids, "output": r.outputs, **r.scores}
            client.log_table(run_id, data=table, artifact_file=f"eval/{who}/{suite}_items.json")
    tracking.log_metrics(run_id, metrics)
    per_item = {
        who: {s: {"ids": r.ids, "scores": r.scores, "version": r.version} for s, r in per.items()}
        for who, per in results.models.items()
    }
    client.log_text(run_id, json.dumps(per_item), "eval/per_item_scores.json")
    client.log_text(run_id, json.dumps(results.to_json()), "eval/results.json")
    _log_plot(run_id, results, primary)


def _log_plot(run_id: str, results: EvalResults, primary: str) -> None:
    """The gate's primary metric per model; none when that metric has no per-item scores (corpus BLEU)."""
    from tasks.evaluate.plot import plot_scores

    suite, metric = primary.split("/", 1)
    scores = {
        who: per[suite].scores[metric]
        for who, per in results.models.items()
        if suite in per and metric in per[suite].scores
    }
    if not scores:
        return
    n = len(next(iter(scores.values())))
    with tempfile.TemporaryDirectory() as tmp:
        plot = plot_scores(scores, Path(tmp) / f"{suite}_{metric}.png", metric, f"{primary} ({n} items)")
        tracking.client().log_artifact(run_id, str(plot), "eval")


def stored_results(run_id: str) -> EvalResults:
    """What an evaluate run measured, as the gate reads it."""
    import mlflow

    return EvalResults.from_json(json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/eval/results.json")))
