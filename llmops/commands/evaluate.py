"""`llmops evaluate`: score a model on the eval suites; on NAME@champion, check it for regressions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llmops.commands.common import add_config_args
from llmops.home import llmops_home, prepare_home


def register(sub) -> None:
    import argparse

    p = sub.add_parser("evaluate", help="score a model on the eval suites; on NAME@champion, check it for regressions",
                       epilog="examples:\n"
                              "  llmops evaluate --model tiny-arith@champion             re-run the frozen suites, compare with its baseline\n"
                              "  llmops evaluate --model ./out/adapter --suite arithmetic --data gsm8k.jsonl --limit 100 --output out/\n"
                              "exit code 3: the champion regressed (a significant drop on a gate metric)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--model", metavar="REF", help="NAME@ALIAS, models:/NAME/VERSION, or a model/adapter folder (default: the champion)")
    p.add_argument("--suite", action="append", default=[], choices=["arithmetic", "json-format", "held-out", "safety"],
                   help="suite to run (repeatable; default: the config's eval.suites)")
    p.add_argument("--data", metavar="FILE", help="eval file for arithmetic/held-out (demo format or GSM8K's question/answer)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N items of each suite")
    p.add_argument("--output", metavar="DIR", help="write DIR/results.json and per-item scores")
    p.set_defaults(run=run)


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


def run(args) -> int:
    overrides = list(args.overrides)
    if args.suite:
        overrides.append(f"eval.suites=[{','.join(args.suite)}]")
    if args.limit:
        overrides.append(f"eval.limit={args.limit}")
    from configs.load import load_config

    config = load_config(args.config, overrides)
    prepare_home()
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
