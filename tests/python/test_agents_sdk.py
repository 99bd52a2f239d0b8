"""Agent apps through the Hub: tool calls, their results, structured outputs and prompt
caching, with the official SDKs' own helpers, answered by the Hub's built-in emulator (demo
connections).

Each agent loop is the one an app runs: ask, get a tool call, run the tool, send the result,
get a final answer that uses it; streamed and not.
"""

import json
import math
import pathlib
from fractions import Fraction
from typing import Literal

import anthropic
import openai
import pytest
from anthropic import beta_tool
from google import genai
from google.genai import types
from pydantic import BaseModel

from demo_hub import hub  # noqa: F401  (a fixture)

ROOT = pathlib.Path(__file__).resolve().parents[2]

WEATHER_ASK = "What is the weather in Paris today?"


class GetWeather(BaseModel):
    """Current weather for a city."""

    city: str
    unit: Literal["celsius", "fahrenheit"]


class CityFacts(BaseModel):
    name: str
    population: int
    landmarks: list[str]
    capital: bool


def weather_result(city):
    return json.dumps({"city": city, "temp_c": 21, "sky": "sunny"})


@pytest.fixture(scope="module")
def key(hub):
    return hub.create_app("agents")["key"]


def oai(hub, key):
    return openai.OpenAI(api_key=key, base_url=f"{hub.base}/openai/v1", max_retries=0)


def ant(hub, key):
    return anthropic.Anthropic(api_key=key, base_url=f"{hub.base}/anthropic", max_retries=0)


def gem(hub, key):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=f"{hub.base}/gemini"))


# ---------------------------------------------------------------- OpenAI Chat Completions


def test_openai_chat_agent_loop_with_parse(hub, key):
    c = oai(hub, key)
    tools = [openai.pydantic_function_tool(GetWeather)]
    messages = [{"role": "user", "content": WEATHER_ASK}]
    first = c.chat.completions.parse(model="gpt-4o-mini", messages=messages, tools=tools)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_")
    assert call.function.name == "GetWeather"
    assert call.function.parsed_arguments == GetWeather(city="Paris", unit="celsius")
    assert first.usage.completion_tokens > 0
    messages.append(choice.message.model_dump(exclude_none=True, exclude={"parsed"}))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": weather_result("Paris")})
    final = c.chat.completions.parse(model="gpt-4o-mini", messages=messages, tools=tools)
    assert final.choices[0].finish_reason == "stop"
    assert not final.choices[0].message.tool_calls
    assert '"temp_c": 21' in final.choices[0].message.content


def test_openai_chat_agent_loop_streamed(hub, key):
    c = oai(hub, key)
    tools = [openai.pydantic_function_tool(GetWeather)]
    messages = [{"role": "user", "content": WEATHER_ASK}]
    with c.chat.completions.stream(model="gpt-4o-mini", messages=messages, tools=tools) as s:
        kinds = [e.type for e in s]
        first = s.get_final_completion()
    assert "tool_calls.function.arguments.done" in kinds
    (call,) = first.choices[0].message.tool_calls
    assert len(call.id) == len("call_") + 24  # the id is sent once, not concatenated
    assert call.function.name == "GetWeather"
    assert call.function.parsed_arguments == GetWeather(city="Paris", unit="celsius")
    assert first.choices[0].finish_reason == "tool_calls"
    messages.append({"role": "assistant", "tool_calls": [call.model_dump(exclude={"function": {"parsed_arguments"}})]})
    messages.append({"role": "tool", "tool_call_id": call.id, "content": weather_result("Paris")})
    with c.chat.completions.stream(model="gpt-4o-mini", messages=messages, tools=tools) as s:
        final = s.get_final_completion()
    assert "sunny" in final.choices[0].message.content


def two_tools():
    return [
        openai.pydantic_function_tool(GetWeather, name="get_weather"),
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "The local clock time in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        },
    ]


def test_openai_tool_choice_modes(hub, key):
    c = oai(hub, key)
    joke = [{"role": "user", "content": "Tell me a joke."}]
    auto = c.chat.completions.create(model="gpt-4o-mini", messages=joke, tools=two_tools())
    assert auto.choices[0].message.tool_calls is None and auto.choices[0].finish_reason == "stop"
    required = c.chat.completions.create(model="gpt-4o-mini", messages=joke, tools=two_tools(), tool_choice="required")
    assert required.choices[0].message.tool_calls[0].function.name == "get_weather"
    named = c.chat.completions.create(
        model="gpt-4o-mini",
        messages=joke,
        tools=two_tools(),
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [t.function.name for t in named.choices[0].message.tool_calls] == ["get_time"]
    none = c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": WEATHER_ASK}], tools=two_tools(), tool_choice="none"
    )
    assert none.choices[0].message.tool_calls is None


def test_openai_parallel_tool_calls(hub, key):
    c = oai(hub, key)
    ask = [{"role": "user", "content": "What is the weather in Oslo, and the clock time there?"}]
    both = c.chat.completions.create(model="gpt-4o-mini", messages=ask, tools=two_tools())
    assert [t.function.name for t in both.choices[0].message.tool_calls] == ["get_weather", "get_time"]
    assert json.loads(both.choices[0].message.tool_calls[1].function.arguments) == {"city": "Oslo"}
    with c.chat.completions.stream(model="gpt-4o-mini", messages=ask, tools=two_tools()) as s:
        streamed = s.get_final_completion()
    assert [t.function.arguments for t in streamed.choices[0].message.tool_calls] == [
        t.function.arguments for t in both.choices[0].message.tool_calls
    ]
    one = c.chat.completions.create(model="gpt-4o-mini", messages=ask, tools=two_tools(), parallel_tool_calls=False)
    assert len(one.choices[0].message.tool_calls) == 1


def test_openai_tool_choice_for_a_missing_function_is_refused(hub, key):
    c = oai(hub, key)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            tools=two_tools(),
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    assert "nope" in e.value.message


def test_openai_chat_structured_output_parses(hub, key):
    c = oai(hub, key)
    r = c.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Give me facts about Lisbon."}],
        response_format=CityFacts,
    )
    facts = r.choices[0].message.parsed
    assert isinstance(facts, CityFacts)
    assert facts.name == "Lisbon" and len(facts.landmarks) >= 1


# ---------------------------------------------------------------- OpenAI Responses

RESPONSES_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
    "strict": True,
}


def test_openai_responses_agent_loop(hub, key):
    c = oai(hub, key)
    first = c.responses.parse(model="gpt-4o-mini", input=WEATHER_ASK, tools=[RESPONSES_TOOL])
    (call,) = [o for o in first.output if o.type == "function_call"]
    assert call.name == "get_weather" and call.call_id.startswith("call_") and call.id.startswith("fc_")
    assert call.parsed_arguments == {"city": "Paris", "unit": "celsius"}
    assert first.tools[0].name == "get_weather"  # the request's tools are echoed
    follow_up = [
        {"role": "user", "content": WEATHER_ASK},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": weather_result("Paris")},
    ]
    final = c.responses.create(model="gpt-4o-mini", input=follow_up, tools=[RESPONSES_TOOL])
    assert "sunny" in final.output_text


def test_openai_responses_agent_loop_streamed(hub, key):
    c = oai(hub, key)
    with c.responses.stream(model="gpt-4o-mini", input=WEATHER_ASK, tools=[RESPONSES_TOOL]) as s:
        events = list(s)
        first = s.get_final_response()
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(deltas) == {"city": "Paris", "unit": "celsius"} == json.loads(done[0].arguments)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    (call,) = [o for o in first.output if o.type == "function_call"]
    follow_up = [
        {"role": "user", "content": WEATHER_ASK},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": weather_result("Paris")},
    ]
    with c.responses.stream(model="gpt-4o-mini", input=follow_up, tools=[RESPONSES_TOOL]) as s:
        final = s.get_final_response()
    assert "sunny" in final.output_text


def test_openai_responses_structured_output_parses(hub, key):
    c = oai(hub, key)
    r = c.responses.parse(model="gpt-4o-mini", input="Give me facts about Lisbon.", text_format=CityFacts)
    assert isinstance(r.output_parsed, CityFacts) and r.output_parsed.name == "Lisbon"


# ---------------------------------------------------------------- Anthropic


def test_anthropic_tool_runner_loop(hub, key):
    c = ant(hub, key)
    seen = []

    @beta_tool
    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
            city: The city name.
        """
        seen.append(city)
        return weather_result(city)

    runner = c.beta.messages.tool_runner(
        model="claude-haiku-4-5",
        max_tokens=1024,
        tools=[get_weather],
        messages=[{"role": "user", "content": WEATHER_ASK}],
    )
    final = runner.until_done()
    assert seen == ["Paris"]
    assert final.stop_reason == "end_turn"
    assert "sunny" in final.content[-1].text


def test_anthropic_agent_loop_streamed(hub, key):
    c = ant(hub, key)
    tool = {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": GetWeather.model_json_schema(),
    }
    messages = [{"role": "user", "content": WEATHER_ASK}]
    with c.messages.stream(model="claude-haiku-4-5", max_tokens=1024, tools=[tool], messages=messages) as s:
        first = s.get_final_message()
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use" and call.input == {"city": "Paris", "unit": "celsius"}
    messages.append({"role": "assistant", "content": [b.model_dump() for b in first.content]})
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": weather_result("Paris")}]}
    )
    with c.messages.stream(model="claude-haiku-4-5", max_tokens=1024, tools=[tool], messages=messages) as s:
        final = s.get_final_message()
    assert final.stop_reason == "end_turn" and "sunny" in final.content[0].text


def test_anthropic_forced_tool_has_no_text_before_it(hub, key):
    c = ant(hub, key)
    tool = {"name": "get_weather", "description": "Weather", "input_schema": GetWeather.model_json_schema()}
    for choice in ({"type": "any"}, {"type": "tool", "name": "get_weather"}):
        m = c.messages.create(
            model="claude-haiku-4-5",
            max_tokens=1024,
            tools=[tool],
            tool_choice=choice,
            messages=[{"role": "user", "content": "Explain first, then maybe call something."}],
        )
        assert [b.type for b in m.content] == ["tool_use"], choice
        assert m.stop_reason == "tool_use"


def test_anthropic_structured_output_parses(hub, key):
    c = ant(hub, key)
    m = c.messages.parse(
        model="claude-haiku-4-5",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Give me facts about Lisbon."}],
        output_format=CityFacts,
    )
    assert isinstance(m.parsed_output, CityFacts) and m.parsed_output.name == "Lisbon"


# ---------------------------------------------------------------- Gemini


def test_gemini_automatic_function_calling(hub, key):
    c = gem(hub, key)
    seen = []

    def get_weather(city: str) -> dict:
        """Current weather for a city."""
        seen.append(city)
        return json.loads(weather_result(city))

    r = c.models.generate_content(
        model="gemini-2.5-flash", contents=WEATHER_ASK, config=types.GenerateContentConfig(tools=[get_weather])
    )
    assert seen == ["Paris"]
    assert "sunny" in r.text
    history = r.automatic_function_calling_history
    assert history[1].parts[0].function_call.name == "get_weather"


def weather_declaration():
    return types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather",
                description="Current weather for a city",
                parameters_json_schema=GetWeather.model_json_schema(),
            )
        ]
    )


def test_gemini_agent_loop_streamed(hub, key):
    c = gem(hub, key)
    config = types.GenerateContentConfig(tools=[weather_declaration()])
    contents = [types.Content(role="user", parts=[types.Part(text=WEATHER_ASK)])]
    chunks = list(c.models.generate_content_stream(model="gemini-2.5-flash", contents=contents, config=config))
    calls = [p.function_call for ch in chunks for p in ch.candidates[0].content.parts if p.function_call]
    assert [(f.name, f.args) for f in calls] == [("get_weather", {"city": "Paris", "unit": "celsius"})]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    contents.append(chunks[-1].candidates[0].content)
    contents.append(
        types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="get_weather", response=json.loads(weather_result("Paris")))],
        )
    )
    final = "".join(ch.text or "" for ch in c.models.generate_content_stream(model="gemini-2.5-flash", contents=contents, config=config))
    assert "sunny" in final


def test_gemini_function_calling_modes(hub, key):
    c = gem(hub, key)
    tools = [weather_declaration()]

    def ask(mode, names=None):
        config = types.GenerateContentConfig(
            tools=tools,
            tool_config=types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(mode=mode, allowed_function_names=names)
            ),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        return c.models.generate_content(model="gemini-2.5-flash", contents="Tell me a joke.", config=config)

    assert ask("AUTO").function_calls is None
    assert [f.name for f in ask("ANY").function_calls] == ["get_weather"]
    assert [f.name for f in ask("ANY", ["get_weather"]).function_calls] == ["get_weather"]
    assert ask("NONE").function_calls is None


def test_gemini_structured_output_parses(hub, key):
    c = gem(hub, key)
    r = c.models.generate_content(
        model="gemini-2.5-flash",
        contents="Give me facts about Lisbon.",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=CityFacts),
    )
    assert isinstance(r.parsed, CityFacts) and r.parsed.name == "Lisbon"


# ---------------------------------------------------------------- prompt caching, billed


def list_price(provider, model):
    data = json.loads((ROOT / "src" / "catalog" / "models.json").read_text())
    return next(m["price"] for m in data[provider] if m["id"] == model)


def cost_at_list_price(price, uncached=0, cached=0, write_5m=0, write_1h=0, output=0):
    """Micro-USD: the catalog's per-million prices are micro-USD per token; rounded up once."""
    rate = lambda k: Fraction(str(price.get(k, price["input"])))  # noqa: E731
    exact = (
        uncached * rate("input")
        + cached * rate("cached_input")
        + write_5m * rate("cache_write_5m")
        + write_1h * rate("cache_write_1h")
        + output * Fraction(str(price["output"]))
    )
    return math.ceil(exact)


def last_rows(hub, before, n):
    rows = hub.wait_usage(before + n)
    assert len(rows) == before + n
    return rows[before:]


LONG_POLICY = "Every answer must follow the house style of the Workshop Hub policy manual. " * 400


def test_anthropic_cache_breakpoints_write_then_read_and_bill(hub, key):
    c = ant(hub, key)
    before = hub.usage_count()
    kw = dict(
        model="claude-opus-4-5",
        max_tokens=200,
        system=[{"type": "text", "text": LONG_POLICY, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        messages=[{"role": "user", "content": "Summarise the policy."}],
    )
    first = c.messages.create(**kw)
    second = c.messages.create(**kw)
    with c.messages.stream(**kw) as s:
        third = s.get_final_message()
    written = first.usage.cache_creation_input_tokens
    assert written > 4096 and first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == written
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_read_input_tokens == written == third.usage.cache_read_input_tokens
    assert second.usage.input_tokens == first.usage.input_tokens < 20
    price = list_price("anthropic", "claude-opus-4-5")
    rows = last_rows(hub, before, 3)
    assert rows[0]["cache_write_tokens"] == written and rows[1]["cached_input_tokens"] == written
    assert rows[0]["cost_micro_usd"] == cost_at_list_price(
        price, uncached=first.usage.input_tokens, write_1h=written, output=first.usage.output_tokens
    )
    assert rows[1]["cost_micro_usd"] == cost_at_list_price(
        price, uncached=second.usage.input_tokens, cached=written, output=second.usage.output_tokens
    )
    assert rows[1]["cost_micro_usd"] < rows[0]["cost_micro_usd"] / 5


def test_anthropic_short_prefix_is_not_cached(hub, key):
    c = ant(hub, key)
    kw = dict(
        model="claude-opus-4-5",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
    )
    c.messages.create(**kw)
    again = c.messages.create(**kw)
    assert again.usage.cache_read_input_tokens == 0 and again.usage.cache_creation_input_tokens == 0


def test_openai_automatic_caching_in_128_token_steps_and_billing(hub, key):
    c = oai(hub, key)
    before = hub.usage_count()
    messages = [{"role": "system", "content": LONG_POLICY}, {"role": "user", "content": "Summarise it."}]
    first = c.chat.completions.create(model="gpt-4o-mini", messages=messages)
    second = c.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and (cached - 1024) % 128 == 0
    assert second.usage.prompt_tokens - 128 < cached <= second.usage.prompt_tokens
    r = c.responses.create(model="gpt-4o-mini", instructions=LONG_POLICY, input="Summarise it.")
    r2 = c.responses.create(model="gpt-4o-mini", instructions=LONG_POLICY, input="Summarise it.")
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r2.usage.input_tokens_details.cached_tokens >= 1024
    assert r2.usage.input_tokens_details.cache_write_tokens == 0
    rows = last_rows(hub, before, 4)
    price = list_price("openai", "gpt-4o-mini")
    assert rows[1]["cached_input_tokens"] == cached
    assert rows[1]["cost_micro_usd"] == cost_at_list_price(
        price,
        uncached=second.usage.prompt_tokens - cached,
        cached=cached,
        output=second.usage.completion_tokens,
    )
    assert rows[1]["cost_micro_usd"] < rows[0]["cost_micro_usd"]


def test_gemini_implicit_caching_is_billed(hub, key):
    c = gem(hub, key)
    before = hub.usage_count()
    config = types.GenerateContentConfig(system_instruction=LONG_POLICY)
    first = c.models.generate_content(model="gemini-2.5-flash", contents="Summarise it.", config=config)
    second = c.models.generate_content(model="gemini-2.5-flash", contents="Summarise it.", config=config)
    assert first.usage_metadata.cached_content_token_count is None
    cached = second.usage_metadata.cached_content_token_count
    assert 1024 <= cached <= second.usage_metadata.prompt_token_count
    assert second.usage_metadata.cache_tokens_details[0].token_count == cached
    rows = last_rows(hub, before, 2)
    assert rows[1]["cached_input_tokens"] == cached
    u = second.usage_metadata
    assert rows[1]["cost_micro_usd"] == cost_at_list_price(
        list_price("gemini", "gemini-2.5-flash"),
        uncached=u.prompt_token_count - cached,
        cached=cached,
        output=u.candidates_token_count + u.thoughts_token_count,
    )


# ---------------------------------------------------------------- images and PDFs


def png(width, height):
    """A real, blank RGB PNG of the given size."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = (b"\x00" + b"\x00" * width * 3) * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def b64(data):
    import base64

    return base64.b64encode(data).decode()


PDF_3_PAGES = b"%PDF-1.4\n1 0 obj <</Type /Pages /Count 3>> endobj\n" + b"2 0 obj <</Type /Page>> endobj\n" * 3


def test_openai_images_use_the_tile_rule_and_are_billed(hub, key):
    c = oai(hub, key)
    before = hub.usage_count()
    url = "data:image/png;base64," + b64(png(1024, 1024))

    def prompt_tokens(*parts):
        content = [{"type": "text", "text": "What is in this picture?"}, *parts]
        r = c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
        return r.usage.prompt_tokens

    text_only = prompt_tokens()
    high = prompt_tokens({"type": "image_url", "image_url": {"url": url, "detail": "high"}})
    low = prompt_tokens({"type": "image_url", "image_url": {"url": url, "detail": "low"}})
    assert high - text_only == 85 + 170 * 4  # 1024² → 768² → four 512-px tiles
    assert low - text_only == 85
    rows = last_rows(hub, before, 3)
    assert rows[1]["input_tokens"] == high


def test_anthropic_images_and_pdfs_are_counted(hub, key):
    c = ant(hub, key)

    def input_tokens(*blocks):
        content = [{"type": "text", "text": "Describe it."}, *blocks]
        return c.messages.count_tokens(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": content}]
        ).input_tokens

    text_only = input_tokens()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(png(1000, 750))}}
    assert input_tokens(image) - text_only == 1000  # 1000 × 750 / 750
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(PDF_3_PAGES)}}
    per_page = input_tokens(pdf) - text_only
    assert per_page % 3 == 0 and per_page > 3000
    m = c.messages.create(
        model="claude-haiku-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": [{"type": "text", "text": "Describe it."}, image]}],
    )
    assert m.usage.input_tokens == text_only + 1000


def test_gemini_images_and_pdfs_by_modality(hub, key):
    c = gem(hub, key)
    r = c.models.generate_content(
        model="gemini-2.5-flash",
        contents=[
            "Describe both.",
            types.Part.from_bytes(data=png(1000, 500), mime_type="image/png"),
            types.Part.from_bytes(data=PDF_3_PAGES, mime_type="application/pdf"),
        ],
    )
    details = {d.modality.value: d.token_count for d in r.usage_metadata.prompt_tokens_details}
    assert details["IMAGE"] == 2 * 258  # two 768-px tiles
    assert details["DOCUMENT"] == 3 * 258
    assert sum(details.values()) == r.usage_metadata.prompt_token_count


def test_openai_responses_continue_from_a_previous_response(hub, key):
    c = oai(hub, key)
    first = c.responses.create(model="gpt-4o-mini", input=WEATHER_ASK, tools=[RESPONSES_TOOL])
    call = first.output[0]
    assert call.type == "function_call"
    final = c.responses.create(
        model="gpt-4o-mini",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": weather_result("Paris")}],
        tools=[RESPONSES_TOOL],
    )
    assert final.previous_response_id == first.id and "sunny" in final.output_text
