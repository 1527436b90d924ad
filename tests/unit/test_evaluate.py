"""Answer extraction, the offline exact-match metric, eval-set reading, the plot, and what an evaluation
hands on: answers cached, timings only from the run that measured them, typed results, and a folder
evaluated from the command line without writing what it does not use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.evaluate.answers import extract_final_number
from tasks.evaluate.intervals import wilson_interval
from tasks.evaluate.plot import plot_scores
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


def test_wilson_interval_and_plot_of_any_metric(tmp_path):
    lo, hi = wilson_interval(50, 100)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.19, abs=0.01)
    png = plot_scores({"base": [0, 0, 1, 0], "candidate": [1, 1, 1, 0]}, tmp_path / "p.png", "exact_match", "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    graded = plot_scores({"base": [0.2, 0.4, 0.3], "candidate": [0.7, 0.9, 0.8]}, tmp_path / "c.png", "chrf", "t")
    assert graded.stat().st_size > 0


# ------------------------------------------------------------------ answers cached, timings fresh


def _suite(demo_eval: str):
    from tasks.evaluate.suites import load_suite

    return load_suite("arithmetic", demo_eval, limit=6)


def test_cached_answers_carry_no_timing_and_retime_times_every_batch(base, demo, tmp_path):
    from configs.schema import EvalConfig
    from tasks.evaluate.run import evaluate_model

    suite, cfg = _suite(demo["eval"]), EvalConfig(max_new_tokens=4, batch_size=4)
    first = evaluate_model(str(base), [suite], cfg, str(tmp_path), run_id="run-1")["arithmetic"]
    assert first.cached_items == 0 and first.timed_in == "run-1" and first.ops["timed_items"] == 6
    assert [(b.index, len(b.ids)) for b in first.batches] == [(0, 4), (1, 2)] and first.ops["latency_p95_s"] > 0

    again = evaluate_model(str(base), [suite], cfg, str(tmp_path), run_id="run-2")["arithmetic"]
    assert again.cached_items == 6 and again.batches == [] and again.timed_in == ""
    assert again.ops == {"timed_items": 0, "untimed_items": 6}  # no stale p95 standing in for this run's
    assert again.outputs == first.outputs and again.model_key == first.model_key

    retimed = evaluate_model(str(base), [suite], cfg, str(tmp_path), run_id="run-3", retime=True)["arithmetic"]
    assert retimed.cached_items == 6 and retimed.timed_in == "run-3" and retimed.ops["timed_items"] == 6
    assert [b.ids for b in retimed.batches] == [b.ids for b in first.batches]  # the same items in each batch
    assert retimed.outputs == first.outputs  # scored on the cached answers
    cached = [json.loads(line) for line in next(Path(tmp_path).rglob("arithmetic@*.jsonl")).read_text().splitlines()]
    assert len(cached) == 6 and not any("latency_s" in r for r in cached)  # the cache holds answers only


def test_results_round_trip_and_read_the_older_shape():
    from tasks.evaluate.results import BatchTiming, EvalResults, ProbeTally, SuiteResult

    r = SuiteResult(
        version="v",
        ids=["a", "b"],
        scores={"exact_match": [1.0, 0.0]},
        model_key="k",
        outputs=["1", "2"],
        probes={"pii_leak": ProbeTally(1, 2)},
        batches=[BatchTiming(0, ["a", "b"], 0.5, 0.001)],
        timed_in="run",
    )
    stored = json.loads(json.dumps(EvalResults({"candidate": {"arithmetic": r}}).to_json()))
    assert "outputs" not in stored["candidate"]["arithmetic"] and stored["candidate"]["arithmetic"]["means"]
    back = EvalResults.from_json(stored)
    assert back.of("candidate")["arithmetic"].batches == r.batches and back.summary() == {
        "candidate": {"arithmetic/exact_match": 0.5}
    }
    older = {"version": "v", "n": 2, "ids": ["a", "b"], "scores": {"probe_pass": [1.0, 1.0]}, "means": {}}
    older |= {"groups": None, "bleu_stats": None, "ops": {"latency_p95_s": 0.1}, "resumed_items": 2}
    older |= {"probes": {"pii_leak": {"passed": 2, "total": 2, "all_passed": True}}}
    read = SuiteResult.from_json(older)
    assert read.cached_items == 2 and read.probes["pii_leak"].all_passed and read.batches == []


# ------------------------------------------------------------------ a folder from the command line


def test_evaluating_a_folder_writes_only_what_it_uses_and_leaves_no_server(base, tmp_path):
    """On a fresh home: the evaluate run and the demo eval split it reads; no training files, no
    prompt registered, no Prefect server left running (nor started: none ran before)."""
    import psutil

    home = tmp_path / "home"
    steered = ("PREFECT_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "LLMOPS_HOME_PREFECT_URL")
    env = {k: v for k, v in os.environ.items() if k not in steered and k != "LLMOPS_PREFECT_SERVER"}
    args = ["evaluate", "--model", str(base), "--suite", "arithmetic", "--limit", "4"]
    args += ["--set", "eval.max_new_tokens=4", "--set", "data.demo_eval_rows=8"]
    done = subprocess.run(
        [sys.executable, "-m", "llmops.cli", *args],
        capture_output=True,
        text=True,
        env=env | {"LLMOPS_HOME": str(home)},
        cwd=Path(__file__).resolve().parents[2],
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "arithmetic/exact_match:" in done.stdout and "MLflow run:" in done.stdout
    assert sorted(p.name for p in (home / "data").rglob("*") if p.is_file()) == ["eval.jsonl"]
    assert not (home / "prefect" / "server.json").exists()
    serving = [
        p.pid
        for p in psutil.process_iter(["pid", "cmdline"])
        if "prefect" in " ".join(p.info["cmdline"] or [])
        and "server" in " ".join(p.info["cmdline"] or [])
        and _environ(p).get("PREFECT_HOME") == str(home / "prefect")
    ]
    assert serving == []
    check = "import mlflow; print(len(mlflow.genai.search_prompts()))"
    prompts = subprocess.run(
        [sys.executable, "-c", check],
        capture_output=True,
        text=True,
        env=env | {"MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"},
        timeout=120,
    )
    assert prompts.stdout.strip().splitlines()[-1] == "0", prompts.stderr[-2000:]


def _environ(proc) -> dict:
    import psutil

    try:
        return proc.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {}


def test_the_model_key_ignores_the_order_peft_writes_a_set_in(tmp_path):
    """Two identical retrains wrote target_modules in different orders and got different keys."""
    from tasks.evaluate.cache import model_key

    keys = []
    for name, modules in (("a", ["q_proj", "v_proj", "o_proj"]), ("b", ["o_proj", "q_proj", "v_proj"])):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "target_modules": modules}))
        (folder / "adapter_model.safetensors").write_bytes(b"\x00" * 16)
        keys.append(model_key(folder))
    assert keys[0] == keys[1]
    (tmp_path / "b" / "adapter_config.json").write_text(json.dumps({"r": 8, "target_modules": ["q_proj"]}))
    assert model_key(tmp_path / "b") != keys[0]
