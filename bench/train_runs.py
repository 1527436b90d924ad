"""The pieces of bench/train.py: the random-init base of a real shape, the data, the step clock both
trainers share, and the two trainings it compares (the project's `train_sft`, plain TRL).

Kept apart from the command so that bench/scaling.py's ranks run the very same project training.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

LLAMA = {
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
}
SHAPES = {
    "tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 256,
        "vocab_size": 1024,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
    },
    "llama-1b": LLAMA
    | {"hidden_size": 2048, "num_hidden_layers": 16, "intermediate_size": 8192, "tie_word_embeddings": True},
    "llama-8b": LLAMA
    | {"hidden_size": 4096, "num_hidden_layers": 32, "intermediate_size": 14336, "tie_word_embeddings": False},
}
BUILD_VERSION = "1"
DONE = "BENCH_BUILD_COMPLETE.json"
# Trainer settings that define the training; the two runs must agree on every one.
TRAINING_SETTINGS = (
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "packing",
    "packing_strategy",
    "padding_free",
    "bf16",
    "fp16",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "optim",
    "weight_decay",
    "max_grad_norm",
    "seed",
    "activation_checkpointing",
    "activation_checkpointing_kwargs",
    "use_liger_kernel",
    "completion_only_loss",
    "assistant_only_loss",
    "dataloader_num_workers",
    "dataloader_pin_memory",
    "torch_compile",
)


def build_base(shape: str, cache: Path, device: str, seed: int) -> Path:
    """The random-init base and the project's tokenizer, built once per shape (bf16 weights for the real shapes)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tasks.model.tiny import build_tokenizer, tokenizer_corpus

    key = hashlib.sha256(json.dumps([BUILD_VERSION, SHAPES[shape], seed], sort_keys=True).encode()).hexdigest()[:10]
    out = cache / f"{shape}-{key}"
    if (out / DONE).exists():
        return out
    tokenizer = build_tokenizer(tokenizer_corpus(seed), 2000)
    config = LlamaConfig(
        **SHAPES[shape],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    dtype = torch.float32 if shape == "tiny" else torch.bfloat16
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise in the saved dtype: an 8B model in fp32 is 32 GB
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    params = sum(p.numel() for p in model.parameters())
    (tmp / DONE).write_text(json.dumps({"shape": shape, "parameters": params, "tokenizer_tokens": len(tokenizer)}))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out


def row_tokens(tokenizer, row: dict) -> int:
    text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def write_data(path: Path, tokenizer, args) -> dict:
    """Demo rows, enough for every step; with --row-tokens, several problems joined into each row."""
    from tasks.data import demo

    rng = random.Random(args.seed)
    single = sum(row_tokens(tokenizer, demo.sft_row(demo.make_problem(rng), "probe")) for _ in range(100)) / 100
    per_row = max(1, round(args.row_tokens / single)) if args.row_tokens else 1
    sequences = args.steps * args.batch * args.grad_accum
    rows = math.ceil(sequences * args.max_length / (single * per_row) * 1.2) if args.packing else sequences
    rows += args.batch * args.grad_accum
    sample = []
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            problems = [demo.make_problem(rng) for _ in range(per_row)]
            if per_row == 1:
                row = demo.sft_row(problems[0], f"bench-{i}")
            else:
                row = {
                    "id": f"bench-{i}",
                    "messages": [
                        {"role": "user", "content": "\n".join(f"{n}. {p.question}" for n, p in enumerate(problems, 1))},
                        {
                            "role": "assistant",
                            "content": "\n".join(f"{n}. {p.completion()}" for n, p in enumerate(problems, 1)),
                        },
                    ],
                }
            if i < 50:
                sample.append(row)
            f.write(json.dumps(row) + "\n")
    mean = sum(row_tokens(tokenizer, r) for r in sample) / len(sample)
    return {"rows": rows, "problems_per_row": per_row, "mean_row_tokens": round(mean, 1)}


def make_clock():
    """A callback for both trainers: per-step wall time (CUDA synchronised), tokens per step, save times."""
    import torch
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []  # time at the end of each optimizer step
            self.tokens: list[int] = []  # real tokens the forward passes of that step got
            self.slots: list[int] = []  # token positions, padding included
            self.saves: dict[int, float] = {}  # step -> seconds its checkpoint save took
            self.logs: dict[
                int, float
            ] = {}  # step -> seconds from its end to its logged figures (loss sync, callbacks)
            self.settings: dict = {}

        def _now(self) -> float:
            if self.cuda:
                torch.cuda.synchronize()
            return time.perf_counter()

        def _count(self, module, args, kwargs):
            if not module.training:
                return
            ids = kwargs.get("input_ids", args[0] if args else None)
            mask = kwargs.get("attention_mask")
            self._slots += ids.numel()
            self._tokens = self._tokens + (mask.sum() if mask is not None else ids.numel())  # no sync here

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.cuda = args.device.type == "cuda"
            if self.cuda:
                torch.cuda.reset_peak_memory_stats()  # peak from here: weights, optimizer state, activations
            self.settings = settings_of(args, model)
            self._tokens, self._slots = 0, 0
            self._hook = model.register_forward_pre_hook(self._count, with_kwargs=True)
            self.ends.append(self._now())
            self._mark = self.ends[-1]

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(self._now())
            self._mark = self.ends[-1]
            self.tokens.append(int(self._tokens))
            self.slots.append(self._slots)
            self._tokens, self._slots = 0, 0

        def on_log(self, args, state, control, **kwargs):
            self._mark = self._now()  # a save follows the log: time it from here
            self.logs[state.global_step] = self._mark - self.ends[-1]

        def on_save(self, args, state, control, **kwargs):
            self.saves[state.global_step] = self._now() - self._mark

        def on_train_end(self, args, state, control, **kwargs):
            self._hook.remove()

        def figures(self, warmup: int) -> dict:
            steps = len(self.tokens)
            seconds = self.ends[steps] - self.ends[warmup]
            saves = [s for step, s in self.saves.items() if warmup <= step < steps]  # those inside the window
            logs = [s for step, s in self.logs.items() if warmup <= step < steps]
            tokens, slots = sum(self.tokens[warmup:]), sum(self.slots[warmup:])
            return {
                "steps": steps,
                "timed_steps": steps - warmup,
                "tokens": tokens,
                "seconds": seconds,
                "checkpoints": len(saves),
                "checkpoint_s": sum(saves),
                "logs": len(logs),
                "logging_s": sum(logs),
                "tokens_per_s": tokens / (seconds - sum(saves)),
                "tokens_per_s_with_checkpoints": tokens / seconds,
                "padding_fraction": 1 - tokens / slots if slots else 0.0,
            }

    return StepClock()


def settings_of(args, model) -> dict:
    """What the trainer really trains with, read back from it: its arguments, the adapter, the base's dtypes."""
    out = {k: getattr(args, k, None) for k in TRAINING_SETTINGS}
    out = {k: (v.value if hasattr(v, "value") else v) for k, v in out.items()}
    peft = getattr(model, "peft_config", {}).get("default")
    if peft is not None:
        out |= {
            "lora_r": peft.r,
            "lora_alpha": peft.lora_alpha,
            "lora_dropout": peft.lora_dropout,
            "lora_targets": sorted(peft.target_modules)
            if not isinstance(peft.target_modules, str)
            else peft.target_modules,
        }
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    out["attn_implementation"] = base.config._attn_implementation
    out["quantized_4bit"] = bool(getattr(base, "is_loaded_in_4bit", False))
    out["embedding_dtype"] = str(base.get_input_embeddings().weight.dtype)
    out["adapter_dtype"] = sorted({str(p.dtype) for p in model.parameters() if p.requires_grad})
    return out


def train_project(base: Path, data: Path, out: Path, args, clock):
    from configs.schema import LoraConfig, ModelConfig, SftConfig, TrainConfig
    from tasks.train.sft import train_sft

    cfg = TrainConfig(
        method=args.method,
        precision=args.precision,
        device=args.device,
        packing=args.packing,
        activation_checkpointing=args.activation_checkpointing,
        liger=args.liger,
        seed=args.seed,
        save_steps=args.save_steps,
        lora=LoraConfig(r=args.lora_r, alpha=args.lora_alpha, dropout=0.0),
        sft=SftConfig(
            max_steps=args.steps,
            learning_rate=args.lr,
            batch_size=args.batch,
            grad_accum=args.grad_accum,
            max_length=args.max_length,
        ),
    )
    return train_sft(
        str(base),
        str(data),
        "{{question}}",
        cfg,
        str(out),
        model_cfg=ModelConfig(attn_implementation=args.attn),
        callbacks=[clock],
    )


@dataclass(frozen=True)
class PlainRun:
    steps: int
    train_loss: float


def train_plain_trl(base: Path, data: Path, out: Path, args, clock) -> PlainRun:
    """What a user of plain TRL writes for the same run: no llmops code in the training path."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    kwargs = {"dtype": dtype, "attn_implementation": args.attn}
    if args.device == "cuda":
        kwargs["device_map"] = {"": 0}
    if args.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True
        )
    model = AutoModelForCausalLM.from_pretrained(str(base), **kwargs)
    if args.method == "qlora" and args.baseline_prepare_kbit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.activation_checkpointing)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    rows = [json.loads(line) for line in open(data, encoding="utf-8")]
    dataset = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    config = SFTConfig(
        output_dir=str(out),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, args.steps // 20),
        max_length=args.max_length,
        packing=args.packing,
        bf16=args.precision == "bf16",
        fp16=args.precision == "fp16",
        use_cpu=args.device == "cpu",
        activation_checkpointing=args.activation_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if args.activation_checkpointing else None,
        use_liger_kernel=args.liger,
        dataloader_pin_memory=args.device == "cuda",
        seed=args.seed,
        save_strategy="no",
        report_to="none",
        dataset_num_proc=None,
    )
    lora = LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=lora, callbacks=[clock]
    )
    result = trainer.train()
    return PlainRun(int(result.global_step), float(result.training_loss))


def peak_memory(device: str):
    """Peak GPU memory since the run's train() began (the clock resets it there), weights included."""
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def measure_eval(folder: Path, placement, prompts: list[str], args) -> dict:
    """Generation tokens/s of a trained model as the project's evaluation loads and times it."""
    from configs.cost import CostConfig
    from tasks.evaluate.ops import measure_generation, summarise_ops
    from tasks.model.load import load_for_generation, release

    model, tokenizer = load_for_generation(folder, placement)
    records = measure_generation(model, tokenizer, prompts, args.eval_new_tokens, args.eval_batch)
    del model
    release()
    ops = summarise_ops(records, CostConfig())
    return {
        "tokens_per_s": ops["tokens_per_s"],
        "queries": ops["queries"],
        "mean_output_tokens": ops["mean_output_tokens"],
        "latency_p50_s": ops["latency_p50_s"],
    }
