"""The official `openai` Python SDK against Switchyard, routed to a Gemini upstream.

Run by `openai_python_sdk_against_gemini` in `tests/tests/gemini.rs`, which starts the mock Gemini
API (`tests/src/gemini_upstream.rs`) and the daemon with the `gemini` plugin, and sets:

- E2E_GATEWAY_URL            http://127.0.0.1:PORT (no path)
- E2E_GEMINI_MODEL           `gem/gemini-...`: a provider/model served by the gemini plugin
- E2E_GEMINI_ALIAS           an alias for the same target
- E2E_GEMINI_ANSWERED_MODEL  the `modelVersion` the mock answers with
- E2E_GEMINI_PROVIDER        the configured provider name (`gem`)
- E2E_CACHED_TOKENS          `cachedContentTokenCount` of every mock answer
- E2E_THOUGHT_TOKENS         `thoughtsTokenCount` when thinking was asked for
- E2E_CLIENT_KEY             the API key this client sends (must never reach Gemini)

The mock answers `gemini saw: <last user text>`, calls the first declared function with
`{"query": <last user text>}`, and answers a function response with `gemini got <name>: <json>`.
The Rust side then checks what reached the upstream.
"""

import json
import os

import openai
import pytest
from openai import OpenAI

BASE = os.environ["E2E_GATEWAY_URL"].rstrip("/")
MODEL = os.environ["E2E_GEMINI_MODEL"]
ALIAS = os.environ["E2E_GEMINI_ALIAS"]
ANSWERED_MODEL = os.environ["E2E_GEMINI_ANSWERED_MODEL"]
PROVIDER = os.environ["E2E_GEMINI_PROVIDER"]
CACHED_TOKENS = int(os.environ["E2E_CACHED_TOKENS"])
THOUGHT_TOKENS = int(os.environ["E2E_THOUGHT_TOKENS"])
CLIENT_KEY = os.environ["E2E_CLIENT_KEY"]
PROVIDER_PREFIX = MODEL.split("/")[0] + "/"

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


def client():
    return OpenAI(base_url=BASE + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


def user(text):
    return [{"role": "user", "content": text}]


def extra_fields(obj):
    extra = (obj.model_extra or {}).get("extra_fields")
    assert isinstance(extra, dict), f"extra_fields missing from {obj!r}"
    return extra


@pytest.mark.parametrize("model", [MODEL, ALIAS])
def test_plain_chat(model):
    r = client().chat.completions.create(model=model, messages=user("hello from python"))
    assert r.object == "chat.completion"
    assert r.choices[0].message.content == "gemini saw: hello from python"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "stop"
    assert r.model == ANSWERED_MODEL
    assert r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    extra = extra_fields(r)
    assert extra["provider"] == PROVIDER
    assert extra["model_requested"] == model


def test_system_prompt_and_sampling():
    r = client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}] + user("sampled"),
        n=2,
        temperature=0.2,
        stop=["<END>"],
        max_completion_tokens=32,
    )
    assert [c.index for c in r.choices] == [0, 1]
    assert all(c.message.content == "gemini saw: sampled" for c in r.choices)


def test_stream_without_include_usage():
    stream = client().chat.completions.create(
        model=MODEL, messages=user("stream without usage"), stream=True
    )
    chunks = list(stream)
    assert chunks, "no chunks"
    assert all(c.choices for c in chunks), "no chunk may have empty choices"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "gemini saw: stream without usage"
    finish = [c for c in chunks if c.choices[0].finish_reason is not None]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    assert finish[0].usage is not None and finish[0].usage.total_tokens > 0
    assert [extra_fields(c)["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert all(c.model == ANSWERED_MODEL for c in chunks)


def test_stream_with_include_usage():
    stream = client().chat.completions.create(
        model=ALIAS,
        messages=user("stream with usage"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "gemini saw: stream with usage"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    assert [extra_fields(c)["chunk_index"] for c in chunks] == list(range(len(chunks)))


def test_tools_round_trip():
    c = client()
    messages = user("Lisbon")
    r = c.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"query": "Lisbon"}
    assert call.id.startswith("call_")

    # The usual loop: append the assistant message as received, then the tool's result.
    messages.append(choice.message)
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 21})})
    r = c.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == 'gemini got get_weather: {"temperature":21}'


def test_tools_streamed():
    stream = client().chat.completions.create(
        model=MODEL,
        messages=user("Quito"),
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    name, args, finish, ids = "", "", None, set()
    for chunk in stream:
        if not chunk.choices:
            continue
        for call in chunk.choices[0].delta.tool_calls or []:
            assert call.index == 0
            ids.add(call.id)
            name += call.function.name or ""
            args += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather"
    assert json.loads(args) == {"query": "Quito"}
    assert finish == "tool_calls"
    assert len(ids) == 1


def test_reasoning_effort():
    r = client().chat.completions.create(
        model=MODEL, messages=user("think first"), reasoning_effort="low"
    )
    message = r.choices[0].message
    assert message.content == "gemini saw: think first"
    assert (message.model_extra or {}).get("reasoning") == "Thinking about: think first"
    assert r.usage.completion_tokens_details.reasoning_tokens == THOUGHT_TOKENS


def test_structured_output():
    r = client().chat.completions.create(
        model=MODEL,
        messages=user("structured"),
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "echo",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {"gemini_saw": {"type": "string"}},
                    "required": ["gemini_saw"],
                    "additionalProperties": False,
                },
            },
        },
    )
    assert json.loads(r.choices[0].message.content) == {"gemini_saw": "structured"}


def test_errors_raise_the_sdk_exceptions():
    with pytest.raises(openai.RateLimitError) as info:
        client().chat.completions.create(model=PROVIDER_PREFIX + "exhausted", messages=user("x"))
    assert info.value.status_code == 429

    with pytest.raises(openai.BadRequestError) as info:
        client().chat.completions.create(model=PROVIDER_PREFIX + "blocked", messages=user("x"))
    assert info.value.code == "content_filter"
    assert "blockReason SAFETY" in info.value.message

    with pytest.raises(openai.InternalServerError) as info:
        client().chat.completions.create(model=PROVIDER_PREFIX + "unavailable", messages=user("x"))
    assert info.value.status_code == 502

    with pytest.raises(openai.NotFoundError):
        client().chat.completions.create(model=PROVIDER_PREFIX + "missing", messages=user("x"))
