"""A corpus for split-curation tests (tests/unit/test_data_parallel.py, tests/flows/test_curate_dask.py).

Two files over several chunks (`CHUNK_ROWS`) holding what a step-order or split mistake would
show: exact and near duplicates far apart (other chunks, other files, other shards), rows that
differ only in an e-mail address or a phone number (kept both with the default order, where dedup
runs before PII masking; one drops as `exact_duplicate` if masking runs first), rows that later
steps drop, broken records, and an eval set that one row copies from.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = (
    "river farmer basket apple barn evening rain orchard ladder harvest market wagon village miller "
    "bread flour wheel stone bridge meadow sheep wool spinning cloth merchant ledger counts seven red "
    "wooden old quiet morning early the a of and to in with that have be"
).split()
PII_TWINS = [
    (
        "Please write to alice.moreau@example.com about the harvest ledger and the seven baskets.",
        "Please write to b.okafor@example.org about the harvest ledger and the seven baskets.",
    ),
    (
        "Call the miller at (555) 201-4477 before the wagon leaves the village market this evening.",
        "Call the miller at (555) 864-0031 before the wagon leaves the village market this evening.",
    ),
]


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _sft(row_id: str, question: str, answer: str) -> dict:
    return {"id": row_id, "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def write_corpus(folder: Path, rows_per_file: int = 1400) -> list[str]:
    """Two files of chat and text rows (about 2.4 chunks in all), with planted duplicates and PII twins."""
    rng = random.Random(13)
    files = []
    earlier: list[dict] = []
    for f in range(2):
        lines = []
        for i in range(rows_per_file):
            rid = f"f{f}-{i}"
            roll = rng.random()
            if earlier and roll < 0.04:  # an exact copy (other case and spacing) of a row far back
                copy = json.loads(json.dumps(rng.choice(earlier)))
                copy["id"] = rid
                if "text" in copy:
                    copy["text"] = "  " + copy["text"].upper()
                lines.append(json.dumps(copy))
                continue
            if earlier and roll < 0.07 and "text" in earlier[-1]:  # a near copy: one word changed
                words = rng.choice([e for e in earlier if "text" in e] or earlier[-1:])["text"].split()
                words[rng.randrange(len(words))] = rng.choice(WORDS)
                lines.append(json.dumps({"id": rid, "text": " ".join(words)}))
                continue
            if roll < 0.09:
                lines.append('{"id": "' + rid + '", "messages": [')  # a record cut short
                continue
            if roll < 0.11:
                lines.append(json.dumps(_sft(rid, "hi", "ok")))  # too short
                continue
            if roll < 0.5:
                obj = _sft(rid, _sentence(rng, rng.randint(6, 14)) + "?", _sentence(rng, rng.randint(20, 60)))
            else:
                obj = {
                    "id": rid,
                    "text": " ".join(_sentence(rng, rng.randint(8, 20)) for _ in range(rng.randint(3, 8))),
                }
            earlier.append(obj)
            lines.append(json.dumps(obj))
        for t, (a, b) in enumerate(PII_TWINS):  # one twin early in file 0, the other late in file 1
            twin = a if f == 0 else b
            at = 50 + 17 * t if f == 0 else rows_per_file - 40 - 13 * t
            lines.insert(at, json.dumps({"id": f"pii{t}-{f}", "text": twin}))
        path = folder / f"part{f}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(str(path))
    return files


def eval_file(folder: Path, inputs: list[str]) -> str:
    """An eval set that shares a 13-word span with one training row, so decontamination drops it."""
    text = next(json.loads(line)["text"] for line in open(inputs[1]) if '"text"' in line and "pii" not in line)
    path = folder / "eval.jsonl"
    path.write_text(json.dumps({"id": "e1", "question": text, "answer": "7"}) + "\n", encoding="utf-8")
    return str(path)


def synthesize_settings(folder: Path, variants_per_seed: int, max_new_tokens: int):
    """Curation settings with the synthesize step first after validate, and a real (tiny, local)
    teacher built under `folder`: the rephrase operation, `variants_per_seed` variants a seed."""
    from configs.schema import CurateConfig, TinyModelConfig
    from tasks.model.tiny import build_tiny_model

    teacher = build_tiny_model(
        TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, pretrain_steps=5, vocab_size=400), folder / "models"
    )
    return teacher, CurateConfig.model_validate(
        {
            "steps": ["validate", "synthesize", "exact_dedup", "near_dedup", "length", "pii"],
            "synthetic": {
                "enabled": True,
                "teacher": f"local:{teacher}",
                "operations": ["rephrase"],
                "variants_per_seed": variants_per_seed,
                "max_new_tokens": max_new_tokens,
            },
        }
    )
