"""lm-eval beside the suites: the same 50 items scored alike, prompts that must fit, standard tasks offline.

The parity test trains a small adapter that answers some demo questions right (about 15 s of CPU),
then runs `llmops evaluate` with the arithmetic suite and the `llmops_arith` task on the same 50
items, and compares them item by item. The other tests use the session's barely trained base model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from configs.schema import TinyModelConfig, TrainConfig  # noqa: E402
from core.errors import UserError  # noqa: E402
from tasks.data.demo import QUESTION_TEMPLATE, write_demo_data  # noqa: E402
from tasks.evaluate.harness import build_model_args, run_harness  # noqa: E402
from tasks.evaluate.harness_data import (  # noqa: E402
    DATA_PLACEHOLDER,
    HARNESS_TASKS_DIR,
    MAX_GEN_PLACEHOLDER,
    check_standard_tasks,
    offline_task_names,
)
from tasks.prompts import render_prompt  # noqa: E402

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
    {"question": "Ann has 9 pears and buys 3. How many does she have?", "answer": "9 + 3 = 12\n#### 12"},
    {"question": "Bo reads 6 pages a day. How many in 7 days?", "answer": "6 * 7 = 42\n#### 42"},
]


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A LoRA adapter on a small pre-trained base that gets some of 50 demo questions right."""
    from tasks.model.tiny import build_tiny_model
    from tasks.train.sft import train_sft

    root = tmp_path_factory.mktemp("parity")
    cfg = TinyModelConfig(hidden_size=64, num_layers=2, num_heads=4, pretrain_steps=150, vocab_size=600)
    base = build_tiny_model(cfg, root / "models")
    paths = write_demo_data(root / "demo", 0, 300, 10, 50)
    rows = [line for line in open(paths["train"]) if line.startswith('{"id": "train-')]
    (root / "sft.jsonl").write_text("".join(rows))
    train = TrainConfig.model_validate(
        {"method": "lora", "device": "cpu", "sft": {"max_steps": 200, "batch_size": 8, "learning_rate": 0.003}}
    )
    sft = train_sft(str(base), str(root / "sft.jsonl"), QUESTION_TEMPLATE, train, str(root / "train"))
    return {"adapter": sft.path, "eval": paths["eval"], "base": str(base)}


# ------------------------------------------------------------------ parity with the suite (issue 15, item 4)


def _items(folder: Path, suite: str) -> list[dict]:
    return [json.loads(line) for line in (folder / "items" / f"{suite}.jsonl").read_text().splitlines()]


def test_llmops_evaluate_and_lm_eval_agree_item_by_item_on_50_items(trained, prefect_harness, tmp_path):
    from sacrebleu.metrics import BLEU

    from llmops.cli import main
    from registry.tracking import client

    out = tmp_path / "eval"
    args = ["evaluate", "--model", trained["adapter"], "--suite", "arithmetic", "--data", trained["eval"]]
    args += ["--limit", "50", "--against", "none", "--output", str(out), "--set", "eval.harness_tasks=[llmops_arith]"]
    assert main(args) == 0
    suite, harness = _items(out, "arithmetic"), _items(out, "llmops_arith")
    assert len(suite) == 50 and [i["id"] for i in suite] == [i["id"] for i in harness]
    assert [i["output"] for i in suite] == [i["output"] for i in harness]
    same_metric = {
        "exact_match": "exact_match_final-number",  # the project's own reading
        "exact_match_strict-match": "exact_match_strict-match",  # lm-eval's, in both
        "exact_match_flexible-extract": "exact_match_flexible-extract",
    }
    results = json.loads((out / "results.json").read_text())["suites"]
    for ours, theirs in same_metric.items():
        assert [i[ours] for i in suite] == [i[theirs] for i in harness], ours
        assert results["arithmetic"][ours]["mean"] == results["llmops_arith"][theirs]["mean"]
    # Not an agreement of empty answers: the model answers, sometimes right.
    assert 5 <= sum(i["exact_match"] for i in suite) <= 45 and len({i["output"] for i in suite}) >= 5
    # BLEU is reported (issue 15, finding 7): corpus BLEU on 0..1, beside mean sentence chrF.
    metrics = client().get_run(json.loads((out / "results.json").read_text())["mlflow_run_id"]).data.metrics
    references = [json.loads(line)["answer"] for line in Path(trained["eval"]).read_text().splitlines()][:50]
    bleu = BLEU().corpus_score([i["output"] for i in suite], [references]).score / 100
    assert metrics["arithmetic.bleu.candidate"] == pytest.approx(bleu) and 0 < bleu < 1
    assert "arithmetic.sentence_chrf.candidate" in metrics and "arithmetic.chrf.candidate" not in metrics


def test_lm_eval_gets_the_runs_prompt_through_the_chat_template(base, tmp_path):
    from transformers import AutoTokenizer

    data = _jsonl(tmp_path / "gsm.jsonl", GSM8K_ROWS)
    run = run_harness(str(base), ["llmops_arith"], data, template="Q: {{question}}\nA:", max_new_tokens=7, limit=4)
    task = run.tasks["llmops_arith"]
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    for item, row in zip(task.items, GSM8K_ROWS):
        message = [{"role": "user", "content": render_prompt("Q: {{question}}\nA:", row["question"])}]
        assert item.prompt == tokenizer.apply_chat_template(message, add_generation_prompt=True, tokenize=False)
        assert set(item.extracted) == {"strict-match", "flexible-extract", "final-number"}
    assert [i.target for i in task.items] == ["72", "10", "1000", "3"] and [i.id for i in task.items] == list("1234")
    assert run.settings == {"apply_chat_template": True, "max_gen_toks": 7, "batch_size": 8}
    assert "max_gen_toks: 7\n" in run.task_configs["llmops_arith"] and run.lm_eval_version == "0.4.13"
    for key, value in task.metrics.items():  # the aggregate is the mean of the per-item scores
        assert value == pytest.approx(sum(i.scores[key] for i in task.items) / 4)


# ------------------------------------------------------------------ prompts longer than the model's positions


def _long_question_file(tmp_path) -> str:
    long = "Tom has 3 apples and Ann has 4 pears and they share them. " * 60 + "How many?"
    return _jsonl(
        tmp_path / "long.jsonl",
        [{"id": "short", "question": "2 + 2?", "target": "4"}] + [{"id": "long", "question": long, "target": "7"}],
    )


def test_a_prompt_beyond_the_models_positions_is_refused_in_one_line_by_lm_eval(base, tmp_path):
    with pytest.raises(UserError, match=r"lm-eval task llmops_arith, item long: its prompt is \d+ tokens") as e:
        run_harness(str(base), ["llmops_arith"], _long_question_file(tmp_path), max_new_tokens=8)
    assert "\n" not in str(e.value)


def test_check_prompts_fit_at_the_boundary():
    from tasks.evaluate.positions import check_prompts_fit, model_positions

    check_prompts_fit("suite x", ["a"], [504], 8, 512)  # exactly full: fits
    with pytest.raises(UserError, match="item a: its prompt is 505 tokens.*at most 504 tokens"):
        check_prompts_fit("suite x", ["a"], [505], 8, 512)
    check_prompts_fit("suite x", ["a"], [10**6], 8, None)  # no known limit: nothing to check

    class Config:
        n_positions, max_position_embeddings = 1024, 2048

    class Tokenizer:
        model_max_length = 10**30

    assert model_positions(Config()) == 1024 and model_positions(None, Tokenizer()) is None


# ------------------------------------------------------------------ standard lm-eval tasks (issue 15, item 5)


@pytest.fixture(scope="module")
def lm_eval_tasks():
    from lm_eval.tasks import TaskManager

    return TaskManager()  # scans lm-eval's bundled task files once (a few seconds)


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch) -> Path:
    """An empty datasets cache and hub cache of this test's own, with the hub offline (the project's default)."""
    import datasets.config
    import huggingface_hub.constants

    assert datasets.config.HF_HUB_OFFLINE, "the session runs with HF_HUB_OFFLINE=1 (core.paths)"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "datasets"


def _fill_cache(cache: Path, repo: str, config: str, splits: dict[str, list[dict]]) -> None:
    """What running a task once online leaves in the datasets cache: `<namespace>___<name>/<config>/...`."""
    from datasets.packaged_modules.json.json import Json

    src = cache.parent / "src"
    src.mkdir(exist_ok=True)
    files = {split: _jsonl(src / f"{split}.jsonl", rows) for split, rows in splits.items()}
    builder = Json(cache_dir=str(src / "build"), dataset_name=repo.split("/")[1], config_name=config, data_files=files)
    builder.download_and_prepare()
    target = cache / repo.replace("/", "___") / config / "0.0.0" / "local"
    shutil.copytree(builder.cache_dir, target)


def test_a_standard_task_without_its_data_is_one_line_naming_the_task_and_where_it_looked(
    lm_eval_tasks, datasets_cache
):
    with pytest.raises(UserError) as err:
        check_standard_tasks(lm_eval_tasks, ["gsm8k"])
    message = str(err.value)
    assert message.startswith("lm-eval task gsm8k: its data set openai/gsm8k (main) is not in the datasets cache ")
    assert str(datasets_cache) in message and "hub is offline" in message and "\n" not in message
    with pytest.raises(UserError, match="eval.harness_tasks: gsm8kk: is neither one of the project's offline tasks"):
        check_standard_tasks(lm_eval_tasks, ["gsm8kk"])


def test_llmops_evaluate_names_the_missing_data_before_evaluating(base, prefect_harness, datasets_cache, capsys):
    from llmops.cli import main
    from registry.tracking import client

    def evaluate_runs() -> int:
        experiment = client().get_experiment_by_name("llmops")
        if experiment is None:
            return 0
        return len(client().search_runs([experiment.experiment_id], "tags.`llmops.stage` = 'evaluate'"))

    data = _jsonl(datasets_cache.parent / "gsm.jsonl", GSM8K_ROWS)
    args = ["evaluate", "--model", str(base), "--suite", "arithmetic", "--data", data, "--against", "none"]
    before = evaluate_runs()
    assert main(args + ["--set", "eval.harness_tasks=[llmops_arith, gsm8k]"]) == 2
    assert evaluate_runs() == before  # refused before an evaluate run started
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: lm-eval task gsm8k: its data set openai/gsm8k (main) is not in the datasets cache {datasets_cache} "
        f"and the hub cache {datasets_cache.parent / 'hub'}, and the hub is offline (HF_HUB_OFFLINE / "
        "HF_DATASETS_OFFLINE); run the task once on a machine that reaches the hub (HF_HUB_OFFLINE=0 "
        "HF_DATASETS_OFFLINE=0) to fill the cache, or copy the cache here; offline, use the project's task llmops_arith"
    ]


def test_a_standard_task_runs_from_the_datasets_cache(base, datasets_cache):
    rows = [
        {
            "id": f"q{i}",
            "question": f"Which number is {n}?",
            "choices": {"text": [str(n), str(n + 1), str(n + 2)], "label": ["A", "B", "C"]},
            "answerKey": "A",
        }
        for i, n in enumerate([3, 5, 8])
    ]
    _fill_cache(datasets_cache, "allenai/ai2_arc", "ARC-Easy", {"train": rows, "validation": rows, "test": rows})
    run = run_harness(str(base), ["arc_easy"], limit=3)
    task = run.tasks["arc_easy"]
    assert [i.id for i in task.items] == ["q0", "q1", "q2"] and set(task.metrics) == {"acc,none", "acc_norm,none"}
    assert all(len(i.response) == 3 and i.scores["acc,none"] in (0.0, 1.0) for i in task.items)


def test_lm_eval_would_cut_a_standard_tasks_prompt_and_is_refused(base, datasets_cache, shared_data):
    """gsm8k is 5-shot: its prompts do not fit the tiny model's 512 positions with 256 new tokens."""
    rows = [json.loads(line) for line in (shared_data / "gsm8k_train_sample.jsonl").read_text().splitlines()]
    _fill_cache(datasets_cache, "openai/gsm8k", "main", {"train": rows[:20], "test": rows[20:22]})
    with pytest.raises(
        UserError, match=r"is \d+ tokens, and with 256 new tokens that exceeds the model's 512 positions"
    ):
        run_harness(str(base), ["gsm8k"], limit=1)


# ------------------------------------------------------------------ the task file and its filters


def test_the_task_file_uses_lm_evals_gsm8k_filters_and_comparison():
    import yaml
    from lm_eval.tasks import gsm8k

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    assert offline_task_names() == ["llmops_arith"]
    text = (HARNESS_TASKS_DIR / "llmops_arith.yaml").read_text()
    assert text.startswith("# Run:") and text.count(DATA_PLACEHOLDER) == 1 and text.count(MAX_GEN_PLACEHOLDER) == 1
    ours = yaml.load(text, Loader)
    theirs = yaml.safe_load((Path(gsm8k.__path__[0]) / "gsm8k.yaml").read_text())
    filters = {f["name"]: f["filter"] for f in ours["filter_list"]}
    for f in theirs["filter_list"]:
        assert filters[f["name"]] == f["filter"]
    assert ours["metric_list"] == theirs["metric_list"]
    assert filters["final-number"][0] == {"function": "custom", "filter_fn": "utils.final_number"}


def test_lm_evals_filter_pipeline_reads_answers_as_answers_py(tmp_path):
    """The rendered task's filters, run step by step as lm-eval runs them, against answers.py."""
    from lm_eval.tasks import TaskManager

    from tasks.evaluate.answers import extract_final_number, flexible_extract, strict_match
    from tasks.evaluate.harness_data import copy_task_folder, render_offline_task

    copy_task_folder(tmp_path)
    render_offline_task(tmp_path, "llmops_arith", _jsonl(tmp_path / "g.jsonl", GSM8K_ROWS), "{{question}}", 16, None)
    task = TaskManager(include_path=str(tmp_path), include_defaults=False).load(["llmops_arith"])["tasks"]
    responses = ["3 + 4 = 7. The answer is 7.", "The answer is 701.\n#### 694", "So 1,000 pens.\n#### 1,000", ""]
    extracted = {}
    for ensemble in task["llmops_arith"]._filters:
        resps = [[r] for r in responses]
        for step in ensemble.filters:
            resps = step().apply(resps, [{}] * len(responses))
        extracted[ensemble.name] = list(resps)
    assert extracted == {
        "strict-match": [strict_match(r) for r in responses],
        "flexible-extract": [flexible_extract(r) for r in responses],
        "final-number": [extract_final_number(r) for r in responses],
    }
    assert extracted["strict-match"] == ["[invalid]", "694", "1,000", "[invalid]"]


def test_model_args_for_lm_evals_command_line(base, tmp_path):
    assert build_model_args(str(base)) == {"pretrained": str(base)}
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/elsewhere/base"}))
    assert build_model_args(str(adapter)) == {"pretrained": "/elsewhere/base", "peft": str(adapter)}
    assert build_model_args(str(adapter), base=str(base))["pretrained"] == str(base)
    with pytest.raises(FileNotFoundError, match="neither config.json"):
        build_model_args(str(tmp_path))
    with pytest.raises(ValueError, match="need eval items"):
        run_harness(str(base), ["llmops_arith"])
