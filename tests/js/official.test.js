// The official Node SDKs (openai, @anthropic-ai/sdk, @google/genai) through the Hub:
// text, stream, a tool-call loop and structured output for each provider.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";
import OpenAI from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";

import { startHub } from "./hub.js";

const ASK = "What is the weather in Paris today?";
const WEATHER = JSON.stringify({ city: "Paris", temp_c: 21, sky: "sunny" });
const WEATHER_SCHEMA = {
  type: "object",
  properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
  required: ["city", "unit"],
  additionalProperties: false,
};
const CITY = z.object({ name: z.string(), population: z.number().int(), landmarks: z.array(z.string()) });
const CITY_SCHEMA = z.toJSONSchema(CITY);

let hub;
before(async () => {
  hub = await startHub();
});
after(() => hub.close());

describe("openai", () => {
  const client = () => new OpenAI({ apiKey: hub.key, baseURL: `${hub.base}/openai/v1`, maxRetries: 0 });
  const tools = [{ type: "function", function: { name: "get_weather", description: "Current weather for a city", parameters: WEATHER_SCHEMA, strict: true } }];

  test("text", async () => {
    const r = await client().chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] });
    assert.match(r.choices[0].message.content, /Workshop Hub offline emulator/);
    assert.ok(r.usage.completion_tokens > 0);
  });

  test("stream", async () => {
    const stream = await client().chat.completions.create({
      model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }], stream: true, stream_options: { include_usage: true },
    });
    let text = "";
    let usage;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      usage = chunk.usage ?? usage;
    }
    assert.match(text, /Workshop Hub offline emulator/);
    assert.ok(usage.completion_tokens > 0);
  });

  test("tool", async () => {
    const c = client();
    const messages = [{ role: "user", content: ASK }];
    const runner = c.chat.completions.stream({ model: "gpt-4o-mini", messages, tools });
    const first = await runner.finalChatCompletion();
    const [call] = first.choices[0].message.tool_calls;
    assert.equal(first.choices[0].finish_reason, "tool_calls");
    assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris", unit: "celsius" });
    messages.push(first.choices[0].message, { role: "tool", tool_call_id: call.id, content: WEATHER });
    const final = await c.chat.completions.create({ model: "gpt-4o-mini", messages, tools });
    assert.match(final.choices[0].message.content, /sunny/);
  });

  test("structured", async () => {
    const r = await client().chat.completions.parse({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Facts about Lisbon." }],
      response_format: zodResponseFormat(CITY, "city"),
    });
    assert.equal(r.choices[0].message.parsed.name, "Lisbon");
  });

  test("responses tool and structured", async () => {
    const c = client();
    const tool = { type: "function", name: "get_weather", description: "Current weather for a city", parameters: WEATHER_SCHEMA, strict: true };
    const first = await c.responses.create({ model: "gpt-4o-mini", input: ASK, tools: [tool] });
    const call = first.output.find((o) => o.type === "function_call");
    const final = await c.responses.create({
      model: "gpt-4o-mini", previous_response_id: first.id, tools: [tool],
      input: [{ type: "function_call_output", call_id: call.call_id, output: WEATHER }],
    });
    assert.match(final.output_text, /sunny/);
    const parsed = await c.responses.parse({
      model: "gpt-4o-mini", input: "Facts about Lisbon.",
      text: { format: { type: "json_schema", name: "city", schema: CITY_SCHEMA, strict: true } },
    });
    assert.equal(JSON.parse(parsed.output_text).name, "Lisbon");
  });
});

describe("anthropic", () => {
  const client = () => new Anthropic({ apiKey: hub.key, baseURL: `${hub.base}/anthropic`, maxRetries: 0 });
  const model = "claude-haiku-4-5";
  const tools = [{ name: "get_weather", description: "Current weather for a city", input_schema: WEATHER_SCHEMA }];

  test("text", async () => {
    const m = await client().messages.create({ model, max_tokens: 300, messages: [{ role: "user", content: "hi" }] });
    assert.match(m.content[0].text, /Workshop Hub offline emulator/);
  });

  test("stream", async () => {
    const stream = client().messages.stream({ model, max_tokens: 300, messages: [{ role: "user", content: "hi" }] });
    let text = "";
    stream.on("text", (t) => (text += t));
    const final = await stream.finalMessage();
    assert.equal(text, final.content[0].text);
    assert.ok(final.usage.output_tokens > 0);
  });

  test("tool", async () => {
    const c = client();
    const messages = [{ role: "user", content: ASK }];
    const first = await c.messages.stream({ model, max_tokens: 500, tools, messages }).finalMessage();
    assert.equal(first.stop_reason, "tool_use");
    const call = first.content.find((b) => b.type === "tool_use");
    assert.deepEqual(call.input, { city: "Paris", unit: "celsius" });
    messages.push({ role: "assistant", content: first.content });
    messages.push({ role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: WEATHER }] });
    const final = await c.messages.create({ model, max_tokens: 500, tools, messages });
    assert.equal(final.stop_reason, "end_turn");
    assert.match(final.content[0].text, /sunny/);
  });

  test("structured", async () => {
    const m = await client().messages.create({
      model, max_tokens: 500, messages: [{ role: "user", content: "Facts about Lisbon." }],
      output_config: { format: { type: "json_schema", schema: CITY_SCHEMA } },
    });
    assert.equal(CITY.parse(JSON.parse(m.content[0].text)).name, "Lisbon");
  });
});

describe("google genai", () => {
  const client = () => new GoogleGenAI({ apiKey: hub.key, httpOptions: { baseUrl: `${hub.base}/gemini` } });
  const model = "gemini-2.5-flash";
  const tools = [{ functionDeclarations: [{ name: "get_weather", description: "Current weather for a city", parametersJsonSchema: WEATHER_SCHEMA }] }];

  test("text", async () => {
    const r = await client().models.generateContent({ model, contents: "hi" });
    assert.match(r.text, /Workshop Hub offline emulator/);
    assert.ok(r.usageMetadata.candidatesTokenCount > 0);
  });

  test("stream", async () => {
    let text = "";
    for await (const chunk of await client().models.generateContentStream({ model, contents: "hi" })) {
      text += chunk.text ?? "";
    }
    assert.match(text, /Workshop Hub offline emulator/);
  });

  test("tool", async () => {
    const c = client();
    const contents = [{ role: "user", parts: [{ text: ASK }] }];
    const first = await c.models.generateContent({ model, contents, config: { tools } });
    const [call] = first.functionCalls;
    assert.equal(call.name, "get_weather");
    assert.deepEqual(call.args, { city: "Paris", unit: "celsius" });
    contents.push(first.candidates[0].content);
    contents.push({ role: "user", parts: [{ functionResponse: { name: "get_weather", response: JSON.parse(WEATHER) } }] });
    const final = await c.models.generateContent({ model, contents, config: { tools } });
    assert.match(final.text, /sunny/);
  });

  test("structured", async () => {
    const r = await client().models.generateContent({
      model, contents: "Facts about Lisbon.",
      config: { responseMimeType: "application/json", responseJsonSchema: CITY_SCHEMA },
    });
    assert.equal(CITY.parse(JSON.parse(r.text)).name, "Lisbon");
  });
});
