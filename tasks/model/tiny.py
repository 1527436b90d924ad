"""The embedded default base model: a tokenizer and a tiny Llama-style model the project builds.

No model hub is reachable here, so the default pipeline cannot start from downloaded weights. This
module trains a byte-level BPE tokenizer with a chat template and pre-trains a small
`LlamaForCausalLM` on the project's own prose, so the base model is not random. The result is an
ordinary Hugging Face model folder that `AutoModelForCausalLM.from_pretrained` reloads; it is built
once per config, under a folder named by the config's hash, with a completion marker.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

from configs.schema import TinyModelConfig
from core.locks import file_lock
from tasks.data import demo

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]

# Assistant turns are wrapped in generation markers so trl can mask everything else from the loss.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{% else %}{{ message['content'] }}<|end|>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
BUILD_VERSION = "1"  # bump when the build recipe changes, so old folders are not reused
DONE_MARKER = "BUILD_COMPLETE.json"


def config_key(cfg: TinyModelConfig) -> str:
    payload = json.dumps({"v": BUILD_VERSION, **cfg.model_dump()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def build_tokenizer(corpus: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|bos|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"  # decoder-only generation pads on the left
    return fast


def tokenizer_corpus(seed: int) -> list[str]:
    """Prose plus a sample of the task's own phrasing, so questions tokenise into whole words."""
    import random

    rng = random.Random(seed + 1)
    lines = demo.pretrain_corpus(3000, seed)
    for _ in range(2000):
        p = demo.make_problem(rng)
        lines += [demo.QUESTION_TEMPLATE.replace("{{question}}", p.question), p.completion()]
    return lines


def pretrain(
    model, tokenizer, corpus: list[str], steps: int, seed: int, seq_len: int = 64, batch: int = 16
) -> list[float]:
    """A short causal-LM pre-training loop on packed prose; returns the loss curve."""
    import torch

    if steps == 0:
        return []
    ids: list[int] = []
    for line in corpus:
        ids += tokenizer(line, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    data = torch.tensor(ids[: (len(ids) // seq_len) * seq_len]).view(-1, seq_len)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, data.shape[0], (batch,), generator=gen)
        batch_ids = data[idx]
        loss = model(input_ids=batch_ids, labels=batch_ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


def build_tiny_model(cfg: TinyModelConfig, models_dir: Path) -> Path:
    """Builds (or reuses) the tiny base model; returns its folder.

    Under a lock per folder: processes sharing a home would otherwise build the same model at
    once and collide when moving it into place. The second one waits, then reuses the folder.
    """
    out = Path(models_dir) / f"tiny-{config_key(cfg)}"
    if (out / DONE_MARKER).exists():
        return out
    with file_lock(out):
        if not (out / DONE_MARKER).exists():
            _build(cfg, out)
    return out


def _build(cfg: TinyModelConfig, out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if out.exists():  # a build that crashed half-way: start it again
        shutil.rmtree(out)
    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer(tokenizer_corpus(cfg.seed), cfg.vocab_size)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.hidden_size * 4,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_heads,
            max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
        )
    )
    losses = pretrain(model, tokenizer, demo.pretrain_corpus(4000, cfg.seed + 2), cfg.pretrain_steps, cfg.seed)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    n_params = sum(p.numel() for p in model.parameters())
    marker = {"config": cfg.model_dump(), "parameters": n_params, "pretrain_losses": losses}
    (tmp / DONE_MARKER).write_text(json.dumps(marker))
    tmp.rename(out)
