"""read_jsonl: every non-blank line is counted, and every bad one is dropped under its reason."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tasks.data.read import read_jsonl
from tasks.data.records import Ledger

SFT = {"id": 7, "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], "extra": 1}
PREF = {"prompt": "Q?", "chosen": "good", "rejected": "bad", "meta": {"x": 1}}


def _quarantine(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_reads_kinds_ids_and_only_format_fields(tmp_path: Path) -> None:
    src = tmp_path / "raw.jsonl"
    src.write_text(json.dumps(SFT) + "\n\n   \n" + json.dumps(PREF) + "\n", encoding="utf-8")
    ledger = Ledger()
    rows = list(read_jsonl(src, ledger))
    assert ledger.read == 2  # blank lines are not rows
    assert [(r.id, r.kind) for r in rows] == [("7", "sft"), ("raw.jsonl:4", "pref")]
    assert rows[0].data == {"messages": SFT["messages"]}
    assert rows[1].data == {"prompt": "Q?", "chosen": "good", "rejected": "bad"}
    assert rows[0].source == str(src)


def test_bad_lines_are_dropped_with_reasons(tmp_path: Path) -> None:
    src = tmp_path / "dirty.jsonl"
    src.write_bytes(
        b'{"id": "ok", "prompt": "p", "chosen": "a", "rejected": "b"}\n'
        b'{"id": "trunc", "messages": [\n'
        b'{"id": "latin1", "prompt": "caf\xe9"}\n'
        b"[1, 2, 3]\n"
        b'{"id": "other", "question": "no format"}\n'
    )
    quarantine = tmp_path / "q.jsonl"
    ledger = Ledger(quarantine)
    rows = list(read_jsonl(src, ledger))
    ledger.kept = len(rows)
    ledger.close()
    assert [r.id for r in rows] == ["ok"]
    assert ledger.dropped == {"bad_json": 2, "bad_utf8": 1, "unknown_format": 1}
    ledger.check_balance()
    records = _quarantine(quarantine)
    assert [(q["id"], q["reason"]) for q in records] == [
        ("dirty.jsonl:2", "bad_json"),
        ("dirty.jsonl:3", "bad_utf8"),
        ("dirty.jsonl:4", "bad_json"),
        ("other", "unknown_format"),
    ]
    assert "caf" in records[1]["row"]  # the raw line is kept for a reviewer, bad byte replaced
    assert records[3]["row"] == {"id": "other", "question": "no format"}


def test_reads_gzip_and_bom(tmp_path: Path) -> None:
    src = tmp_path / "raw.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as f:
        f.write("\ufeff" + json.dumps(SFT) + "\n" + json.dumps(PREF) + "\n")
    ledger = Ledger()
    rows = list(read_jsonl(src, ledger))
    assert [r.kind for r in rows] == ["sft", "pref"]
    assert ledger.read == 2 and not ledger.dropped
