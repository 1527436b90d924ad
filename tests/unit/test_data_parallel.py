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
from tasks.data.shard_schedule import run_all_shards
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
    parquet = sorted(p.name for p in Path(one.dataset_dir).glob("*.parquet"))
    assert parquet == sorted(p.name for p in Path(other.dataset_dir).glob("*.parquet")) and len(parquet) >= 2
    for name in parquet:  # shards render their own rows: the same files
        assert (Path(other.dataset_dir) / name).read_bytes() == (Path(one.dataset_dir) / name).read_bytes()


def test_rendered_parts_write_the_files_rows_written_one_by_one_write(tmp_path):
    """Parts of every size between rows written one by one, all three kinds: the same JSONL, the
    same Parquet row groups of PARQUET_BATCH_ROWS, the same hash."""
    from contextlib import ExitStack

    from tasks.data.records import Row
    from tasks.data.write import PARQUET_BATCH_ROWS, DatasetWriter, render_rows

    def row(i: int) -> Row:
        kind = ("text", "sft", "pref")[i % 7 % 3]
        data = {
            "text": {"text": f"document {i} é"},
            "sft": {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]},
            "pref": {"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}", "synthetic": i % 2 == 0},
        }[kind]
        return Row(f"r{i}", kind, data, source=f"s{i % 3}")

    rows = [row(i) for i in range(7000)]
    sizes = [1, 300, 1023, 1024, 1025, 0, 2, 2047, 700]
    files = {}
    for name, split in (("one", False), ("parts", True)):
        folder = tmp_path / name
        folder.mkdir()
        with ExitStack() as stack:
            writer, at = DatasetWriter(folder, stack), 0
            for k, size in enumerate(sizes * 2):
                piece, at = rows[at : at + size], at + size
                if split and k % 2:
                    writer.write_rendered(render_rows(piece))
                else:
                    for r in piece:
                        writer.write(r)
            for r in rows[at:]:
                writer.write(r)
            files[name] = (writer.finish(), dict(writer.rows), writer.synthetic)
            files[name] += tuple((folder / f).read_bytes() for f in ("sft.jsonl", "pref.jsonl"))
        files[name] += tuple((folder / f"{k}.parquet").read_bytes() for k in ("sft", "pref", "text"))
    assert files["one"] == files["parts"]
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(tmp_path / "parts" / "text.parquet").metadata
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert groups[:-1] == [PARQUET_BATCH_ROWS] * (len(groups) - 1) and len(groups) > 1


@pytest.mark.parametrize(
    "steps",
    [
        ["validate", "length", "exact_dedup"],
        ["validate", "exact_dedup", "length", "near_dedup", "pii"],
        ["validate", "near_dedup", "exact_dedup", "decontaminate"],
    ],
    ids=["dedup-last", "dedup-between-rows", "near-then-exact"],
)
def test_shards_give_one_process_dataset_in_other_step_orders(corpus, steps):
    """The dedup tasks decide from keys and the shards apply the decisions later: when dedup ends
    the steps (the merge applies them), between row steps, and in either order."""
    folder, inputs, settings, evals, _ = corpus
    ordered = settings.model_copy(update={"steps": steps})
    name = "-".join(s[:3] for s in steps)
    one = curate_dataset(inputs, str(folder / f"one-{name}"), ordered, evals)
    other = run_all_shards(inputs, 3, ordered, evals, str(folder / f"s3-{name}"))
    assert {"exact_duplicate", "near_duplicate"} & set(one.dropped)
    assert other.dataset_hash == one.dataset_hash
    assert Path(other.quarantine_path).read_bytes() == Path(one.quarantine_path).read_bytes()
    assert _comparable(other) == _comparable(one)
    assert [(f["step"], f["rows_in"], f["rows_out"]) for f in other.report["step_figures"]] == [
        (f["step"], f["rows_in"], f["rows_out"]) for f in one.report["step_figures"]
    ]
