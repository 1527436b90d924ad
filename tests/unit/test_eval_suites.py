"""Evaluation suites, their versions and scorers, the resumable item cache, and operational timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.evaluate.cache import ItemCache, model_key
from tasks.evaluate.suites import SUITES, Suite, corpus_scores, load_suite, metric_kinds, score_outputs


def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def demo_eval(tmp_path) -> str:
    from tasks.data.demo import write_demo_data

    return write_demo_data(tmp_path / "demo", seed=0, n_train=10, n_pref=0, n_eval=6)["eval"]


# ------------------------------------------------------------------ loading


def test_bundled_suites_load_and_are_well_formed():
    json_suite = load_suite("json-format")
    assert len(json_suite.items) >= 25 and json_suite.scorer == "json_schema"
    assert all(i["schema"] and i["group"] for i in json_suite.items)
    probes = load_suite("safety")
    kinds = [i["probe"]["kind"] for i in probes.items]
    assert kinds.count("prompt_injection") >= 8 and kinds.count("refusal") >= 8 and kinds.count("pii_leak") >= 4
    assert len({i["id"] for i in probes.items}) == len(probes.items)
    for item in probes.items:
        if item["probe"]["kind"] == "prompt_injection":
            assert item["probe"]["token"] in item["question"]


def test_arithmetic_reads_demo_and_gsm8k_with_reference_text(demo_eval, tmp_path):
    suite = load_suite("arithmetic", demo_eval)
    assert suite.scorer == "final_number" and len(suite.items) == 6
    assert all(i["reference"].endswith(f"The answer is {i['target']}.") for i in suite.items)
    gsm = _write_jsonl(tmp_path / "gsm.jsonl", [{"question": "q", "answer": "48/2 = <<48/2=24>>24 clips.\n#### 24"}])
    item = load_suite("arithmetic", gsm).items[0]
    assert item["target"] == "24" and item["reference"] == "48/2 = 24 clips.\n#### 24"
    assert len(load_suite("arithmetic", demo_eval, limit=2).items) == 2


def test_held_out_reads_question_target_and_chat_rows(tmp_path):
    path = _write_jsonl(
        tmp_path / "h.jsonl",
        [
            {"id": "a", "question": "Capital of France?", "target": "Paris", "group": "geo"},
            {
                "id": "b",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "Say hi"},
                    {"role": "assistant", "content": "Hi!"},
                ],
            },
        ],
    )
    a, b = load_suite("held-out", path).items
    assert (a["target"], a["group"]) == ("Paris", "geo")
    assert (b["question"], b["target"], len(b["messages"])) == ("Say hi", "Hi!", 2)


def test_bad_rows_and_names_fail_loudly(tmp_path):
    bad = _write_jsonl(
        tmp_path / "bad.jsonl",
        [{"question": "q", "target": "t"}, {"messages": [{"role": "user", "content": "no reply"}]}],
    )
    with pytest.raises(ValueError, match="line 2"):
        load_suite("held-out", bad)
    with pytest.raises(ValueError, match="needs data_path"):
        load_suite("arithmetic")
    with pytest.raises(ValueError, match="choose one of"):
        load_suite("mmlu")
    with pytest.raises(ValueError, match="occurs twice"):
        Suite("x", "reference", [{"id": "1", "question": "q", "target": "t"}] * 2)
    assert set(SUITES) == {"arithmetic", "json-format", "held-out", "safety"}


def test_version_is_stable_and_moves_with_items(demo_eval, tmp_path):
    assert load_suite("arithmetic", demo_eval).version == load_suite("arithmetic", demo_eval).version
    assert load_suite("safety").version == load_suite("safety").version
    rows = [json.loads(line) for line in Path(demo_eval).read_text().splitlines()]
    rows[0]["target"] = "999"
    edited = _write_jsonl(tmp_path / "edited.jsonl", rows)
    assert load_suite("arithmetic", edited).version != load_suite("arithmetic", demo_eval).version
    assert load_suite("arithmetic", demo_eval, limit=3).version != load_suite("arithmetic", demo_eval).version
    items = [{"id": "1", "question": "q", "target": "t"}]
    assert Suite("a", "reference", items).version != Suite("a", "final_number", items).version


# ------------------------------------------------------------------ scoring


def test_arithmetic_scores(demo_eval):
    suite = load_suite("arithmetic", demo_eval, limit=2)
    outputs = [suite.items[0]["reference"], "I think it is 12345."]
    scores = score_outputs(suite, outputs)
    assert scores["exact_match"] == [1.0, 0.0]
    assert scores["rouge_l"][0] == pytest.approx(1.0) and scores["sentence_chrf"][0] == pytest.approx(1.0)
    assert scores["rouge_l"][1] < 0.5
    assert scores["semantic_similarity"][0] == 1.0 and scores["semantic_similarity"][1] < 0.9
    assert metric_kinds(suite) == {
        "exact_match": "binary",
        "exact_match_strict-match": "binary",
        "exact_match_flexible-extract": "binary",
        "rouge_l": "graded",
        "sentence_chrf": "graded",
        "semantic_similarity": "graded",
    }
    with pytest.raises(ValueError, match="2 items but 1 outputs"):
        score_outputs(suite, ["x"])


def test_arithmetic_without_reference_text_scores_exact_match_only(tmp_path):
    suite = load_suite("arithmetic", _write_jsonl(tmp_path / "e.jsonl", [{"question": "q", "target": "7"}]))
    assert score_outputs(suite, ["The answer is 7."]) == {
        "exact_match": [1.0],
        "exact_match_strict-match": [0.0],  # lm-eval's strict-match reads only "#### N"
        "exact_match_flexible-extract": [1.0],
    }
    assert set(metric_kinds(suite).values()) == {"binary"}
    assert corpus_scores(suite, ["The answer is 7."]) == {}  # no reference text, no BLEU


def test_held_out_exact_match_is_normalised(tmp_path):
    suite = load_suite(
        "held-out",
        _write_jsonl(
            tmp_path / "h.jsonl",
            [{"question": "Capital?", "target": "Paris"}, {"question": "Colour?", "target": "Blue"}],
        ),
    )
    scores = score_outputs(suite, ["paris.", "It is red"])
    assert scores["exact_match"] == [1.0, 0.0]
    assert set(scores) == {"exact_match", "rouge_l", "sentence_chrf", "semantic_similarity"} == set(metric_kinds(suite))
    assert set(corpus_scores(suite, ["paris.", "It is red"])) == {"bleu"}


# ------------------------------------------------------------------ answer extraction (issue 15, finding 3)


def test_gsm8k_marker_wins_over_the_answer_is(tmp_path):
    """GSM8K grades the number after `####`; lm-eval reads 694 here, and so does the project's rule now."""
    from tasks.evaluate.answers import extract_final_number, flexible_extract, strict_match

    text = "The answer is 701.\n#### 694"
    assert extract_final_number(text) == "694"
    assert strict_match(text) == "694" and flexible_extract(text) == "694"
    suite = load_suite("arithmetic", _write_jsonl(tmp_path / "e.jsonl", [{"question": "q", "target": "694"}]))
    assert score_outputs(suite, [text]) == {
        "exact_match": [1.0],
        "exact_match_strict-match": [1.0],
        "exact_match_flexible-extract": [1.0],
    }


def test_a_gsm8k_answer_that_says_the_answer_is_in_its_working_reads_its_final_line(tmp_path):
    """The pattern of GSM8K train row 7157, read as 15 instead of 120: "answer is" in the working."""
    from tasks.evaluate.score import read_eval_items

    row = {
        "question": "A box holds 8 cans. How many cans are in 15 boxes?",
        "answer": "The number of boxes is 15, so the answer is 15 boxes times 8 cans.\n"
        "15 * 8 = <<15*8=120>>120 cans\n#### 120",
    }
    assert read_eval_items(_write_jsonl(tmp_path / "g.jsonl", [row]))[0]["target"] == "120"


def test_strict_match_means_what_lm_eval_means(tmp_path):
    """Same name, same meaning: "The answer is N" is not a strict match (lm-eval gives 0.0)."""
    rows = [{"question": f"q{i}", "target": t} for i, t in enumerate(["7", "1000", "12", "3", "5"])]
    suite = load_suite("arithmetic", _write_jsonl(tmp_path / "e.jsonl", rows))
    outputs = ["3 + 4 = 7. The answer is 7.", "So 1,000 pens.\n#### 1,000", "I think 12 or 13", "", "#### $5."]
    scores = score_outputs(suite, outputs)
    assert scores["exact_match_strict-match"] == [0.0, 1.0, 0.0, 0.0, 0.0]  # "#### $5." has no digit after "#### "
    assert scores["exact_match_flexible-extract"] == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert scores["exact_match"] == [1.0, 1.0, 0.0, 0.0, 1.0]  # the project's own, lenient rule


def test_json_and_safety_suites_score_per_item():
    suite = load_suite("json-format", limit=1)  # {"name": str, "age": int}
    scores = score_outputs(suite, ['```json\n{"name": "Alice", "age": 30}\n```'])
    assert scores == {"json_valid": [1.0], "schema_match": [1.0]}
    assert set(metric_kinds(suite).values()) == {"binary"}
    probes = load_suite("safety")
    outputs = ["Sorry, I can't help with that."] * len(probes.items)
    passed = score_outputs(probes, outputs)["probe_pass"]
    assert len(passed) == len(probes.items) and all(passed)


# ------------------------------------------------------------------ cache


def _five_items() -> Suite:
    return Suite("held-out", "reference", [{"id": str(i), "question": f"q{i}", "target": f"t{i}"} for i in range(5)])


def test_cache_resumes_after_a_crash(tmp_path):
    suite = _five_items()
    cache = ItemCache(tmp_path, "model-a", suite)
    assert len(cache.pending_items()) == 5
    cache.put_many([{"id": "0", "output": "a"}, {"id": "1", "output": "b"}])
    cache.put_many([{"id": "2", "output": "c"}])
    with open(cache.path, "a") as f:  # the crash: half a record written, no newline
        f.write('{"id": "3", "outp')
    reopened = ItemCache(tmp_path, "model-a", suite)
    assert reopened.done_ids() == {"0", "1", "2"}
    assert [i["id"] for i in reopened.pending_items()] == ["3", "4"]
    assert reopened.get("2") == {"id": "2", "output": "c"} and reopened.get("4") is None
    reopened.put_many([{"id": "3", "output": "d"}, {"id": "4", "output": "e"}])
    assert [r["output"] for r in ItemCache(tmp_path, "model-a", suite).results()] == list("abcde")
    assert cache.path == tmp_path / "model-a" / f"held-out@{suite.version}.jsonl"


def test_cache_is_keyed_by_model_and_suite_version(tmp_path):
    suite = _five_items()
    ItemCache(tmp_path, "model-a", suite).put_many([{"id": "0"}])
    assert ItemCache(tmp_path, "model-b", suite).done_ids() == set()
    changed = Suite("held-out", "reference", suite.items[:4])
    assert ItemCache(tmp_path, "model-a", changed).done_ids() == set()
    with pytest.raises(ValueError, match="not an item"):
        ItemCache(tmp_path, "model-a", suite).put_many([{"id": "99"}])
    with pytest.raises(ValueError, match="5 items .* no result"):
        ItemCache(tmp_path, "model-a", suite).results()


def test_model_key_follows_the_bytes(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\x00" * 16)
    (folder / "README.md").write_text("notes")
    key = model_key(folder)
    (folder / "README.md").write_text("other notes")
    assert model_key(folder) == key
    (folder / "model.safetensors").write_bytes(b"\x01" * 16)
    assert model_key(folder) != key
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(folder)}))
    before = model_key(adapter)
    (folder / "config.json").write_text('{"changed": true}')
    assert model_key(adapter) != before  # the base model is part of an adapter's identity
    with pytest.raises(FileNotFoundError):
        model_key(tmp_path / "missing")


# ------------------------------------------------------------------ operational figures


def test_measure_generation_on_the_tiny_model(tmp_path):
    from configs.cost import CostConfig
    from configs.schema import TinyModelConfig
    from tasks.evaluate.ops import measure_generation, summarise_ops
    from tasks.model.load import Placement, load_for_generation
    from tasks.model.tiny import build_tiny_model

    folder = build_tiny_model(
        TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, pretrain_steps=2, vocab_size=400), tmp_path
    )
    model, tokenizer = load_for_generation(str(folder), Placement())
    prompts = ["Tom has 3 apples. He gets 2 more. How many?", "Hi", "What is 4 - 1?"]
    records = measure_generation(model, tokenizer, prompts, max_new_tokens=5, batch_size=2)
    assert len(records) == 3 and [r["batch_size"] for r in records] == [2, 2, 1]
    for r in records:
        assert r["latency_s"] > 0 and r["ttft_s"] > 0 and r["input_tokens"] > 0
        assert 1 <= r["output_tokens"] <= 5 and isinstance(r["output"], str)
    assert records[0]["input_tokens"] > records[1]["input_tokens"]  # padding is not counted
    summary = summarise_ops(records, CostConfig())
    assert summary["tokens_per_s"] > 0 and summary["cost_per_1k_queries"] > 0
    assert summary["latency_p95_s"] >= summary["latency_p50_s"]
    assert tokenizer.padding_side == "left"
