"""Bring your own data and prompt: Anthropic HH preference pairs with the chat config, no demo wrapper.

The HH sample trains with no "Solve:" anywhere (read from the decoded examples the trainer fed the
model), registers versions with DPO, ORPO and KTO, and the model card names the prompt version.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from configs.load import load_config

pytestmark = pytest.mark.slow
MODEL = "hh-chat-test"


@pytest.fixture(scope="module")
def hh_files(shared_data, tmp_path_factory) -> dict:
    """900 HH rows to train on, the last 100 as held-out chat items (prompt, then the chosen answer)."""
    from tasks.data.formats import FormatError, map_hh

    rows = [json.loads(line) for line in gzip.open(shared_data / "hh_harmless_sample.jsonl.gz", "rt", encoding="utf-8")]
    folder = tmp_path_factory.mktemp("hh")
    train = folder / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:900]))
    held_out = []
    for i, row in enumerate(rows[900:]):
        try:
            pair = map_hh(row)
        except FormatError:
            continue
        held_out.append(
            {
                "id": f"hh-{i}",
                "messages": [
                    {"role": "user", "content": pair["prompt"]},
                    {"role": "assistant", "content": pair["chosen"]},
                ],
            }
        )
    eval_path = folder / "eval.jsonl"
    eval_path.write_text("".join(json.dumps(r) + "\n" for r in held_out))
    return {"train": str(train), "eval": str(eval_path)}


@pytest.fixture(scope="module")
def chat_overrides(hh_files, tiny_overrides) -> list[str]:
    small = [o for o in tiny_overrides if o.startswith(("model.tiny.", "train.", "eval."))]
    return small + [
        f"data.inputs=[{hh_files['train']}]",
        f"data.eval_path={hh_files['eval']}",
        f"registry.model_name={MODEL}",
        "registry.experiment=byo-test",
        "eval.limit=12",
        "gate.min_gain_over_base=-1.0",
        "train.preference.max_length=96",
        "train.preference.max_dropped_fraction=0.8",
    ]  # 70% of HH prompts fill 96 tokens: short, and recorded


@pytest.fixture(scope="module")
def night(prefect_harness, chat_overrides) -> dict:
    from flows.nightly import nightly_flow

    return nightly_flow(load_config("configs/chat.yaml", chat_overrides))


def test_hh_trains_without_the_demo_prompt_and_the_card_names_its_prompt(night, llmops_home):
    from registry.tracking import client

    assert (
        night["curate"].report["format"]
        and night["curate"].report["pref_rows"] > 800
        and night["curate"].report["sft_rows"] == 0
    )
    trained = night["train"]
    assert trained.prompt.startswith("chat-prompt/")
    examples = Path(llmops_home) / "runs" / trained.run_id / "dpo_examples.jsonl"
    decoded = [json.loads(line) for line in examples.read_text().splitlines()]
    assert len(decoded) == 20
    texts = [text for row in decoded for text in row.values()]
    assert texts and not any("Solve:" in t for t in texts)
    assert any("<|user|>" in t for t in texts)  # the chat template, around the HH prompt as written
    card = client().get_model_version(MODEL, str(trained.version)).description
    assert f"Prompt version `{trained.prompt}`" in card and "no preference tuning" not in card
    assert client().get_model_version(MODEL, str(trained.version)).tags["lineage.stages"] == "dpo"
    m = trained.metrics
    assert 0 < m["dpo/dropped_prompt_fills_max_length"] < m["dpo/rows"] == night["curate"].report["pref_rows"]
    dropped = Path(llmops_home) / "runs" / trained.run_id / "dpo_dropped.jsonl"
    assert len(dropped.read_text().splitlines()) == m["dpo/dropped_prompt_fills_max_length"]
    assert "examples/dpo_dropped.jsonl" in [a.path for a in client().list_artifacts(trained.run_id, "examples")]


@pytest.mark.parametrize("method", ["orpo", "kto"])
def test_orpo_and_kto_on_hh_register_a_version(night, chat_overrides, method):
    from flows.train import train_flow
    from registry.models import get_version

    config = load_config("configs/chat.yaml", chat_overrides + [f"train.preference.method={method}"])
    trained = train_flow(config=config, dataset=night["curate"].dataset_hash)
    version = get_version(MODEL, trained.version)
    assert version.tags["lineage.stages"] == method and "challenger" in version.aliases
    assert trained.metrics[f"{method}/train_loss"] == trained.metrics[f"{method}/train_loss"]  # a number, not NaN
