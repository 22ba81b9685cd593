"""Tests for engram.generate: the local model, the OpenAI client and the compatible server."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engram.errors import GenerationError
from engram.generate import (
    GENERATORS,
    BaseGenerator,
    Generator,
    LlamaCppGenerator,
    LocalGenerator,
    OpenAIGenerator,
    StopFilter,
    apply_stop,
    create_generator,
    register_generator,
    serve_openai_compatible,
)
from engram.generate.model_cache import build_cached, is_complete

PROMPT = [{"role": "user", "content": "Name three colors of the rainbow."}]
MAX_TOKENS = 20


# --------------------------------------------------------------------------- helpers


class EchoGenerator(BaseGenerator):
    """A model-free generator: streams the last user message back word by word."""

    model_id = "echo"
    context_window = 1000

    def __init__(self, fail_after: int | None = None):
        self.fail_after = fail_after

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, messages, max_tokens=256, temperature=0.0, stop=None) -> Iterator[str]:
        words = messages[-1]["content"].split(" ")[:max_tokens]
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]

        def run() -> Iterator[str]:
            for i, piece in enumerate(pieces):
                if self.fail_after is not None and i >= self.fail_after:
                    raise GenerationError("echo broke")
                yield piece

        return apply_stop(run(), stop)


@contextlib.contextmanager
def raw_server(handle: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    """A throwaway HTTP server whose POST handler is ``handle``; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with contextlib.suppress(OSError):
                handle(self)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENGRAM_LLM_BASE_URL", "ENGRAM_LLM_MODEL", "ENGRAM_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("ENGRAM_LLM_TIMEOUT", "ENGRAM_LLM_CONTEXT_WINDOW"):
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- stop strings


def test_stop_filter_cuts_across_pieces() -> None:
    pieces = ["Hello wo", "rld! EN", "D more"]
    assert "".join(apply_stop(pieces, ["END"])) == "Hello world! "
    assert "".join(apply_stop(pieces, ["rld!"])) == "Hello wo"
    assert "".join(apply_stop(pieces, None)) == "Hello world! END more"
    # a held-back partial match that never completes is released at the end
    assert "".join(apply_stop(["abc", "EN"], ["END"])) == "abcEN"


def test_stop_filter_holds_back_prefixes() -> None:
    f = StopFilter(["</s>"])
    assert f.push("a <") == "a "
    assert f.push("/") == ""
    assert f.push("x") == "</x"
    assert f.push("</s") == ""
    assert f.push(">tail") == ""
    assert f.stopped and f.flush() == ""


# --------------------------------------------------------------------------- atomic cache


def test_build_cached_is_atomic_and_runs_once(tmp_path: Path) -> None:
    target = tmp_path / "models" / "m"
    calls: list[int] = []

    def crash(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise RuntimeError("killed half way")

    with pytest.raises(RuntimeError):
        build_cached(target, {"v": 1}, crash)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == [".m.lock"]  # no half-written folder

    def build(out: Path) -> None:
        calls.append(1)
        time.sleep(0.2)
        (out / "config.json").write_text("{}")

    threads = [
        threading.Thread(target=build_cached, args=(target, {"v": 1}, build)) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert is_complete(target, {"v": 1}) and (target / "config.json").exists()
    build_cached(target, {"v": 1}, build)
    assert len(calls) == 1
    build_cached(target, {"v": 2}, build)  # a different fingerprint is rebuilt in place
    assert len(calls) == 2 and is_complete(target, {"v": 2})
    assert sorted(p.name for p in target.parent.iterdir()) == [".m.lock", "m"]


# --------------------------------------------------------------------------- factory, errors


def test_factory_and_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(GENERATORS) >= {"local", "llamacpp", "openai"}
    gen = create_generator("openai", base_url="http://127.0.0.1:9", model="m")
    assert isinstance(gen, OpenAIGenerator) and gen.url == "http://127.0.0.1:9/v1/chat/completions"
    assert isinstance(create_generator(), LocalGenerator)  # lazy: nothing loads yet
    with pytest.raises(GenerationError, match="unknown generator 'nope'"):
        create_generator("nope")
    monkeypatch.setitem(GENERATORS, "echo", EchoGenerator)
    register_generator("Echo", EchoGenerator)
    echo = create_generator("echo")
    assert isinstance(echo, Generator) and echo.complete(PROMPT) == PROMPT[0]["content"]


def test_llamacpp_missing_gives_clear_error() -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("llama-cpp-python is installed")
    with pytest.raises(GenerationError, match="install llama-cpp-python"):
        LlamaCppGenerator()
    with pytest.raises(GenerationError, match="llama-cpp-python"):
        create_generator("llamacpp")


def test_openai_configuration_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GenerationError, match="ENGRAM_LLM_BASE_URL"):
        OpenAIGenerator(model="m")
    with pytest.raises(GenerationError, match="ENGRAM_LLM_MODEL"):
        OpenAIGenerator(base_url="http://127.0.0.1:1/v1")
    with pytest.raises(GenerationError, match="not an http"):
        OpenAIGenerator(base_url="localhost:8000", model="m")
    monkeypatch.setenv("ENGRAM_LLM_BASE_URL", "http://127.0.0.1:8000/")
    monkeypatch.setenv("ENGRAM_LLM_MODEL", "qwen")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback")
    gen = OpenAIGenerator()
    assert gen.base_url == "http://127.0.0.1:8000/v1" and gen.model_id == "qwen"
    assert gen.headers["Authorization"] == "Bearer sk-fallback"
    monkeypatch.setenv("ENGRAM_LLM_API_KEY", "sk-engram")
    assert OpenAIGenerator().headers["Authorization"] == "Bearer sk-engram"
    assert gen.count_tokens("x" * 9) == 3 and gen.count_tokens("") == 0
    assert OpenAIGenerator(tokenizer=str.split).count_tokens("a b c") == 3


def test_bad_messages_are_rejected() -> None:
    gen = EchoGenerator()
    gen2 = OpenAIGenerator(base_url="http://127.0.0.1:9/v1", model="m")
    for bad in ([], [{"role": "robot", "content": "x"}], [{"role": "user"}], "hi"):
        with pytest.raises(GenerationError):
            gen2.complete(bad)
    with pytest.raises(GenerationError, match="max_tokens"):
        gen2.stream(PROMPT, max_tokens=0)
    assert gen.complete(PROMPT, stop=["three"]) == "Name "


# --------------------------------------------------------------------------- HTTP (no model)


@pytest.fixture
def echo_server() -> Iterator[str]:
    server, base_url = serve_openai_compatible(EchoGenerator(), api_key="secret")
    yield base_url
    server.shutdown()


def test_server_and_client_roundtrip_without_model(echo_server: str) -> None:
    gen = OpenAIGenerator(base_url=echo_server, model="anything", api_key="secret")
    messages = [{"role": "user", "content": "one two three four five"}]
    assert gen.complete(messages) == "one two three four five"
    pieces = list(gen.stream(messages))
    assert pieces == ["one", " two", " three", " four", " five"]
    assert gen.complete(messages, stop=[" four"]) == "one two three"
    assert "".join(gen.stream(messages, stop=["ee f"])) == "one two thr"
    assert gen.complete(messages, max_tokens=2) == "one two"
    with pytest.raises(GenerationError, match="HTTP 401"):
        OpenAIGenerator(base_url=echo_server, model="m", api_key="wrong").complete(messages)
    bad = gen.client.post(gen.url, json={"messages": [{"role": "x", "content": "y"}]})
    assert bad.status_code == 400 and "role" in bad.json()["error"]["message"]
    gen.close()


def test_server_reports_generator_failures() -> None:
    server, base_url = serve_openai_compatible(EchoGenerator(fail_after=2))
    try:
        gen = OpenAIGenerator(base_url=base_url, model="m")
        with pytest.raises(GenerationError, match="HTTP 500.*echo broke"):
            gen.complete([{"role": "user", "content": "a b c d"}])
        with pytest.raises(GenerationError, match="while streaming.*echo broke"):
            list(gen.stream([{"role": "user", "content": "a b c d"}]))
    finally:
        server.shutdown()
    server.shutdown()  # idempotent


def test_connection_refused_names_the_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    gen = OpenAIGenerator(base_url=url, model="m", timeout=5)
    with pytest.raises(GenerationError, match=f"could not connect to {url}/chat/completions"):
        gen.complete(PROMPT)
    with pytest.raises(GenerationError, match="could not connect"):
        list(gen.stream(PROMPT))


def test_timeout_is_reported() -> None:
    def slow(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(2)
        reply(handler, 200, b"{}", "application/json")

    with raw_server(slow) as url:
        gen = OpenAIGenerator(base_url=url, model="m", timeout=0.3)
        start = time.monotonic()
        with pytest.raises(GenerationError, match=r"timed out after 0\.3 s") as info:
            gen.complete(PROMPT)
        assert url in str(info.value) and time.monotonic() - start < 1.5
        with pytest.raises(GenerationError, match="timed out"):
            list(gen.stream(PROMPT))


def test_http_500_reports_status_and_message() -> None:
    body = json.dumps({"error": {"message": "CUDA out of memory", "type": "server_error"}})

    def fail(handler: BaseHTTPRequestHandler) -> None:
        reply(handler, 500, body.encode(), "application/json")

    with raw_server(fail) as url:
        gen = OpenAIGenerator(base_url=url, model="m")
        with pytest.raises(GenerationError, match="HTTP 500.*CUDA out of memory") as info:
            gen.complete(PROMPT)
        assert url in str(info.value)
        with pytest.raises(GenerationError, match="HTTP 500.*CUDA out of memory"):
            list(gen.stream(PROMPT))


def test_malformed_replies() -> None:
    def html(handler: BaseHTTPRequestHandler) -> None:
        reply(handler, 200, b"<html>hello</html>", "text/html")

    def no_choices(handler: BaseHTTPRequestHandler) -> None:
        reply(handler, 200, b'{"id": 1}', "application/json")

    def bad_sse(handler: BaseHTTPRequestHandler) -> None:
        reply(handler, 200, b"data: {not json\n\n", "text/event-stream")

    with raw_server(html) as url, pytest.raises(GenerationError, match="malformed.*not JSON"):
        OpenAIGenerator(base_url=url, model="m").complete(PROMPT)
    with raw_server(no_choices) as url:
        gen = OpenAIGenerator(base_url=url, model="m")
        with pytest.raises(GenerationError, match="malformed reply.*choices"):
            gen.complete(PROMPT)
        with pytest.raises(GenerationError, match="malformed reply.*choices"):
            list(gen.stream(PROMPT))  # a JSON answer to a stream request is accepted if valid
    with raw_server(bad_sse) as url, pytest.raises(GenerationError, match="event stream"):
        list(OpenAIGenerator(base_url=url, model="m").stream(PROMPT))


# --------------------------------------------------------------------------- the local model


@pytest.fixture(scope="session")
def local_gen() -> LocalGenerator:
    """The default model from the default cache: converted once per machine, then ~1 s."""
    return LocalGenerator(threads=1).load()


@pytest.fixture(scope="session")
def reference(local_gen: LocalGenerator) -> str:
    return local_gen.complete(PROMPT, max_tokens=MAX_TOKENS)


@pytest.fixture(scope="session")
def local_server(local_gen: LocalGenerator) -> Iterator[str]:
    server, base_url = serve_openai_compatible(local_gen)
    yield base_url
    server.shutdown()


@pytest.mark.slow
def test_local_generates_deterministically(local_gen: LocalGenerator, reference: str) -> None:
    assert isinstance(local_gen, Generator)
    assert len(reference.split()) >= 3
    assert local_gen.complete(PROMPT, max_tokens=MAX_TOKENS) == reference
    capital = local_gen.complete(
        [{"role": "user", "content": "What is the capital of France?"}], max_tokens=12
    )
    assert "Paris" in capital


@pytest.mark.slow
def test_local_stream_matches_complete(local_gen: LocalGenerator, reference: str) -> None:
    pieces = list(local_gen.stream(PROMPT, max_tokens=MAX_TOKENS))
    assert len(pieces) >= 3 and all(pieces)
    assert "".join(pieces) == reference


@pytest.mark.slow
def test_local_count_tokens_and_window(local_gen: LocalGenerator) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(local_gen.model_folder))
    for text in ("Hello, world!", "Engram stores memories for LLMs. 日本語 too.", ""):
        assert local_gen.count_tokens(text) == len(tokenizer.encode(text, add_special_tokens=False))
    assert local_gen.context_window == 8192
    assert local_gen.count_prompt_tokens(PROMPT) > local_gen.count_tokens(PROMPT[0]["content"])
    with pytest.raises(GenerationError, match="context window"):
        local_gen.complete([{"role": "user", "content": "word " * 9000}], max_tokens=1)


@pytest.mark.slow
def test_local_stop_truncates(local_gen: LocalGenerator, reference: str) -> None:
    words = reference.split()
    stop = " " + words[2]  # a stop string from the middle of the greedy output
    expected = reference[: reference.index(stop)]
    assert local_gen.complete(PROMPT, max_tokens=MAX_TOKENS, stop=[stop]) == expected
    assert "".join(local_gen.stream(PROMPT, max_tokens=MAX_TOKENS, stop=[stop])) == expected


@pytest.mark.slow
def test_local_cache_folder_is_reused(local_gen: LocalGenerator) -> None:
    folder = local_gen.model_folder
    assert folder.is_dir() and folder.name == "smollm2-135m-instruct"
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert (folder / "tokenizer.json").is_file() and (folder / "engram-model.json").is_file()
    start = time.monotonic()
    second = LocalGenerator(threads=1)
    assert second.model is local_gen.model  # same process: the loaded model is shared
    assert time.monotonic() - start < 1
    # an explicit model_path (any HF folder) works too and shares the same loaded model
    explicit = LocalGenerator(folder, threads=1)
    assert explicit.model is local_gen.model and explicit.model_id == folder.name


@pytest.mark.slow
def test_openai_client_against_local_server(
    local_gen: LocalGenerator, local_server: str, reference: str
) -> None:
    gen = OpenAIGenerator(base_url=local_server, model="whatever")
    assert gen.complete(PROMPT, max_tokens=MAX_TOKENS) == reference
    pieces = list(gen.stream(PROMPT, max_tokens=MAX_TOKENS))
    assert len(pieces) >= 3 and "".join(pieces) == reference
    models = gen.client.get(local_server + "/models").json()
    assert models["data"][0]["id"] == local_gen.model_id
    gen.close()
