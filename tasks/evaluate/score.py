"""Scoring one model on an eval set: generate, read the final answers, exact match per item."""

from __future__ import annotations

import json
import statistics
from functools import lru_cache
from pathlib import Path

from prefect import task

from configs.schema import EvalConfig
from tasks.evaluate.answers import extract_final_number
from tasks.evaluate.generate import generate_answers, load_for_eval

METRICS_DIR = Path(__file__).parent / "metrics"


@lru_cache(maxsize=None)
def load_metric(name: str):
    """Loads one of the project's own `evaluate` modules by path; never reaches for a hub.

    A metric that cannot load raises: a run must fail loudly rather than skip a score.
    """
    import evaluate

    return evaluate.load(str(METRICS_DIR / name))


def read_eval_items(path: str, limit: int | None = None) -> list[dict]:
    """Eval rows: `question` plus `target`, or GSM8K's `answer` ending in `#### N`."""
    items = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            target = row.get("target") or extract_final_number(str(row.get("answer", "")))
            if not isinstance(row.get("question"), str) or not target:
                raise ValueError(
                    f"{path} line {lineno}: an eval item needs 'question' and 'target', "
                    f"or GSM8K's 'answer' ending in '#### N' (found keys: {sorted(row)})"
                )
            items.append({"id": str(row.get("id", lineno)), "question": row["question"], "target": str(target)})
            if limit and len(items) >= limit:
                break
    return items


def score_model_fn(model_dir: str, items: list[dict], template: str, cfg: EvalConfig) -> dict:
    model, tokenizer = load_for_eval(model_dir)
    outputs = generate_answers(model, tokenizer, [i["question"] for i in items], template, cfg.max_new_tokens, cfg.batch_size)
    predictions = [extract_final_number(o["output"]) for o in outputs]
    result = load_metric("exact_match").compute(predictions=predictions, references=[i["target"] for i in items])
    latencies = [o["batch_seconds"] for o in outputs]
    return {
        "model_dir": model_dir,
        "exact_match": result["exact_match"],
        "scores": result["scores"],
        "rows": [
            {"id": i["id"], "question": i["question"], "target": i["target"], "output": o["output"],
             "prediction": p, "exact_match": s}
            for i, o, p, s in zip(items, outputs, predictions, result["scores"])
        ],
        "seconds_per_item": statistics.fmean(latencies) if latencies else 0.0,
        "output_tokens_per_item": statistics.fmean(o["output_tokens"] for o in outputs) if outputs else 0.0,
    }


@task(name="score-model")
def score_model(model_dir: str, items: list[dict], template: str, cfg: EvalConfig) -> dict:
    return score_model_fn(model_dir, items, template, cfg)
