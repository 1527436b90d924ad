"""`llmops evaluate`: score a model on the eval suites; on NAME@champion, check it for regressions."""

from __future__ import annotations

import json
from pathlib import Path

from llmops.commands.common import add_config_args
from llmops.home import prepare_home

EPILOG = """\
examples:
  llmops evaluate --model tiny-arith@challenger              against the champion and the base, on its own eval split
  llmops evaluate --model tiny-arith@champion                re-run the frozen suites, judge them against its baseline
  llmops evaluate --model tiny-arith@champion --prompt prompts:/arith-qa@candidate
                                                             prompt A/B on a fixed model (see `llmops promote --prompt`)
  llmops evaluate --model ./out/adapter --suite arithmetic --data gsm8k.jsonl --limit 100 --output out/
exit code 3: the champion regressed (a drop beyond a gate rule's margin)
"""


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "evaluate",
        help="score a model on the eval suites; on NAME@champion, check it for regressions",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p)
    p.add_argument(
        "--model",
        metavar="REF",
        help="NAME@ALIAS, NAME/VERSION (models:/ optional), or a model/adapter folder (default: the champion)",
    )
    p.add_argument(
        "--suite",
        action="append",
        default=[],
        choices=["arithmetic", "json-format", "held-out", "safety"],
        help="suite to run (repeatable; default: the config's eval.suites)",
    )
    p.add_argument(
        "--data",
        metavar="FILE|HASH",
        help="eval items: a JSONL file (demo format or GSM8K's question/answer), "
        "or a dataset hash / latest (its eval split)",
    )
    p.add_argument(
        "--against",
        choices=["champion", "previous", "none"],
        default=None,
        help="compare with (default: champion; none for a folder)",
    )
    p.add_argument(
        "--prompt",
        metavar="REF",
        default="",
        help="generate with this registered prompt (prompts:/NAME@ALIAS or NAME/VERSION) instead of the model's own",
    )
    p.add_argument("--limit", type=int, metavar="N", help="only the first N items of each suite")
    p.add_argument("--output", metavar="DIR", help="write DIR/results.json and per-item scores")
    p.set_defaults(run=run)


def run(args) -> int:
    from configs.consistency import narrowed_to_suites
    from configs.load import check_run_config, default_config_path, load_config

    overrides = list(args.overrides) + ([f"eval.limit={args.limit}"] if args.limit else [])
    config = load_config(args.config, overrides, check=not args.suite)
    if args.suite:  # the gate narrows with the suites asked for
        config = check_run_config(narrowed_to_suites(config, args.suite), args.config or str(default_config_path()))
    prepare_home()
    from registry.models import resolve_version

    ref = args.model or f"{config.registry.model_name}@champion"
    version = None if Path(ref).expanduser().is_dir() else resolve_version(ref)
    if args.prompt:
        from llmops.commands.promote import prompt_ab

        return prompt_ab(config, ref, args.prompt, args.data or "")
    if version is not None and "champion" in version.aliases and not args.data and not args.against:
        return _monitor(config, version)
    from flows.evaluate import evaluate_flow

    against = args.against or ("champion" if version is not None else "none")
    r = evaluate_flow(config=config, model=ref, dataset=args.data or "", against=against)
    return _report(r, ref, args.output)


def _monitor(config, version) -> int:
    from flows.monitor import monitor_flow

    m = monitor_flow(config=config, model=f"{version.name}/{version.version}")
    for f in m["findings"]:
        detail = (
            f" {f['delta']:+.3f} [{f['ci_low']:+.3f}, {f['ci_high']:+.3f}], margin {f['margin']:+.3f}"
            if f.get("delta") is not None
            else f" ({f['why']})"
        )
        print(f"{f['metric']}: {f['status']}{detail}")
    if m["rolled_back"]:
        print(f"rolled back: champion moved from v{m['rolled_back'][0]} to v{m['rolled_back'][1]}")
    print(f"MLflow run: {m['run_id']}")
    return 3 if m["regression"] else 0


def _report(r: dict, ref: str, output: str | None) -> int:
    from flows.evaluate import mean_with_ci

    results = {
        suite: {metric: mean_with_ci(scores, metric) for metric, scores in res["scores"].items()}
        for suite, res in r["results"]["candidate"].items()
    }
    for suite, per_metric in results.items():
        for metric, v in per_metric.items():
            ci = f" [{v['ci_low']:.3f}, {v['ci_high']:.3f}]" if v["ci_low"] is not None else ""
            others = "".join(
                f"   {who} {r['summary'][who][f'{suite}/{metric}']:.3f}"
                for who in r["summary"]
                if who != "candidate" and f"{suite}/{metric}" in r["summary"][who]
            )
            print(f"{suite}/{metric}: {v['mean']:.3f}{ci} (n={v['n']}){others}")
    if output:
        out = Path(output)
        (out / "items").mkdir(parents=True, exist_ok=True)
        ops = {suite: res["ops"] for suite, res in r["results"]["candidate"].items()}
        (out / "results.json").write_text(
            json.dumps({"model": ref, "suites": results, "ops": ops, "mlflow_run_id": r["run_id"]}, indent=1)
        )
        for suite, res in r["results"]["candidate"].items():
            with open(out / "items" / f"{suite}.jsonl", "w", encoding="utf-8") as f:
                for i, item_id in enumerate(res["ids"]):
                    f.write(
                        json.dumps(
                            {"id": item_id, "output": res["outputs"][i], **{m: v[i] for m, v in res["scores"].items()}}
                        )
                        + "\n"
                    )
        print(f"results: {out / 'results.json'}")
    print(f"MLflow run: {r['run_id']}")
    return 0
