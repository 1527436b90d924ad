"""Loading a model to evaluate, and batched greedy generation on an eval set.

A model to evaluate is named by a folder: a full model folder (the base model), or an adapter
folder whose `adapter_config.json` names its base. Registry references (`models:/name@alias`) are
resolved to such a folder by `registry.models.resolve_model_dir` before they reach this module.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tasks.train.common import apply_template, load_tokenizer


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


def generate_answers(model, tokenizer, questions: list[str], template: str, max_new_tokens: int, batch_size: int) -> list[dict]:
    """Greedy answers, one dict per question with the text and the generation's timing."""
    import torch

    results: list[dict] = []
    for start in range(0, len(questions), batch_size):
        chunk = questions[start : start + batch_size]
        prompts = [
            tokenizer.apply_chat_template([{"role": "user", "content": apply_template(template, q)}],
                                          add_generation_prompt=True, tokenize=False)
            for q in chunk
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        seconds = time.perf_counter() - t0
        new_tokens = out[:, enc["input_ids"].shape[1]:]
        for row in new_tokens:
            text = tokenizer.decode(row, skip_special_tokens=True)
            n_out = int((row != tokenizer.pad_token_id).sum())
            results.append({"output": text.strip(), "output_tokens": n_out, "batch_seconds": seconds / len(chunk)})
    return results
