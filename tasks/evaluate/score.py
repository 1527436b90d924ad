"""The project's offline `evaluate` metric modules, and reading eval items (demo or GSM8K format)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from tasks.evaluate.answers import extract_final_number

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
