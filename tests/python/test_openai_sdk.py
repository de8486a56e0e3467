"""The official `openai` Python SDK against a running Switchyard.

Run by `tests/tests/python_sdk.rs`, which starts the mock upstream and the daemon and sets:

- E2E_GATEWAY_URL      http://127.0.0.1:PORT (no path)
- E2E_MODEL            an alias served by the mock OpenAI upstream (answers "upstream saw: <msg>")
- E2E_UPSTREAM_MODEL   what the upstream answers as `model` for E2E_MODEL
- E2E_PROVIDER         the configured provider name behind E2E_MODEL
- E2E_FAILING_MODEL    a model whose upstream answers 500
- E2E_FALLBACK_MODEL   a model that works (the local mock provider: echoes the message)
- E2E_FALLBACK_PROVIDER the provider behind E2E_FALLBACK_MODEL
- E2E_CLIENT_KEY       the API key this client sends (must never reach the upstream)

The Rust side then checks what the upstream received (seed, stop, tools, ... unchanged).
"""

import asyncio
import json
import os

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

BASE = os.environ["E2E_GATEWAY_URL"].rstrip("/")
MODEL = os.environ["E2E_MODEL"]
UPSTREAM_MODEL = os.environ["E2E_UPSTREAM_MODEL"]
PROVIDER = os.environ["E2E_PROVIDER"]
FAILING_MODEL = os.environ["E2E_FAILING_MODEL"]
FALLBACK_MODEL = os.environ["E2E_FALLBACK_MODEL"]
FALLBACK_PROVIDER = os.environ["E2E_FALLBACK_PROVIDER"]
CLIENT_KEY = os.environ["E2E_CLIENT_KEY"]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}

SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "e2e_schema",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"upstream_saw": {"type": "string"}},
            "required": ["upstream_saw"],
            "additionalProperties": False,
        },
    },
}


def client(prefix="/v1"):
    return OpenAI(base_url=BASE + prefix, api_key=CLIENT_KEY, max_retries=0, timeout=30)


def user(text):
    return [{"role": "user", "content": text}]


def extra_fields(obj):
    extra = (obj.model_extra or {}).get("extra_fields")
    assert isinstance(extra, dict), f"extra_fields missing from {obj!r}"
    return extra


def test_plain_chat():
    r = client().chat.completions.create(model=MODEL, messages=user("hello from python"))
    assert r.object == "chat.completion"
    assert r.choices[0].message.content == "upstream saw: hello from python"
    assert r.choices[0].finish_reason == "stop"
    assert r.model == UPSTREAM_MODEL
    assert r.usage.prompt_tokens > 0
    assert r.usage.prompt_tokens_details.cached_tokens == 4
    assert r.usage.completion_tokens_details.reasoning_tokens == 2
    extra = extra_fields(r)
    assert extra["provider"] == PROVIDER
    assert extra["model_requested"] == MODEL
    assert extra["request_type"] == "chat_completion"
    assert isinstance(extra["latency"], int)


@pytest.mark.parametrize("prefix", ["/v1", "/openai/v1"])
def test_both_base_urls(prefix):
    r = client(prefix).chat.completions.create(model=MODEL, messages=user(f"via {prefix}"))
    assert r.choices[0].message.content == f"upstream saw: via {prefix}"


def test_stream_with_include_usage():
    stream = client().chat.completions.create(
        model=MODEL,
        messages=user("stream with usage"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks, "no chunks"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "upstream saw: stream with usage"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.total_tokens > 0
    assert [extra_fields(c)["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert all(extra_fields(c)["request_type"] == "chat_completion_stream" for c in chunks)
    assert all(c.model == UPSTREAM_MODEL for c in chunks)


def test_stream_without_include_usage():
    stream = client().chat.completions.create(
        model=MODEL, messages=user("stream without usage"), stream=True
    )
    chunks = list(stream)
    assert all(c.choices for c in chunks), "no chunk may have empty choices"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "upstream saw: stream without usage"
    finish = [c for c in chunks if c.choices[0].finish_reason is not None]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    assert finish[0].usage is not None and finish[0].usage.total_tokens > 0


def test_tools():
    r = client().chat.completions.create(
        model=MODEL, messages=user("Lisbon"), tools=[WEATHER_TOOL], tool_choice="auto"
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"query": "Lisbon"}


def test_tools_streamed():
    stream = client().chat.completions.create(
        model=MODEL, messages=user("Quito"), tools=[WEATHER_TOOL], stream=True
    )
    name, args, finish = "", "", None
    for c in stream:
        if not c.choices:
            continue
        for call in c.choices[0].delta.tool_calls or []:
            name += call.function.name or ""
            args += call.function.arguments or ""
        finish = c.choices[0].finish_reason or finish
    assert name == "get_weather"
    assert json.loads(args) == {"query": "Quito"}
    assert finish == "tool_calls"


def test_response_format_json_schema():
    r = client().chat.completions.create(
        model=MODEL, messages=user("structured"), response_format=SCHEMA_FORMAT
    )
    assert json.loads(r.choices[0].message.content) == {"upstream_saw": "structured"}


def test_sampling_parameters():
    r = client().chat.completions.create(
        model=MODEL,
        messages=user("sampling"),
        n=2,
        seed=4242,
        stop=["<END>"],
        logprobs=True,
        top_logprobs=2,
        max_completion_tokens=64,
        temperature=0.5,
    )
    assert len(r.choices) == 2
    assert [c.index for c in r.choices] == [0, 1]
    for c in r.choices:
        assert c.message.content == "upstream saw: sampling"
        assert c.logprobs is not None and c.logprobs.content
        assert len(c.logprobs.content[0].top_logprobs) == 2
    assert r.system_fingerprint == "fp_e2e_mock"


def test_fallbacks_in_extra_body():
    r = client().chat.completions.create(
        model=FAILING_MODEL,
        messages=user("fall back please"),
        extra_body={"fallbacks": [FALLBACK_MODEL]},
    )
    assert r.choices[0].message.content == "fall back please"
    assert extra_fields(r)["provider"] == FALLBACK_PROVIDER


def test_unknown_fields_pass_through():
    r = client().chat.completions.create(
        model=MODEL,
        messages=user("marker"),
        extra_body={"x_e2e_marker": {"nested": [1, "two"]}},
    )
    assert r.choices[0].message.content == "upstream saw: marker"


def test_unknown_model_raises_not_found():
    with pytest.raises(openai.NotFoundError) as info:
        client().chat.completions.create(model="no-such-model-anywhere", messages=user("x"))
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
    assert info.value.request_id


def test_bad_request_raises():
    with pytest.raises(openai.BadRequestError) as info:
        client().chat.completions.create(model=MODEL, messages=user("x"), temperature="hot")
    assert info.value.status_code == 400
    assert info.value.param == "temperature"


def test_raw_response_and_request_id():
    c = client()
    raw = c.chat.completions.with_raw_response.create(
        model=MODEL, messages=user("raw"), extra_headers={"x-request-id": "py-e2e-req-1"}
    )
    assert raw.headers.get("x-request-id") == "py-e2e-req-1"
    assert raw.headers.get("x-ratelimit-remaining-requests") is not None
    completion = raw.parse()
    assert completion.choices[0].message.content == "upstream saw: raw"
    assert completion._request_id == "py-e2e-req-1"

    generated = c.chat.completions.with_raw_response.create(model=MODEL, messages=user("raw2"))
    assert generated.headers.get("x-request-id")


def test_models_list_and_retrieve():
    c = client()
    ids = [m.id for m in c.models.list()]
    assert MODEL in ids
    assert FALLBACK_MODEL in ids
    assert c.models.retrieve(MODEL).id == MODEL


def test_async_client_stream():
    async def run():
        c = AsyncOpenAI(base_url=BASE + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)
        stream = await c.chat.completions.create(
            model=MODEL, messages=user("async"), stream=True
        )
        text = ""
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        await c.close()
        return text

    assert asyncio.run(run()) == "upstream saw: async"
