"""`llmops drift`: do the current inputs still look like the training data? Exit code 3 when they do not."""

from __future__ import annotations

import json
from pathlib import Path

from llmops.commands.common import add_config_args, tracking_uri

DRIFT_EPILOG = """\
examples:
  llmops drift --reference latest --current inputs.jsonl     the newest curated dataset against today's inputs
  llmops drift --reference 3f9a2c --current inputs.jsonl.gz  a curated dataset by (a prefix of) its hash
  llmops drift --reference .llmops/data/curated/RUN/dataset-HASH --current inputs.jsonl --output out/
  llmops drift --reference train.jsonl --current inputs.jsonl --set drift.max_far_share=0.2

checks (thresholds in the config's drift: section, see docs/drift.md):
  embedding centroid distance and MMD p-value   all-MiniLM-L6-v2 embeddings; count together
  length PSI, language PSI                      prompt lengths in characters; detected languages
  share far from training                       inputs farther than 95% of unseen reference rows from every cluster
exit code 3: drift flagged (a schedule can alert on it); 2: bad input; 0: no drift
"""


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "drift",
        help="compare current inputs with the training data; exit code 3 on drift",
        description="Input drift: embeds the prompts of a reference (what the model was trained on)\n"
        "and of a current set, and checks meaning, length, language and novelty.",
        epilog=DRIFT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p)
    p.add_argument(
        "--reference",
        metavar="DATASET",
        default="latest",
        help="a dataset hash or prefix, a dataset-<hash> folder, a JSONL/Parquet file, or 'latest' "
        "(default: the newest dataset curated under $LLMOPS_HOME)",
    )
    p.add_argument(
        "--current",
        metavar="FILE",
        required=True,
        help="the inputs to check: .jsonl, .jsonl.gz or .parquet rows in any layout `llmops curate` reads",
    )
    p.add_argument(
        "--output", metavar="DIR", help="also write DIR/drift.json (every statistic and threshold) and DIR/drift.png"
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from configs.load import load_config
    from flows.drift import curated_root
    from tasks.drift.texts import resolve_reference

    load_config(args.config, args.overrides, check=False)  # a bad config or input fails here, before any work
    resolve_reference(args.reference, curated_root(), what="--reference")
    resolve_reference(args.current, None, what="--current")
    from llmops.home import prepare_home

    prepare_home()
    from flows.drift import drift_flow

    r = drift_flow(
        reference=args.reference,
        current=str(Path(args.current).resolve()),
        config_path=args.config or "",
        overrides=list(args.overrides),
        fail_on_drift=False,
    )
    result = r["result"]
    print()
    for side in ("reference", "current"):
        s = result[side]
        dropped = ", ".join(f"{k} {v}" for k, v in s["dropped"].items()) or "none"
        print(f"{side:<10} {', '.join(s['paths'])}")
        print(f"{'':<10} read {s['read']}, used {s['used']} (sampled out {s['sampled_out']}), dropped: {dropped}")
    print()
    print(r["table"])
    if args.output:
        import shutil

        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "drift.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        shutil.copy2(r["plot"], out / "drift.png")
        print(f"\nresults: {out / 'drift.json'}, figure: {out / 'drift.png'}")
    print(f"MLflow run: {r['run_id']}  (tracking: {tracking_uri()})")
    return 3 if r["flagged"] else 0
