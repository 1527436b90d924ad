"""Where a flow's mapped tasks run, chosen by config: a thread pool here, or a Dask cluster.

The flows never name a runner; `with_runner` wraps a flow with the one the config asks for, so the
same flow code runs on a laptop's threads or on a team's Dask cluster. A real cluster's workers
need the project installed and `PREFECT_API_URL` / `MLFLOW_TRACKING_URI` set (see infra/dask/).
"""

from __future__ import annotations

from configs.schema import CurateConfig


def task_runner_for(settings: CurateConfig):
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        # In-process workers: a process-based local cluster would start one temporary Prefect
        # server per worker when no Prefect server is configured.
        return DaskTaskRunner(cluster_kwargs={"n_workers": 2, "processes": False, "dashboard_address": None})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=max(1, min(settings.shards, 8)))


def with_runner(flow, settings: CurateConfig):
    return flow.with_options(task_runner=task_runner_for(settings))
