"""When each task of a sharded curation runs: as soon as what it reads is done.

A shard goes through the step segments in order (`tasks.data.pipeline.segments`): it is read and
runs the first row steps (`read_shard`), then each dedup step (`shard_dedup`) and each later row
segment (`shard_rows`). A row task waits only on its own shard's task before it. A dedup task also
waits on the same step over the shard before, and every dedup task runs in one process, where the
steps' state lives, one at a time, beside that worker's row tasks rather than in its task slot (a
Dask actor; on a thread pool, a thread of its own). So the dedup of shard 3 overlaps the later
steps of shard 1 and the reading of shard 7, instead of every worker but one waiting for a dedup
pass over all shards, or the dedup of the next shard waiting for a row task to end.

Each task is given the finished state of the task before it, not its future: a scheduler then
places a row task on whichever worker is free, instead of beside the small state it reads. The
synthesize step needs every shard's rows before any shard goes on, so it runs as one task between
the pipelined parts. The merge runs in this process and takes each shard as soon as it and the
shards before it are done, so the dataset is mostly written when the last shard ends.

Where tasks run is a `Submitter`: `Inline` (this process, for tests and scripts), `OnDask` (a
`distributed.Client`), or the flow's Prefect task runner (`flows/curate.py`).
"""

from __future__ import annotations

import contextvars
import queue
import shutil
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from configs.schema import CurateConfig
from tasks.data.pipeline import segments
from tasks.data.read import input_bytes
from tasks.data.report import CurateResult
from tasks.data.shards import (
    ShardState,
    merge_shards,
    plan_shards,
    read_shard,
    release_dedup,
    shard_dedup,
    shard_rows,
    synthesize_shards,
)

POLL_S = 0.05  # how often the loop looks for finished tasks


class Submitter(Protocol):
    """`submit(fn, *args)` starts `fn(*args)` wherever there is room and returns its future;
    `ordered` runs it in the one process that holds the dedup state, after the calls before it."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    def ordered(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    def done(self, future: Any) -> bool: ...

    def result(self, future: Any) -> Any: ...

    def close(self) -> None: ...


class Inline:
    """Each task at once, in this process, when it is submitted."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    ordered = submit

    def done(self, future: Any) -> bool:
        return True

    def result(self, future: Any) -> Any:
        return future

    def close(self) -> None:
        pass


class Resident:
    """A Dask actor: its calls run one at a time in the worker process that holds it, in a thread
    of their own, so they never wait for a free task slot."""

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


class DaskResident:
    """The `Resident` actor of one curation on `client`'s cluster, started at its first call."""

    def __init__(self, client: Any):
        self.client, self.future, self.actor = client, None, None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.actor is None:
            with self.client.as_current():  # the actor's handle talks through the client current here
                self.future = self.client.submit(Resident, actor=True)
                self.actor = self.future.result()
        return self.actor.call(fn, *args)

    def close(self) -> None:
        if self.future is not None:
            self.future.release()
        self.future = self.actor = None


class LocalResident:
    """Ordered calls in a thread of this process, one at a time (a thread pool's runs)."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self.executor = ThreadPoolExecutor(1, thread_name_prefix="curate-dedup")

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.executor.submit(fn, *args)

    def close(self) -> None:
        self.executor.shutdown(wait=True)


class OnDask:
    """Tasks on a Dask cluster through `client`; the ordered ones on the `Resident` actor."""

    def __init__(self, client: Any):
        self.client, self.resident = client, DaskResident(client)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def ordered(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.resident.call(fn, *args)

    def done(self, future: Any) -> bool:
        return future.done()

    def result(self, future: Any) -> Any:
        return future.result()

    def close(self) -> None:
        self.resident.close()


def curate_shards(
    specs: list[dict[str, Any]],
    settings: CurateConfig,
    eval_paths: list[str],
    out_dir: str,
    on: Submitter,
    template_versions: dict[str, int | str] | None = None,
    progress: list | None = None,
) -> CurateResult:
    """A sharded curation: every shard task through `on`, and the merge in this process, which
    writes each shard once it and the ones before it are done."""
    from concurrent.futures import ThreadPoolExecutor

    finished: queue.Queue = queue.Queue()
    end, failed = object(), object()

    def in_order() -> Iterator[ShardState]:
        while (item := finished.get()) is not end:
            if item is failed:  # a shard task failed: stop before the partial dataset is published
                raise RuntimeError("a shard task failed")
            yield item

    work_dir = str(Path(out_dir) / "shards")
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="curate-merge") as pool:
            # The caller's context goes along: a flow's progress listeners report to its run.
            run_merge = contextvars.copy_context().run
            total = sum(input_bytes(Path(path)) for path in dict.fromkeys(spec["path"] for spec in specs))
            merged = pool.submit(run_merge, merge_shards, in_order(), out_dir, settings, progress, total)
            try:
                submit_shards(specs, settings, eval_paths, work_dir, on, template_versions, finished.put)
            except BaseException:
                finished.put(failed)
                raise
            finished.put(end)
            return merged.result()
    finally:  # the shards' files between tasks: several times the input, of no use once merged
        shutil.rmtree(work_dir, ignore_errors=True)


def submit_shards(
    specs: list[dict[str, Any]],
    settings: CurateConfig,
    eval_paths: list[str],
    work_dir: str,
    on: Submitter,
    template_versions: dict[str, int | str] | None = None,
    emit: Callable[[ShardState], Any] | None = None,
) -> list[ShardState]:
    """Every task of a sharded curation but the merge; each shard's final state, in input order,
    also handed to `emit` as soon as it and the shards before it are done."""
    run = uuid.uuid4().hex
    plan = segments(list(settings.steps))
    barriers = [i for i, (_, names) in enumerate(plan) if names[0] == "synthesize"]
    try:
        states: list[Any] = list(specs)
        start = 0
        for barrier in [*barriers, len(plan)]:
            last = barrier == len(plan)
            part = list(range(start, barrier))
            states = _pipeline(states, part, run, settings, eval_paths, work_dir, on, emit if last else None)
            if not last:
                states = on.result(on.submit(synthesize_shards, states, barrier, settings, template_versions))
            start = barrier + 1
        return states
    except Exception:
        with suppress(Exception):  # the error that stopped the run is the one to report
            on.result(on.ordered(release_dedup, run))
        raise
    finally:
        on.close()


def _pipeline(
    states: list[Any],
    indices: list[int],
    run: str,
    settings: CurateConfig,
    eval_paths: list[str],
    work_dir: str,
    on: Submitter,
    emit: Callable[[ShardState], Any] | None = None,
) -> list[Any]:
    """Segments `indices` (no synthesize among them) on every shard; `states` are the shards'
    specs when segment 0 (reading) is among them. `emit` gets each finished shard in order."""
    stages = _stages(segments(list(settings.steps)), indices)
    count = len(states)
    done = [0] * count  # how many of `stages` each shard has been through
    turn = [0] * len(stages)  # per dedup stage, the next shard in line
    running: list[tuple[Any, int]] = []  # (future, shard)
    emitted = 0  # shards handed to `emit`

    def emit_done(emitted: int) -> int:
        while emit is not None and emitted < count and done[emitted] == len(stages):
            emit(states[emitted])
            emitted += 1
        return emitted

    def start(i: int) -> Any:
        kind, group = stages[done[i]]
        if kind == "read":
            return on.submit(read_shard, states[i], settings, eval_paths, work_dir)
        if kind == "rows":
            return on.submit(shard_rows, states[i], group[0], settings, eval_paths)
        if turn[done[i]] != i:
            return None  # the shard before is not through these dedup steps yet
        return on.ordered(shard_dedup, states[i], group, settings, run, i, count)

    def start_ready() -> None:
        busy = {i for _, i in running}
        for i in range(count):
            if i not in busy and done[i] < len(stages):
                future = start(i)
                if future is not None:
                    running.append((future, i))

    start_ready()
    while running:
        finished = [(future, i) for future, i in running if on.done(future)]
        if not finished:
            time.sleep(POLL_S)
            continue
        running[:] = [(future, i) for future, i in running if all(future is not f for f, _ in finished)]
        for future, i in finished:
            states[i] = on.result(future)
            if stages[done[i]][0] == "dedup":
                turn[done[i]] = i + 1
            done[i] += 1
        emitted = emit_done(emitted)
        start_ready()
    emit_done(emitted)  # a part with no steps (synthesize last) has its shards done from the start
    return states


def _stages(plan: list[tuple[str, list[str]]], indices: list[int]) -> list[tuple[str, list[int]]]:
    """("read" | "rows" | "dedup", segment indices): consecutive dedup steps are one task per shard."""
    stages: list[tuple[str, list[int]]] = []
    for index in indices:
        kind = "read" if index == 0 else "rows" if plan[index][0] == "rows" else "dedup"
        if kind == "dedup" and stages and stages[-1][0] == "dedup":
            stages[-1][1].append(index)
        else:
            stages.append((kind, [index]))
    return stages


def run_all_shards(
    inputs: list[str], shards: int, settings: CurateConfig, eval_paths: list[str], out_dir: str
) -> CurateResult:
    """Every task in this process, in turn: what the flow submits to a cluster, for tests and scripts."""
    return curate_shards(plan_shards(inputs, shards, settings.format), settings, eval_paths, out_dir, Inline())
