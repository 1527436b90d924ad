"""The one model loader: training, preference tuning, evaluation and export all load through here.

Where a model goes and in what form is decided once, from the config, as a `Placement`: the device
(`cuda` when the config asks for it or `auto` finds one), the dtype, a 4- or 8-bit bitsandbytes base
for QLoRA, and the attention kernel. On a GPU the weights are loaded straight onto the device
(`device_map`, one GPU per process under `accelerate launch`), never materialised in fp32 on the CPU
first. The CPU path is the same code with `device="cpu"`, which is how the tests run it.

A model folder is either a full model (config.json + weights) or an adapter (adapter_config.json).
An adapter trained by llmops carries `llmops_training.json` (how it was trained) and
`llmops_base.json` (which base, by name or path and content hash), so it can be loaded on another
machine, and a QLoRA adapter is evaluated the way it was trained: 4-bit base plus adapter, unmerged.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError

TRAINING_RECORD = "llmops_training.json"
BASE_RECORD = "llmops_base.json"
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Placement:
    """Where and how a model is loaded. `quant_bits` set means a bitsandbytes k-bit base (QLoRA)."""

    device: str = "cpu"  # "cpu" or "cuda"
    precision: str = "fp32"  # "fp32", "bf16" or "fp16"
    quant_bits: int | None = None
    attn_implementation: str = "sdpa"
    sharded: bool = False  # FSDP places the weights: no device_map, and a 4-bit base stored in the compute dtype

    @property
    def torch_dtype(self):
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_device(requested: str) -> str:
    """`auto` is the GPU when one is present; `cuda` without one is the config's error, checked earlier."""
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    return requested


def fsdp_launched() -> bool:
    """`accelerate launch` with an FSDP config says so to every rank through the environment."""
    return os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"


def training_placement(train, model) -> Placement:
    """From `TrainConfig` and `ModelConfig` (and an FSDP launch): the base a training run loads."""
    return Placement(
        device=resolve_device(train.device),
        precision=train.precision,
        quant_bits=train.base_quant_bits,
        attn_implementation=model.attn_implementation,
        sharded=fsdp_launched(),
    )


def eval_placement(evaluation, model) -> Placement:
    """From `EvalConfig` and `ModelConfig`: generation in bf16 on a GPU, fp32 on the CPU, unless the config says."""
    device = resolve_device(evaluation.device)
    precision = evaluation.precision
    if precision == "auto":
        if device == "cuda":
            import torch

            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    return Placement(device=device, precision=precision, attn_implementation=model.attn_implementation)


def read_record(folder: str | Path, name: str) -> dict[str, Any]:
    path = Path(folder) / name
    return json.loads(path.read_text()) if path.exists() else {}


def is_adapter(folder: str | Path) -> bool:
    return (Path(folder) / "adapter_config.json").exists()


def adapter_base(folder: str | Path, override: str | None = None) -> str:
    """The base model an adapter belongs to: `override`, else the path it was trained on if it is here,
    else its hub name. A local base that is missing here is the user's to provide."""
    if override:
        return override
    recorded = read_record(folder, BASE_RECORD)
    configured = json.loads((Path(folder) / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
    name = recorded.get("name_or_path") or configured
    if Path(name).is_dir() or not recorded.get("local", name.startswith(("/", "."))):
        return name
    raise UserError(
        f"adapter {folder}",
        f"its base model {name} is not on this machine (content hash {recorded.get('content_hash', '?')})",
        "set model.base to a copy of that base model (or --set model.base=PATH)",
    )


def device_map(placement: Placement) -> dict[str, int] | None:
    """One GPU per process: under `accelerate launch` each rank loads its own copy on its own GPU. Under
    FSDP the wrapper shards and places the weights itself, so the model loads unplaced."""
    if placement.device != "cuda" or placement.sharded:
        return None
    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base(name_or_path: str, placement: Placement):
    """A full model, placed and typed as `placement` says (k-bit when `quant_bits` is set)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": placement.torch_dtype, "attn_implementation": placement.attn_implementation}
    if placement.quant_bits:
        import torch
        from transformers import BitsAndBytesConfig

        compute = torch.float32 if placement.precision == "fp32" else placement.torch_dtype
        # FSDP shards float tensors of one dtype only: the 4-bit weights are stored in the compute dtype
        # (bitsandbytes' quant_storage), as FSDP-QLoRA needs; uint8 otherwise.
        storage = {"bnb_4bit_quant_storage": compute} if placement.sharded else {}
        kwargs["quantization_config"] = (
            BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=compute,
                bnb_4bit_use_double_quant=True,
                **storage,
            )
            if placement.quant_bits == 4
            else BitsAndBytesConfig(load_in_8bit=True)
        )
        kwargs["dtype"] = compute
    dmap = device_map(placement)
    if dmap is not None:
        kwargs["device_map"] = dmap
    return AutoModelForCausalLM.from_pretrained(str(name_or_path), **kwargs)


def load_for_training(base: str, placement: Placement, activation_checkpointing: bool = False):
    """The base a trainer starts from; a k-bit base is prepared for adapter training (norms in fp32),
    except under FSDP, whose wrapping needs every weight in one dtype (the FSDP-QLoRA recipe skips it)."""
    model = load_base(base, placement)
    if placement.quant_bits and not placement.sharded:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=activation_checkpointing)
    return model


def load_trainable_adapter(
    folder: str, placement: Placement, activation_checkpointing: bool = False, base_override: str | None = None
):
    """An adapter to continue training (preference tuning after SFT), on its base, placed as configured."""
    from peft import PeftModel

    base = load_for_training(adapter_base(folder, base_override), placement, activation_checkpointing)
    return PeftModel.from_pretrained(base, folder, is_trainable=True)


def generation_placement(folder: str | Path, placement: Placement) -> Placement:
    """An adapter trained on a k-bit base (QLoRA) is evaluated as it was trained: on that base, unmerged.
    The training record says so by its `quant_bits`, set only for a quantised base."""
    bits = read_record(folder, TRAINING_RECORD).get("quant_bits")
    if bits and is_adapter(folder):
        return Placement(placement.device, placement.precision, int(bits), placement.attn_implementation)
    return placement


def load_for_generation(folder: str | Path, placement: Placement, base_override: str | None = None):
    """(model, tokenizer) ready for batched generation: eval mode, left padding, on the placement's device.

    A LoRA adapter is merged into its base (faster generation, same logits); a QLoRA adapter stays on
    its k-bit base, since merging into quantised weights would change what is evaluated.
    """
    folder = Path(folder)
    placement = generation_placement(folder, placement)
    if is_adapter(folder):
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_base(adapter_base(folder, base_override), placement), str(folder))
        if not placement.quant_bits:
            model = model.merge_and_unload()
    else:
        model = load_base(str(folder), placement)
    tokenizer = load_tokenizer(folder)
    tokenizer.padding_side = "left"
    model.eval()
    return model, tokenizer


def load_merged(folder: str | Path, placement: Placement, base_override: str | None = None):
    """(model, tokenizer) with any adapter merged into an unquantised base: a self-contained copy to
    export or serve. A QLoRA adapter is merged into the full-precision base, not its 4-bit copy."""
    folder = Path(folder)
    unquantised = Placement(placement.device, placement.precision, None, placement.attn_implementation)
    if is_adapter(folder):
        from peft import PeftModel

        base = load_base(adapter_base(folder, base_override), unquantised)
        model = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
    else:
        model = load_base(str(folder), unquantised)
    model.eval()
    return model, load_tokenizer(folder)


def release() -> None:
    """Returns freed GPU memory once the caller has dropped its references (`del model`), so the
    next model loads into an empty GPU: one model there at a time."""
    import gc

    gc.collect()
    if cuda_available():
        import torch

        torch.cuda.empty_cache()


def model_device(model):
    return next(model.parameters()).device
