"""The curation step: raw corpora in, one dataset folder out, every input row kept or quarantined.

The steps run as one stream in the order `CurateConfig.steps` lists, so no step holds the corpus in
memory, and a row leaves at the first step that fails it, under that step's reason, into
`quarantine.jsonl`. The default order is cheap-before-expensive with two fixed points: `validate`
comes first (the config refuses anything else) because it normalises the text every later step
compares; PII is masked late, on the survivors, so the masks never make two different rows look
alike, and decontamination then checks the text training will really see against the run's eval
split. The ledger must balance (read = kept + dropped + rows lost where an input broke) or the step
fails rather than hand training a silently shrunken set. An input that cannot be read is recorded
and the others are curated; `tasks.data.faults` then decides, once everything is written, whether
the run stops (unreadable inputs, a quality rule that dropped too much) or only warns.

Outputs, under `out_dir`: `report.json`, `quarantine.jsonl`, and `dataset-<hash16>/` holding one
Parquet file per kind present (`sft`, `pref`, `text`), the `sft.jsonl` / `pref.jsonl` that training
reads, and `DATACARD.md`. The hash is the sha256 of sft.jsonl, NUL, pref.jsonl (then NUL and the
text rows as JSON lines, when there are any): it names exactly what was written, so a training run
can record which data it saw, and the same rows always land in the same folder.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from configs.schema import CurateConfig
from tasks.data.card import write_data_card
from tasks.data.decontaminate import NgramIndex, build_ngram_index, decontaminate
from tasks.data.dedup import dedup_exact, dedup_minhash
from tasks.data.faults import check_finished_run, input_warnings, rule_shares
from tasks.data.filters import filter_length
from tasks.data.pii import mask_rows
from tasks.data.quality import QualityStats, filter_quality
from tasks.data.read import UnreadableInput, count_records, line_cap, probe_input, read_objects, read_rows
from tasks.data.records import Ledger, Row
from tasks.data.validate import validate_rows
from tasks.data.write import KINDS, DatasetWriter, publish


class _StepLedger:
    """The run's one ledger as a step sees it: each drop is also counted under the step's name,
    so the report can say which step took which rows. Steps only call `drop`."""

    def __init__(self, ledger: Ledger, step: str, by_step: dict[str, Counter[str]]):
        self._ledger, self._counts = ledger, by_step.setdefault(step, Counter())

    def drop(self, row: Row | dict[str, Any] | str, row_id: str, reason: str, detail: str = "") -> None:
        self._counts[reason] += 1
        self._ledger.drop(row, row_id, reason, detail)

    @property
    def read(self) -> int:  # the synthesize step adds the rows it creates to what was read
        return self._ledger.read

    @read.setter
    def read(self, value: int) -> None:
        self._ledger.read = value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, v in value.items():
            if key not in ("id", "role", "from"):  # labels, not text a model could learn
                yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _eval_index(paths: list[str], n: int, items: dict[str, int]) -> NgramIndex:
    """Every record of every eval set, as the joined text of all its string fields.

    Eval sets come in shapes no training format covers (question + target, prompt only), and an
    eval split a later stage will reject must not stop curation, so records are not mapped to rows:
    whatever text an item holds is what must not leak. `items` gets the records per set.
    """

    def texts() -> Iterator[tuple[str, str]]:
        for path in paths:
            items[path] = 0
            for fallback_id, obj in read_objects(Path(path)):
                items[path] += 1
                yield str(obj.get("id") or fallback_id), "\n".join(_strings(obj))

    return build_ngram_index(texts(), n)


Step = Callable[[Iterable[Row], Ledger], Iterator[Row]]


def build_steps(settings: CurateConfig, eval_paths: list[str], state: dict[str, Any]) -> dict[str, Step]:
    """The step functions by config name. `state` receives what the report needs from them, and may
    hold `template_versions` (the synthetic templates' registry versions) going in."""
    s = settings
    pii: Counter[str] = state.setdefault("pii", Counter({"email": 0, "phone": 0}))
    languages: Counter[str] = state.setdefault("languages", Counter())
    hits: Counter[str] = state.setdefault("decontamination", Counter())
    eval_items: dict[str, int] = state.setdefault("eval_items", {})
    quality = _quality_stats(state)

    def contamination(rows: Iterable[Row], ledger: Ledger) -> Iterator[Row]:
        index = _eval_index(eval_paths, s.decontaminate_n, eval_items)  # built when the stream first pulls
        yield from decontaminate(rows, ledger, index, s.decontaminate_n, hits)

    synth_counts: Counter[str] = state.setdefault("synthetic", Counter())

    def synthesize(rows: Iterable[Row], ledger: Ledger) -> Iterator[Row]:
        """Passes every row on, keeps up to `max_seeds` sft rows as seeds, then yields their variants."""
        cfg = s.synthetic
        if not cfg.enabled:
            yield from rows
            return
        seeds: list[Row] = []
        for row in rows:
            if row.kind == "sft" and (cfg.max_seeds is None or len(seeds) < cfg.max_seeds):
                seeds.append(row)
            yield row
        from tasks.data.synthetic import generate_variants, local_template_versions, make_teacher

        versions = state.get("template_versions") or local_template_versions(cfg.operations)
        yield from generate_variants(seeds, cfg, make_teacher(cfg), versions, ledger, synth_counts)

    return {
        "validate": validate_rows,
        "synthesize": synthesize,
        "exact_dedup": dedup_exact,
        "near_dedup": partial(_near_dedup, settings=s, report=state.setdefault("clusters", {})),
        "length": partial(_length, settings=s),
        "quality": partial(filter_quality, cfg=s.quality, language_counts=languages, stats=quality),
        "pii": (lambda rows, ledger: mask_rows(rows, pii)) if s.mask_pii else (lambda rows, ledger: iter(rows)),
        "decontaminate": contamination,
    }


def _quality_stats(state: dict[str, Any]) -> QualityStats:
    """The quality step's per-rule counts, kept in `state` so that shards' counts add up."""
    return QualityStats(
        seen=state.setdefault("quality_seen", Counter()),
        dropped=state.setdefault("quality_dropped", Counter()),
        examples=state.setdefault("quality_examples", {}),
    )


def _near_dedup(rows: Iterable[Row], ledger: Ledger, settings: CurateConfig, report: dict[str, Any]) -> Iterator[Row]:
    return dedup_minhash(
        rows,
        ledger,
        settings.minhash_num_perm,
        settings.minhash_threshold,
        settings.shingle_words,
        report=report,
        bands=settings.minhash_bands,
        rows_per_band=settings.minhash_rows,
        processes=settings.dedup_processes,
    )


def _length(rows: Iterable[Row], ledger: Ledger, settings: CurateConfig) -> Iterator[Row]:
    return filter_length(rows, ledger, settings.min_chars, settings.max_chars)


def _read_inputs(
    inputs: list[str], ledger: Ledger, fmt: str, sources: dict[str, dict[str, Any]], cap: int
) -> Iterator[Row]:
    """Every input's rows in turn; one that cannot be read is recorded in the ledger and skipped."""
    for p in inputs:
        path = str(Path(p))
        source = sources.setdefault(path, {"read": 0, "kept": 0})
        try:
            rows = read_rows(Path(path), ledger, fmt, cap=cap)
        except UnreadableInput as e:
            ledger.mark_unreadable(path, e.problem, e.fix)
            continue
        before = ledger.read
        yield from rows
        source["read"] += ledger.read - before


def curate_dataset(
    inputs: list[str],
    out_dir: str,
    settings: CurateConfig,
    eval_paths: list[str] | None = None,
    template_versions: dict[str, int | str] | None = None,
) -> dict[str, Any]:
    """Runs the configured steps, in order, over every input as one stream; writes the dataset
    folder, quarantine, report and card. `eval_paths` (the run's eval split) and
    `settings.decontaminate_paths` are what the decontaminate step indexes."""
    out = _prepare(out_dir)
    ledger = Ledger(out / "quarantine.jsonl")
    state: dict[str, Any] = {"template_versions": template_versions}
    sources: dict[str, dict[str, Any]] = {}
    by_step: dict[str, Counter[str]] = {}
    steps = build_steps(settings, _eval_list(settings, eval_paths), state)
    try:
        rows = _read_inputs(inputs, ledger, settings.format, sources, line_cap(settings.max_chars))
        for name in settings.steps:
            rows = steps[name](rows, _StepLedger(ledger, name, by_step))  # type: ignore[arg-type]
        return _write_and_report(out, ledger, rows, settings, state, sources, by_step)
    finally:
        ledger.close()


# --------------------------------------------------------------------------------- shards

# Steps that must see every earlier row: with shards they run once, over all shards' kept rows in
# input order, after the row-by-row steps ran on each shard in parallel.
GLOBAL_STEPS = ("exact_dedup", "near_dedup")


def plan_shards(inputs: list[str], shards: int, fmt: str) -> list[dict[str, Any]]:
    """Splits the inputs into about `shards` contiguous record ranges, never across files. An input
    that cannot be read gets one empty spec carrying the reason, so the merged report names it."""
    counts: list[tuple[str, int, dict[str, str] | None]] = []
    for p in inputs:
        path = str(Path(p))
        try:
            probe_input(Path(path), fmt)
            counts.append((path, count_records(Path(path)), None))
        except UnreadableInput as e:
            counts.append((path, 0, {"reason": e.problem, "fix": e.fix}))
    size = max(1, -(-sum(n for _, n, _ in counts) // max(1, shards)))
    specs: list[dict[str, Any]] = []
    for path, n, unreadable in counts:
        for start in range(0, max(n, 1), size):
            specs.append(
                {
                    "order": len(specs),
                    "path": path,
                    "format": fmt,
                    "start": start,
                    "stop": min(n, start + size),
                    "unreadable": unreadable,
                }
            )
    return specs


def curate_shard(
    spec: dict[str, Any],
    settings: CurateConfig,
    eval_paths: list[str],
    work_dir: str,
    template_versions: dict[str, int | str] | None = None,
) -> dict[str, Any]:
    """The row-by-row steps (all but exact and near dedup), in config order, on one record range."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    name = f"shard-{spec['order']:05d}"
    quarantine, kept_path = work / f"{name}.quarantine.jsonl", work / f"{name}.jsonl"
    ledger = Ledger(quarantine)
    state: dict[str, Any] = {"template_versions": template_versions}
    by_step: dict[str, Counter[str]] = {}
    steps = build_steps(settings, eval_paths, state)
    try:
        rows: Iterable[Row] = ()
        if spec.get("unreadable"):
            ledger.mark_unreadable(spec["path"], **spec["unreadable"])
        else:
            try:
                rows = read_rows(
                    Path(spec["path"]),
                    ledger,
                    spec["format"],
                    spec["start"],
                    spec["stop"],
                    cap=line_cap(settings.max_chars),
                )
            except UnreadableInput as e:  # changed since it was planned
                ledger.mark_unreadable(spec["path"], e.problem, e.fix)
        for step in settings.steps:
            if step not in GLOBAL_STEPS:
                rows = steps[step](rows, _StepLedger(ledger, step, by_step))  # type: ignore[arg-type]
        with open(kept_path, "w", encoding="utf-8") as f:
            for row in ledger.count_kept(rows):
                f.write(
                    json.dumps(
                        {"id": row.id, "kind": row.kind, "source": row.source, "data": row.data}, ensure_ascii=False
                    )
                    + "\n"
                )
    finally:
        ledger.close()
    ledger.check_balance()
    return {
        **spec,
        "read": ledger.read,
        "kept": ledger.kept,
        "dropped": dict(ledger.dropped),
        "unreadable": ledger.unreadable,
        "formats": dict(ledger.formats.get(spec["path"], {})),
        "by_step": {k: dict(v) for k, v in by_step.items()},
        "kept_path": str(kept_path),
        "quarantine_path": str(quarantine),
        "state": {k: (dict(v) if isinstance(v, Counter) else v) for k, v in state.items()},
    }


def merge_shards(shards: list[dict[str, Any]], out_dir: str, settings: CurateConfig) -> dict[str, Any]:
    """Exact and near dedup over every shard's kept rows in input order, then the same outputs as
    `curate_dataset`: the result does not depend on which worker ran which shard."""
    shards = sorted(shards, key=lambda sh: sh["order"])
    out = _prepare(out_dir)
    ledger = Ledger(out / "quarantine.jsonl")
    state: dict[str, Any] = {
        "pii": Counter(),
        "languages": Counter(),
        "decontamination": Counter(),
        "synthetic": Counter(),
        "eval_items": {},
        "quality_seen": Counter(),
        "quality_dropped": Counter(),
        "quality_examples": {},
    }
    sources: dict[str, dict[str, Any]] = {}
    by_step: dict[str, Counter[str]] = {}
    for sh in shards:
        ledger.absorb(sh["read"], sh["dropped"], Path(sh["quarantine_path"]), sh["unreadable"])
        if not sh["unreadable"] or sh["read"]:
            ledger.formats.setdefault(sh["path"], Counter()).update(sh["formats"])
        source = sources.setdefault(sh["path"], {"read": 0, "kept": 0})
        source["read"] += sh["read"]
        for step, counts in sh["by_step"].items():
            by_step.setdefault(step, Counter()).update(counts)
        for key, value in sh["state"].items():
            if key in ("clusters", "template_versions"):  # near dedup runs here, not in the shards
                continue
            if key == "eval_items":
                state["eval_items"] = value or state["eval_items"]
            elif key == "quality_examples":  # the first three per rule, in input order
                for reason, examples in value.items():
                    kept = state[key].setdefault(reason, [])
                    kept += examples[: 3 - len(kept)]
            else:
                state[key].update(value)
    steps = build_steps(settings, [], state)

    def kept_rows() -> Iterator[Row]:
        for sh in shards:
            with open(sh["kept_path"], encoding="utf-8") as f:
                for line in f:
                    r = json.loads(line)
                    yield Row(id=r["id"], kind=r["kind"], data=r["data"], source=r["source"])

    try:
        rows: Iterator[Row] = kept_rows()
        for step in settings.steps:
            if step in GLOBAL_STEPS:
                rows = steps[step](rows, _StepLedger(ledger, step, by_step))  # type: ignore[arg-type]
        return _write_and_report(out, ledger, rows, settings, state, sources, by_step)
    finally:
        ledger.close()


# --------------------------------------------------------------------------------- outputs


def _prepare(out_dir: str) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    partial_dir = out / ".dataset-partial"
    if partial_dir.exists():
        shutil.rmtree(partial_dir)  # left by a run that crashed
    partial_dir.mkdir()
    return out


def _eval_list(settings: CurateConfig, eval_paths: list[str] | None) -> list[str]:
    return list(dict.fromkeys([*(eval_paths or []), *settings.decontaminate_paths]))


def _write_and_report(
    out: Path,
    ledger: Ledger,
    rows: Iterable[Row],
    settings: CurateConfig,
    state: dict[str, Any],
    sources: dict[str, dict[str, Any]],
    by_step: dict[str, Counter[str]],
) -> dict[str, Any]:
    partial_dir = out / ".dataset-partial"
    with ExitStack() as stack:
        writer = DatasetWriter(partial_dir, stack)
        for row in ledger.count_kept(rows):
            writer.write(row)
            sources.setdefault(row.source, {"format": "teacher", "read": 0, "kept": 0})["kept"] += 1
        dataset_hash = writer.finish()
    ledger.close()
    ledger.check_balance()

    dataset_dir = out / f"dataset-{dataset_hash[:16]}"
    publish(partial_dir, dataset_dir)
    by_step = {"read": ledger.dropped - sum(by_step.values(), Counter()), **by_step}  # read: what no step saw
    if "synthetic" in sources:  # variants a teacher wrote count as read from the "synthetic" source
        sources["synthetic"]["read"] = state.get("synthetic", {}).get("generated", 0)
    for path, src in sources.items():
        if "format" not in src:  # an input (a teacher's rows carry theirs)
            counts = ledger.formats.get(path, Counter())
            src["format"], src["formats"] = _format_label(counts), dict(counts.most_common())
    quality = _quality_stats(state)
    report: dict[str, Any] = {
        **ledger.summary(),
        "format": {path: _format_label(counts) for path, counts in ledger.formats.items()},
        "formats": {path: dict(counts.most_common()) for path, counts in ledger.formats.items()},
        "sources": sources,
        "steps": list(settings.steps),
        "shards": settings.shards,
        "dropped_by_step": {step: dict(sorted(c.items())) for step, c in by_step.items() if c},
        "pii": dict(sorted(state.get("pii", {}).items())),
        "languages": dict(Counter(state.get("languages", {})).most_common()),
        "decontamination": dict(sorted(state.get("decontamination", {}).items(), key=lambda kv: (-kv[1], kv[0]))),
        "eval_items": state.get("eval_items", {}),
        "dataset_hash": dataset_hash,
        "dataset_hash_short": dataset_hash[:16],
        **{f"{kind}_rows": writer.rows[kind] for kind in KINDS},
        "synthetic_rows": writer.synthetic,
        "synthetic": dict(sorted(state.get("synthetic", {}).items())),
        "quality": {
            "max_drop_fraction": settings.quality.max_drop_fraction,
            "seen": dict(quality.seen),
            "rules": rule_shares(quality),
        },
    }
    report["warnings"] = input_warnings(report, settings)
    card = write_data_card(report, settings, dataset_dir)
    paths = {"quarantine": out / "quarantine.jsonl", "report": out / "report.json", "clusters": out / "clusters.json"}
    paths["clusters"].write_text(json.dumps(state.get("clusters") or {}, indent=1) + "\n", encoding="utf-8")
    report["near_duplicate_clusters"] = (state.get("clusters") or {}).get("clusters", 0)
    paths["report"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    result = (
        report
        | {f"{name}_path": str(path) for name, path in paths.items()}
        | {
            "sft_path": str(dataset_dir / "sft.jsonl"),
            "pref_path": str(dataset_dir / "pref.jsonl"),
            "card_path": str(card),
            "dataset_dir": str(dataset_dir),
        }
    )
    check_finished_run(result, settings, quality)
    return result


def _format_label(counts: Counter[str]) -> str:
    """What the report calls an input's format: the one its rows had, "mixed", or "unknown" (no rows)."""
    return next(iter(counts)) if len(counts) == 1 else ("mixed" if counts else "unknown")
