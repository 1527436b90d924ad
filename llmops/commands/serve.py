"""`llmops serve`: every flow as a Prefect deployment, for the UI's forms and the nightly schedule."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve every flow as a Prefect deployment (needs PREFECT_API_URL)")
    p.add_argument("--cron", default="0 2 * * *", help="schedule of the nightly deployment (default: 02:00 UTC)")
    p.set_defaults(run=run)


def run(args) -> int:
    import os

    if not os.environ.get("PREFECT_API_URL"):
        print(
            "error: `llmops serve` needs a Prefect server: start one with `prefect server start` and set\n"
            "  PREFECT_API_URL=http://127.0.0.1:4200/api (a temporary server cannot be seen by the UI)",
            file=sys.stderr,
        )
        return 2
    from flows.deploy import serve

    serve(args.cron)
    return 0
