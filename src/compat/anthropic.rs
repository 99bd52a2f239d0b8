//! OpenAI Chat Completions ⇄ Anthropic Messages: the request, the whole answer, the event
//! stream (chunk by chunk, tool-call fragments included) and the usage in OpenAI's terms.

use bytes::Bytes;
use serde_json::{Value, json};

use super::request::{self, Chat, Format, Image, Invalid, Part, ToolChoice, Turn};
use super::stream::{Chunks, Translator};
use super::{Native, Target, error};
use crate::gateway::Outgoing;
use crate::providers::Provider;

pub const API_VERSION: &str = "2023-06-01";

/// Used when neither the request nor the catalog gives a maximum output (Anthropic needs one).
const FALLBACK_MAX_TOKENS: u64 = 4096;

const JSON_ONLY: &str = "Answer with a single valid JSON object and nothing else.";

pub(super) fn request(target: &Target, body: &Value) -> Result<Native, Invalid> {
    let chat = request::read(body)?;
    refuse_unhonourable(&chat)?;
    let max_tokens = chat
        .max_tokens
        .or(target.max_output_tokens)
        .unwrap_or(FALLBACK_MAX_TOKENS);
    let mut out = json!({
        "model": target.native,
        "max_tokens": max_tokens,
        "messages": messages(&chat.turns),
    });
    let mut system = chat.system.clone();
    match &chat.format {
        Format::Text => {}
        Format::JsonObject => system.push(JSON_ONLY.into()),
        Format::JsonSchema(schema) => {
            out["output_config"] = json!({"format": {"type": "json_schema", "schema": schema}});
        }
    }
    if !system.is_empty() {
        out["system"] = Value::from(system.join("\n\n"));
    }
    if let Some(t) = chat.temperature {
        out["temperature"] = json!(t);
    }
    if let Some(p) = chat.top_p {
        out["top_p"] = json!(p);
    }
    if !chat.stop.is_empty() {
        out["stop_sequences"] = json!(chat.stop);
    }
    if !chat.tools.is_empty() {
        out["tools"] = tools(&chat);
    }
    if let Some(choice) = tool_choice(&chat) {
        out["tool_choice"] = choice;
    }
    if let Some(budget) = thinking_budget(&chat)? {
        if budget >= max_tokens {
            return Err(Invalid::param(
                "max_completion_tokens",
                format!(
                    "must be above the thinking budget of {budget} tokens that reasoning_effort asks for"
                ),
            ));
        }
        out["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
    }
    if chat.stream {
        out["stream"] = Value::Bool(true);
    }
    Ok(Native {
        path: "/v1/messages".into(),
        query: String::new(),
        body: Bytes::from(out.to_string()),
        stream: chat.stream,
        include_usage: chat.include_usage,
    })
}

fn refuse_unhonourable(chat: &Chat) -> Result<(), Invalid> {
    if chat.n.is_some_and(|n| n > 1) {
        return Err(Invalid::unsupported("n", "Anthropic"));
    }
    if chat.seed.is_some() {
        return Err(Invalid::unsupported("seed", "Anthropic"));
    }
    if chat.presence_penalty.is_some() {
        return Err(Invalid::unsupported("presence_penalty", "Anthropic"));
    }
    if chat.frequency_penalty.is_some() {
        return Err(Invalid::unsupported("frequency_penalty", "Anthropic"));
    }
    if chat.temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return Err(Invalid::param(
            "temperature",
            "Anthropic models take 0 to 1",
        ));
    }
    Ok(())
}

/// Documented gateway convention for Anthropic (LiteLLM's): low/medium/high → 1024/2048/4096.
fn thinking_budget(chat: &Chat) -> Result<Option<u64>, Invalid> {
    let budget = match chat.reasoning_effort.as_deref() {
        None | Some("none" | "minimal") => return Ok(None),
        Some("low") => 1024,
        Some("medium") => 2048,
        Some("high") => 4096,
        Some(_) => {
            return Err(Invalid::param(
                "reasoning_effort",
                "must be none, minimal, low, medium or high",
            ));
        }
    };
    if chat.temperature.is_some_and(|t| t != 1.0) {
        return Err(Invalid::param(
            "temperature",
            "with reasoning_effort, Anthropic models take only 1",
        ));
    }
    if matches!(
        chat.tool_choice,
        ToolChoice::Required | ToolChoice::Named(_)
    ) {
        return Err(Invalid::param(
            "tool_choice",
            "with reasoning_effort, Anthropic models take only auto or none",
        ));
    }
    Ok(Some(budget))
}

/// Turns as Anthropic's alternating messages: tool results become one user turn, and
/// consecutive same-role turns are merged; empty text is dropped.
fn messages(turns: &[Turn]) -> Value {
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for turn in turns {
        let (role, blocks) = match turn {
            Turn::User(parts) => ("user", parts.iter().filter_map(user_block).collect()),
            Turn::Assistant {
                text,
                calls,
                thinking,
            } => {
                let mut blocks = thinking.clone();
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                blocks.extend(calls.iter().map(|c| {
                    json!({"type": "tool_use", "id": sanitize_id(&c.id), "name": c.name, "input": c.arguments})
                }));
                ("assistant", blocks)
            }
            Turn::Tool { call_id, content } => (
                "user",
                vec![
                    json!({"type": "tool_result", "tool_use_id": sanitize_id(call_id), "content": content}),
                ],
            ),
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    Value::Array(
        out.into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect(),
    )
}

fn user_block(part: &Part) -> Option<Value> {
    match part {
        Part::Text(t) if t.is_empty() => None,
        Part::Text(t) => Some(json!({"type": "text", "text": t})),
        Part::Image(Image::Data { media_type, data }) => Some(
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}),
        ),
        Part::Image(Image::Url(url)) => {
            Some(json!({"type": "image", "source": {"type": "url", "url": url}}))
        }
    }
}

/// Anthropic ids are `[A-Za-z0-9_-]+`.
fn sanitize_id(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "call_0".into()
    } else {
        clean
    }
}

fn tools(chat: &Chat) -> Value {
    Value::Array(
        chat.tools
            .iter()
            .map(|t| {
                let mut tool = json!({
                    "name": t.name,
                    "input_schema": t.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                });
                if let Some(d) = &t.description {
                    tool["description"] = Value::from(d.as_str());
                }
                if let Some(s) = t.strict {
                    tool["strict"] = Value::Bool(s);
                }
                tool
            })
            .collect(),
    )
}

fn tool_choice(chat: &Chat) -> Option<Value> {
    let mut choice = match &chat.tool_choice {
        ToolChoice::Unset if chat.tools.is_empty() => return None,
        ToolChoice::Unset | ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::None => return Some(json!({"type": "none"})),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::Named(name) => json!({"type": "tool", "name": name}),
    };
    match chat.parallel_tool_calls {
        Some(false) => choice["disable_parallel_tool_use"] = Value::Bool(true),
        _ if chat.tool_choice == ToolChoice::Unset => return None,
        _ => {}
    }
    Some(choice)
}

pub(super) fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic's usage in OpenAI's terms: the prompt includes cache reads and writes (Anthropic's
/// `input_tokens` excludes them); the completion already includes thinking.
pub(super) fn usage(u: &Value) -> Value {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let read = n("cache_read_input_tokens");
    let write = n("cache_creation_input_tokens");
    let prompt = n("input_tokens") + read + write;
    let completion = n("output_tokens");
    let reasoning = u["output_tokens_details"]["thinking_tokens"]
        .as_u64()
        .unwrap_or(0);
    super::usage(prompt, read, write, completion, reasoning)
}

pub(super) fn response(
    out: Outgoing,
    model: &str,
    streamed: bool,
    include_usage: bool,
) -> Outgoing {
    super::translated(
        out,
        Provider::Anthropic,
        streamed,
        || Box::new(Stream::new(model, include_usage)),
        |v| completion(v, model),
    )
}

fn completion(v: &Value, model: &str) -> Value {
    let blocks = v["content"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let joined = |kind: &str, field: &str| -> String {
        blocks
            .iter()
            .filter(|b| b["type"] == kind)
            .filter_map(|b| b[field].as_str())
            .collect()
    };
    let text = joined("text", "text");
    let reasoning = joined("thinking", "thinking");
    let calls: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| {
            json!({"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": b["input"].to_string()}})
        })
        .collect();
    let mut message = super::message(text, reasoning, calls);
    let thinking: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "thinking" || b["type"] == "redacted_thinking")
        .cloned()
        .collect();
    if !thinking.is_empty() {
        // Handed back in the next request's assistant message, they keep a tool loop with
        // reasoning valid (LiteLLM's name for the same field).
        message["thinking_blocks"] = Value::Array(thinking);
    }
    json!({
        "id": format!("chatcmpl-{}", v["id"].as_str().unwrap_or_default()),
        "object": "chat.completion",
        "created": super::now_secs(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(v["stop_reason"].as_str().unwrap_or("end_turn")),
        }],
        "usage": usage(&v["usage"]),
    })
}

/// Anthropic's events → OpenAI chunks.
struct Stream {
    chunks: Chunks,
    /// Anthropic content-block index → OpenAI tool-call index (text blocks take indexes too).
    tools: Vec<(u64, u64)>,
    usage: Value,
    stop_reason: Option<String>,
    stopped: bool,
    failed: bool,
}

impl Stream {
    fn new(model: &str, include_usage: bool) -> Stream {
        Stream {
            chunks: Chunks::new(model, include_usage),
            tools: Vec::new(),
            usage: json!({}),
            stop_reason: None,
            stopped: false,
            failed: false,
        }
    }

    fn tool_index(&self, block: u64) -> Option<u64> {
        self.tools
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, i)| *i)
    }

    fn merge_usage(&mut self, u: &Value) {
        if let (Some(into), Some(from)) = (self.usage.as_object_mut(), u.as_object()) {
            for (k, v) in from {
                if !v.is_null() {
                    into.insert(k.clone(), v.clone());
                }
            }
        }
    }

    fn block_start(&mut self, ev: &Value, out: &mut Vec<u8>) {
        let block = &ev["content_block"];
        if block["type"] != "tool_use" {
            return;
        }
        let index = self.tools.len() as u64;
        self.tools.push((ev["index"].as_u64().unwrap_or(0), index));
        let call = json!({"index": index, "id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": ""}});
        self.chunks
            .delta(out, 0, json!({"tool_calls": [call]}), None);
    }

    fn block_delta(&mut self, ev: &Value, out: &mut Vec<u8>) {
        let delta = &ev["delta"];
        let openai = match delta["type"].as_str() {
            Some("text_delta") => json!({"content": delta["text"]}),
            Some("thinking_delta") => json!({"reasoning_content": delta["thinking"]}),
            Some("input_json_delta") => {
                let fragment = delta["partial_json"].as_str().unwrap_or_default();
                let Some(index) = self.tool_index(ev["index"].as_u64().unwrap_or(0)) else {
                    return;
                };
                if fragment.is_empty() {
                    return;
                }
                json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
            }
            _ => return,
        };
        self.chunks.delta(out, 0, openai, None);
    }
}

impl Translator for Stream {
    fn event(&mut self, _name: Option<&str>, data: &[u8], out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        let Ok(ev) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        match ev["type"].as_str() {
            Some("message_start") => {
                self.merge_usage(&ev["message"]["usage"]);
                self.chunks
                    .delta(out, 0, json!({"role": "assistant", "content": ""}), None);
            }
            Some("content_block_start") => self.block_start(&ev, out),
            Some("content_block_delta") => self.block_delta(&ev, out),
            Some("message_delta") => {
                if let Some(r) = ev["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(r.to_string());
                }
                self.merge_usage(&ev["usage"]);
            }
            Some("message_stop") => self.stopped = true,
            Some("error") => {
                let e = &ev["error"];
                let code = e["details"]["error_code"]
                    .as_str()
                    .or(e["type"].as_str())
                    .unwrap_or("error");
                out.extend(error::stream_error(
                    code,
                    e["message"]
                        .as_str()
                        .unwrap_or("The provider failed mid-stream."),
                ));
                self.failed = true;
            }
            _ => {}
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        if !self.stopped {
            out.extend(error::stream_error(
                "upstream_stream_cut",
                "The provider's stream ended before the answer finished. Retry the request.",
            ));
            return;
        }
        let finish = finish_reason(self.stop_reason.as_deref().unwrap_or("end_turn"));
        self.chunks.delta(out, 0, json!({}), Some(finish));
        self.chunks.close(out, usage(&self.usage));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::compat::stream::tests::{json_chunks, run};

    fn target() -> Target {
        Target {
            provider: Provider::Anthropic,
            native: "claude-sonnet-4-5".into(),
            max_output_tokens: Some(64000),
        }
    }

    fn native(body: Value) -> Value {
        let n = request(&target(), &body).unwrap();
        serde_json::from_slice(&n.body).unwrap()
    }

    #[test]
    fn the_request_maps_field_by_field() {
        let v = native(json!({"model": "claude-sonnet-4-5", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}]}],
            "temperature": 0.5, "top_p": 0.9, "stop": ["END"], "max_tokens": 100, "user": "ignored"}));
        assert_eq!(v["system"], "be brief");
        assert_eq!(v["max_tokens"], 100);
        assert_eq!(v["temperature"], 0.5);
        assert_eq!(v["top_p"], 0.9);
        assert_eq!(v["stop_sequences"], json!(["END"]));
        assert_eq!(
            v["messages"].as_array().unwrap().len(),
            1,
            "same-role turns merge"
        );
        assert_eq!(
            v["messages"][0]["content"],
            json!([
            {"type": "text", "text": "hi"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}])
        );
        assert!(v.get("user").is_none());
    }

    #[test]
    fn max_tokens_defaults_to_the_catalogs_max_output() {
        let v = native(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(v["max_tokens"], 64000);
    }

    #[test]
    fn tools_calls_and_results_translate() {
        let v = native(json!({"model": "m", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "call.2", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "4C"},
            {"role": "tool", "tool_call_id": "call.2", "content": "noon"},
            {"role": "user", "content": "thanks"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": {"type": "object"}}}],
            "tool_choice": "required", "parallel_tool_calls": false}));
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[1]["content"][1],
            json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}})
        );
        assert_eq!(m[1]["content"][2]["id"], "call_2");
        assert_eq!(m[1]["content"][2]["input"], json!({}));
        assert_eq!(
            m[2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "call_1", "content": "4C"})
        );
        assert_eq!(m[2]["content"][1]["tool_use_id"], "call_2");
        assert_eq!(
            m[2]["content"][2],
            json!({"type": "text", "text": "thanks"})
        );
        assert_eq!(
            v["tools"][0],
            json!({"name": "get_weather", "input_schema": {"type": "object"}, "description": "d"})
        );
        assert_eq!(
            v["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
    }

    #[test]
    fn thinking_blocks_go_back_first_in_their_assistant_turn() {
        let block = json!({"type": "thinking", "thinking": "hmm", "signature": "sig"});
        let v = native(json!({"model": "m", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": "ok", "thinking_blocks": [block],
             "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t", "content": "1"}]}));
        assert_eq!(v["messages"][1]["content"][0], block);
        assert_eq!(v["messages"][1]["content"][1]["type"], "text");
    }

    #[test]
    fn tool_choices_map() {
        let with = |choice: Value| {
            native(
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}),
            )["tool_choice"]
                .clone()
        };
        assert_eq!(with(json!("auto")), json!({"type": "auto"}));
        assert_eq!(with(json!("none")), json!({"type": "none"}));
        assert_eq!(
            with(json!({"type": "function", "function": {"name": "f"}})),
            json!({"type": "tool", "name": "f"})
        );
        assert_eq!(with(Value::Null), Value::Null);
    }

    #[test]
    fn structured_output_and_reasoning_map() {
        let v = native(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": {"type": "object"}}},
            "reasoning_effort": "low", "max_tokens": 5000}),
        );
        assert_eq!(
            v["output_config"],
            json!({"format": {"type": "json_schema", "schema": {"type": "object"}}})
        );
        assert_eq!(
            v["thinking"],
            json!({"type": "enabled", "budget_tokens": 1024})
        );
        let v = native(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
        );
        assert_eq!(v["system"], JSON_ONLY);
    }

    #[test]
    fn what_anthropic_cannot_honour_is_refused_by_name() {
        let refused = |extra: Value| {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
            for (k, val) in extra.as_object().unwrap() {
                body[k] = val.clone();
            }
            request(&target(), &body).err().and_then(|e| e.param)
        };
        assert_eq!(refused(json!({"n": 2})).as_deref(), Some("n"));
        assert_eq!(refused(json!({"seed": 1})).as_deref(), Some("seed"));
        assert_eq!(
            refused(json!({"temperature": 1.5})).as_deref(),
            Some("temperature")
        );
        assert_eq!(
            refused(json!({"reasoning_effort": "high", "max_tokens": 100})).as_deref(),
            Some("max_completion_tokens")
        );
        assert_eq!(refused(json!({"n": 1})), None);
    }

    #[test]
    fn finish_reasons_map() {
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("stop_sequence"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("tool_use"), "tool_calls");
        assert_eq!(finish_reason("refusal"), "content_filter");
    }

    #[test]
    fn usage_counts_cache_traffic_once_in_the_prompt() {
        let u = usage(
            &json!({"input_tokens": 12, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 4000, "output_tokens": 85}),
        );
        assert_eq!(u["prompt_tokens"], 4112);
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 4000);
        assert_eq!(u["prompt_tokens_details"]["cache_write_tokens"], 100);
        assert_eq!(u["completion_tokens"], 85);
        assert_eq!(u["total_tokens"], 4197);
    }

    #[test]
    fn a_whole_answer_translates() {
        let native = json!({"id": "msg_1", "type": "message", "role": "assistant", "stop_reason": "tool_use",
            "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"}, {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
            "usage": {"input_tokens": 10, "output_tokens": 20}});
        let c = completion(&native, "claude-sonnet-4-5");
        let m = &c["choices"][0]["message"];
        assert_eq!(m["content"], "Checking.");
        assert_eq!(m["reasoning_content"], "hmm");
        assert_eq!(
            m["thinking_blocks"],
            json!([{"type": "thinking", "thinking": "hmm", "signature": "s"}])
        );
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(m["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c["usage"]["prompt_tokens"], 10);
        assert_eq!(c["model"], "claude-sonnet-4-5");
    }

    const TOOL_STREAM: &[u8] = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":30,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check.\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_A\",\"name\":\"get_weather\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Oslo\\\"}\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":42}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn a_tool_stream_becomes_openai_chunks() {
        let (a, b) = TOOL_STREAM.split_at(333);
        let data = run(
            Box::new(Stream::new("claude-sonnet-4-5", true)),
            vec![Ok(a), Ok(b)],
        );
        assert_eq!(data.last().unwrap(), "[DONE]");
        let c = json_chunks(&data);
        assert_eq!(
            c[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(
            c[1]["choices"][0]["delta"],
            json!({"content": "Let me check."})
        );
        assert_eq!(
            c[2]["choices"][0]["delta"]["tool_calls"][0],
            json!({"index": 0, "id": "toolu_A", "type": "function", "function": {"name": "get_weather", "arguments": ""}})
        );
        assert_eq!(
            c[3]["choices"][0]["delta"]["tool_calls"][0],
            json!({"index": 0, "function": {"arguments": "{\"city\":"}})
        );
        assert_eq!(
            c[4]["choices"][0]["delta"]["tool_calls"][0],
            json!({"index": 0, "function": {"arguments": "\"Oslo\"}"}})
        );
        assert_eq!(c[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c[5]["choices"][0]["delta"], json!({}));
        assert!(c.iter().all(|x| x["id"] == c[0]["id"]));
        let usage = &c[6]["usage"];
        assert_eq!(c[6]["choices"], json!([]));
        assert_eq!(usage["prompt_tokens"], 35);
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 5);
        assert_eq!(usage["completion_tokens"], 42, "cumulative, not summed");
        assert_eq!(c.len(), 7);
    }

    #[test]
    fn without_include_usage_there_is_no_usage_chunk() {
        let data = run(Box::new(Stream::new("m", false)), vec![Ok(TOOL_STREAM)]);
        let c = json_chunks(&data);
        assert!(c.iter().all(|x| x.get("usage").is_none()));
        assert_eq!(data.last().unwrap(), "[DONE]");
    }

    #[test]
    fn a_cut_or_failed_stream_ends_with_an_error_the_sdk_raises() {
        let data = run(
            Box::new(Stream::new("m", true)),
            vec![Ok(&TOOL_STREAM[..400]), Err(())],
        );
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "upstream_stream_cut");
        let data = run(
            Box::new(Stream::new("m", true)),
            vec![Ok(&TOOL_STREAM[..400])],
        );
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "upstream_stream_cut");
        let failing: &[u8] = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let data = run(Box::new(Stream::new("m", true)), vec![Ok(failing)]);
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "overloaded_error");
        assert!(!data.contains(&"[DONE]".to_string()));
    }
}
