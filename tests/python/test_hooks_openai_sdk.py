"""The official `openai` Python SDK through hook actions of the test fixture hook.

Run by `tests/tests/hooks.rs` (`openai_python_sdk_through_hook_actions`), which starts the daemon
with the fixture hook (`tests/fixture-plugins/hook-fixture`: the `x-fixture-action` header picks
what it does) and sets:

- E2E_GATEWAY_URL            http://127.0.0.1:PORT (no path)
- E2E_MODEL                  a model of the local mock provider (answers with the last user message)
- E2E_UPSTREAM_MODEL         an alias served by the mock OpenAI upstream ("upstream saw: <msg>")
- E2E_UPSTREAM_ANSWER_MODEL  what the upstream answers as `model` for it
"""

import os

import openai
import pytest
from openai import OpenAI

BASE = os.environ["E2E_GATEWAY_URL"].rstrip("/")
MODEL = os.environ["E2E_MODEL"]
UPSTREAM_MODEL = os.environ["E2E_UPSTREAM_MODEL"]
UPSTREAM_ANSWER_MODEL = os.environ["E2E_UPSTREAM_ANSWER_MODEL"]


@pytest.fixture
def client():
    # No retries: a retried request would hide what the gateway answered the first time
    # (and the fixture's 429 asks for a 7 s wait).
    return OpenAI(base_url=f"{BASE}/v1", api_key="sk-hooks-sdk-client", max_retries=0)


def action(name):
    return {"x-fixture-action": name}


def ask(text):
    return [{"role": "user", "content": text}]


def stream_text(chunks):
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_short_circuit_stream(client):
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=ask("never answered"), stream=True, extra_headers=action("short-circuit")
        )
    )
    assert stream_text(chunks) == "short-circuited by fixture"
    assert [c.model for c in chunks] == ["fixture"] * len(chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_short_circuit_plain(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=ask("never answered"), extra_headers=action("short-circuit")
    )
    assert reply.choices[0].message.content == "short-circuited by fixture"
    assert reply.model == "fixture"
    assert reply.usage.total_tokens == 4


def test_replace_chunk_stream_from_the_local_provider(client):
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=ask("one two three"), stream=True, extra_headers=action("replace-chunk")
        )
    )
    assert stream_text(chunks) == "[fixture] two three"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_replace_chunk_stream_from_the_upstream(client):
    chunks = list(
        client.chat.completions.create(
            model=UPSTREAM_MODEL, messages=ask("hi there"), stream=True, extra_headers=action("replace-chunk")
        )
    )
    assert stream_text(chunks) == "[fixture] saw: hi there"
    assert {c.model for c in chunks} == {UPSTREAM_ANSWER_MODEL}


def test_reject_is_a_rate_limit_error_with_retry_after(client):
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask("refused"), extra_headers=action("reject"))
    err = caught.value
    assert err.status_code == 429
    assert err.code == "fixture_reject"
    assert err.type == "rate_limit_error"
    assert err.response.headers["retry-after"] == "7"


def test_end_stream_raises_the_hooks_error_after_the_text_so_far(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=ask("one two three four"), stream=True, extra_headers=action("end-stream")
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert stream_text(received) == "one two"
    assert caught.value.code == "fixture_end"
