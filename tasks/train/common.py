"""Helpers every training method shares: loading the base model, the LoRA config, data, logging.

Methods are complete functions (`train_sft`, `train_dpo`) that call these helpers; there is no
trainer class hierarchy. The same loading code takes the embedded model's folder, any local
model folder, or a hub name (on a machine that can reach one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from configs.schema import TrainConfig


def use_cpu(cfg: TrainConfig) -> bool:
    """trl defaults to bf16 on GPU machines and fails on CPU unless told `use_cpu=True`."""
    if cfg.device == "cpu":
        return True
    if cfg.device == "cuda":
        return False
    import torch

    return not torch.cuda.is_available()


def shared_trainer_args(cfg: TrainConfig, out: Path, max_steps: int, log_points: int) -> dict[str, Any]:
    """The trainer settings SFT and DPO share: schedule, logging, no checkpoints, device and precision."""
    return {
        "output_dir": str(out / "checkpoints"),
        "max_steps": max_steps,
        "lr_scheduler_type": "cosine",
        "warmup_steps": max(1, max_steps // 20),
        "logging_steps": max(1, max_steps // log_points),
        "save_strategy": "no",
        "report_to": "none",  # figures go to the caller's sink (make_step_logger)
        "seed": cfg.seed,
        "use_cpu": use_cpu(cfg),
        "bf16": cfg.precision == "bf16",
        "fp16": cfg.precision == "fp16",
    }


def torch_dtype(cfg: TrainConfig):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]


def load_tokenizer(base: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base_model(base: str, cfg: TrainConfig):
    """Loads the base model for training: full precision, or k-bit for QLoRA."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch_dtype(cfg)}
    if cfg.method == "qlora":
        import torch
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
                               bnb_4bit_use_double_quant=True)
            if cfg.quant_bits == 4 else BitsAndBytesConfig(load_in_8bit=True)
        )
        kwargs["dtype"] = compute
        if torch.cuda.is_available():
            import os

            # Under `accelerate launch` each process must hold its k-bit copy on its own GPU.
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model


def build_lora_config(cfg: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM",
    )


def apply_template(template: str, question: str) -> str:
    """Fills the registered prompt template; the same function serves training and evaluation."""
    return template.replace("{{question}}", question)


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def sft_examples(path: str, template: str) -> list[dict]:
    """Chat rows as conversational prompt/completion pairs: the loss is on the last answer only."""
    examples = []
    for row in read_jsonl(path):
        messages = [dict(m) for m in row["messages"]]
        for m in messages:
            if m["role"] == "user":
                m["content"] = apply_template(template, m["content"])
        examples.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return examples


def pref_examples(path: str, template: str) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": apply_template(template, row["prompt"])}],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
        for row in read_jsonl(path)
    ]


StepSink = Callable[[int, dict[str, float]], None]


def make_step_logger(prefix: str, sink: StepSink | None = None):
    """A trainer callback that keeps each logged step's figures and hands them to `sink`.

    The library stays free of any tracking client: a flow passes a sink that writes to its MLflow
    run by id (`registry.tracking.metric_sink`), a script passes none and reads `history`.
    """
    from transformers import TrainerCallback

    class StepLogger(TrainerCallback):
        def __init__(self):
            self.history: list[dict] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs:
                return
            figures = {f"{prefix}/{k}": float(v) for k, v in logs.items() if isinstance(v, (int, float))}
            self.history.append({"step": state.global_step, **figures})
            if sink is not None:
                sink(state.global_step, figures)

    return StepLogger()


def run_and_save(trainer, tokenizer, out: Path, name: str, logger) -> dict:
    """Trains, saves the result (adapter or weights, with the tokenizer) as `out/name`, and writes a summary."""
    import time

    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    final = out / name
    trainer.model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    summary = {"path": str(final), "train_loss": float(result.training_loss), "seconds": seconds,
               "steps": int(result.global_step), "history": logger.history}
    (out / f"{name}_summary.json").write_text(json.dumps(summary, indent=1))
    return summary
