"""`llmops curate`: raw corpora in, one dataset folder out, every dropped row with its reason."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llmops.commands.common import add_config_args, tracking_uri
from llmops.home import llmops_home, prepare_home

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



def register(sub) -> None:
    import argparse

    p = sub.add_parser("curate", help="validate, dedup, filter and mask the training data",
                       description="Curate corpora into one dataset folder: every row read is kept, or quarantined\n"
                                   "with the reason of the first step that failed it.",
                       epilog=CURATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--input", metavar="PATH", action="append", default=[], dest="inputs",
                   help="a corpus: .jsonl, .json, .jsonl.gz, .parquet or a datasets save_to_disk folder "
                        "(repeatable; default: the config's data.inputs, or the demo data)")
    p.add_argument("--format", choices=CURATE_FORMATS, help="layout of every input (default: the config's "
                                                            "curate.format, 'auto': detected per file)")
    p.add_argument("--output", metavar="DIR", help="also put report.json, quarantine.jsonl and the dataset folder in DIR")
    p.set_defaults(run=run)


def run(args) -> int:
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
    prepare_home()
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
    lines.append(f"{'MLflow run':<11} {r['run_id']}  (tracking: {tracking_uri()})")
    return "\n".join(lines)
