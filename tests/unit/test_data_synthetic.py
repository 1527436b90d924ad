"""Synthetic variants: the tiny local model and a loopback OpenAI-compatible stub as teachers, real MLflow prompts."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from configs.schema import TinyModelConfig
from configs.synthetic import SyntheticConfig
from tasks.data.records import Ledger, Row
from tasks.data.synthetic import (
    TEMPLATES,
    HttpTeacher,
    LocalTeacher,
    TeacherError,
    generate_variants,
    local_template_versions,
    make_teacher,
    synthesize,
)

QUESTIONS = {
    "s1": "Tom has 3 apples. Tom gets 4 more apples. How many apples does Tom have now?",
    "s2": "Ana had 9 coins and gave 2 to a friend. How many coins are left?",
    "s3": "There are 5 books in a box. Leo puts in 2 more. How many books are in the box?",
}
ANSWERS = {
    "s1": "3 + 4 = 7. The answer is 7.",
    "s2": "9 - 2 = 7. The answer is 7.",
    "s3": "5 + 2 = 7. The answer is 7.",
}


def _seeds() -> list[Row]:
    rows = [
        Row(
            id=i,
            kind="sft",
            data={"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ANSWERS[i]}]},
            source="train.jsonl",
        )
        for i, q in QUESTIONS.items()
    ]
    rows.insert(1, Row(id="p1", kind="pref", data={"prompt": "a", "chosen": "b", "rejected": "c"}))  # not a seed
    return rows


def _balanced(ledger: Ledger, yielded: int) -> bool:
    return ledger.read == yielded + sum(ledger.dropped.values())


# --------------------------------------------------------------------------- local teacher


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from tasks.model.tiny import build_tiny_model

    cfg = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, pretrain_steps=5, vocab_size=400)
    return str(build_tiny_model(cfg, tmp_path_factory.mktemp("models")))


def _run_local(folder: str, seed: int) -> tuple[list[Row], Ledger, Counter]:
    cfg = SyntheticConfig(
        enabled=True,
        teacher=f"local:{folder}",
        operations=["rephrase", "harder"],
        variants_per_seed=2,
        max_new_tokens=12,
        seed=seed,
    )
    teacher = LocalTeacher(folder, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed)
    ledger, counts = Ledger(), Counter()
    rows = list(generate_variants(_seeds(), cfg, teacher, {"rephrase": 2, "harder": 5}, ledger, counts))
    return rows, ledger, counts


def test_local_teacher_variants_are_marked_deterministic_and_accounted(tiny_model):
    rows, ledger, counts = _run_local(tiny_model, seed=3)
    again, _, _ = _run_local(tiny_model, seed=3)
    other, _, _ = _run_local(tiny_model, seed=4)

    assert counts["seeds"] == 3 and counts["seeds_skipped"] == 1
    assert counts["generated"] == ledger.read == 3 * 2 * 2  # seeds x operations x variants
    assert _balanced(ledger, len(rows)) and counts["yielded"] == len(rows)
    assert rows, "the tiny model should produce at least one usable rephrasing"
    assert [(r.id, r.data) for r in rows] == [(r.id, r.data) for r in again]
    assert [r.data for r in rows] != [r.data for r in other]  # the seed reaches the sampler
    for row in rows:
        marker = row.data["synthetic"]
        op, seed_id, k = row.id.removeprefix("syn-").split("-")
        assert marker == {
            "teacher": f"local:{tiny_model}",
            "operation": op,
            "template": {"rephrase": "synth-rephrase/2", "harder": "synth-harder/5"}[op],
            "seed_id": seed_id,
        }
        assert row.source == "synthetic" and row.kind == "sft" and k in ("0", "1")
        if op == "rephrase":  # the answer is kept
            assert row.data["messages"][1]["content"] == ANSWERS[seed_id]


# ---------------------------------------------------------------------------- HTTP teacher


def _reply(prompt: str) -> str:
    """Canned completions: s1 is rephrased unchanged, s2 well, s3 to nothing; 'harder' parses, 'simpler' does not."""
    if prompt.startswith("Rewrite"):
        if QUESTIONS["s1"] in prompt:
            return "  " + QUESTIONS["s1"].upper()
        if QUESTIONS["s2"] in prompt:
            return 'Instruction: "Ana gives 2 of her 9 coins away. How many does she keep?"'
        return ""
    if prompt.startswith("Write a harder"):
        return "Sure.\nInstruction: Tom has 3 boxes of 4 apples and eats 2. How many are left?\nAnswer: 3 * 4 - 2 = 10."
    return "I would rather not."


class _Stub(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        state = self.server.state  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state["requests"].append({"path": self.path, "auth": self.headers.get("Authorization"), "json": body})
        status = state["script"].pop(0) if state["script"] else 200
        if status != 200:
            payload = json.dumps({"error": {"message": "busy"}}).encode()
            self.send_response(status)
            self.send_header("Retry-After", "0")
        else:
            content = _reply(body["messages"][0]["content"])
            payload = json.dumps(
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
            ).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.state = {"requests": [], "script": []}  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _http_cfg(server, **kw) -> SyntheticConfig:
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    return SyntheticConfig(
        enabled=True,
        teacher=f"http:{base}",
        api_model="teacher-model",
        api_key_env="SYNTH_TEST_KEY",
        max_new_tokens=40,
        temperature=0.5,
        **kw,
    )


def test_http_teacher_request_shape_retry_and_parsing(stub, monkeypatch):
    monkeypatch.setenv("SYNTH_TEST_KEY", "sk-test-123")
    stub.state["script"] = [503]  # the first request is refused once, then retried
    cfg = _http_cfg(stub, operations=["rephrase", "harder", "simpler"], variants_per_seed=2)
    ledger, counts = Ledger(), Counter()
    versions = {"rephrase": 1, "harder": 3, "simpler": 2}
    rows = list(generate_variants(_seeds(), cfg, make_teacher(cfg), versions, ledger, counts))

    requests = stub.state["requests"]
    assert len(requests) == 3 * 3 * 2 + 1  # seeds x operations x variants, plus the retry
    assert requests[0]["json"] == requests[1]["json"]
    first = requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test-123"
    assert first["json"] == {
        "model": "teacher-model",
        "temperature": 0.5,
        "max_tokens": 40,
        "seed": 0,
        "messages": [{"role": "user", "content": TEMPLATES["rephrase"].replace("{{instruction}}", QUESTIONS["s1"])}],
    }
    assert [r["json"]["seed"] for r in requests[1:3]] == [0, 1]  # copies of one prompt differ by seed

    by_id = {r.id: r for r in rows}
    assert sorted(by_id) == [
        "syn-harder-s1-0",
        "syn-harder-s1-1",
        "syn-harder-s2-0",
        "syn-harder-s2-1",
        "syn-harder-s3-0",
        "syn-harder-s3-1",
        "syn-rephrase-s2-0",
        "syn-rephrase-s2-1",
    ]
    assert by_id["syn-rephrase-s2-0"].data["messages"] == [
        {"role": "user", "content": "Ana gives 2 of her 9 coins away. How many does she keep?"},
        {"role": "assistant", "content": ANSWERS["s2"]},
    ]
    assert by_id["syn-harder-s1-0"].data == {
        "messages": [
            {"role": "user", "content": "Tom has 3 boxes of 4 apples and eats 2. How many are left?"},
            {"role": "assistant", "content": "3 * 4 - 2 = 10."},
        ],
        "synthetic": {"teacher": cfg.teacher, "operation": "harder", "template": "synth-harder/3", "seed_id": "s1"},
    }
    assert ledger.dropped == Counter(synthetic_unparsable=6, synthetic_unchanged=2, synthetic_empty=2)
    assert counts["generated"] == ledger.read == 18 and _balanced(ledger, len(rows))


def test_http_teacher_errors_name_the_url_and_status(stub):
    url = f"http://127.0.0.1:{stub.server_address[1]}/v1"
    stub.state["script"] = [401]
    with pytest.raises(TeacherError, match=r"POST http://127\.0\.0\.1:\d+/v1/chat/completions returned HTTP 401"):
        HttpTeacher(url, "m", "k", backoff_s=0).complete(["hi"])
    assert len(stub.state["requests"]) == 1  # a 401 is not retried

    stub.state["script"] = [503, 429]
    with pytest.raises(TeacherError, match="failed after 2 attempts; last error: HTTP 429"):
        HttpTeacher(url, "m", None, max_retries=1, backoff_s=0).complete(["hi"])
    assert stub.state["requests"][-1]["auth"] is None  # no key, no header


# --------------------------------------------------------------------- registry and the hook


def test_templates_register_once_in_mlflow():
    from registry.prompts import load_prompt_template
    from registry.prompts import register_synthetic_templates as register_templates

    first = register_templates(["rephrase", "harder", "simpler"])
    assert register_templates(["rephrase", "harder", "simpler"]) == first and set(first) == {
        "rephrase",
        "harder",
        "simpler",
    }
    for op, version in first.items():
        assert load_prompt_template(f"synth-{op}", version) == TEMPLATES[op]


def test_synthesize_appends_variants_after_the_real_rows(stub):
    cfg = _http_cfg(stub, operations=["rephrase"])
    existing = [Row(id="x", kind="sft", data={"messages": []})]
    ledger, counts = Ledger(), Counter()
    rows = list(ledger.count_kept(synthesize(_seeds(), iter(existing), cfg, ledger, counts=counts)))
    ledger.read += len(existing)  # what the reader would have counted
    ledger.check_balance()
    assert [r.id for r in rows] == ["x", "syn-rephrase-s2-0"]
    assert (
        rows[1].data["synthetic"]["template"] == f"synth-rephrase/{local_template_versions(['rephrase'])['rephrase']}"
    )

    off = cfg.model_copy(update={"enabled": False})
    assert list(synthesize(_seeds(), iter(existing), off, Ledger(), teacher=None)) == existing


def test_config_names_every_problem():
    with pytest.raises(ValidationError) as err:
        SyntheticConfig(enabled=True, teacher="http:api.example.com", operations=["rephrase", "rephrase"])
    message = str(err.value)
    assert "must start with http://" in message and "api_model" in message and "without repeats" in message
    with pytest.raises(ValidationError, match="not 'local:"):
        SyntheticConfig(enabled=True, teacher="openai")
    with pytest.raises(ValidationError, match="api_key"):
        SyntheticConfig(api_key="sk-...")  # extra keys are refused: the key itself never goes in a config
    assert not SyntheticConfig().enabled
