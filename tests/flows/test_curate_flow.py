"""The curate stage under the Prefect test harness: the CLI on a real HH sample, and the demo data
through `curate_flow`, with what each records in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from configs.load import load_config
from tests.curation_corpus import eval_file, write_corpus

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
    """A `CurateResult`'s report without what depends on how the run was split."""
    return {k: v for k, v in result.report.items() if k not in ("step_figures", "processes", "shards")}


@pytest.fixture(scope="module")
def split_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("split")
    inputs = write_corpus(folder, rows_per_file=600)
    return inputs, eval_file(folder, inputs)


def _shard_reads() -> int:
    """Task runs of `curate-read-shard` the Prefect server holds."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        found = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="curate-read-shard")))
    return len(found)


def test_shards_on_threads_and_on_dask_give_the_one_process_dataset(prefect_harness, split_corpus):
    """The default step order (dedup before PII masking), shards mapped on a thread pool and on an
    in-process Dask cluster, each in an experiment of its own so that no run reuses another's dataset."""
    from flows.curate import run_curate

    inputs, eval_path = split_corpus
    data = [f"data.inputs={json.dumps(inputs)}", f"data.eval_path={eval_path}", "curate.quality.max_drop_fraction=1.0"]
    runs, reads = {}, {}
    for name, extra in {
        "one": [],
        "threads": ["curate.shards=3"],
        "dask": ["curate.shards=3", "curate.task_runner=dask"],
    }.items():
        before = _shard_reads()
        runs[name] = run_curate(load_config(None, data + [f"registry.experiment=curate-split-{name}", *extra]))
        reads[name] = _shard_reads() - before
    one = runs["one"]
    assert one.report["pii"]["email"] == 2 and "exact_duplicate" in one.dropped  # the twins are in it, both kept
    assert Path(one.quarantine_path).parent != Path(runs["threads"].quarantine_path).parent
    for name in ("threads", "dask"):
        r = runs[name]
        assert r.reused_from is None and r.report["shards"] == 3
        assert r.kept + sum(r.dropped.values()) == r.read == one.read
        assert r.dataset_hash == one.dataset_hash and _comparable(r) == _comparable(one)
        assert Path(r.quarantine_path).read_bytes() == Path(one.quarantine_path).read_bytes()
        assert reads[name] >= 3  # read in 3 or more shards, each a Prefect task run
        assert not (Path(r.quarantine_path).parent / "shards").exists()  # the files between tasks are gone
    assert reads["one"] == 0
