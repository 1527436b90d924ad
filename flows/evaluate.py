"""Evaluate: a model against the current champion and the base model, on the same items of every suite.

    llmops evaluate --model tiny-arith@challenger
    llmops evaluate --model ./out/adapter --suite arithmetic --data gsm8k.jsonl --limit 100 --output out/

Each model generates with its own prompt: a registered version with the prompt version it was
trained with, a folder with the config's prompt, unless `prompt` names one to try (prompt A/B on a
fixed model). Models are evaluated one after another on the device the config names (bf16 on a
GPU by default), each released before the next loads. The run records per-item scores, so the
gate (`promote`) and the monitor can pair them item by item later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from configs.load import check_run_config, default_config
from configs.schema import RunConfig
from core.errors import UserError
from core.paths import llmops_home
from registry import tracking
from registry.models import VersionInfo, resolve_model, version_by_alias
from registry.prompts import PromptVersion, load_prompt, resolve_prompt
from tasks.evaluate import harness
from tasks.evaluate import run as library
from tasks.evaluate.intervals import mean_interval
from tasks.evaluate.plot import plot_scores
from tasks.evaluate.suites import DATA_DIR, load_suite
from tasks.model.load import eval_placement

evaluate_model = task(library.evaluate_model, name="evaluate-model")
evaluate_harness = task(harness.evaluate_harness, name="evaluate-harness")

NEEDS_EVAL_SPLIT = {"arithmetic", "held-out"}
BUNDLED = {"json-format": DATA_DIR / "json_format.jsonl", "safety": DATA_DIR / "safety_probes.jsonl"}


@dataclass
class Contender:
    folder: str
    prompt: PromptVersion
    version: VersionInfo | None = None
    base: str | None = None  # where the base an adapter names is on this machine


def load_suites(config: RunConfig, eval_path: str) -> list:
    try:
        return [
            load_suite(name, eval_path if name in NEEDS_EVAL_SPLIT else None, config.eval.limit)
            for name in config.eval.suites
        ]
    except ValueError as err:  # the suites' messages name the file, the line and what an item needs
        raise UserError("eval items", str(err), "fix the file, or evaluate on another (--data FILE)") from None


def suites_signature(suites: list) -> str:
    return ",".join(sorted(f"{s.name}@{s.version}" for s in suites))


def mean_with_ci(scores: list[float], metric: str) -> dict:
    """One model's mean with a 95 % interval inside the score's range: Wilson for 0/1 scores (a
    proportion never gets a negative lower bound), a percentile bootstrap for graded ones."""
    from tasks.evaluate.suites import BINARY_METRICS, GRADED_METRICS

    if not scores:
        return {"mean": 0.0, "ci_low": None, "ci_high": None, "n": 0, "method": "none (no items)"}
    binary = metric in BINARY_METRICS or set(scores) <= {0.0, 1.0}
    return mean_interval(scores, binary=binary, bounds=(0.0, 1.0) if binary or metric in GRADED_METRICS else None)


def version_prompt(version: VersionInfo | None, config: RunConfig) -> PromptVersion:
    """The prompt a model generates with: its version's own, else the config's."""
    ref = version.lineage.prompt if version else None
    return load_prompt(ref) if ref else resolve_prompt(config.prompt.name, config.prompt.template)


def eval_split(dataset: str, version: VersionInfo | None, config: RunConfig) -> str:
    """A JSONL file of items; a dataset's eval split (hash or `latest`); the split the version was
    trained with; or, for a bare folder, `data.eval_path` or the demo's eval split."""
    from registry.datasets import resolve_dataset

    if dataset and Path(dataset).expanduser().is_file():
        return str(Path(dataset).expanduser().resolve())
    ref = dataset or (version.lineage.dataset_hash if version else "")
    if ref:
        return resolve_dataset(ref, config.registry.experiment, config.name).eval_path
    if config.data.eval_path:
        return config.data.eval_path
    from tasks.data.demo import write_demo_data

    d = config.data
    return write_demo_data(
        llmops_home() / "data" / f"demo-seed{d.seed}", d.seed, d.demo_train_rows, d.demo_pref_rows, d.demo_eval_rows
    )["eval"]


def base_for(version: VersionInfo | None, config: RunConfig) -> str:
    recorded = version.lineage.base_model if version else None
    if recorded and (Path(recorded).is_dir() or not recorded.startswith("/")):
        return recorded
    from flows.train import resolve_base

    return resolve_base(config)


def contenders(config: RunConfig, model: str, against: str, prompt: str) -> dict[str, Contender]:
    cache = llmops_home() / "cache" / "models"
    if against not in ("champion", "previous", "none"):
        raise UserError(f"against={against!r}", "is not a comparison", "use champion, previous or none")
    version, folder = resolve_model(model or f"{config.registry.model_name}@challenger", cache)
    chosen = load_prompt(prompt) if prompt else version_prompt(version, config)
    out = {"candidate": Contender(folder, chosen, version, base_for(version, config) if version else None)}
    name = version.name if version is not None else config.registry.model_name
    other = version_by_alias(name, against) if against != "none" else None
    if other is not None and (version is None or other.version != version.version):
        _, other_folder = resolve_model(f"{other.name}/{other.version}", cache)
        out[against] = Contender(other_folder, version_prompt(other, config), other, base_for(other, config))
    if against != "none":
        out["base"] = Contender(base_for(version, config), chosen)
    return out


@flow(name="evaluate")
def evaluate_flow(
    model: str = "",
    dataset: str = "",
    against: str = "champion",
    prompt: str = "",
    fresh: bool = False,
    config: RunConfig = default_config(),
    parent_run_id: str | None = None,
) -> dict:
    """Score a model, the champion and the base model on the same items of every configured suite.

    Args:
        model: NAME@ALIAS, NAME/VERSION or a model folder; empty = the challenger of registry.model_name.
        dataset: eval items: a dataset hash or `latest` (its eval split), or a JSONL file; empty = the split
            the model was trained with.
        against: compare with the `champion` (default), the `previous` champion, or `none`.
        prompt: a registered prompt to generate with (prompts:/NAME@ALIAS); empty = the model's own prompt.
        fresh: generate every answer again instead of reusing cached ones.
        config: the run config; `eval` (suites, device, batch size) and `model` are what this stage reads.
        parent_run_id: MLflow run to nest this run under (set by nightly; leave empty).
    """
    check_run_config(config)
    who = contenders(config, model, against, prompt)
    candidate = who["candidate"]
    tags = {}
    if candidate.version:
        tags |= {"llmops.model_name": candidate.version.name, "llmops.model_version": str(candidate.version.version)}
    if against in who:
        tags["llmops.compared_version"] = str(who[against].version.version)
    return run_evaluation(config, who, eval_split(dataset, candidate.version, config), tags, parent_run_id, fresh)


def run_evaluation(
    config: RunConfig,
    who: dict[str, Contender],
    eval_path: str,
    tags: dict[str, str],
    parent_run_id: str | None = None,
    fresh: bool = False,
) -> dict:
    """Evaluates each contender, one after another, on the same suites and items; logs one evaluate run."""
    reg, logger = config.registry, get_run_logger()
    candidate = who["candidate"]
    suites = load_suites(config, eval_path)
    harness.check_harness_tasks(config.eval.harness_tasks)
    placement = eval_placement(config.eval, config.model)
    tags = {"llmops.suites": suites_signature(suites), "llmops.prompt": candidate.prompt.ref, **tags}
    with tracking.stage_run(reg.experiment, "evaluate", parent_run_id, tags) as run_id:
        tracking.log_params(
            run_id,
            {
                "eval": config.eval.model_dump(),
                "placement": placement.to_dict(),
                "prompts": {label: c.prompt.ref for label, c in who.items()},
                "suites": {s.name: f"{s.version} ({len(s.items)} items)" for s in suites},
            },
        )
        for s in suites:
            data_path = eval_path if s.name in NEEDS_EVAL_SPLIT else BUNDLED[s.name]
            tracking.log_dataset(run_id, str(data_path), f"eval-{s.name}", s.version, "evaluation")
        cache_root = str(llmops_home() / "cache" / ("eval-fresh" if fresh else "eval") / (run_id if fresh else ""))
        evaluated = {
            label: evaluate_model.with_options(name=f"evaluate-{label}")(
                c.folder, suites, config.eval, cache_root, placement, c.prompt.template, c.base
            )
            for label, c in who.items()
        }
        results = {label: e["suites"] for label, e in evaluated.items()}
        if config.eval.harness_tasks:
            for label, c in who.items():
                results[label] |= evaluate_harness.with_options(name=f"harness-{label}")(
                    c.folder, config.eval.harness_tasks, eval_path, config.eval, c.prompt.template, placement, c.base
                )
        summary = {
            label: {f"{s}/{m}": v for s, r in per.items() for m, v in r["means"].items()}
            for label, per in results.items()
        }
        logger.info("\n" + _log_results(run_id, results, summary))
        champion = who.get("champion")
        return {
            "run_id": run_id,
            "results": results,
            "summary": summary,
            "eval_path": eval_path,
            "prompts": {label: c.prompt.ref for label, c in who.items()},
            "model": {"name": candidate.version.name, "version": candidate.version.version}
            if candidate.version
            else None,
            "champion_version": champion.version.version if champion and champion.version else None,
            "model_keys": {label: e["model_key"] for label, e in evaluated.items()},
        }


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
    per_item = {
        who: {s: {"ids": r["ids"], "scores": r["scores"], "version": r["version"]} for s, r in per.items()}
        for who, per in results.items()
    }
    client.log_text(run_id, json.dumps(per_item), "eval/per_item_scores.json")
    # Everything the gate reads, without the generated texts (those are in the tables above).
    gate_inputs = {
        who: {s: {k: v for k, v in r.items() if k != "outputs"} for s, r in per.items()} for who, per in results.items()
    }
    client.log_text(run_id, json.dumps(gate_inputs), "eval/results.json")
    primary = {who: per["arithmetic"]["scores"]["exact_match"] for who, per in results.items() if "arithmetic" in per}
    if primary:
        n = len(next(iter(primary.values())))
        plot = plot_scores(primary, llmops_home() / "plots" / f"{run_id}.png", f"arithmetic exact match ({n} items)")
        client.log_artifact(run_id, str(plot), "eval")
    who = list(summary)
    keys = sorted({k for per in summary.values() for k in per})
    lines = ["| suite/metric | " + " | ".join(who) + " |", "|---" * (len(who) + 1) + "|"]
    lines += [
        f"| {k} | " + " | ".join(f"{summary[w][k]:.3f}" if k in summary[w] else "" for w in who) + " |" for k in keys
    ]
    report = "\n".join(lines)
    create_markdown_artifact(
        report, key="eval-scores", description="Scores per suite and model, same items for every model"
    )
    return report


def stored_results(run_id: str) -> dict:
    """What an evaluate run measured, as the gate reads it."""
    import mlflow

    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/eval/results.json"))
