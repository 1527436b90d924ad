"""What every curation worker process needs, loaded once by the process that forks them.

`tasks.data.pipeline.run_local` starts its workers from a fork server that imports this module
first: the language model (about half a second), the toxicity screen's folding table and word
list automaton (about as long), the repetition rules' character classes, near dedup's banding,
and the libraries the steps import. Each worker is then a fork of a process that already holds
them (shared, copy-on-write), instead of a fresh interpreter that loads them again: with spawned
workers, `processes: 2` cost about 1.5 CPU-seconds per worker before its first row. The fork
server stays up for later runs of the same process (a Prefect worker that curates many times pays
it once). Importing this module anywhere else only costs time.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: a forked worker is one thread of work

import tasks.data.decontaminate  # noqa: E402,F401
import tasks.data.dedup  # noqa: E402,F401
from configs.schema import CurateConfig  # noqa: E402
from tasks.data import pipeline, steps  # noqa: E402,F401
from tasks.data.language import _model  # noqa: E402
from tasks.data.pipeline import with_banding  # noqa: E402
from tasks.data.repetition import _tables  # noqa: E402
from tasks.data.toxicity import load_lexicon  # noqa: E402

_model()
load_lexicon()
_tables()  # the repetition rules' character classes and powers
with_banding(CurateConfig())  # the default banding, cached by lsh_params
