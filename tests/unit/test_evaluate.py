"""Answer extraction, the offline exact-match metric, eval-set reading, and the plot."""

from __future__ import annotations

import json

import pytest

from tasks.evaluate.answers import extract_final_number
from tasks.evaluate.plot import plot_scores, wilson_interval
from tasks.evaluate.score import load_metric, read_eval_items


@pytest.mark.parametrize(
    "text,expected",
    [
        ("3 + 4 = 7. The answer is 7.", "7"),
        ("The answer is 1,234.", "1234"),
        ("so 12 - 5 = 7 and then 8", "8"),
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "72"),
        ("The answer is -3.", "-3"),
        ("It is 2.50 dollars", "2.5"),
        ("no number here", ""),
    ],
)
def test_extract_final_number(text, expected):
    assert extract_final_number(text) == expected


def test_exact_match_loads_offline_and_scores_per_item():
    result = load_metric("exact_match").compute(predictions=["7", " 8", "x"], references=["7", "8", "9"])
    assert result["exact_match"] == pytest.approx(2 / 3)
    assert result["scores"] == [1.0, 1.0, 0.0]


def test_reads_demo_and_gsm8k_formats(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text(
        json.dumps({"id": "a", "question": "q1", "target": "7"})
        + "\n"
        + json.dumps({"question": "q2", "answer": "work <<1+1=2>>\n#### 2"})
        + "\n"
    )
    items = read_eval_items(str(path))
    assert [(i["question"], i["target"]) for i in items] == [("q1", "7"), ("q2", "2")]
    assert read_eval_items(str(path), limit=1)[0]["id"] == "a"


def test_bad_eval_item_names_the_line(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text(json.dumps({"question": "ok", "target": "1"}) + "\n" + json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(ValueError, match="line 2"):
        read_eval_items(str(path))


def test_real_gsm8k_sample_reads(shared_data):
    items = read_eval_items(str(shared_data / "gsm8k_train_sample.jsonl"))
    assert len(items) == 500 and all(i["target"] for i in items)
    assert items[0]["target"] == "72"


def test_wilson_interval_and_plot(tmp_path):
    lo, hi = wilson_interval(50, 100)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.19, abs=0.01)
    png = plot_scores({"base": [0, 0, 1, 0], "candidate": [1, 1, 1, 0]}, tmp_path / "p.png", "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
