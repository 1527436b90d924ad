"""Why the evaluation warms a model up before timing it, measured: the first batch a process generates.

    python bench/eval_timing.py --json                 # the tiny embedded shape, built in a temporary folder
    python bench/eval_timing.py --model FOLDER --json    # e.g. a trained adapter (runs/<id>/dpo)

Each case runs in a fresh Python process (one-time costs are per process), with torch's default
threads as an evaluation has them, and times, in CPU seconds of that process, the same batch of the
bundled json-format prompts (64 new tokens, as the suite asks) three times: the first batch after the
warm-up the case names, then two more. Cases: `none`; `one-token`, the warm-up `measure_generation`
used to do (one prompt, one new token); `one-prompt-full`, the warm-up it does now (one prompt, the
full max_new_tokens). `first_over_later` is the first batch's CPU seconds over the mean of the two
later ones: near 1 means the first batch is timed like any other.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = {"none": None, "one-token": 1, "one-prompt-full": "full"}

CHILD = """
import json, sys, time
import torch
from tasks.evaluate.suites import load_suite
from tasks.model.load import Placement, load_for_generation

folder, case, new_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
model, tok = load_for_generation(folder, Placement())
tok.padding_side = "left"
prompts = [i["question"] for i in load_suite("json-format").items]
chat = [[{"role": "user", "content": p}] for p in prompts]
texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chat]
def generate(batch, n):
    enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
    start = time.process_time()
    with torch.inference_mode():
        model.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    return time.process_time() - start
warm = {"none": None, "one-token": 1, "one-prompt-full": new_tokens}[case]
if warm:
    generate(texts[:1], warm)
print(json.dumps([generate(texts, new_tokens) for _ in range(3)]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model folder (default: the tiny embedded shape, built here)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model
        if folder is None:
            from configs.schema import TinyModelConfig
            from tasks.model.tiny import build_tiny_model

            folder = str(build_tiny_model(TinyModelConfig(), Path(tmp)))
        out = {"model": "tiny (embedded default shape)" if args.model is None else folder, "cases": {}}
        for case in CASES:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, folder, case, str(args.new_tokens)],
                capture_output=True,
                text=True,
                cwd=root,
                check=True,
            )
            first, *later = json.loads(done.stdout.strip().splitlines()[-1])
            out["cases"][case] = {
                "first_cpu_s": round(first, 4),
                "later_cpu_s": [round(x, 4) for x in later],
                "first_over_later": round(first / (sum(later) / len(later)), 2),
            }
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
