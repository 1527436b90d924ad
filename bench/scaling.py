"""bench/train.py --processes N: the project's SFT on N data-parallel ranks, against N x one rank.

    python bench/train.py --shape tiny --processes 2 --json        # 2 CPU ranks over gloo (CI runs it)
    python bench/train.py --shape llama-1b --packing --processes 2 --json   # 2 GPUs, NCCL

The ranks are launched the way `llmops train --gpus N` launches them: `accelerate launch` with
infra/accelerate/multi_gpu.yaml (torchrun underneath), each rank running the same `train_sft` as
the one-rank run of the same invocation, with the same per-rank batch, on the same base and data,
and the same step clock. Each rank writes its clock's figures; the launch's throughput is every
rank's tokens over the slowest rank's timed window (checkpoint saves left out, as for one rank), and

    scaling_efficiency = tokens/s on N ranks / (N x tokens/s on one rank)

1.0 is perfect scaling. The ranks average gradients every step: on a CPU over gloo, on GPUs over
NCCL. This file is also what each rank runs: `python bench/scaling.py SPEC.json`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.train_runs import make_clock, train_project  # noqa: E402  (the checkout first on the path)

CONFIG = ROOT / "infra" / "accelerate" / "multi_gpu.yaml"


def run_ranks(args: Namespace, base: Path, data: Path, work: Path, one_rank_tokens_per_s: float) -> dict:
    """Launches `args.processes` ranks, waits, and returns their combined figures."""
    spec = work / "ranks" / "spec.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps({"args": vars(args), "base": str(base), "data": str(data), "out": str(work / "ranks")}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(CONFIG),
        "--num_processes",
        str(args.processes),
        "--mixed_precision",
        {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[args.precision],
        "--main_process_port",
        str(port),
        str(Path(__file__).resolve()),
        str(spec),
    ]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run(command, env=env, cwd=ROOT, stdout=sys.stderr)  # stdout carries the figures only
    if done.returncode != 0:
        raise RuntimeError(f"the {args.processes}-rank run failed (exit code {done.returncode}); its log is above")
    ranks = [json.loads((spec.parent / f"rank-{i}.json").read_text()) for i in range(args.processes)]
    return combine(ranks, args.processes, one_rank_tokens_per_s)


def combine(ranks: list[dict], processes: int, one_rank_tokens_per_s: float) -> dict:
    tokens = sum(r["tokens"] for r in ranks)
    seconds = max(r["seconds"] - r["checkpoint_s"] for r in ranks)
    rate = tokens / seconds
    return {
        "processes": processes,
        "ranks_tokens_per_s": round(rate, 1),
        "scaling_efficiency": round(rate / (processes * one_rank_tokens_per_s), 4),
        "ranks_steps": ranks[0]["steps"],
        "ranks_timed_steps": ranks[0]["timed_steps"],
        "ranks_tokens_per_step": round(tokens / ranks[0]["timed_steps"], 1),
        "ranks_train_loss": round(ranks[0]["train_loss"], 4),
        "ranks_seconds": [round(r["seconds"] - r["checkpoint_s"], 3) for r in ranks],
    }


def rank_main(spec_path: str) -> None:
    """One rank: the project's SFT with the step clock, its figures written for the launcher."""
    import torch

    spec = json.loads(Path(spec_path).read_text())
    args = Namespace(**spec["args"])
    if args.cpu_threads or args.shape == "tiny":
        torch.set_num_threads(args.cpu_threads or 1)
    clock = make_clock()
    summary = train_project(Path(spec["base"]), Path(spec["data"]), Path(spec["out"]) / "project", args, clock)
    rank = int(os.environ.get("RANK", "0"))
    figures = clock.figures(args.warmup_steps) | {"train_loss": summary.train_loss, "ranks": summary.ranks}
    (Path(spec["out"]) / f"rank-{rank}.json").write_text(json.dumps(figures))


if __name__ == "__main__":
    rank_main(sys.argv[1])
