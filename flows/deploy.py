"""Serves every flow as a Prefect deployment, so the Prefect UI shows each as a form to run.

    PREFECT_API_URL=http://127.0.0.1:4200/api llmops serve

Each flow takes one validated `RunConfig`, which Prefect renders as a form with every field and
its default. The nightly deployment runs on a cron schedule (02:00 UTC unless `--cron` says
otherwise). For work pools and workers instead of a serving process, see infra/prefect.yaml.
"""

from __future__ import annotations

NIGHTLY_CRON = "0 2 * * *"


def build_deployments(cron: str = NIGHTLY_CRON) -> list:
    from flows.curate import curate_flow
    from flows.evaluate import evaluate_flow
    from flows.nightly import nightly_flow
    from flows.promote import promote_flow
    from flows.train import train_flow

    tags = ["llmops"]
    return [
        nightly_flow.to_deployment(name="nightly", cron=cron, tags=tags + ["scheduled"],
                                   description="Curate, train, evaluate and promote, every night."),
        curate_flow.to_deployment(name="curate", tags=tags),
        train_flow.to_deployment(name="train", tags=tags),
        evaluate_flow.to_deployment(name="evaluate", tags=tags),
        promote_flow.to_deployment(name="promote", tags=tags),
    ]


def serve(cron: str = NIGHTLY_CRON) -> None:
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(cron))
