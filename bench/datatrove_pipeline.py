"""datatrove's nearest equivalent of `llmops curate`, the baseline `bench/curate.py` runs beside it.

    .venv-datatrove/bin/python bench/datatrove_pipeline.py --input docs.jsonl --work /tmp/dt

Runs in datatrove's own virtualenv (never the project's: datatrove is no dependency of llmops),
on one core, stage after stage, the way datatrove's MinHash example runs them: signatures of
every document, buckets, clusters, then one pass that drops the duplicates and applies Gopher's
repetition and quality rules and C4's rules, masks e-mails and IPs (its PII formatter) and writes
what is kept. Language ID is off (its fastText model is a download), and so is C4's bad-words
list (also a download). Prints one JSON line: documents in and kept, CPU seconds, wall seconds,
peak RSS. Make the venv with:

    python3.11 -m venv .venv-datatrove && .venv-datatrove/bin/pip install datatrove==0.10.1 spacy==3.8.18 orjson==3.13.0
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="a JSONL file of {'id', 'text'} documents")
    parser.add_argument("--work", required=True, help="a folder for datatrove's intermediate files")
    args = parser.parse_args()

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.formatters import PIIFormatter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    src = Path(args.input)
    work = Path(args.work)
    config = MinhashConfig()

    def reader():
        return JsonlReader(str(src.parent), glob_pattern=src.name, text_key="text", id_key="id")

    def run(pipeline, tasks: int = 1, name: str = "") -> None:
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(work / "logs" / name)).run()

    start_cpu, start = _cpu(), time.perf_counter()
    run([reader(), MinhashDedupSignature(str(work / "sigs"), config=config)], name="signatures")
    run([MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)], config.num_buckets, "buckets")
    run([MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=config)], name="clusters")
    run(
        [
            reader(),
            MinhashDedupFilter(str(work / "remove")),
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            C4QualityFilter(),
            PIIFormatter(),
            JsonlWriter(str(work / "out")),
        ],
        name="filter",
    )
    cpu, wall = _cpu() - start_cpu, time.perf_counter() - start
    docs = sum(1 for _ in open(src, encoding="utf-8"))
    kept = 0
    import gzip

    for path in (work / "out").glob("*"):
        with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as f:
            kept += sum(1 for _ in f)
    peak = max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(
        json.dumps(
            {"docs": docs, "kept": kept, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "peak_rss_mb": peak // 1024}
        )
    )


if __name__ == "__main__":
    main()
