"""The official `openai` Python SDK against the response cache: exact, semantic and cross-form
hits, read through the SDK's own types (`usage`, and `extra_fields` as an extra member).

Run by `tests/tests/semantic_cache.rs` (`openai_python_sdk_through_the_cache`), which starts the
daemon with the cache on (semantic tier with the mock's local embeddings) and sets:

- E2E_GATEWAY_URL   http://127.0.0.1:PORT (no path)
- E2E_MODEL         an alias served by the mock OpenAI upstream ("upstream saw: <msg>")
"""

import os

import pytest
from openai import OpenAI

BASE = os.environ["E2E_GATEWAY_URL"].rstrip("/")
MODEL = os.environ["E2E_MODEL"]


@pytest.fixture
def client():
    return OpenAI(base_url=f"{BASE}/v1", api_key="sk-cache-sdk-client", max_retries=0)


def ask(text):
    return [{"role": "user", "content": text}]


def debug(obj):
    return (obj.model_extra or {})["extra_fields"]["cache_debug"]


def ns(name):
    return {"x-bf-cache-key": name}


def test_exact_then_semantic_hit(client):
    first = client.chat.completions.create(
        model=MODEL, messages=ask("What is the capital of France?"), extra_headers=ns("sdk-a")
    )
    assert debug(first)["cache_hit"] is False
    again = client.chat.completions.create(
        model=MODEL, messages=ask("What is the capital of France?"), extra_headers=ns("sdk-a")
    )
    assert debug(again)["hit_type"] == "direct"
    assert again.choices[0].message.content == first.choices[0].message.content
    assert again.usage.model_extra["cost"]["total_cost"] == 0
    near = client.chat.completions.create(
        model=MODEL, messages=ask("What is the capital of France??"), extra_headers=ns("sdk-a")
    )
    d = debug(near)
    assert d["hit_type"] == "semantic"
    assert d["threshold"] == 0.8 and 0.8 <= d["similarity"] <= 1.0
    assert d["provider_used"] == "local"
    assert near.choices[0].message.content == first.choices[0].message.content


def test_a_stored_answer_streams_and_a_stored_stream_answers_plainly(client):
    plain = client.chat.completions.create(model=MODEL, messages=ask("plain first"), extra_headers=ns("sdk-b"))
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=ask("plain first"), stream=True, extra_headers=ns("sdk-b")
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain.choices[0].message.content
    assert all(debug(c)["cache_hit"] is True for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"

    streamed = list(
        client.chat.completions.create(model=MODEL, messages=ask("stream first"), stream=True, extra_headers=ns("sdk-b"))
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    answer = client.chat.completions.create(model=MODEL, messages=ask("stream first"), extra_headers=ns("sdk-b"))
    assert debug(answer)["cache_hit"] is True
    assert answer.choices[0].message.content == text
    assert answer.object == "chat.completion"


def test_a_bad_threshold_is_an_openai_error(client):
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL,
            messages=ask("x"),
            extra_headers={"x-bf-cache-key": "sdk-c", "x-bf-cache-threshold": "high"},
        )
    assert e.value.code == "invalid_cache_header"
