"""Every flow as a Prefect deployment, so the Prefect UI shows each as a form a person can fill.

    PREFECT_API_URL=http://127.0.0.1:4200/api llmops serve

Each flow takes one validated `RunConfig` (the form starts from configs/nightly.yaml, every field
with its default and description) plus plain references a person can type: a dataset hash or
`latest`, a train run id, `name@alias`. Every parameter has a default, so a schedule, or a person
pressing "Run" without opening the form, starts a valid run. The nightly deployment runs on a cron
schedule (02:00 UTC unless `--cron` says otherwise); the monitor daily. For work pools and workers
instead of a serving process, see infra/prefect.yaml and `llmops worker`.
"""

from __future__ import annotations

NIGHTLY_CRON = "0 2 * * *"
MONITOR_CRON = "0 6 * * *"

DESCRIPTIONS = {
    "nightly": "Curate, train, evaluate and promote, every night.",
    "curate": "Curate the config's inputs into a dataset named by its content hash.",
    "train": "Fine-tune on a curated dataset (hash or latest); registers the result as challenger.",
    "evaluate": "Score a model (NAME@ALIAS, NAME/VERSION) against the champion and the base, on the same items.",
    "promote": "Gate the version a train run registered; move champion only if it passes.",
    "prompt": "Gate a prompt version on the champion with the model gate's statistics; move production if it passes.",
    "monitor": "Re-evaluate the champion and judge it against its promotion scores; roll back on a regression if configured.",
}
# The drift check takes plain fields (reference, current file, thresholds' config) and builds its own deployment.


def flows_by_name() -> dict:
    from flows.curate import curate_flow
    from flows.evaluate import evaluate_flow
    from flows.monitor import monitor_flow
    from flows.nightly import nightly_flow
    from flows.promote import promote_flow
    from flows.prompt import prompt_flow
    from flows.train import train_flow

    return {"nightly": nightly_flow, "curate": curate_flow, "train": train_flow, "evaluate": evaluate_flow,
            "promote": promote_flow, "prompt": prompt_flow, "monitor": monitor_flow}


def build_deployments(cron: str = NIGHTLY_CRON) -> list:
    schedules = {"nightly": cron, "monitor": MONITOR_CRON}
    out = []
    for name, fl in flows_by_name().items():
        kwargs = {"cron": schedules[name]} if name in schedules else {}
        out.append(fl.to_deployment(name=name, tags=["llmops"] + (["scheduled"] if name in schedules else []),
                                    description=DESCRIPTIONS[name], **kwargs))
    from flows.drift import drift_deployment

    return out + [drift_deployment()]


def serve(cron: str = NIGHTLY_CRON) -> None:
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(cron))
