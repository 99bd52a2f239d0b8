// The Playground's streaming: post the form as JSON and show the answer as it arrives.
// Without this script the form posts normally and the page shows the whole answer.
"use strict";

(function () {
  const form = document.getElementById("playground-form");
  if (!form || !window.fetch || !window.TextDecoder) return;
  const panel = document.getElementById("answer");
  const text = document.getElementById("answer-text");
  const error = document.getElementById("answer-error");
  const meta = document.getElementById("answer-meta");
  const code = document.getElementById("answer-code");
  const sdk = document.getElementById("answer-sdk");
  const snippet = document.getElementById("answer-snippet");
  const base = panel.dataset.base || location.origin;
  let last = null;

  // The same request from an app, with the SDK the person picked.
  const snippets = {
    openai: {
      python: (m) => `from openai import OpenAI\n\nclient = OpenAI(base_url="${base}/openai/v1", api_key="YOUR_APP_KEY")\nreply = client.chat.completions.create(\n    model="${m}",\n    messages=[{"role": "user", "content": "Hello!"}],\n)\nprint(reply.choices[0].message.content)`,
      javascript: (m) => `import OpenAI from "openai";\n\nconst client = new OpenAI({ baseURL: "${base}/openai/v1", apiKey: "YOUR_APP_KEY" });\nconst reply = await client.chat.completions.create({\n  model: "${m}",\n  messages: [{ role: "user", content: "Hello!" }],\n});\nconsole.log(reply.choices[0].message.content);`,
      curl: (m) => `curl ${base}/openai/v1/chat/completions \\\n  -H "Authorization: Bearer YOUR_APP_KEY" -H "Content-Type: application/json" \\\n  -d '{"model": "${m}", "messages": [{"role": "user", "content": "Hello!"}]}'`,
    },
    anthropic: {
      python: (m) => `import anthropic\n\nclient = anthropic.Anthropic(base_url="${base}/anthropic", api_key="YOUR_APP_KEY")\nreply = client.messages.create(\n    model="${m}", max_tokens=256,\n    messages=[{"role": "user", "content": "Hello!"}],\n)\nprint(reply.content[0].text)`,
      javascript: (m) => `import Anthropic from "@anthropic-ai/sdk";\n\nconst client = new Anthropic({ baseURL: "${base}/anthropic", apiKey: "YOUR_APP_KEY" });\nconst reply = await client.messages.create({\n  model: "${m}", max_tokens: 256,\n  messages: [{ role: "user", content: "Hello!" }],\n});\nconsole.log(reply.content[0].text);`,
      curl: (m) => `curl ${base}/anthropic/v1/messages \\\n  -H "x-api-key: YOUR_APP_KEY" -H "anthropic-version: 2023-06-01" -H "Content-Type: application/json" \\\n  -d '{"model": "${m}", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello!"}]}'`,
    },
    gemini: {
      python: (m) => `from google import genai\nfrom google.genai import types\n\nclient = genai.Client(api_key="YOUR_APP_KEY",\n    http_options=types.HttpOptions(base_url="${base}/gemini"))\nreply = client.models.generate_content(model="${m}", contents="Hello!")\nprint(reply.text)`,
      javascript: (m) => `import { GoogleGenAI } from "@google/genai";\n\nconst ai = new GoogleGenAI({ apiKey: "YOUR_APP_KEY", httpOptions: { baseUrl: "${base}/gemini" } });\nconst reply = await ai.models.generateContent({ model: "${m}", contents: "Hello!" });\nconsole.log(reply.text);`,
      curl: (m) => `curl ${base}/gemini/v1beta/models/${m}:generateContent \\\n  -H "x-goog-api-key: YOUR_APP_KEY" -H "Content-Type: application/json" \\\n  -d '{"contents": [{"parts": [{"text": "Hello!"}]}]}'`,
    },
  };

  function showSnippet() {
    if (!last) return;
    const forProvider = snippets[last.provider] || snippets.openai;
    snippet.textContent = (forProvider[sdk.value] || forProvider.python)(last.model);
    code.hidden = false;
  }
  sdk.addEventListener("change", showSnippet);

  // Dollars from micro-USD: to the cent, with the exact amount for the title.
  function money(micro) {
    const exact = "$" + (micro / 1e6).toFixed(6).replace(/0+$/, "").replace(/\.$/, ".00");
    const cents = micro > 0 && micro < 5000 ? "<$0.01" : "$" + (micro / 1e6).toFixed(2);
    return { cents, exact };
  }

  function addMeta(term, value, title) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    if (title) dd.title = title;
    meta.append(dt, dd);
  }

  // What the Hub recorded for this answer: the newest Playground row on that connection.
  // The Hub writes usage rows in the background, so look a few times.
  async function findRow(connectionId, since) {
    for (let attempt = 0; attempt < 10; attempt++) {
      const response = await fetch("/api/v1/usage/requests?limit=20");
      if (!response.ok) return null;
      const rows = (await response.json()).data || [];
      const row = rows.find((r) => r.connection_id === connectionId && Date.parse(r.started_at) >= since);
      if (row) return row;
      await new Promise((done) => setTimeout(done, 300));
    }
    return null;
  }

  async function showMeta(connectionId, connectionLabel, since) {
    const row = await findRow(connectionId, since);
    if (!row) return;
    meta.textContent = "";
    addMeta("Model", row.model || "");
    addMeta("Connection", connectionLabel);
    addMeta("Tokens", `${row.input_tokens} in · ${row.output_tokens} out`);
    const cost = money(row.cost_micro_usd || 0);
    if (row.billed_to === "provider") {
      addMeta("Cost", `billed by provider (about ${cost.cents})`, "Estimated " + cost.exact);
    } else {
      addMeta("Cost", `${cost.cents} from credits`, "Exactly " + cost.exact);
    }
    addMeta("Latency", `${row.latency_ms} ms`);
    if (row.ttfb_ms !== null && row.ttfb_ms !== undefined) addMeta("Time to first token", `${row.ttfb_ms} ms`);
    meta.hidden = false;
  }

  // The text in one event of each provider's own stream format.
  const readers = {
    openai: (e) => (e.choices && e.choices[0] && e.choices[0].delta && e.choices[0].delta.content) || "",
    anthropic: (e) => (e.type === "content_block_delta" && e.delta && e.delta.type === "text_delta" ? e.delta.text : ""),
    gemini: (e) => {
      const parts = (e.candidates && e.candidates[0] && e.candidates[0].content && e.candidates[0].content.parts) || [];
      return parts.filter((p) => !p.thought).map((p) => p.text || "").join("");
    },
  };

  function showError(message) {
    error.textContent = message;
    error.hidden = false;
  }

  function handleEvent(raw, read) {
    for (const line of raw.split(/\r?\n/)) {
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (!data || data === "[DONE]") continue;
      let event;
      try { event = JSON.parse(data); } catch (_) { continue; }
      if (event.error) { showError(event.error.message || "The provider sent an error."); continue; }
      text.textContent += read(event);
    }
  }

  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const data = new FormData(form);
    panel.hidden = false;
    text.textContent = "";
    error.hidden = true;
    meta.hidden = true;
    code.hidden = true;
    const target = String(data.get("target") || "");
    const [connectionId, model] = target.split("|");
    const choice = form.querySelector("select[name=target]");
    const group = choice.selectedOptions[0] && choice.selectedOptions[0].parentElement;
    const connectionLabel = (group && group.label) || connectionId;
    text.setAttribute("aria-busy", "true");
    const since = Date.now() - 2000;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const response = await fetch("/api/v1/playground", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          target: data.get("target"),
          prompt: data.get("prompt"),
          system: data.get("system") || "",
          history: data.get("history") || "",
          max_tokens: Number(data.get("max_tokens")) || undefined,
        }),
      });
      const provider = response.headers.get("x-workshop-provider");
      const type = response.headers.get("content-type") || "";
      if (!response.ok || !type.startsWith("text/event-stream")) {
        const body = await response.json().catch(() => ({}));
        const e = Array.isArray(body) ? body[0] && body[0].error : body.error;
        showError((e && e.message) || `The request failed (HTTP ${response.status}).`);
        return;
      }
      const read = readers[provider] || readers.openai;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const events = buffer.split(/\r?\n\r?\n/);
        buffer = events.pop();
        events.forEach((raw) => handleEvent(raw, read));
      }
      if (buffer.trim()) handleEvent(buffer, read);
      last = { provider, model };
      showSnippet();
      await showMeta(connectionId, connectionLabel, since);
    } catch (e) {
      showError("The Hub could not be reached: " + e.message);
    } finally {
      text.removeAttribute("aria-busy");
      button.disabled = false;
    }
  });
})();
