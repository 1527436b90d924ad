"""Progress of a long curation where no terminal draws a bar (a log file, CI, a Prefect worker):
`llmops curate` with its output piped, on an input that takes well over 10 s, must print plain
lines with the figures and `rows/s`, the first at the start, then at most one every 10 s, then
one when it is done; the dataset hash stays the last line of stdout."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"curate: ([\d,]+) rows .*?([\d,]+) rows/s, kept ([\d,]+), dropped ([\d,]+), (\d+):(\d\d):(\d\d) elapsed"
)


def _corpus(path: Path, docs: int) -> None:
    """~2 KB text rows from a few thousand random sentences (fast to write, slow enough to curate)."""
    rng = random.Random(7)
    words = [
        f"{a}{b}" for a in ("ta", "ro", "mi", "ne", "su", "ka", "lo", "pe") for b in ("n", "s", "th", "r", "ld", "")
    ]
    words += ["the", "and", "of", "to", "with", "that", "have", "be"] * 4
    sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 18))).capitalize() + "." for _ in range(4000)]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(docs):
            text = " ".join(rng.choice(sentences) for _ in range(22))
            f.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")


def test_plain_progress_lines_without_a_terminal(tmp_path):
    src = tmp_path / "corpus.jsonl"
    _corpus(src, 40_000)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "LLMOPS_HOME": str(tmp_path / "home"),
        "LLMOPS_PREFECT_SERVER": "ephemeral",
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "curate", "--input", str(src)]
        + ["--set", "curate.processes=1", "--set", "curate.quality.max_drop_fraction=1.0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [m for m in map(LINE.search, (out.stdout + out.stderr).splitlines()) if m]
    elapsed = [int(h) * 3600 + int(m) * 60 + int(s) for *_, h, m, s in (x.groups() for x in lines)]
    assert elapsed[-1] > 10, "the run was too short to test the interval: give the test a larger corpus"
    assert len(lines) >= 3  # the first, at least one on the way, and the last
    assert all(b - a >= 9 for a, b in zip(elapsed[:-2], elapsed[1:-1]))  # at most one every 10 s (whole seconds)
    rows = [int(x.group(1).replace(",", "")) for x in lines]
    assert rows == sorted(rows) and rows[-1] == 40_000 and 0 < rows[1] < 40_000
    report_line = json.loads(
        Path(tmp_path / "home").joinpath("data", "curated").glob("*/report.json").__next__().read_text()
    )
    final = lines[-1].groups()
    assert int(final[2].replace(",", "")) == report_line["kept"] and int(final[3].replace(",", "")) == sum(
        report_line["dropped"].values()
    )
    assert out.stdout.splitlines()[-1] == f"dataset {report_line['dataset_hash']}"
