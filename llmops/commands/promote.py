"""`llmops promote` and `llmops rollback`: the gate, and a release manager's hand on the aliases."""

from __future__ import annotations

import json
import sys

from llmops.commands.common import add_config_args, load
from llmops.home import llmops_home


def register(sub) -> None:
    p = sub.add_parser("promote", help="gate a training run's model, or (release managers) promote a version by hand",
                       epilog="either --train-run RUN_ID (evaluate + gate), or --model NAME --version N --reason TEXT")
    add_config_args(p)
    p.add_argument("--train-run", metavar="RUN_ID", help="MLflow run id of a `train` stage run: evaluate it and apply the gate")
    p.add_argument("--model", metavar="NAME", help="registered model name (with --version: promote by hand)")
    p.add_argument("--version", type=int, metavar="N", help="the version to make champion")
    p.add_argument("--reason", default="", help="why (recorded in the audit log and on the version)")
    p.set_defaults(run=run)
    p = sub.add_parser("rollback", help="move `champion` back to the `previous` version and record why")
    p.add_argument("--model", metavar="NAME", required=True)
    p.add_argument("--reason", required=True, help="why (recorded in the audit log and on the version)")
    p.set_defaults(run=run_rollback)


def run(args) -> int:
    if args.model or args.version is not None:
        return _promote_by_hand(args)
    if not args.train_run:
        print("error: give --train-run RUN_ID, or --model NAME --version N --reason TEXT", file=sys.stderr)
        return 2
    config = load(args)
    import mlflow

    from flows.evaluate import evaluate_flow
    from flows.promote import promote_flow
    from registry.tracking import client

    run = client().get_run(args.train_run)
    if run.data.tags.get("llmops.stage") != "train":
        print(f"error: run {args.train_run} is not a `train` stage run", file=sys.stderr)
        return 2
    curated = json.loads(mlflow.artifacts.load_text(f"runs:/{args.train_run}/lineage/curated.json"))
    trained = json.loads(mlflow.artifacts.load_text(f"runs:/{args.train_run}/lineage/trained.json"))
    model_dir = mlflow.artifacts.download_artifacts(run_id=args.train_run, artifact_path="adapter",
                                                    dst_path=str(llmops_home() / "cache" / "promote" / args.train_run))
    evaluated = evaluate_flow(config, curated["eval_path"], trained["base"], model_dir)
    p = promote_flow(config, trained, evaluated, curated)
    print(f"{p['model_name']} v{p['version']}: {p['decision']}  (MLflow run {p['run_id']})")
    return 0


def _promote_by_hand(args) -> int:
    from registry.audit import actor
    from registry.models import promote_version

    if not (args.model and args.version is not None and args.reason):
        print("error: promoting by hand needs --model NAME --version N --reason TEXT", file=sys.stderr)
        return 2
    replaced = promote_version(args.model, args.version, actor(), args.reason)
    print(f"{args.model} v{args.version} is champion" + (f"; v{replaced} kept as `previous`" if replaced else ""))
    return 0


def run_rollback(args) -> int:
    from registry.audit import actor
    from registry.models import rollback

    try:
        demoted, restored = rollback(args.model, actor(), args.reason)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.model}: champion moved back from v{demoted} to v{restored}")
    return 0
