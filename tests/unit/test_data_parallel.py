"""The same dataset however curation is split (issue #13): worker processes, shards, or both.

The corpus spans several chunks (`CHUNK_ROWS`) and files, and holds what an order mistake would
show: exact and near duplicates far apart (in other chunks, other files, other shards), rows that
differ only in an e-mail address or a phone number (kept both with the default order, where dedup
runs before PII masking; one would drop as `exact_duplicate` if masking ran first), rows every
later step drops, and broken records. Each split must give the same dataset hash, the same
quarantine byte for byte, the same report counts, and kept + dropped = read.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from configs.schema import CurateConfig
from tasks.data.curate import curate_dataset
from tasks.data.pipeline import CHUNK_ROWS
from tasks.data.shards import run_all_shards

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


def _eval_file(folder: Path, inputs: list[str]) -> str:
    """An eval set that shares a 13-word span with one training row, so decontamination drops it."""
    text = next(json.loads(line)["text"] for line in open(inputs[1]) if '"text"' in line and "pii" not in line)
    path = folder / "eval.jsonl"
    path.write_text(json.dumps({"id": "e1", "question": text, "answer": "7"}) + "\n", encoding="utf-8")
    return str(path)


def _comparable(result) -> dict:
    return {k: v for k, v in result.report.items() if k not in ("step_figures", "processes", "shards")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parallel")
    inputs = write_corpus(folder)
    settings = CurateConfig(quality={"max_drop_fraction": 1.0})
    evals = [_eval_file(folder, inputs)]
    one = curate_dataset(inputs, str(folder / "one"), settings, evals)
    return folder, inputs, settings, evals, one


def _texts(result) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_table(Path(result.dataset_dir) / "text.parquet").column("text").to_pylist()


def test_the_corpus_exercises_what_splitting_could_break(corpus):
    folder, inputs, settings, evals, one = corpus
    assert one.read > 2 * CHUNK_ROWS
    assert {"exact_duplicate", "near_duplicate", "bad_json", "too_short", "eval_contamination"} <= set(one.dropped)
    assert one.kept + sum(one.dropped.values()) == one.read
    texts = _texts(one)
    # Both twins of each pair are kept, and masked after dedup into the same text.
    assert texts.count(PII_TWINS[0][0].replace("alice.moreau@example.com", "[EMAIL]")) == 2
    assert texts.count(PII_TWINS[1][0].replace("(555) 201-4477", "[PHONE]")) == 2
    # Masking before dedup (what sharding used to do) would drop one twin of each pair.
    steps = ["validate", "pii", "exact_dedup", "near_dedup", "length", "quality", "decontaminate"]
    masked_first = curate_dataset(
        inputs, str(folder / "masked-first"), settings.model_copy(update={"steps": steps}), evals
    )
    assert masked_first.dropped["exact_duplicate"] == one.dropped["exact_duplicate"] + 2
    assert masked_first.dataset_hash != one.dataset_hash


@pytest.mark.parametrize(("processes", "shards"), [(2, 1), (1, 2), (1, 3), (2, 2)], ids=["p2", "s2", "s3", "p2s2"])
def test_processes_and_shards_give_the_same_dataset(corpus, processes, shards):
    folder, inputs, settings, evals, one = corpus
    split = settings.model_copy(update={"processes": processes, "shards": shards})
    out = str(folder / f"p{processes}s{shards}")
    if shards == 1:
        other = curate_dataset(inputs, out, split, evals)
    else:
        other = run_all_shards(inputs, shards, split, evals, out)
    assert other.kept + sum(other.dropped.values()) == other.read == one.read
    assert other.dataset_hash == one.dataset_hash
    assert Path(other.quarantine_path).read_bytes() == Path(one.quarantine_path).read_bytes()
    assert _comparable(other) == _comparable(one)
    assert [f["step"] for f in other.report["step_figures"]] == [f["step"] for f in one.report["step_figures"]]
    assert [f["rows_in"] for f in other.report["step_figures"]] == [f["rows_in"] for f in one.report["step_figures"]]
