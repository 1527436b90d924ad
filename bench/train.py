"""Training and evaluation benchmark: the project's SFT against plain TRL, same settings, same process.

    python bench/train.py --shape tiny --steps 8 --json                       # CPU, seconds (a test runs this)
    python bench/train.py --shape llama-8b --method lora --packing --steps 30 --json
    python bench/train.py --shape llama-8b --method qlora --packing --activation-checkpointing --steps 20 --json
    python bench/train.py --shape llama-1b --method lora --packing --steps 10 --eval-cpu-baseline --json
    python bench/train.py --shape llama-1b --steps 2 --warmup-steps 1 --batch 1 --max-length 128 --device cpu

The base is a random-init Llama of the named shape (tiny: 2 layers, hidden 64; llama-1b: hidden 2048,
16 layers, 32 heads, 8 KV heads, MLP 8192, tied embeddings; llama-8b: hidden 4096, 32 layers, 32 heads,
8 KV heads, MLP 14336), built once and saved under --cache-dir, with no hub. The tokenizer is the
project's own (tasks/model/tiny.py, trained here in a second on the demo's phrasing): about 520 tokens,
far fewer than the real shapes' 128,256 embedding rows. The model's compute is that of the real shape
(the output layer still scores all 128,256 tokens); only the rows a token id can reach differ.

Data: the demo's arithmetic rows (one problem, about 35 tokens with this tokenizer), as many as
steps x batch x grad-accum sequences need (with --packing, rows are packed best-fit into --max-length).
Unpacked, such short rows leave a GPU launch-bound; --row-tokens N joins problems into rows of about N
tokens, so the unpacked figure measures the model rather than the row length.

Two runs train the same folder with the same settings: the project's `train_sft` (its loader, its
trainer settings) and a plain-TRL script written here (`SFTTrainer` + `SFTConfig` + `LoraConfig`,
bitsandbytes for qlora). A callback in both records every optimizer step's wall time (CUDA synchronised)
and counts the tokens each forward pass gets, the project's way (attention-mask ones; every token when
packed batches are padding-free). The first --warmup-steps are not timed. The project saves a resumable
checkpoint every 10 % of the steps; those saves are timed apart (`checkpoint_s`) and left out of
`tokens_per_s`, since ten saves weigh on a 30-step benchmark far more than on a real run;
`overhead_with_checkpoints` counts them. `overhead` = baseline tokens/s / project tokens/s - 1 (0.05:
the project needs 5 % more time per token; negative: it is faster). `settings_differ` lists any training
setting the two trainers did not share (expected: none for lora; for qlora the project's
prepare_model_for_kbit_training keeps the unquantised weights in fp32, which plain TRL does not).

Evaluation: the project's trained adapter loaded by `load_for_generation` on the device the eval config
names (--eval-device, default auto) and timed by `measure_generation`: generated tokens per second of
generation time. --eval-cpu-baseline repeats it on the CPU in fp32, on one batch of the same prompts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LLAMA = {
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
}
SHAPES = {
    "tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 256,
        "vocab_size": 1024,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
    },
    "llama-1b": LLAMA
    | {"hidden_size": 2048, "num_hidden_layers": 16, "intermediate_size": 8192, "tie_word_embeddings": True},
    "llama-8b": LLAMA
    | {"hidden_size": 4096, "num_hidden_layers": 32, "intermediate_size": 14336, "tie_word_embeddings": False},
}
BUILD_VERSION = "1"
DONE = "BENCH_BUILD_COMPLETE.json"
# Trainer settings that define the training; the two runs must agree on every one.
TRAINING_SETTINGS = (
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "packing",
    "packing_strategy",
    "padding_free",
    "bf16",
    "fp16",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "optim",
    "weight_decay",
    "max_grad_norm",
    "seed",
    "activation_checkpointing",
    "activation_checkpointing_kwargs",
    "use_liger_kernel",
    "completion_only_loss",
    "assistant_only_loss",
    "dataloader_num_workers",
    "dataloader_pin_memory",
    "torch_compile",
)


def build_base(shape: str, cache: Path, device: str, seed: int) -> Path:
    """The random-init base and the project's tokenizer, built once per shape (bf16 weights for the real shapes)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tasks.model.tiny import build_tokenizer, tokenizer_corpus

    key = hashlib.sha256(json.dumps([BUILD_VERSION, SHAPES[shape], seed], sort_keys=True).encode()).hexdigest()[:10]
    out = cache / f"{shape}-{key}"
    if (out / DONE).exists():
        return out
    tokenizer = build_tokenizer(tokenizer_corpus(seed), 2000)
    config = LlamaConfig(
        **SHAPES[shape],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    dtype = torch.float32 if shape == "tiny" else torch.bfloat16
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise in the saved dtype: an 8B model in fp32 is 32 GB
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    params = sum(p.numel() for p in model.parameters())
    (tmp / DONE).write_text(json.dumps({"shape": shape, "parameters": params, "tokenizer_tokens": len(tokenizer)}))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out


def row_tokens(tokenizer, row: dict) -> int:
    text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def write_data(path: Path, tokenizer, args) -> dict:
    """Demo rows, enough for every step; with --row-tokens, several problems joined into each row."""
    from tasks.data import demo

    rng = random.Random(args.seed)
    single = sum(row_tokens(tokenizer, demo.sft_row(demo.make_problem(rng), "probe")) for _ in range(100)) / 100
    per_row = max(1, round(args.row_tokens / single)) if args.row_tokens else 1
    sequences = args.steps * args.batch * args.grad_accum
    rows = math.ceil(sequences * args.max_length / (single * per_row) * 1.2) if args.packing else sequences
    rows += args.batch * args.grad_accum
    sample = []
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            problems = [demo.make_problem(rng) for _ in range(per_row)]
            if per_row == 1:
                row = demo.sft_row(problems[0], f"bench-{i}")
            else:
                row = {
                    "id": f"bench-{i}",
                    "messages": [
                        {"role": "user", "content": "\n".join(f"{n}. {p.question}" for n, p in enumerate(problems, 1))},
                        {
                            "role": "assistant",
                            "content": "\n".join(f"{n}. {p.completion()}" for n, p in enumerate(problems, 1)),
                        },
                    ],
                }
            if i < 50:
                sample.append(row)
            f.write(json.dumps(row) + "\n")
    mean = sum(row_tokens(tokenizer, r) for r in sample) / len(sample)
    return {"rows": rows, "problems_per_row": per_row, "mean_row_tokens": round(mean, 1)}


def make_clock():
    """A callback for both trainers: per-step wall time (CUDA synchronised), tokens per step, save times."""
    import torch
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []  # time at the end of each optimizer step
            self.tokens: list[int] = []  # real tokens the forward passes of that step got
            self.slots: list[int] = []  # token positions, padding included
            self.saves: dict[int, float] = {}  # step -> seconds its checkpoint save took
            self.logs: dict[
                int, float
            ] = {}  # step -> seconds from its end to its logged figures (loss sync, callbacks)
            self.settings: dict = {}

        def _now(self) -> float:
            if self.cuda:
                torch.cuda.synchronize()
            return time.perf_counter()

        def _count(self, module, args, kwargs):
            if not module.training:
                return
            ids = kwargs.get("input_ids", args[0] if args else None)
            mask = kwargs.get("attention_mask")
            self._slots += ids.numel()
            self._tokens = self._tokens + (mask.sum() if mask is not None else ids.numel())  # no sync here

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.cuda = args.device.type == "cuda"
            if self.cuda:
                torch.cuda.reset_peak_memory_stats()  # peak from here: weights, optimizer state, activations
            self.settings = settings_of(args, model)
            self._tokens, self._slots = 0, 0
            self._hook = model.register_forward_pre_hook(self._count, with_kwargs=True)
            self.ends.append(self._now())
            self._mark = self.ends[-1]

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(self._now())
            self._mark = self.ends[-1]
            self.tokens.append(int(self._tokens))
            self.slots.append(self._slots)
            self._tokens, self._slots = 0, 0

        def on_log(self, args, state, control, **kwargs):
            self._mark = self._now()  # a save follows the log: time it from here
            self.logs[state.global_step] = self._mark - self.ends[-1]

        def on_save(self, args, state, control, **kwargs):
            self.saves[state.global_step] = self._now() - self._mark

        def on_train_end(self, args, state, control, **kwargs):
            self._hook.remove()

        def figures(self, warmup: int) -> dict:
            steps = len(self.tokens)
            seconds = self.ends[steps] - self.ends[warmup]
            saves = [s for step, s in self.saves.items() if warmup <= step < steps]  # those inside the window
            logs = [s for step, s in self.logs.items() if warmup <= step < steps]
            tokens, slots = sum(self.tokens[warmup:]), sum(self.slots[warmup:])
            return {
                "steps": steps,
                "timed_steps": steps - warmup,
                "tokens": tokens,
                "seconds": seconds,
                "checkpoints": len(saves),
                "checkpoint_s": sum(saves),
                "logs": len(logs),
                "logging_s": sum(logs),
                "tokens_per_s": tokens / (seconds - sum(saves)),
                "tokens_per_s_with_checkpoints": tokens / seconds,
                "padding_fraction": 1 - tokens / slots if slots else 0.0,
            }

    return StepClock()


def settings_of(args, model) -> dict:
    """What the trainer really trains with, read back from it: its arguments, the adapter, the base's dtypes."""
    out = {k: getattr(args, k, None) for k in TRAINING_SETTINGS}
    out = {k: (v.value if hasattr(v, "value") else v) for k, v in out.items()}
    peft = getattr(model, "peft_config", {}).get("default")
    if peft is not None:
        out |= {
            "lora_r": peft.r,
            "lora_alpha": peft.lora_alpha,
            "lora_dropout": peft.lora_dropout,
            "lora_targets": sorted(peft.target_modules)
            if not isinstance(peft.target_modules, str)
            else peft.target_modules,
        }
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    out["attn_implementation"] = base.config._attn_implementation
    out["quantized_4bit"] = bool(getattr(base, "is_loaded_in_4bit", False))
    out["embedding_dtype"] = str(base.get_input_embeddings().weight.dtype)
    out["adapter_dtype"] = sorted({str(p.dtype) for p in model.parameters() if p.requires_grad})
    return out


def train_project(base: Path, data: Path, out: Path, args, clock) -> dict:
    from configs.schema import LoraConfig, ModelConfig, SftConfig, TrainConfig
    from tasks.train.sft import train_sft

    cfg = TrainConfig(
        method=args.method,
        precision=args.precision,
        device=args.device,
        packing=args.packing,
        activation_checkpointing=args.activation_checkpointing,
        liger=args.liger,
        seed=args.seed,
        save_steps=args.save_steps,
        lora=LoraConfig(r=args.lora_r, alpha=args.lora_alpha, dropout=0.0),
        sft=SftConfig(
            max_steps=args.steps,
            learning_rate=args.lr,
            batch_size=args.batch,
            grad_accum=args.grad_accum,
            max_length=args.max_length,
        ),
    )
    return train_sft(
        str(base),
        str(data),
        "{{question}}",
        cfg,
        str(out),
        model_cfg=ModelConfig(attn_implementation=args.attn),
        callbacks=[clock],
    )


def train_plain_trl(base: Path, data: Path, out: Path, args, clock) -> dict:
    """What a user of plain TRL writes for the same run: no llmops code in the training path."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    kwargs = {"dtype": dtype, "attn_implementation": args.attn}
    if args.device == "cuda":
        kwargs["device_map"] = {"": 0}
    if args.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True
        )
    model = AutoModelForCausalLM.from_pretrained(str(base), **kwargs)
    if args.method == "qlora" and args.baseline_prepare_kbit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.activation_checkpointing)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    rows = [json.loads(line) for line in open(data, encoding="utf-8")]
    dataset = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    config = SFTConfig(
        output_dir=str(out),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, args.steps // 20),
        max_length=args.max_length,
        packing=args.packing,
        bf16=args.precision == "bf16",
        fp16=args.precision == "fp16",
        use_cpu=args.device == "cpu",
        activation_checkpointing=args.activation_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if args.activation_checkpointing else None,
        use_liger_kernel=args.liger,
        dataloader_pin_memory=args.device == "cuda",
        seed=args.seed,
        save_strategy="no",
        report_to="none",
        dataset_num_proc=None,
    )
    lora = LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=lora, callbacks=[clock]
    )
    result = trainer.train()
    return {"steps": int(result.global_step), "train_loss": float(result.training_loss)}


def peak_memory(device: str):
    """Peak GPU memory since the run's train() began (the clock resets it there), weights included."""
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def measure_eval(folder: Path, placement, prompts: list[str], args) -> dict:
    """Generation tokens/s of a trained model as the project's evaluation loads and times it."""
    from configs.cost import CostConfig
    from tasks.evaluate.ops import measure_generation, summarise_ops
    from tasks.model.load import load_for_generation, release

    model, tokenizer = load_for_generation(folder, placement)
    records = measure_generation(model, tokenizer, prompts, args.eval_new_tokens, args.eval_batch)
    del model
    release()
    ops = summarise_ops(records, CostConfig())
    return {
        "tokens_per_s": ops["tokens_per_s"],
        "queries": ops["queries"],
        "mean_output_tokens": ops["mean_output_tokens"],
        "latency_p50_s": ops["latency_p50_s"],
    }


def run(args) -> dict:
    import torch

    from configs.schema import EvalConfig, ModelConfig
    from tasks.data.demo import QUESTION_TEMPLATE, make_problem
    from tasks.model.load import Placement, eval_placement, load_tokenizer, release, resolve_device
    from tasks.train.throughput import peak_tflops

    threads = args.cpu_threads or (1 if args.shape == "tiny" else None)
    if threads:
        torch.set_num_threads(threads)
    args.device = resolve_device(args.device)
    args.precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    cache = Path(args.cache_dir or Path(tempfile.gettempdir()) / "llmops-bench-models")
    cache.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    base = build_base(args.shape, cache, "cuda" if torch.cuda.is_available() else "cpu", args.seed)
    build_s = time.perf_counter() - start
    release()
    work = Path(tempfile.mkdtemp(prefix="bench-train-", dir=args.work_dir))
    data = write_data(work / "sft.jsonl", load_tokenizer(base), args)

    runs: dict[str, dict] = {}
    order = ("baseline", "project") if args.baseline_first else ("project", "baseline")
    for name in order:
        clock = make_clock()
        if name == "project":
            summary = train_project(base, work / "sft.jsonl", work / "project", args, clock)
        else:
            summary = train_plain_trl(base, work / "sft.jsonl", work / "baseline", args, clock)
        runs[name] = {
            "summary": summary,
            "clock": clock.figures(args.warmup_steps),
            "settings": clock.settings,
            "peak_gib": peak_memory(args.device),
        }
        release()
        if args.device == "cuda":
            runs[name]["left_allocated_gib"] = torch.cuda.memory_allocated() / 2**30
    ours, plain = runs["project"], runs["baseline"]
    for name, r in runs.items():
        if r["clock"]["steps"] != args.steps:
            raise RuntimeError(f"the {name} run made {r['clock']['steps']} optimizer steps, not {args.steps}")
    differ = {
        k: [ours["settings"].get(k), plain["settings"].get(k)]
        for k in sorted(set(ours["settings"]) | set(plain["settings"]))
        if ours["settings"].get(k) != plain["settings"].get(k)
    }

    gpu = torch.cuda.get_device_name() if args.device == "cuda" else None
    peak, basis = peak_tflops(gpu) if gpu else (None, "no GPU")
    throughput = ours["summary"]["throughput"]
    per_token = throughput["model_flops_per_token"]

    def mfu(tokens_per_s: float):
        return per_token * tokens_per_s / (peak * 1e12) if peak else None

    tps, base_tps = ours["clock"]["tokens_per_s"], plain["clock"]["tokens_per_s"]

    rng = random.Random(args.seed + 7)
    prompts = [QUESTION_TEMPLATE.replace("{{question}}", make_problem(rng).question) for _ in range(args.eval_prompts)]
    placement = eval_placement(
        EvalConfig(device=args.eval_device, batch_size=args.eval_batch, max_new_tokens=args.eval_new_tokens),
        ModelConfig(attn_implementation=args.attn),
    )
    trained = Path(ours["summary"]["path"])
    evaluation = measure_eval(trained, placement, prompts, args)
    cpu_eval = None
    if args.eval_cpu_baseline:
        cpu = Placement(device="cpu", precision="fp32", attn_implementation=args.attn)
        cpu_eval = measure_eval(trained, cpu, prompts[: args.eval_cpu_prompts or args.eval_batch], args)
    if not args.keep_work:  # adapters and checkpoints: about 1 GB for the 8B shape
        import shutil

        shutil.rmtree(work, ignore_errors=True)

    import peft
    import transformers
    import trl

    return {
        "shape": args.shape,
        "method": args.method,
        "packing": args.packing,
        "batch": args.batch,
        "grad_accum": args.grad_accum,
        "max_length": args.max_length,
        "precision": args.precision,
        "device": args.device,
        "attn": args.attn,
        "activation_checkpointing": args.activation_checkpointing,
        "row_tokens": args.row_tokens,
        "gpu": gpu,
        "steps": ours["clock"]["steps"],
        "timed_steps": ours["clock"]["timed_steps"],
        "warmup_steps": args.warmup_steps,
        "tokens_per_s": round(tps, 1),
        "baseline_tokens_per_s": round(base_tps, 1),
        "overhead": round(base_tps / tps - 1, 4),
        "tokens_per_step": round(ours["clock"]["tokens"] / ours["clock"]["timed_steps"], 1),
        "baseline_tokens_per_step": round(plain["clock"]["tokens"] / plain["clock"]["timed_steps"], 1),
        "padding_fraction": round(ours["clock"]["padding_fraction"], 4),
        "baseline_padding_fraction": round(plain["clock"]["padding_fraction"], 4),
        "checkpoints": ours["clock"]["checkpoints"],
        "checkpoint_s": round(ours["clock"]["checkpoint_s"], 3),
        "logs": ours["clock"]["logs"],
        "logging_s": round(ours["clock"]["logging_s"], 3),
        "baseline_logs": plain["clock"]["logs"],
        "baseline_logging_s": round(plain["clock"]["logging_s"], 3),
        "tokens_per_s_with_checkpoints": round(ours["clock"]["tokens_per_s_with_checkpoints"], 1),
        "overhead_with_checkpoints": round(base_tps / ours["clock"]["tokens_per_s_with_checkpoints"] - 1, 4),
        "peak_gib": _round(ours["peak_gib"], 3),
        "baseline_peak_gib": _round(plain["peak_gib"], 3),
        "left_allocated_gib": {k: round(r["left_allocated_gib"], 3) for k, r in runs.items()}
        if args.device == "cuda"
        else None,
        "mfu": _figures(mfu(tps)),
        "baseline_mfu": _figures(mfu(base_tps)),
        "peak_tflops_assumed": f"{peak} TFLOP/s ({basis})" if peak else basis,
        "model_flops_per_token": per_token,
        "gpu_utilisation_mean": _round(throughput.get("gpu_utilisation_mean"), 1),
        "settings_differ": differ,
        "eval_tokens_per_s": round(evaluation["tokens_per_s"], 1),
        "eval_device": placement.device,
        "eval_precision": placement.precision,
        "eval_queries": evaluation["queries"],
        "eval_mean_output_tokens": round(evaluation["mean_output_tokens"], 1),
        "eval_cpu_tokens_per_s": _round(cpu_eval and cpu_eval["tokens_per_s"], 1),
        "eval_cpu_queries": cpu_eval and cpu_eval["queries"],
        "eval_speedup": _round(cpu_eval and evaluation["tokens_per_s"] / cpu_eval["tokens_per_s"], 2),
        "train_loss": round(ours["summary"]["train_loss"], 4),
        "baseline_train_loss": round(plain["summary"]["train_loss"], 4),
        "data": data,
        "build_s": round(build_s, 1),
        "wall_s": round(time.perf_counter() - start, 1),
        "parameters": json.loads((base / DONE).read_text())["parameters"],
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "peft": peft.__version__,
            "cuda": torch.version.cuda,
            "python": sys.version.split()[0],
        },
        "cpus": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def _round(value, digits: int):
    return None if value is None else round(value, digits)


def _figures(value, significant: int = 4):
    return None if value is None else float(f"{value:.{significant}g}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--method", choices=("lora", "qlora"), default="lora")
    p.add_argument("--packing", action="store_true", help="pack rows best-fit into --max-length (padding-free)")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps of each run, warm-up included")
    p.add_argument("--warmup-steps", type=int, default=2, help="first steps left out of the timing, in both runs")
    p.add_argument("--batch", type=int, default=4, help="sequences per step (packed sequences with --packing)")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--row-tokens", type=int, default=None, help="join problems into rows of about this many tokens")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument(
        "--precision", choices=("fp32", "bf16", "fp16"), default=None, help="default: bf16 on a GPU, fp32 on the CPU"
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--attn", choices=("sdpa", "eager", "flash_attention_2"), default="sdpa")
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--liger", action="store_true", help="Liger kernels in both runs (needs liger-kernel)")
    p.add_argument(
        "--save-steps",
        type=int,
        default=None,
        help="the project's checkpoint interval; default every 10%% of the steps",
    )
    p.add_argument(
        "--baseline-prepare-kbit",
        action="store_true",
        help="qlora: the baseline also calls peft's prepare_model_for_kbit_training, as the project does",
    )
    p.add_argument("--baseline-first", action="store_true", help="train the plain-TRL baseline first")
    p.add_argument("--eval-device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--eval-prompts", type=int, default=64)
    p.add_argument("--eval-batch", type=int, default=32, help="default: the eval config's batch_size")
    p.add_argument("--eval-new-tokens", type=int, default=24, help="default: the eval config's max_new_tokens")
    p.add_argument(
        "--eval-cpu-baseline", action="store_true", help="also generate on the CPU in fp32, for eval_speedup"
    )
    p.add_argument("--eval-cpu-prompts", type=int, default=None, help="prompts for the CPU figure; default one batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cpu-threads",
        type=int,
        default=None,
        help="torch CPU threads; default 1 for the tiny shape (its small matmuls gain nothing from more, "
        "and threads waiting on each other on a shared machine made its timings 10x worse), else torch's",
    )
    p.add_argument("--cache-dir", default=None, help="where built bases are kept (default: <tmp>/llmops-bench-models)")
    p.add_argument(
        "--work-dir", default=None, help="parent of the run's temporary folder (data, checkpoints, adapters)"
    )
    p.add_argument("--keep-work", action="store_true", help="keep the run's folder (data, checkpoints, adapters)")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = p.parse_args(argv)
    if not 0 <= args.warmup_steps < args.steps:
        p.error(f"--warmup-steps ({args.warmup_steps}) must be below --steps ({args.steps}): some steps must be timed")
    return args


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    # Libraries print to stdout (bitsandbytes, trl); send all of it to stderr so stdout holds only the figures.
    stdout = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    figures = run(args)
    if args.json:
        stdout.write(json.dumps(figures) + "\n")
    else:
        for key, value in figures.items():
            stdout.write(f"{key:30} {value}\n")
    stdout.flush()


if __name__ == "__main__":
    main()
