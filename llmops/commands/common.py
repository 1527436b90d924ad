"""What every command shares: the config arguments, loading the config, where MLflow records."""

from __future__ import annotations

import argparse
import os


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="PATH", help="YAML run config (default: $LLMOPS_CONFIG if set, else configs/nightly.yaml)"
    )
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override one config value, e.g. --set train.sft.max_steps=20 (repeatable)",
    )


def load(args):
    """The validated config; then the home is prepared for flows (server, store, dead runs)."""
    from configs.load import load_config
    from llmops.home import prepare_home

    config = load_config(args.config, args.overrides)
    prepare_home()
    return config


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", "")
