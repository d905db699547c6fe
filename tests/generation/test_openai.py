"""The openai backend against a REAL OpenAI-compatible server: vLLM's, started here on 127.0.0.1
with the tiny student. Failures vLLM cannot be made to produce on demand (HTTP 500, a body that
is not JSON) come from a small real HTTP server on loopback that always answers badly."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from iterkd.generation import GenerationError, Message, Prompt, Sample, SamplingParams, generate
from iterkd.generation.openai_api import OpenAIBackend

MODEL = "tiny-student"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_models: Path) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1",
               VLLM_ENABLE_V1_MULTIPROCESSING="0", OMP_NUM_THREADS="1")  # fmt: skip
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model",
        str(tiny_models / "student"), "--served-model-name", MODEL, "--host", "127.0.0.1",
        "--port", str(port), "--max-model-len", "1024", "--dtype", "float32", "--enforce-eager",
        "--kv-cache-memory-bytes", str(256 << 20), "--seed", "0",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def _wait_until_up(url: str, process: subprocess.Popen, limit_s: float = 240) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vllm server exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("vllm server did not come up")


def chats(count: int) -> list[Prompt]:
    return [
        Prompt(id=f"c{i}", messages=(Message(role="user", content="def k(a):\n" * (i + 1)),))
        for i in range(count)
    ]


def test_chat_samples_are_reproducible_with_their_seed(server: str) -> None:
    backend = OpenAIBackend([server], MODEL, max_concurrency=4)
    params = SamplingParams(n=2, max_new_tokens=12, seed=5)
    first, report = generate(backend, chats(4), params)
    second, _ = generate(backend, list(reversed(chats(4))), params)
    assert report.generated == 4 and report.engine_calls == 4
    assert {k: [s.text for s in v] for k, v in first.items()} == {
        k: [s.text for s in v] for k, v in second.items()
    }
    assert all(s.prompt_tokens > 0 and s.completion_tokens > 0 for s in first["c0"])


def test_completions_mode_and_max_tokens(server: str) -> None:
    backend = OpenAIBackend([server], MODEL, mode="completions")
    results, report = generate(
        backend, [Prompt(id="t", text="def f(x):\n")], SamplingParams(n=3, max_new_tokens=6)
    )
    assert len(results["t"]) == 3 and report.hit_max_tokens == sum(
        s.finish_reason == "length" for s in results["t"]
    )


def test_requests_are_spread_over_endpoints(server: str) -> None:
    replica = server.replace("127.0.0.1", "localhost")  # the same server under a second URL
    backend = OpenAIBackend([server, replica], MODEL, max_concurrency=2)
    generate(backend, chats(8), SamplingParams(n=1, max_new_tokens=8))
    assert sum(backend.served.values()) == 8 and min(backend.served.values()) >= 2


def test_a_dead_endpoint_fails_clearly_after_retries() -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAIBackend([dead], MODEL, max_retries=2, backoff_s=0.01)
    with pytest.raises(
        GenerationError,
        match=r"after 3 attempts; last: http://127\.0\.0\.1:\d+/v1: APIConnectionError",
    ):
        generate(backend, chats(1), SamplingParams(max_new_tokens=4))


class BadServer(http.server.BaseHTTPRequestHandler):
    hits = 0
    answer: tuple[int, bytes] = (500, b'{"error": "boom"}')

    def do_POST(self) -> None:
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, body = self.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bad_server() -> Iterator[tuple[str, type[BadServer]]]:
    handler = type("Handler", (BadServer,), {"hits": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler
    httpd.shutdown()


@pytest.mark.parametrize(
    ("answer", "message"),
    [((500, b'{"error": "boom"}'), "HTTP 500"), ((200, b"{not json"), "JSONDecodeError")],
    ids=["http-500", "malformed-json"],
)
def test_server_errors_are_retried_then_reported(bad_server, answer, message: str) -> None:
    url, handler = bad_server
    handler.answer = answer
    backend = OpenAIBackend([url], MODEL, max_retries=2, backoff_s=0.01)
    with pytest.raises(GenerationError, match=message):
        generate(backend, chats(1), SamplingParams(max_new_tokens=4))
    assert handler.hits == 3


def test_a_failing_endpoint_is_avoided_and_work_goes_on(server: str, bad_server) -> None:
    url, handler = bad_server
    backend = OpenAIBackend([url, server], MODEL, max_retries=3, backoff_s=0.05)
    _, report = generate(backend, chats(6), SamplingParams(n=1, max_new_tokens=6))
    assert report.generated == 6 and backend.served[server] == 6 and backend.served[url] == 0
    assert handler.hits >= 1


def test_missing_api_key_variable_is_named() -> None:
    with pytest.raises(GenerationError, match="ITERKD_NO_SUCH_KEY is not set"):
        OpenAIBackend(["http://127.0.0.1:1/v1"], MODEL, api_key_env="ITERKD_NO_SUCH_KEY")


def test_the_judge_runs_through_an_openai_endpoint(server: str) -> None:
    """The feedback stage's judge on a real OpenAI-compatible server: every answer is either
    parsed into scores or kept raw with the reason, never coerced into a number."""
    from iterkd.config import ModelSpec
    from iterkd.generation.factory import open_backend
    from iterkd.judge import judge_prompt, judge_record
    from iterkd.questions import load_bundled
    from iterkd.stages.common import to_record

    question = load_bundled("seed")[0]
    answer = Sample(
        prompt_id=question.id, index=0, text=question.reference_solution, finish_reason="stop",
        prompt_tokens=1, completion_tokens=1, seconds=0.0,
    )  # fmt: skip
    sample = to_record(question, "student", answer)
    spec = ModelSpec(backend="openai", endpoints=[server], model_name=MODEL)
    backend = open_backend(spec, "judge")
    prompt = judge_prompt(question, sample)
    results, report = generate(
        backend, [prompt], SamplingParams(n=1, temperature=0.0, max_new_tokens=24)
    )
    record = judge_record(sample, results[prompt.id][0].text)
    assert report.generated == 1 and record.raw == results[prompt.id][0].text
    if record.scores is None:  # the tiny model is no judge: missing, with why
        assert record.error
    else:
        assert 1 <= record.scores.overall <= 10
