"""`llmops stop`: end the Prefect server that llmops started for this LLMOPS_HOME.

The server outlives the commands that use it (see llmops/server.py), so that the next command
starts at once and its UI keeps showing the runs; this is how it ends.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "stop",
        help="stop the Prefect server that llmops started for this LLMOPS_HOME",
        epilog="The server starts again by itself with the next command that runs a flow.",
    )
    p.add_argument("--force", action="store_true", help="stop it even while llmops commands are using it (they fail)")
    p.set_defaults(run=run)


def run(args) -> int:
    from llmops.server import stop_server

    print(stop_server(force=args.force))
    return 0
