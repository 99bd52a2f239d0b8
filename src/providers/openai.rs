//! OpenAI: `Authorization: Bearer` keys, Chat Completions / Responses / Embeddings usage, the
//! final usage chunk of chat streams (asked for upstream, hidden when the app did not ask), and
//! OpenAI's error shape. Gemini's OpenAI-compatible surface reuses the shape-level functions.

use bytes::Bytes;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::forward::{
    app_key, bearer_token, bearer_value, json_bytes, sse_event, tokens_from_bytes, upstream_headers,
};
use super::meter::{
    Forward, Reported, StreamRules, StreamSeen, body_is_metered, estimate_without_usage, free_call,
    reported_body,
};
use super::sse::SseEvent;
use super::{
    Endpoint, HubError, Metered, ModelListRequest, ModelPage, ParseError, Provider, ProviderApi,
    ProxyRequest, RequestInfo, StreamMeter, Trouble, Upstream, Usage,
};

/// OpenAI's half of the proxy.
pub struct OpenAiApi;

impl ProviderApi for OpenAiApi {
    fn provider(&self) -> Provider {
        Provider::OpenAi
    }

    fn inspect(&self, request: &ProxyRequest<'_>) -> RequestInfo {
        let tail = request.path.strip_prefix("/v1").unwrap_or(request.path);
        let mut info = inspect_body(endpoint_of(request.method, tail), request.body);
        info.app_key = app_key(bearer_token(request.headers));
        info
    }

    fn prepare(
        &self,
        request: &ProxyRequest<'_>,
        info: &RequestInfo,
        stored_key: &SecretString,
    ) -> Upstream {
        let (body, hide_stream_usage) = prepare_body(info, request.body);
        Upstream {
            query: request.query.to_owned(),
            headers: upstream_headers(request.headers, "authorization", bearer_value(stored_key)),
            body,
            hide_stream_usage,
        }
    }

    fn meter_body(&self, info: &RequestInfo, body: &[u8]) -> Option<Metered> {
        meter_body(info, body, |m| m.to_owned())
    }

    fn stream_meter(&self, info: &RequestInfo, hide_usage: bool) -> StreamMeter {
        stream_meter(info, hide_usage)
    }

    fn classify(&self, status: u16, body: &[u8]) -> Option<Trouble> {
        classify(status, body)
    }

    fn error_body(&self, error: HubError, message: &str) -> Bytes {
        json_bytes(&error_json(error, message))
    }

    fn stream_error_event(&self, error: HubError, message: &str) -> Bytes {
        sse_event(None, &self.error_body(error, message))
    }

    fn model_list_request(&self, key: &SecretString, _cursor: Option<&str>) -> ModelListRequest {
        // OpenAI's list is not paged.
        ModelListRequest {
            path_and_query: "/v1/models".into(),
            headers: vec![("authorization".into(), bearer_value(key))],
        }
    }

    fn parse_model_list(&self, body: &[u8]) -> Result<ModelPage, ParseError> {
        parse_model_list(body)
    }
}

/// The endpoint of a path below the version prefix (`/chat/completions`, `/models/x`).
pub(crate) fn endpoint_of(method: &str, tail: &str) -> Endpoint {
    match tail.trim_end_matches('/') {
        "/chat/completions" => Endpoint::ChatCompletions,
        "/responses" => Endpoint::Responses,
        "/embeddings" => Endpoint::Embeddings,
        t if method.eq_ignore_ascii_case("GET")
            && (t == "/models" || t.starts_with("/models/")) =>
        {
            Endpoint::ListModels
        }
        _ => Endpoint::Other,
    }
}

/// The fields of an OpenAI-shaped request the proxy reads.
#[derive(Deserialize, Default)]
struct RequestBody {
    model: Option<String>,
    stream: Option<bool>,
    max_completion_tokens: Option<u64>,
    max_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
}

/// Reads model, streaming and limits from an OpenAI-shaped body (no app key yet).
pub(crate) fn inspect_body(endpoint: Endpoint, body: &[u8]) -> RequestInfo {
    let fields: RequestBody = serde_json::from_slice(body).unwrap_or_default();
    RequestInfo {
        endpoint,
        app_key: None,
        model: fields.model,
        stream: fields.stream == Some(true),
        max_output_tokens: fields
            .max_completion_tokens
            .or(fields.max_output_tokens)
            .or(fields.max_tokens),
        input_tokens_estimate: tokens_from_bytes(body.len() as u64),
    }
}

/// The body to send upstream, and whether the Hub added stream usage the app did not ask for.
pub(crate) fn prepare_body(info: &RequestInfo, body: &Bytes) -> (Bytes, bool) {
    if info.endpoint == Endpoint::ChatCompletions && info.stream {
        force_stream_usage(body)
    } else {
        (body.clone(), false)
    }
}

/// Sets `stream_options.include_usage = true`, keeping the body's key order. An app that asked
/// already gets its body unchanged; a body that is not a JSON object is left for upstream to
/// reject.
fn force_stream_usage(body: &Bytes) -> (Bytes, bool) {
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
        return (body.clone(), false);
    };
    let asked = fields
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    if asked {
        return (body.clone(), false);
    }
    let options = fields.entry("stream_options").or_insert_with(|| json!({}));
    if !options.is_object() {
        *options = json!({});
    }
    if let Some(options) = options.as_object_mut() {
        options.insert("include_usage".into(), Value::Bool(true));
    }
    (json_bytes(&Value::Object(fields)), true)
}

/// Usage in OpenAI's shape. Chat names (`prompt_tokens`) and Responses names (`input_tokens`)
/// mean the same: input includes cached tokens, output includes reasoning tokens.
#[derive(Deserialize, Default, Debug)]
pub(crate) struct OpenAiUsage {
    #[serde(alias = "input_tokens")]
    prompt_tokens: Option<u64>,
    #[serde(alias = "output_tokens")]
    completion_tokens: Option<u64>,
    #[serde(alias = "input_tokens_details")]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(alias = "output_tokens_details")]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize, Default, Debug)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize, Default, Debug)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

impl OpenAiUsage {
    fn to_usage(&self, model: Option<String>) -> Usage {
        let detail = |d: Option<u64>| d.unwrap_or(0);
        Usage {
            model,
            input_tokens: detail(self.prompt_tokens),
            cached_input_tokens: detail(
                self.prompt_tokens_details
                    .as_ref()
                    .and_then(|d| d.cached_tokens),
            ),
            output_tokens: detail(self.completion_tokens),
            reasoning_tokens: detail(
                self.completion_tokens_details
                    .as_ref()
                    .and_then(|d| d.reasoning_tokens),
            ),
            ..Usage::default()
        }
    }
}

#[derive(Deserialize)]
struct UsageBody {
    model: Option<String>,
    usage: Option<OpenAiUsage>,
}

/// Usage of a non-streamed Chat Completions, Responses or Embeddings body. `served` turns the
/// response's model into the id to price by.
pub(crate) fn meter_body(
    info: &RequestInfo,
    body: &[u8],
    served: impl Fn(&str) -> String,
) -> Option<Metered> {
    if !body_is_metered(info.endpoint) {
        return None;
    }
    let parsed: Option<UsageBody> = serde_json::from_slice(body).ok();
    let model = parsed
        .as_ref()
        .and_then(|b| b.model.as_deref())
        .map(&served);
    match parsed.and_then(|b| b.usage) {
        Some(usage) => Some(reported_body(usage.to_usage(model))),
        None if info.endpoint.is_billable() => Some(estimate_without_usage(info, body, model)),
        None => Some(free_call()),
    }
}

/// A meter for an OpenAI-shaped stream.
pub(crate) fn stream_meter(info: &RequestInfo, hide_usage: bool) -> StreamMeter {
    match info.endpoint {
        Endpoint::Responses => StreamMeter::sse(Box::new(ResponsesStream::default()), info, false),
        _ => StreamMeter::sse(
            Box::new(ChatStream {
                hide_usage,
                usage: None,
            }),
            info,
            hide_usage,
        ),
    }
}

/// Chat Completions streams: usage only in the final `choices: []` chunk.
struct ChatStream {
    hide_usage: bool,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChatChunk {
    model: Option<String>,
    choices: Option<Vec<ChoiceChunk>>,
    usage: Option<OpenAiUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChoiceChunk {
    delta: Option<ChoiceDelta>,
}

#[derive(Deserialize)]
struct ChoiceDelta {
    content: Option<String>,
    refusal: Option<String>,
    reasoning_content: Option<String>,
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    arguments: Option<String>,
}

impl ChoiceDelta {
    fn texts(&self) -> impl Iterator<Item = &str> {
        let calls = self.tool_calls.iter().flatten();
        [&self.content, &self.refusal, &self.reasoning_content]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .chain(calls.filter_map(|c| c.function.as_ref()?.arguments.as_deref()))
    }
}

impl StreamRules for ChatStream {
    fn observe(&mut self, raw: &[u8], event: &SseEvent<'_>, seen: &mut StreamSeen) -> Forward {
        if event.data.trim_ascii_start().starts_with(b"[DONE]") {
            seen.ended = true;
            return Forward::Keep;
        }
        let Ok(chunk) = serde_json::from_slice::<ChatChunk>(&event.data) else {
            return Forward::Keep;
        };
        if chunk.error.as_ref().is_some_and(is_truthy) {
            seen.error = true;
            return Forward::Keep;
        }
        seen.note_model(chunk.model.as_deref());
        let choices = chunk.choices.unwrap_or_default();
        for delta in choices.iter().filter_map(|c| c.delta.as_ref()) {
            delta.texts().for_each(|t| seen.add_text(t));
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.to_usage(chunk.model));
            seen.output_reported();
            if self.hide_usage && choices.is_empty() {
                return Forward::Drop;
            }
        }
        if self.hide_usage {
            if let Some(stripped) = remove_null_usage(raw) {
                return Forward::Replace(stripped);
            }
        }
        Forward::Keep
    }

    fn reported(&self) -> Reported {
        match &self.usage {
            Some(usage) => Reported {
                usage: usage.clone(),
                input: true,
                final_output: true,
            },
            None => Reported::default(),
        }
    }
}

/// The SDK raises on a data object whose `error` is truthy.
fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Number(_) => true,
    }
}

/// Removes a `"usage": null` member (and its comma) from an event's JSON, leaving every other
/// byte as it was. A quote inside a JSON string is escaped, so `"usage"` cannot match text.
fn remove_null_usage(raw: &[u8]) -> Option<Vec<u8>> {
    let key = find(raw, b"\"usage\"")?;
    let mut end = skip_ws(raw, key + 7);
    end = skip_ws(raw, expect(raw, end, b":")?);
    end = expect(raw, end, b"null")?;
    let before = raw[..key].iter().rposition(|b| !b.is_ascii_whitespace())?;
    let (cut_start, cut_end) = if raw[before] == b',' {
        (before, end)
    } else {
        let after = skip_ws(raw, end);
        (key, skip_ws(raw, expect(raw, after, b",")?))
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..cut_start]);
    out.extend_from_slice(&raw[cut_end..]);
    Some(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn skip_ws(raw: &[u8], mut at: usize) -> usize {
    while raw.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

fn expect(raw: &[u8], at: usize, token: &[u8]) -> Option<usize> {
    raw.get(at..)?
        .starts_with(token)
        .then_some(at + token.len())
}

/// Responses API streams: usage only in the final `response.completed` (or `.incomplete`,
/// `.failed`), at `response.usage`.
#[derive(Default)]
struct ResponsesStream {
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ResponsesEvent {
    #[serde(rename = "type")]
    kind: String,
    delta: Option<Value>,
    response: Option<ResponseSnapshot>,
}

#[derive(Deserialize)]
struct ResponseSnapshot {
    model: Option<String>,
    usage: Option<OpenAiUsage>,
}

/// Events that carry nothing the meter needs (their text was counted from the deltas).
fn responses_event_is_uninteresting(name: &str) -> bool {
    !(name.ends_with(".delta")
        || name == "error"
        || matches!(
            name,
            "response.created"
                | "response.in_progress"
                | "response.completed"
                | "response.incomplete"
                | "response.failed"
        ))
}

impl StreamRules for ResponsesStream {
    fn observe(&mut self, _raw: &[u8], event: &SseEvent<'_>, seen: &mut StreamSeen) -> Forward {
        if event.name.is_some_and(responses_event_is_uninteresting) {
            return Forward::Keep;
        }
        let Ok(parsed) = serde_json::from_slice::<ResponsesEvent>(&event.data) else {
            return Forward::Keep;
        };
        if let Some(Value::String(text)) = &parsed.delta {
            seen.add_text(text);
        }
        if let Some(response) = parsed.response {
            seen.note_model(response.model.as_deref());
            if let Some(usage) = response.usage {
                self.usage = Some(usage.to_usage(response.model));
                seen.output_reported();
            }
        }
        match parsed.kind.as_str() {
            "response.completed" | "response.incomplete" => seen.ended = true,
            "response.failed" | "error" => {
                seen.ended = true;
                seen.error = true;
            }
            _ => {}
        }
        Forward::Keep
    }

    fn reported(&self) -> Reported {
        match &self.usage {
            Some(usage) => Reported {
                usage: usage.clone(),
                input: true,
                final_output: true,
            },
            None => Reported::default(),
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorFields,
}

#[derive(Deserialize)]
struct ErrorFields {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

/// OpenAI's errors by `code` first (`invalid_api_key`, `insufficient_quota`,
/// `model_not_found`), then by status: 401 is a bad key, any other 429 a rate limit.
pub(crate) fn classify(status: u16, body: &[u8]) -> Option<Trouble> {
    let fields = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let says = |word: &str| {
        fields
            .as_ref()
            .is_some_and(|f| f.code.as_deref() == Some(word) || f.kind.as_deref() == Some(word))
    };
    if says("invalid_api_key") || status == 401 {
        Some(Trouble::InvalidApiKey)
    } else if says("insufficient_quota") {
        Some(Trouble::InsufficientQuota)
    } else if says("model_not_found") {
        Some(Trouble::ModelNotFound)
    } else if status == 429 {
        Some(Trouble::RateLimitExceeded)
    } else if status == 404 && mentions_model(fields.as_ref()) {
        Some(Trouble::ModelNotFound)
    } else {
        None
    }
}

fn mentions_model(fields: Option<&ErrorFields>) -> bool {
    fields
        .and_then(|f| f.message.as_deref())
        .is_some_and(|m| m.to_ascii_lowercase().contains("model"))
}

/// The `type` OpenAI uses for errors like each of the Hub's.
fn error_type(error: HubError) -> &'static str {
    match error {
        HubError::InvalidAppKey
        | HubError::ConnectorRevoked
        | HubError::ModelNotAvailable
        | HubError::RequestTooLarge
        | HubError::BadRequest => "invalid_request_error",
        HubError::InsufficientCredits | HubError::AppBudgetExceeded => "insufficient_quota",
        HubError::AppRateLimited => "requests",
        HubError::HubLocked | HubError::UpstreamConnectionFailed | HubError::UpstreamTimeout => {
            "server_error"
        }
    }
}

/// `{"error":{"message","type","param":null,"code":"<hub code>"}}`: what the SDK reads.
pub(crate) fn error_json(error: HubError, message: &str) -> Value {
    json!({"error": {
        "message": message,
        "type": error_type(error),
        "param": null,
        "code": error.as_str(),
    }})
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

pub(crate) fn parse_model_list(body: &[u8]) -> Result<ModelPage, ParseError> {
    let list: ModelList = serde_json::from_slice(body)?;
    Ok(ModelPage {
        ids: list
            .data
            .into_iter()
            .map(|m| super::forward::strip_models_prefix(&m.id).to_owned())
            .collect(),
        next: None,
    })
}
