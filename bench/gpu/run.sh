#!/usr/bin/env bash
# The GPU benchmark matrix of bench/train.py, for a machine whose Python has torch but not trl,
# bitsandbytes, datasets or pydantic (bench/gpu/README.md: how to carry them and launch this).
#
#   bash bench/gpu/run.sh                      # check, lora8b, qlora8b, eval1b (then ddp2 with 2+ GPUs)
#   bash bench/gpu/run.sh check lora8b         # only the named parts
#   BENCH_ARGS="--steps 10" bash bench/gpu/run.sh qlora8b    # extra arguments for every part
#
# Parts: check   the tiny shape on the GPU (packed, CPU eval baseline): the stack imports and runs, ~30 s
#        lora8b  LoRA, 8B shape, packing, batch 4 x 1024 tokens        (target >= 9,600 tokens/s, overhead <= 5 %)
#        qlora8b QLoRA, 8B shape, packing, batch 4 x 1024, activation checkpointing (target peak <= 12 GiB)
#        eval1b  LoRA, 1B shape, packing; evaluation generation on the GPU and on the CPU (target >= 20x)
#        ddp2    LoRA, 1B shape, packing, then the same on 2 GPUs launched as `llmops train --gpus 2`
#                launches them (accelerate, infra/accelerate/multi_gpu.yaml, NCCL): scaling_efficiency.
#                Runs by default only where nvidia-smi lists 2 GPUs or more.
# Each part prints one JSON line on stdout, appended to $OUT/bench-train.jsonl too; its log (progress bars,
# warnings) goes to $OUT/<part>.log, whose tail is printed when the part fails. Built bases are cached in
# $BENCH_CACHE (default /tmp/bench-models), so the 8B shape is built once for lora8b and qlora8b.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
SITE=${BENCH_SITE:-/tmp/site}
RESULTS=${OUT:-/tmp/bench-train-out}
CACHE=${BENCH_CACHE:-/tmp/bench-models}
mkdir -p "$RESULTS" "$CACHE"

if compgen -G ".whl/*.whl" >/dev/null; then
  wheels=(.whl/*.whl)
  if [ -n "${BENCH_IMAGE_TRANSFORMERS:-}" ]; then  # keep the image's transformers instead of the carried one
    mapfile -t wheels < <(printf '%s\n' "${wheels[@]}" | grep -v '/transformers-')
  fi
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" \
    || { echo "installing the carried wheels failed" >&2; exit 1; }
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# Versions first: a missing or mismatched package shows here, before any model is built.
$PY - >&2 <<'EOF' || { echo "the stack does not import; see above" >&2; exit 1; }
import importlib, sys
import torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "NO GPU")
for name in ("transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "pydantic", "tokenizers"):
    module = importlib.import_module(name)
    print(f"  {name} {module.__version__}  {module.__file__}")
import configs.schema, tasks.train.sft, tasks.model.load  # the project's library, without prefect or mlflow
EOF

bench() {  # part name, then bench/train.py's arguments
  local name=$1 start=$SECONDS
  shift
  echo "== $name: bench/train.py $* ${BENCH_ARGS:-}" >&2
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of words
  if $PY bench/train.py --cache-dir "$CACHE" --json "$@" ${BENCH_ARGS:-} >"$RESULTS/$name.json" 2>"$RESULTS/$name.log"; then
    cat "$RESULTS/$name.json" | tee -a "$RESULTS/bench-train.jsonl"
    echo "== $name done in $((SECONDS - start)) s" >&2
  else
    echo "== $name FAILED after $((SECONDS - start)) s; the end of $RESULTS/$name.log:" >&2
    tail -n 25 "$RESULTS/$name.log" >&2
  fi
  rm -f "$RESULTS/$name.json"
}

gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
parts=("$@")
if [ ${#parts[@]} -eq 0 ]; then
  parts=(check lora8b qlora8b eval1b)
  [ "${gpus:-0}" -ge 2 ] && parts+=(ddp2)
fi
for part in "${parts[@]}"; do
  case $part in
    check)   bench check --shape tiny --packing --steps 8 --warmup-steps 2 --max-length 256 --eval-prompts 8 \
               --eval-batch 4 --eval-cpu-baseline ;;
    lora8b)  bench lora8b --shape llama-8b --method lora --packing --batch 4 --max-length 1024 --steps 30 \
               --warmup-steps 5 --eval-prompts 32 ;;
    qlora8b) bench qlora8b --shape llama-8b --method qlora --packing --activation-checkpointing --batch 4 \
               --max-length 1024 --steps 15 --warmup-steps 3 --eval-prompts 32 ;;
    eval1b)  bench eval1b --shape llama-1b --method lora --packing --batch 4 --max-length 1024 --steps 10 \
               --warmup-steps 3 --eval-prompts 128 --eval-cpu-baseline ;;
    ddp2)    if [ "${gpus:-0}" -lt 2 ]; then echo "== ddp2 skipped: nvidia-smi lists ${gpus:-0} GPU(s)" >&2; continue; fi
             bench ddp2 --shape llama-1b --method lora --packing --batch 4 --max-length 1024 --steps 20 \
               --warmup-steps 5 --eval-prompts 8 --processes 2 ;;
    *) echo "unknown part '$part'; choose from: check lora8b qlora8b eval1b ddp2" >&2; exit 2 ;;
  esac
done
