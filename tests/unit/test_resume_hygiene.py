"""A resumed train run joins the command that resumed it, on a real MLflow store.

After a kill, the reaper marks the run KILLED with an `llmops.ended_by` note, nested under the
killed nightly. The command that resumes it re-nests it under its own parent run (or none), drops
the note, and logs each (metric, step) once, though the steps after the last checkpoint train again.
"""

from __future__ import annotations

import pytest


@pytest.fixture()
def store():
    from registry.tracking import client, init_store

    init_store()
    return client()


def killed_run(store, experiment: str, parent: str | None) -> str:
    """A train run left the way the reaper leaves one: KILLED, noted, with losses of steps 2, 4 and 6."""
    from registry.tracking import ENDED_BY_TAG, metric_sink, stage_run

    with pytest.raises(KeyboardInterrupt), stage_run(experiment, "train", parent) as run_id:
        sink = metric_sink(run_id)
        for step in (2, 4, 6):
            sink(step, {"sft/loss": 10.0 - step})
        raise KeyboardInterrupt  # what a kill interrupts
    store.set_terminated(run_id, status="KILLED")
    store.set_tag(run_id, ENDED_BY_TAG, "process 1 on host ended without closing the run")
    return run_id


def test_a_resumed_run_moves_under_the_run_that_resumed_it(store):
    from registry.tracking import ENDED_BY_TAG, PARENT_TAG, ensure_experiment, stage_run

    experiment = "resume-hygiene"
    ensure_experiment(experiment)
    with stage_run(experiment, "nightly") as old_parent:
        pass
    store.set_terminated(old_parent, status="KILLED")
    run_id = killed_run(store, experiment, old_parent)
    assert store.get_run(run_id).data.tags[PARENT_TAG] == old_parent

    with stage_run(experiment, "nightly") as new_parent:
        with stage_run(experiment, "train", new_parent, resume_run_id=run_id) as resumed:
            assert resumed == run_id and store.get_run(run_id).info.status == "RUNNING"
    tags = store.get_run(run_id).data.tags
    assert tags[PARENT_TAG] == new_parent and ENDED_BY_TAG not in tags
    assert store.get_run(run_id).info.status == "FINISHED"
    children = store.search_runs([store.get_run(new_parent).info.experiment_id], f"tags.{PARENT_TAG} = '{new_parent}'")
    assert [r.info.run_id for r in children] == [run_id]


def test_a_run_resumed_on_its_own_is_nested_under_nothing(store):
    from registry.tracking import ENDED_BY_TAG, PARENT_TAG, ensure_experiment, stage_run

    experiment = "resume-hygiene-alone"
    ensure_experiment(experiment)
    with stage_run(experiment, "nightly") as old_parent:
        pass
    run_id = killed_run(store, experiment, old_parent)
    with stage_run(experiment, "train", None, resume_run_id=run_id):  # `llmops train`, no nightly around it
        pass
    tags = store.get_run(run_id).data.tags
    assert PARENT_TAG not in tags and ENDED_BY_TAG not in tags


def test_redone_steps_are_logged_once(store):
    from registry.tracking import ensure_experiment, metric_sink, stage_run

    experiment = "resume-hygiene-steps"
    ensure_experiment(experiment)
    run_id = killed_run(store, experiment, None)
    with stage_run(experiment, "train", resume_run_id=run_id):
        sink = metric_sink(run_id, resumed=True)
        for step in (4, 6, 8, 10):  # resumed from a checkpoint at step 3: 4 and 6 train again
            sink(step, {"sft/loss": 1.0, "sft/grad_norm": 0.5})
        sink(10, {"sft/loss": 0.0})  # the same step twice in one process: still once
    history = store.get_metric_history(run_id, "sft/loss")
    assert sorted(m.step for m in history) == [2, 4, 6, 8, 10]
    assert {m.step: m.value for m in history} == {2: 8.0, 4: 6.0, 6: 4.0, 8: 1.0, 10: 1.0}  # the first value stays
    # A metric the killed attempt never logged is logged at every step.
    assert sorted(m.step for m in store.get_metric_history(run_id, "sft/grad_norm")) == [4, 6, 8, 10]
