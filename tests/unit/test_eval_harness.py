"""lm-eval on the project's offline tasks: a full model folder, an adapter folder, both task formats.

The tiny model is barely trained, so its answers are wrong (often empty: it emits special tokens);
the tests check the shape of what `run_harness` returns and, separately, that the tasks' answer
extraction scores a correct answer as correct.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from configs.schema import TinyModelConfig  # noqa: E402
from tasks.data.demo import write_demo_data  # noqa: E402
from tasks.evaluate.harness import (  # noqa: E402
    DATA_PLACEHOLDER,
    HARNESS_TASKS_DIR,
    build_model_args,
    offline_task_names,
    render_offline_tasks,
    run_harness,
)
from tasks.model.tiny import build_tiny_model  # noqa: E402

GSM8K_ROWS = [
    {
        "question": "Natalia sold 48 clips in April and half as many in May. How many in all?",
        "answer": "In May she sold 48 / 2 = 24 clips.\nIn all 48 + 24 = 72.\n#### 72",
    },
    {
        "question": "Weng earns $12 an hour. How much did she earn for 50 minutes?",
        "answer": "12 / 60 = 0.2 a minute, so 0.2 * 50 = 10.\n#### 10",
    },
    {"question": "A shop sells 250 pens a day. How many pens in 4 days?", "answer": "250 * 4 = 1,000\n#### 1,000"},
    {"question": "Tom has 5 apples and eats 2. How many are left?", "answer": "5 - 2 = 3\n#### 3"},
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    cfg = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, pretrain_steps=2, vocab_size=400)
    return build_tiny_model(cfg, tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def demo_eval(tmp_path_factory) -> str:
    return write_demo_data(tmp_path_factory.mktemp("demo"), 0, 20, 4, 6)["eval"]


def _check_task(result: dict, task: str, n: int, targets: list[str]) -> None:
    scores = result[task]
    for key in ("exact_match,strict-match", "exact_match,flexible-extract"):
        assert 0.0 <= scores["metrics"][key] <= 1.0
        assert key in scores["stderr"]
    assert scores["higher_is_better"]["exact_match"] is True
    assert scores["n"] == n and [item["doc_id"] for item in scores["items"]] == list(range(n))
    assert [item["target"] for item in scores["items"]] == targets
    for item in scores["items"]:
        assert isinstance(item["response"], str)
        assert item["prompt"].startswith("<|bos|><|user|>") and item["prompt"].endswith(
            "<|assistant|>"
        )  # chat template
        assert set(item["extracted"]) == {"strict-match", "flexible-extract"}
        assert set(item["metrics"]) == set(scores["metrics"])
        assert all(v in (0.0, 1.0) for v in item["metrics"].values())
    # The aggregate is the mean of the per-item scores, so items support a paired comparison.
    for key, value in scores["metrics"].items():
        assert value == pytest.approx(sum(i["metrics"][key] for i in scores["items"]) / n)


def test_llmops_arith_on_full_model(tiny_model, demo_eval):
    result = run_harness(str(tiny_model), ["llmops_arith"], {"llmops_arith": demo_eval}, limit=6)
    targets = [json.loads(line)["target"] for line in Path(demo_eval).read_text().splitlines()]
    _check_task(result, "llmops_arith", 6, targets)
    assert [i["id"] for i in result["llmops_arith"]["items"]] == [f"eval-{k}" for k in range(6)]
    assert result["_run"]["model_args"] == {"pretrained": str(tiny_model)}
    assert result["_run"]["lm_eval_version"] == "0.4.13"
    assert demo_eval in result["_run"]["task_configs"]["llmops_arith"]


def test_llmops_gsm8k_local(tiny_model, tmp_path):
    data = tmp_path / "gsm8k_test.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in GSM8K_ROWS))
    result = run_harness(str(tiny_model), ["llmops_gsm8k_local"], {"llmops_gsm8k_local": str(data)}, limit=4)
    _check_task(result, "llmops_gsm8k_local", 4, ["72", "10", "1000", "3"])


def test_adapter_folder_runs_through_peft(tiny_model, demo_eval, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(tiny_model)),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    model.peft_config["default"].base_model_name_or_path = str(tiny_model)
    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(str(tiny_model)).save_pretrained(adapter)
    assert not (adapter / "config.json").exists()

    result = run_harness(str(adapter), ["llmops_arith"], {"llmops_arith": demo_eval}, limit=6, batch_size=4)
    assert result["_run"]["model_args"] == {
        "pretrained": str(tiny_model),
        "peft": str(adapter),
        "tokenizer": str(adapter),
    }
    targets = [json.loads(line)["target"] for line in Path(demo_eval).read_text().splitlines()]
    _check_task(result, "llmops_arith", 6, targets)


def test_extraction_scores_a_correct_answer_as_correct(demo_eval, tmp_path):
    """The model above never answers right, so the tasks' filters and metric are checked here."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.tasks import TaskManager

    render_offline_tasks(tmp_path, {"llmops_arith": demo_eval})  # building the task loads its data
    task = TaskManager(include_path=str(tmp_path), include_defaults=False).load(["llmops_arith"])["tasks"][
        "llmops_arith"
    ]
    responses = [["3 + 4 = 7. The answer is 7."], ["So 1,000 pens.\n#### 1,000"], ["I think 12 or 13"], [""]]
    extracted = {}
    for ensemble in task._filters:  # each filter pipeline as lm-eval runs it, step by step
        resps = responses
        for step in ensemble.filters:
            resps = step().apply(resps, [{}] * len(responses))
        extracted[ensemble.name] = list(resps)
    assert extracted == {
        "strict-match": ["7", "1,000", "[invalid]", "[invalid]"],
        "flexible-extract": ["7", "1000", "13", ""],
    }
    strict_out = extracted["strict-match"]
    scores = exact_match_hf_evaluate(
        predictions=strict_out, references=["7", "1000", "12", "0"], regexes_to_ignore=[","]
    )
    assert scores["exact_match"] == pytest.approx(0.5)


def test_task_files_and_argument_errors(tiny_model, tmp_path):
    assert offline_task_names() == ["llmops_arith", "llmops_gsm8k_local"]
    for name in offline_task_names():
        text = (HARNESS_TASKS_DIR / f"{name}.yaml").read_text()
        assert text.startswith("# Run:") and text.count(DATA_PLACEHOLDER) == 1 and f"task: {name}\n" in text
    with pytest.raises(ValueError, match="need a data file"):
        run_harness(str(tiny_model), ["llmops_arith"])
    with pytest.raises(ValueError, match="not an offline task"):
        render_offline_tasks(tmp_path / "r", {"nope": __file__})
    with pytest.raises(FileNotFoundError, match="neither config.json"):
        build_model_args(str(tmp_path))
