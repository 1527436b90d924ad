"""Evaluate: a model against the current champion and the base model, on the same items of every suite.

    llmops evaluate --model tiny-arith@challenger
    llmops evaluate --model ./out/adapter --suite arithmetic --data gsm8k.jsonl --limit 100 --output out/

Each model generates with its own prompt: a registered version with the prompt version it was
trained with, a folder with the config's prompt, unless `prompt` names one to try (prompt A/B on a
fixed model). Models are evaluated one after another on the device the config names (bf16 on a
GPU by default), each released before the next loads. The run records per-item scores, so the
gate (`promote`) and the monitor can pair them item by item later. When the gate limits time or
cost, the candidate and the model it is compared with are both timed in this run, on every batch,
cached answers included (registry/gate.py pairs their batches).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from configs.load import check_run_config, default_config
from configs.schema import RunConfig
from core.paths import llmops_home
from flows.train import resolve_base
from registry import tracking
from registry.contenders import Contender, contenders, eval_split, prompt_label
from registry.evaluation import log_inputs, log_results
from tasks.evaluate import harness
from tasks.evaluate import run as library
from tasks.evaluate.results import EvalResults, Evaluation, summary_markdown
from tasks.model.load import eval_placement

evaluate_model = task(library.evaluate_model, name="evaluate-model")
evaluate_harness = task(harness.evaluate_harness, name="evaluate-harness")
TIMED_AGAINST = ("candidate", "champion")  # the labels the gate compares on time and cost


@flow(name="evaluate")
def evaluate_flow(
    model: str = "",
    dataset: str = "",
    against: str = "champion",
    prompt: str = "",
    fresh: bool = False,
    config: RunConfig = default_config(),
    parent_run_id: str | None = None,
) -> Evaluation:
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
    who = contenders(config, model, against, prompt, lambda: resolve_base(config))
    candidate = who["candidate"]
    tags = {}
    if candidate.version:
        tags |= {"llmops.model_name": candidate.version.name, "llmops.model_version": str(candidate.version.version)}
    if against in who:
        tags["llmops.compared_version"] = str(who[against].version.version)
    split = eval_split(dataset, candidate.version, config) if library.needs_eval_split(config.eval) else None
    return run_evaluation(config, who, split, tags, parent_run_id, fresh)


def run_evaluation(
    config: RunConfig,
    who: dict[str, Contender],
    eval_path: str | None,
    tags: dict[str, str],
    parent_run_id: str | None = None,
    fresh: bool = False,
) -> Evaluation:
    """Evaluates each contender, one after another, on the same suites and items; logs one evaluate run."""
    reg, logger = config.registry, get_run_logger()
    candidate = who["candidate"]
    suites = library.load_suites(config.eval, eval_path)
    harness.check_harness_tasks(config.eval.harness_tasks)
    placement = eval_placement(config.eval, config.model)
    prompts = {label: prompt_label(c.prompt) for label, c in who.items()}
    retime = "champion" in who and bool(config.gate.ops_limits())
    tags = {"llmops.suites": library.suites_signature(suites), "llmops.prompt": prompts["candidate"], **tags}
    with tracking.stage_run(reg.experiment, "evaluate", parent_run_id, tags) as run_id:
        params = {"eval": config.eval.model_dump(), "placement": placement.to_dict(), "prompts": prompts}
        log_inputs(run_id, params, suites, eval_path)
        cache_root = str(llmops_home() / "cache" / ("eval-fresh" if fresh else "eval") / (run_id if fresh else ""))
        results = EvalResults(
            {
                label: evaluate_model.with_options(name=f"evaluate-{label}")(
                    c.folder,
                    suites,
                    config.eval,
                    cache_root,
                    placement,
                    c.prompt.template,
                    c.base,
                    run_id,
                    retime and label in TIMED_AGAINST,
                )
                for label, c in who.items()
            }
        )
        if config.eval.harness_tasks:
            for label, c in who.items():
                results.models[label] |= evaluate_harness.with_options(name=f"harness-{label}")(
                    c.folder, config.eval.harness_tasks, eval_path, config.eval, c.prompt.template, placement, c.base
                )
        log_results(run_id, results, config.gate.primary)
        report = summary_markdown(results.summary())
        logger.info("\n" + report)
        create_markdown_artifact(
            report, key="eval-scores", description="Scores per suite and model, same items for every model"
        )
        champion = who.get("champion")
        return Evaluation(
            run_id=run_id,
            results=results,
            eval_path=eval_path or "",
            prompts=prompts,
            model_version=candidate.version.version if candidate.version else None,
            champion_version=champion.version.version if champion and champion.version else None,
        )
