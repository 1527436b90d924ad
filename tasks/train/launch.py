"""Where a training stage runs: here, as rank 0 of a launch, or on ranks this process launches.

`train_stage` is the one call a flow makes per stage:

- inside a launch a person started (`accelerate launch ... -m llmops.cli train`), this process is
  rank 0: it hands the plan to the other ranks (`tasks.train.distributed.lead`) and trains its share;
- with `train.num_gpus` (or `num_processes`) above 1, it launches that many ranks on this machine with
  accelerate (torchrun underneath), each running `tasks.train.ranks` on the plan written to a file,
  and forwards rank 0's logged steps to `on_log` while they train;
- otherwise it trains in this process.

The launched ranks die with this process (and it with its caller's kill), so a killed run leaves no
training behind to race the run that resumes it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from configs.check import MIXED_PRECISION, accelerate_config_path
from core.errors import UserError
from tasks.train import distributed
from tasks.train.common import StepSink
from tasks.train.plan import TrainPlan, run_plan
from tasks.train.ranks import error_file, metrics_file
from tasks.train.result import StageResult

ROOT = Path(__file__).resolve().parents[2]  # the checkout: `-m tasks.train.ranks` is imported from here


def train_stage(plan: TrainPlan, on_log: StepSink | None = None) -> StageResult:
    if distributed.launched():
        return distributed.lead(plan, on_log)
    if plan.train.ranks > 1:
        return launch_ranks(plan, on_log)
    return run_plan(plan, on_log)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(plan_file: Path, plan: TrainPlan, port: int) -> list[str]:
    """`accelerate launch` of the ranks. Its config picks the strategy (DDP, FSDP, DeepSpeed); the rank
    count and the precision come from the run config, whatever the file says."""
    train = plan.train
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(accelerate_config_path(train.accelerate_config)),
        "--num_processes",
        str(train.ranks),
        "--num_machines",
        "1",
        "--machine_rank",
        "0",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(port),
        "--mixed_precision",
        MIXED_PRECISION[train.precision],
        "-m",
        "tasks.train.ranks",
        str(plan_file),
    ]


def launch_ranks(plan: TrainPlan, on_log: StepSink | None = None, poll_s: float = 0.5) -> StageResult:
    done = plan.done()
    if done is not None:
        return done.as_skipped()
    out = Path(plan.out_dir)
    plan_file = plan.write(out / "plans" / f"{plan.stage}.json")
    steps, error = metrics_file(plan), error_file(plan)
    for stale in (steps, error):
        stale.unlink(missing_ok=True)
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    command = launch_command(plan_file, plan, free_port())
    # This process's working directory: a relative model.base or data path means the same to the ranks.
    proc = subprocess.Popen(command, env=env, preexec_fn=distributed.parent_death_signal())
    read = 0
    try:
        while True:
            finished = proc.poll() is not None
            read = _forward(steps, read, on_log)
            if finished:
                break
            time.sleep(poll_s)
    except BaseException:
        proc.kill()  # the ranks die with it
        proc.wait()
        raise
    if proc.returncode != 0:
        if error.exists():
            raise UserError(**json.loads(error.read_text()))
        raise RuntimeError(
            f"the {plan.train.ranks} training ranks of stage {plan.stage} failed (exit code {proc.returncode}); "
            f"their output is above. Relaunch by hand: {' '.join(command)}"
        )
    return StageResult.from_file(out / f"{plan.stage}_summary.json")


def _forward(path: Path, offset: int, on_log: StepSink | None) -> int:
    """Hands on the steps rank 0 logged since `offset` (whole lines only); returns the new offset."""
    if not path.exists():
        return offset
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    for line in complete.decode().splitlines():
        if line.strip() and on_log is not None:
            step = json.loads(line)
            on_log(step["step"], step["figures"])
    return offset + len(complete)
