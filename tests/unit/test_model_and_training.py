"""The embedded base model, LoRA SFT, QLoRA on CPU and DPO: real training, tiny sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from configs.schema import TinyModelConfig, TrainConfig
from tasks.data.demo import QUESTION_TEMPLATE
from tasks.model.tiny import DONE_MARKER, build_tiny_model


def test_base_model_is_built_once_and_reloads(base, tiny_config, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    marker = json.loads((base / DONE_MARKER).read_text())
    assert marker["parameters"] > 0 and len(marker["pretrain_losses"]) == 5
    stamp = (base / DONE_MARKER).stat().st_mtime
    assert build_tiny_model(tiny_config, base.parent) == base and (base / DONE_MARKER).stat().st_mtime == stamp

    tok = AutoTokenizer.from_pretrained(base)
    AutoModelForCausalLM.from_pretrained(base)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text == "<|bos|><|user|>hi<|end|><|assistant|>"
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>"


def test_pretraining_lowers_the_loss(tmp_path):
    cfg = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, pretrain_steps=40, vocab_size=400)
    losses = json.loads((build_tiny_model(cfg, tmp_path) / DONE_MARKER).read_text())["pretrain_losses"]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


@pytest.mark.parametrize("method", ["lora", "qlora", "full"])
def test_sft_then_dpo(base, demo, tmp_path, method):
    from tasks.evaluate.ops import measure_generation
    from tasks.model.load import Placement, load_for_generation
    from tasks.prompts import render_prompt
    from tasks.train.preference import train_preference
    from tasks.train.sft import train_sft

    cfg = TrainConfig.model_validate(
        {
            "method": method,
            "device": "cpu",
            "sft": {"max_steps": 6, "batch_size": 4},
            "preference": {"max_steps": 2, "batch_size": 2},
        }
    )
    sft = train_sft(str(base), demo["sft"], QUESTION_TEMPLATE, cfg, str(tmp_path))
    assert sft.steps == 6 and sft.history and sft.train_loss > 0
    assert sft.throughput["tokens"] > 0 and 0 <= sft.throughput["padding_fraction"] < 1
    adapter = (Path(sft.path) / "adapter_config.json").exists()
    assert adapter == (method != "full")
    dpo = train_preference(sft.path, demo["pref"], QUESTION_TEMPLATE, cfg, str(tmp_path))
    assert dpo.steps == 2 and any("dpo/rewards/margins" in h for h in dpo.history)
    model, tok = load_for_generation(dpo.path, Placement())
    question = "Tom has 2 apples. Tom gets 3 more apples. How many apples does Tom have now?"
    out = measure_generation(model, tok, [render_prompt(QUESTION_TEMPLATE, question)], max_new_tokens=4, batch_size=1)
    assert len(out) == 1 and 0 < out[0]["output_tokens"] <= 4


def test_qlora_really_quantises(base):
    import bitsandbytes as bnb

    from configs.schema import ModelConfig
    from tasks.model.load import load_for_training, training_placement

    placement = training_placement(TrainConfig(method="qlora", device="cpu"), ModelConfig())
    model = load_for_training(str(base), placement)
    assert placement.quant_bits == 4 and any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
