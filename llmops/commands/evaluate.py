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
    if args.suite:  # the gate narrowed with the suites asked for
        config = check_run_config(narrowed_to_suites(config, args.suite), args.config or str(default_config_path()))
    ref = args.model or f"{config.registry.model_name}@champion"
    folder = Path(ref).expanduser().is_dir()
    # A folder is one quick look: it reuses the home's Prefect server if one runs, and starts none.
    prepare_home(start_server=not folder)
    from registry.models import resolve_version

    version = None if folder else resolve_version(ref)
    if args.prompt:
        from llmops.commands.promote import prompt_ab

        return prompt_ab(config, ref, args.prompt, args.data or "")
    if version is not None and "champion" in version.aliases and not args.data and not args.against:
        return _monitor(config, version)
    from flows.evaluate import evaluate_flow

    against = args.against or ("champion" if version is not None else "none")
    evaluation = evaluate_flow(config=config, model=ref, dataset=args.data or "", against=against)
    return _report(evaluation, ref, args.output)


def _monitor(config, version) -> int:
    from flows.monitor import monitor_flow

    m = monitor_flow(config=config, model=f"{version.name}/{version.version}")
    for f in m.findings:
        detail = f" {f.span()}, margin {f.margin:+.3f}" if f.delta is not None else ""
        print(f"{f.metric}: {f.status}{detail}" + (f" ({f.why})" if f.why else ""))
    if m.rolled_back:
        print(f"rolled back: champion moved from v{m.rolled_back[0]} to v{m.rolled_back[1]}")
    print(f"MLflow run: {m.run_id}")
    return 3 if m.regression else 0


def _report(evaluation, ref: str, output: str | None) -> int:
    from tasks.evaluate.intervals import metric_interval

    mine = evaluation.results.of("candidate")
    summary = evaluation.summary
    results = {
        suite: {metric: metric_interval(v, metric) for metric, v in r.scores.items()} for suite, r in mine.items()
    }
    for suite, per_metric in results.items():
        for metric, v in per_metric.items():
            ci = f" [{v['ci_low']:.3f}, {v['ci_high']:.3f}]" if v["ci_low"] is not None else ""
            others = "".join(
                f"   {who} {summary[who][f'{suite}/{metric}']:.3f}"
                for who in summary
                if who != "candidate" and f"{suite}/{metric}" in summary[who]
            )
            print(f"{suite}/{metric}: {v['mean']:.3f}{ci} (n={v['n']}){others}")
        r = mine[suite]
        if r.cached_items and not r.ops.get("timed_items"):
            print(f"{suite}: all {r.cached_items} answers were cached; no timings in this run")
    if output:
        out = Path(output)
        (out / "items").mkdir(parents=True, exist_ok=True)
        ops = {suite: r.ops for suite, r in mine.items()}
        (out / "results.json").write_text(
            json.dumps({"model": ref, "suites": results, "ops": ops, "mlflow_run_id": evaluation.run_id}, indent=1)
        )
        for suite, r in mine.items():
            with open(out / "items" / f"{suite}.jsonl", "w", encoding="utf-8") as f:
                for i, item_id in enumerate(r.ids):
                    row = {"id": item_id, "output": r.outputs[i], **{m: v[i] for m, v in r.scores.items()}}
                    f.write(json.dumps(row) + "\n")
        print(f"results: {out / 'results.json'}")
    print(f"MLflow run: {evaluation.run_id}")
    return 0
