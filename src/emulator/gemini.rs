//! The Gemini API as the emulator serves it, under both `/v1beta/` and `/v1/`: paged models,
//! generateContent, streamGenerateContent (SSE), countTokens, embedContent, batchEmbedContents.
//!
//! Usage follows Gemini's rules: `thoughtsTokenCount` is separate from `candidatesTokenCount`
//! and both are in `totalTokenCount`; every stream chunk carries the running totals.
//! Thinking: 2.5 models (catalog `reasoning`) think by default, as the real ones do;
//! `thinkingConfig.thinkingBudget: 0` turns it off and a positive budget caps it. Thoughts count
//! against `maxOutputTokens`.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::cache::{Prefix, TtlMap};
use super::faults::{KeyStatus, classify_key};
use super::text::{self, Prompt};
use super::tools::{self, Call, Choice, Tool, Turn};
use super::{
    ApiError, Cx, EmuRequest, EmulatedApi, Reply, SseEvent, json_bytes, media, parse_json, schema,
    stops,
};
use crate::catalog::{Catalog, Model, ModelKind};
use crate::providers::Provider;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;
const EMBEDDING_DIMENSIONS: usize = 3072;
/// Tokens per streamed chunk (Gemini sends large chunks).
const TOKENS_PER_CHUNK: usize = 8;
const MAX_STOPS: usize = 5;

/// The Gemini surface, with its model objects built once.
pub struct GeminiApi {
    catalog: &'static Catalog,
    models: Vec<Value>,
    /// Prompt prefixes seen recently, for implicit caching.
    implicit: TtlMap<u64, ()>,
    /// `cachedContents/{id}` resources.
    explicit: TtlMap<String, CachedContent>,
}

impl GeminiApi {
    pub fn new(catalog: &'static Catalog) -> GeminiApi {
        let models = catalog
            .for_provider(Provider::Gemini)
            .map(model_object)
            .collect();
        GeminiApi {
            catalog,
            models,
            implicit: TtlMap::default(),
            explicit: TtlMap::default(),
        }
    }

    fn resolve(&self, name: &str) -> Result<&'static Model, ApiError> {
        self.catalog
            .resolve(Provider::Gemini, name)
            .ok_or_else(|| ApiError::ModelNotFound(name.trim_start_matches("models/").to_string()))
    }

    fn list_models(&self, req: &EmuRequest) -> Result<Reply, ApiError> {
        let size = match req.query_param("pageSize") {
            None => DEFAULT_PAGE,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .map(|n| n.min(MAX_PAGE))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("Invalid value at 'page_size' ({s})"))
                })?,
        };
        let start = match req.query_param("pageToken").filter(|t| !t.is_empty()) {
            None => 0,
            Some(token) => decode_page_token(&token)
                .filter(|n| *n <= self.models.len())
                .ok_or_else(|| ApiError::BadRequest("Invalid page token.".into()))?,
        };
        let end = (start + size).min(self.models.len());
        let mut body = json!({"models": self.models[start..end].to_vec()});
        if end < self.models.len() {
            body["nextPageToken"] = Value::from(encode_page_token(end));
        }
        Ok(Reply::Json(json_bytes(&body)))
    }
}

fn encode_page_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset={offset}"))
}

fn decode_page_token(token: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("offset=")?
        .parse()
        .ok()
}

fn model_object(model: &Model) -> Value {
    let mut v = json!({
        "name": format!("models/{}", model.id),
        "version": "001",
        "displayName": model.display_name,
        "description": format!("{} served by the {}.", model.display_name, text::SOURCE),
        "inputTokenLimit": model.context_window,
        "outputTokenLimit": model.max_output_tokens,
    });
    match model.kind {
        ModelKind::Chat => {
            v["supportedGenerationMethods"] = json!([
                "generateContent",
                "countTokens",
                "createCachedContent",
                "batchGenerateContent"
            ]);
            v["temperature"] = json!(1);
            v["topP"] = json!(0.95);
            v["topK"] = json!(64);
            v["maxTemperature"] = json!(2);
            v["thinking"] = json!(model.reasoning);
        }
        ModelKind::Embedding => {
            v["supportedGenerationMethods"] = json!([
                "embedContent",
                "countTextTokens",
                "countTokens",
                "asyncBatchEmbedContent"
            ]);
        }
    }
    v
}

/// A field by its camelCase name or its snake_case twin: the Gemini API accepts both, and
/// google-genai sends some nested configs (such as `thinking_config`) in snake_case.
fn field<'a>(value: &'a Value, camel: &str) -> &'a Value {
    match value.get(camel) {
        Some(v) => v,
        None => value.get(snake_case(camel)).unwrap_or(&Value::Null),
    }
}

fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `/v1beta/models/x:generateContent` → `models/x:generateContent`.
fn strip_version(path: &str) -> Option<&str> {
    path.strip_prefix("/v1beta/")
        .or_else(|| path.strip_prefix("/v1/"))
        .map(|p| p.trim_end_matches('/'))
}

impl EmulatedApi for GeminiApi {
    fn key_status(&self, req: &EmuRequest) -> KeyStatus {
        match req.header("x-goog-api-key") {
            Some(key) => classify_key(Some(key), "AIza", &[]),
            None => classify_key(req.query_param("key").as_deref(), "AIza", &[]),
        }
    }

    fn route(&self, req: &EmuRequest, cx: &Cx) -> Result<Reply, ApiError> {
        let rest = strip_version(&req.path).ok_or(ApiError::NotFound)?;
        if req.is("GET") && rest == "models" {
            return self.list_models(req);
        }
        if rest == "cachedContents" || rest.starts_with("cachedContents/") {
            return self.cached_contents(req, cx, rest);
        }
        let target = rest.strip_prefix("models/").ok_or(ApiError::NotFound)?;
        match (req.is("GET"), target.split_once(':')) {
            (true, None) => Ok(Reply::Json(json_bytes(&model_object(
                self.resolve(target)?,
            )))),
            (false, Some((model, method))) if req.is("POST") => {
                let model = self.resolve(model)?;
                match method {
                    "generateContent" => self.generate(req, cx, model, false),
                    "streamGenerateContent" => self.generate(req, cx, model, true),
                    "countTokens" => count_tokens(req),
                    "embedContent" => embed_one(req, model),
                    "batchEmbedContents" => embed_batch(req, model),
                    _ => Err(ApiError::NotFound),
                }
            }
            _ => Err(ApiError::NotFound),
        }
    }

    fn error(&self, err: &ApiError, _cx: &Cx) -> (u16, Vec<(String, String)>, Value) {
        let (code, status, message, details) = match err {
            ApiError::MissingKey => (403, "PERMISSION_DENIED", MISSING_KEY.to_string(), None),
            ApiError::InvalidKey(_) => (
                400,
                "INVALID_ARGUMENT",
                INVALID_KEY.to_string(),
                Some(invalid_key_details()),
            ),
            ApiError::NoQuota => (
                429,
                "RESOURCE_EXHAUSTED",
                NO_QUOTA.to_string(),
                Some(quota_details(None)),
            ),
            ApiError::RateLimited => (
                429,
                "RESOURCE_EXHAUSTED",
                RATE_LIMITED.to_string(),
                Some(quota_details(Some("1s"))),
            ),
            ApiError::ServerError => (500, "INTERNAL", SERVER_ERROR.to_string(), None),
            ApiError::Overloaded => (
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.".to_string(),
                None,
            ),
            ApiError::ModelNotFound(model) => (
                404,
                "NOT_FOUND",
                format!(
                    "models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."
                ),
                None,
            ),
            ApiError::BadRequest(message) => (400, "INVALID_ARGUMENT", message.clone(), None),
            ApiError::Invalid { param, message } => (
                400,
                "INVALID_ARGUMENT",
                message.clone(),
                Some(
                    json!([{"@type": "type.googleapis.com/google.rpc.BadRequest",
                             "fieldViolations": [{"field": param, "description": message}]}]),
                ),
            ),
            ApiError::NotFound => (
                404,
                "NOT_FOUND",
                "Requested entity was not found.".to_string(),
                None,
            ),
        };
        let mut error = json!({"code": code, "message": message, "status": status});
        if let Some(details) = details {
            error["details"] = details;
        }
        let retry = if matches!(err, ApiError::RateLimited) {
            vec![("retry-after".to_string(), "1".to_string())]
        } else {
            vec![]
        };
        (code, retry, json!({"error": error}))
    }

    fn common_headers(&self, _cx: &Cx) -> Vec<(String, String)> {
        vec![
            ("server".into(), "scaffolding on HTTPServer2".into()),
            ("vary".into(), "Origin, X-Origin, Referer".into()),
        ]
    }

    fn mid_stream_error(&self, _req: &EmuRequest, _cx: &Cx) -> SseEvent {
        let error = json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}});
        SseEvent::data(&error, 0)
    }

    fn json_content_type(&self) -> &'static str {
        "application/json; charset=UTF-8"
    }

    fn sse_content_type(&self) -> &'static str {
        "text/event-stream"
    }
}

const MISSING_KEY: &str = "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.";
const INVALID_KEY: &str = "API key not valid. Please pass a valid API key.";
const NO_QUOTA: &str = "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.";
const RATE_LIMITED: &str = "Resource has been exhausted (e.g. check quota). Please retry in 1s.";
const SERVER_ERROR: &str = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting";

fn invalid_key_details() -> Value {
    json!([
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
         "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": INVALID_KEY}
    ])
}

/// Quota details: a rate limit names a per-minute quota and says when to retry; an
/// exhausted quota names the daily one and has no retry hint.
fn quota_details(retry_delay: Option<&str>) -> Value {
    let quota_id = if retry_delay.is_some() {
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    } else {
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    };
    let mut details = vec![
        json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure",
               "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                               "quotaId": quota_id,
                               "quotaDimensions": {"location": "global"}, "quotaValue": "10"}]}),
        json!({"@type": "type.googleapis.com/google.rpc.Help",
               "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}),
    ];
    if let Some(delay) = retry_delay {
        details.push(
            json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}),
        );
    }
    Value::Array(details)
}

/// Gemini 2.x: an image with both sides at most 384 px is 258 tokens; a larger one is cut
/// into 768×768 tiles of 258 tokens each. A PDF page is 258 tokens.
const TILE_TOKENS: u32 = 258;

fn image_tokens((w, h): (u32, u32)) -> u32 {
    if w <= 384 && h <= 384 {
        TILE_TOKENS
    } else {
        media::ceil_div(w, 768).max(1) * media::ceil_div(h, 768).max(1) * TILE_TOKENS
    }
}

/// Counts `inlineData` and `fileData` parts: images by size, PDFs by page.
fn add_media(prompt: &mut Prompt, parts: &Value) {
    for part in parts.as_array().into_iter().flatten() {
        let inline = field(part, "inlineData");
        let file = field(part, "fileData");
        let (mime, bytes) = if !inline.is_null() {
            let mime = field(inline, "mimeType").as_str().unwrap_or("");
            (
                mime,
                media::Inline::from_base64(mime, inline["data"].as_str().unwrap_or("")),
            )
        } else if !file.is_null() {
            (field(file, "mimeType").as_str().unwrap_or(""), None)
        } else {
            continue;
        };
        if mime == "application/pdf" {
            prompt.document_tokens += TILE_TOKENS * bytes.map_or(1, |b| media::pdf_pages(&b.bytes));
        } else if mime.starts_with("image/") {
            prompt.image_tokens +=
                image_tokens(bytes.map_or(media::UNKNOWN_IMAGE, |b| b.image_size()));
        }
    }
}

/// Per-modality counts of a prompt, as `promptTokensDetails` lists them.
fn modality_details(prompt: &Prompt) -> Value {
    let mut details = vec![json!({"modality": "TEXT", "tokenCount": prompt.text_part()})];
    if prompt.image_tokens > 0 {
        details.push(json!({"modality": "IMAGE", "tokenCount": prompt.image_tokens}));
    }
    if prompt.document_tokens > 0 {
        details.push(json!({"modality": "DOCUMENT", "tokenCount": prompt.document_tokens}));
    }
    Value::Array(details)
}

/// The prompt of a generate or count request: system instruction plus every content turn.
fn contents_prompt(request: &Value) -> Result<Prompt, ApiError> {
    let contents = request
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "* GenerateContentRequest.contents: contents is not specified".into(),
            )
        })?;
    let mut prompt = Prompt::default();
    let system = field(request, "systemInstruction");
    if !system.is_null() {
        prompt.add_content(&system["parts"]);
    }
    for content in contents {
        prompt.add_message();
        let text = prompt.add_content(&content["parts"]);
        add_media(&mut prompt, &content["parts"]);
        prompt.tool_results = function_responses(&content["parts"]);
        let from_user = content["role"].as_str().is_none_or(|r| r == "user");
        if from_user && prompt.tool_results.is_empty() {
            prompt.last_user = text;
        }
    }
    if let Some(tools) = request.get("tools") {
        prompt.add_text(&tools.to_string());
    }
    Ok(prompt)
}

/// Hidden thinking tokens: on by default for thinking models, off with a budget of 0.
fn thoughts(model: &Model, config: &Value, seed: u64) -> u32 {
    if !model.reasoning {
        return 0;
    }
    let natural = text::hidden_reasoning_tokens("medium", seed);
    match field(field(config, "thinkingConfig"), "thinkingBudget").as_i64() {
        Some(0) => 0,
        Some(budget) if budget > 0 => natural.min(budget.min(i64::from(u32::MAX)) as u32),
        _ => natural,
    }
}

/// The text of each `functionResponse` part (the SDK's automatic function calling sends them
/// without ids).
fn function_responses(parts: &Value) -> Vec<String> {
    let Some(parts) = parts.as_array() else {
        return Vec::new();
    };
    parts
        .iter()
        .map(|p| field(p, "functionResponse"))
        .filter(|r| !r.is_null())
        .map(|r| field(r, "response").to_string())
        .collect()
}

/// The function declarations of every tool.
fn declarations(body: &Value) -> Vec<Tool<'_>> {
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return Vec::new();
    };
    tools
        .iter()
        .filter_map(|t| field(t, "functionDeclarations").as_array())
        .flatten()
        .filter_map(|d| {
            let json_schema = field(d, "parametersJsonSchema");
            let parameters = if json_schema.is_null() {
                d.get("parameters")
            } else {
                Some(json_schema)
            };
            Some(Tool {
                name: d["name"].as_str()?,
                description: d["description"].as_str().unwrap_or(""),
                parameters,
            })
        })
        .collect()
}

/// `toolConfig.functionCallingConfig`: mode AUTO (default), ANY, NONE or VALIDATED, and the
/// allowed names.
fn plan_calls(body: &Value, prompt: &Prompt) -> Result<Vec<Call>, ApiError> {
    let config = field(field(body, "toolConfig"), "functionCallingConfig");
    let choice = match config["mode"]
        .as_str()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("AUTO" | "VALIDATED" | "MODE_UNSPECIFIED") => Choice::Auto,
        Some("ANY") => Choice::Required,
        Some("NONE") => Choice::None,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), \"{other}\""
            )));
        }
    };
    let allowed: Option<Vec<&str>> = field(config, "allowedFunctionNames")
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect());
    if allowed.is_some() && choice != Choice::Required {
        return Err(ApiError::BadRequest(
            "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: allowed_function_names can only be set when mode is ANY.".into(),
        ));
    }
    Ok(tools::plan(&Turn {
        tools: declarations(body),
        choice,
        allowed,
        parallel: true,
        last_user: &prompt.last_user,
        after_tool_result: prompt.after_tool_result(),
    }))
}

/// One generated candidate and its counts.
struct Candidate {
    text: String,
    truncated: bool,
    thoughts: u32,
    calls: Vec<Call>,
    thought_signature: Option<String>,
    /// A summary of the thinking, when `includeThoughts` asks for it.
    thought_text: Option<String>,
}

impl Candidate {
    /// The candidate object for one frame: a piece of its text, its thought summary in the
    /// first frame, its calls and finish reason in the last.
    fn json(&self, index: usize, text: &str, first: bool, finish: Option<&str>) -> Value {
        let mut parts = Vec::new();
        if let Some(thought) = self.thought_text.as_ref().filter(|_| first) {
            parts.push(json!({"text": thought, "thought": true}));
        }
        if finish.is_some() && !self.calls.is_empty() {
            parts.extend(self.call_parts());
        } else {
            parts.push(json!({"text": text}));
        }
        let mut c = json!({"content": {"parts": parts, "role": "model"}, "index": index});
        if let Some(reason) = finish {
            c["finishReason"] = Value::from(reason);
        }
        c
    }

    fn call_parts(&self) -> Vec<Value> {
        self.calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut part = json!({"functionCall": {"name": c.name, "args": c.arguments}});
                if let Some(signature) = self.thought_signature.as_ref().filter(|_| i == 0) {
                    part["thoughtSignature"] = Value::from(signature.as_str());
                }
                part
            })
            .collect()
    }

    fn output_tokens(&self) -> u32 {
        text::count_tokens(&self.text) + self.calls.iter().map(Call::tokens).sum::<u32>()
    }
}

/// The structured output the config asks for, if any: JSON mode with or without a schema.
fn json_output(config: &Value, model: &Model, prompt: &Prompt, seed: u64) -> Option<String> {
    if field(config, "responseMimeType") != "application/json" {
        return None;
    }
    let schema = [
        field(config, "responseJsonSchema"),
        field(config, "responseSchema"),
    ]
    .into_iter()
    .find(|s| !s.is_null());
    Some(match schema {
        Some(s) => schema::sample(s, &text::salient_name(&prompt.last_user)).to_string(),
        None => json!({"answer": text::reply(&model.display_name, &prompt.last_user, seed), "source": text::SOURCE}).to_string(),
    })
}

fn candidate(
    model: &Model,
    body: &Value,
    prompt: &Prompt,
    seed: u64,
) -> Result<Candidate, ApiError> {
    let config = field(body, "generationConfig");
    let budget = field(field(config, "thinkingConfig"), "thinkingBudget").as_i64();
    if !model.reasoning && budget.is_some_and(|b| b > 0) {
        return Err(ApiError::invalid(
            "generation_config.thinking_config.thinking_budget",
            "Thinking is not supported by this model.",
        ));
    }
    let include_thoughts = field(field(config, "thinkingConfig"), "includeThoughts") == true;
    let calls = plan_calls(body, prompt)?;
    let full = if !calls.is_empty() {
        String::new()
    } else if let Some(json) = json_output(config, model, prompt, seed) {
        json
    } else if prompt.after_tool_result() {
        tools::answer_with_results(&prompt.tool_results)
    } else {
        text::reply(&model.display_name, &prompt.last_user, seed)
    };
    let max = field(config, "maxOutputTokens")
        .as_u64()
        .map_or(u32::MAX, |m| m.min(u64::from(u32::MAX)) as u32);
    let wanted = thoughts(model, config, seed);
    let thoughts = wanted.min(max);
    let stop_sequences = stops::parse(
        field(config, "stopSequences"),
        MAX_STOPS,
        "generation_config.stop_sequences",
    )?;
    let (until_stop, _) = stops::cut(&full, &stop_sequences);
    let (visible, truncated) = text::truncate_tokens(until_stop, max - thoughts);
    Ok(Candidate {
        text: visible.to_string(),
        truncated: truncated || wanted > max,
        thoughts,
        thought_signature: (model.reasoning && !calls.is_empty()).then(|| thought_signature(seed)),
        thought_text: (include_thoughts && thoughts > 0).then(|| {
            text::thinking(
                &prompt.last_user,
                seed,
                thoughts.min(THOUGHT_SUMMARY_TOKENS),
            )
        }),
        calls,
    })
}

/// The most tokens a thought summary takes (it is part of `thoughtsTokenCount`).
const THOUGHT_SUMMARY_TOKENS: u32 = 60;
const MAX_CANDIDATES: u64 = 8;

/// `candidateCount`: 1 to 8 answers, each from its own seed.
fn candidate_count(body: &Value) -> Result<u64, ApiError> {
    let config = field(body, "generationConfig");
    match field(config, "candidateCount") {
        Value::Null => Ok(1),
        v => v
            .as_u64()
            .filter(|n| (1..=MAX_CANDIDATES).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "generation_config.candidate_count",
                    format!("candidateCount must be between 1 and {MAX_CANDIDATES}."),
                )
            }),
    }
}

/// A stand-in for the opaque signature thinking models attach to a call.
fn thought_signature(seed: u64) -> String {
    let mut rng = text::Rng::new(seed ^ 0x7369_6721);
    let bytes: Vec<u8> = (0..32).map(|_| rng.below(256) as u8).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A prompt's size and how much of it came from a cache (which is inside the size).
#[derive(Debug, Clone)]
struct PromptCount {
    tokens: u32,
    cached: u32,
    /// `promptTokensDetails`: the count by modality.
    details: Value,
}

fn usage_metadata(prompt: &PromptCount, candidates_tokens: u32, thoughts: u32) -> Value {
    let prompt_tokens = prompt.tokens;
    let mut usage = json!({
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": prompt_tokens + candidates_tokens + thoughts,
        "promptTokensDetails": prompt.details,
    });
    if prompt.cached > 0 {
        usage["cachedContentTokenCount"] = Value::from(prompt.cached);
        usage["cacheTokensDetails"] = json!([{"modality": "TEXT", "tokenCount": prompt.cached}]);
    }
    if thoughts > 0 {
        usage["thoughtsTokenCount"] = Value::from(thoughts);
    }
    usage
}

/// An explicit cache: its resource as served and what a request using it adds to the prompt.
#[derive(Debug, Clone)]
struct CachedContent {
    resource: Value,
    model: String,
    tokens: u32,
}

const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60 * 60);
const IMPLICIT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// The shortest prompt prefix a model caches, implicitly or explicitly.
fn min_cacheable(model: &Model) -> u32 {
    if model.id.contains("pro") { 4096 } else { 1024 }
}

/// `"300s"` or `"1.5s"` → a duration.
fn parse_duration(ttl: &str) -> Option<Duration> {
    let seconds: f64 = ttl.strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

fn timestamp(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// How long a new cache lives: its `ttl`, or until its `expireTime`, or an hour.
fn requested_ttl(body: &Value, now: i64) -> Result<Duration, ApiError> {
    if let Some(ttl) = body["ttl"].as_str() {
        return parse_duration(ttl).ok_or_else(|| {
            ApiError::BadRequest(format!("Invalid value at 'cached_content.ttl' ({ttl})"))
        });
    }
    match field(body, "expireTime").as_str() {
        Some(at) => chrono::DateTime::parse_from_rfc3339(at)
            .map(|t| Duration::from_secs(t.timestamp().saturating_sub(now).max(0) as u64))
            .map_err(|_| {
                ApiError::BadRequest(format!(
                    "Invalid value at 'cached_content.expire_time' ({at})"
                ))
            }),
        None => Ok(DEFAULT_CACHE_TTL),
    }
}

impl GeminiApi {
    /// `cachedContents`: create and list; `cachedContents/{id}`: get, update (ttl) and delete.
    fn cached_contents(&self, req: &EmuRequest, cx: &Cx, rest: &str) -> Result<Reply, ApiError> {
        let name = rest.to_string();
        match (
            req.method.to_ascii_uppercase().as_str(),
            rest == "cachedContents",
        ) {
            ("POST", true) => self.create_cache(req, cx),
            ("GET", true) => {
                let caches: Vec<Value> = self
                    .explicit
                    .values()
                    .iter()
                    .filter_map(|c| self.cache_resource(c, cx))
                    .collect();
                Ok(Reply::Json(json_bytes(&json!({"cachedContents": caches}))))
            }
            ("GET", false) => {
                let cache = self.explicit.get(&name).ok_or(ApiError::NotFound)?;
                let resource = self.cache_resource(&cache, cx).ok_or(ApiError::NotFound)?;
                Ok(Reply::Json(json_bytes(&resource)))
            }
            ("PATCH", false) => {
                let body = parse_json(req)?;
                let cache = self.explicit.get(&name).ok_or(ApiError::NotFound)?;
                self.explicit
                    .insert(name.clone(), cache.clone(), requested_ttl(&body, cx.now)?);
                let resource = self.cache_resource(&cache, cx).ok_or(ApiError::NotFound)?;
                Ok(Reply::Json(json_bytes(&resource)))
            }
            ("DELETE", false) => {
                self.explicit.remove(&name).ok_or(ApiError::NotFound)?;
                Ok(Reply::Json(json_bytes(&json!({}))))
            }
            _ => Err(ApiError::NotFound),
        }
    }

    fn create_cache(&self, req: &EmuRequest, cx: &Cx) -> Result<Reply, ApiError> {
        let body = parse_json(req)?;
        let model_name = body["model"].as_str().ok_or_else(|| {
            ApiError::BadRequest(
                "* CreateCachedContentRequest.cached_content.model: model is required".into(),
            )
        })?;
        let model = self.resolve(model_name)?;
        let tokens = contents_prompt(&body)?.tokens();
        let min = min_cacheable(model);
        if tokens < min {
            return Err(ApiError::BadRequest(format!(
                "Cached content is too small. total_token_count={tokens}, min_total_token_count={min}"
            )));
        }
        let ttl = requested_ttl(&body, cx.now)?;
        let name = format!(
            "cachedContents/{}",
            cx.ids.next("", 12).to_ascii_lowercase()
        );
        let mut resource = json!({
            "name": name,
            "model": format!("models/{}", model.id),
            "createTime": timestamp(cx.now),
            "updateTime": timestamp(cx.now),
            "usageMetadata": {"totalTokenCount": tokens},
        });
        if let Some(display) = field(&body, "displayName").as_str() {
            resource["displayName"] = Value::from(display);
        }
        let cache = CachedContent {
            resource,
            model: model.id.clone(),
            tokens,
        };
        self.explicit.insert(name, cache.clone(), ttl);
        let resource = self.cache_resource(&cache, cx).ok_or(ApiError::NotFound)?;
        Ok(Reply::Json(json_bytes(&resource)))
    }

    /// The resource with the expiry time it has now (None once it expired).
    fn cache_resource(&self, cache: &CachedContent, cx: &Cx) -> Option<Value> {
        let name = cache.resource["name"].as_str()?.to_string();
        let (_, left) = self.explicit.get_with_ttl(&name)?;
        let mut resource = cache.resource.clone();
        resource["expireTime"] = Value::from(timestamp(cx.now + left.as_secs() as i64));
        Some(resource)
    }

    /// The request's prompt count: an explicit cache it names, or else implicit caching of
    /// the longest prefix (system, tools, contents) seen recently on 2.5 models.
    fn count_prompt(
        &self,
        body: &Value,
        model: &Model,
        prompt: &Prompt,
    ) -> Result<PromptCount, ApiError> {
        let tokens = prompt.tokens();
        let mut details = modality_details(prompt);
        if let Some(name) = field(body, "cachedContent").as_str() {
            let cache = self
                .explicit
                .get(&name.to_string())
                .ok_or(ApiError::NotFound)?;
            if cache.model != model.id {
                return Err(ApiError::BadRequest(format!(
                    "Model used by GenerateContent request (models/{}) and CachedContent (models/{}) has to be the same.",
                    model.id, cache.model
                )));
            }
            details[0]["tokenCount"] = Value::from(prompt.text_part() + cache.tokens);
            return Ok(PromptCount {
                tokens: tokens + cache.tokens,
                cached: cache.tokens,
                details,
            });
        }
        let cached = if model.reasoning {
            self.implicit_hit(body, model)
        } else {
            0
        };
        Ok(PromptCount {
            tokens,
            cached,
            details,
        })
    }

    fn implicit_hit(&self, body: &Value, model: &Model) -> u32 {
        let mut prefix = Prefix::new(&model.served_as);
        let system = field(body, "systemInstruction");
        if !system.is_null() {
            let mut scratch = Prompt::default();
            scratch.add_content(&system["parts"]);
            prefix.push(system, scratch.tokens());
        }
        if let Some(tools) = body.get("tools") {
            prefix.push(tools, text::count_tokens(&tools.to_string()));
        }
        for content in body["contents"].as_array().into_iter().flatten() {
            let mut scratch = Prompt::default();
            scratch.add_message();
            scratch.add_content(&content["parts"]);
            prefix.push(content, scratch.tokens());
        }
        let min = min_cacheable(model);
        let mut hit = 0;
        for boundary in prefix.boundaries.iter().filter(|b| b.tokens >= min) {
            if self.implicit.contains(&boundary.hash) {
                hit = hit.max(boundary.tokens);
            }
            self.implicit.insert(boundary.hash, (), IMPLICIT_CACHE_TTL);
        }
        hit
    }
}

fn finish_reason(c: &Candidate) -> &'static str {
    if c.truncated { "MAX_TOKENS" } else { "STOP" }
}

impl GeminiApi {
    fn generate(
        &self,
        req: &EmuRequest,
        cx: &Cx,
        model: &Model,
        stream: bool,
    ) -> Result<Reply, ApiError> {
        if model.kind != ModelKind::Chat {
            return Err(ApiError::ModelNotFound(model.id.clone()));
        }
        let body = parse_json(req)?;
        let prompt = contents_prompt(&body)?;
        let seed = text::seed_of_request(&body);
        let answers = (0..candidate_count(&body)?)
            .map(|i| candidate(model, &body, &prompt, seed.wrapping_add(i * 0x9e37_79b9)))
            .collect::<Result<Vec<_>, _>>()?;
        let count = self.count_prompt(&body, model, &prompt)?;
        let thoughts: u32 = answers.iter().map(|c| c.thoughts).sum();
        let total: u32 = answers.iter().map(Candidate::output_tokens).sum();
        let response_id = cx.ids.next("", 23);
        let frame = |candidates: Vec<Value>, candidates_tokens: u32| {
            json!({
                "candidates": candidates,
                "usageMetadata": usage_metadata(&count, candidates_tokens, thoughts),
                "modelVersion": model.served_as,
                "responseId": response_id,
            })
        };
        if !stream {
            let candidates = answers
                .iter()
                .enumerate()
                .map(|(i, c)| c.json(i, &c.text, true, Some(finish_reason(c))))
                .collect();
            return Ok(Reply::Json(json_bytes(&frame(candidates, total))));
        }
        let mut events = Vec::new();
        let mut so_far = 0;
        for (index, answer) in answers.iter().enumerate() {
            let mut chunks = text::chunks(&answer.text, TOKENS_PER_CHUNK);
            if chunks.is_empty() {
                chunks.push((String::new(), 0));
            }
            let last = chunks.len() - 1;
            for (i, (piece, tokens)) in chunks.into_iter().enumerate() {
                so_far += tokens;
                let finish = (i == last).then(|| finish_reason(answer));
                if finish.is_some() {
                    so_far += answer.output_tokens() - text::count_tokens(&answer.text);
                }
                let c = answer.json(index, &piece, i == 0, finish);
                events.push(SseEvent::data(&frame(vec![c], so_far), tokens));
            }
        }
        Ok(Reply::Sse(events))
    }
}

fn count_tokens(req: &EmuRequest) -> Result<Reply, ApiError> {
    let body = parse_json(req)?;
    let request = body.get("generateContentRequest").unwrap_or(&body);
    let prompt = contents_prompt(request)?;
    Ok(Reply::Json(json_bytes(&json!({
        "totalTokens": prompt.tokens(),
        "promptTokensDetails": modality_details(&prompt),
    }))))
}

fn require_embedding_model(model: &Model) -> Result<(), ApiError> {
    match model.kind {
        ModelKind::Embedding => Ok(()),
        ModelKind::Chat => Err(ApiError::ModelNotFound(model.id.clone())),
    }
}

/// The vector for one embed request (`{content, outputDimensionality}`).
fn embed_values(request: &Value) -> Result<Value, ApiError> {
    let mut text = String::new();
    let mut prompt = Prompt::default();
    text.push_str(&prompt.add_content(&request["content"]["parts"]));
    if text.is_empty() {
        return Err(ApiError::BadRequest(
            "* EmbedContentRequest.content: content is not specified".into(),
        ));
    }
    let dims = match field(request, "outputDimensionality").as_u64() {
        None => EMBEDDING_DIMENSIONS,
        Some(d) if (1..=EMBEDDING_DIMENSIONS as u64).contains(&d) => d as usize,
        Some(d) => {
            return Err(ApiError::BadRequest(format!(
                "outputDimensionality {d} is out of range 1..{EMBEDDING_DIMENSIONS}."
            )));
        }
    };
    let vector = super::embedding(&text, dims);
    Ok(json!({"values": vector.iter().map(|x| f64::from(*x)).collect::<Vec<_>>()}))
}

fn embed_one(req: &EmuRequest, model: &Model) -> Result<Reply, ApiError> {
    require_embedding_model(model)?;
    let body = parse_json(req)?;
    Ok(Reply::Json(json_bytes(
        &json!({"embedding": embed_values(&body)?}),
    )))
}

fn embed_batch(req: &EmuRequest, model: &Model) -> Result<Reply, ApiError> {
    require_embedding_model(model)?;
    let body = parse_json(req)?;
    let requests = body["requests"]
        .as_array()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "* BatchEmbedContentsRequest.requests: requests is not specified".into(),
            )
        })?;
    let embeddings = requests
        .iter()
        .map(embed_values)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::Json(json_bytes(&json!({"embeddings": embeddings}))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(decode_page_token(&encode_page_token(7)), Some(7));
        assert_eq!(decode_page_token("garbage!"), None);
    }

    #[test]
    fn fields_are_read_in_either_case() {
        let v =
            serde_json::json!({"thinking_config": {"thinking_budget": 0}, "maxOutputTokens": 5});
        assert_eq!(field(field(&v, "thinkingConfig"), "thinkingBudget"), 0);
        assert_eq!(field(&v, "maxOutputTokens"), 5);
        assert!(field(&v, "responseSchema").is_null());
    }

    #[test]
    fn versions_are_stripped() {
        assert_eq!(strip_version("/v1beta/models"), Some("models"));
        assert_eq!(
            strip_version("/v1/models/x:generateContent"),
            Some("models/x:generateContent")
        );
        assert_eq!(strip_version("/v2/models"), None);
    }
}
