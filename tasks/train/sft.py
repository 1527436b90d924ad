"""Supervised fine-tuning with a LoRA, QLoRA or full-weight update (trl's SFTTrainer).

The loss covers the assistant's answer only: examples are conversational prompt/completion pairs,
so trl masks the prompt tokens. With `packing`, rows are packed best-fit into `max_length`
sequences without padding (trl's padding-free BFD packing), which is what keeps a GPU busy on short
rows. The result is a folder with the adapter (or full weights), the tokenizer and the records the
loader needs (`llmops_training.json`, `llmops_base.json`), which preference tuning, evaluation and
the registry all read.

    from tasks.train.sft import train_sft
    train_sft("path/to/base", "sft.jsonl", "{{question}}", TrainConfig(device="cpu"), "out/")
"""

from __future__ import annotations

from pathlib import Path

from configs.schema import ModelConfig, TrainConfig
from tasks.model.load import load_for_training, load_tokenizer, training_placement
from tasks.train.common import (
    StepSink,
    adapter_config,
    answerless_rows,
    finished,
    make_step_logger,
    run_and_save,
    sft_examples,
    shared_trainer_args,
    training_records,
)
from tasks.train.result import StageResult
from tasks.train.throughput import ThroughputMeter


def train_sft(
    base: str,
    data_path: str,
    template: str,
    cfg: TrainConfig,
    out_dir: str,
    on_log: StepSink | None = None,
    model_cfg: ModelConfig | None = None,
    callbacks: list | None = None,
) -> StageResult:
    """`callbacks`: extra transformers `TrainerCallback`s, e.g. bench/train.py's step clock, which times
    the same steps of this trainer and of a plain-TRL one."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    out = Path(out_dir)
    done = finished(out, "sft")
    if done is not None:
        return done.as_skipped()
    placement = training_placement(cfg, model_cfg or ModelConfig())
    tokenizer = load_tokenizer(base)
    examples = sft_examples(data_path, template)
    kept, rows = answerless_rows(examples, tokenizer, cfg.sft.max_length, out, "sft", cfg.sft.max_dropped_fraction)
    model = load_for_training(base, placement, cfg.activation_checkpointing)
    args = SFTConfig(
        **shared_trainer_args(cfg, placement, out, "sft", cfg.sft.max_steps, log_points=50),
        learning_rate=cfg.sft.learning_rate,
        per_device_train_batch_size=cfg.sft.batch_size,
        gradient_accumulation_steps=cfg.sft.grad_accum,
        max_length=cfg.sft.max_length,
        packing=cfg.packing,
        disable_tqdm=False,
        dataset_num_proc=None,
    )
    logger = make_step_logger("sft", on_log)
    peft_config = adapter_config(cfg)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([{k: ex[k] for k in ("prompt", "completion")} for ex in kept]),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[logger, *(callbacks or [])],
    )
    meter = ThroughputMeter(trainer, placement.device, full_weights=peft_config is None)
    return run_and_save(
        trainer, tokenizer, out, "sft", logger, meter, training_records(cfg, placement, base, "sft"), rows
    )
