"""`llmops serve`: every flow as a Prefect deployment, for the UI's forms and the nightly schedule.

Served from this one process, on the home's own Prefect server (or PREFECT_API_URL's), the one the
other llmops commands use: `llmops worker` does the same on a work pool, and keeps the deployments.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve every flow as a Prefect deployment (on this home's Prefect server, or PREFECT_API_URL's)"
    )
    p.add_argument("--cron", default="0 2 * * *", help="schedule of the nightly deployment (default: 02:00 UTC)")
    p.set_defaults(run=run)


def run(args) -> int:
    from llmops.commands.worker import check_server, server_url

    check_server(server_url())
    from llmops.home import prepare_home

    prepare_home()
    from flows.deploy import serve

    serve(args.cron)
    return 0
