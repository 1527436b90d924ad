"""Evaluating one model on several suites: generate (resumably), score, summarise.

Generation results are cached per item, keyed by the model's content hash, the prompt template,
the precision it generated in and the suite's version, so an evaluation interrupted at item 900 of
1,000 resumes at 900, and a champion that was already scored on a frozen suite is not generated
again. The model is loaded once, on the device the placement names, and released at the end, so
the next model evaluated has the GPU to itself.
"""

from __future__ import annotations

import hashlib
import statistics
from pathlib import Path

from configs.prompts import IDENTITY
from configs.schema import EvalConfig
from tasks.evaluate.cache import ItemCache, model_key
from tasks.evaluate.ops import measure_generation, summarise_ops
from tasks.evaluate.safety import summarise_probes
from tasks.evaluate.suites import Suite, corpus_scores, score_outputs
from tasks.model.load import Placement, generation_placement
from tasks.prompts import render_prompt

# The model's prompt template frames the task suites it was trained for; the bundled suites are asked plainly.
TASK_SUITES = {"arithmetic", "held-out"}
MIN_NEW_TOKENS = {"json-format": 64, "safety": 32}


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
) -> dict:
    """Scores one model on every suite. `template` is the model's prompt (applied to the task suites);
    `base` overrides the base an adapter names (a local copy of it)."""
    placement = placement or Placement()
    keys = {True: cache_key(model_dir, placement, template), False: cache_key(model_dir, placement)}
    try:
        out = _evaluate_suites(model_dir, suites, cfg, Path(cache_root), keys, placement, template, base)
    finally:
        from tasks.model.load import release

        release()
    return {"model_key": keys[True], "suites": out, "placement": generation_placement(model_dir, placement).to_dict()}


def _evaluate_suites(model_dir, suites, cfg, cache_root, keys, placement, template, base) -> dict[str, dict]:
    loaded = None
    out: dict[str, dict] = {}
    for suite in suites:
        cache = ItemCache(cache_root, keys[suite.name in TASK_SUITES], suite)
        pending = cache.pending_items()
        if pending and loaded is None:
            from tasks.model.load import load_for_generation

            loaded = load_for_generation(model_dir, placement, base)
        suite_template = template if suite.name in TASK_SUITES else IDENTITY
        max_new = max(cfg.max_new_tokens, MIN_NEW_TOKENS.get(suite.name, 0))
        for start in range(0, len(pending), cfg.batch_size):
            chunk = pending[start : start + cfg.batch_size]
            records = measure_generation(
                *loaded, [render_prompt(suite_template, i["question"]) for i in chunk], max_new, cfg.batch_size
            )
            cache.put_many([{"id": item["id"], **rec} for item, rec in zip(chunk, records)])
        rows = cache.results()
        scores = score_outputs(suite, [r["output"] for r in rows])
        ops = summarise_ops(rows, cfg.cost)
        refs = [i.get("reference") or (i["target"] if suite.scorer == "reference" else None) for i in suite.items]
        out[suite.name] = {
            "version": suite.version,
            "n": len(rows),
            "ids": [i["id"] for i in suite.items],
            "groups": [i.get("group") for i in suite.items] if any(i.get("group") for i in suite.items) else None,
            "scores": scores,
            "means": {m: statistics.fmean(v) for m, v in scores.items()}
            | corpus_scores(suite, [r["output"] for r in rows]),
            "outputs": [r["output"] for r in rows],
            "ops": {k: v for k, v in ops.items() if isinstance(v, (int, float))},
            "probes": summarise_probes(suite.items, scores["probe_pass"]) if "probe_pass" in scores else None,
            "resumed_items": len(suite.items) - len(pending),
            "bleu_stats": bleu_stats([r["output"] for r in rows], refs) if all(refs) else None,
        }
    del loaded  # the caller's release() then frees the GPU for the next model
    return out


def bleu_stats(outputs: list[str], references: list[str]) -> list[list[float]]:
    """Per-item BLEU sufficient statistics, so the gate can bootstrap corpus BLEU over items."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    return [[float(x) for x in bleu._extract_corpus_statistics([o], [[r]])[0]] for o, r in zip(outputs, references)]
