// The Vercel AI SDK with its three provider packages through the Hub: generateText,
// streamText, a tool the SDK runs itself before answering, and generateObject.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { createAnthropic } from "@ai-sdk/anthropic";
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { createOpenAI } from "@ai-sdk/openai";
import { generateObject, generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

import { startHub } from "./hub.js";

let hub;
before(async () => {
  hub = await startHub();
});
after(() => hub.close());

const providers = {
  "openai responses": () => createOpenAI({ apiKey: hub.key, baseURL: `${hub.base}/openai/v1` })("gpt-4o-mini"),
  "openai chat": () => createOpenAI({ apiKey: hub.key, baseURL: `${hub.base}/openai/v1` }).chat("gpt-4o-mini"),
  anthropic: () => createAnthropic({ apiKey: hub.key, baseURL: `${hub.base}/anthropic/v1` })("claude-haiku-4-5"),
  google: () => createGoogleGenerativeAI({ apiKey: hub.key, baseURL: `${hub.base}/gemini/v1beta` })("gemini-2.5-flash"),
};

for (const [name, model] of Object.entries(providers)) {
  describe(`ai sdk ${name}`, () => {
    test("text", async () => {
      const r = await generateText({ model: model(), prompt: "hi", maxRetries: 0 });
      assert.match(r.text, /Workshop Hub offline emulator/);
      assert.ok(r.usage.outputTokens > 0 && r.usage.inputTokens > 0);
    });

    test("stream", async () => {
      const r = streamText({ model: model(), prompt: "hi", maxRetries: 0 });
      let text = "";
      for await (const piece of r.textStream) text += piece;
      assert.match(text, /Workshop Hub offline emulator/);
      assert.ok((await r.usage).outputTokens > 0);
    });

    test("tool", async () => {
      const seen = [];
      const r = await generateText({
        model: model(),
        prompt: "What is the weather in Paris today?",
        maxRetries: 0,
        tools: {
          get_weather: tool({
            description: "Current weather for a city",
            inputSchema: z.object({ city: z.string() }),
            execute: async ({ city }) => {
              seen.push(city);
              return { city, temp_c: 21, sky: "sunny" };
            },
          }),
        },
        stopWhen: stepCountIs(3),
      });
      assert.deepEqual(seen, ["Paris"]);
      assert.equal(r.steps.length, 2);
      assert.match(r.text, /sunny/);
    });

    test("structured", async () => {
      const r = await generateObject({
        model: model(),
        prompt: "Facts about Lisbon.",
        maxRetries: 0,
        schema: z.object({ name: z.string(), population: z.number().int(), landmarks: z.array(z.string()) }),
      });
      assert.equal(r.object.name, "Lisbon");
      assert.ok(r.object.landmarks.length >= 1);
    });
  });
}
