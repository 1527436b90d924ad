"""The `llmops` command: one sub-command per stage, each driven by a YAML run config.

Heavy libraries (torch, trl, prefect, mlflow) are imported only inside the command that runs, so
`llmops --help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmops.home import llmops_home, quiet_libraries, setup_environment

EPILOG = """\
examples:
  llmops nightly                                   the whole pipeline on the embedded default
  llmops nightly --set train.sft.max_steps=50      the same, with one config value changed
  llmops curate --config configs/nightly.yaml      only the data stage
  llmops evaluate --model models:/tiny-arith@champion
  llmops models                                    versions and aliases in the registry
  llmops serve                                     deployments for the Prefect UI (nightly on cron)

state: everything lives under $LLMOPS_HOME (now: {home}); MLflow UI: `make ui`.
Set MLFLOW_TRACKING_URI / PREFECT_API_URL to use a team's servers instead.
"""


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="YAML run config (default: configs/nightly.yaml)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override one config value, e.g. --set train.sft.max_steps=20 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmops",
        description="Curate, fine-tune, evaluate and promote a language model, with Prefect flows and MLflow records.",
        epilog=EPILOG.format(home=llmops_home()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("nightly", help="curate -> train -> evaluate -> promote, as one flow run")
    _add_config_args(p)
    p = sub.add_parser("curate", help="validate, dedup, filter and mask the training data")
    _add_config_args(p)
    p = sub.add_parser("train", help="curate, then SFT (+ DPO) with the config's method")
    _add_config_args(p)
    p = sub.add_parser("evaluate", help="score a model, the champion and the base model on the eval split")
    _add_config_args(p)
    p.add_argument("--model", metavar="REF", help="models:/NAME@ALIAS, models:/NAME/VERSION, or a model/adapter folder")
    p = sub.add_parser("promote", help="evaluate a training run's model and promote it if the gate passes")
    _add_config_args(p)
    p.add_argument("--train-run", metavar="RUN_ID", required=True, help="MLflow run id of a `train` stage run")
    p = sub.add_parser("serve", help="serve every flow as a Prefect deployment (needs PREFECT_API_URL)")
    p.add_argument("--cron", default="0 2 * * *", help="schedule of the nightly deployment (default: 02:00 UTC)")
    p = sub.add_parser("models", help="list registered models, their versions and aliases")
    p.add_argument("--name", help="one registered model (default: all)")
    return parser


def _load(args):
    from configs.load import load_config

    return load_config(args.config, args.overrides)


def cmd_nightly(args) -> int:
    config = _load(args)
    from flows.nightly import nightly_flow

    result = nightly_flow(config)
    em, promoted = result["evaluate"]["exact_match"], result["promote"]
    print("\n== nightly finished ==")
    print(f"exact match: candidate {em['candidate']:.3f}, base {em['base']:.3f}"
          + (f", champion {em['champion']:.3f}" if "champion" in em else ""))
    print(f"gain over base: {result['gain_over_base']:+.3f}")
    print(f"registry: {promoted['model_name']} v{promoted['version']} -> {promoted['decision']}")
    print(f"MLflow parent run: {result['run_id']}  (tracking: {_tracking()})")
    return 0


def cmd_curate(args) -> int:
    config = _load(args)
    from flows.curate import curate_flow

    r = curate_flow(config)
    print(f"read {r['read']}, kept {r['kept']}, dropped {sum(r['dropped'].values())}: {json.dumps(r['dropped'])}")
    print(f"curated: {Path(r['sft_path']).parent}  (dataset {r['dataset_hash'][:12]})")
    print(f"quarantine: {r['quarantine_path']}\nMLflow run: {r['run_id']}")
    return 0


def cmd_train(args) -> int:
    config = _load(args)
    from flows.curate import curate_flow
    from flows.train import train_flow

    curated = curate_flow(config)
    t = train_flow(config, curated)
    print(f"trained model: {t['model_dir']}\nMLflow run: {t['run_id']}  (logged model {t['model_uri']})")
    print(f"next: llmops promote --train-run {t['run_id']}")
    return 0


def _eval_inputs(config):
    """The eval split and base model a stand-alone evaluation uses (the demo's, unless configured)."""
    from flows.train import resolve_base
    from tasks.data.demo import write_demo_data

    eval_path = config.data.eval_path
    if not eval_path:
        d = config.data
        eval_path = write_demo_data(llmops_home() / "data" / f"demo-seed{d.seed}", d.seed, d.demo_train_rows,
                                    d.demo_pref_rows, d.demo_eval_rows)["eval"]
    return eval_path, resolve_base(config)


def cmd_evaluate(args) -> int:
    config = _load(args)
    from flows.evaluate import evaluate_flow
    from registry.models import download_model_dir, resolve_version

    candidate = args.model
    if candidate and not Path(candidate).exists():
        version = resolve_version(candidate)
        if version is None:
            print(f"error: no model found for '{candidate}' (try `llmops models`)", file=sys.stderr)
            return 2
        candidate = download_model_dir(version, llmops_home() / "cache" / "eval" / str(version.version))
    eval_path, base = _eval_inputs(config)
    r = evaluate_flow(config, eval_path, base, candidate)
    for who, value in r["exact_match"].items():
        print(f"{who:>10}: exact match {value:.3f} on {r['n_items']} items")
    print(f"MLflow run: {r['run_id']}")
    return 0


def cmd_promote(args) -> int:
    config = _load(args)
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


def cmd_models(args) -> int:
    from registry.models import list_versions, registered_names

    names = [args.name] if args.name else registered_names()
    if not names:
        print("no registered models yet: run `llmops nightly` first")
    for name in names:
        print(f"{name}")
        for v in list_versions(name):
            aliases = ",".join(v.aliases) or "-"
            decision = v.tags.get("gate.decision", "-")
            print(f"  v{v.version:<4} aliases={aliases:<22} gate={decision:<8} dataset={v.tags.get('lineage.dataset_hash', '')[:12]}"
                  f" train_run={v.run_id}")
    return 0


def cmd_serve(args) -> int:
    import os

    if not os.environ.get("PREFECT_API_URL"):
        print("error: `llmops serve` needs a Prefect server: start one with `prefect server start` and set\n"
              "  PREFECT_API_URL=http://127.0.0.1:4200/api (a temporary server cannot be seen by the UI)", file=sys.stderr)
        return 2
    from flows.deploy import serve

    serve(args.cron)
    return 0


def _tracking() -> str:
    import os

    return os.environ.get("MLFLOW_TRACKING_URI", "")


COMMANDS = {"nightly": cmd_nightly, "curate": cmd_curate, "train": cmd_train, "evaluate": cmd_evaluate,
            "promote": cmd_promote, "serve": cmd_serve, "models": cmd_models}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_environment()
    quiet_libraries()
    from configs.load import ConfigError

    try:
        return COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
