"""Evaluating one model on several suites: generate (resumably), score, time, summarise.

Answers are cached per item, keyed by the model's content hash, the prompt template, the precision
it generated in and the suite's version, so an evaluation interrupted at item 900 of 1,000 resumes
at 900, and a champion already scored on a frozen suite is not generated again. Timings are not
cached: a cached answer's time was measured in another run, on another load, and would stand in for
a fresh one (a champion once showed a p95 of 5.23 s beside its identical retrain's 0.092 s). So the
operational figures of a run come only from the batches it generated itself, and with `retime` every
batch is generated in this run, cached answers included, so two models compared on speed are timed
on the same items, in the same batches, in the same run. The model is loaded once, on the device the
placement names, and released at the end, so the next model evaluated has the GPU to itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from configs.prompts import IDENTITY
from configs.schema import EvalConfig
from core.errors import UserError
from tasks.evaluate.cache import ItemCache, model_key
from tasks.evaluate.corpus import bleu_stats
from tasks.evaluate.ops import batch_cost_usd, measure_generation, summarise_ops
from tasks.evaluate.results import BatchTiming, ProbeTally, SuiteResult
from tasks.evaluate.safety import summarise_probes
from tasks.evaluate.suites import BUNDLED, TASK_SUITES, Suite, load_suite, score_outputs
from tasks.model.load import Placement, generation_placement
from tasks.prompts import render_prompt

MIN_NEW_TOKENS = {"json-format": 64, "safety": 32}


def needs_eval_split(cfg: EvalConfig) -> bool:
    """Whether any configured suite or project lm-eval task (`llmops_*`) reads the run's eval split."""
    return any(name in TASK_SUITES for name in cfg.suites) or any(t.startswith("llmops_") for t in cfg.harness_tasks)


def load_suites(cfg: EvalConfig, eval_path: str | None) -> list[Suite]:
    """The configured suites; the task suites read `eval_path`, the others their bundled files."""
    try:
        return [load_suite(name, eval_path if name in TASK_SUITES else None, cfg.limit) for name in cfg.suites]
    except ValueError as err:  # the suites' messages name the file, the line and what an item needs
        raise UserError("eval items", str(err), "fix the file, or evaluate on another (--data FILE)") from None


def suite_source(suite: Suite, eval_path: str | None) -> str:
    """The file a suite's items were read from."""
    return str(eval_path if suite.name in TASK_SUITES else BUNDLED[suite.name])


def suites_signature(suites: list[Suite]) -> str:
    """Names and item versions: two evaluations with the same signature asked the same questions."""
    return ",".join(sorted(f"{s.name}@{s.version}" for s in suites))


def cache_key(model_dir: str, placement: Placement, template: str = IDENTITY) -> str:
    """The model's content key, plus what else changes its answers: the number format, and the prompt
    template (for the task suites it frames)."""
    key = model_key(model_dir)
    placement = generation_placement(model_dir, placement)
    if (placement.precision, placement.quant_bits) != ("fp32", None):
        key += f"-{placement.precision}-{placement.quant_bits or 16}"
    if template != IDENTITY:
        key += "-p" + hashlib.sha256(template.encode()).hexdigest()[:8]
    return key


def evaluate_model(
    model_dir: str,
    suites: list[Suite],
    cfg: EvalConfig,
    cache_root: str,
    placement: Placement | None = None,
    template: str = IDENTITY,
    base: str | None = None,
    run_id: str = "",
    retime: bool = False,
) -> dict[str, SuiteResult]:
    """Scores one model on every suite. `template` is the model's prompt (applied to the task suites);
    `base` overrides the base an adapter names (a local copy of it); `run_id` names the run the
    timings belong to; `retime` generates cached items again, for their timings only."""
    placement = placement or Placement()
    keys = {True: cache_key(model_dir, placement, template), False: cache_key(model_dir, placement)}
    state = _Generator(model_dir, placement, base)
    try:
        return {
            suite.name: _evaluate_suite(
                state,
                suite,
                cfg,
                ItemCache(Path(cache_root), keys[suite.name in TASK_SUITES], suite),
                template,
                run_id,
                retime,
            )
            for suite in suites
        }
    finally:
        state.loaded = None
        from tasks.model.load import release

        release()


class _Generator:
    """Loads the model on first use: a run whose every answer is cached and untimed loads nothing."""

    def __init__(self, model_dir: str, placement: Placement, base: str | None):
        self.model_dir, self.placement, self.base, self.loaded = model_dir, placement, base, None
        self.warmed: set[int] = set()  # the max_new_tokens this model has been warmed up at

    def generate(self, prompts: list[str], max_new_tokens: int) -> list[dict]:
        if self.loaded is None:
            from tasks.model.load import load_for_generation

            self.loaded = load_for_generation(self.model_dir, self.placement, self.base)
        warm_up = max_new_tokens not in self.warmed
        self.warmed.add(max_new_tokens)
        return measure_generation(*self.loaded, prompts, max_new_tokens, len(prompts), warm_up=warm_up)


def _evaluate_suite(
    generator: _Generator, suite: Suite, cfg: EvalConfig, cache: ItemCache, template: str, run_id: str, retime: bool
) -> SuiteResult:
    pending = {item["id"] for item in cache.pending_items()}
    suite_template = template if suite.name in TASK_SUITES else IDENTITY
    max_new = max(cfg.max_new_tokens, MIN_NEW_TOKENS.get(suite.name, 0))
    batches: list[BatchTiming] = []
    timed: list[dict] = []
    for index, start in enumerate(range(0, len(suite.items), cfg.batch_size)):
        chunk = suite.items[start : start + cfg.batch_size]
        todo = chunk if retime else [item for item in chunk if item["id"] in pending]
        if not todo:
            continue
        records = generator.generate([render_prompt(suite_template, item["question"]) for item in todo], max_new)
        # Only answers are cached; a re-timed item keeps the answer it was scored with before.
        cache.put_many(
            [
                {
                    "id": item["id"],
                    "output": r["output"],
                    "input_tokens": r["input_tokens"],
                    "output_tokens": r["output_tokens"],
                }
                for item, r in zip(todo, records)
                if item["id"] in pending
            ]
        )
        timed += records
        batches.append(
            BatchTiming(
                index, [item["id"] for item in todo], records[0]["latency_s"], batch_cost_usd(records, cfg.cost)
            )
        )
    outputs = [r["output"] for r in cache.results()]
    scores = score_outputs(suite, outputs)
    ops = {k: v for k, v in summarise_ops(timed, cfg.cost).items() if isinstance(v, (int, float))} if timed else {}
    refs = [i.get("reference") or (i["target"] if suite.scorer == "reference" else None) for i in suite.items]
    probes = summarise_probes(suite.items, scores["probe_pass"]) if "probe_pass" in scores else {}
    return SuiteResult(
        version=suite.version,
        ids=[i["id"] for i in suite.items],
        scores=scores,
        model_key=cache.model_key,
        groups=[i.get("group") for i in suite.items] if any(i.get("group") for i in suite.items) else None,
        outputs=outputs,
        ops=ops | {"timed_items": len(timed), "untimed_items": len(suite.items) - len(timed)},
        probes={kind: ProbeTally(p["passed"], p["total"]) for kind, p in probes.items()},
        bleu_stats=bleu_stats(outputs, refs) if all(refs) else None,
        batches=batches,
        timed_in=run_id if timed else "",
        cached_items=len(suite.items) - len(pending),
    )
