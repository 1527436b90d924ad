"""`llmops train`: curate, then SFT (+ preference tuning) with the config's method."""

from __future__ import annotations


from llmops.commands.common import add_config_args, load


def register(sub) -> None:
    p = sub.add_parser("train", help="curate, then SFT (+ DPO) with the config's method")
    add_config_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    config = load(args)
    from flows.curate import run_curate
    from flows.train import train_flow

    curated = run_curate(config)
    t = train_flow(config, curated)
    print(f"trained model: {t['model_dir']}\nMLflow run: {t['run_id']}  (logged model {t['model_uri']})")
    print(f"next: llmops promote --train-run {t['run_id']}")
    return 0
