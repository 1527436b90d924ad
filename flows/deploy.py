"""Every stage as a Prefect deployment, so the Prefect UI shows each as a form a person can fill.

    llmops worker      the home's Prefect server (or PREFECT_API_URL's): deploys to a process pool, runs them
    llmops serve       the same deployments, served from one process

Each form holds what its stage reads (flows/forms.py): the references a person types (a dataset hash
or `latest`, a train run id, `name@alias`), the config file the other sections come from, and the
stage's own config sections, prefilled from the worker's config. nightly and curate take the whole
`RunConfig`. Every parameter has a default, so a schedule, or a person pressing "Run" without
opening the form, starts a valid run. The nightly deployment runs on a cron schedule (02:00 UTC
unless `--cron` says otherwise), the monitor and the drift check daily.

`build_deployments` is the one list both commands use, and infra/prefect.yaml writes the same
deployments out for `prefect deploy --all` (tests check that they agree). For a work pool each
deployment also names the checkout its code is in: the worker changes into that folder (the pull
step) and imports the flow from there, so a run executes the code of the checkout `llmops worker`
was started from.
"""

from __future__ import annotations

from pathlib import Path

# Plain constants only at import: `llmops --help` reads them without importing Prefect.
NIGHTLY_CRON = "0 2 * * *"
MONITOR_CRON = "0 6 * * *"
DRIFT_CRON = "0 6 * * *"
DEFAULT_POOL = "llmops-local"
# The checkout that holds flows/: what a worker changes into before it loads a flow.
SOURCE = Path(__file__).resolve().parents[1]

DESCRIPTIONS = {
    "nightly": "Curate, train, evaluate and promote, every night.",
    "curate": "Curate the config's inputs into a dataset named by its content hash.",
    "train": "Fine-tune on a curated dataset (hash or latest); registers the result as challenger.",
    "evaluate": "Score a model (NAME@ALIAS, NAME/VERSION) against the champion and the base, on the same items.",
    "promote": "Gate the version a train run registered; move champion only if it passes.",
    "prompt": "Gate a prompt version on the champion with the model gate's statistics; move production if it passes.",
    "monitor": "Re-evaluate the champion and judge it against its promotion scores; "
    "roll back on a regression if configured.",
    "drift": "Daily input drift check against the training data; fails when flagged.",
}
# Two nightlies at once would train into the same home and race for the same aliases.
CONCURRENCY = {"nightly": 1}


def flows_by_name() -> dict:
    """What each deployment runs: the whole-config flows, and the per-stage forms."""
    from flows.curate import curate_flow
    from flows.forms import FORMS
    from flows.nightly import nightly_flow

    return {"nightly": nightly_flow, "curate": curate_flow, **FORMS}


def build_deployments(cron: str = NIGHTLY_CRON, source: Path | None = None) -> list:
    """Every stage's deployment. With `source` (a checkout) each is set up for a work pool: the
    worker runs it from that folder; without, for `serve`, which runs them in its own process.

    Entrypoints are module paths (`flows.forms.evaluate_form`), not files: Prefect loads a flow
    file as a top-level module named after the file, with flows/ first on sys.path, so
    flows/evaluate.py would stand in for the `evaluate` library and every evaluation would fail.
    """
    from prefect.deployments.runner import EntrypointType

    schedules = {"nightly": cron, "monitor": MONITOR_CRON, "drift": DRIFT_CRON}
    out = []
    for name, fl in flows_by_name().items():
        kwargs = {"cron": schedules[name]} if name in schedules else {}
        if name in CONCURRENCY:
            kwargs["concurrency_limit"] = CONCURRENCY[name]
        out.append(
            fl.to_deployment(
                name=name,
                tags=["llmops"] + (["scheduled"] if name in schedules else []),
                description=DESCRIPTIONS[name],
                entrypoint_type=EntrypointType.MODULE_PATH,
                **kwargs,
            )
        )
    if source is not None:
        from prefect.runner.storage import LocalStorage

        for deployment in out:
            deployment.storage = LocalStorage(str(source))
    return out


def serve(cron: str = NIGHTLY_CRON) -> None:
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(cron))


def ensure_process_pool(pool: str) -> bool:
    """Creates the process work pool `pool` unless it exists; True when it was created."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    from core.errors import UserError

    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template()
                )
            )
            return True
    if found.type != "process":
        raise UserError(
            f"--pool {pool}",
            f"is a {found.type!r} work pool; `llmops worker` runs flows as local processes",
            "give the name of a process pool, or a new name to create one",
        )
    return False


def deploy_to_pool(pool: str = DEFAULT_POOL, cron: str = NIGHTLY_CRON, source: Path = SOURCE) -> list[str]:
    """Creates the pool if missing and (re)deploys every flow to it; returns the deployments' full names."""
    ensure_process_pool(pool)
    names = []
    for deployment in build_deployments(cron, source):
        deployment.apply(work_pool_name=pool)
        names.append(f"{deployment.flow_name}/{deployment.name}")
    return names


def keep_prompt_placeholders() -> dict[str, str]:
    """A build step for `prefect deploy` (infra/prefect.yaml). Prefect fills `{{ name }}` in the
    file from the build steps' outputs and empties one it has no value for, so the `{{question}}`
    of a prompt template written in a deployment's config would vanish (and the config check then
    fails every run). Given each prompt field as its own value, the template comes through as written."""
    from configs.prompts import FIELDS

    return {field: "{{" + field + "}}" for field in FIELDS}
