"""Hostile inputs to `llmops curate` (issue #9): each case of the issue through the real CLI, in a
subprocess with its own LLMOPS_HOME, and the library parts (per-row formats, the unreadable tail,
the reading cap, the drop-share stop) on small files."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from configs.schema import CurateConfig
from tasks.data.curate import curate_dataset
from tasks.data.faults import CurationStopped
from tasks.data.formats import misfit_detail, row_format
from tasks.data.read import UnreadableInput, count_records, probe_input, read_rows
from tasks.data.records import Ledger
from tasks.data.shard_schedule import run_all_shards

ROOT = Path(__file__).resolve().parents[2]
CHAT = [
    {"role": "user", "content": "Which river runs through the old town, and why does it flood in spring?"},
    {
        "role": "assistant",
        "content": "The river Wend runs through it; melting snow from the hills swells it every spring.",
    },
]


def _sentence(i: int) -> str:
    return f"Row {i} of the file describes how the farmer counts the apples in the wooden basket near the barn."


def _jsonl(path: Path, objs: list[dict]) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(o) + "\n" for o in objs)
    return path


def _mixed_rows() -> list[dict]:
    rows = []
    for i in range(6):
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"Tell me about row {i} and the farmer's apples."},
                    {"role": "assistant", "content": _sentence(i)},
                ]
            }
        )
        rows.append({"instruction": f"Describe the basket in row {i} in one sentence.", "output": _sentence(i + 100)})
        rows.append(
            {
                "prompt": f"Where does the farmer keep the apples of row {i}?",
                "chosen": f"In a wooden basket near the barn, as row {i} says.",
                "rejected": f"In the river, which row {i} never says.",
            }
        )
    rows.append({"label": 3, "body": "a record in no training format"})
    return rows


# --------------------------------------------------------------------------- the CLI, per case


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """One LLMOPS_HOME for this module's CLI runs (not the session's): Prefect and MLflow set up once."""
    return tmp_path_factory.mktemp("faults-home")


def _curate(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "LLMOPS_HOME": str(home),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", "curate", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )


def _one_error(out: subprocess.CompletedProcess, names: str) -> str:
    """Exit code 2, exactly one `error:` line and it names the input, no traceback, no Prefect ERROR line."""
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "| ERROR" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and names in errors[0], out.stderr
    return errors[0]


def _report(out_dir: Path) -> dict:
    report = json.loads((out_dir / "report.json").read_text())
    assert report["read"] == report["kept"] + sum(report["dropped"].values()) + report["unreadable_rows"]
    return report


@pytest.mark.slow
def test_cli_truncated_gzip_keeps_the_rows_before_the_break(home, tmp_path):
    whole = gzip.compress("".join(json.dumps({"id": f"r{i}", "messages": CHAT}) + "\n" for i in range(400)).encode())
    src = tmp_path / "cut.jsonl.gz"
    src.write_bytes(whole[: len(whole) // 2])
    out = _curate(home, "--input", str(src), "--output", str(tmp_path / "out"))
    line = _one_error(out, str(src))
    assert "EOFError" in line and "allow_unreadable" in line and str(tmp_path / "out" / "report.json") in line
    report = _report(tmp_path / "out")
    assert report["read"] > 1 and report["unreadable_rows"] == 1  # the record the break cut in two
    assert [u["path"] for u in report["unreadable"]] == [str(src)]
    assert report["kept"] + report["dropped"].get("exact_duplicate", 0) == report["read"] - 1


@pytest.mark.slow
def test_cli_binary_file_fails_at_once_and_debug_shows_the_traceback(home, tmp_path):
    src = tmp_path / "weights.bin"
    src.write_bytes(bytes(range(256)) * 64)
    assert "give a .jsonl" in _one_error(_curate(home, "--input", str(src)), str(src))
    debug = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "--debug", "curate", "--input", str(src)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={"PATH": os.environ["PATH"], "LLMOPS_HOME": str(home), "PYTHONPATH": str(ROOT)},
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "weights.bin" in debug.stderr


@pytest.mark.slow
def test_cli_folder_that_is_not_a_dataset(home, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes(b"PAR1")
    line = _one_error(_curate(home, "--input", str(folder)), str(folder))
    assert "save_to_disk" in line and "part-0.parquet" in line


@pytest.mark.slow
def test_cli_parquet_with_unknown_columns(home, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "metrics.parquet"
    pq.write_table(pa.table({"label": [1, 2], "body": ["a", "b"]}), src)
    line = _one_error(_curate(home, "--input", str(src)), str(src))
    assert "['body', 'label']" in line and "--format" in line


@pytest.mark.slow
@pytest.mark.parametrize("split", ["curate.processes=2", "curate.shards=2"], ids=["processes2", "shards2"])
def test_cli_unreadable_input_beside_good_ones_at_any_split(home, tmp_path, split):
    """A bad input among good ones, curated on two worker processes or in two shards: the good rows
    are curated and accounted for, then one `error:` line names the bad input, exit 2."""
    good = _jsonl(tmp_path / "good.jsonl", [{"text": _sentence(i)} for i in range(2500)] + [{"text": _sentence(7)}])
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x00\x01\x02")
    out = _curate(home, "--input", str(good), "--input", str(bad), "--output", str(tmp_path / "out"), "--set", split)
    line = _one_error(out, str(bad))
    assert "allow_unreadable" in line
    report = _report(tmp_path / "out")
    assert report["read"] == 2501 and report["kept"] == 2500 and report["dropped"] == {"exact_duplicate": 1}
    assert report["processes" if "processes" in split else "shards"] == 2


@pytest.fixture(scope="module")
def allowed_run(home, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, dict[str, Path]]:
    """The three cases curation lets through (exit 0), in one CLI run: each run of the CLI starts
    a Prefect server and MLflow, tens of seconds on a busy 2-core machine, and these cases do not
    interact (each test below looks at its own input only)."""
    folder = tmp_path_factory.mktemp("allowed")
    huge = folder / "huge.jsonl"
    with open(huge, "w") as f:
        f.write(json.dumps({"text": _sentence(1)}) + "\n")
        f.write('{"text": "' + "word " * 10_000_000 + '"}\n')  # a 50 MB line
        f.write(json.dumps({"text": _sentence(2)}) + "\n")
    empty = folder / "empty.jsonl"
    empty.write_text("")
    inputs = {"huge": huge, "mixed": _jsonl(folder / "mixed.jsonl", _mixed_rows()), "empty": empty}
    out = _curate(home, *[a for p in inputs.values() for a in ("--input", str(p))], "--output", str(folder / "out"))
    assert out.returncode == 0 and "Traceback" not in out.stderr and "error:" not in out.stderr, out.stderr
    return out, folder / "out", inputs


@pytest.mark.slow
def test_cli_one_50_mb_line_is_too_long_and_the_rest_is_kept(allowed_run):
    out, folder, inputs = allowed_run
    report = _report(folder)
    assert report["sources"][str(inputs["huge"])] == {"format": "text", "formats": {"text": 2}, "read": 3, "kept": 2}
    assert report["dropped_by_step"]["read"]["too_long"] == 1
    quarantined = [
        q for q in map(json.loads, (folder / "quarantine.jsonl").read_text().splitlines()) if q["reason"] == "too_long"
    ]
    assert [q["id"] for q in quarantined] == ["huge.jsonl:2"] and len(quarantined[0]["row"]) < 2000  # its first bytes
    assert "a line of 50,000,013 bytes, over the 128,000-byte reading cap" in quarantined[0]["detail"]


@pytest.mark.slow
def test_cli_mixed_formats_keep_every_valid_row(allowed_run):
    out, folder, inputs = allowed_run
    report = _report(folder)
    mixed = str(inputs["mixed"])
    assert report["formats"][mixed] == {"messages": 6, "alpaca": 6, "pref": 6} and report["format"][mixed] == "mixed"
    assert report["sources"][mixed]["read"] == 19 and report["sources"][mixed]["kept"] == 18
    assert report["dropped"]["format_unknown"] == 1 and report["pref_rows"] == 6 and report["sft_rows"] == 12
    assert "mixed (auto-detected per row: messages 6, alpaca 6, pref 6)" in out.stdout


@pytest.mark.slow
def test_cli_empty_file_warns_naming_it(allowed_run):
    out, folder, inputs = allowed_run
    warnings = [line for line in out.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and f"{inputs['empty']}: holds no rows" in warnings[0]
    assert _report(folder)["warnings"] == [
        f"{inputs['empty']}: holds no rows (an empty file?); nothing was curated from it"
    ]
    assert f"warning: {inputs['empty']}: holds no rows" in out.stdout


@pytest.mark.slow
def test_cli_a_rule_that_drops_too_much_of_gsm8k_stops_the_run(home, tmp_path, shared_data):
    """C4's terminal-punctuation rule as it was (half the lines must end in . ! ?, a number ends
    none) drops 37% of GSM8K's question + solution texts; that the calibrated defaults keep them
    is tested on the same rows in test_data_quality.py, without a CLI run."""
    rows = [json.loads(line) for line in (shared_data / "gsm8k_train_sample.jsonl").read_text().splitlines()]
    src = _jsonl(tmp_path / "gsm8k_text.jsonl", [{"text": r["question"] + "\n" + r["answer"]} for r in rows])
    old = [
        "--set",
        "curate.quality.min_terminal_punct_ratio=0.5",
        "--set",
        "curate.quality.terminal_punct_numbers=false",
    ]
    out = _curate(home, "--input", str(src), "--output", str(tmp_path / "stopped"), *old)
    line = _one_error(out, "gsm8k_text.jsonl")
    assert line.startswith("error: quality rule c4_terminal_punct: dropped 186 of the 500 rows it saw")
    assert "(37.2%)" in line and "max_drop_fraction=0.2" in line and line.count("[gsm8k_text.jsonl:") == 3
    assert "--set curate.quality.min_terminal_punct_ratio=... (now 0.5)" in line
    assert str(tmp_path / "stopped" / "quarantine.jsonl") in line  # the copy under --output
    stopped = _report(tmp_path / "stopped")
    assert stopped["quality"]["rules"]["c4_terminal_punct"] == {"seen": 500, "dropped": 186, "fraction": 0.372}


# --------------------------------------------------------------------------- the library


# Linux keeps a process's peak RSS across exec, and a child forked from this test process starts
# with the test process's own (over 1 GB late in a full run). So a small launcher runs the
# curation and reads its child's peak: what the curation itself reached.
LAUNCHER = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run([sys.executable, '-c', *sys.argv[1:]], capture_output=True, text=True)\n"
    "print(done.stdout + done.stderr)\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
)


def test_peak_memory_on_a_50_mb_line_stays_bounded(tmp_path):
    src = tmp_path / "huge.jsonl"
    with open(src, "w") as f:
        f.write('{"text": "' + "word " * 10_000_000 + '"}\n' + json.dumps({"text": _sentence(1)}) + "\n")
    code = (
        "import json, sys\nfrom configs.schema import CurateConfig\nfrom tasks.data.curate import curate_dataset\n"
        "r = curate_dataset([sys.argv[1]], sys.argv[2], CurateConfig())\n"
        "print(json.dumps({'dropped': r.dropped, 'kept': r.kept}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, code, str(src), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    *printed, last = out.stdout.strip().splitlines()
    returncode, peak_mb = last.split()
    assert returncode == "0", out.stdout
    assert json.loads(printed[0]) == {"dropped": {"too_long": 1}, "kept": 1}
    assert float(peak_mb) < 500, out.stdout  # about 250 MB here, the same as for a one-row file


def test_each_row_is_read_as_the_format_it_fits(tmp_path):
    rows = _mixed_rows()
    assert [row_format(r) for r in rows[:3]] == ["messages", "alpaca", "pref"] and row_format(rows[-1]) is None
    assert (
        misfit_detail({"question": "What?"})
        == "keys ['question'] fit no format; closest is qa, which also needs ['answer']"
    )
    src = _jsonl(tmp_path / "mixed.jsonl", rows)
    ledger = Ledger(tmp_path / "q.jsonl")
    kept = list(ledger.count_kept(read_rows(src, ledger)))
    ledger.close()
    assert ledger.formats == {str(src): {"messages": 6, "alpaca": 6, "pref": 6}}
    assert [r.kind for r in kept[:3]] == ["sft", "sft", "pref"] and ledger.dropped == {"format_unknown": 1}
    assert json.loads((tmp_path / "q.jsonl").read_text())["reason"] == "format_unknown"
    forced = Ledger()
    assert [r.kind for r in read_rows(src, forced, "pref")] == ["pref"] * 6  # an explicit format reads every row as it
    assert forced.formats == {str(src): {"pref": 19}} and forced.dropped == {"missing_field": 13}


def test_a_broken_gzip_keeps_its_head_and_records_its_tail(tmp_path):
    whole = gzip.compress("".join(json.dumps({"text": _sentence(i)}) + "\n" for i in range(3000)).encode())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    ledger = Ledger()
    rows = list(ledger.count_kept(read_rows(cut, ledger)))
    ledger.check_balance()  # read = kept + dropped + unreadable rows
    assert 0 < len(rows) < 3000 and ledger.read == len(rows) + 1 and ledger.unreadable_rows == 1
    assert [u["path"] for u in ledger.unreadable] == [str(cut)] and "EOFError" in ledger.unreadable[0]["reason"]
    assert count_records(cut) == ledger.read  # shards of it count the same records
    middle = len(whole) // 2
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(whole[:middle] + bytes(b ^ 0xFF for b in whole[middle : middle + 64]) + whole[middle + 64 :])
    ledger = Ledger()
    rows = list(ledger.count_kept(read_rows(corrupt, ledger)))
    ledger.check_balance()
    assert len(rows) > 1000 and [u["path"] for u in ledger.unreadable] == [str(corrupt)]
    head = tmp_path / "head.jsonl.gz"
    head.write_bytes(whole[:10] + bytes(b ^ 0xFF for b in whole[10:64]) + whole[64:])
    with pytest.raises(UnreadableInput, match="breaks"):  # broken before its first row: nothing to keep
        probe_input(head)


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("plain.jsonl.gz", b'{"text": "hi"}\n', "is named .gz but is not gzip-compressed"),
        ("packed.jsonl", gzip.compress(b'{"text": "hi"}\n', mtime=0), "rename it to packed.jsonl.gz"),
        ("utf16.jsonl", '{"text": "hi"}\n'.encode("utf-16"), "NUL bytes"),
        ("broken.parquet", b"not parquet at all", "no PAR1 header"),
        ("notes.txt", b"hello\n", "is a .txt file"),
    ],
    ids=["plain.jsonl.gz", "packed.jsonl", "utf16.jsonl", "broken.parquet", "notes.txt"],
)  # stable ids: xdist workers must collect the same names
def test_files_of_the_wrong_kind_are_refused_by_name(tmp_path, name, data, says):
    src = tmp_path / name
    src.write_bytes(data)
    with pytest.raises(UnreadableInput, match=says) as err:
        probe_input(src)
    assert str(err.value).startswith(f"{src}: ")


def test_unreadable_inputs_are_reported_the_rest_curated_then_the_run_stops(tmp_path):
    good = _jsonl(tmp_path / "good.jsonl", [{"text": _sentence(i)} for i in range(3)])
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x00\x01")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    inputs = [str(good), str(bad), str(empty)]
    with pytest.raises(CurationStopped, match=r"model\.bin: is a \.bin file") as err:
        curate_dataset(inputs, str(tmp_path / "a"), CurateConfig())
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report == err.value.result.report
    assert report["kept"] == 3 and report["unreadable"][0]["path"] == str(bad)
    allowed = curate_dataset(inputs, str(tmp_path / "b"), CurateConfig(allow_unreadable=True))
    assert allowed.kept == 3 and allowed.report["warnings"] == [
        f"{empty}: holds no rows (an empty file?); nothing was curated from it",
        f"{bad}: is a .bin file, which curate cannot read (skipped: curate.allow_unreadable is true)",
    ]
    # Sharded, the same inputs give the same accounting.
    merged = run_all_shards(inputs, 2, CurateConfig(allow_unreadable=True), [], str(tmp_path / "c"))
    assert {k: merged.report[k] for k in ("read", "kept", "unreadable", "warnings", "formats")} == {
        k: allowed.report[k] for k in ("read", "kept", "unreadable", "warnings", "formats")
    }


def test_a_rule_over_its_drop_share_stops_with_the_rule_examples_and_key(tmp_path):
    rows = [{"id": f"ok{i}", "text": _sentence(i)} for i in range(60)]
    rows += [
        {"id": f"js{i}", "text": f"Please enable JavaScript in your browser to see part {i} of this page."}
        for i in range(20)
    ]
    src = _jsonl(tmp_path / "site.jsonl", rows)
    with pytest.raises(CurationStopped) as err:
        curate_dataset([str(src)], str(tmp_path / "a"), CurateConfig())
    message = str(err.value)
    assert message.startswith("quality rule c4_javascript: dropped 20 of the 80 rows it saw in site.jsonl (25.0%)")
    assert "[site.jsonl js0] 'Please enable JavaScript" in message and "[site.jsonl js2]" in message
    assert "js3" not in message and "curate.quality.c4_javascript=... (now True)" in message
    assert "\n" not in message and err.value.result.report["quality"]["rules"]["c4_javascript"]["fraction"] == 0.25
    assert curate_dataset([str(src)], str(tmp_path / "b"), CurateConfig(quality={"max_drop_fraction": 0.3})).report[
        "dropped"
    ] == {"c4_javascript": 20}
    few = _jsonl(tmp_path / "few.jsonl", rows[55:65])  # 5 of 10: too few rows to judge a rule by
    assert curate_dataset([str(few)], str(tmp_path / "c"), CurateConfig()).dropped == {"c4_javascript": 5}


def test_prefect_reports_of_user_errors_are_filtered_and_others_kept():
    import logging

    from llmops.home import UserErrorLogFilter

    def record(msg: str, exc: BaseException | None = None) -> logging.LogRecord:
        info = (type(exc), exc, None) if exc else None
        return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, msg, None, info)

    stop = CurationStopped("quality rule x", "dropped", "relax it", {})
    f = UserErrorLogFilter()
    assert not f.filter(record("Encountered exception during execution: %r", stop))
    assert not f.filter(record("Finished in state Failed('Flow run encountered an exception: CurationStopped: q')"))
    assert not f.filter(record("Finished in state Failed('Task run encountered an exception UnreadableInput: x')"))
    assert f.filter(record("Encountered exception during execution", RuntimeError("a bug")))
    assert f.filter(record("Finished in state Failed('Flow run encountered an exception: KeyError: 1')"))


def test_debug_takes_the_filter_off_prefects_run_loggers():
    import logging

    from llmops.home import RUN_LOGGERS, UserErrorLogFilter, quiet_libraries

    def filtered() -> list[bool]:
        return [any(isinstance(f, UserErrorLogFilter) for f in logging.getLogger(n).filters) for n in RUN_LOGGERS]

    try:
        quiet_libraries(debug=True)
        assert filtered() == [False, False]
    finally:
        quiet_libraries()
    assert filtered() == [True, True]
