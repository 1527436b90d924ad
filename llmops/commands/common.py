"""What every command shares: the config arguments, loading the config, where MLflow records, and
for the commands that train, the GPUs and machines they train on."""

from __future__ import annotations

import argparse
import os
import sys


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

    config = load_config(args.config, [*args.overrides, *launch_overrides(args)])
    prepare_home()
    return config


NODE_FLAGS = {"--nnodes": True, "--node-rank": True, "--master-addr": True, "--master-port": True}


def add_launch_args(p: argparse.ArgumentParser) -> None:
    """--gpus, and the flags of a launch over several machines (each runs the same command)."""
    p.set_defaults(trains=True)  # under `accelerate launch`, ranks other than 0 join its training
    g = p.add_argument_group("GPUs and machines (docs/gpu.md)")
    g.add_argument(
        "--gpus",
        type=int,
        metavar="N",
        help="train on N GPUs of this machine, one data-parallel rank each (sets train.num_gpus=N, device=cuda)",
    )
    g.add_argument("--nnodes", type=int, default=1, metavar="N", help="machines taking part (run this on each)")
    g.add_argument("--node-rank", type=int, default=0, metavar="K", help="this machine's place, 0 to N-1; 0 records")
    g.add_argument("--master-addr", metavar="HOST", help="address of the machine with --node-rank 0")
    g.add_argument("--master-port", type=int, default=29500, metavar="PORT", help="a free port there (29500)")


def launch_overrides(args) -> list[str]:
    return [f"train.num_gpus={args.gpus}", "train.device=cuda"] if getattr(args, "gpus", None) else []


def relaunch_on_nodes(args) -> int:
    """`--nnodes N`: this machine's share of the launch. The command runs again under `accelerate launch`
    (torchrun underneath) with one rank per GPU here (or train.num_processes); its rank 0 on node 0 does
    the command's work, every other rank only trains."""
    from configs.check import MIXED_PRECISION, accelerate_config_path
    from configs.load import load_config
    from core.errors import UserError
    from tasks.train.distributed import parent_death_signal

    if not args.master_addr:
        raise UserError(
            f"--nnodes {args.nnodes}",
            "needs the address of the machine with --node-rank 0",
            "give --master-addr HOST (the same on every machine)",
        )
    if not 0 <= args.node_rank < args.nnodes:
        raise UserError(f"--node-rank {args.node_rank}", f"must be 0 to {args.nnodes - 1}", "number the machines")
    train = load_config(args.config, [*args.overrides, *launch_overrides(args)]).train
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(accelerate_config_path(train.accelerate_config)),
        "--num_machines",
        str(args.nnodes),
        "--machine_rank",
        str(args.node_rank),
        "--main_process_ip",
        args.master_addr,
        "--main_process_port",
        str(args.master_port),
        "--num_processes",
        str(args.nnodes * train.ranks),
        "--mixed_precision",
        MIXED_PRECISION[train.precision],
        "-m",
        "llmops.cli",
        *without_node_flags(args.argv),
    ]
    import subprocess

    return subprocess.run(command, preexec_fn=parent_death_signal()).returncode


def without_node_flags(argv: list[str]) -> list[str]:
    """The command line each rank runs: this one, less the flags that placed this machine."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in NODE_FLAGS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", "")
