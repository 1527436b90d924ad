"""Loading a model to evaluate (generation and its timings are in `ops.measure_generation`).

A model to evaluate is named by a folder: a full model folder (the base model), or an adapter
folder whose `adapter_config.json` names its base. Registry references (`models:/name@alias`) are
resolved to such a folder by `registry.models.download_model_dir` before they reach this module.
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks.train.common import load_tokenizer


def load_for_eval(model_dir: str):
    """Returns (model, tokenizer) ready for generation, merging a LoRA adapter when there is one."""
    from transformers import AutoModelForCausalLM

    folder = Path(model_dir)
    adapter_cfg = folder / "adapter_config.json"
    if adapter_cfg.exists():
        from peft import PeftModel

        base = json.loads(adapter_cfg.read_text())["base_model_name_or_path"]
        model = AutoModelForCausalLM.from_pretrained(base)
        model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(folder))
    tokenizer = load_tokenizer(str(folder))
    tokenizer.padding_side = "left"
    model.eval()
    return model, tokenizer
