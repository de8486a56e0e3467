"""Upstream faults as the official `openai` Python SDK sees them through Switchyard.

Run by `tests/tests/resilience.rs`, which starts the mock upstream and the daemon and sets:

- E2E_GATEWAY_URL   http://127.0.0.1:PORT (no path)
- E2E_CLIENT_KEY    the API key this client sends
- E2E_BACKUP        a `provider/model` that always answers (the fallback)
- E2E_BACKUP_MODEL  what the upstream answers as `model` for E2E_BACKUP

The SDK's own retries are off (max_retries=0): every rescue seen here is the gateway's.
"""

import os

import openai
import pytest
from openai import OpenAI

BASE = os.environ["E2E_GATEWAY_URL"].rstrip("/")
CLIENT_KEY = os.environ["E2E_CLIENT_KEY"]
BACKUP = os.environ["E2E_BACKUP"]
BACKUP_MODEL = os.environ["E2E_BACKUP_MODEL"]


def client():
    return OpenAI(base_url=BASE + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


def user(text):
    return [{"role": "user", "content": text}]


def test_a_transient_503_is_rescued_by_the_gateway():
    r = client().chat.completions.create(model="up/flaky-1-fail-503", messages=user("once more"))
    assert r.choices[0].message.content == "upstream saw: once more"


def test_a_streamed_reset_before_the_first_byte_is_rescued():
    stream = client().chat.completions.create(
        model="up/flaky-1-reset", messages=user("again, streamed"), stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "upstream saw: again, streamed"


def test_a_persistent_429_is_a_rate_limit_error_with_retry_after():
    with pytest.raises(openai.RateLimitError) as caught:
        client().chat.completions.create(model="up/fail-429", messages=user("limited"))
    assert caught.value.status_code == 429
    assert caught.value.response.headers.get("retry-after") == "1"
    assert caught.value.code == "rate_limit_exceeded"


def test_a_content_filter_refusal_is_a_bad_request_and_not_routed_around():
    with pytest.raises(openai.BadRequestError) as caught:
        client().chat.completions.create(
            model="up/content-filter-400",
            messages=user("refused"),
            extra_body={"fallbacks": [BACKUP]},
        )
    assert caught.value.code == "content_filter"
    assert "content management" in caught.value.message


def test_a_silent_upstream_falls_back():
    r = client().chat.completions.create(
        model="up/silent", messages=user("hello?"), extra_body={"fallbacks": [BACKUP]}
    )
    assert r.model == BACKUP_MODEL
    assert r.model_extra["extra_fields"]["provider"] == "backup"


def test_a_stream_cut_mid_way_raises_instead_of_ending_quietly():
    stream = client().chat.completions.create(
        model="up/stream-cut", messages=user("half a story"), stream=True
    )
    seen = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            seen.append(chunk)
    assert seen, "some chunks arrived before the cut"
