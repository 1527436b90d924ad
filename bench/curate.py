"""Curation benchmark: `llmops curate`'s default steps on generated ~2 KB documents, and datatrove's
nearest equivalent pipeline on the same documents in the same run.

    python bench/curate.py --docs 20000 --json                     # ours (1 and 2 processes), datatrove, Dask
    python bench/curate.py --docs 1000000 --baseline none --dask-workers 0 --json
    python bench/curate.py --docs 100000 --processes 1 --baseline none --shards 16 --json   # Dask 1 vs 2

Run heavy ones under `flock /tmp/llmops-heavy.lock` on a shared machine. Each measurement runs in a
fresh process, so its CPU time (its own and its workers', from getrusage) and peak RSS are its own.

The corpus is `bench/dedup.py`'s: English sentences from the standard library's docstrings strung
into ~2 KB documents, a fifth of them copied later with words edited (near and exact duplicates);
the eval split the rows are decontaminated against is the demo's. Figures, per run:
- `ours`: the default steps and thresholds (`curate.quality.max_drop_fraction=1.0`, so the run
  reports instead of stopping on generated text), language ID on, docs per CPU-second end to end,
  per step rows in/out, CPU seconds and rows/s (report.json's `step_figures`), wall time, peak RSS
  of the main process and of the largest worker; with `--processes 1,2` once per count, and the
  dataset hash of each (they must agree).
- `comparison`: ours and datatrove on equal terms, one process each: language ID off on both (its
  fastText model is a download), Gopher's quality rules on in ours as in datatrove; datatrove runs
  MinHash dedup (signatures, buckets, clusters, filter), Gopher repetition and quality, C4 and its
  PII formatter (`bench/datatrove_pipeline.py`, in `--datatrove-python`'s venv). `ratio_per_core`
  is ours over datatrove in docs per CPU-second.
- `dask`: a sharded curation (`tasks.data.shard_schedule.curate_shards`, as the flow runs it) on a
  local Dask cluster of 1, then `--dask-workers` worker processes, `--shards` shards each time,
  the workers warm (models loaded, as in a cluster that runs for more than one curation): wall
  seconds (workers started with `infra/dask/dask.yaml`'s settings, as infra/dask/README.md says),
  the speed-up, the dataset hash (the same as one process), each task kind's busy
  seconds, and the CPU seconds of the workers and of this process (the scheduler, the loop that
  starts each task, the merge). `cores_busy` is their sum over the wall time; one worker keeps
  more than one core busy, so on this machine the speed-up cannot pass `speedup_ceiling`
  (the cores over one worker's `cores_busy`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu() -> float:
    """CPU seconds of this process, of the children it waited for, and of every descendant still
    alive with what it waited for: curation's workers are forked by a fork server, which is this
    process's child and outlives the pool."""
    import psutil

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


class PeakRss:
    """Samples the resident memory of this process and of all its descendants, summed, twice a second
    (pages shared by forked workers count once per process: an upper bound)."""

    def __init__(self):
        import threading

        self.peak = self.main_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.5):
            total = main = me.memory_info().rss
            for p in me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak, self.main_peak = max(self.peak, total), max(self.main_peak, main)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict[str, int]:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        return {"peak_rss_mb": max(own, self.main_peak >> 20), "peak_rss_all_processes_mb": max(own, self.peak >> 20)}


def write_corpus(work: Path, docs: int) -> tuple[Path, Path]:
    """The documents as JSONL ({"id", "text"}) and a demo eval split; kept between runs."""
    from bench.dedup import read_corpus
    from bench.dedup import write_corpus as write_tsv
    from tasks.data.demo import write_demo_data

    path = work / f"docs-{docs}.jsonl"
    if not path.exists():
        tsv = work / f"docs-{docs}.tsv"
        write_tsv(tsv, docs, seed=0)
        with open(path.with_suffix(".part"), "w", encoding="utf-8") as f:
            for doc_id, _, _, text in read_corpus(str(tsv)):
                f.write(json.dumps({"id": doc_id, "text": text}) + "\n")
        path.with_suffix(".part").rename(path)
        tsv.unlink()
    eval_path = Path(write_demo_data(work / "demo", 0, 10, 4, 48)["eval"])
    return path, eval_path


def _settings(processes: int, comparison: bool, shards: int = 1):
    from configs.schema import CurateConfig

    quality = {"max_drop_fraction": 1.0}
    if comparison:
        quality |= {"language_enabled": False, "gopher_enabled": True}
    return CurateConfig(processes=processes, shards=shards, quality=quality)


# --------------------------------------------------------------------------- child processes


def child_ours(args) -> dict:
    from tasks.data.curate import curate_dataset

    settings = _settings(args.processes, args.comparison)
    start_cpu, start = _cpu(), time.perf_counter()
    with PeakRss() as rss:
        result = curate_dataset([args.input], args.out, settings, [args.eval])
    cpu, wall = _cpu() - start_cpu, time.perf_counter() - start
    return {
        "processes": args.processes,
        "docs": result.read,
        "kept": result.kept,
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "docs_per_cpu_s": round(result.read / cpu),
        **rss.figures(),
        "dataset_hash": result.dataset_hash[:16],
        "steps": {
            f["step"]: {k: f[k] for k in ("rows_in", "rows_out", "cpu_s", "rows_per_s")}
            for f in result.report["step_figures"]
        },
    }


def child_dask(args) -> dict:
    """The flow's sharded plan, with the same library functions, submitted to a local Dask cluster."""
    import dask.config
    import yaml
    from dask.utils import key_split
    from distributed import Client, LocalCluster, get_task_stream

    from tasks.data import shard_schedule as sched
    from tasks.data import shards as sh

    settings = _settings(1, False, shards=args.shards)
    evals = [args.eval]
    # The workers as infra/dask/README.md starts them: with infra/dask/dask.yaml's settings.
    dask.config.update(dask.config.config, yaml.safe_load((ROOT / "infra" / "dask" / "dask.yaml").read_text()))
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            local_directory=str(Path(args.out) / "dask"),
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(importlib.import_module, "tasks.data.warm")  # workers up and warm (models loaded) first
        workers_cpu = client.run(_own_cpu)
        start, start_cpu = time.perf_counter(), time.process_time()
        with get_task_stream(client) as stream:
            specs = sh.plan_shards([args.input], settings.shards, settings.format)
            result = sched.curate_shards(specs, settings, evals, args.out, sched.OnDask(client))
        wall, driver_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        workers_cpu = sum(cpu - workers_cpu[w] for w, cpu in client.run(_own_cpu).items())
    busy: dict[str, float] = {}
    for item in stream.data:
        name = key_split(item["key"])
        busy[name] = busy.get(name, 0.0) + sum(
            s["stop"] - s["start"] for s in item["startstops"] if s["action"] == "compute"
        )
    return {
        "workers": args.workers,
        "shards": settings.shards,
        "docs": result.read,
        "wall_s": round(wall, 2),
        "task_busy_s": {name: round(s, 2) for name, s in sorted(busy.items())},  # summed over the workers
        # CPU seconds of the worker processes, and of this one (the scheduler, the loop that starts
        # each task, the merge); over the wall time, the cores the run kept busy
        "workers_cpu_s": round(workers_cpu, 2),
        "driver_cpu_s": round(driver_cpu, 2),
        "cores_busy": round((workers_cpu + driver_cpu) / wall, 2),
        "dataset_hash": result.dataset_hash[:16],
    }


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _spawn(argv: list[str], python: str = sys.executable) -> dict:
    out = subprocess.run([python, *argv], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed:\n{out.stderr[-3000:]}")
    print(out.stdout.strip().splitlines()[-1], file=sys.stderr, flush=True)  # each run as it ends
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--processes", default="1,2", help="process counts for the default-steps runs (1,2)")
    parser.add_argument("--baseline", choices=["datatrove", "none"], default="datatrove")
    parser.add_argument("--datatrove-python", default=str(ROOT / ".venv-datatrove" / "bin" / "python"))
    parser.add_argument("--dask-workers", type=int, default=2, help="0: no Dask runs")
    parser.add_argument("--shards", type=int, default=8, help="shards of the Dask runs (both worker counts)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "llmops-bench-curate"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", choices=["ours", "dask"], help=argparse.SUPPRESS)
    for name in ("--input", "--eval", "--out"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--comparison", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.processes = int(args.processes.split(",")[0])
        print(json.dumps(child_ours(args) if args.child == "ours" else child_dask(args)))
        return

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus, eval_path = write_corpus(work, args.docs)
    me = str(Path(__file__).resolve())
    base = [me, "--input", str(corpus), "--eval", str(eval_path)]

    def out(name: str) -> str:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
        return str(path)

    figures: dict = {"docs": args.docs, "input_mb": round(corpus.stat().st_size / 2**20, 1), "cpus": os.cpu_count()}
    figures["load_avg_1min"] = round(os.getloadavg()[0], 2)
    figures["ours"] = [
        _spawn([*base, "--child", "ours", "--processes", p, "--out", out(f"ours-p{p}")])
        for p in args.processes.split(",")
    ]
    if args.baseline == "datatrove":
        mine = _spawn([*base, "--child", "ours", "--processes", "1", "--comparison", "--out", out("ours-cmp")])
        theirs = _spawn(
            [str(ROOT / "bench" / "datatrove_pipeline.py"), "--input", str(corpus), "--work", out("datatrove")],
            python=args.datatrove_python,
        )
        theirs["docs_per_cpu_s"] = round(theirs["docs"] / theirs["cpu_s"], 1)
        figures["comparison"] = {
            "ours": {k: mine[k] for k in ("docs", "kept", "cpu_s", "wall_s", "docs_per_cpu_s", "peak_rss_mb")},
            "datatrove": theirs,
            "ratio_per_core": round(mine["docs_per_cpu_s"] / theirs["docs_per_cpu_s"], 1),
        }
    if args.dask_workers:
        runs = [
            _spawn(
                [*base, "--child", "dask", "--workers", str(w), "--shards", str(args.shards), "--out", out(f"dask-{w}")]
            )
            for w in (1, args.dask_workers)
        ]
        speedup = runs[0]["wall_s"] / runs[1]["wall_s"]
        # One worker already keeps more than one core busy (its dedup thread, the scheduler, the
        # merge): on a machine of `cpus` cores the speed-up cannot pass cpus / that.
        ceiling = min(args.dask_workers, os.cpu_count() or 1) / runs[0]["cores_busy"]
        figures["dask"] = {"runs": runs, "speedup": round(speedup, 2), "speedup_ceiling": round(ceiling, 2)}
    figures["load_avg_1min_after"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(figures))
    else:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
