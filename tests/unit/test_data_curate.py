"""curate_dataset end to end on a small dirty file, called through `.fn` so no Prefect server starts."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from configs.schema import CurateConfig
from tasks.data.curate import curate_dataset

STORY = (
    "the quick brown fox jumps over the lazy dog while the farmer counts seven red apples "
    "in a wooden basket near the old barn before the evening rain starts falling"
)


def _sft(row_id: str, question: str, answer: str) -> str:
    return json.dumps({"id": row_id, "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})


def _write_inputs(tmp_path: Path) -> list[str]:
    train = tmp_path / "train.jsonl"
    train.write_text(
        "\n".join(
            [
                _sft("t1", "Tell me a story.", STORY),
                _sft("t2", "What is 7 + 8?", "7 + 8 = 15. The answer is 15."),
                _sft("dup", "tell me a  story.", STORY.upper()),  # exact duplicate of t1
                _sft("near", "Tell me a story.", STORY.replace("falling", "down")),  # near duplicate of t1
                _sft("pii", "Reach me at sam@example.com or (555) 123-4567. What is 9 - 4?", "9 - 4 = 5. The answer is 5."),
                _sft("short", "2+2", "4"),
                _sft("role", "hi", "ok").replace('"user"', '"robot"'),
                '{"id": "trunc", "messages": [',
                "",
                '{"id": "fmt", "question": "no messages"}',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    pref = tmp_path / "pref.jsonl.gz"
    with gzip.open(pref, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"id": "p1", "prompt": "What is 2 + 3?", "chosen": "The answer is 5.", "rejected": "The answer is 6."}) + "\n")
        f.write(json.dumps({"id": "p2", "prompt": "What is 2 + 3?", "chosen": "The answer is 5.", "rejected": "The answer is 5."}) + "\n")
    return [str(train), str(pref)]


def test_curate_end_to_end(tmp_path: Path) -> None:
    inputs = _write_inputs(tmp_path)
    out = curate_dataset.fn(inputs, str(tmp_path / "out"), CurateConfig(min_chars=20))

    assert out["read"] == 11
    assert out["dropped"] == {
        "bad_json": 1, "bad_role": 1, "exact_duplicate": 1, "near_duplicate": 1,
        "same_answers": 1, "too_short": 1, "unknown_format": 1,
    }
    assert out["kept"] == out["sft_rows"] + out["pref_rows"] == 4
    assert out["read"] == out["kept"] + sum(out["dropped"].values())  # the balance invariant
    assert out["pii"] == {"email": 1, "phone": 1}

    sft = [json.loads(line) for line in Path(out["sft_path"]).read_text().splitlines()]
    pref = [json.loads(line) for line in Path(out["pref_path"]).read_text().splitlines()]
    assert [r["id"] for r in sft] == ["t1", "t2", "pii"]  # stream order
    assert [r["id"] for r in pref] == ["p1"]
    assert sft[2]["messages"][0]["content"] == "Reach me at [EMAIL] or [PHONE]. What is 9 - 4?"
    assert sft[2]["messages"][1]["content"] == "9 - 4 = 5. The answer is 5."

    quarantine = [json.loads(line) for line in Path(out["quarantine_path"]).read_text().splitlines()]
    assert all(q["id"] and q["reason"] for q in quarantine)
    assert {(q["id"], q["reason"]) for q in quarantine} == {
        ("dup", "exact_duplicate"), ("near", "near_duplicate"), ("short", "too_short"), ("role", "bad_role"),
        ("train.jsonl:8", "bad_json"), ("fmt", "unknown_format"), ("p2", "same_answers"),
    }
    near = next(q for q in quarantine if q["reason"] == "near_duplicate")
    assert near["detail"].startswith("t1 jaccard=")

    report = json.loads(Path(out["report_path"]).read_text())
    assert report == {k: v for k, v in out.items() if not k.endswith("_path")}
    digest = hashlib.sha256(Path(out["sft_path"]).read_bytes() + b"\0" + Path(out["pref_path"]).read_bytes()).hexdigest()
    assert report["dataset_hash"] == digest and report["dataset_hash_short"] == digest[:16]


def test_curate_is_deterministic_and_pii_optional(tmp_path: Path) -> None:
    inputs = _write_inputs(tmp_path)
    a = curate_dataset.fn(inputs, str(tmp_path / "a"), CurateConfig(min_chars=20))
    b = curate_dataset.fn(inputs, str(tmp_path / "b"), CurateConfig(min_chars=20))
    assert a["dataset_hash"] == b["dataset_hash"]
    c = curate_dataset.fn(inputs, str(tmp_path / "c"), CurateConfig(min_chars=20, mask_pii=False))
    assert c["pii"] == {"email": 0, "phone": 0}
    assert c["dataset_hash"] != a["dataset_hash"]
    assert "sam@example.com" in Path(c["sft_path"]).read_text()
