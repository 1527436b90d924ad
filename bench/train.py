"""Training and evaluation benchmark: the project's SFT against plain TRL, same settings, same process.

    python bench/train.py --shape tiny --steps 8 --json                       # CPU, seconds (a test runs this)
    python bench/train.py --shape llama-8b --method lora --packing --steps 30 --json
    python bench/train.py --shape llama-8b --method qlora --packing --activation-checkpointing --steps 20 --json
    python bench/train.py --shape llama-1b --method lora --packing --steps 10 --eval-cpu-baseline --json
    python bench/train.py --shape llama-1b --steps 2 --warmup-steps 1 --batch 1 --max-length 128 --device cpu
    python bench/train.py --shape tiny --processes 2 --json                   # + 2 ranks: scaling_efficiency

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

--processes N: the project's SFT again on N data-parallel ranks launched with accelerate, and
`scaling_efficiency` = tokens/s on N ranks / (N x tokens/s on one rank), beside the other figures
(bench/scaling.py).

Evaluation: the project's trained adapter loaded by `load_for_generation` on the device the eval config
names (--eval-device, default auto) and timed by `measure_generation`: generated tokens per second of
generation time. --eval-cpu-baseline repeats it on the CPU in fp32, on one batch of the same prompts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scaling import run_ranks  # noqa: E402
from bench.train_runs import (  # noqa: E402  (the checkout first on the path)
    DONE,
    SHAPES,
    build_base,
    make_clock,
    measure_eval,
    peak_memory,
    train_plain_trl,
    train_project,
    write_data,
)


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
    throughput = ours["summary"].throughput
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
    trained = Path(ours["summary"].path)
    evaluation = measure_eval(trained, placement, prompts, args)
    cpu_eval = None
    if args.eval_cpu_baseline:
        cpu = Placement(device="cpu", precision="fp32", attn_implementation=args.attn)
        cpu_eval = measure_eval(trained, cpu, prompts[: args.eval_cpu_prompts or args.eval_batch], args)
    scaling = {"processes": 1, "scaling_efficiency": None}
    if args.processes > 1:  # after the one-rank runs, so no two trainings share the machine
        release()
        scaling = run_ranks(args, base, work / "sft.jsonl", work, tps)
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
        **scaling,
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
        "train_loss": round(ours["summary"].train_loss, 4),
        "baseline_train_loss": round(plain["summary"].train_loss, 4),
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
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="also train the project's SFT on N data-parallel ranks (accelerate, multi_gpu.yaml) and print the "
        "scaling efficiency: tokens/s on N ranks / (N x one rank); on a CPU the ranks talk over gloo",
    )
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
