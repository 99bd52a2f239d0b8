// The OpenAI-compatible surface (`/v1`) from JavaScript: the official openai Node SDK and
// the Vercel AI SDK's OpenAI-compatible provider reach Claude and Gemini models with one
// base URL and the app key: text, stream, a tool call and its answer.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, stepCountIs, streamText, tool } from "ai";
import OpenAI from "openai";
import { z } from "zod";

import { startHub } from "./hub.js";

const WEATHER = JSON.stringify({ city: "Paris", temp_c: 21, sky: "sunny" });
const MODELS = ["claude-sonnet-4-5", "gemini-2.5-flash"];

let hub;
before(async () => {
  hub = await startHub();
});
after(() => hub.close());

describe("openai Node SDK through /v1", () => {
  const client = () => new OpenAI({ apiKey: hub.key, baseURL: `${hub.base}/v1`, maxRetries: 0 });
  const tools = [{
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather for a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  }];

  for (const model of MODELS) {
    test(`${model}: text and usage`, async () => {
      const r = await client().chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] });
      assert.ok(r.choices[0].message.content.length > 0);
      assert.equal(r.choices[0].finish_reason, "stop");
      assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
    });

    test(`${model}: stream with usage`, async () => {
      const stream = await client().chat.completions.create({
        model, messages: [{ role: "user", content: "hi" }], stream: true, stream_options: { include_usage: true },
      });
      let text = "";
      let usage;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta?.content ?? "";
        usage = chunk.usage ?? usage;
      }
      assert.ok(text.length > 0);
      assert.ok(usage.completion_tokens > 0);
    });

    test(`${model}: a tool call and its answer`, async () => {
      const c = client();
      const messages = [{ role: "user", content: "What is the weather in Paris today?" }];
      const first = await c.chat.completions.create({ model, messages, tools, tool_choice: "required" });
      assert.equal(first.choices[0].finish_reason, "tool_calls");
      const [call] = first.choices[0].message.tool_calls;
      assert.equal(call.function.name, "get_weather");
      assert.equal(JSON.parse(call.function.arguments).city.length > 0, true);
      messages.push(first.choices[0].message, { role: "tool", tool_call_id: call.id, content: WEATHER });
      const final = await c.chat.completions.create({ model, messages, tools });
      assert.match(final.choices[0].message.content, /sunny/);
    });
  }

  test("a bare unknown model says how to name it", async () => {
    await assert.rejects(
      client().chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "hi" }] }),
      (e) => e.status === 404 && e.code === "model_not_available",
    );
  });
});

describe("Vercel AI SDK, OpenAI-compatible provider, through /v1", () => {
  const model = (id) => createOpenAICompatible({ name: "workshop-hub", apiKey: hub.key, baseURL: `${hub.base}/v1` })(id);

  for (const id of MODELS) {
    test(`${id}: text`, async () => {
      const r = await generateText({ model: model(id), prompt: "hi" });
      assert.ok(r.text.length > 0);
      assert.ok(r.usage.outputTokens > 0);
    });

    test(`${id}: stream`, async () => {
      const r = streamText({ model: model(id), prompt: "hi" });
      let text = "";
      for await (const part of r.textStream) text += part;
      assert.ok(text.length > 0);
    });

    test(`${id}: tool loop`, async () => {
      const r = await generateText({
        model: model(id),
        prompt: "What is the weather in Paris today?",
        tools: {
          get_weather: tool({
            description: "Current weather for a city",
            inputSchema: z.object({ city: z.string() }),
            execute: async () => WEATHER,
          }),
        },
        toolChoice: "auto",
        stopWhen: stepCountIs(3),
      });
      assert.ok(r.steps.some((s) => s.toolCalls.length > 0), "the model called the tool");
      assert.match(r.text, /sunny/);
    });
  }
});
