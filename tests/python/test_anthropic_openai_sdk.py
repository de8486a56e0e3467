"""The official `openai` Python SDK against Anthropic models routed through Switchyard.

Run by `openai_python_sdk_against_anthropic_models` in `tests/tests/anthropic.rs`, which starts the
mock Anthropic Messages API and the daemon (the `anthropic` plugin loaded by name) and sets:

- E2E_GATEWAY_URL        http://127.0.0.1:PORT (no path)
- E2E_MODEL              `anthropic/claude-…`: answers "upstream saw: <last user text>"
- E2E_UPSTREAM_MODEL     what the upstream answers as `model`
- E2E_PROVIDER           the configured provider name behind E2E_MODEL
- E2E_CACHED_TOKENS      the cache-read tokens the mock reports on every answer
- E2E_OVERLOADED_MODEL   answers 529 overloaded_error
- E2E_RATE_LIMITED_MODEL answers 429 rate_limit_error
- E2E_CONTEXT_MODEL      answers 400 "prompt is too long"
- E2E_CLIENT_KEY         the API key this client sends (must never reach the upstream)

The Rust side then checks what the mock received (auth headers, translated bodies).
"""

import json
import os

import openai
import pytest
from openai import OpenAI

BASE = os.environ["E2E_GATEWAY_URL"].rstrip("/")
MODEL = os.environ["E2E_MODEL"]
UPSTREAM_MODEL = os.environ["E2E_UPSTREAM_MODEL"]
PROVIDER = os.environ["E2E_PROVIDER"]
CACHED_TOKENS = int(os.environ["E2E_CACHED_TOKENS"])
OVERLOADED_MODEL = os.environ["E2E_OVERLOADED_MODEL"]
RATE_LIMITED_MODEL = os.environ["E2E_RATE_LIMITED_MODEL"]
CONTEXT_MODEL = os.environ["E2E_CONTEXT_MODEL"]
CLIENT_KEY = os.environ["E2E_CLIENT_KEY"]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def client():
    return OpenAI(base_url=BASE + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


def user(text):
    return [{"role": "user", "content": text}]


def extra(obj, name):
    return (obj.model_extra or {}).get(name)


def test_plain_chat():
    r = client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}] + user("hello from python"),
    )
    assert r.object == "chat.completion"
    assert r.model == UPSTREAM_MODEL
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "upstream saw: hello from python"
    assert choice.finish_reason == "stop"
    assert r.usage.prompt_tokens > CACHED_TOKENS
    assert r.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    fields = extra(r, "extra_fields")
    assert fields["provider"] == PROVIDER
    assert fields["model_requested"] == MODEL
    assert fields["request_type"] == "chat_completion"


def test_stream_with_include_usage():
    stream = client().chat.completions.create(
        model=MODEL,
        messages=user("stream with usage ✓"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "upstream saw: stream with usage ✓"
    assert chunks[0].choices[0].delta.role == "assistant"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    assert [extra(c, "extra_fields")["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert all(c.model == UPSTREAM_MODEL for c in chunks)


def test_stream_without_include_usage():
    chunks = list(
        client().chat.completions.create(model=MODEL, messages=user("plain stream"), stream=True)
    )
    assert all(c.choices for c in chunks), "no chunk may have empty choices"
    finish = [c for c in chunks if c.choices[0].finish_reason is not None]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    assert finish[0].usage is not None and finish[0].usage.total_tokens > 0


def test_tools_round_trip():
    c = client()
    first = c.chat.completions.create(
        model=MODEL, messages=user("Lisbon"), tools=[WEATHER_TOOL], tool_choice="auto"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Lisbon"}

    second = c.chat.completions.create(
        model=MODEL,
        tools=[WEATHER_TOOL],
        messages=user("Lisbon")
        + [
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18°C and sunny"},
        ],
    )
    assert second.choices[0].message.content == "tool said: 18°C and sunny"
    assert second.choices[0].finish_reason == "stop"


def test_tools_streamed():
    stream = client().chat.completions.create(
        model=MODEL,
        messages=user("Quito"),
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    calls, finish = {}, None
    for c in stream:
        if not c.choices:
            continue
        for call in c.choices[0].delta.tool_calls or []:
            slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] += call.id or ""
            slot["name"] += (call.function and call.function.name) or ""
            slot["arguments"] += (call.function and call.function.arguments) or ""
        finish = c.choices[0].finish_reason or finish
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Quito"}
    assert finish == "tool_calls"


def test_structured_output():
    r = client().chat.completions.create(
        model=MODEL,
        messages=user("structured"),
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {"upstream_saw": {"type": "string"}},
                    "required": ["upstream_saw"],
                    "additionalProperties": False,
                },
            },
        },
    )
    assert r.choices[0].finish_reason == "stop"
    assert json.loads(r.choices[0].message.content) == {"upstream_saw": "structured"}


def test_reasoning_effort():
    r = client().chat.completions.create(
        model=MODEL, messages=user("think"), reasoning_effort="medium"
    )
    message = r.choices[0].message
    assert message.content == "upstream saw: think"
    assert extra(message, "reasoning") == "thinking about: think"


def test_image_input():
    r = client().chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content == "upstream saw: describe [1 image]"


def test_overloaded_is_a_server_error():
    with pytest.raises(openai.InternalServerError) as info:
        client().chat.completions.create(model=OVERLOADED_MODEL, messages=user("x"))
    assert info.value.status_code == 502
    assert info.value.code == "overloaded_error"
    assert "Overloaded" in info.value.message


def test_rate_limited():
    with pytest.raises(openai.RateLimitError) as info:
        client().chat.completions.create(model=RATE_LIMITED_MODEL, messages=user("x"))
    assert info.value.status_code == 429


def test_prompt_too_long():
    with pytest.raises(openai.BadRequestError) as info:
        client().chat.completions.create(model=CONTEXT_MODEL, messages=user("x"))
    assert info.value.code == "context_length_exceeded"
    assert "prompt is too long" in info.value.message
