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
    return json.dumps(
        {"id": row_id, "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
    )


def _write_inputs(tmp_path: Path) -> list[str]:
    train = tmp_path / "train.jsonl"
    train.write_text(
        "\n".join(
            [
                _sft("t1", "Tell me a story.", STORY),
                _sft("t2", "What is 7 + 8?", "7 + 8 = 15. The answer is 15."),
                _sft("dup", "tell me a  story.", STORY.upper()),  # exact duplicate of t1
                _sft("near", "Tell me a story.", STORY.replace("falling", "down")),  # near duplicate of t1
                _sft(
                    "pii",
                    "Reach me at sam@example.com or (555) 123-4567. What is 9 - 4?",
                    "9 - 4 = 5. The answer is 5.",
                ),
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
        f.write(
            json.dumps(
                {"id": "p1", "prompt": "What is 2 + 3?", "chosen": "The answer is 5.", "rejected": "The answer is 6."}
            )
            + "\n"
        )
        f.write(
            json.dumps(
                {"id": "p2", "prompt": "What is 2 + 3?", "chosen": "The answer is 5.", "rejected": "The answer is 5."}
            )
            + "\n"
        )
    return [str(train), str(pref)]


def test_curate_end_to_end(tmp_path: Path) -> None:
    inputs = _write_inputs(tmp_path)
    out = curate_dataset(inputs, str(tmp_path / "out"), CurateConfig(min_chars=20))

    assert out.read == 11
    assert out.dropped == {
        "bad_json": 1,
        "bad_role": 1,
        "exact_duplicate": 1,
        "near_duplicate": 1,
        "same_answers": 1,
        "too_short": 1,
        "format_unknown": 1,  # read_rows: a row no format fits
    }
    assert out.kept == out.report["sft_rows"] + out.report["pref_rows"] == 4
    assert out.read == out.kept + sum(out.dropped.values())  # the balance invariant
    assert out.report["pii"] == {"email": 1, "phone": 1}

    sft = [json.loads(line) for line in Path(out.sft_path).read_text().splitlines()]
    pref = [json.loads(line) for line in Path(out.pref_path).read_text().splitlines()]
    assert [r["id"] for r in sft] == ["t1", "t2", "pii"]  # stream order
    assert [r["id"] for r in pref] == ["p1"]
    assert sft[2]["messages"][0]["content"] == "Reach me at [EMAIL] or [PHONE]. What is 9 - 4?"
    assert sft[2]["messages"][1]["content"] == "9 - 4 = 5. The answer is 5."

    quarantine = [json.loads(line) for line in Path(out.quarantine_path).read_text().splitlines()]
    assert all(q["id"] and q["reason"] for q in quarantine)
    assert {(q["id"], q["reason"]) for q in quarantine} == {
        ("dup", "exact_duplicate"),
        ("near", "near_duplicate"),
        ("short", "too_short"),
        ("role", "bad_role"),
        ("train.jsonl:8", "bad_json"),
        ("fmt", "format_unknown"),
        ("p2", "same_answers"),
    }
    near = next(q for q in quarantine if q["reason"] == "near_duplicate")
    assert near["detail"].startswith("t1 jaccard=")

    report = json.loads(Path(out.report_path).read_text())
    assert report == out.report
    digest = hashlib.sha256(Path(out.sft_path).read_bytes() + b"\0" + Path(out.pref_path).read_bytes()).hexdigest()
    assert report["dataset_hash"] == digest and report["dataset_hash_short"] == digest[:16]


def test_curate_is_deterministic_and_pii_optional(tmp_path: Path) -> None:
    inputs = _write_inputs(tmp_path)
    a = curate_dataset(inputs, str(tmp_path / "a"), CurateConfig(min_chars=20))
    b = curate_dataset(inputs, str(tmp_path / "b"), CurateConfig(min_chars=20))
    assert a.dataset_hash == b.dataset_hash
    c = curate_dataset(inputs, str(tmp_path / "c"), CurateConfig(min_chars=20, mask_pii=False))
    assert c.report["pii"] == {"email": 0, "phone": 0}
    assert c.dataset_hash != a.dataset_hash
    assert "sam@example.com" in Path(c.sft_path).read_text()


# ------------------------------------------------------------- every step, in the config's order

EVAL_ITEM = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)
LONG_ANSWER = " ".join(f"Step {i}: add the next pair of numbers and write the running total down." for i in range(12))


def _write_all_reasons(tmp_path: Path) -> tuple[list[str], str]:
    """One input row per drop reason of every step, plus rows that survive: (inputs, eval path)."""
    chat = tmp_path / "chat.jsonl"
    lines = [
        _sft("keep", "What is 7 + 8?", "7 + 8 = 15. The answer is 15."),
        _sft("story", "Tell me a story.", STORY),
        '{"id": "trunc", "messages": [',  # read: bad_json
        '{"id": "fmt", "question": "no messages"}',  # read: format_unknown
        '{"id": "type", "messages": "not a list"}',  # read: wrong_type
        _sft("role", "hi there", "ok").replace('"user"', '"robot"'),  # validate: bad_role
        json.dumps(
            {"id": "turn", "messages": [{"role": "assistant", "content": "Hello, how can I help?"}]}
        ),  # missing_turn
        _sft("blank", "What is 1 + 1?", "   "),  # validate: empty_field
        _sft("dup", "what is 7 + 8?", "7 + 8 = 15.  The answer is 15."),  # exact_duplicate of keep
        _sft("near", "Tell me a story.", STORY.replace("falling", "down")),  # near_duplicate of story
        _sft("short", "2+2", "4"),  # length: too_short
        _sft("long", "Explain the long sum.", LONG_ANSWER),  # length: too_long
        _sft(
            "french",
            "Quelle est la capitale de la France et pourquoi est-elle si célèbre dans le monde ?",
            "La capitale de la France est Paris, une ville connue pour ses musées et ses monuments.",
        ),  # quality
        _sft(
            "lorem",
            "Write a placeholder paragraph for the web page.",
            "Here is one: lorem ipsum dolor sit amet. Replace it with your own words before you publish the page.",
        ),
        _sft(
            "leak",
            "Homework: she sold half as many clips in May. How many clips did Natalia sell altogether?",
            "Add the clips of both months to get the total.",
        ),  # decontaminate
    ]
    chat.write_bytes(("\n".join(lines) + "\n").encode("utf-8") + b'{"id": "latin1", "text": "caf\xe9"}\n')  # bad_utf8
    pref = tmp_path / "pref.jsonl.gz"
    with gzip.open(pref, "wt", encoding="utf-8") as f:
        f.write(
            json.dumps(
                {"id": "p1", "prompt": "What is 2 + 3?", "chosen": "The answer is 5.", "rejected": "The answer is 6."}
            )
            + "\n"
        )
        f.write(
            json.dumps(
                {"id": "p2", "prompt": "What is 2 + 3?", "chosen": "The answer is 5.", "rejected": "The answer is 5."}
            )
            + "\n"
        )
    text = tmp_path / "notes.jsonl"
    text.write_text(
        json.dumps(
            {"id": "x1", "text": "Plain prose for pre-training, written by hand.\tWrite to sam@example.com for more."}
        )
        + "\n"
        + json.dumps({"id": "x2", "text": "   "})
        + "\n"  # read: empty_field
        + json.dumps({"id": "x3", "text": None})
        + "\n",  # read: missing_field (a text row with a null)
        encoding="utf-8",
    )
    eval_path = tmp_path / "eval.jsonl"
    eval_path.write_text(json.dumps({"id": "gsm-17", "question": EVAL_ITEM, "answer": "72"}) + "\n", encoding="utf-8")
    return [str(chat), str(pref), str(text)], str(eval_path)


EVERY_REASON = {
    "bad_json": 1,
    "bad_utf8": 1,
    "format_unknown": 1,
    "missing_field": 1,
    "wrong_type": 1,
    "empty_field": 2,
    "bad_role": 1,
    "missing_turn": 1,
    "same_answers": 1,
    "exact_duplicate": 1,
    "near_duplicate": 1,
    "too_short": 1,
    "too_long": 1,
    "language_not_allowed": 1,
    "c4_lorem_ipsum": 1,
    "eval_contamination": 1,
}


def test_every_reason_by_name_and_the_balance(tmp_path: Path) -> None:
    inputs, eval_path = _write_all_reasons(tmp_path)
    out = curate_dataset(inputs, str(tmp_path / "out"), CurateConfig(min_chars=20, max_chars=600), [eval_path])

    assert out.dropped == EVERY_REASON
    assert out.read == 21 and out.kept == 4
    assert out.kept + sum(out.dropped.values()) == out.read
    assert (out.report["sft_rows"], out.report["pref_rows"], out.report["text_rows"]) == (2, 1, 1)
    assert out.report["dropped_by_step"] == {
        "read": {
            "bad_json": 1,
            "bad_utf8": 1,
            "empty_field": 1,
            "format_unknown": 1,
            "missing_field": 1,
            "wrong_type": 1,
        },
        "validate": {"bad_role": 1, "empty_field": 1, "missing_turn": 1, "same_answers": 1},
        "exact_dedup": {"exact_duplicate": 1},
        "near_dedup": {"near_duplicate": 1},
        "length": {"too_long": 1, "too_short": 1},
        "quality": {"c4_lorem_ipsum": 1, "language_not_allowed": 1},
        "decontaminate": {"eval_contamination": 1},
    }
    assert out.report["format"] == {inputs[0]: "messages", inputs[1]: "pref", inputs[2]: "text"}
    assert out.report["sources"][inputs[2]] == {"format": "text", "formats": {"text": 3}, "read": 3, "kept": 1}
    assert out.report["decontamination"] == {"gsm-17": 1} and out.report["eval_items"] == {eval_path: 1}
    assert out.report["languages"]["fr"] == 1 and out.report["pii"]["email"] == 1
    assert out.report["steps"] == ["validate", "exact_dedup", "near_dedup", "length", "quality", "pii", "decontaminate"]

    quarantine = [json.loads(line) for line in Path(out.quarantine_path).read_text().splitlines()]
    assert len(quarantine) == sum(out.dropped.values())
    assert all(q["id"] and q["reason"] and "row" in q for q in quarantine)
    by_id = {q["id"]: q["reason"] for q in quarantine}
    assert {k: by_id[k] for k in ("role", "turn", "blank", "x2", "french", "lorem", "leak", "long")} == {
        "role": "bad_role",
        "turn": "missing_turn",
        "blank": "empty_field",
        "x2": "empty_field",
        "french": "language_not_allowed",
        "lorem": "c4_lorem_ipsum",
        "leak": "eval_contamination",
        "long": "too_long",
    }
    assert next(q for q in quarantine if q["id"] == "leak")["detail"] == "gsm-17"
    assert json.loads(Path(out.report_path).read_text())["read"] == 21


def test_parquet_per_kind_matches_the_report_and_text_rows_are_cleaned(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    inputs, eval_path = _write_all_reasons(tmp_path)
    out = curate_dataset(inputs, str(tmp_path / "out"), CurateConfig(min_chars=20, max_chars=600), [eval_path])
    folder = Path(out.dataset_dir)
    assert folder.name == f"dataset-{out.dataset_hash[:16]}" and folder.parent == tmp_path / "out"
    assert Path(out.sft_path).parent == folder and Path(out.pref_path).parent == folder
    for kind in ("sft", "pref", "text"):
        table = pq.read_table(folder / f"{kind}.parquet")
        assert table.num_rows == out.report[f"{kind}_rows"]
    assert pq.read_table(folder / "sft.parquet").column("id").to_pylist() == ["keep", "story"]
    assert pq.read_table(folder / "text.parquet").to_pylist() == [
        {"id": "x1", "text": "Plain prose for pre-training, written by hand. Write to [EMAIL] for more."}
    ]
    jsonl = [json.loads(line) for line in Path(out.sft_path).read_text().splitlines()]
    assert pq.read_table(folder / "sft.parquet").to_pylist() == jsonl
    # The hash covers the text rows too, after sft.jsonl and pref.jsonl.
    text_line = (
        json.dumps(
            {"id": "x1", "text": "Plain prose for pre-training, written by hand. Write to [EMAIL] for more."},
            ensure_ascii=False,
        )
        + "\n"
    )
    digest = hashlib.sha256(
        Path(out.sft_path).read_bytes() + b"\0" + Path(out.pref_path).read_bytes() + b"\0" + text_line.encode()
    ).hexdigest()
    assert out.dataset_hash == digest


def test_only_present_kinds_get_parquet_and_pref_jsonl_is_always_written(tmp_path: Path) -> None:
    chat = tmp_path / "qa.jsonl"
    chat.write_text(json.dumps({"question": "What is 2 + 5?", "answer": "2 + 5 = 7. The answer is 7."}) + "\n")
    out = curate_dataset([str(chat)], str(tmp_path / "out"), CurateConfig())
    folder = Path(out.dataset_dir)
    assert sorted(p.name for p in folder.iterdir()) == ["DATACARD.md", "pref.jsonl", "sft.jsonl", "sft.parquet"]
    assert Path(out.pref_path).read_text() == "" and out.report["format"] == {str(chat): "qa"}
    assert out.report["decontamination"] == {} and out.kept == 1


def test_data_card_names_thresholds_counts_and_sources(tmp_path: Path) -> None:
    inputs, eval_path = _write_all_reasons(tmp_path)
    settings = CurateConfig(min_chars=20, max_chars=600, minhash_threshold=0.75)
    out = curate_dataset(inputs, str(tmp_path / "out"), settings, [eval_path])
    card = Path(out.card_path).read_text()
    assert Path(out.card_path) == Path(out.dataset_dir) / "DATACARD.md"
    assert out.dataset_hash in card
    assert "| read | 21 |" in card and "| kept | 4 (19.0%) |" in card
    assert "20 <= characters <= 600" in card and "Jaccard >= 0.75" in card and "128 permutations" in card
    assert "13-word n-grams" in card and "| gsm-17 | 1 |" in card
    assert "keep ['en'] at score >= 0.5" in card and "Gopher document rules: off" in card
    for reason, n in EVERY_REASON.items():
        assert f"| {reason} |" in card and f"| {n} |" in card
    assert f"| `{inputs[0]}` | messages (auto-detected) | 16 | 2 |" in card
    assert "| email | 1 |" in card and "| fr | 1 |" in card and "Synthetic share: 0.0%" in card


def test_decontamination_drops_a_copied_13_word_span(tmp_path: Path) -> None:
    eval_path = tmp_path / "eval.jsonl"
    eval_path.write_text(json.dumps({"id": "e1", "question": EVAL_ITEM, "answer": "72"}) + "\n")
    words = EVAL_ITEM.split()
    train = tmp_path / "train.jsonl"
    train.write_text(
        "\n".join(
            [
                _sft("copy13", "Please help: " + " ".join(words[10:23]) + " thanks", "Here is how to think about it."),
                _sft("copy12", "Please help: " + " ".join(words[10:22]) + " thanks", "Here is how to think about it."),
            ]
        )
        + "\n"
    )
    out = curate_dataset([str(train)], str(tmp_path / "out"), CurateConfig(), [str(eval_path)])
    assert out.dropped == {"eval_contamination": 1} and out.report["decontamination"] == {"e1": 1}
    assert [json.loads(line)["id"] for line in Path(out.sft_path).read_text().splitlines()] == ["copy12"]
    # Extra eval sets come from the config; without any eval set nothing is dropped.
    extra = curate_dataset([str(train)], str(tmp_path / "o2"), CurateConfig(decontaminate_paths=[str(eval_path)]))
    assert extra.dropped == {"eval_contamination": 1}
    assert curate_dataset([str(train)], str(tmp_path / "o3"), CurateConfig()).dropped == {}


def test_steps_run_in_the_configured_order(tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text(_sft("a", "2+2", "4") + "\n" + _sft("b", "2+2", "4") + "\n")  # short, and copies
    dedup_first = curate_dataset(
        [str(train)], str(tmp_path / "a"), CurateConfig(steps=["validate", "exact_dedup", "length"])
    )
    assert dedup_first.dropped == {"exact_duplicate": 1, "too_short": 1}
    length_first = curate_dataset(
        [str(train)], str(tmp_path / "b"), CurateConfig(steps=["validate", "length", "exact_dedup"])
    )
    assert length_first.dropped == {"too_short": 2}
    assert length_first.report["steps"] == ["validate", "length", "exact_dedup"]
    only_validate = curate_dataset([str(train)], str(tmp_path / "c"), CurateConfig(steps=["validate"]))
    assert only_validate.kept == 2 and only_validate.report["languages"] == {}


def test_validate_must_come_first_and_the_error_names_the_field() -> None:
    import pytest
    from pydantic import ValidationError

    from configs.load import ConfigError, load_config

    with pytest.raises(ValidationError, match="'validate' must be the first step"):
        CurateConfig(steps=["exact_dedup", "validate"])
    with pytest.raises(ConfigError) as err:
        load_config(None, ["curate.steps=[length, validate, length]", "curate.min_chars=-1"], check=False)
    text = str(err.value)
    assert "curate.steps" in text and "Put validate first" in text and "more than once" in text
    assert "curate.min_chars" in text
    with pytest.raises(ConfigError, match="curate.steps"):
        load_config(None, ["curate.steps=[validate, sort]"], check=False)
    with pytest.raises(ConfigError, match="curate.quality.min_word: unknown key"):
        load_config(None, ["curate.quality.min_word=3"], check=False)


def test_default_quality_keeps_short_instruction_rows(tmp_path: Path) -> None:
    """Gopher's web-page rules would drop every arithmetic chat row; the curate default leaves them off."""
    from tasks.data.demo import write_demo_data

    demo = write_demo_data(tmp_path / "demo", 0, 160, 48, 24)
    out = curate_dataset([demo["train"], demo["pref"]], str(tmp_path / "out"), CurateConfig(), [demo["eval"]])
    assert not any(r.startswith(("gopher_", "language_", "c4_", "rep_", "toxic")) for r in out.dropped)
    assert out.kept >= 0.85 * out.read and out.report["languages"] == {"en": out.kept}


def test_an_eval_set_in_any_shape_is_indexed_by_all_its_text(tmp_path: Path) -> None:
    """Eval items need no training format: every string field counts, and curation never stops on one."""
    eval_path = tmp_path / "eval.jsonl"
    eval_path.write_text(json.dumps({"id": "odd-1", "prompt": EVAL_ITEM, "meta": {"tags": ["x"]}}) + "\n{broken\n")
    train = tmp_path / "train.jsonl"
    train.write_text(_sft("leak", EVAL_ITEM, "72") + "\n" + _sft("ok", "What is 7 + 8?", "The answer is 15.") + "\n")
    out = curate_dataset([str(train)], str(tmp_path / "out"), CurateConfig(), [str(eval_path)])
    assert out.report["decontamination"] == {"odd-1": 1} and out.report["eval_items"] == {str(eval_path): 1}
    assert out.kept == 1


def test_synthetic_variants_pass_the_same_steps_and_are_accounted_for(tmp_path: Path) -> None:
    """A real (tiny, local) teacher rewrites seeds; every variant is kept with its lineage or dropped with a reason."""
    import pytest

    from tests.curation_corpus import synthesize_settings

    teacher, settings = synthesize_settings(tmp_path, variants_per_seed=2, max_new_tokens=24)
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(
            _sft(
                f"s{i}",
                f"Tom has {i} apples and buys {i + 2} more. How many apples now?",
                f"{i} + {i + 2} = {2 * i + 2}. The answer is {2 * i + 2}.",
            )
            + "\n"
            for i in range(4)
        )
    )
    report = curate_dataset([str(path)], str(tmp_path / "out"), settings)
    assert report.read == 4 + 8  # four input rows, two variants of each
    assert report.kept + sum(report.dropped.values()) == report.read
    assert report.report["synthetic"]["generated"] == 8
    quarantined = [json.loads(line) for line in Path(report.quarantine_path).read_text().splitlines()]
    synthetic_drops = [q for q in quarantined if q["id"].startswith("syn-rephrase-")]
    kept = [json.loads(line) for line in Path(report.sft_path).read_text().splitlines()]
    variants = [r for r in kept if r["id"].startswith("syn-")]
    assert len(variants) + len(synthetic_drops) == 8 and report.report["synthetic_rows"] == len(variants)
    for row in variants:
        assert row["synthetic"]["teacher"] == f"local:{teacher}" and row["synthetic"]["seed_id"] in {
            "s0",
            "s1",
            "s2",
            "s3",
        }
        assert row["synthetic"]["template"].startswith("synth-rephrase/")
    if not variants:
        pytest.skip(f"the tiny teacher produced no usable variant: {[q['reason'] for q in synthetic_drops]}")


def test_synthetic_enabled_needs_the_step() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="'synthesize' is not in steps"):
        CurateConfig.model_validate({"synthetic": {"enabled": True, "teacher": "local:/x"}})


def test_near_duplicate_cluster_report_is_written(tmp_path: Path) -> None:
    words = "the quick brown fox jumps over the lazy dog near the quiet river bank today".split()
    path = tmp_path / "in.jsonl"
    lines = [
        _sft("a", " ".join(words), "It is a sentence about a fox and a dog."),
        _sft("b", " ".join(words), "It is a sentence about a fox and a dog. Indeed."),
        _sft("c", "An unrelated question about apples and pears in a basket?", "Pears."),
    ]
    path.write_text("\n".join(lines) + "\n")
    report = curate_dataset([str(path)], str(tmp_path / "out"), CurateConfig())
    clusters = json.loads(Path(report.clusters_path).read_text())
    assert (
        report.dropped.get("near_duplicate") == 1
        and report.report["near_duplicate_clusters"] == clusters["clusters"] == 1
    )
    assert json.dumps(clusters["examples"]).count('"b"') == 1 and clusters["largest_clusters"]


def test_explicit_lsh_banding_is_used_and_checked(tmp_path: Path) -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="go together"):
        CurateConfig(minhash_bands=16)
    with pytest.raises(ValidationError, match="exceeds"):
        CurateConfig(minhash_bands=32, minhash_rows=8)
    path = tmp_path / "in.jsonl"
    path.write_text(_sft("a", "one two three four five six seven eight nine ten", "eleven twelve thirteen.") + "\n")
    report = curate_dataset([str(path)], str(tmp_path / "out"), CurateConfig(minhash_bands=32, minhash_rows=4))
    clusters = json.loads(Path(report.clusters_path).read_text())
    assert (clusters["bands"], clusters["rows"]) == (32, 4)


def test_parallel_signature_workers_give_the_same_dataset(tmp_path: Path) -> None:
    inputs, _ = _write_all_reasons(tmp_path)
    one = curate_dataset(inputs, str(tmp_path / "one"), CurateConfig())
    two = curate_dataset(inputs, str(tmp_path / "two"), CurateConfig(processes=2))
    assert one.dataset_hash == two.dataset_hash and one.dropped == two.dropped
