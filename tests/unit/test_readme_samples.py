"""docs/samples.py, which writes the README's `make run` sample from a real run: what it keeps of the
run's output, what it writes as `…`, and that it rewrites that block and nothing else. Whether the
README's block is what the nightly prints: tests/flows/test_nightly.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "samples.py"


def samples():
    spec = importlib.util.spec_from_file_location("llmops_docs_samples", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN_ID = "97ac90a8fc8d46258612bc7d4923ddd8"
STDOUT = f"""{{'loss': '5.639', 'epoch': '0.1081'}}

== nightly finished ==
                   candidate       base
arithmetic/bleu        0.614      0.015
registry: tiny-arith v1 -> promote
MLflow parent run: {RUN_ID}  (tracking: sqlite:////tmp/home-x/mlflow.db)
"""


def test_the_sample_is_the_summary_with_the_run_id_and_the_home_written_as_ellipses():
    s = samples()
    block = s.normalise(s.summary_of(STDOUT), "/tmp/home-x")
    assert block.splitlines()[0] == "== nightly finished =="
    assert "'loss'" not in block and RUN_ID not in block and "home-x" not in block
    assert block.splitlines()[-1] == "MLflow parent run: …  (tracking: sqlite:///…/.llmops/mlflow.db)"


def test_only_the_block_after_the_marker_is_rewritten():
    s = samples()
    readme = s.README.read_text()
    block = s.readme_block(readme)
    assert block.startswith("== nightly finished ==\n") and "MLflow parent run: …" in block
    assert s.with_block(readme, block) == readme
    changed = s.with_block(readme, "== nightly finished ==\nnew")
    assert s.readme_block(changed) == "== nightly finished ==\nnew"
    before, after = readme.split(block)
    assert changed == before + "== nightly finished ==\nnew" + after


def test_shape_keeps_names_and_layout_and_forgets_digits_and_signs():
    s = samples()
    assert s.shape("bleu    0.614  delta +0.280 [-0.166, +0.391]") == s.shape(
        "bleu    0.015  delta -0.001 [+0.000, +0.002]"
    )
    assert s.shape("bleu    0.614") != s.shape("bleu   0.6140")
    assert s.shape("arithmetic/bleu 0.614") != s.shape("arithmetic/rouge 0.614")
