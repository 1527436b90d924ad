"""What a train run reads from and writes to MLflow besides its stage run: the unfinished run it
resumes, and the files each trained stage leaves for a person to read (decoded examples, dropped rows).
"""

from __future__ import annotations

from pathlib import Path

from registry import tracking
from tasks.train.result import StageResult

RESUMABLE = ("KILLED", "FAILED")
RESUME_KEY_TAG = "llmops.resume_key"


def unfinished_run(experiment: str, key: str, runs_dir: Path) -> str | None:
    """An earlier train run of the same work (same `resume_key`) that did not finish, with its folder
    still under `runs_dir`: the run to continue from its last checkpoint."""
    query = f"{tracking.stage_filter('train')} and tags.`{RESUME_KEY_TAG}` = '{key}'"
    for run in tracking.client().search_runs(
        [tracking.ensure_experiment(experiment)], query, order_by=["attributes.start_time DESC"], max_results=5
    ):
        if run.info.status in RESUMABLE and (runs_dir / run.info.run_id).is_dir():
            return run.info.run_id
    return None


def log_stage_files(run_id: str, stage: StageResult) -> None:
    """The stage's decoded training examples, and the rows it left out with their reason, if any."""
    tracking.log_file(run_id, stage.examples, "examples")
    if stage.rows.dropped_prompt_fills_max_length:
        tracking.log_file(run_id, stage.rows.dropped_path, "examples")


def log_summary_metrics(run_id: str, metrics: dict[str, float], resumed: bool) -> None:
    """The run's per-stage figures (tokens/s, loss, rows), at step 0, once even when a resumed run ends."""
    tracking.metric_sink(run_id, resumed)(0, metrics)
