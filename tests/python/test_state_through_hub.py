"""Provider-side state reached through the Hub on a managed connection: OpenAI stored
responses (retrieve, delete) and Gemini context caches (create, get, list, use, update,
delete). These endpoints are metered as free calls: recorded, billed to no one."""

import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from demo_hub import hub  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def key(hub):
    return hub.create_app("state")["key"]


def rows_since(hub, before, count):
    """The `count` records written after the first `before`, waiting for them."""
    rows = hub.wait_usage(before + count)[before:]
    assert len(rows) == count, rows
    return rows


def test_openai_stored_responses_through_the_hub(hub, key):
    c = openai.OpenAI(api_key=key, base_url=f"{hub.base}/openai/v1", max_retries=0)
    before = hub.usage_count()
    first = c.responses.create(model="gpt-4o-mini", input="Say hello.")
    assert c.responses.retrieve(first.id).id == first.id
    c.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(first.id)
    rows = rows_since(hub, before, 4)
    assert [r["endpoint"] for r in rows] == ["responses"] + ["stored_response"] * 3
    assert rows[0]["billed_to"] == "credits" and rows[0]["cost_micro_usd"] > 0
    assert all(r["billed_to"] == "none" and not r["cost_micro_usd"] for r in rows[1:])
    assert rows[3]["status"] == 404


def test_gemini_context_caches_through_the_hub(hub, key):
    c = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=f"{hub.base}/gemini"))
    before = hub.usage_count()
    document = types.Content(role="user", parts=[types.Part(text="The Workshop Hub manual says hello. " * 300)])
    cache = c.caches.create(
        model="gemini-2.5-flash",
        config=types.CreateCachedContentConfig(contents=[document], display_name="manual", ttl="300s"),
    )
    tokens = cache.usage_metadata.total_token_count
    assert tokens >= 1024
    assert c.caches.get(name=cache.name).display_name == "manual"
    assert cache.name in [x.name for x in c.caches.list()]
    r = c.models.generate_content(
        model="gemini-2.5-flash",
        contents="What does it say?",
        config=types.GenerateContentConfig(cached_content=cache.name),
    )
    assert r.usage_metadata.cached_content_token_count == tokens
    updated = c.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="7200s"))
    assert (updated.expire_time - cache.create_time).total_seconds() > 7000
    c.caches.delete(name=cache.name)
    with pytest.raises(genai_errors.ClientError) as e:
        c.caches.get(name=cache.name)
    assert e.value.code == 404
    rows = rows_since(hub, before, 7)
    generated = [r for r in rows if r["endpoint"] == "generate_content"]
    assert len(generated) == 1 and generated[0]["cached_input_tokens"] == tokens
    assert generated[0]["billed_to"] == "credits" and generated[0]["cost_micro_usd"] > 0
    caches = [r for r in rows if r["endpoint"] == "cached_contents"]
    assert len(caches) == 6 and all(r["billed_to"] == "none" for r in caches)
