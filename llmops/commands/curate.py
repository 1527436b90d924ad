"""`llmops curate`: raw corpora in, one dataset folder out, every dropped row with its reason."""

from __future__ import annotations

import json
from pathlib import Path

from core.paths import llmops_home
from llmops.commands.common import add_config_args, tracking_uri
from llmops.home import prepare_home

CURATE_FORMATS = ["auto", "text", "messages", "alpaca", "qa", "pref", "hh"]  # configs.schema.CurateConfig.format
CURATE_EPILOG = """\
examples:
  llmops curate                                   the demo data, steps and thresholds from configs/nightly.yaml
  llmops curate --input hh_harmless.jsonl.gz --output out/hh
                                                  an Anthropic HH file (format auto-detected); results in out/hh
  llmops curate --input a.jsonl --input b.parquet --format messages
  llmops curate --set 'curate.steps=[validate,exact_dedup,length,pii]' --set curate.min_chars=20
  llmops curate --set curate.quality.gopher_enabled=true       web-page quality rules on (for web text)

formats: auto (each row read as the format it fits; a file may mix them), text, messages (OpenAI or
         ShareGPT), alpaca, qa (question/answer), pref (prompt/chosen/rejected), hh (Anthropic HH)
steps (curate.steps, validate first): validate exact_dedup near_dedup length quality pii decontaminate
Rows are decontaminated against data.eval_path (the demo eval split when none is set) and
curate.decontaminate_paths. Outputs: report.json (counts), quarantine.jsonl (each dropped row and
its reason), dataset-<hash>/ (sft/pref/text .parquet, sft.jsonl and pref.jsonl for training,
DATACARD.md).
Exit code 2, after writing the outputs, when an input cannot be read (curate.allow_unreadable=true
accepts what could be read) or a quality rule drops more than curate.quality.max_drop_fraction of
the rows it saw. See docs/curation-faults.md.
"""


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "curate",
        help="validate, dedup, filter and mask the training data",
        description="Curate corpora into one dataset folder: every row read is kept, or quarantined\n"
        "with the reason of the first step that failed it.",
        epilog=CURATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p)
    p.add_argument(
        "--input",
        metavar="PATH",
        action="append",
        default=[],
        dest="inputs",
        help="a corpus: .jsonl, .json, .jsonl.gz, .parquet or a datasets save_to_disk folder "
        "(repeatable; default: the config's data.inputs, or the demo data)",
    )
    p.add_argument(
        "--format",
        choices=CURATE_FORMATS,
        help="layout of every input (default: the config's curate.format, 'auto': detected per file)",
    )
    p.add_argument(
        "--output", metavar="DIR", help="also put report.json, quarantine.jsonl and the dataset folder in DIR"
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from configs.load import load_config

    overrides = list(args.overrides) + ([f"curate.format={args.format}"] if args.format else [])
    if args.inputs:
        d = load_config(args.config, overrides, check=False)
        _check_inputs(args.inputs, d.curate.format)
        eval_path = d.data.eval_path
        if not eval_path:  # decontaminate against the split `llmops evaluate` would use
            from tasks.data.demo import write_demo_data

            eval_path = write_demo_data(
                llmops_home() / "data" / f"demo-seed{d.data.seed}",
                d.data.seed,
                d.data.demo_train_rows,
                d.data.demo_pref_rows,
                d.data.demo_eval_rows,
            )["eval"]
        inputs = [str(Path(p).resolve()) for p in args.inputs]
        overrides += [f"data.inputs={json.dumps(inputs)}", f"data.eval_path={json.dumps(str(eval_path))}"]
    config = load_config(args.config, overrides)
    prepare_home()
    from core.errors import UserError
    from flows.curate import run_curate
    from tasks.data.faults import CurationStopped

    try:
        with _live_progress():
            r = run_curate(config)
    except CurationStopped as stop:  # outputs were written: show and copy them, then fail
        where = _show(args, stop.result, config, stopped=True)
        fix = stop.fix
        for name in ("report", "quarantine"):  # name the copies under --output, if any
            fix = fix.replace(getattr(stop.result, f"{name}_path"), str(where[name]))
        raise UserError(stop.subject, stop.problem, fix) from None
    _show(args, r, config)
    return 0


class _Bar:
    """The live line on a terminal: rows, rows/s, kept, dropped, a bar and the ETA from bytes read."""

    def __init__(self, stream):
        self.stream, self.shown = stream, False

    def __call__(self, p) -> None:
        width = 24
        f = p.fraction
        bar = ("#" * int(width * f)).ljust(width, ".") if f is not None else "?" * width
        self.stream.write("\r\033[K" + f"[{bar}] " + p.line().removeprefix("curate: "))
        if p.done:
            self.stream.write("\n")
        self.stream.flush()
        self.shown = not p.done

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _live_progress():
    """On a terminal, a live bar while curation runs, and the flow's plain progress lines kept off
    it; elsewhere (a log file, CI, a worker) the plain lines, every 10 s, are the progress."""
    import contextlib
    import logging
    import sys

    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    from flows.curate import progress_filter
    from tasks.data.progress import watch

    @contextlib.contextmanager
    def live():
        bar, quiet = _Bar(sys.stderr), progress_filter()
        handlers = [h for h in logging.getLogger("prefect").handlers if isinstance(h, logging.StreamHandler)]
        for h in handlers:
            h.addFilter(quiet)
        try:
            with watch(bar):
                yield
        finally:
            bar.close()
            for h in handlers:
                h.removeFilter(quiet)

    return live()


def _check_inputs(inputs: list[str], fmt: str) -> None:
    """Fails before any run starts when an input is missing or none can be read; an unreadable
    input beside readable ones is left to the run, which curates the others and reports it."""
    from core.errors import UserError
    from tasks.data.read import UnreadableInput, probe_input

    missing = [p for p in inputs if not Path(p).exists()]
    if missing:
        raise UserError(f"--input {', '.join(missing)}", "not found", "check the path")
    problems = []
    for p in inputs:
        try:
            probe_input(Path(p), fmt)
        except UnreadableInput as e:
            problems.append((p, e))
    if len(problems) == 1 and len(inputs) == 1:
        raise UserError(problems[0][0], problems[0][1].problem, problems[0][1].fix)
    if problems and len(problems) == len(inputs):
        raise UserError(
            f"--input ({len(inputs)} files)",
            "none can be read: " + "; ".join(f"{p}: {e.problem}" for p, e in problems),
            "fix them or give other inputs",
        )


def _show(args, r, config, stopped: bool = False) -> dict:
    """Prints the summary, after copying the outputs to --output; returns where each output is.
    `r` is the run's `CurateResult`."""
    where = {
        "dataset": r.dataset_dir,
        "report": r.report_path,
        "quarantine": r.quarantine_path,
        "data card": r.card_path,
    }
    if args.output:
        import shutil

        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        dataset = out / Path(r.dataset_dir).name
        shutil.copytree(r.dataset_dir, dataset, dirs_exist_ok=True)
        where = {
            "dataset": str(dataset),
            "report": shutil.copy2(r.report_path, out / "report.json"),
            "quarantine": shutil.copy2(r.quarantine_path, out / "quarantine.jsonl"),
            "data card": str(dataset / "DATACARD.md"),
        }
    print(_curate_summary(r, config.curate.format, where, stopped))
    return where


def _curate_summary(result, fmt: str, where: dict, stopped: bool = False) -> str:
    r = result.report
    dropped = sum(result.dropped.values())
    lines = [
        "",
        f"== curate {'stopped (see the error below)' if stopped else 'finished'} ==",
        f"read {result.read} rows: kept {result.kept}, dropped {dropped}"
        + (f", cut off {r['unreadable_rows']}" if r.get("unreadable_rows") else ""),
        "",
    ]
    how = "auto-detected" if fmt == "auto" else "as configured"
    for path, src in r["sources"].items():
        formats = src.get("formats") or {}
        shown = (
            f"mixed ({how} per row: {', '.join(f'{k} {n}' for k, n in formats.items())})"
            if len(formats) > 1
            else f"{src['format']} ({how})"
        )
        lines += [f"input {path}", f"  format: {shown}   read {src['read']}, kept {src['kept']}"]
    for u in r.get("unreadable", []):
        lines += [f"unreadable {u['path']}", f"  {u['reason']}"]
    step_of = {reason: step for step, reasons in r["dropped_by_step"].items() for reason in reasons}
    if result.dropped:
        width = max(len(k) for k in result.dropped)
        lines += ["", f"  {'dropped':<{width}}  {'rows':>6}  step"]
        lines += [
            f"  {reason:<{width}}  {n:>6}  {step_of.get(reason, '')}"
            for reason, n in sorted(result.dropped.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
    lines += ["", f"steps: {' -> '.join(r['steps'])}"]
    figures = r.get("step_figures", [])
    if figures:
        lines += ["", f"  {'step':<14} {'rows in':>9} {'rows out':>9} {'CPU s':>8} {'rows/s':>9}"]
        lines += [
            f"  {f['step']:<14} {f['rows_in']:>9} {f['rows_out']:>9} {f['cpu_s']:>8.2f} {f['rows_per_s'] or '':>9}"
            for f in figures
        ]
    if r["decontamination"]:
        lines.append(f"eval items leaked into training rows: {len(r['decontamination'])} (see report.json)")
    lines += [f"warning: {w}" for w in r.get("warnings", [])]
    kinds = ", ".join(f"{kind} {r[f'{kind}_rows']}" for kind in ("sft", "pref", "text"))
    lines += ["", f"{'dataset':<11} {where['dataset']}  ({kinds} rows; hash {result.dataset_hash[:16]})"]
    lines += [f"{name:<11} {where[name]}" for name in ("report", "quarantine", "data card")]
    if result.run_id:
        lines.append(f"{'MLflow run':<11} {result.run_id}  (tracking: {tracking_uri()})")
    if not stopped:
        lines.append(f"dataset {result.dataset_hash}")  # last: what `llmops train --dataset` takes
    return "\n".join(lines)
