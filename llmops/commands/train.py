"""`llmops train`: SFT (+ DPO/ORPO/KTO) on a curated dataset; registers the result as `challenger`."""

from __future__ import annotations

from llmops.commands.common import add_config_args, load


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "train",
        help="SFT (+ DPO/ORPO/KTO) on a curated dataset; registers a challenger version",
        epilog="examples:\n"
        "  llmops train                               the newest curation of this config\n"
        "  llmops train --dataset 3f2a9c1d            a dataset hash printed by `llmops curate`\n"
        "  llmops train --set train.preference.method=orpo\n"
        "A killed run resumes from its last checkpoint when the same command runs again.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p)
    p.add_argument(
        "--dataset",
        default="latest",
        metavar="HASH|latest",
        help="curated dataset to train on (default: latest, the newest curation of this config)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    config = load(args)
    from flows.train import train_flow

    t = train_flow(config=config, dataset=args.dataset)
    resumed = " (resumed)" if t["resumed"] else ""
    print(
        f"trained{resumed}: {t['model_name']} v{t['version']} is the challenger  (dataset {t['dataset'][:12]}, "
        f"prompt {t['prompt']})"
    )
    rate = t["metrics"].get("sft/tokens_per_s")
    if rate:
        print(f"SFT: {rate:,.0f} tokens/s, padding {t['metrics'].get('sft/padding_fraction', 0):.0%}")
    print(f"MLflow run: {t['run_id']}")
    print(f"next: llmops evaluate --model {t['model_name']}@challenger   or   llmops promote --train-run {t['run_id']}")
    return 0
