"""Times the nightly pipeline, stage by stage, on the embedded default; prints figures.

    python bench/pipeline.py [--set train.sft.max_steps=100 ...] [--json]

Runs in a fresh temporary LLMOPS_HOME, so the base-model build and Prefect's first start-up are
part of the figures (a second run in the same home skips the build). Stage times come from the
MLflow runs' own start and end times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    os.environ["LLMOPS_HOME"] = tempfile.mkdtemp(prefix="llmops-bench-")
    from core.paths import setup_environment
    from llmops.home import quiet_libraries

    setup_environment()
    quiet_libraries()
    from configs.load import load_config
    from flows.nightly import nightly_flow
    from registry.tracking import client

    config = load_config(None, args.overrides)
    start = time.perf_counter()
    result = nightly_flow(config)
    wall = time.perf_counter() - start
    c = client()
    stages = {}
    run_ids = {
        "curate": result["curate"].run_id,
        "train": result["train"].run_id,
        "evaluate": result["evaluate"].run_id,  # the evaluate flow hands on a typed Evaluation
        "promote": result["promote"]["run_id"],
    }
    for stage, run_id in run_ids.items():
        info = c.get_run(run_id).info
        stages[stage] = (info.end_time - info.start_time) / 1000
    figures = {
        "wall_s": round(wall, 1),
        **{f"{k}_s": round(v, 1) for k, v in stages.items()},
        "sft_s": round(result["train"].metrics.get("sft/seconds", 0.0), 1),
        "dpo_s": round(result["train"].metrics.get("dpo/seconds", 0.0), 1),
        "rows_read": result["curate"].read,
        "rows_kept": result["curate"].kept,
        "primary_metric": config.gate.primary,
        "primary_base": result["base_score"],
        "primary_candidate": result["candidate_score"],
        "gain_over_base": round(result["gain_over_base"], 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
