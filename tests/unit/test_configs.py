"""Every bundled config loads; bad configs fail before any work, naming each field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from configs.load import ConfigError, load_config

CONFIGS = sorted(Path("configs").rglob("*.yaml"))


def test_configs_found():
    assert {"nightly.yaml", "qwen2.5-0.5b-lora.yaml", "llama3-8b-qlora.yaml"} <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=str)
def test_each_config_validates_and_names_its_command(path):
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# Run: llmops ") and str(path) in first_line
    load_config(path, check=False)


def test_cpu_default_passes_the_machine_check():
    assert load_config("configs/nightly.yaml").train.device == "cpu"


def test_gpu_config_is_refused_here_with_what_to_change():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError) as err:
        load_config("configs/gpu/llama3-8b-qlora.yaml")
    text = str(err.value)
    assert "train.device/train.num_gpus" in text and "set train.device: cpu" in text
    assert "train.precision: bf16" in text and "use precision: fp32" in text
    assert "model.base" in text  # a hub name that is not cached, with the hub offline


def test_all_problems_are_reported_at_once(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  method: lorra\n  sft: {max_steps: 0, learnin_rate: 1}\ngate: {metric: bleu}\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    problems = err.value.problems
    assert len(problems) == 4
    text = str(err.value)
    assert "train.method: Input should be 'lora', 'qlora' or 'full'" in text
    assert "train.sft.max_steps" in text
    assert "train.sft.learnin_rate: unknown key" in text
    assert "gate.metric" in text


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="min_chars"):
        load_config(None, ["curate.min_chars=50", "curate.max_chars=10"], check=False)
    with pytest.raises(ConfigError, match="fp16 training needs a GPU"):
        load_config(None, ["train.precision=fp16", "train.device=cpu"], check=False)
    with pytest.raises(ConfigError, match="eval_path is required"):
        load_config(None, ["data.inputs=[a.jsonl]"], check=False)


def test_overrides_are_typed():
    cfg = load_config(None, ["train.sft.max_steps=7", "train.preference.enabled=false", "curate.minhash_threshold=0.7"])
    assert (cfg.train.sft.max_steps, cfg.train.preference.enabled, cfg.curate.minhash_threshold) == (7, False, 0.7)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, ["train.sft.max_steps"])


def test_bad_config_writes_nothing(tmp_path):
    """The CLI refuses a bad config with exit code 2 before any MLflow store is created."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {method: sgd}\n")
    home = tmp_path / "home"
    env = {"LLMOPS_HOME": str(home), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "nightly", "--config", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 2
    assert "train.method" in out.stderr
    assert not (home / "mlflow.db").exists()


def test_gate_rules_must_name_metrics_the_configured_suites_produce():
    """Checked at load time, across sections, every problem at once: not after curate, train and evaluate."""
    with pytest.raises(ConfigError) as err:
        load_config(
            None,
            [
                "eval.suites=[arithmetic]",
                'gate.rules={"arithmetic/exact_macth": {}, "json-format/json_valid": {}}',
                "gate.primary=arithmetic/exact_macth",
                "gate.safety_must_pass=[prompt_injection, jailbreak]",
            ],
        )
    problems = err.value.problems
    text = "\n".join(problems)
    assert (
        "gate.primary: suite 'arithmetic' produces no metric 'exact_macth'; "
        "it produces: bleu, exact_match, exact_match_flexible-extract" in text
    )
    assert "gate.rules.arithmetic/exact_macth: suite 'arithmetic' produces no metric 'exact_macth'" in text
    assert (
        "gate.rules.json-format/json_valid: 'json-format/json_valid' names suite 'json-format', which is not evaluated"
        in text
    )
    assert "gate.safety_must_pass: ['prompt_injection', 'jailbreak'] needs the safety suite" in text
    assert "gate.safety_must_pass: unknown probe kind 'jailbreak'" in text
    assert len(problems) == 5


def test_lm_eval_tasks_count_as_suites_with_their_own_metrics():
    cfg = load_config(
        None,
        ["eval.harness_tasks=[llmops_arith]", 'gate.rules={"arithmetic/exact_match": {}, "llmops_arith/anything": {}}'],
    )
    assert "llmops_arith/anything" in cfg.gate.rule_map()


def test_renamed_sections_say_where_they_went():
    with pytest.raises(ConfigError, match="train.dpo is now train.preference"):
        load_config(None, ["train.dpo.beta=0.2"])
    with pytest.raises(ConfigError, match="registry.prompt_name is now prompt.name"):
        load_config(None, ["registry.prompt_name=x"])


def test_prompt_templates_are_checked():
    with pytest.raises(ConfigError, match=r"must hold \{\{question\}\} exactly once"):
        load_config(None, ["prompt.template=Answer briefly."])
    with pytest.raises(ConfigError, match=r"unknown placeholder\(s\) \{\{context\}\}"):
        load_config(None, ["prompt.template={{context}} {{question}}"])
    assert load_config(None, ["prompt.template=prompts:/arith-qa@production"]).prompt.template.startswith("prompts:/")


def test_evaluating_one_suite_narrows_the_gate_with_it():
    from configs.consistency import cross_section_problems, narrowed_to_suites

    cfg = narrowed_to_suites(load_config(None), ["json-format"])
    assert cfg.eval.suites == ["json-format"] and cfg.gate.safety_must_pass == []
    assert [r.metric for r in cfg.gate.rules] == ["json-format/json_valid"]
    assert cfg.gate.primary == "json-format/json_valid"
    assert cross_section_problems(cfg) == []


def test_llmops_config_replaces_the_bundled_default(tmp_path, monkeypatch):
    from configs.load import ConfigError, default_config, load_config

    path = tmp_path / "team.yaml"
    path.write_text("name: team-nightly\ntrain:\n  sft:\n    max_steps: 7\n")
    monkeypatch.setenv("LLMOPS_CONFIG", str(path))
    assert default_config().name == "team-nightly" and load_config().train.sft.max_steps == 7
    monkeypatch.setenv("LLMOPS_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="file not found, named by LLMOPS_CONFIG"):
        load_config()
