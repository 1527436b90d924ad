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
  llmops models history tiny-arith                 every decision: who, when, why, evidence
  llmops rollback --model tiny-arith --reason "bad answers in production"
  llmops serve                                     deployments for the Prefect UI (nightly on cron)

state: everything lives under $LLMOPS_HOME (now: {home}); MLflow UI: `make ui`.
Set MLFLOW_TRACKING_URI / PREFECT_API_URL to use a team's servers instead.
"""


CURATE_FORMATS = ["auto", "text", "messages", "alpaca", "qa", "pref", "hh"]  # configs.schema.CurateConfig.format
CURATE_EPILOG = """\
examples:
  llmops curate                                   the demo data, steps and thresholds from configs/nightly.yaml
  llmops curate --input hh_harmless.jsonl.gz --output out/hh
                                                  an Anthropic HH file (format auto-detected); results in out/hh
  llmops curate --input a.jsonl --input b.parquet --format messages
  llmops curate --set 'curate.steps=[validate,exact_dedup,length,pii]' --set curate.min_chars=20
  llmops curate --set curate.quality.gopher_enabled=true       web-page quality rules on (for web text)

formats: auto (detected from each file's first rows), text, messages (OpenAI or ShareGPT),
         alpaca, qa (question/answer), pref (prompt/chosen/rejected), hh (Anthropic HH transcripts)
steps (curate.steps, validate first): validate exact_dedup near_dedup length quality pii decontaminate
Rows are decontaminated against data.eval_path (the demo eval split when none is set) and
curate.decontaminate_paths. Outputs: report.json (counts), quarantine.jsonl (each dropped row and
its reason), dataset-<hash>/ (sft/pref/text .parquet, sft.jsonl and pref.jsonl for training,
DATACARD.md).
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
    p = sub.add_parser("curate", help="validate, dedup, filter and mask the training data",
                       description="Curate corpora into one dataset folder: every row read is kept, or quarantined\n"
                                   "with the reason of the first step that failed it.",
                       epilog=CURATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config_args(p)
    p.add_argument("--input", metavar="PATH", action="append", default=[], dest="inputs",
                   help="a corpus: .jsonl, .json, .jsonl.gz, .parquet or a datasets save_to_disk folder "
                        "(repeatable; default: the config's data.inputs, or the demo data)")
    p.add_argument("--format", choices=CURATE_FORMATS, help="layout of every input (default: the config's "
                                                            "curate.format, 'auto': detected per file)")
    p.add_argument("--output", metavar="DIR", help="also put report.json, quarantine.jsonl and the dataset folder in DIR")
    p = sub.add_parser("train", help="curate, then SFT (+ DPO) with the config's method")
    _add_config_args(p)
    p = sub.add_parser("evaluate", help="score a model on the eval suites; on NAME@champion, check it for regressions",
                       epilog="examples:\n"
                              "  llmops evaluate --model tiny-arith@champion             re-run the frozen suites, compare with its baseline\n"
                              "  llmops evaluate --model ./out/adapter --suite arithmetic --data gsm8k.jsonl --limit 100 --output out/\n"
                              "exit code 3: the champion regressed (a significant drop on a gate metric)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config_args(p)
    p.add_argument("--model", metavar="REF", help="NAME@ALIAS, models:/NAME/VERSION, or a model/adapter folder (default: the champion)")
    p.add_argument("--suite", action="append", default=[], choices=["arithmetic", "json-format", "held-out", "safety"],
                   help="suite to run (repeatable; default: the config's eval.suites)")
    p.add_argument("--data", metavar="FILE", help="eval file for arithmetic/held-out (demo format or GSM8K's question/answer)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N items of each suite")
    p.add_argument("--output", metavar="DIR", help="write DIR/results.json and per-item scores")
    p = sub.add_parser("promote", help="gate a training run's model, or (release managers) promote a version by hand",
                       epilog="either --train-run RUN_ID (evaluate + gate), or --model NAME --version N --reason TEXT")
    _add_config_args(p)
    p.add_argument("--train-run", metavar="RUN_ID", help="MLflow run id of a `train` stage run: evaluate it and apply the gate")
    p.add_argument("--model", metavar="NAME", help="registered model name (with --version: promote by hand)")
    p.add_argument("--version", type=int, metavar="N", help="the version to make champion")
    p.add_argument("--reason", default="", help="why (recorded in the audit log and on the version)")
    p = sub.add_parser("rollback", help="move `champion` back to the `previous` version and record why")
    p.add_argument("--model", metavar="NAME", required=True)
    p.add_argument("--reason", required=True, help="why (recorded in the audit log and on the version)")
    p = sub.add_parser("serve", help="serve every flow as a Prefect deployment (needs PREFECT_API_URL)")
    p.add_argument("--cron", default="0 2 * * *", help="schedule of the nightly deployment (default: 02:00 UTC)")
    p = sub.add_parser("models", help="list registered models and aliases, or one model's decision history",
                       epilog="llmops models                  all models, versions, aliases\n"
                              "llmops models history NAME     every promote / reject / rollback, who and why",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="?", choices=["list", "history"], default="list")
    p.add_argument("name", nargs="?", help="a registered model (default for list: all)")
    return parser


def _load(args):
    from configs.load import load_config

    return load_config(args.config, args.overrides)


def cmd_nightly(args) -> int:
    config = _load(args)
    from flows.nightly import nightly_flow

    result = nightly_flow(config)
    promoted, primary = result["promote"], config.gate.primary
    print("\n== nightly finished ==")
    print(_score_table(result["evaluate"]["summary"]))
    ci = (f" (95% CI [{result['gain_ci_low']:+.3f}, {result['gain_ci_high']:+.3f}])"
          if result.get("gain_ci_low") is not None else "")
    print(f"gain over base on {primary}: {result['gain_over_base']:+.3f}{ci}")
    print(f"registry: {promoted['model_name']} v{promoted['version']} -> {promoted['decision']}")
    for name, c in promoted["gate"]["comparisons"].items():
        mde = f", detectable at this size: {c['mde']:.3f}" if c.get("mde") else ""
        print(f"  {name}: delta {c['delta']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], "
              f"p={c.get('p_adjusted', c['p_value']):.4f}{mde}")
    for check in promoted["gate"]["checks"]:
        if not check["passed"] or check["name"] == "inconclusive":
            print(f"  {check['name']}: {check['detail']}")
    print(f"MLflow parent run: {result['run_id']}  (tracking: {_tracking()})")
    return 0


def _score_table(summary: dict) -> str:
    who = list(summary)
    keys = sorted({k for per in summary.values() for k in per})
    width = max(len(k) for k in keys) if keys else 10
    lines = [" " * width + "  " + "".join(f"{w:>11}" for w in who)]
    lines += [f"{k:<{width}}  " + "".join(f"{summary[w][k]:>11.3f}" if k in summary[w] else " " * 11 for w in who) for k in keys]
    return "\n".join(lines)


def cmd_curate(args) -> int:
    from configs.load import load_config

    overrides = list(args.overrides) + ([f"curate.format={args.format}"] if args.format else [])
    if args.inputs:
        missing = [p for p in args.inputs if not Path(p).exists()]
        if missing:
            print(f"error: --input not found: {', '.join(missing)}", file=sys.stderr)
            return 2
        d = load_config(args.config, overrides, check=False).data
        eval_path = d.eval_path
        if not eval_path:  # decontaminate against the split `llmops evaluate` would use
            from tasks.data.demo import write_demo_data

            eval_path = write_demo_data(llmops_home() / "data" / f"demo-seed{d.seed}", d.seed, d.demo_train_rows,
                                        d.demo_pref_rows, d.demo_eval_rows)["eval"]
        inputs = [str(Path(p).resolve()) for p in args.inputs]
        overrides += [f"data.inputs={json.dumps(inputs)}", f"data.eval_path={json.dumps(str(eval_path))}"]
    config = load_config(args.config, overrides)
    from flows.curate import run_curate

    r = run_curate(config)
    where = {"dataset": r["dataset_dir"], "report": r["report_path"], "quarantine": r["quarantine_path"],
             "data card": r["card_path"]}
    if args.output:
        import shutil

        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        dataset = out / Path(r["dataset_dir"]).name
        shutil.copytree(r["dataset_dir"], dataset, dirs_exist_ok=True)
        where = {"dataset": str(dataset), "report": shutil.copy2(r["report_path"], out / "report.json"),
                 "quarantine": shutil.copy2(r["quarantine_path"], out / "quarantine.jsonl"),
                 "data card": str(dataset / "DATACARD.md")}
    print(_curate_summary(r, config.curate.format, where))
    return 0


def _curate_summary(r: dict, fmt: str, where: dict) -> str:
    dropped = sum(r["dropped"].values())
    lines = ["", "== curate finished ==", f"read {r['read']} rows: kept {r['kept']}, dropped {dropped}", ""]
    how = "auto-detected" if fmt == "auto" else "as configured"
    for path, src in r["sources"].items():
        lines += [f"input {path}", f"  format: {src['format']} ({how})   read {src['read']}, kept {src['kept']}"]
    step_of = {reason: step for step, reasons in r["dropped_by_step"].items() for reason in reasons}
    if r["dropped"]:
        width = max(len(k) for k in r["dropped"])
        lines += ["", f"  {'dropped':<{width}}  {'rows':>6}  step"]
        lines += [f"  {reason:<{width}}  {n:>6}  {step_of.get(reason, '')}"
                  for reason, n in sorted(r["dropped"].items(), key=lambda kv: (-kv[1], kv[0]))]
    lines += ["", f"steps: {' -> '.join(r['steps'])}"]
    if r["decontamination"]:
        lines.append(f"eval items leaked into training rows: {len(r['decontamination'])} (see report.json)")
    kinds = ", ".join(f"{kind} {r[f'{kind}_rows']}" for kind in ("sft", "pref", "text"))
    lines += ["", f"{'dataset':<11} {where['dataset']}  ({kinds} rows; hash {r['dataset_hash'][:16]})"]
    lines += [f"{name:<11} {where[name]}" for name in ("report", "quarantine", "data card")]
    lines.append(f"{'MLflow run':<11} {r['run_id']}  (tracking: {_tracking()})")
    return "\n".join(lines)


def cmd_train(args) -> int:
    config = _load(args)
    from flows.curate import run_curate
    from flows.train import train_flow

    curated = run_curate(config)
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
    overrides = list(args.overrides)
    if args.suite:
        overrides.append(f"eval.suites=[{','.join(args.suite)}]")
    if args.limit:
        overrides.append(f"eval.limit={args.limit}")
    from configs.load import load_config

    config = load_config(args.config, overrides)
    from registry.models import download_model_dir, resolve_version

    ref = args.model or f"{config.registry.model_name}@champion"
    version, model_dir = None, ref
    if not Path(ref).exists():
        version = resolve_version(ref if ref.startswith("models:/") else f"models:/{ref}")
        if version is None:
            print(f"error: no model found for '{ref}' (try `llmops models`)", file=sys.stderr)
            return 2
        model_dir = download_model_dir(version, llmops_home() / "cache" / "models" / f"{ref.replace('/', '_')}-v{version.version}")
    eval_path = args.data or _eval_inputs(config)[0]
    is_champion = version is not None and "champion" in version.aliases
    if is_champion and not args.data:
        from flows.monitor import monitor_flow

        m = monitor_flow(config, eval_path, model_dir, version.version)
        for f in m["findings"]:
            detail = f" {f['delta']:+.3f} [{f['ci_low']:+.3f}, {f['ci_high']:+.3f}]" if "delta" in f else f" ({f['why']})"
            print(f"{f['metric']}: {f['status']}{detail}")
        if m["rolled_back"]:
            print(f"rolled back: champion moved from v{m['rolled_back'][0]} to v{m['rolled_back'][1]}")
        print(f"MLflow run: {m['run_id']}")
        return 3 if m["regression"] else 0
    from flows.evaluate import evaluate_flow, mean_with_ci

    r = evaluate_flow(config, eval_path, candidate_dir=model_dir, compare_champion=False)
    results = {suite: {metric: mean_with_ci(scores) for metric, scores in res["scores"].items()}
               for suite, res in r["results"]["candidate"].items()}
    for suite, per_metric in results.items():
        for metric, v in per_metric.items():
            ci = f" [{v['ci_low']:.3f}, {v['ci_high']:.3f}]" if v["ci_low"] is not None else ""
            print(f"{suite}/{metric}: {v['mean']:.3f}{ci} (n={v['n']})")
    if args.output:
        out = Path(args.output)
        (out / "items").mkdir(parents=True, exist_ok=True)
        ops = {suite: res["ops"] for suite, res in r["results"]["candidate"].items()}
        (out / "results.json").write_text(json.dumps({"model": ref, "suites": results, "ops": ops,
                                                      "mlflow_run_id": r["run_id"]}, indent=1))
        for suite, res in r["results"]["candidate"].items():
            with open(out / "items" / f"{suite}.jsonl", "w", encoding="utf-8") as f:
                for i, item_id in enumerate(res["ids"]):
                    f.write(json.dumps({"id": item_id, "output": res["outputs"][i],
                                        **{m: v[i] for m, v in res["scores"].items()}}) + "\n")
        print(f"results: {out / 'results.json'}")
    print(f"MLflow run: {r['run_id']}")
    return 0


def cmd_promote(args) -> int:
    if args.model or args.version is not None:
        return _promote_by_hand(args)
    if not args.train_run:
        print("error: give --train-run RUN_ID, or --model NAME --version N --reason TEXT", file=sys.stderr)
        return 2
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


def _promote_by_hand(args) -> int:
    from registry.audit import actor
    from registry.models import promote_version

    if not (args.model and args.version is not None and args.reason):
        print("error: promoting by hand needs --model NAME --version N --reason TEXT", file=sys.stderr)
        return 2
    replaced = promote_version(args.model, args.version, actor(), args.reason)
    print(f"{args.model} v{args.version} is champion" + (f"; v{replaced} kept as `previous`" if replaced else ""))
    return 0


def cmd_rollback(args) -> int:
    from registry.audit import actor
    from registry.models import rollback

    try:
        demoted, restored = rollback(args.model, actor(), args.reason)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.model}: champion moved back from v{demoted} to v{restored}")
    return 0


def cmd_models(args) -> int:
    from registry.models import list_versions, registered_names

    if args.what == "history":
        if not args.name:
            print("error: `llmops models history NAME` needs a model name", file=sys.stderr)
            return 2
        from registry.audit import read_audit

        entries = read_audit(args.name)
        if not entries:
            print(f"no decisions recorded for {args.name}")
        for e in entries:
            version = f"v{e['version']}" if e.get("version") is not None else "-"
            print(f"{e['time']}  {e['action']:<15} {version:<5} by {e['by']:<24} {e['why']}"
                  + (f"  (evidence run {e['evidence_run_id']})" if e.get("evidence_run_id") else ""))
        return 0
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
            "promote": cmd_promote, "rollback": cmd_rollback, "serve": cmd_serve, "models": cmd_models}


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
