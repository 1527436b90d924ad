"""Curation split into shards (record ranges) that run on a cluster, in the configured step order.

A shard is read and runs the first per-row steps (`read_shard`), which also compute the keys of
the dedup steps that follow; then each run of consecutive dedup steps (`shard_dedup`) and each
later run of per-row steps (`shard_rows`); `merge_shards` writes the dataset from every shard in
input order. So PII masking still runs after dedup, as configured, and the dataset is the one
`shards: 1` gives. Between tasks a shard's rows live in a file of pickled chunks under
`work_dir`, on storage every worker can reach; a task returns only a small `ShardState`.

Dedup resolves duplicates across shards: `shard_dedup` runs on one shard after another, in input
order, in one process, where each step's state (the keys of the rows kept so far) stays between
the calls. It reads only the shard's ids, kinds and keys (a file of their own beside the rows)
and writes its decisions; the shard's next task applies them to the rows as it reads them.
`tasks.data.shard_schedule` decides when each task runs.
"""

from __future__ import annotations

import pickle
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

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
    bytes_read: int = 0
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


def _decisions_file(state: ShardState, index: int) -> str:
    return str(Path(state.rows_file).parent / f"shard-{state.order:05d}.{index}.decisions.pkl")


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
    state.read, state.bytes_read, state.unreadable = ledger.read, ledger.bytes_read, ledger.unreadable
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
    `merge_shards` (in one process) only appends, hashes and encodes Parquet: writing each row was
    most of the work that did not split over the workers."""
    for chunk in chunks:
        chunk.rendered, chunk.rows = render_rows(chunk.rows), []
        yield chunk


def synthesize_shards(
    states: list[ShardState], index: int, settings: CurateConfig, template_versions: dict[str, int | str] | None = None
) -> list[ShardState]:
    """The synthesize step (`index`) over every shard's rows, in input order: its variants of the
    kept rows come at the end, as one more shard."""
    ordered = OrderedSteps(settings, template_versions)
    try:
        out = [_run_shard_rows(st, index, "synthesize", ordered) for st in sorted(states, key=lambda st: st.order)]
        tail = ordered.finish("synthesize", sum(st.read for st in states))
        if tail is not None:
            _add_tail(out, tail, index)
        return out
    finally:
        ordered.close()


def _run_shard_rows(st: ShardState, index: int, step: str, ordered: OrderedSteps) -> ShardState:
    """An ordered step on the shard's rows themselves (no keys were computed ahead: after synthesize)."""
    target = Path(st.rows_file).parent / f"shard-{st.order:05d}.{index}.pkl"
    _save((ordered.run(step, c) for c in _chunks(st)), target)
    return replace(st, rows_file=str(target), keys_file=None, decisions=[])


def _add_tail(out: list[ShardState], tail: Chunk, index: int) -> None:
    """Rows a step adds at the end become one more shard; a report alone rides on the last shard."""
    last = Path(out[-1].rows_file).parent / f"shard-tail-{index}.pkl"
    _save(iter([tail]), last)
    if tail.rows or tail.drops:
        out.append(ShardState(len(out) + index, "synthetic", str(last)))
    else:
        _append(out[-1], last)


def _append(state: ShardState, extra: Path) -> None:
    with open(state.rows_file, "ab") as f, open(extra, "rb") as g:
        f.write(g.read())


def merge_shards(
    states: Iterable[ShardState],
    out_dir: str,
    settings: CurateConfig,
    progress: list | None = None,
    bytes_total: int = 0,
) -> CurateResult:
    """The same outputs as `curate_dataset`, from every shard's final rows. `states` come in input
    order, and may be a generator that yields each shard when it is done: the merge then writes
    the first shards while the later ones still run, and `progress` (with the inputs' size in
    `bytes_total`) follows it."""
    from tasks.data.progress import ProgressMeter

    out = prepare(out_dir)
    ledger = Ledger(out / "quarantine.jsonl")
    sources: dict[str, dict[str, Any]] = {}

    def chunks() -> Iterator[Chunk]:
        for st in states:
            if st.path != "synthetic":
                ledger.absorb(st.read, {}, None, st.unreadable)
                ledger.bytes_read += st.bytes_read
                if not st.unreadable or st.read:
                    ledger.formats.setdefault(st.path, Counter()).update(st.formats)
                sources.setdefault(st.path, {"read": 0, "kept": 0})["read"] += st.read
            yield from _chunks(st)

    try:
        return write_outputs(out, ledger, chunks(), settings, sources, ProgressMeter(bytes_total, progress or []))
    finally:
        ledger.close()


# --------------------------------------------------------------------------- dedup, shard by shard

_RESIDENT: dict[tuple[str, int], tuple[OrderedSteps, int]] = {}  # (run, step index) -> state, next position


class DedupStateLost(RuntimeError):
    """A shard's dedup task ran where the step's state is not (a restarted or lost worker)."""


def shard_dedup(
    state: ShardState,
    indices: list[int],
    settings: CurateConfig,
    run: str,
    position: int,
    count: int,
) -> ShardState:
    """Dedup steps `indices` (consecutive in the plan) on the shard at `position` (of `count`, in
    input order), after the shards before it. Each step's state stays in this process between the
    calls of one `run`: they must all run here, in order (`tasks.data.shard_schedule` sees to
    both). The last call finishes the steps and frees their state."""
    steps = list(settings.steps)
    names = [segments(steps)[index][1][0] for index in indices]
    ordered: list[OrderedSteps] = []
    last = position == count - 1
    try:
        for index, name in zip(indices, names):
            ordered.append(_take_state(run, index, name, position, count, settings))
        if state.keys_file:
            out = _decide_shard(state, indices, names, ordered)
            for file, name, steps_state in zip(out.decisions[-len(indices) :], names, ordered):
                tail = steps_state.finish(name, 0) if last else None  # a dedup step adds no rows
                if tail is not None:  # only a report (near dedup's clusters): it rides on the last shard
                    with open(file, "ab") as d:
                        pickle.dump(tail, d, protocol=pickle.HIGHEST_PROTOCOL)
        else:  # no keys were computed ahead (after synthesize): the steps run on the rows
            out = state
            for index, name, steps_state in zip(indices, names, ordered):
                out = _run_shard_rows(out, index, name, steps_state)
                tail = steps_state.finish(name, 0) if last else None
                if tail is not None:
                    _add_tail([out], tail, index)
    except BaseException:
        for steps_state in ordered:
            steps_state.close()
        raise
    for index, steps_state in zip(indices, ordered):
        if last:
            steps_state.close()
        else:
            _RESIDENT[run, index] = (steps_state, position + 1)
    return out


def _take_state(run: str, index: int, step: str, position: int, count: int, settings: CurateConfig) -> OrderedSteps:
    if position == 0:
        return OrderedSteps(settings)
    ordered, expected = _RESIDENT.pop((run, index), (None, None))
    if ordered is None or expected != position:
        if ordered is not None:
            ordered.close()
        raise DedupStateLost(
            f"{step} of shard {position + 1} of {count} ran where the step's state is not (expected shard "
            f"{'none' if expected is None else expected + 1}): a worker restarted or the task moved; curate again"
        )
    return ordered


def _decide_shard(st: ShardState, indices: list[int], names: list[str], ordered: list[OrderedSteps]) -> ShardState:
    """Consecutive dedup steps from the shard's keys, chunk by chunk: each step's decisions go to
    a file of their own (the shard's next task applies them to the rows), and the keys of the rows
    a step keeps go straight to the next step. The shard's rows are not read."""
    files = [_decisions_file(st, index) for index in indices]
    with ExitStack() as stack:
        outs = [stack.enter_context(open(file, "wb")) for file in files]
        for ids, kinds, keys in _load(str(st.keys_file)):
            for name, steps_state, d in zip(names, ordered, outs):
                decision = steps_state.decide(name, ids, kinds, keys.pop(name))
                pickle.dump(decision, d, protocol=pickle.HIGHEST_PROTOCOL)
                keep = decision.keep.tolist()
                ids, kinds = [i for i, y in zip(ids, keep) if y], [c for c, y in zip(kinds, keep) if y]
                keys = select_keys(keys, decision.keep)
    return replace(st, keys_file=None, decisions=[*st.decisions, *files])


def release_dedup(run: str) -> int:
    """Frees what a failed `run` left of its dedup steps' state in this process; how many it freed."""
    stale = [key for key in _RESIDENT if key[0] == run]
    for key in stale:
        _RESIDENT.pop(key)[0].close()
    return len(stale)
