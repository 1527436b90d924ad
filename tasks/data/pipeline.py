"""The steps of a curation as a pipeline of chunks: per-row steps anywhere, dedup in input order.

`curate.steps` is cut into segments. Per-row steps (validate, length, quality, pii,
decontaminate) decide each row alone, so a run of them is one *row segment*, which may run on
any core or any machine. Exact and near dedup and synthesize must see the rows in order, so each
is an *ordered step*, run in one place. A row segment that precedes ordered steps also computes
their keys (exact-dedup digests, MinHash band keys: the costly, per-row part of dedup), so an
ordered step only looks keys up. Rows travel in chunks of `CHUNK_ROWS`; each chunk carries the
quarantine lines of the rows it lost (by input position) and the `StepStats` of every step that
ran on it, so where a segment ran changes nothing in what comes out.

The same pieces serve one process (`run_local`: row segments on a pool of `curate.processes`
workers, or inline), and shards on a cluster (`tasks.data.shards`: row segments as tasks per
shard, dedup steps called on one shard after another in input order). The configured order is
kept in both.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from configs.schema import CurateConfig
from tasks.data.records import Row
from tasks.data.stats import StepStats

CHUNK_ROWS = 1000
ORDERED_STEPS = ("exact_dedup", "near_dedup", "synthesize")


@dataclass
class Chunk:
    rows: list[Row]
    drops: list[tuple[int, str]] = field(default_factory=list)
    keys: dict[str, Any] = field(default_factory=dict)  # the next ordered steps' keys, by step
    stats: dict[str, StepStats] = field(default_factory=dict)
    rendered: Any = None  # `tasks.data.write.RenderedRows` of `rows`, which are then left empty

    def stats_for(self, step: str) -> StepStats:
        return self.stats.setdefault(step, StepStats(step))


def segments(steps: list[str]) -> list[tuple[str, list[str]]]:
    """("rows", [per-row steps]) and ("ordered", [step]) in config order."""
    out: list[tuple[str, list[str]]] = []
    for step in steps:
        if step in ORDERED_STEPS:
            out.append(("ordered", [step]))
        elif out and out[-1][0] == "rows":
            out[-1][1].append(step)
        else:
            out.append(("rows", [step]))
    return out


def keys_after(steps: list[str], index: int) -> list[str]:
    """The ordered dedup steps that directly follow segment `index`: their keys are computed there."""
    out = []
    for kind, names in segments(steps)[index + 1 :]:
        if kind != "ordered" or names[0] == "synthesize":
            break
        out.append(names[0])
    return out


# --------------------------------------------------------------------------- row segments


@dataclass
class _Setup:
    settings: CurateConfig
    eval_paths: list[str]
    steps: dict[str, Callable] = field(default_factory=dict)


_SETUP_LOCK = threading.Lock()
_SETUP: dict[str, _Setup] = {}  # per process: the built steps, by config (a decontamination index is built once)


def _file_version(path: str) -> str:
    """A path as it is now: an eval file rewritten between two runs of one process (a worker that
    serves many runs) must not be judged by the index of its old content."""
    try:
        st = os.stat(path)
    except OSError:
        return path
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def _setup(settings: CurateConfig, eval_paths: list[str]) -> _Setup:
    key = settings.model_dump_json() + "\0" + "\0".join(map(_file_version, eval_paths))
    with _SETUP_LOCK:  # shard tasks may run on threads of one process
        if key not in _SETUP:
            from tasks.data.steps import row_steps

            _SETUP.clear()
            _SETUP[key] = _Setup(settings, eval_paths, row_steps(settings, eval_paths))
        return _SETUP[key]


def run_rows(chunk: Chunk, step_names: list[str], keys: list[str], settings: CurateConfig, eval_paths: list[str]):
    """One row segment on one chunk, then the keys of the ordered steps after it. Runs in a worker
    process, a shard task or inline; CPU time is the thread's own, whoever else runs beside it."""
    setup = _setup(settings, eval_paths)
    rows = chunk.rows
    for name in step_names:
        stats = chunk.stats_for(name)
        start = time.thread_time()
        stats.rows_in += len(rows)
        rows = list(setup.steps[name](rows, stats))
        stats.rows_out += len(rows)
        stats.cpu_s += time.thread_time() - start
        chunk.drops += stats.drops
        stats.drops = []
    chunk.rows = rows
    for name in keys:
        start = time.thread_time()
        chunk.keys[name] = dedup_keys(name, rows, settings)
        chunk.stats_for(name).cpu_s += time.thread_time() - start
    return chunk


def dedup_keys(step: str, rows: list[Row], settings: CurateConfig) -> Any:
    from tasks.data.dedup import exact_keys, near_keys

    return exact_keys(rows) if step == "exact_dedup" else near_keys(rows, settings)


# --------------------------------------------------------------------------- ordered steps


@dataclass
class Decision:
    """What an ordered dedup step decided on one chunk: the rows it keeps, why it dropped the
    others (row index, reason, detail), and the CPU time it took."""

    step: str
    keep: np.ndarray  # bool, one per row of the chunk
    reasons: list[tuple[int, str, str]]
    cpu_s: float

    def apply(self, chunk: Chunk) -> Chunk:
        """Carries the decision out on the chunk's rows: quarantine lines for the dropped ones, the
        step's figures, and the later steps' keys for the rows kept."""
        start = time.thread_time()
        stats = chunk.stats_for(self.step)
        stats.rows_in += len(chunk.rows)
        for i, reason, detail in self.reasons:
            row = chunk.rows[i]
            stats.drop(row, row.id, reason, detail)
        if self.reasons:
            chunk.rows = [row for row, k in zip(chunk.rows, self.keep.tolist()) if k]
            chunk.keys = select_keys(chunk.keys, self.keep)
        stats.rows_out += len(chunk.rows)
        stats.cpu_s += self.cpu_s + time.thread_time() - start
        chunk.drops += stats.drops
        stats.drops = []
        return chunk


class OrderedSteps:
    """The state of the ordered steps across every chunk of a run, in input order."""

    def __init__(self, settings: CurateConfig, template_versions: dict[str, int | str] | None = None):
        from tasks.data.dedup import ExactDedup, NearDedup

        s = settings
        self.settings = settings
        self.exact = ExactDedup()
        self.near = NearDedup(
            s.minhash_threshold, s.minhash_num_perm, s.shingle_words, bands=s.minhash_bands, rows=s.minhash_rows
        )
        self.template_versions = template_versions
        self.seeds: list[Row] = []

    def run(self, step: str, chunk: Chunk) -> Chunk:
        """The step on one chunk's rows, in input order."""
        if step == "synthesize":
            return self._seeds(chunk)
        start = time.thread_time()
        keys = chunk.keys.pop(step, None)
        if keys is None:  # nothing computed them ahead (a synthesized chunk)
            keys = dedup_keys(step, chunk.rows, self.settings)
        decision = self.decide(step, [r.id for r in chunk.rows], [r.kind for r in chunk.rows], keys)
        decision.cpu_s = time.thread_time() - start
        return decision.apply(chunk)

    def decide(self, step: str, ids: list[str], kinds: list[str], keys: Any) -> Decision:
        """A dedup step's decision on one chunk from its rows' ids, kinds and keys alone: a shard's
        dedup call reads only these, and the shard's next task applies the decision to its rows."""
        start = time.thread_time()
        if step == "exact_dedup":
            verdicts = self.exact.decide(ids, keys)
            keep = [first is None for first in verdicts]
            reasons = [(i, "exact_duplicate", first) for i, first in enumerate(verdicts) if first is not None]
        else:
            found = self.near.decide_chunk(list(zip(ids, kinds)), keys)
            keep = [v.kept for v in found]
            reasons = [
                (i, "near_duplicate", f"{v.duplicate_of} jaccard={v.jaccard:.3f}")
                for i, v in enumerate(found)
                if not v.kept
            ]
        return Decision(step, np.array(keep, dtype=bool), reasons, time.thread_time() - start)

    def _seeds(self, chunk: Chunk) -> Chunk:
        start = time.thread_time()
        stats = chunk.stats_for("synthesize")
        cfg = self.settings.synthetic
        for row in chunk.rows:
            if cfg.enabled and row.kind == "sft" and (cfg.max_seeds is None or len(self.seeds) < cfg.max_seeds):
                self.seeds.append(row)
        stats.rows_in += len(chunk.rows)
        stats.rows_out += len(chunk.rows)
        stats.cpu_s += time.thread_time() - start
        return chunk

    def finish(self, step: str, first_pos: int) -> Chunk | None:
        """What a step adds once every row went by: the synthesize step's variants."""
        if step == "near_dedup":
            report = StepStats(step)
            report.info["clusters"] = self.near.report()
            return Chunk([], stats={step: report})
        if step != "synthesize" or not self.settings.synthetic.enabled:
            return None
        from tasks.data.synthetic import generate_variants, local_template_versions, make_teacher

        cfg = self.settings.synthetic
        stats = StepStats(step)
        start = time.thread_time()
        versions = self.template_versions or local_template_versions(cfg.operations)
        counts: Counter[str] = Counter()
        variants = list(generate_variants(self.seeds, cfg, make_teacher(cfg), versions, stats, counts))
        for i, row in enumerate(variants):
            row.pos = first_pos + i
        for key, n in counts.items():
            stats.stat_update(f"synthetic/{key}", value=n)
        stats.rows_out += len(variants)
        stats.cpu_s += time.thread_time() - start
        drops, stats.drops = stats.drops, []
        drops = [(first_pos + len(variants) + i, line) for i, (_, line) in enumerate(drops)]
        return Chunk(variants, drops=drops, stats={step: stats})

    def close(self) -> None:
        self.exact.close()
        self.near.close()


def select_keys(keys: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    """Every step's keys for the rows `mask` keeps."""
    return {name: _select(k, mask) for name, k in keys.items()}


def _select(keys: Any, mask: np.ndarray) -> Any:
    """A dedup step's keys for the rows `mask` keeps: exact digests, or near dedup's packed texts."""
    if isinstance(keys, np.ndarray):
        return keys[mask]
    buf, offs, lens, band_keys = keys
    return buf, offs[mask], lens[mask], band_keys[mask]


# --------------------------------------------------------------------------- one process


class _Inline:
    """An executor that runs each call at once, in this thread: `processes: 1`, same code path."""

    def submit(self, fn, *args):
        from concurrent.futures import Future

        future: Future = Future()
        future.set_result(fn(*args))
        return future


def process_count(settings: CurateConfig, input_bytes: int) -> int:
    """`curate.processes`: a number, or auto = every core this process may use, except for inputs
    under `AUTO_MIN_BYTES`, which finish before a pool of workers has started."""
    if settings.processes != "auto":
        return int(settings.processes)
    if input_bytes < AUTO_MIN_BYTES:
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


AUTO_MIN_BYTES = 16 << 20


def with_banding(settings: CurateConfig) -> CurateConfig:
    """The settings with near dedup's LSH banding worked out (datasketch's optimisation: about 0.7 s
    of numerical integration), so that worker processes computing band keys do not each redo it."""
    if settings.minhash_bands is not None or "near_dedup" not in settings.steps:
        return settings
    from tasks.data.dedup import index_threshold
    from tasks.data.minhash import lsh_params

    bands, rows = lsh_params(index_threshold(settings.minhash_threshold), settings.minhash_num_perm)
    return settings.model_copy(update={"minhash_bands": bands, "minhash_rows": rows})


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_local(
    chunks: Iterable[Chunk],
    settings: CurateConfig,
    eval_paths: list[str],
    processes: int,
    template_versions: dict[str, int | str] | None,
    positions: Callable[[], int],
) -> Iterator[Chunk]:
    """Every segment over the chunks, in order, row segments on `processes` workers (inline for 1).
    Chunks come out in input order, whatever worker finished first. `positions()` gives the input
    position after the last row read, where synthesized rows are placed."""
    from contextlib import ExitStack

    from tasks.data.minhash import ordered_map

    with ExitStack() as stack:
        if processes > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("forkserver")  # forks of a warm, single-threaded process
            context.set_forkserver_preload(["tasks.data.warm"])
            pool = stack.enter_context(ProcessPoolExecutor(processes, mp_context=context, initializer=_worker_init))
        else:
            pool = _Inline()
        ordered = OrderedSteps(settings, template_versions)
        stack.callback(ordered.close)
        shipped = with_banding(settings) if processes > 1 else settings
        stream: Iterable[Chunk] = chunks
        for index, (kind, names) in enumerate(segments(list(settings.steps))):
            if kind == "rows":
                args = (names, keys_after(list(settings.steps), index), shipped, eval_paths)
                stream = ordered_map(pool, run_rows, _with_args(stream, args), 2 * processes + 1)
            else:
                stream = _ordered(stream, ordered, names[0], positions)
        yield from stream


def _with_args(stream: Iterable[Chunk], args: tuple) -> Iterator[tuple]:
    for chunk in stream:
        yield (chunk, *args)


def _ordered(
    stream: Iterable[Chunk], ordered: OrderedSteps, step: str, positions: Callable[[], int]
) -> Iterator[Chunk]:
    for chunk in stream:
        yield ordered.run(step, chunk)
    tail = ordered.finish(step, positions())
    if tail is not None:
        yield tail
