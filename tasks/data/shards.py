"""Curation split into shards (record ranges) that run on a cluster, in the configured step order.

The flow maps each row segment of `tasks.data.pipeline.segments` over the shards (`shard_rows`;
the first one also reads its range, `read_shard`), and runs each ordered step in one task over
every shard in input order (`shards_ordered`): the dedup keys are computed in the shards,
duplicates are resolved across shards, then the later steps run in the shards again. So PII
masking still runs after dedup, as configured, and the dataset is the one `shards: 1` gives.
Between tasks a shard's rows live in a file of pickled chunks under `work_dir`, on storage every
worker can reach; a task returns only a small `ShardState`.

A dedup step's task reads only the rows' ids, kinds and keys (a file of its own beside the rows)
and writes its decisions; the shard's next task applies them to the rows as it reads them. So the
one task that sees every shard never loads, pickles or writes the rows themselves: it is the part
of a sharded run that does not get faster with more workers.
"""

from __future__ import annotations

import pickle
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from configs.schema import CurateConfig
from tasks.data.curate import read_chunks
from tasks.data.pipeline import Chunk, OrderedSteps, keys_after, run_rows, segments, select_keys
from tasks.data.read import UnreadableInput, count_records, line_cap, probe_input, read_rows
from tasks.data.records import Ledger
from tasks.data.report import CurateResult, prepare, write_outputs
from tasks.data.write import render_rows


@dataclass
class ShardState:
    order: int
    path: str
    rows_file: str  # the shard's chunks after the last row segment that ran
    read: int = 0
    formats: dict[str, int] = field(default_factory=dict)
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    keys_file: str | None = None  # per chunk (ids, kinds, keys) for the next dedup steps, when they were computed
    decisions: list[str] = field(default_factory=list)  # dedup decisions not yet applied to the rows, in step order


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
            stop = min(n, start + size)
            specs.append({"order": len(specs), "path": path, "format": fmt, "start": start, "stop": stop})
            specs[-1]["unreadable"] = unreadable
    return specs


def _save(chunks: Iterator[Chunk], file: str | Path, keys_file: str | None = None) -> None:
    """The chunks to `file`; with `keys_file`, each chunk's dedup keys (with its rows' ids and kinds)
    go there instead, for the dedup tasks to read without the rows."""
    with ExitStack() as stack:
        f = stack.enter_context(open(file, "wb"))
        k = stack.enter_context(open(keys_file, "wb")) if keys_file is not None else None
        for chunk in chunks:
            if k is not None:
                ids, kinds = [r.id for r in chunk.rows], [r.kind for r in chunk.rows]
                pickle.dump((ids, kinds, chunk.keys), k, protocol=pickle.HIGHEST_PROTOCOL)
                chunk.keys = {}
            pickle.dump(chunk, f, protocol=pickle.HIGHEST_PROTOCOL)


def _load(file: str) -> Iterator[Any]:
    with open(file, "rb") as f:
        while True:
            try:
                yield pickle.load(f)
            except EOFError:
                return


def _chunks(state: ShardState) -> Iterator[Chunk]:
    """The shard's chunks with the dedup decisions made since its rows were written applied, in
    step order; then what a step added after every chunk (near dedup's cluster report)."""
    pending = [_load(file) for file in state.decisions]
    tails: list[Chunk] = []
    for chunk in _load(state.rows_file):
        for decisions in pending:
            chunk = next(decisions).apply(chunk)
        yield chunk
    for decisions in pending:
        tails += [item for item in decisions if isinstance(item, Chunk)]
    yield from tails


def _key_files(state: ShardState, index: int, more: bool) -> tuple[str, str | None]:
    base = Path(state.rows_file).parent / f"shard-{state.order:05d}.{index}"
    return f"{base}.decisions.pkl", (f"{base}.keys.pkl" if more else None)


def read_shard(spec: dict[str, Any], settings: CurateConfig, eval_paths: list[str], work_dir: str) -> ShardState:
    """Reads one record range and runs the first row segment (and the following dedup keys) on it."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    ledger = Ledger()
    state = ShardState(spec["order"], spec["path"], str(work / f"shard-{spec['order']:05d}.0.pkl"))
    rows: Iterator = iter(())
    if spec.get("unreadable"):
        ledger.mark_unreadable(spec["path"], **spec["unreadable"])
    else:
        try:
            cap = line_cap(settings.max_chars)
            found = read_rows(Path(spec["path"]), ledger, spec["format"], spec["start"], spec["stop"], cap=cap)
            rows = _positioned(found, ledger, spec["start"])
        except UnreadableInput as e:  # changed since it was planned
            ledger.mark_unreadable(spec["path"], e.problem, e.fix)
    steps = list(settings.steps)
    names, keys = segments(steps)[0][1], keys_after(steps, 0)
    chunks = (run_rows(c, names, keys, settings, eval_paths) for c in read_chunks(rows, ledger))
    if keys:
        state.keys_file = str(work / f"shard-{spec['order']:05d}.0.keys.pkl")
    _save(_rendered(chunks) if len(segments(steps)) == 1 else chunks, state.rows_file, state.keys_file)
    state.read, state.unreadable = ledger.read, ledger.unreadable
    state.formats = dict(ledger.formats.get(spec["path"], {}))
    return state


def _positioned(rows, ledger: Ledger, start: int):
    for row in rows:
        row.pos = ledger.read - 1  # within the shard: a chunk's drops are sorted within the chunk
        yield row


def shard_rows(state: ShardState, index: int, settings: CurateConfig, eval_paths: list[str]) -> ShardState:
    """Row segment `index` on one shard's rows."""
    steps = list(settings.steps)
    names, keys = segments(steps)[index][1], keys_after(steps, index)
    out = Path(state.rows_file).parent / f"shard-{state.order:05d}.{index}.pkl"
    keys_file = str(out.with_suffix(".keys.pkl")) if keys else None
    chunks = (run_rows(c, names, keys, settings, eval_paths) for c in _chunks(state))
    _save(_rendered(chunks) if index == len(segments(steps)) - 1 else chunks, out, keys_file)
    return replace(state, rows_file=str(out), keys_file=keys_file, decisions=[])


def _rendered(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """After the last segment a shard renders its kept rows as the dataset files hold them, so that
    `merge_shards` (one task) only appends, hashes and encodes Parquet: writing each row was most
    of the work that ran on one worker."""
    for chunk in chunks:
        chunk.rendered, chunk.rows = render_rows(chunk.rows), []
        yield chunk


def shards_ordered(
    states: list[ShardState], index: int, settings: CurateConfig, template_versions: dict[str, int | str] | None = None
) -> list[ShardState]:
    """Ordered step `index` (a dedup, or synthesize) over every shard, in input order. Rows a step
    adds at the end (a teacher's variants) become one more shard."""
    step = segments(list(settings.steps))[index][1][0]
    states = sorted(states, key=lambda st: st.order)
    ordered = OrderedSteps(settings, template_versions)
    try:
        if step != "synthesize" and all(st.keys_file for st in states):
            return _decide(states, index, step, ordered, bool(keys_after(list(settings.steps), index)))
        return _run_on_rows(states, index, step, ordered)
    finally:
        ordered.close()


def _decide(states: list[ShardState], index: int, step: str, ordered: OrderedSteps, more: bool) -> list[ShardState]:
    """A dedup step from every shard's keys: each shard gets a file of decisions (and the later
    dedup steps' keys of the rows it keeps), its rows stay where they are."""
    out: list[ShardState] = []
    for st in states:
        decisions_file, keys_file = _key_files(st, index, more)
        with ExitStack() as stack:
            d = stack.enter_context(open(decisions_file, "wb"))
            k = stack.enter_context(open(keys_file, "wb")) if keys_file is not None else None
            for ids, kinds, keys in _load(str(st.keys_file)):
                decision = ordered.decide(step, ids, kinds, keys.pop(step))
                pickle.dump(decision, d, protocol=pickle.HIGHEST_PROTOCOL)
                if k is not None:
                    keep = decision.keep.tolist()
                    kept = ([i for i, y in zip(ids, keep) if y], [c for c, y in zip(kinds, keep) if y])
                    pickle.dump((*kept, select_keys(keys, decision.keep)), k, protocol=pickle.HIGHEST_PROTOCOL)
        out.append(replace(st, keys_file=keys_file, decisions=[*st.decisions, decisions_file]))
    tail = ordered.finish(step, sum(st.read for st in states))
    if tail is not None:  # only a report (near dedup's clusters): it rides on the last shard
        with open(out[-1].decisions[-1], "ab") as d:
            pickle.dump(tail, d, protocol=pickle.HIGHEST_PROTOCOL)
    return out


def _run_on_rows(states: list[ShardState], index: int, step: str, ordered: OrderedSteps) -> list[ShardState]:
    out: list[ShardState] = []
    read = sum(st.read for st in states)
    for st in states:
        target = Path(st.rows_file).parent / f"shard-{st.order:05d}.{index}.pkl"
        _save((ordered.run(step, c) for c in _chunks(st)), target)
        out.append(replace(st, rows_file=str(target), keys_file=None, decisions=[]))
    tail = ordered.finish(step, read)
    if tail is not None:
        last = Path(states[-1].rows_file).parent / f"shard-tail-{index}.pkl"
        _save(iter([tail]), last)
        if tail.rows or tail.drops:
            out.append(ShardState(len(states) + index, "synthetic", str(last)))
        else:  # only a report (near dedup's clusters): it rides on the last shard
            _append(out[-1], last)
    return out


def _append(state: ShardState, extra: Path) -> None:
    with open(state.rows_file, "ab") as f, open(extra, "rb") as g:
        f.write(g.read())


def merge_shards(
    states: list[ShardState], out_dir: str, settings: CurateConfig, progress: list | None = None
) -> CurateResult:
    """The same outputs as `curate_dataset`, from every shard's final rows in input order."""
    from tasks.data.progress import ProgressMeter

    states = sorted(states, key=lambda st: st.order)
    out = prepare(out_dir)
    ledger = Ledger(out / "quarantine.jsonl")
    sources: dict[str, dict[str, Any]] = {}
    for st in states:
        if st.path == "synthetic":
            continue
        ledger.absorb(st.read, {}, None, st.unreadable)
        if not st.unreadable or st.read:
            ledger.formats.setdefault(st.path, __import__("collections").Counter()).update(st.formats)
        sources.setdefault(st.path, {"read": 0, "kept": 0})["read"] += st.read

    def chunks() -> Iterator[Chunk]:
        for st in states:
            yield from _chunks(st)

    try:
        return write_outputs(out, ledger, chunks(), settings, sources, ProgressMeter(0, progress or []))
    finally:
        ledger.close()


def run_all_shards(
    inputs: list[str], shards: int, settings: CurateConfig, eval_paths: list[str], out_dir: str
) -> CurateResult:
    """Every phase in this process, in turn: what the flow maps over a cluster, for tests and scripts."""
    work = str(Path(out_dir) / "shards")
    states = [read_shard(spec, settings, eval_paths, work) for spec in plan_shards(inputs, shards, settings.format)]
    for index, (kind, _) in enumerate(segments(list(settings.steps))):
        if index == 0:
            continue
        if kind == "ordered":
            states = shards_ordered(states, index, settings)
        else:
            states = [shard_rows(st, index, settings, eval_paths) for st in states]
    return merge_shards(states, out_dir, settings)
