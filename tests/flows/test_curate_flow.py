"""The curate stage under the Prefect test harness: the CLI on a real HH sample, and the demo data
through `curate_flow`, with what each records in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from configs.load import load_config

pytestmark = pytest.mark.slow


def test_cli_curates_the_hh_sample_into_output(prefect_harness, shared_data, tmp_path, capsys):
    import pyarrow.parquet as pq

    from llmops.cli import main

    sample = (shared_data / "hh_harmless_sample.jsonl.gz").resolve()  # the CLI names inputs by their real path
    out = tmp_path / "hh"
    assert (
        main(["curate", "--input", str(sample), "--output", str(out), "--set", "registry.experiment=curate-test"]) == 0
    )

    report = json.loads((out / "report.json").read_text())
    assert report["read"] == 1000
    assert report["kept"] + sum(report["dropped"].values()) == report["read"]
    assert report["format"] == {str(sample): "hh"}
    assert report["pref_rows"] == report["kept"] > 0 and report["sft_rows"] == 0
    quarantine = (out / "quarantine.jsonl").read_text().splitlines()
    assert len(quarantine) == sum(report["dropped"].values())
    dataset = out / f"dataset-{report['dataset_hash_short']}"
    assert pq.read_table(dataset / "pref.parquet").num_rows == report["pref_rows"]
    assert len((dataset / "pref.jsonl").read_text().splitlines()) == report["pref_rows"]
    assert "hh (auto-detected)" in (dataset / "DATACARD.md").read_text()

    printed = capsys.readouterr().out
    assert "format: hh (auto-detected)" in printed and f"read {report['read']} rows" in printed
    assert str(out / "report.json") in printed and str(dataset) in printed


def test_curate_flow_on_the_demo_data(prefect_harness, tiny_overrides):
    from flows.curate import curate_flow
    from registry.tracking import client

    config = load_config(None, tiny_overrides + ["registry.experiment=curate-test"])
    r = curate_flow(config)

    assert r.kept + sum(r.dropped.values()) == r.read
    assert {"exact_duplicate", "near_duplicate", "bad_json", "too_short"} <= set(r.dropped)
    assert r.kept >= 0.85 * r.read and r.report["sft_rows"] > 0 and r.report["pref_rows"] > 0
    assert r.report["steps"] == config.curate.steps and r.report["eval_items"] == {r.eval_path: 24}
    assert r.report["languages"] == {"en": r.kept}  # the quality step drops none of the demo rows
    assert Path(r.dataset_dir, "sft.parquet").exists() and Path(r.card_path).exists()

    run = client().get_run(r.run_id)
    assert run.data.metrics["rows_read"] == r.read and run.data.metrics["rows_kept"] == r.kept
    assert run.data.metrics["dropped.exact_duplicate"] == r.dropped["exact_duplicate"]
    assert run.data.metrics["pii.email"] == r.report["pii"]["email"]
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert {"curated-parquet", "curated-sft", "curated-pref", "eval"} <= set(inputs)
    assert r.dataset_dir in inputs["curated-parquet"].source
    artifacts = {a.path for a in client().list_artifacts(r.run_id, "curation")}
    assert artifacts == {
        "curation/report.json",
        "curation/quarantine.jsonl",
        "curation/DATACARD.md",
        "curation/clusters.json",
    }


def _comparable(result) -> dict:
    """A `CurateResult`'s report without what depends on where or how fast it ran."""
    figures = ("step_figures", "processes")
    return {k: v for k, v in result.report.items() if k not in figures and not k.endswith(("_path", "_dir"))}


def test_shards_give_the_same_result_on_threads_and_on_dask(prefect_harness, tiny_overrides):
    """Three shards mapped on a thread pool, then on a local Dask cluster: same counts, same dataset."""
    from flows.curate import run_curate

    base = tiny_overrides + ["registry.experiment=curate-test", "curate.shards=3"]
    on_threads = run_curate(load_config(None, base))
    on_dask = run_curate(load_config(None, base + ["curate.task_runner=dask"]))
    assert on_threads.report["shards"] == 3 and on_threads.read > 0
    assert on_threads.kept + sum(on_threads.dropped.values()) == on_threads.read
    assert _comparable(on_threads) == _comparable(on_dask)
    assert on_threads.dataset_hash == on_dask.dataset_hash
    ids = [
        sorted(json.loads(line)["id"] for line in Path(r.quarantine_path).read_text().splitlines())
        for r in (on_threads, on_dask)
    ]
    assert ids[0] == ids[1] and len(ids[0]) == sum(on_threads.dropped.values())
    assert len(list(Path(on_threads.quarantine_path).parent.glob("shards/shard-*.0.pkl"))) >= 3  # read in 3+ shards


def test_one_shard_and_many_shards_agree_on_what_only_dedup_decides(prefect_harness, tiny_overrides):
    """With dedup the last steps in both, sharding changes where rows run, not which rows survive."""
    from flows.curate import run_curate

    steps = "curate.steps=[validate, length, quality, pii, decontaminate, exact_dedup, near_dedup]"
    base = tiny_overrides + ["registry.experiment=curate-test", steps]
    single = run_curate(load_config(None, base))
    sharded = run_curate(load_config(None, base + ["curate.shards=4"]))
    assert single.dropped == sharded.dropped and single.dataset_hash == sharded.dataset_hash
