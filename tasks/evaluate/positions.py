"""A prompt and its answer must fit the model's positions: refused in one line, never truncated.

lm-eval left-truncates a prompt that leaves no room for `max_gen_toks` new tokens and goes on (it logs
a warning), so its score is of a question the model never saw whole. The lm-eval tasks
(`harness.py`) ask `check_prompts_fit` first, counting the prompt as the model receives it, chat
template included, as `ops.measure_generation` sends it.

The suites do not ask yet: a Llama-style model given more tokens than its positions generates past
them without an error, and the held-out HH items of tests/flows/test_bring_your_own.py (640 tokens
on the embedded model's 512 positions) are scored that way today. `refuse_long_prompts` is the one
call `run._evaluate_suites` would make, once such configs fit or leave those items out.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import UserError

# Config attributes that carry a context length, in the order lm-eval's `resolve_max_length` reads them.
_LENGTH_ATTRS = ("n_positions", "max_position_embeddings", "n_ctx")
_NO_LIMIT = 10**9  # tokenizers say "no limit" with a huge model_max_length


def model_positions(config, tokenizer=None) -> int | None:
    """How many positions the model has (text model first, for composite configs); None when unknown."""
    for cfg in (getattr(config, "text_config", None), config):
        for attr in _LENGTH_ATTRS:
            value = getattr(cfg, attr, None) if cfg is not None else None
            if isinstance(value, int) and value > 0:
                return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < _NO_LIMIT else None


def check_prompts_fit(
    where: str, ids: Sequence[str], prompt_tokens: Sequence[int], max_new_tokens: int, positions: int | None
) -> None:
    """Raises a `UserError` naming the first item whose prompt plus `max_new_tokens` exceeds `positions`."""
    if positions is None:
        return
    for item_id, n in zip(ids, prompt_tokens):
        if n + max_new_tokens > positions:
            room = positions - max_new_tokens
            raise UserError(
                f"{where}, item {item_id}",
                f"its prompt is {n} tokens, and with {max_new_tokens} new tokens that exceeds the model's "
                f"{positions} positions (prompts may have at most {room} tokens)",
                "shorten the question or the prompt template, lower eval.max_new_tokens, "
                "or evaluate a model with more positions",
            )


def chat_prompt_tokens(tokenizer, prompts: Sequence[str]) -> list[int]:
    """Token counts of prompts sent as one user turn through the chat template (as generation sends
    them, `ops.measure_generation`), or as plain text with special tokens when there is no template."""
    if getattr(tokenizer, "chat_template", None):
        texts = [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
            for p in prompts
        ]
        return [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    return [len(tokenizer(p)["input_ids"]) for p in prompts]


def refuse_long_prompts(where: str, ids: Sequence[str], prompts: Sequence[str], max_new_tokens: int, model, tokenizer):
    """`check_prompts_fit` for prompts about to be generated from by a loaded (model, tokenizer)."""
    positions = model_positions(getattr(model, "config", None), tokenizer)
    check_prompts_fit(where, ids, chat_prompt_tokens(tokenizer, prompts), max_new_tokens, positions)
