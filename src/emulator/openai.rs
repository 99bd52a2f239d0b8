//! The OpenAI API as the emulator serves it: models, Chat Completions, Responses, embeddings.
//!
//! Usage follows OpenAI's rules: `prompt_tokens` counts the whole prompt, `completion_tokens`
//! includes hidden `reasoning_tokens`, and a chat stream has usage only when
//! `stream_options.include_usage` asks for it.

use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};

use super::cache::{Prefix, TtlMap};
use super::faults::{KeyStatus, classify_key};
use super::text::{self, Prompt};
use super::tools::{self, Call, Choice, Tool, Turn};
use super::{
    ApiError, Cx, EmuRequest, EmulatedApi, IdGen, Reply, SseEvent, date_to_unix, json_bytes, media,
    parse_json, schema, stops,
};
use crate::catalog::{Catalog, Model, ModelKind};
use crate::providers::Provider;

const SYSTEM_FINGERPRINT: &str = "fp_emulator01";
const MAX_CHOICES: u64 = 128;
/// Tokens per streamed piece of tool-call arguments.
const ARGUMENT_TOKENS_PER_DELTA: usize = 4;
const MAX_STOPS: usize = 4;

/// The OpenAI surface, with its model list serialised once.
pub struct OpenAiApi {
    catalog: &'static Catalog,
    list_body: Vec<u8>,
    /// Prompt prefixes seen recently, for automatic caching.
    cache: TtlMap<u64, ()>,
    /// Stored Responses by id, for retrieval and `previous_response_id`.
    stored: TtlMap<String, StoredResponse>,
}

/// A stored response: the object as answered and the conversation it ends (its input, with
/// any earlier turns, then its output).
#[derive(Debug, Clone)]
struct StoredResponse {
    object: Value,
    conversation: Vec<Value>,
}

/// How long stored responses are kept (OpenAI keeps them 30 days).
const STORED_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How many stored responses are kept: a Hub in demo mode answers Responses calls for as long
/// as it runs, and each stored one holds its whole conversation.
const STORED_CAPACITY: usize = 1_000;

impl OpenAiApi {
    pub fn new(catalog: &'static Catalog) -> OpenAiApi {
        let data: Vec<Value> = catalog
            .for_provider(Provider::OpenAi)
            .map(|m| model_object(m, &m.id))
            .collect();
        let list_body = json_bytes(&json!({"object": "list", "data": data}));
        OpenAiApi {
            catalog,
            list_body,
            cache: TtlMap::default(),
            stored: TtlMap::with_capacity(STORED_CAPACITY),
        }
    }

    fn model(&self, body: &Value) -> Result<&'static Model, ApiError> {
        let name = body
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::BadRequest("you must provide a model parameter".into()))?;
        self.catalog
            .resolve(Provider::OpenAi, name)
            .ok_or_else(|| ApiError::ModelNotFound(name.to_string()))
    }

    fn get_model(&self, name: &str) -> Result<Reply, ApiError> {
        let model = self
            .catalog
            .resolve(Provider::OpenAi, name)
            .ok_or_else(|| ApiError::ModelNotFound(name.to_string()))?;
        Ok(Reply::Json(json_bytes(&model_object(model, name))))
    }
}

fn model_object(model: &Model, id: &str) -> Value {
    json!({"id": id, "object": "model", "created": date_to_unix(&model.created), "owned_by": "system"})
}

impl EmulatedApi for OpenAiApi {
    fn key_status(&self, req: &EmuRequest) -> KeyStatus {
        classify_key(req.bearer(), "sk-", &["sk-ant-"])
    }

    fn route(&self, req: &EmuRequest, cx: &Cx) -> Result<Reply, ApiError> {
        let path = req.path.trim_end_matches('/');
        if req.is("GET") && path == "/v1/models" {
            return Ok(Reply::Json(self.list_body.clone()));
        }
        if let Some(name) = path.strip_prefix("/v1/models/").filter(|_| req.is("GET")) {
            return self.get_model(name);
        }
        if let Some(rest) = path.strip_prefix("/v1/responses/") {
            return self.stored_response(req, rest);
        }
        if !req.is("POST") {
            return Err(ApiError::NotFound);
        }
        match path {
            "/v1/chat/completions" => self.chat(req, cx),
            "/v1/responses" => self.responses(req, cx),
            "/v1/embeddings" => self.embeddings(req),
            _ => Err(ApiError::NotFound),
        }
    }

    fn error(&self, err: &ApiError, _cx: &Cx) -> (u16, Vec<(String, String)>, Value) {
        let (status, kind, code, message, headers) = match err {
            ApiError::MissingKey => (
                401,
                "invalid_request_error",
                None,
                MISSING_KEY.to_string(),
                vec![],
            ),
            ApiError::InvalidKey(key) => (
                401,
                "invalid_request_error",
                Some("invalid_api_key"),
                format!(
                    "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                    mask_key(key)
                ),
                vec![],
            ),
            ApiError::NoQuota => (
                429,
                "insufficient_quota",
                Some("insufficient_quota"),
                NO_QUOTA.to_string(),
                no_retry(),
            ),
            ApiError::RateLimited => (
                429,
                "requests",
                Some("rate_limit_exceeded"),
                RATE_LIMITED.to_string(),
                rate_limit_headers(),
            ),
            ApiError::ServerError => (500, "server_error", None, SERVER_ERROR.to_string(), vec![]),
            ApiError::Overloaded => (503, "server_error", None, OVERLOADED.to_string(), vec![]),
            ApiError::ModelNotFound(model) => (
                404,
                "invalid_request_error",
                Some("model_not_found"),
                format!("The model `{model}` does not exist or you do not have access to it."),
                vec![],
            ),
            ApiError::BadRequest(message) | ApiError::Invalid { message, .. } => {
                (400, "invalid_request_error", None, message.clone(), vec![])
            }
            ApiError::NotFound => (
                404,
                "invalid_request_error",
                None,
                "Invalid URL: this endpoint does not exist.".to_string(),
                vec![],
            ),
        };
        let param = match err {
            ApiError::Invalid { param, .. } => Value::from(param.as_str()),
            _ => Value::Null,
        };
        let body =
            json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
        (status, headers, body)
    }

    fn common_headers(&self, cx: &Cx) -> Vec<(String, String)> {
        vec![
            ("x-request-id".into(), cx.ids.next("req_", 32)),
            ("openai-version".into(), "2020-10-01".into()),
            ("openai-processing-ms".into(), "1".into()),
        ]
    }

    fn success_headers(&self, _cx: &Cx) -> Vec<(String, String)> {
        rate_limit_state(499, 29000, "120ms")
    }

    /// Chat streams end with an `{"error": …}` data object, which the SDK raises; Responses
    /// streams with an `error` event, which the SDK yields.
    fn mid_stream_error(&self, req: &EmuRequest, _cx: &Cx) -> SseEvent {
        if req.path.trim_end_matches('/').ends_with("/responses") {
            let event = json!({"type": "error", "code": "server_is_overloaded", "message": OVERLOADED, "param": null, "sequence_number": super::faults::DROP_AFTER_EVENTS});
            SseEvent::named("error", &event, 0)
        } else {
            let error = json!({"error": {"message": OVERLOADED, "type": "server_error", "param": null, "code": "server_is_overloaded"}});
            SseEvent::data(&error, 0)
        }
    }

    fn json_content_type(&self) -> &'static str {
        "application/json"
    }

    fn sse_content_type(&self) -> &'static str {
        "text/event-stream; charset=utf-8"
    }
}

const MISSING_KEY: &str = "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.";
const NO_QUOTA: &str = "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.";
const RATE_LIMITED: &str = "Rate limit reached for requests in organization org-emulator on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 1s. Visit https://platform.openai.com/account/rate-limits to learn more.";
const SERVER_ERROR: &str =
    "The server had an error while processing your request. Sorry about that!";
const OVERLOADED: &str = "The engine is currently overloaded, please try again later.";

fn no_retry() -> Vec<(String, String)> {
    vec![("x-should-retry".into(), "false".into())]
}

fn rate_limit_headers() -> Vec<(String, String)> {
    let mut headers = vec![
        ("retry-after".to_string(), "1".to_string()),
        ("retry-after-ms".to_string(), "1000".to_string()),
    ];
    headers.extend(rate_limit_state(0, 29000, "1s"));
    headers
}

/// The `x-ratelimit-*` headers for a state with this many requests and tokens left.
fn rate_limit_state(requests_left: u32, tokens_left: u32, reset: &str) -> Vec<(String, String)> {
    vec![
        ("x-ratelimit-limit-requests".into(), "500".into()),
        ("x-ratelimit-limit-tokens".into(), "30000".into()),
        (
            "x-ratelimit-remaining-requests".into(),
            requests_left.to_string(),
        ),
        (
            "x-ratelimit-remaining-tokens".into(),
            tokens_left.to_string(),
        ),
        ("x-ratelimit-reset-requests".into(), reset.into()),
        ("x-ratelimit-reset-tokens".into(), "120ms".into()),
    ]
}

/// OpenAI's masking: the first 8 characters, a star for each hidden one, the last 4.
pub fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        let shown: String = chars.iter().take(chars.len().min(4)).collect();
        return format!("{shown}{}", "*".repeat(chars.len().saturating_sub(4)));
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
}

/// What shape the visible output must take.
enum Format {
    Text,
    JsonObject,
    JsonSchema(Value),
}

fn chat_format(body: &Value) -> Format {
    let format = &body["response_format"];
    match format["type"].as_str() {
        Some("json_object") => Format::JsonObject,
        Some("json_schema") => Format::JsonSchema(format["json_schema"]["schema"].clone()),
        _ => Format::Text,
    }
}

fn responses_format(body: &Value) -> Format {
    let format = &body["text"]["format"];
    match format["type"].as_str() {
        Some("json_object") => Format::JsonObject,
        Some("json_schema") => Format::JsonSchema(format["schema"].clone()),
        _ => Format::Text,
    }
}

/// One generated answer: the visible text, whether it was cut, its tool calls and its token
/// counts.
struct Generated {
    text: String,
    truncated: bool,
    reasoning_tokens: u32,
    text_tokens: u32,
    calls: Vec<ToolCall>,
}

impl Generated {
    fn completion_tokens(&self) -> u32 {
        self.reasoning_tokens
            + self.text_tokens
            + self.calls.iter().map(|c| c.call.tokens()).sum::<u32>()
    }
}

/// A tool call with the ids each API quotes: `call_id` for results, `item_id` for Responses
/// output items.
struct ToolCall {
    call_id: String,
    item_id: String,
    call: Call,
}

impl ToolCall {
    fn chat_json(&self) -> Value {
        json!({"id": self.call_id, "type": "function", "function": {"name": self.call.name, "arguments": self.call.arguments_json()}})
    }

    fn response_item(&self, status: &str, arguments: &str) -> Value {
        json!({"id": self.item_id, "type": "function_call", "status": status, "call_id": self.call_id, "name": self.call.name, "arguments": arguments})
    }
}

/// The function tools of a request: nested under `function` (Chat) or flat (Responses).
fn function_tools(body: &Value, nested: bool) -> Vec<Tool<'_>> {
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return Vec::new();
    };
    tools
        .iter()
        .filter(|t| t["type"] == "function")
        .filter_map(|t| {
            let f = if nested { &t["function"] } else { t };
            Some(Tool {
                name: f["name"].as_str()?,
                description: f["description"].as_str().unwrap_or(""),
                parameters: f.get("parameters"),
            })
        })
        .collect()
}

/// The name a function reference carries: `{"function": {"name"}}` (Chat) or `{"name"}`.
fn function_name(reference: &Value) -> Option<&str> {
    reference["function"]["name"]
        .as_str()
        .or_else(|| reference["name"].as_str())
}

/// `tool_choice` in either API's form, checked against the offered tools.
fn tool_choice<'a>(
    body: &'a Value,
    tools: &[Tool],
) -> Result<(Choice<'a>, Option<Vec<&'a str>>), ApiError> {
    let choice = &body["tool_choice"];
    if !choice.is_null() && tools.is_empty() && body.get("tools").is_none() {
        return Err(ApiError::invalid(
            "tool_choice",
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
        ));
    }
    let picked = match choice {
        Value::Null => (Choice::Auto, None),
        Value::String(s) => match s.as_str() {
            "none" => (Choice::None, None),
            "auto" => (Choice::Auto, None),
            "required" => (Choice::Required, None),
            other => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    format!(
                        "Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."
                    ),
                ));
            }
        },
        Value::Object(_) if choice["type"] == "allowed_tools" => {
            let spec = choice.get("allowed_tools").unwrap_or(choice);
            let names = spec["tools"]
                .as_array()
                .map(|t| t.iter().filter_map(function_name).collect());
            let mode = if spec["mode"] == "required" {
                Choice::Required
            } else {
                Choice::Auto
            };
            (mode, names)
        }
        _ => match function_name(choice) {
            Some(name) if tools.iter().any(|t| t.name == name) => (Choice::Named(name), None),
            Some(name) => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    format!(
                        "Invalid value for 'tool_choice': function '{name}' was not found in 'tools'."
                    ),
                ));
            }
            None => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    "Missing required parameter: 'tool_choice.function.name'.",
                ));
            }
        },
    };
    Ok(picked)
}

/// Chat's `stop`: up to four sequences, refused by reasoning models.
fn chat_stops(body: &Value, model: &Model) -> Result<Vec<String>, ApiError> {
    let stops = stops::parse(&body["stop"], MAX_STOPS, "stop")?;
    if model.reasoning && !stops.is_empty() {
        return Err(ApiError::invalid(
            "stop",
            format!(
                "Unsupported parameter: 'stop' is not supported with this model ({}).",
                model.id
            ),
        ));
    }
    Ok(stops)
}

/// The calls an answer makes (the same for every choice of one request).
fn plan_calls(body: &Value, prompt: &Prompt, nested: bool) -> Result<Vec<Call>, ApiError> {
    let tools = function_tools(body, nested);
    let (choice, allowed) = tool_choice(body, &tools)?;
    Ok(tools::plan(&Turn {
        tools,
        choice,
        allowed,
        parallel: body["parallel_tool_calls"] != false,
        last_user: &prompt.last_user,
        after_tool_result: prompt.after_tool_result(),
    }))
}

struct Ask<'a> {
    model: &'a Model,
    prompt: &'a Prompt,
    seed: u64,
    max_tokens: Option<u32>,
    effort: Option<&'a str>,
    format: &'a Format,
    calls: &'a [Call],
    stops: &'a [String],
}

/// The prose of an answer: one that uses the tool results when they came back.
fn prose(ask: &Ask, seed: u64) -> String {
    if ask.prompt.after_tool_result() {
        tools::answer_with_results(&ask.prompt.tool_results)
    } else {
        text::reply(&ask.model.display_name, &ask.prompt.last_user, seed)
    }
}

fn generate(ask: &Ask, index: u64, ids: &IdGen) -> Generated {
    let seed = ask.seed.wrapping_add(index.wrapping_mul(0x9e37_79b9));
    let full = match ask.format {
        _ if !ask.calls.is_empty() => String::new(),
        Format::Text => prose(ask, seed),
        Format::JsonObject => json!({
            "answer": prose(ask, seed),
            "source": text::SOURCE,
        })
        .to_string(),
        Format::JsonSchema(schema) => {
            schema::sample(schema, &text::salient_name(&ask.prompt.last_user)).to_string()
        }
    };
    let calls = ask
        .calls
        .iter()
        .map(|call| ToolCall {
            call_id: ids.next("call_", 24),
            item_id: ids.next("fc_", 48),
            call: call.clone(),
        })
        .collect();
    let wanted_reasoning = if ask.model.reasoning {
        text::hidden_reasoning_tokens(ask.effort.unwrap_or("medium"), seed)
    } else {
        0
    };
    let max = ask.max_tokens.unwrap_or(u32::MAX);
    let reasoning_tokens = wanted_reasoning.min(max);
    let (stopped, _) = stops::cut(&full, ask.stops);
    let (visible, truncated) = text::truncate_tokens(stopped, max - reasoning_tokens);
    let truncated = truncated || wanted_reasoning > max;
    Generated {
        text: visible.to_string(),
        truncated,
        reasoning_tokens,
        text_tokens: text::count_tokens(visible),
        calls,
    }
}

fn positive_u32(body: &Value, field: &str) -> Result<Option<u32>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .map(|n| Some(n.min(u64::from(u32::MAX)) as u32))
            .ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!("Invalid '{field}': expected an integer of at least 1."),
                )
            }),
    }
}

fn require_chat_model(model: &Model) -> Result<(), ApiError> {
    match model.kind {
        ModelKind::Chat => Ok(()),
        ModelKind::Embedding => Err(ApiError::BadRequest(format!(
            "The model `{}` is an embedding model and cannot generate text.",
            model.id
        ))),
    }
}

fn check_effort(model: &Model, effort: Option<&str>) -> Result<(), ApiError> {
    match effort {
        Some(_) if !model.reasoning => Err(ApiError::invalid(
            "reasoning_effort",
            format!(
                "Unsupported parameter: 'reasoning_effort' is not supported with this model ({}).",
                model.id
            ),
        )),
        Some(e) if !["none", "minimal", "low", "medium", "high"].contains(&e) => {
            Err(ApiError::invalid(
                "reasoning_effort",
                format!(
                    "Invalid value: '{e}'. Supported values are: 'minimal', 'low', 'medium', and 'high'."
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// A PDF page is billed as the high-detail image of a letter-size page rendered at 144 dpi.
const PDF_PAGE_PIXELS: (u32, u32) = (1224, 1584);

/// OpenAI's tile rule: `low` detail is the flat base; otherwise the image is fitted within
/// 2048×2048, scaled down so its shorter side is at most 768, and each 512-px tile costs
/// extra (85 + 170 per tile; gpt-4o-mini 2833 + 5667).
fn image_tokens(model: &Model, (w, h): (u32, u32), detail: &str) -> u32 {
    let (base, per_tile) = if model.id.contains("4o-mini") {
        (2833, 5667)
    } else {
        (85, 170)
    };
    if detail == "low" {
        return base;
    }
    let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
    let fit = (2048.0 / w.max(h)).min(1.0);
    let (w, h) = (w * fit, h * fit);
    let shrink = (768.0 / w.min(h)).min(1.0);
    let tiles = ((w * shrink) / 512.0).ceil() * ((h * shrink) / 512.0).ceil();
    base + per_tile * tiles as u32
}

/// Counts the images and files of Chat or Responses content, wherever they sit.
fn add_media(prompt: &mut Prompt, model: &Model, content: &Value) {
    match content {
        Value::Array(items) => items.iter().for_each(|i| add_media(prompt, model, i)),
        Value::Object(map) => match map.get("type").and_then(Value::as_str) {
            Some("image_url") => {
                let url = content["image_url"]["url"].as_str().unwrap_or("");
                let detail = content["image_url"]["detail"].as_str().unwrap_or("auto");
                prompt.image_tokens += image_tokens(model, url_image_size(url), detail);
            }
            Some("input_image") => {
                let url = content["image_url"].as_str().unwrap_or("");
                let detail = content["detail"].as_str().unwrap_or("auto");
                prompt.image_tokens += image_tokens(model, url_image_size(url), detail);
            }
            Some("file") => add_file(prompt, model, &content["file"]["file_data"]),
            Some("input_file") => add_file(prompt, model, &content["file_data"]),
            _ => map.values().for_each(|v| add_media(prompt, model, v)),
        },
        _ => {}
    }
}

fn url_image_size(url: &str) -> (u32, u32) {
    media::Inline::from_data_url(url).map_or(media::UNKNOWN_IMAGE, |i| i.image_size())
}

fn add_file(prompt: &mut Prompt, model: &Model, data: &Value) {
    let Some(data) = data.as_str() else {
        return;
    };
    let file = media::Inline::from_data_url(data)
        .or_else(|| media::Inline::from_base64("application/pdf", data));
    let pages = file.map_or(1, |f| media::pdf_pages(&f.bytes));
    prompt.document_tokens += pages * image_tokens(model, PDF_PAGE_PIXELS, "high");
}

/// Reasoning models take only the default `temperature` and `top_p` (1).
fn check_sampling(model: &Model, body: &Value) -> Result<(), ApiError> {
    if !model.reasoning {
        return Ok(());
    }
    for param in ["temperature", "top_p"] {
        match body[param].as_f64() {
            Some(v) if v != 1.0 => {
                return Err(ApiError::invalid(
                    param,
                    format!(
                        "Unsupported value: '{param}' does not support {v} with this model. Only the default (1) value is supported."
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn chat_prompt(body: &Value) -> Result<Prompt, ApiError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::invalid("messages", "Missing required parameter: 'messages'."))?;
    let mut prompt = Prompt::default();
    for message in messages {
        prompt.add_message();
        let text = prompt.add_content(&message["content"]);
        match message["role"].as_str() {
            Some("user") => {
                prompt.last_user = text;
                prompt.tool_results.clear();
            }
            Some("tool") => prompt.tool_results.push(text),
            _ => prompt.tool_results.clear(),
        }
        if let Some(calls) = message.get("tool_calls") {
            prompt.add_text(&calls.to_string());
        }
    }
    if let Some(tools) = body.get("tools") {
        prompt.add_text(&tools.to_string());
    }
    Ok(prompt)
}

/// A prompt's size and how much of it was read from the cache.
#[derive(Debug, Clone, Copy)]
struct PromptCount {
    tokens: u32,
    cached: u32,
}

/// Prompts this long and longer are cached automatically.
const MIN_CACHED_PROMPT: u32 = 1024;
/// Cache hits are counted in steps of this many tokens above the minimum.
const CACHE_STEP: u32 = 128;
const CACHE_TTL: Duration = Duration::from_secs(10 * 60);

/// The messages of a chat request, each a cache segment.
fn chat_segments(body: &Value) -> Vec<Value> {
    body["messages"].as_array().cloned().unwrap_or_default()
}

/// The instructions and input items of a Responses request, each a cache segment.
fn response_segments(body: &Value) -> Vec<Value> {
    let instructions = body.get("instructions").filter(|i| !i.is_null()).cloned();
    let input = match &body["input"] {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    instructions.into_iter().chain(input).collect()
}

impl OpenAiApi {
    /// Automatic caching: the longest prefix of at least [`MIN_CACHED_PROMPT`] tokens seen
    /// recently, rounded down to a [`CACHE_STEP`]; every long prefix is remembered for next time.
    fn cached_prefix(&self, model: &Model, tools: Option<&Value>, segments: Vec<Value>) -> u32 {
        let mut prefix = Prefix::new(&model.served_as);
        if let Some(tools) = tools {
            prefix.push(tools, text::count_tokens(&tools.to_string()));
        }
        for segment in &segments {
            let mut scratch = Prompt::default();
            scratch.add_message();
            scratch.add_content(segment.get("content").unwrap_or(segment));
            prefix.push(segment, scratch.tokens());
        }
        let long: Vec<_> = prefix
            .boundaries
            .iter()
            .filter(|b| b.tokens >= MIN_CACHED_PROMPT)
            .collect();
        let hit = long
            .iter()
            .filter(|b| self.cache.contains(&b.hash))
            .map(|b| b.tokens)
            .max()
            .unwrap_or(0);
        long.iter()
            .for_each(|b| self.cache.insert(b.hash, (), CACHE_TTL));
        if hit < MIN_CACHED_PROMPT {
            0
        } else {
            MIN_CACHED_PROMPT + (hit - MIN_CACHED_PROMPT) / CACHE_STEP * CACHE_STEP
        }
    }
}

/// Chat usage as OpenAI reports it; typed because this is the hot path.
#[derive(Serialize)]
struct ChatUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u32,
    audio_tokens: u32,
}

#[derive(Serialize)]
struct CompletionDetails {
    reasoning_tokens: u32,
    audio_tokens: u32,
    accepted_prediction_tokens: u32,
    rejected_prediction_tokens: u32,
}

fn chat_usage(prompt: PromptCount, answers: &[Generated]) -> ChatUsage {
    let prompt_tokens = prompt.tokens;
    let completion_tokens: u32 = answers.iter().map(Generated::completion_tokens).sum();
    ChatUsage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        prompt_tokens_details: PromptDetails {
            cached_tokens: prompt.cached,
            audio_tokens: 0,
        },
        completion_tokens_details: CompletionDetails {
            reasoning_tokens: answers.iter().map(|g| g.reasoning_tokens).sum(),
            audio_tokens: 0,
            accepted_prediction_tokens: 0,
            rejected_prediction_tokens: 0,
        },
    }
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: Vec<ChatChoice<'a>>,
    usage: ChatUsage,
    service_tier: &'static str,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: usize,
    message: ChatMessage<'a>,
    logprobs: Option<Value>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    annotations: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<Value>>,
}

fn finish_reason(g: &Generated) -> &'static str {
    if !g.calls.is_empty() {
        "tool_calls"
    } else if g.truncated {
        "length"
    } else {
        "stop"
    }
}

impl OpenAiApi {
    fn chat(&self, req: &EmuRequest, cx: &Cx) -> Result<Reply, ApiError> {
        let body = parse_json(req)?;
        let model = self.model(&body)?;
        require_chat_model(model)?;
        let mut prompt = chat_prompt(&body)?;
        add_media(&mut prompt, model, &body["messages"]);
        if model.reasoning && body.get("max_tokens").is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid(
                "max_tokens",
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
            ));
        }
        let max_tokens = match positive_u32(&body, "max_completion_tokens")? {
            Some(n) => Some(n),
            None => positive_u32(&body, "max_tokens")?,
        };
        let n = positive_u32(&body, "n")?.unwrap_or(1);
        if u64::from(n) > MAX_CHOICES {
            return Err(ApiError::invalid(
                "n",
                format!(
                    "Invalid 'n': integer above maximum value. Expected a value <= {MAX_CHOICES}, but got {n} instead."
                ),
            ));
        }
        let effort = body.get("reasoning_effort").and_then(Value::as_str);
        check_effort(model, effort)?;
        check_sampling(model, &body)?;
        let format = chat_format(&body);
        let calls = plan_calls(&body, &prompt, true)?;
        let stops = chat_stops(&body, model)?;
        let ask = Ask {
            model,
            prompt: &prompt,
            seed: text::seed_of_request(&body),
            max_tokens,
            effort,
            format: &format,
            calls: &calls,
            stops: &stops,
        };
        let answers: Vec<Generated> = (0..u64::from(n))
            .map(|i| generate(&ask, i, cx.ids))
            .collect();
        let logprobs = requested_logprobs(&body)?;
        let id = cx.ids.next("chatcmpl-", 29);
        let count = PromptCount {
            tokens: prompt.tokens(),
            cached: self.cached_prefix(model, body.get("tools"), chat_segments(&body)),
        };
        if body["stream"] == true {
            let include_usage = body["stream_options"]["include_usage"] == true;
            Ok(Reply::Sse(chat_stream(
                &id,
                cx.now,
                model,
                count,
                &answers,
                include_usage,
                logprobs,
            )))
        } else {
            Ok(Reply::Json(chat_completion(
                &id, cx.now, model, count, &answers, logprobs,
            )))
        }
    }
}

const MAX_TOP_LOGPROBS: u64 = 20;
/// Stand-in alternatives listed under `top_logprobs`, less likely than the chosen token.
const ALTERNATIVES: &[&str] = &[
    " the", ",", " a", ".", " and", " to", " of", " is", " in", " it", " that", " for", " on",
    " with", " as", " this", " be", " are", " was", " at", " or",
];

/// `logprobs` and `top_logprobs`: None when not asked for, else how many alternatives.
fn requested_logprobs(body: &Value) -> Result<Option<u32>, ApiError> {
    let top = match &body["top_logprobs"] {
        Value::Null => None,
        v => Some(
            v.as_u64()
                .filter(|n| *n <= MAX_TOP_LOGPROBS)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "top_logprobs",
                        format!("Invalid 'top_logprobs': expected an integer between 0 and {MAX_TOP_LOGPROBS}."),
                    )
                })? as u32,
        ),
    };
    match (body["logprobs"] == true, top) {
        (true, top) => Ok(Some(top.unwrap_or(0))),
        (false, None) => Ok(None),
        (false, Some(_)) => Err(ApiError::invalid(
            "top_logprobs",
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.",
        )),
    }
}

/// A token's deterministic log probability, from its text: between -0.5 and 0.
fn token_logprob(token: &str) -> f64 {
    -((text::seed_of(token.as_bytes()) % 500) as f64) / 1000.0
}

fn logprob_entry(token: &str, logprob: f64) -> Value {
    json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()})
}

/// The `logprobs` object of a choice (or of one stream delta) for these token pieces.
fn logprobs_of(pieces: &[&str], top: u32) -> Value {
    let content: Vec<Value> = pieces
        .iter()
        .map(|piece| {
            let logprob = token_logprob(piece);
            let mut entry = logprob_entry(piece, logprob);
            let others = ALTERNATIVES.iter().filter(|a| *a != piece);
            let top_list: Vec<Value> = std::iter::once(logprob_entry(piece, logprob))
                .chain(
                    others
                        .enumerate()
                        .map(|(i, a)| logprob_entry(a, logprob - 1.0 - i as f64)),
                )
                .take(top as usize)
                .collect();
            entry["top_logprobs"] = Value::Array(top_list);
            entry
        })
        .collect();
    json!({"content": content, "refusal": null})
}

fn chat_completion(
    id: &str,
    created: i64,
    model: &Model,
    prompt: PromptCount,
    answers: &[Generated],
    logprobs: Option<u32>,
) -> Vec<u8> {
    let completion = ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model: &model.served_as,
        choices: answers
            .iter()
            .enumerate()
            .map(|(index, g)| ChatChoice {
                index,
                message: ChatMessage {
                    role: "assistant",
                    content: g.calls.is_empty().then_some(g.text.as_str()),
                    refusal: None,
                    annotations: [],
                    tool_calls: (!g.calls.is_empty())
                        .then(|| g.calls.iter().map(ToolCall::chat_json).collect()),
                },
                logprobs: logprobs
                    .filter(|_| g.calls.is_empty())
                    .map(|top| logprobs_of(&text::token_pieces(&g.text), top)),
                finish_reason: finish_reason(g),
            })
            .collect(),
        usage: chat_usage(prompt, answers),
        service_tier: "default",
        system_fingerprint: SYSTEM_FINGERPRINT,
    };
    serde_json::to_vec(&completion).unwrap_or_default()
}

fn chat_stream(
    id: &str,
    created: i64,
    model: &Model,
    prompt: PromptCount,
    answers: &[Generated],
    include_usage: bool,
    logprobs: Option<u32>,
) -> Vec<SseEvent> {
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut v = json!({
            "id": id, "object": "chat.completion.chunk", "created": created,
            "model": model.served_as, "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT, "choices": choices,
        });
        if include_usage {
            v["usage"] = usage.unwrap_or(Value::Null);
        }
        v
    };
    let mut events = Vec::new();
    for (index, answer) in answers.iter().enumerate() {
        let delta = |delta: Value, finish: Option<&str>| json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        let content_delta = |piece: &str| {
            let mut choices = delta(json!({"content": piece}), None);
            if let Some(top) = logprobs {
                choices[0]["logprobs"] = logprobs_of(&[piece], top);
            }
            choices
        };
        if answer.calls.is_empty() {
            events.push(SseEvent::data(
                &chunk(
                    delta(
                        json!({"role": "assistant", "content": "", "refusal": null}),
                        None,
                    ),
                    None,
                ),
                0,
            ));
        }
        for piece in text::token_pieces(&answer.text) {
            events.push(SseEvent::data(&chunk(content_delta(piece), None), 1));
        }
        for (position, fragment) in tool_call_fragments(&answer.calls) {
            let mut d = json!({"tool_calls": [fragment.0]});
            if position == 0 {
                d["role"] = Value::from("assistant");
                d["content"] = Value::Null;
            }
            events.push(SseEvent::data(&chunk(delta(d, None), None), fragment.1));
        }
        events.push(SseEvent::data(
            &chunk(delta(json!({}), Some(finish_reason(answer))), None),
            0,
        ));
    }
    if include_usage {
        let usage = serde_json::to_value(chat_usage(prompt, answers)).unwrap_or_default();
        events.push(SseEvent::data(&chunk(json!([]), Some(usage)), 0));
    }
    events.push(SseEvent::raw("data: [DONE]\n\n"));
    events
}

/// The `tool_calls` delta fragments of a chat stream, as OpenAI frames them: the first of each
/// call has its index, id, type, name and empty arguments, the rest only index and argument
/// pieces. Numbered so the caller knows which is the very first.
fn tool_call_fragments(calls: &[ToolCall]) -> Vec<(usize, (Value, u32))> {
    let mut out = Vec::new();
    for (index, call) in calls.iter().enumerate() {
        out.push(json!({"index": index, "id": call.call_id, "type": "function", "function": {"name": call.call.name, "arguments": ""}}));
        for (piece, _) in text::chunks(&call.call.arguments_json(), ARGUMENT_TOKENS_PER_DELTA) {
            out.push(json!({"index": index, "function": {"arguments": piece}}));
        }
    }
    out.into_iter()
        .map(|f| {
            let tokens = text::count_tokens(f["function"]["arguments"].as_str().unwrap_or(""));
            (f, tokens)
        })
        .enumerate()
        .collect()
}

fn responses_prompt(body: &Value) -> Result<Prompt, ApiError> {
    let mut prompt = Prompt::default();
    if let Some(instructions) = body.get("instructions").and_then(Value::as_str) {
        prompt.add_message();
        prompt.add_text(instructions);
    }
    match body.get("input") {
        Some(Value::String(s)) => {
            prompt.add_message();
            prompt.add_text(s);
            prompt.last_user = s.clone();
        }
        Some(Value::Array(items)) if !items.is_empty() => {
            items
                .iter()
                .for_each(|item| add_response_item(&mut prompt, item));
        }
        _ => {
            return Err(ApiError::invalid(
                "input",
                "Missing required parameter: 'input'.",
            ));
        }
    }
    if let Some(tools) = body.get("tools") {
        prompt.add_text(&tools.to_string());
    }
    Ok(prompt)
}

/// A request's input as items: a bare string is one user message.
fn input_items(body: &Value) -> Vec<Value> {
    match &body["input"] {
        Value::String(s) => vec![json!({"type": "message", "role": "user", "content": s})],
        Value::Array(items) => items.clone(),
        _ => Vec::new(),
    }
}

/// The stored input items, newest first as the API lists them, each with an id.
fn input_items_list(stored: &StoredResponse) -> Value {
    let outputs = stored.object["output"].as_array().map_or(0, Vec::len);
    let inputs = stored.conversation.len().saturating_sub(outputs);
    let data: Vec<Value> = stored.conversation[..inputs]
        .iter()
        .enumerate()
        .rev()
        .map(|(i, item)| listed_item(item, i))
        .collect();
    let first = data.first().map(|d| d["id"].clone());
    let last = data.last().map(|d| d["id"].clone());
    json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": false})
}

/// An input item as listed: with an id, and message text as `input_text` parts.
fn listed_item(item: &Value, index: usize) -> Value {
    let mut item = item.clone();
    if item.get("id").is_none() {
        item["id"] = Value::from(format!("msg_input{index:04}"));
    }
    if item.get("type").is_none() {
        item["type"] = Value::from("message");
    }
    if let Some(text) = item["content"].as_str().map(str::to_string) {
        item["content"] = json!([{"type": "input_text", "text": text}]);
    }
    if item["type"] == "message" && item.get("status").is_none() {
        item["status"] = Value::from("completed");
    }
    item
}

/// Counts one Responses input item and notes what the last turn is: a user message, or the
/// outputs of function calls.
fn add_response_item(prompt: &mut Prompt, item: &Value) {
    prompt.add_message();
    match item["type"].as_str() {
        Some("function_call_output") => {
            let text = prompt.add_content(&item["output"]);
            prompt.tool_results.push(text);
        }
        Some("function_call") => {
            prompt.add_text(item["name"].as_str().unwrap_or(""));
            prompt.add_text(item["arguments"].as_str().unwrap_or(""));
        }
        _ => {
            let text = prompt.add_content(item.get("content").unwrap_or(item));
            prompt.tool_results.clear();
            if item["role"] == "user" {
                prompt.last_user = text;
            }
        }
    }
}

/// The pieces of a Responses API answer that its events and final object share.
struct ResponseParts<'a> {
    id: String,
    message_id: String,
    reasoning_id: Option<String>,
    created: i64,
    model: &'a Model,
    body: &'a Value,
    prompt: PromptCount,
    answer: Generated,
    /// The reasoning summary, when `reasoning.summary` asks for one.
    summary: Option<String>,
}

impl ResponseParts<'_> {
    fn message_item(&self, status: &str, text: Option<&str>) -> Value {
        let content = match text {
            Some(t) => {
                json!([{"type": "output_text", "text": t, "annotations": [], "logprobs": []}])
            }
            None => json!([]),
        };
        json!({"id": self.message_id, "type": "message", "status": status, "role": "assistant", "content": content})
    }

    fn reasoning_item(&self) -> Option<Value> {
        let summary: Vec<Value> = self
            .summary
            .iter()
            .map(|text| json!({"type": "summary_text", "text": text}))
            .collect();
        self.reasoning_id
            .as_ref()
            .map(|id| json!({"id": id, "type": "reasoning", "summary": summary}))
    }

    /// The finished items after any reasoning: the function calls, or else the message.
    fn answer_items(&self) -> Vec<Value> {
        if self.answer.calls.is_empty() {
            vec![self.message_item("completed", Some(&self.answer.text))]
        } else {
            self.answer
                .calls
                .iter()
                .map(|c| c.response_item("completed", &c.call.arguments_json()))
                .collect()
        }
    }

    fn message_index(&self) -> usize {
        usize::from(self.reasoning_id.is_some())
    }

    fn usage(&self) -> Value {
        let output = self.answer.completion_tokens();
        json!({
            "input_tokens": self.prompt.tokens,
            "input_tokens_details": {"cached_tokens": self.prompt.cached, "cache_write_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": self.answer.reasoning_tokens},
            "total_tokens": self.prompt.tokens + output,
        })
    }

    fn status(&self) -> &'static str {
        if self.answer.truncated {
            "incomplete"
        } else {
            "completed"
        }
    }

    /// The response object; `done` false gives the early in-progress form used by stream events.
    fn object(&self, done: bool) -> Value {
        let output: Vec<Value> = if done {
            self.reasoning_item()
                .into_iter()
                .chain(self.answer_items())
                .collect()
        } else {
            Vec::new()
        };
        let effort = self.body["reasoning"]["effort"].clone();
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": if done { self.status() } else { "in_progress" },
            "error": null,
            "incomplete_details": if done && self.answer.truncated { json!({"reason": "max_output_tokens"}) } else { Value::Null },
            "instructions": self.body.get("instructions").cloned().unwrap_or(Value::Null),
            "max_output_tokens": self.body.get("max_output_tokens").cloned().unwrap_or(Value::Null),
            "model": self.model.served_as,
            "output": output,
            "parallel_tool_calls": self.body["parallel_tool_calls"] != false,
            "previous_response_id": self.body.get("previous_response_id").cloned().unwrap_or(Value::Null),
            "reasoning": {"effort": if self.model.reasoning { effort } else { Value::Null }, "summary": self.body["reasoning"].get("summary").cloned().unwrap_or(Value::Null)},
            "store": self.body["store"] != false,
            "temperature": 1.0,
            "text": {"format": self.body["text"]["format"].as_object().map_or(json!({"type": "text"}), |f| Value::Object(f.clone()))},
            "tool_choice": self.body.get("tool_choice").cloned().unwrap_or_else(|| json!("auto")),
            "tools": self.body.get("tools").cloned().unwrap_or_else(|| json!([])),
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": if done { self.usage() } else { Value::Null },
            "user": null,
            "metadata": {},
        })
    }
}

impl OpenAiApi {
    fn responses(&self, req: &EmuRequest, cx: &Cx) -> Result<Reply, ApiError> {
        let request = parse_json(req)?;
        let body = self.with_history(&request)?;
        let model = self.model(&body)?;
        require_chat_model(model)?;
        let mut prompt = responses_prompt(&body)?;
        add_media(&mut prompt, model, &body["input"]);
        let effort = body["reasoning"]["effort"].as_str();
        check_sampling(model, &body)?;
        if effort.is_some() && !model.reasoning {
            return Err(ApiError::invalid(
                "reasoning.effort",
                format!(
                    "Unsupported parameter: 'reasoning.effort' is not supported with this model ({}).",
                    model.id
                ),
            ));
        }
        let format = responses_format(&body);
        let calls = plan_calls(&body, &prompt, false)?;
        let ask = Ask {
            model,
            prompt: &prompt,
            seed: text::seed_of_request(&body),
            max_tokens: positive_u32(&body, "max_output_tokens")?,
            effort,
            format: &format,
            calls: &calls,
            stops: &[],
        };
        let parts = ResponseParts {
            id: cx.ids.next("resp_", 48),
            message_id: cx.ids.next("msg_", 48),
            reasoning_id: model.reasoning.then(|| cx.ids.next("rs_", 48)),
            created: cx.now,
            model,
            body: &request,
            prompt: PromptCount {
                tokens: prompt.tokens(),
                cached: self.cached_prefix(model, body.get("tools"), response_segments(&body)),
            },
            answer: generate(&ask, 0, cx.ids),
            summary: reasoning_summary(&body, model, &prompt),
        };
        let object = parts.object(true);
        if request["store"] != false {
            self.store(&body, &object);
        }
        if body["stream"] == true {
            Ok(Reply::Sse(responses_stream(&parts)))
        } else {
            Ok(Reply::Json(json_bytes(&object)))
        }
    }

    /// The request with the stored conversation of `previous_response_id` put before its
    /// input (instructions are not carried over, as on the real API).
    fn with_history(&self, request: &Value) -> Result<Value, ApiError> {
        let Some(previous) = request["previous_response_id"].as_str() else {
            return Ok(request.clone());
        };
        let stored = self.stored.get(&previous.to_string()).ok_or_else(|| {
            ApiError::invalid(
                "previous_response_id",
                format!("Previous response with id '{previous}' not found."),
            )
        })?;
        let mut body = request.clone();
        let conversation: Vec<Value> = stored
            .conversation
            .into_iter()
            .chain(input_items(request))
            .collect();
        body["input"] = Value::Array(conversation);
        Ok(body)
    }

    fn store(&self, body: &Value, object: &Value) {
        let conversation = input_items(body)
            .into_iter()
            .chain(object["output"].as_array().cloned().unwrap_or_default())
            .collect();
        if let Some(id) = object["id"].as_str() {
            let stored = StoredResponse {
                object: object.clone(),
                conversation,
            };
            self.stored.insert(id.to_string(), stored, STORED_TTL);
        }
    }

    /// `GET` and `DELETE /v1/responses/{id}`, and `GET /v1/responses/{id}/input_items`.
    fn stored_response(&self, req: &EmuRequest, rest: &str) -> Result<Reply, ApiError> {
        let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let id = id.to_string();
        match (req.method.to_ascii_uppercase().as_str(), tail) {
            ("GET", "") => {
                let stored = self.stored.get(&id).ok_or(ApiError::NotFound)?;
                Ok(Reply::Json(json_bytes(&stored.object)))
            }
            ("DELETE", "") => {
                self.stored.remove(&id).ok_or(ApiError::NotFound)?;
                Ok(Reply::Json(json_bytes(
                    &json!({"id": id, "object": "response.deleted", "deleted": true}),
                )))
            }
            ("GET", "input_items") => {
                let stored = self.stored.get(&id).ok_or(ApiError::NotFound)?;
                Ok(Reply::Json(json_bytes(&input_items_list(&stored))))
            }
            _ => Err(ApiError::NotFound),
        }
    }
}

/// Tokens a reasoning summary may take at most.
const SUMMARY_TOKENS: u32 = 60;

/// A short, deterministic summary for reasoning models asked for one (`auto`, `concise` or
/// `detailed`).
fn reasoning_summary(body: &Value, model: &Model, prompt: &Prompt) -> Option<String> {
    let wanted = body["reasoning"]["summary"]
        .as_str()
        .is_some_and(|s| s != "none");
    (wanted && model.reasoning).then(|| {
        text::thinking(
            &prompt.last_user,
            text::seed_of_request(body),
            SUMMARY_TOKENS,
        )
    })
}

/// The summary part events of a reasoning item, between its added and done events.
fn push_summary_events(log: &mut EventLog, item_id: &str, summary: &str) {
    let at = json!({"item_id": item_id, "output_index": 0, "summary_index": 0});
    let with = |extra: Value| {
        let mut v = at.clone();
        if let (Some(map), Value::Object(more)) = (v.as_object_mut(), extra) {
            map.extend(more);
        }
        v
    };
    log.push(
        "response.reasoning_summary_part.added",
        with(json!({"part": {"type": "summary_text", "text": ""}})),
        0,
    );
    for (piece, tokens) in text::chunks(summary, ARGUMENT_TOKENS_PER_DELTA) {
        log.push(
            "response.reasoning_summary_text.delta",
            with(json!({"delta": piece})),
            tokens,
        );
    }
    log.push(
        "response.reasoning_summary_text.done",
        with(json!({"text": summary})),
        0,
    );
    log.push(
        "response.reasoning_summary_part.done",
        with(json!({"part": {"type": "summary_text", "text": summary}})),
        0,
    );
}

/// Collects Responses API events, numbering them as it goes.
struct EventLog {
    events: Vec<SseEvent>,
}

impl EventLog {
    fn push(&mut self, name: &str, mut data: Value, tokens: u32) {
        data["type"] = Value::from(name);
        data["sequence_number"] = Value::from(self.events.len());
        self.events.push(SseEvent::named(name, &data, tokens));
    }
}

fn responses_stream(parts: &ResponseParts) -> Vec<SseEvent> {
    let mut log = EventLog { events: Vec::new() };
    log.push(
        "response.created",
        json!({"response": parts.object(false)}),
        0,
    );
    log.push(
        "response.in_progress",
        json!({"response": parts.object(false)}),
        0,
    );
    if let Some(item) = parts.reasoning_item() {
        let mut added = item.clone();
        added["summary"] = json!([]);
        log.push(
            "response.output_item.added",
            json!({"output_index": 0, "item": added}),
            0,
        );
        if let (Some(id), Some(summary)) = (&parts.reasoning_id, &parts.summary) {
            push_summary_events(&mut log, id, summary);
        }
        log.push(
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
            parts.answer.reasoning_tokens,
        );
    }
    if parts.answer.calls.is_empty() {
        push_message_events(&mut log, parts);
    } else {
        push_function_call_events(&mut log, parts);
    }
    let last = if parts.answer.truncated {
        "response.incomplete"
    } else {
        "response.completed"
    };
    log.push(last, json!({"response": parts.object(true)}), 0);
    log.events
}

/// One `function_call` item per call: added with empty arguments, the argument deltas, done.
fn push_function_call_events(log: &mut EventLog, parts: &ResponseParts) {
    for (i, call) in parts.answer.calls.iter().enumerate() {
        let index = parts.message_index() + i;
        let item_id = &call.item_id;
        let arguments = call.call.arguments_json();
        log.push(
            "response.output_item.added",
            json!({"output_index": index, "item": call.response_item("in_progress", "")}),
            0,
        );
        for (piece, tokens) in text::chunks(&arguments, ARGUMENT_TOKENS_PER_DELTA) {
            log.push(
                "response.function_call_arguments.delta",
                json!({"item_id": item_id, "output_index": index, "delta": piece}),
                tokens,
            );
        }
        log.push(
            "response.function_call_arguments.done",
            json!({"item_id": item_id, "output_index": index, "name": call.call.name, "arguments": arguments}),
            0,
        );
        log.push(
            "response.output_item.done",
            json!({"output_index": index, "item": call.response_item("completed", &arguments)}),
            0,
        );
    }
}

/// The message item: added, its text part, the text deltas, done.
fn push_message_events(log: &mut EventLog, parts: &ResponseParts) {
    let index = parts.message_index();
    let item_id = &parts.message_id;
    log.push(
        "response.output_item.added",
        json!({"output_index": index, "item": parts.message_item("in_progress", None)}),
        0,
    );
    let empty_part = json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
    log.push(
        "response.content_part.added",
        json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": empty_part}),
        0,
    );
    for piece in text::token_pieces(&parts.answer.text) {
        log.push(
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": index, "content_index": 0, "delta": piece, "logprobs": []}),
            1,
        );
    }
    let text = &parts.answer.text;
    log.push("response.output_text.done", json!({"item_id": item_id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}), 0);
    let part = json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
    log.push(
        "response.content_part.done",
        json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": part}),
        0,
    );
    log.push(
        "response.output_item.done",
        json!({"output_index": index, "item": parts.message_item("completed", Some(text))}),
        0,
    );
}

/// The native vector size of an OpenAI embedding model.
fn native_dimensions(model: &Model) -> usize {
    if model.id.contains("large") {
        3072
    } else {
        1536
    }
}

/// The texts an embeddings request asks for (token-id arrays are embedded by their JSON).
fn embedding_inputs(input: &Value) -> Result<Vec<(String, u32)>, ApiError> {
    let bad = || {
        ApiError::BadRequest(
            "'input' must be a non-empty string or array of strings or token arrays.".into(),
        )
    };
    let one = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Ok((s.clone(), text::count_tokens(s).max(1))),
        Value::Array(ids) if !ids.is_empty() && ids.iter().all(Value::is_u64) => {
            Ok((v.to_string(), ids.len() as u32))
        }
        _ => Err(bad()),
    };
    match input {
        Value::Array(items) if items.iter().all(Value::is_u64) => Ok(vec![one(input)?]),
        Value::Array(items) if !items.is_empty() => items.iter().map(one).collect(),
        Value::String(_) => Ok(vec![one(input)?]),
        _ => Err(bad()),
    }
}

impl OpenAiApi {
    fn embeddings(&self, req: &EmuRequest) -> Result<Reply, ApiError> {
        let body = parse_json(req)?;
        let model = self.model(&body)?;
        if model.kind != ModelKind::Embedding {
            return Err(ApiError::BadRequest(format!(
                "The model `{}` does not support embeddings.",
                model.id
            )));
        }
        let inputs = embedding_inputs(&body["input"])?;
        let native = native_dimensions(model);
        let dims = match positive_u32(&body, "dimensions")? {
            Some(d) if d as usize > native => {
                return Err(ApiError::BadRequest(format!(
                    "This model's maximum dimensions is {native}; {d} was requested."
                )));
            }
            Some(d) => d as usize,
            None => native,
        };
        let base64 = match body["encoding_format"].as_str() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid value for 'encoding_format': '{other}'. Use 'float' or 'base64'."
                )));
            }
        };
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, (input, _))| {
                let vector = super::embedding(input, dims);
                json!({"object": "embedding", "index": i, "embedding": encode_vector(&vector, base64)})
            })
            .collect();
        let tokens: u32 = inputs.iter().map(|(_, t)| t).sum();
        Ok(Reply::Json(json_bytes(&json!({
            "object": "list",
            "data": data,
            "model": model.served_as,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }))))
    }
}

/// A vector as JSON floats, or as base64 of little-endian `f32`s (what the SDK asks for).
fn encode_vector(vector: &[f32], base64: bool) -> Value {
    if base64 {
        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        Value::Array(vector.iter().map(|x| Value::from(f64::from(*x))).collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn masks_keys_like_openai() {
        let key = "sk-PMafPaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaE873";
        let masked = mask_key(key);
        assert!(masked.starts_with("sk-PMafP") && masked.ends_with("E873"));
        assert_eq!(masked.matches('*').count(), key.len() - 12);
    }

    #[test]
    fn embedding_inputs_accept_every_form() {
        assert_eq!(embedding_inputs(&json!("a b")).unwrap().len(), 1);
        assert_eq!(embedding_inputs(&json!(["a", "b"])).unwrap().len(), 2);
        assert_eq!(embedding_inputs(&json!([1, 2, 3])).unwrap()[0].1, 3);
        assert_eq!(embedding_inputs(&json!([[1, 2], [3]])).unwrap().len(), 2);
        assert!(embedding_inputs(&json!([])).is_err());
        assert!(embedding_inputs(&json!("")).is_err());
    }
}
