"""Direct preference optimisation, starting from the SFT result (trl's DPOTrainer).

With an adapter, training continues on the SFT adapter and trl keeps a frozen copy of it as the
reference policy, so no second model is loaded. With full weights, trl copies the SFT model as
the reference.
"""

from __future__ import annotations

import json
from pathlib import Path

from configs.schema import TrainConfig
from tasks.train.common import (
    load_base_model, load_tokenizer, make_step_logger, pref_examples, run_and_save, shared_trainer_args, StepSink,
)


def load_sft_policy(sft_dir: str, cfg: TrainConfig):
    if cfg.method == "full":
        return load_base_model(sft_dir, cfg)
    from peft import PeftModel

    base = json.loads((Path(sft_dir) / "adapter_config.json").read_text())["base_model_name_or_path"]
    return PeftModel.from_pretrained(load_base_model(base, cfg), sft_dir, is_trainable=True)


def train_dpo(sft_dir: str, data_path: str, template: str, cfg: TrainConfig, out_dir: str, on_log: StepSink | None = None) -> dict:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    out = Path(out_dir)
    tokenizer = load_tokenizer(sft_dir)
    args = DPOConfig(
        **shared_trainer_args(cfg, out, cfg.dpo.max_steps, log_points=30),
        learning_rate=cfg.dpo.learning_rate,
        per_device_train_batch_size=cfg.dpo.batch_size,
        beta=cfg.dpo.beta,
        max_length=cfg.dpo.max_length,
    )
    logger = make_step_logger("dpo", on_log)
    trainer = DPOTrainer(
        model=load_sft_policy(sft_dir, cfg),
        args=args,
        train_dataset=Dataset.from_list(pref_examples(data_path, template)),
        processing_class=tokenizer,
        callbacks=[logger],
    )
    return run_and_save(trainer, tokenizer, out, "dpo", logger)

