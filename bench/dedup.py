"""Near-dedup benchmark: this project's `NearDedup` against plain datasketch on the same documents.

    python bench/dedup.py --docs 20000 --json
    python bench/dedup.py --docs 100000 --processes 2 --json
    python bench/dedup.py --docs 20000 --hashfunc sha1     # both sides on datasketch's default hash

The corpus is English from the docstrings of the Python standard library (parsed with `ast`, so it
exists on every machine): each original document strings random docstring sentences to about
2 KB; a fifth of them get one to three copies later in the stream with words substituted, deleted
or inserted at a known rate (0.5 % to 15 %), straddling Jaccard 0.8 at word 5-grams.

Figures, each stage in a fresh spawned process so peak RSS is that stage's own:
- signatures: docs/s and MB/s per core (time in the signature calls only; the baseline's is
  `word_shingles` + `MinHash(...).update_batch` per document, as `dedup_minhash` used to do, and
  `MinHash.bulk` on the same shingles is reported beside it for reference);
  then wall-clock docs/s of `parallel_signatures` on 1 and on `--processes` workers (pool warmed
  up first, file reading included) for the parallel speed-up, with the workers' CPU time per
  document: equal figures mean the work splits without overhead, whatever the wall clock says on
  a machine where other jobs compete for the cores (`load_avg_1min` tells);
- dedup: the whole streaming run (ours: `NearDedup.stream`; baseline: query a `MinHashLSH` at the
  threshold, drop on any candidate, else insert), wall time and peak RSS;
- accuracy: pair precision and recall against exact word-5-gram Jaccard >= 0.8, exhaustive over
  every pair of a ~5,000-document sample drawn by whole duplicate groups. Ours finds pairs as the
  dedup does (shared band at the loose index threshold, then exact verification, so its precision
  is 1 by construction and recall is the figure to watch); the baseline's pairs are its LSH
  candidates at the threshold, as plain datasketch gives them.
"""

from __future__ import annotations

import argparse
import ast
import heapq
import itertools
import json
import multiprocessing
import os
import random
import re
import resource
import sys
import sysconfig
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

THRESHOLD, NUM_PERM, SHINGLE_WORDS, SEED = 0.8, 128, 5, 1
EDIT_RATES = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.15)
BUCKETS = (0.8, 0.85, 0.9, 0.95, 1.0001)


def stdlib_sentences() -> list[str]:
    """Distinct sentences of four words or more from the docstrings of the standard library's .py files."""
    root = Path(sysconfig.get_paths()["stdlib"])
    sentences = set()
    for path in sorted(root.rglob("*.py")):
        if {"site-packages", "test", "tests", "idlelib"} & set(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                for paragraph in re.split(r"\n\s*\n", ast.get_docstring(node) or ""):
                    for s in re.split(r"(?<=[.!?])\s+", " ".join(paragraph.split())):
                        if len(s.split()) >= 4:
                            sentences.add(s)
    return sorted(sentences)


def _edit(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    out = []
    for word in text.split():
        if rng.random() >= rate:
            out.append(word)
            continue
        op = rng.randrange(3)
        if op == 0:
            out.append(rng.choice(vocab))  # substitute
        elif op == 2:
            out += (word, rng.choice(vocab))  # insert
    return " ".join(out)


def write_corpus(path: Path, docs: int, seed: int, dup_fraction: float = 0.2, chars: int = 2000) -> dict[str, Any]:
    """Writes `id<TAB>group<TAB>edit rate<TAB>text` lines; a copy shares its original's group."""
    rng = random.Random(seed)
    sentences = stdlib_sentences()
    vocab = sorted({w for s in sentences for w in s.split()})
    pending: list[tuple[int, int, str, float, str]] = []  # (due position, order, group, rate, text)
    order = itertools.count()
    copies = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(docs):
            if pending and pending[0][0] <= i:
                _, _, group, rate, text = heapq.heappop(pending)
                copies += 1
            else:
                group, rate, parts, size = f"g{i}", 0.0, [], 0
                while size < chars:
                    parts.append(rng.choice(sentences))
                    size += len(parts[-1]) + 1
                text = " ".join(parts)
                if rng.random() < dup_fraction:
                    for _ in range(rng.choice((1, 1, 1, 2, 3))):
                        r = rng.choice(EDIT_RATES)
                        due = i + rng.randint(1, 2000)
                        heapq.heappush(pending, (due, next(order), group, r, _edit(text, r, rng, vocab)))
            f.write(f"d{i}\t{group}\t{rate}\t{text}\n")
    return {"sentences": len(sentences), "copies": copies}


def read_corpus(path: str) -> Iterator[tuple[str, str, float, str]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            doc_id, group, rate, text = line.rstrip("\n").split("\t", 3)
            yield doc_id, group, float(rate), text


def _hashfunc(name: str):
    import xxhash
    from datasketch.hashfunc import sha1_hash32

    return {"xxh32": xxhash.xxh32_intdigest, "sha1": sha1_hash32}[name]


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> int:
    return round(resource.getrusage(who).ru_maxrss / 1024)


def stage_signatures(path: str, hashfunc: str, processes: int) -> dict[str, Any]:
    from concurrent.futures import ProcessPoolExecutor

    from tasks.data.minhash import batched, minhash_signatures, parallel_signatures

    params = {"num_perm": NUM_PERM, "seed": SEED, "shingle_words": SHINGLE_WORDS, "hashfunc": _hashfunc(hashfunc)}
    minhash_signatures(["warm up: imports and permutation tables"], **params)
    busy, docs, size = 0.0, 0, 0
    for batch in batched((t for _, _, _, t in read_corpus(path)), 2000):
        start = time.perf_counter()
        minhash_signatures(batch, **params)
        busy += time.perf_counter() - start
        docs, size = docs + len(batch), size + sum(len(t.encode()) for t in batch)
    out = {"docs": docs, "docs_per_s": docs / busy, "mb_per_s": size / 2**20 / busy}
    walls, worker_cpu, parent_cpu = {}, {}, {}
    for p in sorted({1, processes}):
        with ProcessPoolExecutor(p, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(parallel_signatures(["warm up"] * 4 * p, p, shard_size=1, executor=pool, **params))  # start workers
            pids = list(pool._processes)  # CPU seconds per worker: what the code costs, whatever else runs here
            cpu0, own0, start = sum(map(_proc_cpu_s, pids)), time.process_time(), time.perf_counter()
            texts = (t for _, _, _, t in read_corpus(path))
            n = sum(len(s) for s in parallel_signatures(texts, p, executor=pool, **params))
            walls[p] = time.perf_counter() - start
            worker_cpu[p] = (sum(map(_proc_cpu_s, pids)) - cpu0) / n * 1e6
            parent_cpu[p] = (time.process_time() - own0) / n * 1e6
    out["parallel_docs_per_s"] = {str(p): n / w for p, w in walls.items()}
    out["parallel_speedup"] = walls[1] / walls[processes]
    out["worker_cpu_us_per_doc"] = {str(p): v for p, v in worker_cpu.items()}
    out["parent_cpu_us_per_doc"] = {str(p): v for p, v in parent_cpu.items()}
    return out


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stage_dedup(path: str, hashfunc: str, processes: int) -> dict[str, Any]:
    from tasks.data.dedup import NearDedup

    near = NearDedup(THRESHOLD, NUM_PERM, SHINGLE_WORDS, SEED, hashfunc=_hashfunc(hashfunc), processes=processes)
    start = time.perf_counter()
    records = ((doc_id, "doc", text) for doc_id, _, _, text in read_corpus(path))
    dropped = sum(not v.kept for v in near.stream(records))
    wall = time.perf_counter() - start
    report = near.report()
    near.close()
    return {
        "wall_s": wall,
        "dropped": dropped,
        "report": report,
        "peak_rss_mb": _peak_rss_mb(),
        "workers_peak_rss_mb": _peak_rss_mb(resource.RUSAGE_CHILDREN) if processes > 1 else None,
    }


def stage_baseline(path: str, hashfunc: str) -> dict[str, Any]:
    from datasketch import MinHash, MinHashLSH

    from tasks.data.dedup import word_shingles
    from tasks.data.minhash import batched

    hf = _hashfunc(hashfunc)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=hf).update_batch([b"warm up"])
    busy = lsh_busy = 0.0
    docs = size = dropped = 0
    start = time.perf_counter()
    for doc_id, _, _, text in read_corpus(path):
        t0 = time.perf_counter()
        mh = MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=hf)
        mh.update_batch(word_shingles(text, SHINGLE_WORDS))
        t1 = time.perf_counter()
        if lsh.query(mh):
            dropped += 1
        else:
            lsh.insert(doc_id, mh)
        t2 = time.perf_counter()
        busy, lsh_busy = busy + t1 - t0, lsh_busy + t2 - t1
        docs, size = docs + 1, size + len(text.encode())
    wall = time.perf_counter() - start
    bulk = 0.0  # datasketch's faster batch API, for reference: shared permutations, one copy per document
    for batch in batched((t for _, _, _, t in read_corpus(path)), 1000):
        t0 = time.perf_counter()
        MinHash.bulk([word_shingles(t, SHINGLE_WORDS) for t in batch], num_perm=NUM_PERM, seed=SEED, hashfunc=hf)
        bulk += time.perf_counter() - t0
    return {
        "docs_per_s": docs / busy,
        "mb_per_s": size / 2**20 / busy,
        "lsh_s": lsh_busy,
        "wall_s": wall,
        "dropped": dropped,
        "peak_rss_mb": _peak_rss_mb(),
        "bulk_docs_per_s": docs / bulk,
    }


def stage_accuracy(path: str, hashfunc: str, every: int) -> dict[str, Any]:
    import numpy as np
    import scipy.sparse as sp
    from datasketch import MinHash, MinHashLSH

    from tasks.data.dedup import index_threshold, jaccard, shingle_set, word_shingles
    from tasks.data.minhash import band_keys, lsh_params, minhash_signatures, normalize

    docs = [(i, t) for i, g, _, t in read_corpus(path) if zlib.crc32(g.encode()) % every == 0]
    texts = [t for _, t in docs]
    sets = [shingle_set(normalize(t), SHINGLE_WORDS) for t in texts]
    ids: dict[bytes, int] = {}
    cols = [ids.setdefault(s, len(ids)) for shingles in sets for s in shingles]
    indptr = np.cumsum([0] + [len(s) for s in sets])
    x = sp.csr_matrix((np.ones(len(cols), np.float32), cols, indptr), shape=(len(sets), len(ids)))
    inter = sp.triu(x @ x.T, k=1).tocoo()
    sizes = np.diff(indptr)
    j = inter.data / (sizes[inter.row] + sizes[inter.col] - inter.data)
    keep = j >= THRESHOLD
    truth = dict(zip(zip(inter.row[keep].tolist(), inter.col[keep].tolist()), j[keep].tolist()))

    hf = _hashfunc(hashfunc)
    bands, rows = lsh_params(index_threshold(THRESHOLD), NUM_PERM)  # what NearDedup picks
    keys = band_keys(minhash_signatures(texts, NUM_PERM, SEED, SHINGLE_WORDS, hf), bands, rows)
    cands = set()
    for b in range(bands):
        groups: dict[int, list[int]] = {}
        for i, k in enumerate(keys[:, b].tolist()):
            groups.setdefault(k, []).append(i)
        cands.update((a, c) for g in groups.values() if len(g) > 1 for n, a in enumerate(g) for c in g[n + 1 :])
    ours = {p for p in cands if jaccard(sets[p[0]], sets[p[1]]) >= THRESHOLD}

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    mhs = []
    for i, text in enumerate(texts):
        mhs.append(MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=hf))
        mhs[-1].update_batch(word_shingles(text, SHINGLE_WORDS))
        lsh.insert(i, mhs[-1])
    base = {(min(i, k), max(i, k)) for i, mh in enumerate(mhs) for k in lsh.query(mh) if k != i}

    def score(pred: set) -> dict[str, Any]:
        hit = sum(p in truth for p in pred)
        by_bucket = {}
        for lo, hi in zip(BUCKETS, BUCKETS[1:]):
            inside = [p for p, v in truth.items() if lo <= v < hi]
            share = sum(p in pred for p in inside) / len(inside) if inside else None
            by_bucket[f"{lo:.2f}-{min(hi, 1):.2f}"] = None if share is None else round(share, 4)
        return {
            "precision": hit / len(pred) if pred else 1.0,
            "recall": hit / len(truth) if truth else 1.0,
            "predicted_pairs": len(pred),
            "recall_by_jaccard": by_bucket,
        }

    return {
        "sample_docs": len(texts),
        "true_pairs": len(truth),
        "candidate_pairs": len(cands),
        "ours": score(ours),
        "baseline": score(base),
    }


def _child(fn_name: str, kwargs: dict, out: str) -> None:
    result = globals()[fn_name](**kwargs)
    Path(out).write_text(json.dumps(result))


def run_stage(fn_name: str, workdir: Path, **kwargs) -> dict[str, Any]:
    """Runs one stage in a fresh spawned process: its peak RSS is its own, not the benchmark's."""
    out = workdir / f"{fn_name}.json"
    proc = multiprocessing.get_context("spawn").Process(target=_child, args=(fn_name, kwargs, str(out)))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"stage {fn_name} failed with exit code {proc.exitcode}")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=1, help="workers for the parallel and dedup figures")
    parser.add_argument("--sample", type=int, default=5000, help="documents in the exhaustive accuracy sample")
    parser.add_argument("--hashfunc", choices=("xxh32", "sha1"), default="xxh32", help="shingle hash, both sides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus.tsv"
        start = time.perf_counter()
        info = write_corpus(corpus, args.docs, args.seed)
        corpus_s = time.perf_counter() - start
        common = {"path": str(corpus), "hashfunc": args.hashfunc}
        sig = run_stage("stage_signatures", work, processes=args.processes, **common)
        ours = run_stage("stage_dedup", work, processes=args.processes, **common)
        base = run_stage("stage_baseline", work, **common)
        acc = run_stage("stage_accuracy", work, every=max(1, args.docs // args.sample), **common)
        mb = corpus.stat().st_size / 2**20

    report = ours["report"]
    figures = {
        "docs": args.docs,
        "corpus_mb": round(mb, 1),
        "injected_copies": info["copies"],
        "hashfunc": args.hashfunc,
        "processes": args.processes,
        "cpus": os.cpu_count(),
        "docs_per_s": round(sig["docs_per_s"]),
        "mb_per_s": round(sig["mb_per_s"], 2),
        "baseline_docs_per_s": round(base["docs_per_s"]),
        "baseline_mb_per_s": round(base["mb_per_s"], 2),
        "speedup": round(sig["docs_per_s"] / base["docs_per_s"], 2),
        "baseline_bulk_docs_per_s": round(base["bulk_docs_per_s"]),
        "speedup_vs_bulk": round(sig["docs_per_s"] / base["bulk_docs_per_s"], 2),
        "parallel_docs_per_s": {p: round(v) for p, v in sig["parallel_docs_per_s"].items()},
        "parallel_speedup": round(sig["parallel_speedup"], 2),
        "worker_cpu_us_per_doc": {p: round(v, 1) for p, v in sig["worker_cpu_us_per_doc"].items()},
        "parent_cpu_us_per_doc": {p: round(v, 1) for p, v in sig["parent_cpu_us_per_doc"].items()},
        "wall_s": round(ours["wall_s"], 2),
        "baseline_wall_s": round(base["wall_s"], 2),
        "baseline_lsh_s": round(base["lsh_s"], 2),
        "dropped": ours["dropped"],
        "baseline_dropped": base["dropped"],
        "peak_rss_mb": ours["peak_rss_mb"],
        "workers_peak_rss_mb": ours["workers_peak_rss_mb"],
        "baseline_peak_rss_mb": base["peak_rss_mb"],
        "index_bytes_per_kept_doc": report["index_bytes_per_kept_row"],
        "bands": report["bands"],
        "rows": report["rows"],
        "index_threshold": report["index_threshold"],
        "pairs_verified": report["pairs_verified"],
        "rejected_by_verification": report["rejected_by_verification"],
        "clusters": report["clusters"],
        "sample_docs": acc["sample_docs"],
        "true_pairs": acc["true_pairs"],
        "precision": round(acc["ours"]["precision"], 4),
        "recall": round(acc["ours"]["recall"], 4),
        "baseline_precision": round(acc["baseline"]["precision"], 4),
        "baseline_recall": round(acc["baseline"]["recall"], 4),
        "recall_by_jaccard": acc["ours"]["recall_by_jaccard"],
        "baseline_recall_by_jaccard": acc["baseline"]["recall_by_jaccard"],
        "corpus_s": round(corpus_s, 1),
        "load_avg_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],  # other work on this machine
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
