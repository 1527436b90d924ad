"""The same dataset however curation is split (issue #13): worker processes, shards, or both, on
`tests/curation_corpus.py`. Each split must give the same dataset hash, the same quarantine byte
for byte, the same report counts, and kept + dropped = read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from configs.schema import CurateConfig
from tasks.data.curate import curate_dataset
from tasks.data.pipeline import CHUNK_ROWS
from tasks.data.shards import run_all_shards
from tests.curation_corpus import PII_TWINS, eval_file, write_corpus


def _comparable(result) -> dict:
    return {k: v for k, v in result.report.items() if k not in ("step_figures", "processes", "shards")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parallel")
    inputs = write_corpus(folder)
    settings = CurateConfig(quality={"max_drop_fraction": 1.0})
    evals = [eval_file(folder, inputs)]
    one = curate_dataset(inputs, str(folder / "one"), settings, evals)
    return folder, inputs, settings, evals, one


def _texts(result) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_table(Path(result.dataset_dir) / "text.parquet").column("text").to_pylist()


def test_the_corpus_exercises_what_splitting_could_break(corpus):
    folder, inputs, settings, evals, one = corpus
    assert one.read > 2 * CHUNK_ROWS
    assert {"exact_duplicate", "near_duplicate", "bad_json", "too_short", "eval_contamination"} <= set(one.dropped)
    assert one.kept + sum(one.dropped.values()) == one.read
    texts = _texts(one)
    # Both twins of each pair are kept, and masked after dedup into the same text.
    assert texts.count(PII_TWINS[0][0].replace("alice.moreau@example.com", "[EMAIL]")) == 2
    assert texts.count(PII_TWINS[1][0].replace("(555) 201-4477", "[PHONE]")) == 2
    # Masking before dedup (what sharding used to do) would drop one twin of each pair.
    steps = ["validate", "pii", "exact_dedup", "near_dedup", "length", "quality", "decontaminate"]
    masked_first = curate_dataset(
        inputs, str(folder / "masked-first"), settings.model_copy(update={"steps": steps}), evals
    )
    assert masked_first.dropped["exact_duplicate"] == one.dropped["exact_duplicate"] + 2
    assert masked_first.dataset_hash != one.dataset_hash


@pytest.mark.parametrize(("processes", "shards"), [(2, 1), (1, 2), (1, 3), (2, 2)], ids=["p2", "s2", "s3", "p2s2"])
def test_processes_and_shards_give_the_same_dataset(corpus, processes, shards):
    folder, inputs, settings, evals, one = corpus
    split = settings.model_copy(update={"processes": processes, "shards": shards})
    out = str(folder / f"p{processes}s{shards}")
    if shards == 1:
        other = curate_dataset(inputs, out, split, evals)
    else:
        other = run_all_shards(inputs, shards, split, evals, out)
    assert other.kept + sum(other.dropped.values()) == other.read == one.read
    assert other.dataset_hash == one.dataset_hash
    assert Path(other.quarantine_path).read_bytes() == Path(one.quarantine_path).read_bytes()
    assert _comparable(other) == _comparable(one)
    assert [f["step"] for f in other.report["step_figures"]] == [f["step"] for f in one.report["step_figures"]]
    assert [f["rows_in"] for f in other.report["step_figures"]] == [f["rows_in"] for f in one.report["step_figures"]]
