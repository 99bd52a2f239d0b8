// The Playground's streaming: post the form as JSON and show the answer as it arrives.
// Without this script the form posts normally and the page shows the whole answer.
"use strict";

(function () {
  const form = document.getElementById("playground-form");
  if (!form || !window.fetch || !window.TextDecoder) return;
  const panel = document.getElementById("answer");
  const text = document.getElementById("answer-text");
  const error = document.getElementById("answer-error");

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
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const response = await fetch("/api/v1/playground", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          target: data.get("target"),
          prompt: data.get("prompt"),
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
    } catch (e) {
      showError("The Hub could not be reached: " + e.message);
    } finally {
      button.disabled = false;
    }
  });
})();
