"""The OpenAI-compatible chat endpoint, driven by the official ``openai`` client over real HTTP.

The module's server sets ``min_similarity`` and ``min_term_coverage`` above 1, so recall never
passes evidence on and the model is never called (fast); one slow test answers with the real
local model from the sample corpus and checks the citation points at the PDF's page.
"""

from __future__ import annotations

import shutil
from typing import Any

import openai
import pytest
from test_server import LiveServer

from engram.memory import Memory
from engram.server.app import create_app
from engram.server.keys import KeyStore

NO_ANSWER = "I don't know: memory holds no answer to that."


@pytest.fixture(scope="module")
def live(tmp_path_factory, embedder):
    path = tmp_path_factory.mktemp("chat") / "chat.db"
    keystore = KeyStore(path)
    keys = {
        "admin": keystore.create(["*"], "admin")[1],
        "writer": keystore.create(["chat"], "write")[1],
        "reader": keystore.create(["chat"], "read")[1],
        "multi": keystore.create(["a", "b"], "write")[1],
        "prefix": keystore.create(["team:*"], "read")[1],
    }
    memory = Memory(path, embedder=embedder, min_similarity=1.01, min_term_coverage=1.01)
    memory.add("The ferry to Skerry Island leaves at 07:40 on weekdays.", namespace="chat")
    app = create_app(memory, keys=keystore)
    with LiveServer(app) as server:
        yield server.url, keys, memory
    memory.close()
    keystore.close()


def client(live: Any, role: str) -> openai.OpenAI:
    url, keys, _ = live
    return openai.OpenAI(base_url=f"{url}/v1", api_key=keys[role], max_retries=0, timeout=60)


def ask(c: openai.OpenAI, text: str = "When does the ferry leave?", **kw: Any) -> Any:
    return c.chat.completions.create(
        model=kw.pop("model", "engram"), messages=[{"role": "user", "content": text}], **kw
    )


def test_models_list_and_bad_keys(live):
    ids = [m.id for m in client(live, "writer").models.list()]
    assert ids == ["engram", "engram:chat"]
    assert "engram:chat" in [m.id for m in client(live, "admin").models.list()]
    bad = openai.OpenAI(base_url=f"{live[0]}/v1", api_key="egk_000000000000_" + "x" * 40)
    with pytest.raises(openai.AuthenticationError, match="invalid or revoked API key"):
        bad.with_options(max_retries=0).models.list()


def test_chat_completion_shape(live):
    c = client(live, "writer")
    done = ask(c)
    assert done.object == "chat.completion" and done.id.startswith("chatcmpl-")
    assert done.model == "engram" and len(done.choices) == 1
    choice = done.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert choice.message.content == NO_ANSWER
    extra = done.model_extra["engram"]
    assert extra["namespace"] == "chat" and extra["no_answer"] is True
    assert extra["citations"] == [] and extra["remembered"] == []
    # Earlier messages and a system prompt are accepted; the last user message is the question.
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "When does the ferry leave?"}]},
    ]
    done = c.chat.completions.create(model="engram", messages=messages, temperature=0.2)
    assert done.model_extra["engram"]["question"] == "When does the ferry leave?"


def test_streaming(live):
    c = client(live, "reader")
    chunks = list(ask(c, stream=True))
    assert {ch.object for ch in chunks} == {"chat.completion.chunk"}
    assert len({ch.id for ch in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert text == NO_ANSWER
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["engram"]["no_answer"] is True
    assert all(ch.choices[0].finish_reason is None for ch in chunks[:-1])


def test_remember_the_turn(live):
    _, _, memory = live
    c = client(live, "writer")
    done = ask(c, "My bicycle is a green Brompton.", extra_body={"remember": True, "session": "s1"})
    remembered = done.model_extra["engram"]["remembered"]
    assert len(remembered) == 1 and remembered[0].startswith("turn:")
    hits = memory.search("green Brompton bicycle", k=1, namespace="chat")
    assert hits[0].doc_id == remembered[0]
    assert hits[0].metadata == {"speaker": "user", "kind": "turn", "session": "s1"}
    # The header form, and streaming: remembered after the answer.
    stream = ask(
        c, "My locker is number 42.", stream=True, extra_headers={"X-Engram-Remember": "true"}
    )
    last = list(stream)[-1]
    assert len(last.model_extra["engram"]["remembered"]) == 1
    assert memory.search("locker number", k=1, namespace="chat")[0].text.endswith("42.")
    # Without the flag nothing is stored; a read key may not remember.
    before = memory.stats()["documents"]
    ask(c, "My umbrella is blue.")
    assert memory.stats()["documents"] == before
    with pytest.raises(openai.PermissionDeniedError, match="needs 'write'"):
        ask(client(live, "reader"), "x", extra_body={"remember": True})
    assert memory.stats()["documents"] == before


def test_namespace_from_header_model_or_key(live):
    multi = client(live, "multi")
    with pytest.raises(openai.BadRequestError, match="X-Engram-Namespace"):
        ask(multi)
    done = ask(multi, extra_headers={"X-Engram-Namespace": "b"})
    assert done.model_extra["engram"]["namespace"] == "b"
    assert ask(multi, model="engram:a").model_extra["engram"]["namespace"] == "a"
    with pytest.raises(openai.BadRequestError, match="disagree"):
        ask(multi, model="engram:a", extra_headers={"X-Engram-Namespace": "b"})
    with pytest.raises(openai.PermissionDeniedError, match="does not reach namespace 'chat'"):
        ask(multi, extra_headers={"X-Engram-Namespace": "chat"})
    with pytest.raises(openai.NotFoundError, match="unknown model 'gpt-4o'"):
        ask(multi, model="gpt-4o")
    with pytest.raises(openai.BadRequestError, match="X-Engram-Namespace"):
        ask(client(live, "prefix"))  # a prefix key names no single namespace
    done = ask(client(live, "prefix"), model="engram:team:blue")  # not created yet: no answer
    assert done.choices[0].message.content == NO_ANSWER
    assert ask(client(live, "admin")).model_extra["engram"]["namespace"] == "default"


def test_bad_requests(live):
    c = client(live, "writer")
    with pytest.raises(openai.BadRequestError, match="no user message"):
        c.chat.completions.create(model="engram", messages=[{"role": "system", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="invalid metadata key"):
        ask(c, extra_body={"where": {"a; drop": 1}})
    with pytest.raises(openai.UnprocessableEntityError):
        c.chat.completions.create(model="engram", messages=[])
    with pytest.raises(openai.UnprocessableEntityError):
        ask(c, n=2)


@pytest.mark.slow
def test_answers_with_citations_from_the_sample_pdf(tmp_path, sample_store, embedder, generator):
    path = tmp_path / "ask.db"
    shutil.copy(sample_store, path)
    with KeyStore(path) as ks:
        key = ks.create(["default", "empty"], "read")[1]
    keystore = KeyStore(path)
    memory = Memory(path, embedder=embedder, generator=generator, answer_max_tokens=48)
    question = "What gas does PVC release when the laser cutter heats it?"
    try:
        with LiveServer(create_app(memory, keys=keystore)) as server:
            c = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=300)
            chunks = list(
                ask(c, question, stream=True, extra_headers={"X-Engram-Namespace": "default"})
            )
            pieces = [ch.choices[0].delta.content for ch in chunks if ch.choices[0].delta.content]
            assert len(pieces) >= 2  # the answer as it comes (one span, or tokens), then sources
            result = chunks[-1].model_extra["engram"]
            assert not result["no_answer"] and result["citations"]
            assert any(
                c["source"].endswith("makerspace-handbook.pdf#page=2") for c in result["citations"]
            )
            assert "Sources:\n[" in pieces[-1] and "makerspace-handbook.pdf#page=2" in pieces[-1]
            # Not streamed: the same answer (greedy decoding), sources appended to the content.
            done = ask(c, question)
            assert done.model_extra["engram"]["answer"] == result["answer"]
            assert done.model_extra["engram"]["citations"] == result["citations"]
            assert done.choices[0].message.content == result["answer"] + pieces[-1]
            # A filter that leaves out the PDF leaves nothing relevant: no answer, no model call.
            done = ask(c, question, model="engram:default", extra_body={"where": {"topic": "food"}})
            assert done.model_extra["engram"]["no_answer"] is True
            assert done.model_extra["engram"]["citations"] == []
            # So does another namespace (empty, never created).
            done = ask(c, question, model="engram:empty")
            assert done.choices[0].message.content == NO_ANSWER
    finally:
        memory.close()
        keystore.close()
