"""What a training run did with its hardware: tokens/s, padding, peak memory, GPU utilisation, MFU.

Counted where the data really is: a wrapper around the trainer's data collator records the tokens
of every batch it builds (real tokens from the attention mask, or every token when batches are
padding-free) and the slots they occupy, so the padding fraction is measured, not estimated. Only
the batches the trainer stepped on count: the data loader builds one or more ahead (prefetch), and
those were never trained on. A callback counts the micro-batches consumed.

Under a multi-rank launch each rank counts its own batches, and the summary adds them up: tokens/s is
the whole launch's (all ranks' tokens over the slowest rank's time), MFU is per GPU.

MFU (model FLOPs utilisation) = model FLOPs per token x tokens/s / the device's peak. Model FLOPs
per token: 6 N for full fine-tuning and 4 N for LoRA/QLoRA (frozen weights need no weight gradient),
N = the matmul parameters (embedding lookup excluded, the output head included), plus 12 L h s for
attention at the mean sequence length s. The peak is NVIDIA's datasheet dense bf16/fp16 figure for
the detected GPU (no sparsity), or $LLMOPS_PEAK_TFLOPS; `peak_tflops_assumed` says which was used.
"""

from __future__ import annotations

import math
import os
import subprocess
import threading
from typing import Any

# Dense bf16 tensor-core peaks from NVIDIA's datasheets, TFLOP/s, matched on the device name.
PEAK_TFLOPS = [
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
]


def peak_tflops(device_name: str | None) -> tuple[float | None, str]:
    if os.environ.get("LLMOPS_PEAK_TFLOPS"):
        return float(os.environ["LLMOPS_PEAK_TFLOPS"]), "LLMOPS_PEAK_TFLOPS"
    for key, value in PEAK_TFLOPS:
        if device_name and key in device_name:
            return value, f"{key} datasheet dense bf16"
    return None, "unknown device: set LLMOPS_PEAK_TFLOPS"


def matmul_parameters(model) -> int:
    """Parameters that take part in matmuls, counting a 4-bit weight by its unpacked shape."""
    embeddings = {id(p) for p in model.get_input_embeddings().parameters()}
    output = model.get_output_embeddings()
    tied_head = output is not None and any(id(p) in embeddings for p in output.parameters())
    total = 0
    for p in model.parameters():
        if id(p) in embeddings and not tied_head:
            continue
        state = getattr(p, "quant_state", None)
        total += math.prod(state.shape) if state is not None else p.numel()
    return total


class CountingCollator:
    """Wraps a data collator and records (real tokens, padded slots, sequences) of every batch, in order."""

    def __init__(self, inner):
        self.inner = inner
        self.batches: list[tuple[int, int, int]] = []

    def __call__(self, examples):
        batch = self.inner(examples)
        tokens = slots = sequences = 0
        for key, ids in batch.items():
            if not key.endswith("input_ids") or not hasattr(ids, "numel"):
                continue
            mask = batch.get(key.replace("input_ids", "attention_mask"))
            slots += ids.numel()
            tokens += int(mask.sum()) if mask is not None else ids.numel()
            positions = batch.get("position_ids") if key == "input_ids" else None
            sequences += int((positions == 0).sum()) if positions is not None and mask is None else ids.shape[0]
        self.batches.append((tokens, slots, sequences))
        return batch

    def totals(self, consumed: int | None = None) -> tuple[int, int, int]:
        """(tokens, slots, sequences) of the first `consumed` batches (all when None)."""
        kept = self.batches if consumed is None else self.batches[:consumed]
        return sum(b[0] for b in kept), sum(b[1] for b in kept), sum(b[2] for b in kept)


def batch_counter():
    """A TrainerCallback counting the micro-batches the trainer consumed: one per substep, one per step."""
    from transformers import TrainerCallback

    class BatchCounter(TrainerCallback):
        consumed = 0

        def on_substep_end(self, args, state, control, **kwargs):
            self.consumed += 1

        def on_step_end(self, args, state, control, **kwargs):
            self.consumed += 1

    return BatchCounter()


class UtilisationSampler:
    """GPU utilisation every `interval` seconds on a background thread (NVML through torch, else nvidia-smi)."""

    def __init__(self, interval: float = 0.5):
        self.interval, self.samples = interval, []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> float | None:
        import torch

        try:
            return float(torch.cuda.utilization())
        except Exception:  # no pynvml: ask nvidia-smi
            try:
                out = subprocess.run(
                    [
                        "nvidia-smi",
                        "--query-gpu=utilization.gpu",
                        "--format=csv,noheader,nounits",
                        f"--id={torch.cuda.current_device()}",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=5,
                )
                return float(out.stdout.split()[0])
            except Exception:
                return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            value = self._read()
            if value is not None:
                self.samples.append(value)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> list[float]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self.samples


class ThroughputMeter:
    """Attach to a trainer before `train()`; `summary(seconds)` after it."""

    def __init__(self, trainer, device: str, full_weights: bool):
        self.device, self.full_weights = device, full_weights
        self.ranks, self.tensor_device = trainer.args.world_size, trainer.args.device
        self.collator = CountingCollator(trainer.data_collator)
        trainer.data_collator = self.collator
        self.counter = batch_counter()
        trainer.add_callback(self.counter)
        model = trainer.model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.params = matmul_parameters(base)
        config = base.config
        self.layers, self.hidden = config.num_hidden_layers, config.hidden_size
        self.sampler = UtilisationSampler() if device == "cuda" else None

    def start(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
            self.sampler.start()

    def _across_ranks(self, counts: tuple[int, int, int], seconds: float) -> tuple[tuple[int, int, int], float]:
        """Every rank's counts summed and the slowest rank's time; a collective, so every rank calls it."""
        if self.ranks == 1:
            return counts, seconds
        import torch
        import torch.distributed as dist

        summed = torch.tensor(counts, dtype=torch.float64, device=self.tensor_device)
        slowest = torch.tensor([seconds], dtype=torch.float64, device=self.tensor_device)
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        return tuple(int(v) for v in summed.tolist()), float(slowest.item())

    def summary(self, seconds: float) -> dict[str, Any]:
        (tokens, slots, sequences), seconds = self._across_ranks(self.collator.totals(self.counter.consumed), seconds)
        tokens_per_s = tokens / seconds if seconds > 0 else 0.0
        mean_seq = tokens / sequences if sequences else 0.0
        per_token = (6 if self.full_weights else 4) * self.params + 12 * self.layers * self.hidden * mean_seq
        out: dict[str, Any] = {
            "tokens": tokens,
            "tokens_per_s": tokens_per_s,
            "batches": self.counter.consumed,
            "batches_built": len(self.collator.batches),
            "padding_fraction": 1 - tokens / slots if slots else 0.0,
            "mean_sequence_tokens": mean_seq,
            "model_flops_per_token": per_token,
            "ranks": self.ranks,
            "peak_gpu_memory_gib": None,
            "gpu_utilisation_mean": None,
            "gpu_utilisation_samples": [],
            "mfu": None,
            "peak_tflops_assumed": None,
            "device": self.device,
        }
        if self.device == "cuda":
            import torch

            samples = self.sampler.stop()
            name = torch.cuda.get_device_name()
            peak, basis = peak_tflops(name)
            out |= {
                "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
                "gpu": name,
                "gpu_utilisation_samples": samples,
                "gpu_utilisation_mean": sum(samples) / len(samples) if samples else None,
                "mfu": per_token * tokens_per_s / (peak * 1e12 * self.ranks) if peak else None,
                "peak_tflops_assumed": f"{peak} TFLOP/s ({basis})" if peak else basis,
            }
        return out
