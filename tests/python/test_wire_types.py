"""Every emulator answer and stream event, for plain, tool and structured requests, validates
against the SDKs' own pydantic response types: no missing required field, no wrong type."""

import json

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from google.genai import types as gtypes
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from test_emulator_sdk import ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY, httpx

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}
ASK = "What is the weather in Paris?"


def sse_data(text):
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]


def post(url, path, body, headers):
    r = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r


OPENAI = {"authorization": f"Bearer {OPENAI_KEY}"}
CHAT_BODIES = [
    {"messages": [{"role": "user", "content": "hi"}]},
    {"messages": [{"role": "user", "content": ASK}],
     "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]},
    {"messages": [{"role": "user", "content": "Facts"}],
     "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER, "strict": True}}},
    {"messages": [{"role": "user", "content": "hi"}], "logprobs": True, "top_logprobs": 2},
]


@pytest.mark.parametrize("body", CHAT_BODIES)
def test_chat_completions_and_chunks_validate(emulator_url, body):
    body = {"model": "gpt-4o-mini", **body}
    ChatCompletion.model_validate(post(emulator_url, "/v1/chat/completions", body, OPENAI).json())
    stream = post(emulator_url, "/v1/chat/completions", {**body, "stream": True, "stream_options": {"include_usage": True}}, OPENAI)
    chunks = sse_data(stream.text)
    assert chunks
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)


RESPONSES_BODIES = [
    {"model": "gpt-4o-mini", "input": "hi"},
    {"model": "gpt-4o-mini", "input": ASK, "tools": [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": True}]},
    {"model": "o4-mini", "input": "hi", "reasoning": {"effort": "low", "summary": "auto"},
     "text": {"format": {"type": "json_schema", "name": "w", "schema": WEATHER, "strict": True}}},
]


@pytest.mark.parametrize("body", RESPONSES_BODIES)
def test_responses_and_events_validate(emulator_url, body):
    Response.model_validate(post(emulator_url, "/v1/responses", body, OPENAI).json())
    adapter = TypeAdapter(ResponseStreamEvent)
    events = sse_data(post(emulator_url, "/v1/responses", {**body, "stream": True}, OPENAI).text)
    assert events[-1]["type"] == "response.completed"
    for event in events:
        adapter.validate_python(event)


ANTHROPIC = {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
MESSAGES_BODIES = [
    {"messages": [{"role": "user", "content": "hi"}], "stop_sequences": ["offline"]},
    {"messages": [{"role": "user", "content": ASK}], "tools": [{"name": "get_weather", "input_schema": WEATHER}],
     "tool_choice": {"type": "any"}},
    {"messages": [{"role": "user", "content": "hi"}], "output_config": {"format": {"type": "json_schema", "schema": WEATHER}}},
    {"messages": [{"role": "user", "content": "hi"}], "thinking": {"type": "enabled", "budget_tokens": 1024}},
]


@pytest.mark.parametrize("body", MESSAGES_BODIES)
def test_anthropic_messages_and_events_validate(emulator_url, body):
    body = {"model": "claude-haiku-4-5", "max_tokens": 2000, **body}
    Message.model_validate(post(emulator_url, "/v1/messages", body, ANTHROPIC).json())
    adapter = TypeAdapter(RawMessageStreamEvent)
    events = [e for e in sse_data(post(emulator_url, "/v1/messages", {**body, "stream": True}, ANTHROPIC).text) if e["type"] != "ping"]
    assert events[-1]["type"] == "message_stop"
    for event in events:
        adapter.validate_python(event)


GEMINI = {"x-goog-api-key": GEMINI_KEY}
GENERATE_BODIES = [
    {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"thinkingConfig": {"includeThoughts": True}}},
    {"contents": [{"role": "user", "parts": [{"text": ASK}]}],
     "tools": [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": WEATHER}]}]},
    {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
     "generation_config": {"response_mime_type": "application/json", "response_json_schema": WEATHER, "candidate_count": 2}},
]


@pytest.mark.parametrize("body", GENERATE_BODIES)
def test_gemini_responses_and_chunks_validate(emulator_url, body):
    path = "/v1beta/models/gemini-2.5-flash"
    whole = gtypes.GenerateContentResponse.model_validate(post(emulator_url, f"{path}:generateContent", body, GEMINI).json())
    assert whole.candidates and whole.usage_metadata.prompt_token_count > 0
    chunks = sse_data(post(emulator_url, f"{path}:streamGenerateContent?alt=sse", body, GEMINI).text)
    assert chunks
    for chunk in chunks:
        gtypes.GenerateContentResponse.model_validate(chunk)
