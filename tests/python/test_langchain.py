"""LangChain's three chat models through the Hub: plain and streamed text, `bind_tools` with a
tool loop, and `with_structured_output`, answered by the Hub's built-in emulator."""

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from demo_hub import hub  # noqa: F401  (a fixture)


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f'{{"city": "{city}", "temp_c": 21, "sky": "sunny"}}'


class CityFacts(BaseModel):
    name: str
    population: int
    landmarks: list[str]


@pytest.fixture(scope="module")
def models(hub):
    key = hub.create_app("langchain")["key"]
    return {
        "openai": ChatOpenAI(model="gpt-4o-mini", api_key=key, base_url=f"{hub.base}/openai/v1", max_retries=0),
        "openai-responses": ChatOpenAI(
            model="gpt-4o-mini", api_key=key, base_url=f"{hub.base}/openai/v1", max_retries=0, use_responses_api=True
        ),
        "anthropic": ChatAnthropic(
            model="claude-haiku-4-5", api_key=key, base_url=f"{hub.base}/anthropic", max_retries=0
        ),
        "gemini": ChatGoogleGenerativeAI(
            model="gemini-2.5-flash", google_api_key=key, base_url=f"{hub.base}/gemini", max_retries=0
        ),
    }


PROVIDERS = ["openai", "openai-responses", "anthropic", "gemini"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_text_and_stream(models, provider):
    llm = models[provider]
    answer = llm.invoke("hi")
    assert "Workshop Hub offline emulator" in answer.text
    assert answer.usage_metadata["output_tokens"] > 0
    streamed = "".join(chunk.text for chunk in llm.stream("hi"))
    assert "Workshop Hub offline emulator" in streamed


@pytest.mark.parametrize("provider", PROVIDERS)
def test_bind_tools_loop(models, provider):
    llm = models[provider].bind_tools([get_weather])
    messages = [HumanMessage("What is the weather in Paris today?")]
    first = llm.invoke(messages)
    (call,) = first.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Paris"}
    messages += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    final = llm.invoke(messages)
    assert not final.tool_calls and "sunny" in final.text


@pytest.mark.parametrize("provider", PROVIDERS)
def test_with_structured_output(models, provider):
    facts = models[provider].with_structured_output(CityFacts).invoke("Facts about Lisbon.")
    assert isinstance(facts, CityFacts) and facts.name == "Lisbon"
