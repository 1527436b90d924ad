"""Preference tuning after SFT, from the SFT result: DPO, ORPO or KTO (trl's trainers).

- `dpo`: the policy against a frozen reference. With an adapter, training continues on the SFT
  adapter and trl keeps a frozen copy of it (`ref`) as the reference, so no second model loads.
- `orpo`: odds-ratio preference optimisation; no reference model, an SFT term on the chosen answer
  plus `beta` (ORPO's lambda) times the odds-ratio term.
- `kto`: Kahneman-Tversky optimisation on unpaired good/bad answers; each pair becomes one
  desirable and one undesirable example (trl unpairs them), with the SFT adapter as reference.

Every method reads the same preference rows (prompt, chosen, rejected) and writes the same kind of
folder as SFT, so evaluation and the registry do not care which one ran. A dataset with preference
rows only (Anthropic HH, say) starts from the base model instead: a fresh adapter is trained, and
the reference is the base itself (the adapter switched off).
"""

from __future__ import annotations

from pathlib import Path

from configs.schema import ModelConfig, TrainConfig
from tasks.model.load import is_adapter, load_for_training, load_tokenizer, load_trainable_adapter, training_placement
from tasks.train.common import (
    StepSink,
    adapter_config,
    answerless_rows,
    finished,
    inherited_base,
    make_step_logger,
    pref_examples,
    run_and_save,
    shared_trainer_args,
    training_records,
)
from tasks.train.result import StageResult
from tasks.train.throughput import ThroughputMeter


def _trainer_for(method: str, cfg: TrainConfig, common: dict):
    p = cfg.preference
    settings = dict(
        common,
        learning_rate=p.learning_rate,
        per_device_train_batch_size=p.batch_size,
        beta=p.beta,
        max_length=p.max_length,
    )
    if method == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer, DPOConfig(**settings)
    if method == "kto":
        from trl import KTOConfig, KTOTrainer

        return KTOTrainer, KTOConfig(**settings)
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    return ORPOTrainer, ORPOConfig(**settings)


def train_preference(
    sft_dir: str,
    data_path: str,
    template: str,
    cfg: TrainConfig,
    out_dir: str,
    on_log: StepSink | None = None,
    model_cfg: ModelConfig | None = None,
) -> StageResult:
    """`sft_dir`: the SFT result to continue from, or the base model when there was no SFT."""
    from datasets import Dataset

    method = cfg.preference.method
    out = Path(out_dir)
    done = finished(out, method)
    if done is not None:
        return done.as_skipped()
    placement = training_placement(cfg, model_cfg or ModelConfig())
    tokenizer = load_tokenizer(sft_dir)
    p = cfg.preference
    kept, rows = answerless_rows(
        pref_examples(data_path, template), tokenizer, p.max_length, out, method, p.max_dropped_fraction, "preference"
    )  # before any model loads
    # Continue the SFT adapter; without one (no SFT ran, or full weights) the method's own switch decides:
    # a fresh adapter on the base, or every weight.
    peft_config = None if is_adapter(sft_dir) else adapter_config(cfg)
    if is_adapter(sft_dir):
        model = load_trainable_adapter(sft_dir, placement, cfg.activation_checkpointing)
    else:
        model = load_for_training(sft_dir, placement, cfg.activation_checkpointing)
    trainer_class, args = _trainer_for(
        method, cfg, shared_trainer_args(cfg, placement, out, method, cfg.preference.max_steps, log_points=30)
    )
    logger = make_step_logger(method, on_log)
    pairs = Dataset.from_list([{k: ex[k] for k in ("prompt", "chosen", "rejected")} for ex in kept])
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=pairs,
        processing_class=tokenizer,
        callbacks=[logger],
        peft_config=peft_config,
    )
    meter = ThroughputMeter(trainer, placement.device, full_weights=not cfg.adapter)
    records = training_records(cfg, placement, inherited_base(sft_dir), method)
    return run_and_save(trainer, tokenizer, out, method, logger, meter, records, rows)
