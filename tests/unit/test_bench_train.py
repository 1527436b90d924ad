"""bench/train.py at its CI size: the tiny shape trains through the project and plain TRL and prints its figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ISSUE_KEYS = {
    "tokens_per_s",
    "baseline_tokens_per_s",
    "overhead",
    "peak_gib",
    "mfu",
    "gpu",
    "steps",
    "eval_tokens_per_s",
}
MORE_KEYS = {
    "method",
    "shape",
    "packing",
    "batch",
    "max_length",
    "precision",
    "device",
    "versions",
    "peak_tflops_assumed",
    "padding_fraction",
    "eval_cpu_tokens_per_s",
    "eval_speedup",
    "settings_differ",
    "checkpoint_s",
}


def run_bench(tmp_path: Path, *extra: str) -> dict:
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "train.py"),
        "--shape",
        "tiny",
        "--steps",
        "6",
        "--warmup-steps",
        "2",
        "--max-length",
        "256",
        "--cpu-threads",
        "1",
        "--eval-prompts",
        "8",
        "--eval-batch",
        "4",
        "--eval-new-tokens",
        "8",
        "--cache-dir",
        str(tmp_path / "models"),
        "--work-dir",
        str(tmp_path),
        "--json",
        *extra,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must hold one JSON line, got: {done.stdout[:2000]}"
    return json.loads(lines[0])


@pytest.mark.slow
def test_tiny_benchmark_prints_every_figure_for_both_runs(tmp_path):
    fig = run_bench(tmp_path, "--eval-cpu-baseline")
    assert ISSUE_KEYS | MORE_KEYS <= set(fig), sorted((ISSUE_KEYS | MORE_KEYS) - set(fig))
    assert fig["steps"] == 6 and fig["timed_steps"] == 4 and fig["shape"] == "tiny" and fig["device"] == "cpu"
    assert fig["processes"] == 1 and fig["scaling_efficiency"] is None  # no second launch without --processes

    # Both runs are positive, finite rates, and the overhead is their ratio.
    for key in ("tokens_per_s", "baseline_tokens_per_s", "eval_tokens_per_s", "eval_cpu_tokens_per_s"):
        assert math.isfinite(fig[key]) and fig[key] > 0, key
    assert fig["overhead"] == pytest.approx(fig["baseline_tokens_per_s"] / fig["tokens_per_s"] - 1, abs=2e-3)
    assert fig["overhead"] > -1
    assert fig["eval_speedup"] == pytest.approx(fig["eval_tokens_per_s"] / fig["eval_cpu_tokens_per_s"], rel=0.02)

    # A fair comparison: same settings read back from both trainers, same tokens, same losses (same init and data).
    assert fig["settings_differ"] == {}
    assert fig["tokens_per_step"] == fig["baseline_tokens_per_step"] > 0
    assert fig["padding_fraction"] == fig["baseline_padding_fraction"] and 0 < fig["padding_fraction"] < 1
    assert fig["train_loss"] == pytest.approx(fig["baseline_train_loss"], abs=0.05)

    # The project saves a checkpoint every step here (10 % of 6): the 4 inside the timed window are timed apart.
    assert fig["checkpoints"] == 4 and fig["checkpoint_s"] > 0
    assert fig["tokens_per_s_with_checkpoints"] < fig["tokens_per_s"]

    # No GPU here: the GPU-only figures say so rather than inventing a value.
    assert fig["gpu"] is None and fig["peak_gib"] is None and fig["mfu"] is None
    assert fig["eval_device"] == "cpu" and fig["eval_precision"] == "fp32"
    assert {"torch", "transformers", "trl", "peft"} <= set(fig["versions"])


@pytest.mark.slow
def test_tiny_benchmark_on_two_ranks_prints_the_scaling_efficiency(tmp_path):
    """`--processes 2`: the project's SFT again on 2 ranks (gloo here), beside the one-rank figures."""
    fig = run_bench(tmp_path, "--processes", "2")
    assert fig["processes"] == 2 and fig["ranks_steps"] == fig["steps"] == 6 and fig["ranks_timed_steps"] == 4
    assert math.isfinite(fig["ranks_tokens_per_s"]) and fig["ranks_tokens_per_s"] > 0
    assert fig["scaling_efficiency"] == pytest.approx(fig["ranks_tokens_per_s"] / (2 * fig["tokens_per_s"]), rel=2e-3)
    # Each rank takes a batch of its own: a step of the launch carries about twice one rank's tokens.
    assert 1.5 < fig["ranks_tokens_per_step"] / fig["tokens_per_step"] < 2.5
    assert len(fig["ranks_seconds"]) == 2 and math.isfinite(fig["ranks_train_loss"])


@pytest.mark.slow
@pytest.mark.gpu
def test_tiny_benchmark_on_a_gpu_reports_memory_and_mfu(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    fig = run_bench(tmp_path, "--packing", "--eval-cpu-baseline")
    assert fig["gpu"] and fig["device"] == "cuda" and fig["eval_device"] == "cuda"
    assert fig["peak_gib"] > 0 and fig["baseline_peak_gib"] > 0
    assert 0 < fig["mfu"] < 1 and fig["padding_fraction"] == 0.0


def test_warmup_must_leave_steps_to_time(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "train.py"), "--steps", "2", "--warmup-steps", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--warmup-steps (2) must be below --steps (2)" in done.stderr
