//! The Anthropic Messages API as the emulator serves it: paged models, messages (with thinking
//! and tool use), token counting.
//!
//! Usage follows Anthropic's rules: `output_tokens` includes thinking, a stream reports input in
//! `message_start` (with a placeholder output of 1) and the cumulative output in `message_delta`.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::cache::{Prefix, TtlMap};
use super::faults::{KeyStatus, classify_key};
use super::text::{self, Prompt, Rng};
use super::tools::{self, Call, Choice, Tool, Turn};
use super::{
    ApiError, Cx, EmuRequest, EmulatedApi, Reply, SseEvent, json_bytes, media, parse_json, schema,
    stops,
};
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
    /// Prefix hashes written by `cache_control` breakpoints.
    cache: TtlMap<u64, ()>,
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
        AnthropicApi {
            catalog,
            models,
            cache: TtlMap::default(),
        }
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

/// A model as the newest SDK types describe it: `lifecycle` is required, and a model with a
/// deprecation date in the catalog is `deprecated` from then.
fn model_object(model: &Model) -> Value {
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let deprecated = model
        .deprecation_date
        .as_deref()
        .filter(|d| *d <= today.as_str());
    json!({
        "type": "model",
        "id": model.served_as,
        "display_name": model.display_name,
        "created_at": format!("{}T00:00:00Z", model.created),
        "lifecycle": if deprecated.is_some() { "deprecated" } else { "active" },
        "deprecated_at": deprecated.map(|d| format!("{d}T00:00:00Z")),
        "max_input_tokens": model.context_window,
        "max_tokens": model.max_output_tokens,
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
            ApiError::Invalid { param, message } => (
                400,
                "invalid_request_error",
                format!("{param}: {message}"),
                vec![],
            ),
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

    fn success_headers(&self, cx: &Cx) -> Vec<(String, String)> {
        rate_limit_state(cx, 49, 29000)
    }

    fn mid_stream_error(&self, _req: &EmuRequest, cx: &Cx) -> SseEvent {
        let event = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": cx.ids.next("req_011C", 20)});
        SseEvent::named("error", &event, 0)
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
    let mut headers = vec![
        ("retry-after".to_string(), "1".to_string()),
        ("x-should-retry".to_string(), "true".to_string()),
    ];
    headers.extend(rate_limit_state(cx, 0, 0));
    headers
}

/// The `anthropic-ratelimit-*` headers for a state with this many requests and tokens left.
fn rate_limit_state(cx: &Cx, requests_left: u32, tokens_left: u32) -> Vec<(String, String)> {
    let reset = chrono::DateTime::from_timestamp(cx.now + 1, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut headers = vec![
        (
            "anthropic-ratelimit-requests-limit".to_string(),
            "50".to_string(),
        ),
        (
            "anthropic-ratelimit-requests-remaining".to_string(),
            requests_left.to_string(),
        ),
        (
            "anthropic-ratelimit-requests-reset".to_string(),
            reset.clone(),
        ),
    ];
    for kind in ["tokens", "input-tokens", "output-tokens"] {
        headers.push((
            format!("anthropic-ratelimit-{kind}-limit"),
            "30000".to_string(),
        ));
        headers.push((
            format!("anthropic-ratelimit-{kind}-remaining"),
            tokens_left.to_string(),
        ));
        headers.push((format!("anthropic-ratelimit-{kind}-reset"), reset.clone()));
    }
    headers
}

/// A PDF page is billed as the image of a letter-size page rendered at 144 dpi.
const PDF_PAGE_PIXELS: (u32, u32) = (1224, 1584);
const MAX_LONG_EDGE: f64 = 1568.0;
const MAX_PIXELS: f64 = 1_150_000.0;

/// Anthropic's rule: images over 1568 px on the long edge or about 1.15 MP are scaled down,
/// then cost width × height / 750 tokens.
fn image_tokens((w, h): (u32, u32)) -> u32 {
    let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
    let edge = (MAX_LONG_EDGE / w.max(h)).min(1.0);
    let (w, h) = (w * edge, h * edge);
    let area = (MAX_PIXELS / (w * h)).sqrt().min(1.0);
    ((w * area).round() * (h * area).round() / 750.0).ceil() as u32
}

fn source_bytes(source: &Value) -> Option<media::Inline> {
    match source["type"].as_str() {
        Some("base64") => media::Inline::from_base64(
            source["media_type"].as_str().unwrap_or(""),
            source["data"].as_str().unwrap_or(""),
        ),
        _ => None,
    }
}

/// Counts image and document blocks wherever they sit (also inside tool results).
fn add_media(prompt: &mut Prompt, content: &Value) {
    match content {
        Value::Array(items) => items.iter().for_each(|i| add_media(prompt, i)),
        Value::Object(map) => match map.get("type").and_then(Value::as_str) {
            Some("image") => {
                let size = source_bytes(&content["source"])
                    .map_or(media::UNKNOWN_IMAGE, |i| i.image_size());
                prompt.image_tokens += image_tokens(size);
            }
            Some("document") => {
                let source = &content["source"];
                prompt.document_tokens += match source["type"].as_str() {
                    Some("text") => text::count_tokens(source["data"].as_str().unwrap_or("")),
                    _ => {
                        let pages = source_bytes(source).map_or(1, |f| media::pdf_pages(&f.bytes));
                        pages * image_tokens(PDF_PAGE_PIXELS)
                    }
                };
            }
            _ => map.values().for_each(|v| add_media(prompt, v)),
        },
        _ => {}
    }
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
        add_media(&mut prompt, &message["content"]);
        prompt.tool_results = tool_results(&message["content"]);
        if message["role"] == "user" && prompt.tool_results.is_empty() {
            prompt.last_user = text;
        }
    }
    if let Some(tools) = body.get("tools") {
        prompt.add_text(&tools.to_string());
    }
    Ok(prompt)
}

/// The text of each `tool_result` block in a message's content.
fn tool_results(content: &Value) -> Vec<String> {
    let Some(blocks) = content.as_array() else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| {
            let mut scratch = Prompt::default();
            scratch.add_content(&b["content"])
        })
        .collect()
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

/// The custom tools of a request (server tools such as web search have no input schema).
fn offered_tools(body: &Value) -> Vec<Tool<'_>> {
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return Vec::new();
    };
    tools
        .iter()
        .filter(|t| t.get("input_schema").is_some())
        .filter_map(|t| {
            Some(Tool {
                name: t["name"].as_str()?,
                description: t["description"].as_str().unwrap_or(""),
                parameters: t.get("input_schema"),
            })
        })
        .collect()
}

/// `tool_choice`, checked like the real API: a named tool must exist, and thinking allows
/// only `auto` and `none`.
fn tool_choice<'a>(body: &'a Value, tools: &[Tool]) -> Result<Choice<'a>, ApiError> {
    let choice = &body["tool_choice"];
    let picked = match choice["type"].as_str() {
        None | Some("auto") => Choice::Auto,
        Some("none") => Choice::None,
        Some("any") => Choice::Required,
        Some("tool") => {
            let name = choice["name"].as_str().ok_or_else(|| {
                ApiError::BadRequest("tool_choice.tool.name: Field required".into())
            })?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(ApiError::BadRequest(format!(
                    "tool_choice.name: Tool '{name}' not found in provided tools"
                )));
            }
            Choice::Named(name)
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "tool_choice.type: Input tag '{other}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
            )));
        }
    };
    let forced = matches!(picked, Choice::Required | Choice::Named(_));
    if forced && body["thinking"]["type"] == "enabled" {
        return Err(ApiError::invalid(
            "tool_choice",
            "Thinking may not be enabled when tool_choice forces tool use.",
        ));
    }
    Ok(picked)
}

/// The calls the answer makes, and whether the choice forced them (then no text comes first).
fn plan_calls(body: &Value, prompt: &Prompt) -> Result<(Vec<Call>, bool), ApiError> {
    let tools = offered_tools(body);
    let choice = tool_choice(body, &tools)?;
    let forced = matches!(choice, Choice::Required | Choice::Named(_));
    let calls = tools::plan(&Turn {
        tools,
        choice,
        allowed: None,
        parallel: body["tool_choice"]["disable_parallel_tool_use"] != true,
        last_user: &prompt.last_user,
        after_tool_result: prompt.after_tool_result(),
    });
    Ok((calls, forced))
}

/// The JSON schema structured output asks for: `output_config.format` or the older beta
/// `output_format`.
fn output_schema(body: &Value) -> Option<&Value> {
    [&body["output_config"]["format"], &body["output_format"]]
        .into_iter()
        .find(|f| f["type"] == "json_schema")
        .map(|f| &f["schema"])
}

/// The text of the answer: structured JSON, a reply that uses tool results, or prose.
fn answer_text(body: &Value, model: &Model, prompt: &Prompt, seed: u64) -> String {
    if let Some(schema) = output_schema(body) {
        schema::sample(schema, &text::salient_name(&prompt.last_user)).to_string()
    } else if prompt.after_tool_result() {
        tools::answer_with_results(&prompt.tool_results)
    } else {
        text::reply(&model.display_name, &prompt.last_user, seed)
    }
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

/// Why the answer ended, and for a stop sequence which one.
enum StopReason {
    EndTurn,
    MaxTokens,
    ToolUse,
    Sequence(String),
}

impl StopReason {
    fn reason(&self) -> &'static str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::MaxTokens => "max_tokens",
            StopReason::ToolUse => "tool_use",
            StopReason::Sequence(_) => "stop_sequence",
        }
    }

    fn sequence(&self) -> Option<&str> {
        match self {
            StopReason::Sequence(s) => Some(s),
            _ => None,
        }
    }
}

/// The answer's blocks within `max_tokens`, and its stop reason.
fn compose(
    body: &Value,
    model: &Model,
    prompt: &Prompt,
    seed: u64,
    max_tokens: u32,
    cx: &Cx,
) -> Result<(Vec<Block>, StopReason), ApiError> {
    let mut blocks = Vec::new();
    let mut left = max_tokens;
    let budget = thinking_budget(body, u64::from(max_tokens))?;
    if budget.is_some() && !model.reasoning {
        return Err(ApiError::invalid(
            "thinking",
            format!("'{}' does not support thinking.", model.served_as),
        ));
    }
    if let Some(budget) = budget {
        let thought = text::thinking(&prompt.last_user, seed, budget);
        let block = Block::Thinking {
            text: thought,
            signature: signature(seed),
        };
        left -= block.tokens();
        blocks.push(block);
    }
    let (calls, forced) = plan_calls(body, prompt)?;
    let full = match calls.first() {
        Some(_) if forced => String::new(),
        Some(first) => format!("I'll use the {} tool for that.", first.name),
        None => answer_text(body, model, prompt, seed),
    };
    let stop_sequences = stops::parse(&body["stop_sequences"], usize::MAX, "stop_sequences")?;
    let (until_stop, matched) = stops::cut(&full, &stop_sequences);
    let (visible, truncated) = text::truncate_tokens(until_stop, left);
    if !visible.is_empty() || calls.is_empty() {
        let text_block = Block::Text(visible.to_string());
        left -= text_block.tokens();
        blocks.push(text_block);
    }
    if truncated {
        return Ok((blocks, StopReason::MaxTokens));
    }
    if let Some(stop) = matched {
        return Ok((blocks, StopReason::Sequence(stop.to_string())));
    }
    if calls.is_empty() {
        return Ok((blocks, StopReason::EndTurn));
    }
    for call in calls {
        let block = Block::ToolUse {
            id: cx.ids.next("toolu_01", 22),
            name: call.name,
            input: call.arguments,
        };
        if block.tokens() > left {
            return Ok((blocks, StopReason::MaxTokens));
        }
        left -= block.tokens();
        blocks.push(block);
    }
    Ok((blocks, StopReason::ToolUse))
}

/// How a prompt splits between uncached input, cache reads and cache writes by TTL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PromptUse {
    input: u32,
    read: u32,
    write_5m: u32,
    write_1h: u32,
}

impl PromptUse {
    fn uncached(total: u32) -> PromptUse {
        PromptUse {
            input: total,
            ..PromptUse::default()
        }
    }

    fn written(&self) -> u32 {
        self.write_5m + self.write_1h
    }
}

fn usage(prompt: &PromptUse, output_tokens: u32) -> Value {
    json!({
        "input_tokens": prompt.input,
        "cache_creation_input_tokens": prompt.written(),
        "cache_read_input_tokens": prompt.read,
        "cache_creation": {"ephemeral_5m_input_tokens": prompt.write_5m, "ephemeral_1h_input_tokens": prompt.write_1h},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    })
}

const MAX_BREAKPOINTS: usize = 4;
/// How many blocks before a breakpoint are checked for an earlier cached prefix.
const LOOKBACK_BLOCKS: usize = 20;
const FIVE_MINUTES: Duration = Duration::from_secs(5 * 60);
const ONE_HOUR: Duration = Duration::from_secs(60 * 60);

/// A `cache_control` marker: the boundary it closes and whether it asks for one hour.
struct Breakpoint {
    boundary: usize,
    one_hour: bool,
}

impl Breakpoint {
    fn ttl(&self) -> Duration {
        if self.one_hour {
            ONE_HOUR
        } else {
            FIVE_MINUTES
        }
    }
}

/// The shortest prefix each model caches; shorter ones are silently not cached.
fn min_cacheable(model: &Model) -> u32 {
    let id = model.id.as_str();
    if id.contains("haiku-4-5") || id.contains("opus-4-5") {
        4096
    } else if id.contains("haiku") {
        2048
    } else {
        1024
    }
}

fn block_tokens(block: &Value) -> u32 {
    let mut scratch = Prompt::default();
    scratch.add_content(block);
    scratch.tokens()
}

/// The prompt's segments in cache order (tools, system, message blocks) and its markers.
fn cache_layout(body: &Value, model: &Model) -> Result<(Prefix, Vec<Breakpoint>), ApiError> {
    let mut prefix = Prefix::new(&model.served_as);
    let mut marks = Vec::new();
    let mut add = |prefix: &mut Prefix, block: &Value, tokens: u32| {
        prefix.push(block, tokens);
        if let Some(control) = block.get("cache_control").filter(|c| !c.is_null()) {
            marks.push(Breakpoint {
                boundary: prefix.boundaries.len() - 1,
                one_hour: control["ttl"] == "1h",
            });
        }
    };
    for tool in body["tools"].as_array().into_iter().flatten() {
        add(&mut prefix, tool, text::count_tokens(&tool.to_string()));
    }
    match &body["system"] {
        Value::Array(blocks) => blocks
            .iter()
            .for_each(|b| add(&mut prefix, b, block_tokens(b))),
        Value::Null => {}
        other => add(&mut prefix, other, block_tokens(other)),
    }
    for message in body["messages"].as_array().into_iter().flatten() {
        let blocks = match &message["content"] {
            Value::Array(blocks) => blocks.clone(),
            other => vec![other.clone()],
        };
        for (i, block) in blocks.iter().enumerate() {
            let overhead = if i == 0 { text::MESSAGE_OVERHEAD } else { 0 };
            add(&mut prefix, block, block_tokens(block) + overhead);
        }
    }
    if let Some(control) = body.get("cache_control").filter(|c| !c.is_null()) {
        marks.push(Breakpoint {
            boundary: prefix.boundaries.len().saturating_sub(1),
            one_hour: control["ttl"] == "1h",
        });
    }
    if marks.len() > MAX_BREAKPOINTS {
        return Err(ApiError::BadRequest(format!(
            "A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {}.",
            marks.len()
        )));
    }
    Ok((prefix, marks))
}

impl AnthropicApi {
    /// Reads the longest cached prefix a breakpoint reaches (looking a few blocks back), then
    /// writes every breakpoint's prefix, billing each written stretch at its marker's TTL.
    fn use_cache(&self, body: &Value, model: &Model, total: u32) -> Result<PromptUse, ApiError> {
        let (prefix, marks) = cache_layout(body, model)?;
        let min = min_cacheable(model);
        let at = |i: usize| prefix.boundaries[i];
        let mut read = 0;
        for mark in &marks {
            let first = mark.boundary.saturating_sub(LOOKBACK_BLOCKS);
            let hit = (first..=mark.boundary)
                .rev()
                .map(at)
                .find(|b| b.tokens >= min && self.cache.refresh(&b.hash, mark.ttl()));
            read = read.max(hit.map_or(0, |b| b.tokens));
        }
        let mut cached_to = read;
        let mut used = PromptUse::uncached(0);
        used.read = read;
        for mark in &marks {
            let boundary = at(mark.boundary);
            if boundary.tokens < min {
                continue;
            }
            let fresh = boundary.tokens.saturating_sub(cached_to);
            if mark.one_hour {
                used.write_1h += fresh;
            } else {
                used.write_5m += fresh;
            }
            cached_to = cached_to.max(boundary.tokens);
            self.cache.insert(boundary.hash, (), mark.ttl());
        }
        used.input = total.saturating_sub(cached_to);
        Ok(used)
    }
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
        let prompt_use = self.use_cache(&body, model, prompt.tokens())?;
        let id = cx.ids.next("msg_01", 22);
        if body["stream"] == true {
            return Ok(Reply::Sse(stream(
                &id,
                model,
                &prompt_use,
                &blocks,
                &stop_reason,
            )));
        }
        let message = json!({
            "model": model.served_as,
            "id": id,
            "type": "message",
            "role": "assistant",
            "content": blocks.iter().map(Block::full).collect::<Vec<_>>(),
            "stop_reason": stop_reason.reason(),
            "stop_sequence": stop_reason.sequence(),
            "usage": usage(&prompt_use, output_tokens),
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
    prompt_use: &PromptUse,
    blocks: &[Block],
    stop_reason: &StopReason,
) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let start = json!({"type": "message_start", "message": {
        "model": model.served_as, "id": id, "type": "message", "role": "assistant", "content": [],
        "stop_reason": null, "stop_sequence": null, "usage": usage(prompt_use, 1),
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
        "delta": {"stop_reason": stop_reason.reason(), "stop_sequence": stop_reason.sequence()},
        "usage": {"input_tokens": prompt_use.input, "cache_creation_input_tokens": prompt_use.written(), "cache_read_input_tokens": prompt_use.read, "output_tokens": output_tokens},
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
    fn forced_tools_come_without_text_and_results_get_text() {
        let tool = json!({"name": "get_weather", "description": "Weather for a city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}});
        let body = |choice: Value, content: Value| json!({"tools": [tool], "tool_choice": choice, "messages": [{"role": "user", "content": content}]});
        let forced = body(json!({"type": "any"}), json!("Hello in Oslo"));
        let prompt = messages_prompt(&forced).unwrap();
        let (calls, was_forced) = plan_calls(&forced, &prompt).unwrap();
        assert!(was_forced);
        assert_eq!(calls[0].arguments, json!({"city": "Oslo"}));
        let results = body(
            json!({"type": "any"}),
            json!([{"type": "tool_result", "tool_use_id": "t", "content": "4 degrees"}]),
        );
        let prompt = messages_prompt(&results).unwrap();
        assert_eq!(prompt.tool_results, ["4 degrees"]);
        assert!(plan_calls(&results, &prompt).unwrap().0.is_empty());
        let unknown = body(json!({"type": "tool", "name": "nope"}), json!("hi"));
        assert!(plan_calls(&unknown, &messages_prompt(&unknown).unwrap()).is_err());
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
