"""The training library on its real CPU path: placement, packing, checkpoints and resume, DPO/ORPO/KTO."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from configs.schema import EvalConfig, ModelConfig, TrainConfig
from tasks.data.demo import QUESTION_TEMPLATE

ROOT = Path(__file__).resolve().parents[2]


def test_loader_places_and_types_the_model_as_configured(base):
    import bitsandbytes as bnb
    import torch

    from tasks.model.load import eval_placement, load_base, load_for_training, training_placement

    fp32 = training_placement(TrainConfig(device="cpu"), ModelConfig())
    model = load_base(str(base), fp32)
    assert {p.device.type for p in model.parameters()} == {"cpu"} and {p.dtype for p in model.parameters()} == {
        torch.float32
    }
    assert model.config._attn_implementation == "sdpa"

    bf16 = training_placement(TrainConfig(device="cpu", precision="bf16"), ModelConfig(attn_implementation="eager"))
    model = load_base(str(base), bf16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16} and model.config._attn_implementation == "eager"

    qlora = training_placement(TrainConfig(device="cpu", method="qlora"), ModelConfig())
    model = load_for_training(str(base), qlora)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())

    assert eval_placement(EvalConfig(), ModelConfig()).to_dict() == {
        "device": "cpu",
        "precision": "fp32",
        "quant_bits": None,
        "attn_implementation": "sdpa",
        "sharded": False,
    }


def test_packing_gives_the_same_first_step_loss(base, demo, tmp_path):
    """Eight rows in one unpadded packed sequence, or in one padded batch: the same tokens, the same loss."""
    from tasks.train.sft import train_sft

    rows = Path(demo["sft"]).read_text().splitlines()[:8]
    data = tmp_path / "eight.jsonl"
    data.write_text("\n".join(rows) + "\n")
    common = {"device": "cpu", "sft": {"max_steps": 1, "batch_size": 8, "max_length": 1024}}
    padded = train_sft(str(base), str(data), QUESTION_TEMPLATE, TrainConfig.model_validate(common), str(tmp_path / "a"))
    packed_cfg = TrainConfig.model_validate(
        common | {"packing": True, "sft": {"max_steps": 1, "batch_size": 1, "max_length": 1024}}
    )
    packed = train_sft(str(base), str(data), QUESTION_TEMPLATE, packed_cfg, str(tmp_path / "b"))
    first = lambda r: r.history[0]["sft/loss"]  # noqa: E731
    assert first(packed) == pytest.approx(first(padded), rel=1e-3)
    assert packed.throughput["tokens"] == padded.throughput["tokens"]
    assert packed.throughput["padding_fraction"] == 0.0 < padded.throughput["padding_fraction"]
    # Only batches trained on count: two steps over the same eight rows are twice one step's tokens,
    # though the data loader built a batch ahead of each.
    two = train_sft(
        str(base),
        str(data),
        QUESTION_TEMPLATE,
        TrainConfig.model_validate(common | {"sft": {"max_steps": 2, "batch_size": 8, "max_length": 1024}}),
        str(tmp_path / "c"),
    )
    assert padded.throughput["batches"] == 1 and two.throughput["batches"] == 2
    assert two.throughput["tokens"] == 2 * padded.throughput["tokens"]


def test_a_run_killed_after_a_checkpoint_resumes_there(base, demo, tmp_path):
    out = tmp_path / "run"
    script = (
        "import sys; from configs.schema import TrainConfig; from tasks.train.sft import train_sft\n"
        "cfg = TrainConfig.model_validate(\n"
        "    {'device': 'cpu', 'save_steps': 5, 'sft': {'max_steps': 400, 'batch_size': 4}})\n"
        f"r = train_sft({str(base)!r}, {demo['sft']!r}, {QUESTION_TEMPLATE!r}, cfg, {str(out)!r})\n"
        "print('RESULT', r.steps, r.resumed_from)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("checkpoints-sft/checkpoint-10")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(out.glob("checkpoints-sft/checkpoint-*")), "no checkpoint was written before the kill"
    assert not (out / "sft_summary.json").exists()

    done = subprocess.run(
        [sys.executable, "-c", script.replace("400", "40")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert result, done.stderr[-2000:]
    steps, resumed = result[0].split()[1:]
    assert int(steps) == 40 and "checkpoint-" in resumed
    summary = json.loads((out / "sft_summary.json").read_text())
    assert summary["history"][0]["step"] > int(resumed.rsplit("-", 1)[1])  # no step before the checkpoint was redone


@pytest.mark.parametrize("method", ["orpo", "kto"])
def test_orpo_and_kto_train_from_the_sft_adapter(base, demo, tmp_path, method):
    from tasks.model.load import TRAINING_RECORD, read_record
    from tasks.train.preference import train_preference
    from tasks.train.sft import train_sft

    cfg = TrainConfig.model_validate(
        {
            "device": "cpu",
            "sft": {"max_steps": 2, "batch_size": 4},
            "preference": {"method": method, "max_steps": 3, "batch_size": 4},
        }
    )
    sft = train_sft(str(base), demo["sft"], QUESTION_TEMPLATE, cfg, str(tmp_path))
    result = train_preference(sft.path, demo["pref"], QUESTION_TEMPLATE, cfg, str(tmp_path))
    assert result.steps == 3 and Path(result.path).name == method
    assert any(f"{method}/loss" in h for h in result.history)
    assert read_record(result.path, TRAINING_RECORD)["stage"] == method
    again = train_preference(sft.path, demo["pref"], QUESTION_TEMPLATE, cfg, str(tmp_path))
    assert again.skipped and again.steps == 3  # a finished stage is not trained twice


def test_rows_whose_prompt_fills_max_length_are_recorded_or_stop_the_run(base, demo, tmp_path):
    """trl drops a row that truncation leaves without an answer token; here each is recorded, and too many stop."""
    from core.errors import UserError
    from tasks.train.sft import train_sft

    rows = [json.loads(line) for line in Path(demo["sft"]).read_text().splitlines()[:8]]
    long_prompt = "Count the apples in every basket on the long shelf. " * 12

    def data(n_long: int) -> str:
        for i, row in enumerate(rows):
            row["id"] = f"r{i}"
            if i < n_long:
                row["messages"][0]["content"] = long_prompt
        path = tmp_path / f"{n_long}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(path)

    cfg = TrainConfig.model_validate({"device": "cpu", "sft": {"max_steps": 1, "batch_size": 4, "max_length": 64}})
    one = train_sft(str(base), data(1), QUESTION_TEMPLATE, cfg, str(tmp_path / "one"))
    assert one.rows.rows == 8 and one.rows.dropped_prompt_fills_max_length == 1
    assert one.rows.longest_prompt_tokens >= 64
    [dropped] = [json.loads(line) for line in Path(one.rows.dropped_path).read_text().splitlines()]
    assert dropped["id"] == "r0" and dropped["reason"] == "prompt_fills_max_length"

    with pytest.raises(UserError) as stopped:
        train_sft(str(base), data(4), QUESTION_TEMPLATE, cfg, str(tmp_path / "four"))
    assert stopped.value.subject == "train.sft.max_length=64" and "4 of 8 training rows" in stopped.value.problem
    assert "train.sft.max_dropped_fraction" in stopped.value.fix


def test_preference_pairs_whose_prompt_fills_max_length_are_recorded_not_trained_or_stop_the_run(base, demo, tmp_path):
    """ORPO would train such a pair on an empty response and DPO/KTO drop it unsaid: here it is left out and listed."""
    from core.errors import UserError
    from tasks.train.preference import train_preference

    pairs = [json.loads(line) for line in Path(demo["pref"]).read_text().splitlines()[:8]]

    def data(n_long: int) -> str:
        for i, pair in enumerate(pairs):
            pair["id"] = f"p{i}"
            if i < n_long:
                pair["prompt"] = "Weigh every parcel on the loading dock before noon. " * 12
        path = tmp_path / f"pairs{n_long}.jsonl"
        path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
        return str(path)

    cfg = TrainConfig.model_validate(
        {"device": "cpu", "preference": {"method": "orpo", "max_steps": 1, "batch_size": 4, "max_length": 64}}
    )
    one = train_preference(str(base), data(1), QUESTION_TEMPLATE, cfg, str(tmp_path / "one"))
    assert one.rows.rows == 8 and one.rows.dropped_prompt_fills_max_length == 1
    assert one.rows.setting == "train.preference.max_length"
    [dropped] = [json.loads(line) for line in Path(one.rows.dropped_path).read_text().splitlines()]
    assert dropped["id"] == "p0" and Path(one.rows.dropped_path).name == "orpo_dropped.jsonl"

    with pytest.raises(UserError) as stopped:
        train_preference(str(base), data(3), QUESTION_TEMPLATE, cfg, str(tmp_path / "three"))
    assert stopped.value.subject == "train.preference.max_length=64" and "3 of 8 training rows" in stopped.value.problem
    assert "train.preference.max_dropped_fraction" in stopped.value.fix
    lenient = cfg.model_copy(update={"preference": cfg.preference.model_copy(update={"max_dropped_fraction": 1.0})})
    with pytest.raises(UserError, match="8 of 8 training rows"):  # nothing left to train is never accepted
        train_preference(str(base), data(8), QUESTION_TEMPLATE, lenient, str(tmp_path / "all"))
