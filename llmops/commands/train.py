"""`llmops train`: SFT (+ DPO/ORPO/KTO) on a curated dataset; registers the result as `challenger`."""

from __future__ import annotations

from llmops.commands.common import add_config_args, add_launch_args, load, relaunch_on_nodes


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "train",
        help="SFT (+ DPO/ORPO/KTO) on a curated dataset; registers a challenger version",
        epilog="examples:\n"
        "  llmops train                               the newest curation of this config\n"
        "  llmops train --dataset 3f2a9c1d            a dataset hash printed by `llmops curate`\n"
        "  llmops train --set train.preference.method=orpo\n"
        "  llmops train --gpus 4                      on 4 GPUs of this machine (data parallel)\n"
        "  llmops train --gpus 8 --nnodes 2 --node-rank 0 --master-addr 10.0.0.1   on each machine, its rank\n"
        "A killed run resumes from its last checkpoint when the same command runs again. Several GPUs or\n"
        "machines still give one flow run, one MLflow run and one version: rank 0 records, the others train.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p)
    add_launch_args(p)
    p.add_argument(
        "--dataset",
        default="latest",
        metavar="HASH|latest",
        help="curated dataset to train on (default: latest, the newest curation of this config)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    if args.nnodes > 1:
        return relaunch_on_nodes(args)
    config = load(args)
    from flows.train import train_flow

    t = train_flow(config=config, dataset=args.dataset)
    resumed = " (resumed)" if t.resumed else ""
    print(
        f"trained{resumed}: {t.model_name} v{t.version} is the challenger  (dataset {t.dataset[:12]}, "
        f"prompt {t.prompt})"
    )
    rate = t.metrics.get("sft/tokens_per_s")
    if rate:
        ranks = f" on {t.ranks} ranks" if t.ranks > 1 else ""
        print(f"SFT: {rate:,.0f} tokens/s{ranks}, padding {t.metrics.get('sft/padding_fraction', 0):.0%}")
    print(f"MLflow run: {t.run_id}")
    print(f"next: llmops evaluate --model {t.model_name}@challenger   or   llmops promote --train-run {t.run_id}")
    return 0
