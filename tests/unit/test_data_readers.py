"""read_rows and the format mappers: each layout lands on the one Row type, and every record is accounted for."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from tasks.data.formats import FormatError, detect_format, map_alpaca, map_hh, map_messages, map_pref, map_qa, map_text
from tasks.data.read import detect_file_format, read_rows
from tasks.data.records import Ledger, Row

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
HH = {
    "chosen": "\n\nHuman: Hi\n\nAssistant: Hello, how can I help?\n\nHuman: Name a colour.\n\nAssistant: Blue.",
    "rejected": (
        "\n\nHuman: Hi\n\nAssistant: Hello, how can I help?\n\nHuman: Name a colour.\n\nAssistant: Bleu, I think"
    ),
}
SAMPLES = {
    "text": {"text": "Once upon a time."},
    "messages": {"messages": CHAT},
    "alpaca": {"instruction": "Add.", "input": "2 and 3", "output": "5"},
    "qa": {"question": "2+3?", "answer": "5"},
    "pref": {"prompt": "Q?", "chosen": "good", "rejected": "bad"},
    "hh": HH,
}


def _write_jsonl(path: Path, objs: list[dict]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        for obj in objs:
            f.write(json.dumps(obj) + "\n")
    return path


def _read_all(path: Path, fmt: str = "auto", quarantine: Path | None = None) -> tuple[list[Row], Ledger]:
    ledger = Ledger(quarantine)
    rows = list(ledger.count_kept(read_rows(path, ledger, fmt)))
    ledger.close()
    ledger.check_balance()  # kept + dropped == read, always
    return rows, ledger


# --- mappers ---------------------------------------------------------------------------------


def test_text_and_qa_and_alpaca_map_to_rows() -> None:
    assert map_text({"text": "abc", "meta": 1}) == {"text": "abc"}
    assert map_qa({"question": "Q", "answer": "A"}) == {
        "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    }
    assert map_alpaca(SAMPLES["alpaca"])["messages"][0] == {"role": "user", "content": "Add.\n\n2 and 3"}
    no_input = map_alpaca({"instruction": "Say hi.", "input": "  ", "output": "hi"})
    assert no_input["messages"] == [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}]
    assert map_alpaca({"instruction": "Say hi.", "output": "hi"}) == no_input


def test_messages_and_sharegpt() -> None:
    assert map_messages({"messages": CHAT}) == {"messages": CHAT}
    sharegpt = {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello"},
        ]
    }
    assert [m["role"] for m in map_messages(sharegpt)["messages"]] == ["system", "user", "assistant"]
    assert map_messages(sharegpt)["messages"][2]["content"] == "Hello"
    with pytest.raises(FormatError) as e:
        map_messages({"conversations": [{"from": "bot", "value": "x"}]})
    assert e.value.reason == "bad_transcript"


def test_pref_strings_and_message_lists() -> None:
    assert map_pref({**SAMPLES["pref"], "score": 3}) == SAMPLES["pref"]
    as_chats = {
        "chosen": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "good"}],
        "rejected": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "bad"}],
    }
    assert map_pref(as_chats) == {"prompt": "Q?", "chosen": "good", "rejected": "bad"}
    multi = {
        k: [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}, *v] for k, v in as_chats.items()
    }
    assert map_pref(multi)["prompt"] == "Human: Hi\nAssistant: Hey\nHuman: Q?"
    with pytest.raises(FormatError) as e:
        map_pref({"chosen": [{"role": "user", "content": "Q?"}], "rejected": as_chats["rejected"]})
    assert e.value.reason == "bad_transcript"


def test_hh_splits_at_the_last_shared_assistant_marker() -> None:
    data = map_hh(HH)
    assert data == {
        "prompt": "Human: Hi\nAssistant: Hello, how can I help?\nHuman: Name a colour.",
        "chosen": "Blue.",
        "rejected": "Bleu, I think",
    }
    single = map_hh(
        {"chosen": "\n\nHuman: Why?\n\nAssistant: Because.", "rejected": "\n\nHuman: Why?\n\nAssistant: No."}
    )
    assert single == {"prompt": "Why?", "chosen": "Because.", "rejected": "No."}


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: b\n\nAssistant: x"}, "bad_transcript"),
        (  # differ in an earlier turn: the rest is not one final answer
            {
                "chosen": "\n\nHuman: a\n\nAssistant: x\n\nHuman: c\n\nAssistant: y",
                "rejected": "\n\nHuman: a\n\nAssistant: z\n\nHuman: c\n\nAssistant: y",
            },
            "bad_transcript",
        ),
        ({"chosen": "\n\nHuman: a\n\nAssistant: ", "rejected": "\n\nHuman: a\n\nAssistant: y"}, "empty_field"),
        ({"chosen": "\n\nHuman: a\n\nAssistant: x"}, "missing_field"),
        ({"chosen": ["x"], "rejected": "\n\nHuman: a\n\nAssistant: y"}, "wrong_type"),
    ],
)
def test_hh_rejects_what_it_cannot_split(obj: dict, reason: str) -> None:
    with pytest.raises(FormatError) as e:
        map_hh(obj)
    assert e.value.reason == reason


@pytest.mark.parametrize(
    ("mapper", "obj", "reason"),
    [
        (map_text, {"body": "x"}, "missing_field"),
        (map_text, {"text": None}, "missing_field"),  # Parquet's fill for an absent column
        (map_text, {"text": 3}, "wrong_type"),
        (map_text, {"text": " \n"}, "empty_field"),
        (map_messages, {"messages": "hi"}, "wrong_type"),
        (map_messages, {"messages": []}, "empty_field"),
        (map_alpaca, {"instruction": "x", "input": 5, "output": "y"}, "wrong_type"),
        (map_qa, {"question": "x", "answer": ""}, "empty_field"),
        (map_pref, {"prompt": "p", "chosen": "a"}, "missing_field"),
    ],
)
def test_mappers_name_the_problem(mapper, obj: dict, reason: str) -> None:
    with pytest.raises(FormatError) as e:
        mapper(obj)
    assert e.value.reason == reason


# --- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_detect_format_on_each_format(fmt: str) -> None:
    assert detect_format([SAMPLES[fmt]] * 3) == fmt


def test_detect_format_variants_and_majority() -> None:
    assert detect_format([{"conversations": [{"from": "human", "value": "x"}]}]) == "messages"
    assert detect_format([{"chosen": CHAT, "rejected": CHAT}]) == "pref"
    assert detect_format([{"prompt": "p", **HH}]) == "pref"  # a prompt key means not HH
    assert detect_format([SAMPLES["qa"], {"junk": 1}, SAMPLES["qa"], SAMPLES["text"]]) == "qa"


def test_detect_format_error_names_the_keys_it_saw() -> None:
    with pytest.raises(ValueError, match=r"keys seen: \['body', 'label'\]"):
        detect_format([{"label": 1, "body": "x"}])


# --- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_jsonl_autodetects_and_maps_each_format(tmp_path: Path, fmt: str) -> None:
    src = _write_jsonl(tmp_path / f"{fmt}.jsonl", [SAMPLES[fmt], SAMPLES[fmt]])
    rows, ledger = _read_all(src)
    assert ledger.formats == {str(src): {fmt: 2}}
    assert len(rows) == 2 and ledger.read == 2 and not ledger.dropped
    kind = {"text": "text", "hh": "pref", "pref": "pref"}.get(fmt, "sft")
    assert {r.kind for r in rows} == {kind}
    assert rows[0].text()  # every kind has text for dedup and filters


def test_jsonl_ids_from_field_or_line_and_drop_reasons(tmp_path: Path) -> None:
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(
        b'{"id": 12, "text": "kept with its own id"}\n'
        b"\n"
        b'{"text": "kept with a derived id"}\n'
        b'{"text": "truncated\n'
        b'{"text": "caf\xe9"}\n'
        b'{"id": "n", "text": 7}\n'
        b'{"id": "e", "text": "   "}\n'
        b'{"id": "m", "body": "no text"}\n'
    )
    quarantine = tmp_path / "q.jsonl"
    rows, ledger = _read_all(src, quarantine=quarantine)
    assert [r.id for r in rows] == ["12", "mixed.jsonl:3"]
    assert rows[0].data == {"text": "kept with its own id"} and rows[0].source == str(src)
    assert ledger.read == 7 and ledger.kept == 2
    assert ledger.dropped == {"bad_json": 1, "bad_utf8": 1, "wrong_type": 1, "empty_field": 1, "format_unknown": 1}
    records = [json.loads(line) for line in quarantine.read_text(encoding="utf-8").splitlines()]
    assert [(q["id"], q["reason"]) for q in records] == [
        ("mixed.jsonl:4", "bad_json"),
        ("mixed.jsonl:5", "bad_utf8"),
        ("n", "wrong_type"),
        ("e", "empty_field"),
        ("m", "format_unknown"),  # a row with no text key fits no format
    ]
    assert records[-1]["row"] == {"id": "m", "body": "no text"}


def test_detection_skips_bad_lines_and_forced_format_drops_misfits(tmp_path: Path) -> None:
    src = tmp_path / "qa.jsonl"
    src.write_text("not json\n" + json.dumps(SAMPLES["qa"]) + "\n" + json.dumps(SAMPLES["text"]) + "\n")
    assert detect_file_format(src) == "qa"
    rows, ledger = _read_all(src, fmt="text")
    assert ledger.formats == {str(src): {"text": 2}}  # every row read as the format asked for
    assert [r.id for r in rows] == ["qa.jsonl:3"]
    assert ledger.dropped == {"bad_json": 1, "missing_field": 1}


def test_gzip_jsonl(tmp_path: Path) -> None:
    src = _write_jsonl(tmp_path / "hh.jsonl.gz", [HH, {"id": "x", **HH}])
    rows, ledger = _read_all(src)
    assert ledger.formats[str(src)] == {"hh": 2}
    assert [r.id for r in rows] == ["hh.jsonl.gz:1", "x"]
    assert rows[0].data["chosen"] == "Blue."


def test_bad_inputs_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        read_rows(tmp_path / "x.jsonl", Ledger(), fmt="csv")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="cannot read"):
        read_rows(tmp_path / "x.csv", Ledger())
    array = tmp_path / "array.json"
    array.write_text(json.dumps([SAMPLES["text"]]))
    with pytest.raises(ValueError, match="JSON array"):
        read_rows(array, Ledger())
    unknown = _write_jsonl(tmp_path / "unknown.jsonl", [{"label": 1}])
    with pytest.raises(ValueError, match=r"keys seen: \['label'\]"):
        read_rows(unknown, Ledger())


def test_file_with_no_records_reads_nothing(tmp_path: Path) -> None:
    src = tmp_path / "junk.jsonl"
    src.write_text("{oops\n\n")
    rows, ledger = _read_all(src)
    assert rows == [] and ledger.formats == {str(src): {}} and ledger.dropped == {"bad_json": 1}


def test_parquet_round_trip_across_batches(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 2500  # more than two 1,024-row batches
    table = pa.table(
        {
            "instruction": [f"Repeat {i}." for i in range(n)],
            "input": [None if i % 2 else "please" for i in range(n)],
            "output": ["" if i == 1500 else str(i) for i in range(n)],
        }
    )
    src = tmp_path / "alpaca.parquet"
    pq.write_table(table, src, row_group_size=700)
    rows, ledger = _read_all(src)
    assert ledger.formats == {str(src): {"alpaca": n}}
    assert ledger.read == n and len(rows) == n - 1 and ledger.dropped == {"empty_field": 1}
    assert rows[0].id == "alpaca.parquet:0" and rows[-1].id == f"alpaca.parquet:{n - 1}"
    assert rows[0].data["messages"][0]["content"] == "Repeat 0.\n\nplease"
    assert rows[1].data["messages"][0]["content"] == "Repeat 1."


def test_parquet_nested_messages_and_id_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "chat.parquet"
    pq.write_table(pa.table({"id": [10, 11], "messages": [CHAT, []]}), src)
    rows, ledger = _read_all(src, quarantine=tmp_path / "q.jsonl")
    assert [(r.id, r.kind) for r in rows] == [("10", "sft")]
    assert rows[0].data == {"messages": CHAT}
    assert ledger.dropped == {"empty_field": 1}


def test_save_to_disk_round_trip(tmp_path: Path) -> None:
    import datasets

    rows_in = [
        SAMPLES["pref"],
        {"prompt": "P", "chosen": "same", "rejected": None},
        {"prompt": "Z", "chosen": "a", "rejected": "b"},
    ]
    folder = tmp_path / "prefs"
    datasets.Dataset.from_list(rows_in).save_to_disk(str(folder))
    rows, ledger = _read_all(folder)
    assert ledger.formats == {str(folder): {"pref": 3}}  # the null cell: a pref row missing a field
    assert [r.id for r in rows] == ["prefs:0", "prefs:2"]
    assert rows[0].data == SAMPLES["pref"]
    assert ledger.read == 3 and ledger.dropped == {"missing_field": 1}


def test_save_to_disk_dataset_dict_asks_for_a_split(tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list([SAMPLES["text"]])}).save_to_disk(str(folder))
    with pytest.raises(ValueError, match="pass one split's folder"):
        read_rows(folder, Ledger())
    rows, _ = _read_all(folder / "train")
    assert rows[0].data == SAMPLES["text"]


def test_plain_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="save_to_disk"):
        read_rows(tmp_path, Ledger())


# --- real public data (../shared/data, beside the project) -------------------------------------


def _shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (real-data checks run only beside the shared data folder)")
    return path


def test_real_hh_sample_autodetects_and_splits(tmp_path: Path) -> None:
    src = _shared("hh_harmless_sample.jsonl.gz")
    quarantine = tmp_path / "q.jsonl"
    rows, ledger = _read_all(src, quarantine=quarantine)
    for q in map(json.loads, quarantine.read_text(encoding="utf-8").splitlines()):
        print(f"dropped {q['id']}: {q['reason']} ({q['detail']})")
    assert ledger.formats == {str(src): {"hh": 1000}}
    assert ledger.read == 1000
    assert ledger.kept >= 990
    assert set(ledger.dropped) <= {"empty_field", "bad_transcript"}

    raw = json.loads(gzip.open(src, "rt", encoding="utf-8").readline())
    first = rows[0]
    assert first.id == f"{src.name}:1" and first.kind == "pref"
    last_human = raw["chosen"].rsplit("\n\nHuman:", 1)[1].split("\n\nAssistant:", 1)[0].strip()
    assert first.data["prompt"].endswith(last_human)
    assert first.data["chosen"] != first.data["rejected"]
    assert raw["chosen"].rstrip().endswith(first.data["chosen"])
    assert all("\n\nAssistant:" not in r.data["chosen"] and "\n\nHuman:" not in r.data["rejected"] for r in rows)


def test_real_gsm8k_sample_reads_as_qa() -> None:
    src = _shared("gsm8k_train_sample.jsonl")
    rows, ledger = _read_all(src)
    assert ledger.formats == {str(src): {"qa": 500}}
    assert ledger.read == 500 and ledger.kept == 500
    assert Counter(r.kind for r in rows) == {"sft": 500}
    assert rows[0].data["messages"][1]["content"].endswith("#### 72")


def test_record_ranges_split_a_file_without_losing_or_double_counting(tmp_path):
    from tasks.data.read import count_records, read_rows
    from tasks.data.records import Ledger

    path = tmp_path / "x.jsonl"
    lines = [json.dumps({"text": f"row {i}"}) for i in range(10)]
    lines.insert(4, "{broken")
    path.write_text("\n".join(lines[:6]) + "\n\n" + "\n".join(lines[6:]) + "\n")
    assert count_records(path) == 11
    seen, reads, drops = [], 0, 0
    for start in range(0, 11, 4):
        ledger = Ledger()
        seen += [r.data["text"] for r in read_rows(path, ledger, "text", start, start + 4)]
        reads, drops = reads + ledger.read, drops + sum(ledger.dropped.values())
    assert seen == [f"row {i}" for i in range(10)] and reads == 11 and drops == 1
