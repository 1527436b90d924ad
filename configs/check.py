"""Does this machine have what the config asks for? Checked before any work starts.

The schema checks a config on its own; this checks it against the machine: GPUs, bf16 support,
bitsandbytes for QLoRA, whether the base model can be loaded without a model hub, and, for training on
several ranks, the accelerate config and what `accelerate launch` put in the environment.
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
            "but this machine has none; set train.device: cpu and train.num_gpus: 0 (without --gpus); "
            "train.num_processes: N runs N ranks on the CPU instead"
        )
    elif train.num_gpus > gpus:
        problems.append(f"train.num_gpus: {train.num_gpus} requested but this machine has {gpus}; lower it to {gpus}")
    if train.precision == "bf16" and not bf16_supported():
        problems.append("train.precision: bf16 needs a GPU with bf16 support and none is present; use precision: fp32")
    if train.precision == "fp16" and gpus == 0:
        problems.append("train.precision: fp16 needs a GPU; use precision: fp32")
    if train.base_quant_bits and importlib.util.find_spec("bitsandbytes") is None:
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
    problems += check_launch(train, gpus)
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


# What `accelerate launch` tells its ranks, and what a run config's precision means to it.
MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
SHARDED = {"FSDP": "ACCELERATE_USE_FSDP", "DEEPSPEED": "ACCELERATE_USE_DEEPSPEED"}


def accelerate_config_path(name: str) -> Path:
    """`train.accelerate_config` as a file: as given when it exists, else inside the checkout that holds configs/."""
    given = Path(name).expanduser()
    if given.is_absolute() or given.exists():
        return given.resolve()
    return Path(__file__).resolve().parents[1] / given


WORKER_GPUS = "LLMOPS_GPUS_PER_RUN"  # set by the GPU work pool's `gpus_per_run` (infra/prefect-gpu-pool.json)


def with_worker_gpus(cfg: RunConfig) -> RunConfig:
    """The config a flow run trains with on a GPU worker: the pool's GPUs per run, on CUDA, unless the
    config names its own ranks (train.num_gpus or num_processes), which then win. A config made for
    the CPU (configs/nightly.yaml says device: cpu) thus trains on the GPUs of the pool it was sent to."""
    given = os.environ.get(WORKER_GPUS, "").strip()
    train = cfg.train
    if not given or train.num_gpus or train.num_processes:
        return cfg
    if not given.isdigit():
        from core.errors import UserError

        raise UserError(f"{WORKER_GPUS}={given}", "is not a number of GPUs", "set the pool's gpus_per_run to 1 or more")
    return cfg.model_copy(update={"train": train.model_copy(update={"num_gpus": int(given), "device": "cuda"})})


def launched_world() -> int:
    """The world size an `accelerate launch` or `torchrun` of this process set; 1 when it runs alone."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def check_launch(train, gpus: int) -> list[str]:
    """Several ranks: the accelerate config they launch with, and the environment a hand launch set.

    Each refusal stands for a silent failure: accelerate 1.15 turns FSDP and DeepSpeed on only for GPU
    ranks, so on a CPU they would train as plain DDP; and the launcher's --mixed_precision overrides a
    run config's fp32 (transformers reads ACCELERATE_MIXED_PRECISION unless bf16/fp16 is set).
    """
    problems: list[str] = []
    on_cpu = gpus == 0 or train.device == "cpu"
    if train.ranks > 1 and launched_world() == 1:
        path = accelerate_config_path(train.accelerate_config)
        if not path.is_file():
            return [
                f"train.accelerate_config: {train.accelerate_config} not found; use one of infra/accelerate/ "
                "(multi_gpu.yaml for data parallel), or give the path of your own accelerate config"
            ]
        import yaml

        kind = (yaml.safe_load(path.read_text()) or {}).get("distributed_type", "NO")
        if kind in SHARDED and on_cpu:
            problems.append(
                f"train.accelerate_config: {train.accelerate_config} selects {kind}, which accelerate runs on GPUs "
                "only (on a CPU it would train as plain DDP); use infra/accelerate/multi_gpu.yaml here"
            )
        if kind == "DEEPSPEED" and importlib.util.find_spec("deepspeed") is None:
            problems.append(
                f"train.accelerate_config: {train.accelerate_config} needs DeepSpeed; pip install deepspeed, "
                "or use infra/accelerate/fsdp.yaml"
            )
    if launched_world() > 1:
        given = os.environ.get("ACCELERATE_MIXED_PRECISION")
        wanted = MIXED_PRECISION[train.precision]
        if given and given != wanted:
            problems.append(
                f"train.precision: {train.precision}, but the launch set ACCELERATE_MIXED_PRECISION={given}, which "
                f"would train in {given}; pass --mixed_precision {wanted} to accelerate launch, or set "
                f"train.precision to match"
            )
        for kind, variable in SHARDED.items():
            if os.environ.get(variable, "").lower() == "true" and on_cpu:
                problems.append(
                    f"{variable}=true: the launch asks for {kind}, which accelerate runs on GPUs only (on a CPU it "
                    "would train as plain DDP); launch with infra/accelerate/multi_gpu.yaml"
                )
    return problems
