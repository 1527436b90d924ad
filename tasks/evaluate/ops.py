"""Operational figures of a model under evaluation: latency, time to first token, throughput, cost.

`measure_generation` runs greedy generation batch by batch and times it; its records also carry
the generated text, so one pass serves both scoring and these figures. With batching, one item's
latency is its batch's wall time (every item in a batch waits for the slowest), and the compute
one item costs is that time divided by the batch size; throughput and cost use the latter.

Time to first token is measured separately: for each batch, a `generate` of exactly one new token
(prefill plus one decoding step) is timed before the full generation. It is the time a batch of
this size takes to produce its first token, not a streaming client's TTFT, and the extra pass is
not counted in throughput or cost. An untimed warm-up runs first: one prompt, generated to the full
`max_new_tokens`, so one-time costs land on it rather than on the first timed batch. With the old
one-token warm-up, the first batch a process generated was seen many times slower than the same
batch generated again, so whichever model an evaluation timed first looked slower than the next
(bench/eval_timing.py measures it; on a busy 2-core CPU the noise of two threads can hide it).
"""

from __future__ import annotations

import math
import time

from configs.cost import CostConfig


def _eos_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, (list, tuple)) else {configured}
    return {i for i in ids if i is not None}


def _count_new_tokens(row: list[int], eos: set[int]) -> int:
    """Generated tokens up to and including the first end-of-sequence; what follows is padding."""
    for n, token in enumerate(row):
        if token in eos:
            return n + 1
    return len(row)


def measure_generation(
    model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int, chat: bool = True, warm_up: bool = True
) -> list[dict]:
    """Greedy generation with timings, one record per prompt, in order.

    Records: `output`, `latency_s` (the batch's wall time), `ttft_s` (the batch's one-token
    generate), `input_tokens`, `output_tokens`, `batch_size`. With `chat`, each prompt is sent as
    one user turn through the tokenizer's chat template. `warm_up=False` skips the warm-up, for a
    caller that already warmed this model up at this `max_new_tokens`.
    """
    import torch

    device = next(model.parameters()).device
    use_template = chat and bool(getattr(tokenizer, "chat_template", None))
    eos = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def encode(chunk: list[str]):
        texts = (
            [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
                )
                for p in chunk
            ]
            if use_template
            else chunk
        )
        return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not use_template).to(device)

    def timed_generate(enc, n_tokens: int):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **enc, max_new_tokens=n_tokens, do_sample=False, pad_token_id=pad_id, eos_token_id=sorted(eos) or None
            )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out, time.perf_counter() - t0

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    records: list[dict] = []
    try:
        if prompts and warm_up:
            timed_generate(encode(prompts[:1]), max_new_tokens)  # warm-up, not recorded
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            enc = encode(chunk)
            _, ttft = timed_generate(enc, 1)
            out, seconds = timed_generate(enc, max_new_tokens)
            new_tokens = out[:, enc["input_ids"].shape[1] :].tolist()
            for row, mask in zip(new_tokens, enc["attention_mask"]):
                n_out = _count_new_tokens(row, eos)
                records.append(
                    {
                        "output": tokenizer.decode(row[:n_out], skip_special_tokens=True).strip(),
                        "latency_s": seconds,
                        "ttft_s": ttft,
                        "input_tokens": int(mask.sum()),
                        "output_tokens": n_out,
                        "batch_size": len(chunk),
                    }
                )
    finally:
        tokenizer.padding_side = side
    return records


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), interpolating linearly between order statistics (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def batch_cost_usd(records: list[dict], cost: CostConfig) -> float:
    """What one batch of generation records cost: its wall time at `gpu_hour_usd` (self-hosted), or
    its tokens at the listed prices (an API model). The records share the batch's `latency_s`."""
    if cost.model_price is not None:
        price = cost.price_table[cost.model_price]
        return (
            sum(r["input_tokens"] * price.input_per_1m + r["output_tokens"] * price.output_per_1m for r in records)
            / 1e6
        )
    return cost.gpu_hour_usd * max(r["latency_s"] for r in records) / 3600


def summarise_ops(records: list[dict], cost: CostConfig) -> dict:
    """Latency and TTFT p50/p95, throughput, mean tokens per query, and cost per 1,000 queries.

    Generation time is each item's share of its batch (`latency_s / batch_size`), summed; this
    stays right when records from resumed runs with different batches are pooled. Self-hosted
    cost = gpu_hour_usd × (generation seconds per query) / 3600 × 1000; API cost = mean input and
    output tokens per query × the listed per-1M prices / 1e6 × 1000.
    """
    if not records:
        raise ValueError("no generation records to summarise")
    n = len(records)
    latencies = [r["latency_s"] for r in records]
    ttfts = [r["ttft_s"] for r in records]
    gen_seconds = sum(r["latency_s"] / r.get("batch_size", 1) for r in records)
    total_out = sum(r["output_tokens"] for r in records)
    mean_in = sum(r["input_tokens"] for r in records) / n
    mean_out = total_out / n
    if cost.model_price is not None:
        price = cost.price_table[cost.model_price]
        per_1k = (mean_in * price.input_per_1m + mean_out * price.output_per_1m) / 1e6 * 1000
        basis = f"api:{cost.model_price}"
    else:
        per_1k = cost.gpu_hour_usd * (gen_seconds / n) / 3600 * 1000
        basis = "self-hosted"
    return {
        "queries": n,
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_p95_s": percentile(ttfts, 95),
        "tokens_per_s": total_out / gen_seconds if gen_seconds > 0 else 0.0,
        "mean_input_tokens": mean_in,
        "mean_output_tokens": mean_out,
        "cost_per_1k_queries": per_1k,
        "cost_basis": basis,
    }
