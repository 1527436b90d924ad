"""The per-row steps by config name, each `step(rows, stats) -> rows` over one chunk.

Each decides every row alone, so the pipeline may run it in any process; what a step reports it
puts on its `StepStats` (`stat_update`, `drop`), which the runner adds up. The ordered steps
(exact and near dedup, synthesize) live in `tasks.data.pipeline.OrderedSteps`.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from configs.schema import CurateConfig
from tasks.data.decontaminate import NgramIndex, build_ngram_index, decontaminate
from tasks.data.filters import filter_length
from tasks.data.pii import mask_rows
from tasks.data.quality import QualityStats, filter_quality
from tasks.data.read import read_objects
from tasks.data.records import Row
from tasks.data.stats import StepStats
from tasks.data.validate import validate_rows

RowStep = Callable[[Iterable[Row], StepStats], Iterator[Row]]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, v in value.items():
            if key not in ("id", "role", "from"):  # labels, not text a model could learn
                yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def eval_index(paths: list[str], n: int, items: dict[str, int]) -> NgramIndex:
    """Every record of every eval set, as the joined text of all its string fields.

    Eval sets come in shapes no training format covers (question + target, prompt only), and an
    eval split a later stage will reject must not stop curation, so records are not mapped to rows:
    whatever text an item holds is what must not leak. `items` gets the records per set.
    """

    def texts() -> Iterator[tuple[str, str]]:
        for path in paths:
            items[path] = 0
            for fallback_id, obj in read_objects(Path(path)):
                items[path] += 1
                yield str(obj.get("id") or fallback_id), "\n".join(_strings(obj))

    return build_ngram_index(texts(), n)


def row_steps(settings: CurateConfig, eval_paths: list[str]) -> dict[str, RowStep]:
    s = settings
    index: list[NgramIndex] = []
    items: dict[str, int] = {}
    building = threading.Lock()  # shard tasks on threads share these steps

    def contamination(rows: Iterable[Row], stats: StepStats) -> Iterator[Row]:
        with building:
            if not index:  # built when first needed, once per process
                index.append(eval_index(eval_paths, s.decontaminate_n, items))
        stats.info["eval_items"] = dict(items)
        hits: Counter[str] = Counter()
        yield from decontaminate(rows, stats, index[0], s.decontaminate_n, hits)
        for item, n in hits.items():
            stats.stat_update(f"eval_hit/{item}", value=n)

    def quality(rows: Iterable[Row], stats: StepStats) -> Iterator[Row]:
        languages: Counter[str] = Counter()
        q = QualityStats()
        yield from filter_quality(rows, stats, s.quality, languages, q)
        for label, counts in (("language", languages), ("seen", q.seen)):
            for key, n in counts.items():
                stats.stat_update(f"{label}/{key}", value=n)
        for reason, examples in q.examples.items():
            stats.examples.setdefault(reason, []).extend(examples[: 3 - len(stats.examples.get(reason, []))])

    def pii(rows: Iterable[Row], stats: StepStats) -> Iterator[Row]:
        if not s.mask_pii:
            yield from rows
            return
        counts: Counter[str] = Counter({"email": 0, "phone": 0})
        yield from mask_rows(rows, counts)
        for kind, n in counts.items():
            stats.stat_update(f"pii/{kind}", value=n)

    return {
        "validate": validate_rows,
        "length": lambda rows, stats: filter_length(rows, stats, s.min_chars, s.max_chars),
        "quality": quality,
        "pii": pii,
        "decontaminate": contamination,
    }
