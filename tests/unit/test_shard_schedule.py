"""When a sharded curation's tasks run (issue #13): each as soon as what it reads is done, so a
shard goes through dedup, its later steps and the merge while other shards are still being read;
the dataset is still the one a single process makes, and a failed task leaves no dataset behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from configs.schema import CurateConfig
from tasks.data import shards
from tasks.data.curate import curate_dataset
from tasks.data.shard_schedule import Inline, curate_shards
from tasks.data.shards import DedupStateLost, plan_shards, read_shard, shard_dedup
from tests.curation_corpus import eval_file, synthesize_settings, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("schedule")
    inputs = write_corpus(folder, rows_per_file=500)
    settings = CurateConfig(quality={"max_drop_fraction": 1.0})
    evals = [eval_file(folder, inputs)]
    return folder, inputs, settings, evals, curate_dataset(inputs, str(folder / "one"), settings, evals)


class _Task:
    def __init__(self, fn, args):
        self.fn, self.args, self.finished, self.value = fn, args, False, None

    @property
    def shard(self) -> int:
        first = self.args[0]
        return first["order"] if isinstance(first, dict) else first.order


class ReadsLast:
    """A cluster whose reads are slow: one task ends each time the schedule looks, any other task
    before a read, and a read only when nothing else is left. Every task really runs, here."""

    def __init__(self):
        self.pending: list[_Task] = []
        self.log: list[tuple[str, str, int]] = []
        self.ended = False  # a task ended since the schedule last took a result

    def submit(self, fn, *args):
        task = _Task(fn, args)
        self.pending.append(task)
        self.log.append(("start", fn.__name__, task.shard))
        return task

    ordered = submit

    def done(self, task: _Task) -> bool:
        if not self.ended and not task.finished and task is min(self.pending, key=lambda t: t.fn is read_shard):
            self.pending.remove(task)
            task.value, task.finished, self.ended = task.fn(*task.args), True, True
            self.log.append(("end", task.fn.__name__, task.shard))
        return task.finished

    def result(self, task: _Task):
        self.ended = False
        return task.value

    def close(self) -> None:
        pass


def test_a_shard_goes_on_while_the_later_shards_are_still_read(corpus):
    folder, inputs, settings, evals, one = corpus
    on, seen = ReadsLast(), []
    specs = plan_shards(inputs, 3, settings.format)
    result = curate_shards(specs, settings, evals, str(folder / "reads-last"), on, progress=[(seen.append, 0)])
    assert result.dataset_hash == one.dataset_hash
    assert Path(result.quarantine_path).read_bytes() == Path(one.quarantine_path).read_bytes()
    assert not (folder / "reads-last" / "shards").exists()  # the files between tasks are gone
    # The merge reports progress as it takes the shards: a share of the input's bytes, then done.
    assert any(0 < p.fraction < 1 for p in seen[:-1]) and seen[-1].done and seen[-1].rows == one.read
    assert seen[-1].fraction > 0.99
    log, last = on.log, len(plan_shards(inputs, 3, settings.format)) - 1
    assert last >= 2
    assert log.index(("end", "shard_rows", 0)) < log.index(("end", "read_shard", last))  # shard 0 done first
    assert log.index(("end", "shard_dedup", 1)) < log.index(("end", "read_shard", last))
    # The dedup of a shard never starts before the shard before it is through dedup.
    for shard in range(1, last + 1):
        assert log.index(("end", "shard_dedup", shard - 1)) < log.index(("start", "shard_dedup", shard))


class FailingRows(Inline):
    def submit(self, fn, *args):
        if fn is shards.shard_rows and args[0].order == 1:
            raise OSError("disk full while writing shard 1")
        return fn(*args)


def test_a_failed_shard_task_stops_the_run_without_a_dataset_or_dedup_state(corpus):
    folder, inputs, settings, evals, _ = corpus
    out = folder / "failed"
    with pytest.raises(OSError, match="disk full while writing shard 1"):
        curate_shards(plan_shards(inputs, 3, settings.format), settings, evals, str(out), FailingRows())
    assert not list(out.glob("dataset-*"))  # the merge stopped before publishing
    assert not (out / "shards").exists()
    assert shards._RESIDENT == {}  # the dedup state of the run was freed


def test_a_dedup_call_where_the_state_is_not_says_so(corpus):
    folder, inputs, settings, evals, _ = corpus
    spec = plan_shards(inputs, 3, settings.format)[1]
    state = read_shard(spec, settings, evals, str(folder / "lost"))
    with pytest.raises(DedupStateLost, match=r"shard 2 of 3 ran where the step's state is not .*curate again"):
        shard_dedup(state, [1, 2], settings, "a-run-that-never-started", 1, 3)


def test_synthesize_between_sharded_steps_gives_the_one_process_dataset(tmp_path):
    """synthesize needs every shard's rows: the schedule runs it as one task between the shards'
    steps, and its variants (one more shard) pass the later dedup and row steps as in one process."""
    import json

    _, settings = synthesize_settings(tmp_path, variants_per_seed=1, max_new_tokens=16)
    inputs = []
    for f in range(2):
        path = tmp_path / f"in{f}.jsonl"
        rows = [
            {"id": f"s{f}-{i}", "messages": [{"role": "user", "content": f"Tom has {i} apples and buys {f + 2} more."}]}
            for i in range(3)
        ]
        for row in rows:
            row["messages"].append({"role": "assistant", "content": f"The answer is {row['id'][-1]} plus {f + 2}."})
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        inputs.append(str(path))
    one = curate_dataset(inputs, str(tmp_path / "one"), settings)
    other = curate_shards(plan_shards(inputs, 2, settings.format), settings, [], str(tmp_path / "sharded"), Inline())
    assert one.read == other.read == 6 + 6 and one.report["synthetic"]["generated"] == 6
    assert other.dataset_hash == one.dataset_hash
    assert Path(other.quarantine_path).read_bytes() == Path(one.quarantine_path).read_bytes()
