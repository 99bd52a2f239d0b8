//! The Anthropic Messages API as the emulator serves it: paged models, messages (with thinking
//! and tool use), token counting.
//!
//! Usage follows Anthropic's rules: `output_tokens` includes thinking, a stream reports input in
//! `message_start` (with a placeholder output of 1) and the cumulative output in `message_delta`.

use base64::Engine;
use serde_json::{Value, json};

use super::faults::{KeyStatus, classify_key};
use super::text::{self, Prompt, Rng};
use super::{ApiError, Cx, EmuRequest, EmulatedApi, Reply, SseEvent, json_bytes, parse_json};
use crate::catalog::{Catalog, Model, ModelKind};
use crate::providers::Provider;

const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 1000;
const MIN_THINKING_BUDGET: u64 = 1024;
/// Tokens per text or thinking delta event.
const TOKENS_PER_DELTA: usize = 3;

/// The Anthropic surface, with its model list sorted newest first once.
pub struct AnthropicApi {
    catalog: &'static Catalog,
    models: Vec<(String, Value)>,
}

impl AnthropicApi {
    pub fn new(catalog: &'static Catalog) -> AnthropicApi {
        let mut list: Vec<&Model> = catalog
            .for_provider(Provider::Anthropic)
            .filter(|m| m.kind == ModelKind::Chat)
            .collect();
        list.sort_by(|a, b| {
            b.created
                .cmp(&a.created)
                .then_with(|| a.served_as.cmp(&b.served_as))
        });
        let models = list
            .into_iter()
            .map(|m| (m.served_as.clone(), model_object(m)))
            .collect();
        AnthropicApi { catalog, models }
    }

    fn resolve(&self, name: &str) -> Result<&'static Model, ApiError> {
        self.catalog
            .resolve(Provider::Anthropic, name)
            .filter(|m| m.kind == ModelKind::Chat)
            .ok_or_else(|| ApiError::ModelNotFound(name.to_string()))
    }

    fn position(&self, name: &str) -> Result<usize, ApiError> {
        let model = self.resolve(name)?;
        self.models
            .iter()
            .position(|(id, _)| *id == model.served_as)
            .ok_or_else(|| ApiError::ModelNotFound(name.to_string()))
    }

    fn list_models(&self, req: &EmuRequest) -> Result<Reply, ApiError> {
        let limit = match req.query_param("limit") {
            None => DEFAULT_PAGE,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("limit: Input should be between 1 and {MAX_PAGE}"))
                })?,
        };
        let (start, end) = if let Some(before) = req.query_param("before_id") {
            let end = self.position(&before)?;
            (end.saturating_sub(limit), end)
        } else if let Some(after) = req.query_param("after_id") {
            let start = self.position(&after)? + 1;
            (start, (start + limit).min(self.models.len()))
        } else {
            (0, limit.min(self.models.len()))
        };
        let page = &self.models[start..end];
        let has_more = if req.query_param("before_id").is_some() {
            start > 0
        } else {
            end < self.models.len()
        };
        let body = json!({
            "data": page.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            "has_more": has_more,
            "first_id": page.first().map(|(id, _)| id.clone()),
            "last_id": page.last().map(|(id, _)| id.clone()),
        });
        Ok(Reply::Json(json_bytes(&body)))
    }
}

fn model_object(model: &Model) -> Value {
    json!({
        "type": "model",
        "id": model.served_as,
        "display_name": model.display_name,
        "created_at": format!("{}T00:00:00Z", model.created),
    })
}

impl EmulatedApi for AnthropicApi {
    fn check_request(&self, req: &EmuRequest) -> Result<(), ApiError> {
        match req.header("anthropic-version") {
            Some(v) if !v.trim().is_empty() => Ok(()),
            _ => Err(ApiError::BadRequest(
                "anthropic-version: header is required".into(),
            )),
        }
    }

    fn key_status(&self, req: &EmuRequest) -> KeyStatus {
        let key = req.header("x-api-key").or_else(|| req.bearer());
        classify_key(key, "sk-ant-", &[])
    }

    fn route(&self, req: &EmuRequest, cx: &Cx) -> Result<Reply, ApiError> {
        let path = req.path.trim_end_matches('/');
        if req.is("GET") && path == "/v1/models" {
            return self.list_models(req);
        }
        if let Some(name) = path.strip_prefix("/v1/models/").filter(|_| req.is("GET")) {
            let model = self.resolve(name)?;
            return Ok(Reply::Json(json_bytes(&model_object(model))));
        }
        match (req.is("POST"), path) {
            (true, "/v1/messages") => self.messages(req, cx),
            (true, "/v1/messages/count_tokens") => self.count_tokens(req),
            _ => Err(ApiError::NotFound),
        }
    }

    fn error(&self, err: &ApiError, cx: &Cx) -> (u16, Vec<(String, String)>, Value) {
        let (status, kind, message, headers) = match err {
            ApiError::MissingKey => (
                401,
                "authentication_error",
                "x-api-key header is required".to_string(),
                vec![],
            ),
            ApiError::InvalidKey(_) => (
                401,
                "authentication_error",
                "invalid x-api-key".to_string(),
                vec![],
            ),
            ApiError::NoQuota => (
                400,
                "invalid_request_error",
                NO_CREDIT.to_string(),
                no_retry(),
            ),
            ApiError::RateLimited => (
                429,
                "rate_limit_error",
                RATE_LIMITED.to_string(),
                rate_limit_headers(cx),
            ),
            ApiError::ServerError => (
                500,
                "api_error",
                "Internal server error".to_string(),
                vec![],
            ),
            ApiError::Overloaded => (529, "overloaded_error", "Overloaded".to_string(), vec![]),
            ApiError::ModelNotFound(model) => {
                (404, "not_found_error", format!("model: {model}"), vec![])
            }
            ApiError::BadRequest(message) => {
                (400, "invalid_request_error", message.clone(), vec![])
            }
            ApiError::NotFound => (404, "not_found_error", "Not found".to_string(), vec![]),
        };
        let body = json!({
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": cx.ids.next("req_011C", 20),
        });
        (status, headers, body)
    }

    fn common_headers(&self, cx: &Cx) -> Vec<(String, String)> {
        vec![
            ("request-id".into(), cx.ids.next("req_011C", 20)),
            (
                "anthropic-organization-id".into(),
                "00000000-0000-4000-8000-00000000e3a1".into(),
            ),
        ]
    }

    fn json_content_type(&self) -> &'static str {
        "application/json"
    }

    fn sse_content_type(&self) -> &'static str {
        "text/event-stream; charset=utf-8"
    }
}

const NO_CREDIT: &str = "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.";
const RATE_LIMITED: &str = "This request would exceed your organization's rate limit of 50 requests per minute (org: 00000000-0000-4000-8000-00000000e3a1, model: emulated). For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.";

fn no_retry() -> Vec<(String, String)> {
    vec![("x-should-retry".into(), "false".into())]
}

fn rate_limit_headers(cx: &Cx) -> Vec<(String, String)> {
    let reset = chrono::DateTime::from_timestamp(cx.now + 1, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut headers: Vec<(String, String)> = vec![
        ("retry-after".into(), "1".into()),
        ("x-should-retry".into(), "true".into()),
        ("anthropic-ratelimit-requests-limit".into(), "50".into()),
        ("anthropic-ratelimit-requests-remaining".into(), "0".into()),
        ("anthropic-ratelimit-tokens-limit".into(), "30000".into()),
        ("anthropic-ratelimit-tokens-remaining".into(), "0".into()),
    ];
    headers.push(("anthropic-ratelimit-requests-reset".into(), reset.clone()));
    headers.push(("anthropic-ratelimit-tokens-reset".into(), reset));
    headers
}

/// The prompt of a messages or count_tokens request.
fn messages_prompt(body: &Value) -> Result<Prompt, ApiError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::BadRequest("messages: Field required".into()))?;
    let mut prompt = Prompt::default();
    if let Some(system) = body.get("system") {
        prompt.add_content(system);
    }
    for message in messages {
        prompt.add_message();
        let text = prompt.add_content(&message["content"]);
        if message["role"] == "user" {
            prompt.last_user = text;
        }
    }
    if let Some(tools) = body.get("tools") {
        prompt.add_text(&tools.to_string());
    }
    Ok(prompt)
}

/// A content block of the answer.
enum Block {
    Thinking {
        text: String,
        signature: String,
    },
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

impl Block {
    fn tokens(&self) -> u32 {
        match self {
            Block::Thinking { text, .. } | Block::Text(text) => text::count_tokens(text),
            Block::ToolUse { input, .. } => text::count_tokens(&input.to_string()),
        }
    }

    fn full(&self) -> Value {
        match self {
            Block::Thinking { text, signature } => {
                json!({"type": "thinking", "thinking": text, "signature": signature})
            }
            Block::Text(text) => json!({"type": "text", "text": text}),
            Block::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        }
    }

    fn start(&self) -> Value {
        match self {
            Block::Thinking { .. } => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Block::Text(_) => json!({"type": "text", "text": ""}),
            Block::ToolUse { id, name, .. } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": {}})
            }
        }
    }

    /// The delta events that rebuild this block, with the tokens each carries.
    fn deltas(&self) -> Vec<(Value, u32)> {
        match self {
            Block::Thinking { text, signature } => {
                let mut out: Vec<(Value, u32)> = text::chunks(text, TOKENS_PER_DELTA)
                    .into_iter()
                    .map(|(t, n)| (json!({"type": "thinking_delta", "thinking": t}), n))
                    .collect();
                out.push((
                    json!({"type": "signature_delta", "signature": signature}),
                    0,
                ));
                out
            }
            Block::Text(text) => text::chunks(text, TOKENS_PER_DELTA)
                .into_iter()
                .map(|(t, n)| (json!({"type": "text_delta", "text": t}), n))
                .collect(),
            Block::ToolUse { input, .. } => text::chunks(&input.to_string(), TOKENS_PER_DELTA)
                .into_iter()
                .map(|(t, n)| (json!({"type": "input_json_delta", "partial_json": t}), n))
                .collect(),
        }
    }
}

/// The tool the prompt asks for: forced by `tool_choice`, named in the last user turn, or the
/// first tool when the prompt says "use the … tool". None after a tool result.
fn requested_tool<'a>(body: &'a Value, last_user: &str) -> Option<&'a Value> {
    let tools = body
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())?;
    let choice = &body["tool_choice"];
    match choice["type"].as_str() {
        Some("none") => return None,
        Some("tool") => return tools.iter().find(|t| t["name"] == choice["name"]),
        _ => {}
    }
    if last_turn_is_tool_result(body) {
        return None;
    }
    let prompt = last_user.to_lowercase();
    let named = tools.iter().find(|t| {
        t["name"].as_str().is_some_and(|n| {
            let n = n.to_lowercase();
            prompt.contains(&n) || prompt.contains(&n.replace('_', " "))
        })
    });
    let asked_for_a_tool = prompt.contains("use the") && prompt.contains("tool");
    named.or_else(|| (asked_for_a_tool || choice["type"] == "any").then(|| &tools[0]))
}

fn last_turn_is_tool_result(body: &Value) -> bool {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_array())
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"))
}

/// The thinking budget asked for, checked like the real API.
fn thinking_budget(body: &Value, max_tokens: u64) -> Result<Option<u32>, ApiError> {
    let thinking = &body["thinking"];
    if thinking["type"] != "enabled" {
        return Ok(None);
    }
    let budget = thinking["budget_tokens"].as_u64().ok_or_else(|| {
        ApiError::BadRequest("thinking.enabled.budget_tokens: Field required".into())
    })?;
    if budget < MIN_THINKING_BUDGET {
        return Err(ApiError::BadRequest(format!(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}"
        )));
    }
    if budget >= max_tokens {
        return Err(ApiError::BadRequest(
            "`max_tokens` must be greater than `thinking.budget_tokens`.".into(),
        ));
    }
    Ok(Some(budget.min(u64::from(u32::MAX)) as u32))
}

fn signature(seed: u64) -> String {
    let mut rng = Rng::new(seed ^ 0x5167);
    let bytes: Vec<u8> = (0..48).map(|_| rng.below(256) as u8).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The answer's blocks within `max_tokens`, and its stop reason.
fn compose(
    body: &Value,
    model: &Model,
    prompt: &Prompt,
    seed: u64,
    max_tokens: u32,
    cx: &Cx,
) -> Result<(Vec<Block>, &'static str), ApiError> {
    let mut blocks = Vec::new();
    let mut left = max_tokens;
    if let Some(budget) = thinking_budget(body, u64::from(max_tokens))? {
        let thought = text::thinking(&prompt.last_user, seed, budget);
        let block = Block::Thinking {
            text: thought,
            signature: signature(seed),
        };
        left -= block.tokens();
        blocks.push(block);
    }
    let tool = requested_tool(body, &prompt.last_user);
    let full = match tool {
        Some(t) => format!(
            "I'll use the {} tool for that.",
            t["name"].as_str().unwrap_or("requested")
        ),
        None => text::reply(&model.display_name, &prompt.last_user, seed),
    };
    let (visible, truncated) = text::truncate_tokens(&full, left);
    let text_block = Block::Text(visible.to_string());
    left -= text_block.tokens();
    blocks.push(text_block);
    if truncated {
        return Ok((blocks, "max_tokens"));
    }
    let Some(tool) = tool else {
        return Ok((blocks, "end_turn"));
    };
    let input = text::example_for_schema(
        &tool["input_schema"],
        &text::salient_name(&prompt.last_user),
    );
    let call = Block::ToolUse {
        id: cx.ids.next("toolu_01", 22),
        name: tool["name"].as_str().unwrap_or_default().to_string(),
        input,
    };
    if call.tokens() > left {
        return Ok((blocks, "max_tokens"));
    }
    blocks.push(call);
    Ok((blocks, "tool_use"))
}

fn usage(input_tokens: u32, output_tokens: u32) -> Value {
    json!({
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    })
}

impl AnthropicApi {
    fn messages(&self, req: &EmuRequest, cx: &Cx) -> Result<Reply, ApiError> {
        let body = parse_json(req)?;
        let name = body["model"]
            .as_str()
            .ok_or_else(|| ApiError::BadRequest("model: Field required".into()))?;
        let max_tokens = body["max_tokens"]
            .as_u64()
            .ok_or_else(|| ApiError::BadRequest("max_tokens: Field required".into()))?;
        if max_tokens == 0 {
            return Err(ApiError::BadRequest(
                "max_tokens: Input should be greater than or equal to 1".into(),
            ));
        }
        let prompt = messages_prompt(&body)?;
        let model = self.resolve(name)?;
        let max_tokens = max_tokens.min(u64::from(u32::MAX)) as u32;
        let (blocks, stop_reason) = compose(
            &body,
            model,
            &prompt,
            text::seed_of_request(&body),
            max_tokens,
            cx,
        )?;
        let output_tokens: u32 = blocks.iter().map(Block::tokens).sum();
        let id = cx.ids.next("msg_01", 22);
        if body["stream"] == true {
            return Ok(Reply::Sse(stream(
                &id,
                model,
                prompt.tokens(),
                &blocks,
                stop_reason,
            )));
        }
        let message = json!({
            "model": model.served_as,
            "id": id,
            "type": "message",
            "role": "assistant",
            "content": blocks.iter().map(Block::full).collect::<Vec<_>>(),
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": usage(prompt.tokens(), output_tokens),
        });
        Ok(Reply::Json(json_bytes(&message)))
    }

    fn count_tokens(&self, req: &EmuRequest) -> Result<Reply, ApiError> {
        let body = parse_json(req)?;
        let name = body["model"]
            .as_str()
            .ok_or_else(|| ApiError::BadRequest("model: Field required".into()))?;
        self.resolve(name)?;
        let prompt = messages_prompt(&body)?;
        Ok(Reply::Json(json_bytes(
            &json!({"input_tokens": prompt.tokens()}),
        )))
    }
}

fn stream(
    id: &str,
    model: &Model,
    input_tokens: u32,
    blocks: &[Block],
    stop_reason: &str,
) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let start = json!({"type": "message_start", "message": {
        "model": model.served_as, "id": id, "type": "message", "role": "assistant", "content": [],
        "stop_reason": null, "stop_sequence": null, "usage": usage(input_tokens, 1),
    }});
    events.push(SseEvent::named("message_start", &start, 0));
    for (index, block) in blocks.iter().enumerate() {
        let begin =
            json!({"type": "content_block_start", "index": index, "content_block": block.start()});
        events.push(SseEvent::named("content_block_start", &begin, 0));
        if index == 0 {
            events.push(SseEvent::named("ping", &json!({"type": "ping"}), 0));
        }
        for (delta, tokens) in block.deltas() {
            let data = json!({"type": "content_block_delta", "index": index, "delta": delta});
            events.push(SseEvent::named("content_block_delta", &data, tokens));
        }
        let stop = json!({"type": "content_block_stop", "index": index});
        events.push(SseEvent::named("content_block_stop", &stop, 0));
    }
    let output_tokens: u32 = blocks.iter().map(Block::tokens).sum();
    let delta = json!({
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": output_tokens},
    });
    events.push(SseEvent::named("message_delta", &delta, 0));
    events.push(SseEvent::named(
        "message_stop",
        &json!({"type": "message_stop"}),
        0,
    ));
    events
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn tools_are_found_by_name_or_request() {
        let body = json!({"tools": [{"name": "get_weather"}, {"name": "lookup"}], "messages": []});
        assert_eq!(
            requested_tool(&body, "What's the weather? call get_weather").unwrap()["name"],
            "get_weather"
        );
        assert_eq!(
            requested_tool(&body, "please use the lookup tool").unwrap()["name"],
            "lookup"
        );
        assert_eq!(
            requested_tool(&body, "Please use the tool").unwrap()["name"],
            "get_weather"
        );
        assert!(requested_tool(&body, "hello").is_none());
        let forced = json!({"tools": [{"name": "a"}, {"name": "b"}], "tool_choice": {"type": "tool", "name": "b"}});
        assert_eq!(requested_tool(&forced, "hi").unwrap()["name"], "b");
    }

    #[test]
    fn thinking_budget_is_checked() {
        let body = |b: u64| json!({"thinking": {"type": "enabled", "budget_tokens": b}});
        assert_eq!(thinking_budget(&body(2000), 4000).unwrap(), Some(2000));
        assert!(thinking_budget(&body(100), 4000).is_err());
        assert!(thinking_budget(&body(4000), 4000).is_err());
        assert_eq!(thinking_budget(&json!({}), 10).unwrap(), None);
    }
}
