"""The `llmops` command: one sub-command per stage, each driven by a YAML run config.

Heavy libraries (torch, trl, prefect, mlflow) are imported only inside the command that runs, so
`llmops --help` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys

from core.paths import llmops_home, setup_environment
from llmops.home import quiet_libraries

EPILOG = """\
examples:
  llmops nightly                                   the whole pipeline on the embedded default
  llmops nightly --set train.sft.max_steps=50      the same, with one config value changed
  llmops nightly --config configs/chat.yaml --set 'data.inputs=[chats.jsonl]' --set data.eval_path=held.jsonl
                                                   your own data, model and prompt
  llmops curate --input corpus.jsonl.gz            the data stage alone; prints the dataset hash
  llmops train --dataset latest                    train on the newest curation; registers a challenger
  llmops train --gpus 4                            the same on 4 GPUs of this machine, one rank each
  llmops train --gpus 8 --nnodes 2 --node-rank 0 --master-addr 10.0.0.1   (and --node-rank 1 on the other)
  llmops evaluate --model tiny-arith@challenger    against the champion and the base
  llmops promote --train-run RUN_ID                the gate decides
  llmops models history tiny-arith                 every decision: who, when, why, evidence
  llmops rollback --model tiny-arith --reason "bad answers in production"
  llmops drift --reference latest --current requests.jsonl
  llmops worker                                    every stage as a form in the UI of the home's Prefect server

state: everything lives under $LLMOPS_HOME (now: {home}); its Prefect server stops after
LLMOPS_PREFECT_IDLE_MINUTES unused (default 60), or with `llmops stop`;
MLflow UI: `make ui`. Set MLFLOW_TRACKING_URI / PREFECT_API_URL to use a team's servers instead.
Exit codes: 0 done, 2 bad input (one line on stderr says what to change), 3 a check found a problem
(regression, drift, rejected prompt).
"""


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from llmops.commands import VERBS

    parser = argparse.ArgumentParser(
        prog="llmops",
        description="Curate, fine-tune, evaluate and promote a language model, with Prefect flows and MLflow records.",
        epilog=EPILOG.format(home=llmops_home()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and library logs on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in VERBS:
        importlib.import_module(f"llmops.commands.{verb}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("LOCAL_RANK") is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return as_rank(args)
    return run_command(args)


def run_command(args) -> int:
    from core.errors import UserError

    try:
        setup_environment()
        quiet_libraries(debug=args.debug)
        from configs.load import ConfigError

        try:
            return args.run(args)
        except ConfigError as err:  # every problem of a config, one per line, all at once
            print(f"error: {err}", file=sys.stderr)
            return 2
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def as_rank(args) -> int:
    """One rank of `accelerate launch ... -m llmops.cli COMMAND` (or torchrun, on one node or several).

    Rank 0 runs the command as if alone: one flow run, one MLflow run, one registered version, the
    output. The others, for a command that trains, join its training stages and nothing else
    (tasks/train/distributed.py); for any other command they have nothing to do.
    """
    from tasks.train import distributed

    distributed.die_with_parent()
    trains = getattr(args, "trains", False)
    if not distributed.current().leads:
        if not trains:
            return 0
        setup_environment()
        quiet_libraries(debug=args.debug)
        code = distributed.follow()
        distributed.leave()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # a follower holds nothing to flush or close: no exit handlers to race gloo's threads
    try:
        if trains:
            distributed.join()
        return run_command(args)
    finally:
        distributed.release()
        distributed.leave()


if __name__ == "__main__":
    sys.exit(main())
