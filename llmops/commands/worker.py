"""`llmops worker`: every flow deployed to a process work pool, and a worker that runs them.

    llmops worker                    # the home's Prefect server (started if need be); pool llmops-local
    PREFECT_API_URL=http://team-host:4200/api llmops worker          # a team's server instead

Without PREFECT_API_URL it uses this home's own Prefect server, the one `make run` and every
llmops command on the home use (llmops/server.py), so the UI a person opens shows the forms and the
command-line history side by side; the address is printed. While the worker runs, that server does
not stop for idleness. Unlike `llmops serve`, the deployments stay on the server with their
schedules when this process stops, and any worker polling the pool runs them (`prefect worker start
--pool llmops-local` does the same as the last step here). Each flow run is a child process that
inherits this process's environment: the same LLMOPS_HOME and MLFLOW_TRACKING_URI, whatever folder
the run starts in. Ctrl-C (or SIGTERM) stops the worker and cancels what it was running, so that no run stays
`Running` in the UI. The path through the UI, form by form: docs/deployments.md.
"""

from __future__ import annotations

import os
import socket
import sys

from core.errors import UserError

API_HINT = (
    "unset LLMOPS_PREFECT_SERVER to use this home's own server, or export PREFECT_API_URL=http://HOST:4200/api "
    "(a server you started with `prefect server start`)"
)


def register(sub) -> None:
    from flows.deploy import DEFAULT_POOL, NIGHTLY_CRON

    p = sub.add_parser(
        "worker",
        help="deploy every flow to a process work pool and run a worker on it (on this home's Prefect server, "
        "or PREFECT_API_URL's)",
    )
    p.add_argument(
        "--pool",
        default=DEFAULT_POOL,
        metavar="NAME",
        help=f"process work pool to deploy to and poll; created if missing (default: {DEFAULT_POOL})",
    )
    p.add_argument("--cron", default=NIGHTLY_CRON, help="schedule of the nightly deployment (default: 02:00 UTC)")
    p.set_defaults(run=run)


def run(args) -> int:
    from core.paths import llmops_home

    url = server_url()
    check_server(url)
    from llmops.home import prepare_home

    prepare_home()  # the MLflow store created once, runs a killed worker left RUNNING marked KILLED
    # Flow runs start in the checkout (the deployments' pull step): a relative home would move with them.
    os.environ["LLMOPS_HOME"] = str(llmops_home())
    from flows.deploy import deploy_to_pool

    names = deploy_to_pool(args.pool, args.cron)
    print(f"deployed to work pool {args.pool}: {', '.join(names)}", file=sys.stderr)
    print(f"runs: the Prefect UI ({url.removesuffix('/api')}), Deployments; state: {llmops_home()}", file=sys.stderr)
    print(f"worker on {args.pool} polling; Ctrl-C stops it", file=sys.stderr)
    name = f"llmops-{socket.gethostname()}-{os.getpid()}"
    try:
        start_worker(args.pool, name)
    except KeyboardInterrupt:  # a second Ctrl-C while it stops
        pass
    stopped = stop_runs(args.pool, name)
    if stopped:
        print(f"cancelled the runs it had in progress: {', '.join(stopped)}", file=sys.stderr)
    print("worker stopped", file=sys.stderr)
    return 0


def server_url() -> str:
    """PREFECT_API_URL, else the home's own server (started if need be): one that the UI and the
    worker share. Prefect's per-process temporary server would vanish with this process."""
    from llmops.server import MODE_VAR, ensure_server, read_state

    url = os.environ.get("PREFECT_API_URL", "") or ensure_server() or ""
    if not url:
        raise UserError(
            "PREFECT_API_URL",
            f"is not set and {MODE_VAR}=ephemeral; `llmops worker` needs a Prefect server that the UI and the "
            "worker share (a temporary one would vanish with this process)",
            API_HINT,
        )
    state = read_state()
    if state and state.get("api_url") == url:
        print(f"the Prefect server of this home: {state['ui_url']}", file=sys.stderr)
    return url


def check_server(url: str) -> None:
    """One clear line when the server is not there, before anything else touches it."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise UserError(
            f"PREFECT_API_URL={url}",
            f"no Prefect server answers there ({type(problem).__name__})",
            "start that server, or unset PREFECT_API_URL to use this home's own server",
        )


def start_worker(pool: str, name: str) -> None:
    """Polls the pool until Ctrl-C (SIGINT) or SIGTERM; each flow run is a child process in its own
    process group. The worker is cancelled until it has ended: asyncio cancels only once per
    Ctrl-C, and a cancellation that reaches Prefect's worker in the middle of some of its calls is
    swallowed, after which it polled on and let its run finish (seen on a busy machine)."""
    import asyncio
    import signal

    from prefect.workers.process import ProcessWorker

    async def work() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker = asyncio.ensure_future(
            ProcessWorker(work_pool_name=pool, name=name, create_pool_if_not_found=False).start()
        )
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        while not worker.done():
            worker.cancel()
            await asyncio.wait({worker}, timeout=2)
        if not worker.cancelled() and worker.exception() is not None:
            raise worker.exception()

    asyncio.run(work())


OPEN_STATES = ("PENDING", "RUNNING", "PAUSED", "CANCELLING")


def stop_runs(pool: str, worker_name: str) -> list[str]:
    """Ends what the worker was running when it stopped. Prefect's worker signals each run's process
    group as it exits but leaves the run `Running` on the server for good; here every such run, and
    the subflow runs inside it, is cancelled with the reason, and a process still alive is killed.
    Returns the names of the runs cancelled."""
    import contextlib
    import signal

    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
        WorkPoolFilter,
        WorkPoolFilterName,
    )
    from prefect.states import Cancelled

    still_open = FlowRunFilterState(type=FlowRunFilterStateType(any_=list(OPEN_STATES)))
    stopped = []
    with get_client(sync_client=True) as client:
        runs = [
            run
            for run in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=still_open),
                work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
            )
            if run.labels.get("prefect.worker.name") == worker_name
        ]
        for run in runs:
            if str(run.infrastructure_pid or "").isdigit():  # the leader of the run's own process group
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(run.infrastructure_pid), signal.SIGKILL)
        while runs:
            for run in runs:
                client.set_flow_run_state(
                    run.id, Cancelled(message=f"stopped with worker {worker_name} (Ctrl-C)"), force=True
                )
                stopped.append(run.name)
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=still_open, parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id for run in runs])
                )
            )
    return stopped
