//! OpenAI: `Authorization: Bearer` keys, Chat Completions / Responses / Embeddings usage, the
//! final usage chunk of chat streams (asked for upstream, hidden when the app did not ask), and
//! OpenAI's error shape. Gemini's OpenAI-compatible surface reuses the shape-level functions.

use std::borrow::Cow;

use bytes::Bytes;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::chat::{content_text, non_empty, stream_values};
use super::forward::{
    allowed_query, app_key, bearer_token, bearer_value, json_bytes, tokens_from_bytes,
    upstream_headers,
};
use super::meter::{
    Forward, Reported, StreamRules, StreamSeen, body_is_metered, estimate_without_usage, free_call,
    reported_body,
};
use super::sse::SseEvent;
use super::{
    Conversation, Endpoint, KeyFormat, Language, Metered, ModelListRequest, ModelPage, ParseError,
    PlaygroundRequest, Provider, ProviderApi, ProxyRequest, Refusal, RequestInfo, Role, Snippet,
    StreamMeter, Trouble, Upstream, Usage,
};

/// OpenAI's half of the proxy.
pub struct OpenAiApi;

impl ProviderApi for OpenAiApi {
    fn provider(&self) -> Provider {
        Provider::OpenAi
    }

    fn api_versions(&self) -> &'static [&'static str] {
        &["v1"]
    }

    fn endpoint(&self, method: &str, path: &str) -> Endpoint {
        endpoint_of(method, path.strip_prefix("/v1").unwrap_or(path))
    }

    fn app_key(&self, headers: &[(String, String)], _query: &str) -> Option<SecretString> {
        app_key(bearer_token(headers))
    }

    fn forwarded_request_headers(&self) -> &'static [&'static str] {
        &[
            "content-type",
            "accept",
            "user-agent",
            "openai-beta",
            "idempotency-key",
            "x-stainless-",
        ]
    }

    fn forwarded_query(&self) -> &'static [&'static str] {
        OPENAI_QUERY
    }

    fn returned_response_headers(&self) -> &'static [&'static str] {
        OPENAI_RESPONSE_HEADERS
    }

    fn inspect(&self, request: &ProxyRequest<'_>) -> RequestInfo {
        let mut info = inspect_body(self.endpoint(request.method, request.path), request.body);
        info.app_key = self.app_key(request.headers, request.query);
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
            query: allowed_query(request.query, self.forwarded_query()),
            headers: upstream_headers(
                request.headers,
                self.forwarded_request_headers(),
                "authorization",
                bearer_value(stored_key),
            ),
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

    fn error_body(&self, error: Refusal, message: &str) -> Bytes {
        json_bytes(&error_json(error, message))
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

    fn key_format(&self) -> KeyFormat {
        KeyFormat {
            prefixes: &["sk-proj-", "sk-svcacct-", "sk-admin-", "sk-"],
            foreign_prefixes: &["sk-ant-"],
            exact_len: None,
            demo_key: "sk-proj-WorkshopHubDemoKey000000000000000000T3BlbkFJ00000000000000000000",
            described: "sk-proj-… (or an older sk-… key)",
        }
    }

    fn playground_request(
        &self,
        model: &str,
        chat: &Conversation,
        max_tokens: u64,
        stream: bool,
    ) -> PlaygroundRequest {
        let mut messages: Vec<Value> = chat
            .system
            .iter()
            .map(|text| json!({"role": "system", "content": text}))
            .collect();
        messages.extend(chat.turns.iter().map(|t| {
            let role = match t.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": t.text})
        }));
        let mut body = json!({
            "model": model,
            "messages": messages,
            "max_completion_tokens": max_tokens,
        });
        if stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        PlaygroundRequest {
            path: "/v1/chat/completions".into(),
            query: None,
            headers: vec![("content-type".into(), "application/json".into())],
            body: json_bytes(&body),
        }
    }

    fn sdk_snippets(&self, base: &str, key: &str) -> Vec<Snippet> {
        vec![
            Snippet {
                language: Language::Python,
                label: "Python · openai",
                code: format!(
                    "from openai import OpenAI\n\nclient = OpenAI(base_url=\"{base}/openai/v1\", api_key=\"{key}\")\nreply = client.chat.completions.create(\n    model=\"gpt-4o-mini\",\n    messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n)\nprint(reply.choices[0].message.content)"
                ),
            },
            Snippet {
                language: Language::JavaScript,
                label: "JavaScript · openai",
                code: format!(
                    "import OpenAI from \"openai\";\n\nconst client = new OpenAI({{ baseURL: \"{base}/openai/v1\", apiKey: \"{key}\" }});\nconst reply = await client.chat.completions.create({{\n  model: \"gpt-4o-mini\",\n  messages: [{{ role: \"user\", content: \"Hello!\" }}],\n}});\nconsole.log(reply.choices[0].message.content);"
                ),
            },
            Snippet {
                language: Language::Shell,
                label: "curl",
                code: format!(
                    "curl {base}/openai/v1/chat/completions \\\n  -H \"Authorization: Bearer {key}\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"gpt-4o-mini\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'"
                ),
            },
        ]
    }

    fn reply_text(&self, body: &[u8]) -> Option<String> {
        let v: Value = serde_json::from_slice(body).ok()?;
        v["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_owned)
    }

    /// Chat Completions `messages`, or a Responses request's `instructions` and `input`.
    fn conversation(&self, request: &[u8]) -> Option<Conversation> {
        let v: Value = serde_json::from_slice(request).ok()?;
        let mut chat = Conversation::default();
        if let Some(instructions) = v["instructions"].as_str() {
            chat.add_system(instructions.to_string());
        }
        match (&v["messages"], &v["input"]) {
            (Value::Array(messages), _) | (_, Value::Array(messages)) => {
                for m in messages {
                    let text = content_text(&m["content"]);
                    match m["role"].as_str() {
                        Some("system" | "developer") => chat.add_system(text),
                        Some("assistant") => chat.push(Role::Assistant, text),
                        Some("user") => chat.push(Role::User, text),
                        _ => {}
                    }
                }
            }
            (_, Value::String(input)) => chat.push(Role::User, input.clone()),
            _ => return None,
        }
        chat.non_empty()
    }

    /// Chat chunks' `delta.content`, or Responses' `response.output_text.delta` events.
    fn assemble_stream(&self, events: &[u8]) -> Option<String> {
        let mut text = String::new();
        for (_, v) in stream_values(events) {
            if let Some(piece) = v["choices"][0]["delta"]["content"].as_str() {
                text.push_str(piece);
            } else if v["type"] == "response.output_text.delta" {
                text.push_str(v["delta"].as_str().unwrap_or_default());
            }
        }
        non_empty(text)
    }

    fn request_id_header(&self) -> Option<&'static str> {
        Some("x-request-id")
    }
}

/// Query parameters of the metered endpoints and of the lists BYOK connections reach.
pub(crate) const OPENAI_QUERY: &[&str] = &[
    "include[]",
    "include",
    "stream",
    "starting_after",
    "include_obfuscation",
    "limit",
    "after",
    "before",
    "order",
    "purpose",
];

/// Request ids, processing time and rate limits, as the SDKs read them.
pub(crate) const OPENAI_RESPONSE_HEADERS: &[&str] = &[
    "x-request-id",
    "openai-processing-ms",
    "openai-version",
    "x-ratelimit-",
    "x-should-retry",
];

/// The endpoint of a path below the version prefix (`/chat/completions`, `/models/x`): only
/// the methods each endpoint is metered for count.
pub(crate) fn endpoint_of(method: &str, tail: &str) -> Endpoint {
    let post = method.eq_ignore_ascii_case("POST");
    let get = method.eq_ignore_ascii_case("GET");
    let delete = method.eq_ignore_ascii_case("DELETE");
    match tail {
        "/chat/completions" if post => Endpoint::ChatCompletions,
        "/responses" if post => Endpoint::Responses,
        "/embeddings" if post => Endpoint::Embeddings,
        "/models" if get => Endpoint::ListModels,
        t if get && one_segment_below(t, "/models/") => Endpoint::ListModels,
        t if (get || delete) && one_segment_below(t, "/responses/") => Endpoint::StoredResponse,
        _ => Endpoint::Other,
    }
}

/// `tail` is `prefix` followed by exactly one non-empty segment.
fn one_segment_below(tail: &str, prefix: &str) -> bool {
    tail.strip_prefix(prefix)
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
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

/// One chunk as read for metering: the texts are borrowed from the event, not copied.
#[derive(Deserialize)]
struct ChatChunk<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    choices: Option<Vec<ChoiceChunk<'a>>>,
    usage: Option<OpenAiUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChoiceChunk<'a> {
    #[serde(borrow)]
    delta: Option<ChoiceDelta<'a>>,
}

#[derive(Deserialize)]
struct ChoiceDelta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

impl ChoiceDelta<'_> {
    fn texts(&self) -> impl Iterator<Item = &str> {
        let calls = self.tool_calls.iter().flatten();
        [&self.content, &self.refusal, &self.reasoning_content]
            .into_iter()
            .flatten()
            .map(|t| t.as_ref())
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
            self.usage = Some(usage.to_usage(chunk.model.map(Cow::into_owned)));
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
fn error_type(error: Refusal) -> &'static str {
    match error {
        Refusal::InvalidAppKey
        | Refusal::ConnectorRevoked
        | Refusal::ModelNotAvailable
        | Refusal::EndpointNotSupported
        | Refusal::RequestTooLarge
        | Refusal::BadRequest => "invalid_request_error",
        Refusal::InsufficientCredits | Refusal::AppBudgetExceeded => "insufficient_quota",
        Refusal::AppRateLimited => "requests",
        Refusal::HubLocked
        | Refusal::UpstreamConnectionFailed
        | Refusal::UpstreamTimeout
        | Refusal::Internal => "server_error",
    }
}

/// `{"error":{"message","type","param":null,"code":"<hub code>"}}`: what the SDK reads.
pub(crate) fn error_json(error: Refusal, message: &str) -> Value {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::providers::testing::{TestRequest, feed_in, meter_every_way};

    const CHAT_REQUEST: &str = r#"{
  "model": "gpt-4o-mini",
  "messages": [
    {"role": "developer", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"}
  ],
  "max_completion_tokens": 256,
  "temperature": 1,
  "stream": false
}"#;

    const CHAT_RESPONSE: &str = r#"{
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  "object": "chat.completion",
  "created": 1741570283,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [
    {
      "index": 0,
      "message": {"role": "assistant", "content": "Hello! How can I help?", "refusal": null, "annotations": []},
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
  },
  "service_tier": "default",
  "system_fingerprint": "fp_44709d6fcb"
}"#;

    /// provider-apis §2.4, with `include_usage`.
    const CHAT_STREAM: &str = concat!(
        r#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"r4N7vQ2m"}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"p9K3xT6w"}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null,"obfuscation":""}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"obfuscation":"…"}"#,
        "\n\n",
        "data: [DONE]\n\n",
    );

    fn chat_info(stream: bool) -> RequestInfo {
        let body = CHAT_REQUEST.replace("\"stream\": false", &format!("\"stream\": {stream}"));
        let req = TestRequest::post(
            "/v1/chat/completions",
            &[("authorization", "Bearer app")],
            &body,
        );
        req.inspect(&OpenAiApi)
    }

    fn sample_usage() -> Usage {
        Usage {
            model: Some("gpt-4o-mini-2024-07-18".into()),
            input_tokens: 19,
            output_tokens: 10,
            ..Usage::default()
        }
    }

    #[test]
    fn inspects_a_chat_request() {
        let req = TestRequest::post(
            "/v1/chat/completions",
            &[("authorization", "Bearer whk_abcd1234_secret")],
            CHAT_REQUEST,
        );
        let info = req.inspect(&OpenAiApi);
        assert_eq!(info.endpoint, Endpoint::ChatCompletions);
        assert_eq!(
            info.app_key
                .as_ref()
                .map(secrecy::ExposeSecret::expose_secret),
            Some("whk_abcd1234_secret")
        );
        assert_eq!(info.model.as_deref(), Some("gpt-4o-mini"));
        assert!(!info.stream);
        assert_eq!(info.max_output_tokens, Some(256));
        assert_eq!(
            info.input_tokens_estimate,
            (CHAT_REQUEST.len() as u64).div_ceil(4)
        );
    }

    #[test]
    fn recognises_each_endpoint_and_limit() {
        let responses = TestRequest::post(
            "/v1/responses",
            &[],
            r#"{"model":"gpt-4.1","input":"Hi","max_output_tokens":50,"stream":true}"#,
        )
        .inspect(&OpenAiApi);
        assert_eq!(responses.endpoint, Endpoint::Responses);
        assert_eq!(responses.max_output_tokens, Some(50));
        assert!(responses.stream);
        assert!(responses.app_key.is_none());
        let legacy = TestRequest::post(
            "/v1/chat/completions",
            &[],
            r#"{"model":"m","max_tokens":9}"#,
        )
        .inspect(&OpenAiApi);
        assert_eq!(legacy.max_output_tokens, Some(9));
        let embed = TestRequest::post(
            "/v1/embeddings",
            &[],
            r#"{"model":"text-embedding-3-small","input":"x"}"#,
        )
        .inspect(&OpenAiApi);
        assert_eq!(embed.endpoint, Endpoint::Embeddings);
        assert_eq!(
            TestRequest::get("/v1/models", &[])
                .inspect(&OpenAiApi)
                .endpoint,
            Endpoint::ListModels
        );
        assert_eq!(
            TestRequest::get("/v1/models/gpt-4o", &[])
                .inspect(&OpenAiApi)
                .endpoint,
            Endpoint::ListModels
        );
        assert_eq!(
            TestRequest::post("/v1/files", &[], "")
                .inspect(&OpenAiApi)
                .endpoint,
            Endpoint::Other
        );
        let broken =
            TestRequest::post("/v1/chat/completions", &[], "{not json").inspect(&OpenAiApi);
        assert_eq!(broken.model, None);
    }

    #[test]
    fn prepare_forces_stream_usage_and_keeps_key_order() {
        let info = chat_info(true);
        let body = CHAT_REQUEST.replace("\"stream\": false", "\"stream\": true");
        let req = TestRequest::post(
            "/v1/chat/completions",
            &[("authorization", "Bearer app")],
            &body,
        );
        let up = OpenAiApi.prepare(&req.proxy(), &info, &SecretString::from("sk-stored"));
        assert!(up.hide_stream_usage);
        let sent: Value = serde_json::from_slice(&up.body).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], Value::Bool(true));
        let keys: Vec<&str> = sent
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "model",
                "messages",
                "max_completion_tokens",
                "temperature",
                "stream",
                "stream_options"
            ]
        );
        assert_eq!(sent["messages"][1]["content"], "Hello!");
    }

    #[test]
    fn prepare_keeps_the_body_when_usage_was_asked_or_not_streaming() {
        let asked = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
        let req = TestRequest::post("/v1/chat/completions", &[], asked);
        let info = req.inspect(&OpenAiApi);
        let up = OpenAiApi.prepare(&req.proxy(), &info, &SecretString::from("k"));
        assert!(!up.hide_stream_usage);
        assert_eq!(up.body, req.body);
        // An explicit `false` is overridden upstream and hidden from the app.
        let declined = r#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"include_obfuscation":false}}"#;
        let req = TestRequest::post("/v1/chat/completions", &[], declined);
        let up = OpenAiApi.prepare(
            &req.proxy(),
            &req.inspect(&OpenAiApi),
            &SecretString::from("k"),
        );
        assert!(up.hide_stream_usage);
        assert_eq!(
            std::str::from_utf8(&up.body).unwrap(),
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}"#
        );
        let req = TestRequest::post("/v1/chat/completions", &[], CHAT_REQUEST);
        let up = OpenAiApi.prepare(
            &req.proxy(),
            &req.inspect(&OpenAiApi),
            &SecretString::from("k"),
        );
        assert!(!up.hide_stream_usage);
        assert_eq!(up.body, req.body);
    }

    #[test]
    fn prepare_replaces_credentials() {
        let req = TestRequest::post(
            "/v1/chat/completions",
            &[
                ("authorization", "Bearer whk_app"),
                ("openai-organization", "org-app"),
                ("openai-project", "proj_app"),
                ("content-type", "application/json"),
                ("x-stainless-retry-count", "0"),
            ],
            CHAT_REQUEST,
        )
        .with_query("api-version=1");
        let up = OpenAiApi.prepare(
            &req.proxy(),
            &req.inspect(&OpenAiApi),
            &SecretString::from("sk-stored"),
        );
        assert_eq!(
            up.headers,
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("x-stainless-retry-count".into(), "0".into()),
                ("authorization".into(), "Bearer sk-stored".into()),
            ]
        );
        assert_eq!(
            up.query, "",
            "a parameter OpenAI does not take is not forwarded"
        );
        assert!(!format!("{up:?}").contains("sk-stored"));
    }

    #[test]
    fn meters_chat_responses_and_embeddings_bodies() {
        let got = OpenAiApi
            .meter_body(&chat_info(false), CHAT_RESPONSE.as_bytes())
            .unwrap();
        assert_eq!(got.usage, sample_usage());
        assert!(got.complete && !got.estimated);

        let responses = r#"{"id":"resp_67cc","object":"response","created_at":1741476542,"status":"completed","model":"gpt-4.1-2025-04-14","output":[],
          "usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123}}"#;
        let info =
            TestRequest::post("/v1/responses", &[], r#"{"model":"gpt-4.1"}"#).inspect(&OpenAiApi);
        let got = OpenAiApi.meter_body(&info, responses.as_bytes()).unwrap();
        assert_eq!((got.usage.input_tokens, got.usage.output_tokens), (36, 87));
        assert_eq!(got.usage.model.as_deref(), Some("gpt-4.1-2025-04-14"));

        let embeddings = r#"{"object": "list",
 "data": [{"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292, -0.0028842222]}],
 "model": "text-embedding-3-small",
 "usage": {"prompt_tokens": 8, "total_tokens": 8}}"#;
        let info = TestRequest::post(
            "/v1/embeddings",
            &[],
            r#"{"model":"text-embedding-3-small"}"#,
        )
        .inspect(&OpenAiApi);
        let got = OpenAiApi.meter_body(&info, embeddings.as_bytes()).unwrap();
        assert_eq!((got.usage.input_tokens, got.usage.output_tokens), (8, 0));

        let models = TestRequest::get("/v1/models", &[]).inspect(&OpenAiApi);
        assert_eq!(OpenAiApi.meter_body(&models, b"{}"), None);
    }

    #[test]
    fn cached_and_reasoning_details_are_read() {
        let body = r#"{"model":"o3-2025-04-16","usage":{"prompt_tokens":1000,"completion_tokens":300,
          "prompt_tokens_details":{"cached_tokens":400,"cache_write_tokens":null},
          "completion_tokens_details":{"reasoning_tokens":200}}}"#;
        let got = OpenAiApi
            .meter_body(&chat_info(false), body.as_bytes())
            .unwrap();
        assert_eq!(
            got.usage,
            Usage {
                model: Some("o3-2025-04-16".into()),
                input_tokens: 1000,
                cached_input_tokens: 400,
                output_tokens: 300,
                reasoning_tokens: 200,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn a_body_without_usage_is_estimated() {
        let info = chat_info(false);
        let body = br#"{"model":"gpt-4o-mini","choices":[]}"#;
        let got = OpenAiApi.meter_body(&info, body).unwrap();
        assert!(got.estimated);
        assert_eq!(got.usage.input_tokens, info.input_tokens_estimate);
        assert_eq!(got.usage.output_tokens, (body.len() as u64).div_ceil(4));
    }

    #[test]
    fn stream_with_usage_asked_passes_through_unchanged() {
        let info = chat_info(true);
        let (forwarded, metered) = meter_every_way(
            || OpenAiApi.stream_meter(&info, false),
            CHAT_STREAM.as_bytes(),
        );
        assert_eq!(forwarded, CHAT_STREAM.as_bytes());
        assert_eq!(metered.usage, sample_usage());
        assert!(metered.complete && !metered.estimated && !metered.upstream_error);
    }

    #[test]
    fn pass_through_feed_returns_the_same_buffer() {
        let info = chat_info(true);
        let mut meter = OpenAiApi.stream_meter(&info, false);
        let chunk = Bytes::from_static(CHAT_STREAM.as_bytes());
        let out = meter.feed(chunk.clone());
        assert_eq!(out.as_ptr(), chunk.as_ptr());
    }

    #[test]
    fn hidden_usage_is_removed_from_what_the_app_sees() {
        let info = chat_info(true);
        let (forwarded, metered) = meter_every_way(
            || OpenAiApi.stream_meter(&info, true),
            CHAT_STREAM.as_bytes(),
        );
        // Exactly the stream the app would have had without include_usage.
        let expected: String = CHAT_STREAM
            .split("\n\n")
            .filter(|e| !e.contains(r#""choices":[]"#))
            .map(|e| e.replace(r#","usage":null"#, ""))
            .filter(|e| !e.is_empty())
            .map(|e| e + "\n\n")
            .collect();
        let text = String::from_utf8(forwarded).unwrap();
        assert_eq!(text, expected);
        assert!(!text.contains("\"usage\""));
        assert!(!text.contains("\"choices\":[]"));
        assert_eq!(text.matches("chat.completion.chunk").count(), 3);
        assert!(text.ends_with("data: [DONE]\n\n"));
        for event in text.split("\n\n").filter(|e| e.starts_with("data: {")) {
            serde_json::from_str::<Value>(&event["data: ".len()..]).unwrap();
        }
        assert_eq!(metered.usage, sample_usage());
        assert!(metered.complete && !metered.estimated);
    }

    #[test]
    fn hidden_usage_handles_spaces_crlf_and_usage_first() {
        let stream = "data:{\"usage\" : null , \"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n\
                      data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 5, \"completion_tokens\": 1}}\r\n\r\n\
                      data: [DONE]\r\n\r\n";
        let info = chat_info(true);
        let (forwarded, metered) =
            meter_every_way(|| OpenAiApi.stream_meter(&info, true), stream.as_bytes());
        assert_eq!(
            String::from_utf8(forwarded).unwrap(),
            "data:{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\ndata: [DONE]\r\n\r\n"
        );
        assert_eq!(
            (metered.usage.input_tokens, metered.usage.output_tokens),
            (5, 1)
        );
    }

    #[test]
    fn a_cut_stream_is_estimated() {
        let info = chat_info(true);
        let cut: String = CHAT_STREAM.split_inclusive("\n\n").take(2).collect();
        let (_, metered) = meter_every_way(|| OpenAiApi.stream_meter(&info, true), cut.as_bytes());
        assert!(metered.estimated && !metered.complete);
        assert_eq!(metered.usage.input_tokens, info.input_tokens_estimate);
        assert_eq!(metered.usage.output_tokens, 2); // "Hello": 5 bytes / 4, rounded up
        assert_eq!(
            metered.usage.model.as_deref(),
            Some("gpt-4o-mini-2024-07-18")
        );
        // Cut in the middle of an event: the held-back part is sent at the end, unchanged.
        let torn = &CHAT_STREAM[..CHAT_STREAM.find("Hello").unwrap()];
        let (forwarded, _) = feed_in(OpenAiApi.stream_meter(&info, false), torn.as_bytes(), &[5]);
        assert_eq!(forwarded, torn.as_bytes());
    }

    #[test]
    fn tool_call_arguments_count_toward_the_estimate() {
        let stream = r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Paris\"}"}}]}}]}

"#;
        let (_, metered) = feed_in(
            OpenAiApi.stream_meter(&chat_info(true), false),
            stream.as_bytes(),
            &[9],
        );
        assert_eq!(metered.usage.output_tokens, 4); // 16 bytes of arguments
    }

    #[test]
    fn a_mid_stream_error_is_noted() {
        let stream = concat!(
            r#"data: {"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#,
            "\n\n"
        );
        let (forwarded, metered) = feed_in(
            OpenAiApi.stream_meter(&chat_info(true), true),
            stream.as_bytes(),
            &[64],
        );
        assert_eq!(forwarded, stream.as_bytes());
        assert!(metered.upstream_error && metered.estimated && !metered.complete);
    }

    #[test]
    fn responses_stream_usage_comes_from_response_completed() {
        let stream = concat!(
            "event: response.created\n",
            r#"data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-4.1-2025-04-14","usage":null}}"#,
            "\n\n",
            "event: response.output_text.delta\n",
            r#"data: {"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","logprobs":[],"sequence_number":4}"#,
            "\n\n",
            "event: response.completed\n",
            r#"data: {"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","object":"response","status":"completed","model":"gpt-4.1-2025-04-14","usage":{"input_tokens":37,"input_tokens_details":{"cached_tokens":0},"output_tokens":11,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":48}}}"#,
            "\n\n",
        );
        let info = TestRequest::post("/v1/responses", &[], r#"{"model":"gpt-4.1","stream":true}"#)
            .inspect(&OpenAiApi);
        let (forwarded, metered) =
            meter_every_way(|| OpenAiApi.stream_meter(&info, false), stream.as_bytes());
        assert_eq!(forwarded, stream.as_bytes());
        assert_eq!(
            (metered.usage.input_tokens, metered.usage.output_tokens),
            (37, 11)
        );
        assert_eq!(metered.usage.model.as_deref(), Some("gpt-4.1-2025-04-14"));
        assert!(metered.complete && !metered.estimated);
        // Cut before the end: the delta's text is all there is.
        let cut = &stream[..stream.find("event: response.completed").unwrap()];
        let (_, metered) = meter_every_way(|| OpenAiApi.stream_meter(&info, false), cut.as_bytes());
        assert!(metered.estimated);
        assert_eq!(metered.usage.output_tokens, 1);
        assert_eq!(metered.usage.input_tokens, info.input_tokens_estimate);
    }

    #[test]
    fn classifies_openai_errors() {
        let wrong_key = br#"{"error":{"message":"Incorrect API key provided: sk-PMafP***************************************E873. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let missing_key = br#"{"error":{"message":"You didn't provide an API key.","type":"invalid_request_error","param":null,"code":null}}"#;
        let quota = br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let old_quota = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":null}}"#;
        let rate = br#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-XXXX on tokens per min (TPM): Limit 30000, Used 29937, Requested 385. Please try again in 644ms.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
        let model = br#"{"error":{"message":"The model `gpt-5-foo` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        let server = br#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#;
        assert_eq!(
            OpenAiApi.classify(401, wrong_key),
            Some(Trouble::InvalidApiKey)
        );
        assert_eq!(
            OpenAiApi.classify(401, missing_key),
            Some(Trouble::InvalidApiKey)
        );
        assert_eq!(
            OpenAiApi.classify(429, quota),
            Some(Trouble::InsufficientQuota)
        );
        assert_eq!(
            OpenAiApi.classify(429, old_quota),
            Some(Trouble::InsufficientQuota)
        );
        assert_eq!(
            OpenAiApi.classify(429, rate),
            Some(Trouble::RateLimitExceeded)
        );
        assert_eq!(
            OpenAiApi.classify(429, b"not json"),
            Some(Trouble::RateLimitExceeded)
        );
        assert_eq!(OpenAiApi.classify(404, model), Some(Trouble::ModelNotFound));
        assert_eq!(OpenAiApi.classify(500, server), None);
        assert_eq!(OpenAiApi.classify(400, b"{}"), None);
    }

    #[test]
    fn hub_errors_take_openais_shape() {
        let body = OpenAiApi.error_body(
            Refusal::InsufficientCredits,
            "Insufficient Credits: add credits.",
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "Insufficient Credits: add credits.", "type": "insufficient_quota", "param": null, "code": "insufficient_credits"}})
        );
        let event = OpenAiApi.stream_error_event(Refusal::UpstreamTimeout, "timed out");
        let text = std::str::from_utf8(&event).unwrap();
        assert!(
            text.starts_with("data: {\"error\":{") && text.ends_with("}\n\n"),
            "{text}"
        );
    }

    #[test]
    fn lists_models() {
        let req = OpenAiApi.model_list_request(&SecretString::from("sk-x"), None);
        assert_eq!(req.path_and_query, "/v1/models");
        assert_eq!(
            req.headers,
            vec![("authorization".to_string(), "Bearer sk-x".to_string())]
        );
        let body = br#"{"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
            {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"}]}"#;
        let page = OpenAiApi.parse_model_list(body).unwrap();
        assert_eq!(
            page,
            ModelPage {
                ids: vec!["gpt-4o-mini".into(), "gpt-4o".into()],
                next: None
            }
        );
        assert!(OpenAiApi.parse_model_list(b"{\"error\":{}}").is_err());
    }
}
