"""Supervised fine-tuning with a LoRA, QLoRA or full-weight update (trl's SFTTrainer).

The loss covers the assistant's answer only: examples are conversational prompt/completion pairs,
so trl masks the prompt tokens. The result is a folder with the adapter (or full weights) and the
tokenizer, which DPO, evaluation and the registry all read.
"""

from __future__ import annotations

from pathlib import Path

from configs.schema import TrainConfig
from tasks.train.common import (
    build_lora_config, load_base_model, load_tokenizer, make_step_logger, run_and_save, sft_examples, shared_trainer_args, StepSink,
)


def train_sft(base: str, data_path: str, template: str, cfg: TrainConfig, out_dir: str, on_log: StepSink | None = None) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    out = Path(out_dir)
    tokenizer = load_tokenizer(base)
    model = load_base_model(base, cfg)
    args = SFTConfig(
        **shared_trainer_args(cfg, out, cfg.sft.max_steps, log_points=50),
        learning_rate=cfg.sft.learning_rate,
        per_device_train_batch_size=cfg.sft.batch_size,
        gradient_accumulation_steps=cfg.sft.grad_accum,
        max_length=cfg.sft.max_length,
        disable_tqdm=False,
        dataset_num_proc=None,
    )
    logger = make_step_logger("sft", on_log)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(sft_examples(data_path, template)),
        processing_class=tokenizer,
        peft_config=None if cfg.method == "full" else build_lora_config(cfg),
        callbacks=[logger],
    )
    return run_and_save(trainer, tokenizer, out, "sft", logger)

