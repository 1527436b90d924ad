"""Fixtures the training and evaluation unit tests share: one tiny base model, one small demo set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from configs.schema import TinyModelConfig

# hidden_size 64: bitsandbytes' 4-bit blocks need at least 64 values per row.
TINY = TinyModelConfig(hidden_size=64, num_layers=1, num_heads=2, pretrain_steps=5, vocab_size=400)


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> Path:
    from tasks.model.tiny import build_tiny_model

    return build_tiny_model(TINY, tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> dict:
    """Demo train/pref/eval files, plus `sft`: the clean chat rows alone (what curation would keep)."""
    from tasks.data.demo import write_demo_data

    paths = write_demo_data(tmp_path_factory.mktemp("demo"), 5, 60, 24, 8)
    rows = [json.loads(line) for line in open(paths["train"]) if line.startswith('{"id": "train-')]
    sft = Path(paths["train"]).with_name("sft.jsonl")
    sft.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths | {"sft": str(sft)}


@pytest.fixture(scope="session")
def tiny_config() -> TinyModelConfig:
    return TINY
