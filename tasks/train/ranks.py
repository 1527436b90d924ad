"""What each rank runs when a train stage launches its own ranks (`train.num_gpus` or `num_processes` > 1).

    python -m accelerate.commands.launch --config_file infra/accelerate/multi_gpu.yaml --num_processes 2 \
        -m tasks.train.ranks RUN_FOLDER/plans/sft.json

`tasks.train.launch` starts it; a person has no need to. Every rank reads the same plan file and
trains the stage with the plain library. Rank 0 alone writes what the flow reads back: each logged
step as a line of `<stage>_metrics.jsonl` (the flow forwards them to MLflow as they come), the
stage's summary (by the library, as always), and, when the input is at fault, `<stage>_error.json`,
so the flow reports the same one line a run on one rank would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.errors import UserError
from tasks.train.distributed import current, die_with_parent
from tasks.train.plan import TrainPlan, run_plan


def metrics_file(plan: TrainPlan) -> Path:
    return Path(plan.out_dir) / f"{plan.stage}_metrics.jsonl"


def error_file(plan: TrainPlan) -> Path:
    return Path(plan.out_dir) / f"{plan.stage}_error.json"


def write_steps(path: Path):
    """A step sink that appends each logged step to `path`, flushed, for the launching flow to read."""

    def sink(step: int, figures: dict[str, float]) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "figures": figures}) + "\n")

    return sink


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    plan = TrainPlan.read((argv or sys.argv[1:])[0])
    leads = current().leads
    try:
        run_plan(plan, write_steps(metrics_file(plan)) if leads else None)
    except UserError as err:
        if leads:
            error_file(plan).write_text(json.dumps({"subject": err.subject, "problem": err.problem, "fix": err.fix}))
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
