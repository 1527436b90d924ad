"""The ranks of a launch a person started (`accelerate launch ... -m llmops.cli train`, `torchrun ...`).

Every rank runs the same command, but only rank 0 does the command's work: the Prefect flow, the
MLflow run, curation and evaluation, registration, printing. The other ranks follow: they join the
launch's process group, wait for rank 0 to send each training stage as a `TrainPlan`, train it with
the plain library (no MLflow, no Prefect), and exit when rank 0 says it no longer needs them.

Plans travel on a gloo group of their own with a long timeout, since rank 0 may curate for hours
before it trains. Nothing can leave a rank waiting for ever:

- rank 0 fails before (or after) training: the CLI releases the followers, which exit 0 at once,
  so rank 0 ends its runs and prints its error undisturbed, and its exit code is the launch's;
- a follower cannot run a plan (a file missing on its node): every rank reports before training,
  and rank 0 stops with a line naming the rank and what it lacks;
- a process dies: torchrun ends the others, and each rank dies with its launcher (`die_with_parent`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta

from core.errors import UserError
from tasks.train.common import StepSink
from tasks.train.plan import TrainPlan, run_plan
from tasks.train.result import StageResult

# How long a follower waits for rank 0's next word: curation of a large corpus comes first.
WAIT_S = float(os.environ.get("LLMOPS_RANK_WAIT_S", str(12 * 3600)))


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def leads(self) -> bool:
        return self.rank == 0


def current() -> Rank:
    """This process's place in a launch, from what torchrun (under accelerate launch too) sets."""
    env = os.environ
    return Rank(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0")))


def launched() -> bool:
    return current().world > 1


def parent_death_signal():
    """A call that asks Linux to SIGKILL the calling process when its parent dies (PR_SET_PDEATHSIG), or
    None elsewhere. Resolved ahead, so it is safe to run between fork and exec (`Popen(preexec_fn=)`)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def die_with_parent() -> None:
    """This process dies with its launcher. A launcher killed with SIGKILL cannot stop its ranks: they
    would train on, orphaned, into the run's folder while the next command resumes it."""
    request = parent_death_signal()
    if request is None:
        return
    parent = os.getppid()  # not "is it 1": in a container the launcher may well be pid 1
    request()
    if os.getppid() != parent:  # the launcher died while the request was being made
        os._exit(1)


_control = None  # the gloo group plans and the final word travel on
_released = False


def join() -> None:
    """Every rank of a launch calls this first, before any training: the process group the trainer
    will reuse (NCCL for tensors on GPUs, gloo on CPUs) and the control group."""
    global _control
    if _control is not None:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        local = current().local_rank
        if torch.cuda.is_available() and local < torch.cuda.device_count():
            torch.cuda.set_device(local)
            dist.init_process_group(backend="cuda:nccl,cpu:gloo")  # what accelerate picks for GPU ranks
        else:
            dist.init_process_group(backend="gloo")
    _control = dist.new_group(backend="gloo", timeout=timedelta(seconds=WAIT_S))


def _broadcast(message):
    import torch.distributed as dist

    box = [message]
    dist.broadcast_object_list(box, src=0, group=_control)
    return box[0]


def _problems_everywhere(plan: TrainPlan) -> list[tuple[int, str]]:
    """Each rank checks the plan against its own machine; every rank learns every answer."""
    import torch.distributed as dist

    answers: list = [None] * current().world
    dist.all_gather_object(answers, plan.problems(), group=_control)
    return [(rank, problem) for rank, found in enumerate(answers) for problem in found]


def lead(plan: TrainPlan, on_log: StepSink | None = None) -> StageResult:
    """Rank 0: sends the plan, hears that every rank can run it, then trains its own share."""
    join()
    done = plan.done()
    if done is not None:  # decided here, so ranks on another node do not train a finished stage
        return done.as_skipped()
    _broadcast(("plan", plan.to_dict()))
    missing = _problems_everywhere(plan)
    if missing:
        rank, problem = missing[0]
        raise UserError(
            f"rank {rank} of {current().world}",
            f"cannot run the {plan.stage} stage: {problem}",
            "every node needs the run's folder and data at the same path: put LLMOPS_HOME on a shared "
            "file system mounted alike on every node",
        )
    return run_plan(plan, on_log)


def follow() -> int:
    """A rank other than 0: trains each plan rank 0 sends, until rank 0 releases it; returns 0 then.

    Returning at once, even when rank 0 failed, matters: torchrun ends every rank as soon as one exits
    non-zero, which would cut rank 0 off while it marks its runs FAILED and prints its error."""
    join()
    while True:
        kind, payload = _broadcast(None)
        if kind == "stop":
            return 0
        plan = TrainPlan.from_dict(payload)
        if _problems_everywhere(plan):
            continue  # rank 0 reports it and stops everyone
        try:
            run_plan(plan)
        except UserError:
            continue  # a bad input fails alike on rank 0, which says so and stops everyone


def release() -> None:
    """Rank 0: the followers are not needed any more (training is over, or the command failed)."""
    global _released
    if _control is None or _released or not current().leads:
        return
    _released = True
    _broadcast(("stop", None))


def leave() -> None:
    """Ends this rank's part in the launch's process groups, before the process exits. Left to the
    interpreter's exit, gloo's threads may be torn down while they run ("terminate called without an
    active exception", SIGABRT): a follower released by a failing rank 0 then died with -6, and
    torchrun ended rank 0 before it had printed its error."""
    global _control
    if _control is None:
        return
    import torch.distributed as dist

    _control = None
    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - leaving anyway; nothing is waiting on these groups any more
            pass
