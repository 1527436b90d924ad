"""Input drift: which text each row contributes, how references resolve, the statistics, and the verdict.

The statistics are checked on numbers worked by hand or on synthetic vectors whose drift is known;
the verdict runs the real embedding model on the project's own prompts (and, when ../shared/data is
there, on real HH prompts).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from configs.schema import DriftConfig
from core.errors import UserError
from tasks.data.demo import write_demo_data
from tasks.data.records import Row
from tasks.drift import stats
from tasks.drift.check import check_drift
from tasks.drift.texts import prompt_text, read_texts, resolve_reference, sample

BUNDLED = Path(__file__).resolve().parents[2] / "tasks" / "evaluate" / "data"


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# --- which text a row contributes --------------------------------------------------------------


def test_prompt_text_is_what_the_model_is_asked():
    chat = Row(
        "a", "sft", {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}
    )
    assert prompt_text(chat) == "Hi?"
    multi = Row(
        "b",
        "sft",
        {
            "messages": [
                {"role": "user", "content": "Q1"},
                {"role": "assistant", "content": "A1"},
                {"role": "user", "content": "Q2"},
                {"role": "assistant", "content": "A2"},
            ]
        },
    )
    assert prompt_text(multi) == "Human: Q1\nAssistant: A1\nHuman: Q2"  # as formats renders an HH prompt
    logged = Row("c", "sft", {"messages": [{"role": "user", "content": "only a question"}]})
    assert prompt_text(logged) == "only a question"
    assert prompt_text(Row("d", "pref", {"prompt": "P", "chosen": "C", "rejected": "R"})) == "P"
    assert prompt_text(Row("e", "text", {"text": "plain"})) == "plain"
    assert prompt_text(Row("f", "sft", {"messages": [{"role": "assistant", "content": "no question"}]})) is None
    assert prompt_text(Row("g", "sft", {"messages": [{"role": "user", "content": 3}]})) is None


def test_every_row_read_is_used_sampled_out_or_dropped_with_a_reason(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(40)
    ]
    rows += [
        '{"messages": [',
        {"messages": [{"role": "assistant", "content": "no user"}]},
        {"messages": [{"role": "user", "content": "   "}]},
    ]
    path = _jsonl(tmp_path / "mixed.jsonl", rows)
    texts = read_texts(str(path), max_rows=25, seed=3, what="current")
    s = texts.summary()
    assert s["read"] == 43 and s["usable"] == 40 and s["used"] == 25 and s["sampled_out"] == 15
    assert s["dropped"] == {"bad_json": 1, "empty_prompt": 1, "no_prompt": 1}
    assert s["read"] == s["usable"] + sum(s["dropped"].values())
    numbers = [int(t.split()[1]) for t in texts.texts]
    assert numbers == sorted(numbers)  # the sample keeps file order
    assert read_texts(str(path), max_rows=25, seed=3, what="current").texts == texts.texts


def test_reservoir_sample_is_uniform_enough_and_seeded():
    counts = np.zeros(20)
    for seed in range(400):
        picked, n = sample((str(i) for i in range(20)), 5, seed)
        assert n == 20 and len(picked) == 5
        counts[[int(p) for p in picked]] += 1
    assert counts.min() > 60 and counts.max() < 140  # expected 100 each
    assert sample(iter(["a", "b"]), 5, 0) == (["a", "b"], 2)


# --- resolving a reference ---------------------------------------------------------------------


def _dataset(folder: Path, prompts: list[str]) -> Path:
    folder.mkdir(parents=True)
    _jsonl(
        folder / "sft.jsonl",
        [
            {"id": str(i), "messages": [{"role": "user", "content": p}, {"role": "assistant", "content": "ok"}]}
            for i, p in enumerate(prompts)
        ],
    )
    (folder / "pref.jsonl").write_text("")
    return folder


def test_a_reference_is_a_file_a_dataset_folder_its_hash_or_latest(tmp_path):
    curated = tmp_path / "curated"
    first = _dataset(curated / "run1" / "dataset-aaaa1111bbbb2222", ["one"])
    second = _dataset(curated / "run2" / "dataset-aaaa9999cccc0000", ["two"])
    assert resolve_reference(str(first), curated) == [first / "sft.jsonl", first / "pref.jsonl"]
    assert resolve_reference(str(first.parent), curated) == [first / "sft.jsonl", first / "pref.jsonl"]
    assert resolve_reference("aaaa1111", curated) == [first / "sft.jsonl", first / "pref.jsonl"]
    assert resolve_reference("dataset-aaaa9999cc", curated)[0] == second / "sft.jsonl"
    import os

    os.utime(first, (1_000, 1_000))  # the first dataset is the older one
    assert resolve_reference("latest", curated)[0] == second / "sft.jsonl"
    assert read_texts(str(second), 10, 0, curated).texts == ["two"]  # the empty pref.jsonl is fine


@pytest.mark.parametrize(
    "reference,message",
    [
        ("aaaa", "no such file or folder"),
        ("aaaa11", "matches 2 curated datasets"),
        ("ffffff00", "no curated dataset with that hash"),
    ],
)
def test_a_reference_that_names_nothing_says_what_to_pass(tmp_path, reference, message):
    curated = tmp_path / "curated"
    _dataset(curated / "r1" / "dataset-aaaa1111bbbb2222", ["one"])
    _dataset(curated / "r2" / "dataset-aaaa1199cccc0000", ["two"])
    with pytest.raises(UserError, match=message) as err:
        resolve_reference(reference, curated)
    assert str(err.value).startswith(f"reference {reference}:") and "\n" not in str(err.value)


def test_a_current_set_must_be_a_readable_file(tmp_path):
    with pytest.raises(UserError, match=r"^current nope\.jsonl: no such file or folder; pass a JSONL"):
        read_texts("nope.jsonl", 10, 0, None, what="current")
    odd = _jsonl(tmp_path / "odd.jsonl", [{"foo": 1}, {"bar": 2}])
    with pytest.raises(UserError, match="cannot be read as rows"):
        read_texts(str(odd), 10, 0, None, what="current")
    with pytest.raises(UserError, match="no curated dataset found"):
        resolve_reference("latest", tmp_path / "none")


# --- the statistics ----------------------------------------------------------------------------


def test_psi_against_a_hand_computation():
    r, c = [0.5, 0.3, 0.2], [0.3, 0.3, 0.4]
    by_hand = (0.3 - 0.5) * math.log(0.3 / 0.5) + 0 + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert stats.psi(r, c) == pytest.approx(by_hand) == pytest.approx(0.2408, abs=1e-4)
    assert stats.psi(r, r) == 0.0
    assert stats.psi([1.0, 0.0], [0.5, 0.5]) > 0  # an empty bin is floored, not log(0)


def test_length_and_category_psi():
    ref = list(range(1, 101))
    same = stats.length_psi(ref, ref, bins=4)
    assert same["psi"] == pytest.approx(0.0) and len(same["reference"]) == 4
    assert same["reference"] == pytest.approx([0.25] * 4)
    longer = stats.length_psi(ref, [x + 1000 for x in ref], bins=4)
    assert longer["current"] == [0.0, 0.0, 0.0, 1.0] and longer["psi"] > 2
    langs = stats.category_psi(["en"] * 195 + ["fr"] * 4 + ["xx"], ["en"] * 50 + ["de"] * 50)
    assert langs["categories"] == ["en", "fr", "other"]  # under 1 % of the reference pools into other
    assert langs["current"] == pytest.approx([0.5, 0.0, 0.5]) and langs["psi"] > 1


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _blobs(rng, centres: np.ndarray, n: int, spread: float = 0.3) -> np.ndarray:
    picks = centres[rng.integers(len(centres), size=n)]
    return _unit(picks + spread * rng.normal(size=picks.shape) / np.sqrt(picks.shape[1]))


def test_mmd_and_far_share_see_a_shift_and_not_noise():
    rng = np.random.default_rng(0)
    centres = _unit(rng.normal(size=(6, 32)))
    reference, same = _blobs(rng, centres, 400), _blobs(rng, centres, 150)
    other = _blobs(rng, _unit(rng.normal(size=(3, 32))), 150)
    calm = stats.mmd_permutation_test(reference, same, permutations=300, seed=1)
    shifted = stats.mmd_permutation_test(reference, other, permutations=300, seed=1)
    assert calm["p_value"] > 0.05 and shifted["p_value"] == pytest.approx(1 / 301)
    # six topics sampled in other proportions move the mean a little; other topics move it a lot
    assert stats.centroid_distance(reference, same) < 0.1 < 0.9 < stats.centroid_distance(reference, other)
    assert stats.centroid_distance(reference, reference) == pytest.approx(0.0, abs=1e-6)
    near = stats.far_share(reference, same, clusters=6, quantile=0.95)
    assert near["share"] < 0.12 and near["expected"] == pytest.approx(0.05)
    assert stats.far_share(reference, other, clusters=6, quantile=0.95)["share"] > 0.9
    subsampled = stats.mmd_permutation_test(reference, same, permutations=99, max_rows=50)
    assert subsampled["rows_reference"] == subsampled["rows_current"] == 50


def test_kmeans_finds_well_separated_clusters():
    rng = np.random.default_rng(2)
    centres = np.eye(8)[:4]
    x = _blobs(rng, centres, 200, spread=0.1)
    found = stats.kmeans(x, 4, seed=0)
    assert sorted(np.argmax(found @ centres.T, axis=1).tolist()) == [0, 1, 2, 3]
    assert np.allclose(np.linalg.norm(found, axis=1), 1.0)


# --- the verdict, with the real embedding model ----------------------------------------------------


@pytest.fixture(scope="module")
def demo_questions(tmp_path_factory) -> dict[str, str]:
    """Arithmetic questions from two seeds (same distribution), and the bundled JSON and safety prompts (another)."""
    root = tmp_path_factory.mktemp("drift")
    a = write_demo_data(root / "a", 0, 10, 10, 120)  # clean questions: the train file holds canary and PII rows
    b = write_demo_data(root / "b", 1, 10, 10, 60)
    other = [
        {"text": json.loads(line)["question"]}
        for name in ("json_format.jsonl", "safety_probes.jsonl")
        for line in (BUNDLED / name).read_text().splitlines()
        if line.strip()
    ]
    return {
        "reference": a["eval"],
        "same": b["eval"],
        "other": str(_jsonl(root / "other.jsonl", other)),
        "cache": str(root / "embeddings"),
    }


@pytest.mark.slow
def test_same_distribution_passes_and_another_domain_is_flagged(demo_questions):
    cfg = DriftConfig(max_rows=80, permutations=300)
    calm, _ = check_drift(demo_questions["reference"], demo_questions["same"], cfg, cache_dir=demo_questions["cache"])
    assert not calm.flagged and calm.reasons == []
    assert {c.name for c in calm.checks} == {
        "centroid_distance",
        "mmd_p_value",
        "length_psi",
        "language_psi",
        "far_share",
    }
    drifted, arrays = check_drift(
        demo_questions["reference"], demo_questions["other"], cfg, cache_dir=demo_questions["cache"]
    )  # the reference sample is embedded once
    assert drifted.flagged and "embedding shift" in drifted.reasons and "share far from training" in drifted.reasons
    assert arrays["current"].shape == (50, 384)
    ref = drifted.reference
    assert ref["read"] == 120 and ref["used"] == 80 and ref["sampled_out"] == 40 and ref["dropped"] == {}
    table = drifted.table()
    assert "verdict: DRIFT" in table and "BREACHED" in table and "0.0200" in table
    metrics = drifted.metrics()
    assert metrics["drift.flagged"] == 1.0 and metrics["drift.rows_current"] == 50.0
    assert drifted.thresholds["max_far_share"] == cfg.max_far_share
    json.dumps(drifted.to_dict())  # the stored result is plain JSON


def test_too_few_current_rows_are_refused(demo_questions, tmp_path):
    few = _jsonl(tmp_path / "few.jsonl", [{"text": f"prompt {i}"} for i in range(5)])
    with pytest.raises(UserError, match=r"has 5 usable rows .* drift needs at least 30"):
        check_drift(demo_questions["reference"], str(few), DriftConfig())


@pytest.mark.slow
def test_real_hh_prompts_split_in_two_pass_and_arithmetic_prompts_are_flagged(shared_data, demo_questions, tmp_path):
    import gzip

    lines = gzip.open(shared_data / "hh_harmless_sample.jsonl.gz", "rt", encoding="utf-8").read().splitlines()
    reference = _jsonl(tmp_path / "hh_ref.jsonl", lines[:100])
    current = _jsonl(tmp_path / "hh_cur.jsonl", lines[900:940])
    cfg = DriftConfig(max_rows=100, permutations=300)
    calm, _ = check_drift(str(reference), str(current), cfg, cache_dir=tmp_path)
    assert not calm.flagged, calm.table()
    drifted, _ = check_drift(str(reference), demo_questions["same"], cfg, cache_dir=tmp_path)
    assert drifted.flagged and len(drifted.reasons) >= 2, drifted.table()
