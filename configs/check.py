"""Does this machine have what the config asks for? Checked before any work starts.

The schema checks a config on its own; this checks it against the machine: GPUs, bf16 support,
bitsandbytes for QLoRA, and whether the base model can be loaded without a model hub.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from configs.schema import RunConfig


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def bf16_supported() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def check_machine(cfg: RunConfig) -> list[str]:
    problems: list[str] = []
    train = cfg.train
    gpus = gpu_count()
    wants_gpu = train.device == "cuda" or train.num_gpus > 0
    if wants_gpu and gpus == 0:
        problems.append(
            "train.device/train.num_gpus: the config asks for a GPU "
            f"(device={train.device}, num_gpus={train.num_gpus}) "
            "but this machine has none; set train.device: cpu and train.num_gpus: 0"
        )
    elif train.num_gpus > gpus:
        problems.append(f"train.num_gpus: {train.num_gpus} requested but this machine has {gpus}; lower it to {gpus}")
    if train.precision == "bf16" and not bf16_supported():
        problems.append("train.precision: bf16 needs a GPU with bf16 support and none is present; use precision: fp32")
    if train.precision == "fp16" and gpus == 0:
        problems.append("train.precision: fp16 needs a GPU; use precision: fp32")
    if train.method == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        problems.append("train.method: qlora needs bitsandbytes; pip install bitsandbytes, or use method: lora")
    if train.liger and importlib.util.find_spec("liger_kernel") is None:
        problems.append(
            "train.liger: Liger kernels need the liger-kernel package (GPU only); pip install liger-kernel, "
            "or set train.liger: false"
        )
    if cfg.model.attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        problems.append(
            "model.attn_implementation: flash_attention_2 needs the flash-attn package; pip install "
            "flash-attn, or use sdpa"
        )
    if cfg.eval.device == "cuda" and gpus == 0:
        problems.append("eval.device: cuda asked for, but this machine has no GPU; set eval.device: auto or cpu")
    if cfg.eval.precision in ("bf16", "fp16") and gpus == 0:
        problems.append(f"eval.precision: {cfg.eval.precision} generation is for GPUs; set eval.precision: auto")
    problems += _check_base(cfg.model.base)
    for i, path in enumerate(cfg.data.inputs):
        if not Path(path).exists():
            problems.append(f"data.inputs.{i}: file not found: {path}")
    if cfg.data.eval_path and not Path(cfg.data.eval_path).exists():
        problems.append(f"data.eval_path: file not found: {cfg.data.eval_path}")
    return problems


def _check_base(base: str) -> list[str]:
    if base == "embedded":
        return []
    if base.startswith((".", "/", "~")) or Path(base).exists():
        if not (Path(base).expanduser() / "config.json").exists():
            return [f"model.base: {base} is not a model folder (no config.json there)"]
        return []
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(base, "config.json"), str):
            return [
                f"model.base: '{base}' is a hub name, but the hub is offline and it is not in the local cache; "
                "use model.base: embedded, a local model folder, or run where the hub is reachable (HF_HUB_OFFLINE=0)"
            ]
    return []
