"""Signatures from the vectorised MinHash serve datasketch's MinHashLSH on Redis storage, the index a
team shares between many workers. A real redis-server on a loopback port, started for the test."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from tasks.data.minhash import minhash_signatures, to_datasketch

redis = pytest.importorskip("redis", reason="the redis client is a test extra: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it with apt-get)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_lsh_on_redis_finds_near_duplicates_from_our_signatures(redis_port):
    from datasketch import MinHashLSH

    words = (
        "shared indexes let many curation workers see the same band buckets so a near duplicate "
        "found by one worker is never kept by another worker later in the night"
    ).split()
    docs = {"a": " ".join(words), "b": " ".join(words) + " again", "c": "a completely different sentence about pears"}
    sigs = minhash_signatures(list(docs.values()), num_perm=128, seed=1, shingle_words=3)
    storage = {"type": "redis", "basename": b"llmops-test", "redis": {"host": "127.0.0.1", "port": redis_port}}
    writer = MinHashLSH(threshold=0.7, num_perm=128, storage_config=storage)
    for key, sig in zip(("a", "c"), (sigs[0], sigs[2])):
        writer.insert(key, to_datasketch(sig, seed=1))
    assert redis.Redis(host="127.0.0.1", port=redis_port).keys(b"llmops-test*")  # the bands live in Redis
    reader = MinHashLSH(threshold=0.7, num_perm=128, storage_config=storage)  # another worker, same index
    assert reader.query(to_datasketch(sigs[1], seed=1)) == ["a"]
    assert reader.query(to_datasketch(sigs[2], seed=1)) == ["c"]
