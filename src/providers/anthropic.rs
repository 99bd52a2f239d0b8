//! Anthropic: `x-api-key` or `Authorization: Bearer` keys, Messages usage with its separate cache
//! counts, `message_start` + cumulative `message_delta` stream usage, and Anthropic's error shape.

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::chat::{content_text, non_empty, stream_values};
use super::forward::{
    allowed_query, app_key, bearer_token, header, json_bytes, sse_event, tokens_from_bytes,
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

/// The API version the Hub itself uses for model lists.
const API_VERSION: &str = "2023-06-01";

/// Anthropic's half of the proxy.
pub struct AnthropicApi;

impl ProviderApi for AnthropicApi {
    fn provider(&self) -> Provider {
        Provider::Anthropic
    }

    fn api_versions(&self) -> &'static [&'static str] {
        &["v1"]
    }

    fn endpoint(&self, method: &str, path: &str) -> Endpoint {
        endpoint_of(method, path)
    }

    fn app_key(&self, headers: &[(String, String)], _query: &str) -> Option<SecretString> {
        app_key(header(headers, "x-api-key").or_else(|| bearer_token(headers)))
    }

    fn forwarded_request_headers(&self) -> &'static [&'static str] {
        &[
            "content-type",
            "accept",
            "user-agent",
            "anthropic-version",
            "anthropic-beta",
            "idempotency-key",
            "x-stainless-",
        ]
    }

    fn forwarded_query(&self) -> &'static [&'static str] {
        // `beta=true` marks the SDK's beta endpoints; the rest page the model list.
        &["beta", "limit", "after_id", "before_id"]
    }

    fn returned_response_headers(&self) -> &'static [&'static str] {
        &["request-id", "anthropic-ratelimit-", "x-should-retry"]
    }

    fn inspect(&self, request: &ProxyRequest<'_>) -> RequestInfo {
        let fields: RequestBody = serde_json::from_slice(request.body).unwrap_or_default();
        RequestInfo {
            endpoint: self.endpoint(request.method, request.path),
            app_key: self.app_key(request.headers, request.query),
            model: fields.model,
            stream: fields.stream == Some(true),
            max_output_tokens: fields.max_tokens,
            input_tokens_estimate: tokens_from_bytes(request.body.len() as u64),
        }
    }

    fn prepare(
        &self,
        request: &ProxyRequest<'_>,
        _info: &RequestInfo,
        stored_key: &SecretString,
    ) -> Upstream {
        Upstream {
            query: allowed_query(request.query, self.forwarded_query()),
            headers: upstream_headers(
                request.headers,
                self.forwarded_request_headers(),
                "x-api-key",
                stored_key.expose_secret().to_owned(),
            ),
            body: request.body.clone(),
            hide_stream_usage: false,
        }
    }

    fn meter_body(&self, info: &RequestInfo, body: &[u8]) -> Option<Metered> {
        if !body_is_metered(info.endpoint) {
            return None;
        }
        if info.endpoint == Endpoint::CountTokens {
            return Some(free_call()); // documented as free
        }
        let parsed: Option<MessageBody> = serde_json::from_slice(body).ok();
        let model = parsed.as_ref().and_then(|m| m.model.clone());
        Some(match parsed.and_then(|m| m.usage) {
            Some(usage) => reported_body(usage.to_usage(model)),
            None => estimate_without_usage(info, body, model),
        })
    }

    fn stream_meter(&self, info: &RequestInfo, _hide_usage: bool) -> StreamMeter {
        StreamMeter::sse(Box::new(MessageStream::default()), info, false)
    }

    fn classify(&self, status: u16, body: &[u8]) -> Option<Trouble> {
        classify(status, body)
    }

    fn error_body(&self, error: Refusal, message: &str) -> Bytes {
        json_bytes(&json!({
            "type": "error",
            "error": error_fields(error, message),
            // The Hub's own refusals never reached Anthropic, so there is no request id.
            "request_id": null,
        }))
    }

    fn stream_error_event(&self, error: Refusal, message: &str) -> Bytes {
        let data = json!({"type": "error", "error": error_fields(error, message)});
        sse_event(Some("error"), &json_bytes(&data))
    }

    fn model_list_request(&self, key: &SecretString, cursor: Option<&str>) -> ModelListRequest {
        let mut path_and_query = "/v1/models?limit=1000".to_owned();
        if let Some(after) = cursor {
            path_and_query.push_str("&after_id=");
            path_and_query.extend(url::form_urlencoded::byte_serialize(after.as_bytes()));
        }
        ModelListRequest {
            path_and_query,
            headers: vec![
                ("x-api-key".into(), key.expose_secret().to_owned()),
                ("anthropic-version".into(), API_VERSION.into()),
            ],
        }
    }

    fn parse_model_list(&self, body: &[u8]) -> Result<ModelPage, ParseError> {
        let page: ModelList = serde_json::from_slice(body)?;
        let next = match (page.has_more, page.last_id) {
            (true, Some(last)) if !page.data.is_empty() => Some(last),
            _ => None,
        };
        Ok(ModelPage {
            ids: page.data.into_iter().map(|m| m.id).collect(),
            next,
        })
    }

    fn key_format(&self) -> KeyFormat {
        KeyFormat {
            prefixes: &["sk-ant-api03-", "sk-ant-"],
            foreign_prefixes: &[],
            exact_len: None,
            demo_key: "sk-ant-api03-WorkshopHubDemoKey000000000000000000000000000AA",
            described: "sk-ant-…",
        }
    }

    fn playground_request(
        &self,
        model: &str,
        chat: &Conversation,
        max_tokens: u64,
        stream: bool,
    ) -> PlaygroundRequest {
        let messages: Vec<Value> = chat
            .turns
            .iter()
            .map(|t| {
                let role = match t.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                json!({"role": role, "content": t.text})
            })
            .collect();
        let mut body = json!({
            "model": model,
            "max_tokens": max_tokens,
            "messages": messages,
            "stream": stream,
        });
        if let Some(system) = &chat.system {
            body["system"] = json!(system);
        }
        PlaygroundRequest {
            path: "/v1/messages".into(),
            query: None,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("anthropic-version".into(), API_VERSION.into()),
            ],
            body: json_bytes(&body),
        }
    }

    fn sdk_snippets(&self, base: &str, key: &str) -> Vec<Snippet> {
        vec![
            Snippet {
                language: Language::Python,
                label: "Python · anthropic",
                code: format!(
                    "import anthropic\n\nclient = anthropic.Anthropic(base_url=\"{base}/anthropic\", api_key=\"{key}\")\nreply = client.messages.create(\n    model=\"claude-haiku-4-5\", max_tokens=256,\n    messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n)\nprint(reply.content[0].text)"
                ),
            },
            Snippet {
                language: Language::JavaScript,
                label: "JavaScript · @anthropic-ai/sdk",
                code: format!(
                    "import Anthropic from \"@anthropic-ai/sdk\";\n\nconst client = new Anthropic({{ baseURL: \"{base}/anthropic\", apiKey: \"{key}\" }});\nconst reply = await client.messages.create({{\n  model: \"claude-haiku-4-5\", max_tokens: 256,\n  messages: [{{ role: \"user\", content: \"Hello!\" }}],\n}});\nconsole.log(reply.content[0].text);"
                ),
            },
        ]
    }

    fn reply_text(&self, body: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let text: String = v["content"]
            .as_array()?
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect();
        Some(text)
    }

    /// Messages' `system` (a string or text blocks) and `messages`.
    fn conversation(&self, request: &[u8]) -> Option<Conversation> {
        let v: Value = serde_json::from_slice(request).ok()?;
        let messages = v["messages"].as_array()?;
        let mut chat = Conversation::default();
        chat.add_system(content_text(&v["system"]));
        for m in messages {
            let text = content_text(&m["content"]);
            match m["role"].as_str() {
                Some("assistant") => chat.push(Role::Assistant, text),
                Some("user") => chat.push(Role::User, text),
                _ => {}
            }
        }
        chat.non_empty()
    }

    /// The `text_delta`s of `content_block_delta` events.
    fn assemble_stream(&self, events: &[u8]) -> Option<String> {
        let mut text = String::new();
        for (_, v) in stream_values(events) {
            if v["type"] == "content_block_delta" && v["delta"]["type"] == "text_delta" {
                text.push_str(v["delta"]["text"].as_str().unwrap_or_default());
            }
        }
        non_empty(text)
    }

    fn request_id_header(&self) -> Option<&'static str> {
        Some("request-id")
    }
}

fn endpoint_of(method: &str, path: &str) -> Endpoint {
    let tail = path.strip_prefix("/v1").unwrap_or(path);
    let post = method.eq_ignore_ascii_case("POST");
    let get = method.eq_ignore_ascii_case("GET");
    match tail {
        "/messages" if post => Endpoint::Messages,
        "/messages/count_tokens" if post => Endpoint::CountTokens,
        "/models" if get => Endpoint::ListModels,
        t if get
            && t.strip_prefix("/models/")
                .is_some_and(|id| !id.contains('/')) =>
        {
            Endpoint::ListModels
        }
        _ => Endpoint::Other,
    }
}

#[derive(Deserialize, Default)]
struct RequestBody {
    model: Option<String>,
    stream: Option<bool>,
    max_tokens: Option<u64>,
}

/// Anthropic's usage. Every field is optional because `message_delta` repeats only some.
/// `input_tokens` excludes cache reads and writes; `output_tokens` includes thinking.
#[derive(Deserialize, Default, Debug, Clone)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<CacheCreation>,
    output_tokens: Option<u64>,
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize, Default, Debug, Clone, Copy)]
struct CacheCreation {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Deserialize, Default, Debug, Clone, Copy)]
struct OutputDetails {
    thinking_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// These counts, with every field `later` has replacing this one's.
    fn overridden_by(&self, later: &AnthropicUsage) -> AnthropicUsage {
        AnthropicUsage {
            input_tokens: later.input_tokens.or(self.input_tokens),
            cache_creation_input_tokens: later
                .cache_creation_input_tokens
                .or(self.cache_creation_input_tokens),
            cache_read_input_tokens: later
                .cache_read_input_tokens
                .or(self.cache_read_input_tokens),
            cache_creation: later.cache_creation.or(self.cache_creation),
            output_tokens: later.output_tokens.or(self.output_tokens),
            output_tokens_details: later.output_tokens_details.or(self.output_tokens_details),
        }
    }

    /// Cache writes by duration. Without the `cache_creation` breakdown all writes are 5-minute
    /// ones; writes the breakdown does not account for are charged as 5-minute writes too.
    fn cache_writes(&self) -> (u64, u64) {
        let total = self.cache_creation_input_tokens.unwrap_or(0);
        match self.cache_creation {
            None => (total, 0),
            Some(split) => {
                let one_hour = split.ephemeral_1h_input_tokens.unwrap_or(0);
                let five_min = split.ephemeral_5m_input_tokens.unwrap_or(0);
                (five_min.max(total.saturating_sub(one_hour)), one_hour)
            }
        }
    }

    fn to_usage(&self, model: Option<String>) -> Usage {
        let (w5m, w1h) = self.cache_writes();
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        Usage {
            model,
            input_tokens: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(cached)
                .saturating_add(w5m)
                .saturating_add(w1h),
            cached_input_tokens: cached,
            cache_write_5m_tokens: w5m,
            cache_write_1h_tokens: w1h,
            output_tokens: self.output_tokens.unwrap_or(0),
            reasoning_tokens: self
                .output_tokens_details
                .and_then(|d| d.thinking_tokens)
                .unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
struct MessageBody {
    model: Option<String>,
    usage: Option<AnthropicUsage>,
}

/// Messages streams: input and cache counts in `message_start`, overridden by any that
/// `message_delta` repeats; output from the last `message_delta` (a running total, never summed).
#[derive(Default)]
struct MessageStream {
    start: Option<AnthropicUsage>,
    delta: Option<AnthropicUsage>,
    model: Option<String>,
}

#[derive(Deserialize)]
struct MessageStart {
    message: MessageBody,
}

#[derive(Deserialize)]
struct MessageDelta {
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct BlockDelta {
    delta: Option<DeltaText>,
}

#[derive(Deserialize)]
struct DeltaText {
    text: Option<String>,
    thinking: Option<String>,
    partial_json: Option<String>,
}

#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

impl MessageStream {
    fn on_start(&mut self, data: &[u8], seen: &mut StreamSeen) {
        if let Ok(start) = serde_json::from_slice::<MessageStart>(data) {
            seen.note_model(start.message.model.as_deref());
            self.model = start.message.model;
            self.start = Some(start.message.usage.unwrap_or_default());
        }
    }

    fn on_delta(&mut self, data: &[u8], seen: &mut StreamSeen) {
        let Some(usage) = serde_json::from_slice::<MessageDelta>(data)
            .ok()
            .and_then(|d| d.usage)
        else {
            return;
        };
        if usage.output_tokens.is_some() {
            seen.output_reported();
        }
        self.delta = Some(match &self.delta {
            Some(earlier) => earlier.overridden_by(&usage),
            None => usage,
        });
    }

    fn on_block_delta(data: &[u8], seen: &mut StreamSeen) {
        let Some(delta) = serde_json::from_slice::<BlockDelta>(data)
            .ok()
            .and_then(|b| b.delta)
        else {
            return;
        };
        for text in [&delta.text, &delta.thinking, &delta.partial_json]
            .into_iter()
            .flatten()
        {
            seen.add_text(text);
        }
    }
}

impl StreamRules for MessageStream {
    fn observe(&mut self, _raw: &[u8], event: &SseEvent<'_>, seen: &mut StreamSeen) -> Forward {
        // The SDK dispatches on the `event:` name; read `type` only when there is none.
        let parsed_kind;
        let kind = match event.name {
            Some(name) => name,
            None => {
                parsed_kind = serde_json::from_slice::<TypeOnly>(&event.data)
                    .map(|t| t.kind)
                    .unwrap_or_default();
                parsed_kind.as_str()
            }
        };
        match kind {
            "content_block_delta" => Self::on_block_delta(&event.data, seen),
            "message_start" => self.on_start(&event.data, seen),
            "message_delta" => self.on_delta(&event.data, seen),
            "message_stop" => seen.ended = true,
            "error" => seen.error = true,
            _ => {}
        }
        Forward::Keep
    }

    fn reported(&self) -> Reported {
        let start = self.start.clone().unwrap_or_default();
        let delta = self.delta.clone().unwrap_or_default();
        let mut merged = start.overridden_by(&delta);
        // message_start's output count is a placeholder; only message_delta's counts.
        merged.output_tokens = delta.output_tokens;
        Reported {
            usage: merged.to_usage(self.model.clone()),
            input: self.start.is_some() || delta.input_tokens.is_some(),
            final_output: delta.output_tokens.is_some(),
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
    message: Option<String>,
}

/// Anthropic's errors: 401 a bad key; the 400 "credit balance is too low" (or a
/// `billing_error`) no quota; 429 a rate limit; `not_found_error` an unknown model.
fn classify(status: u16, body: &[u8]) -> Option<Trouble> {
    let fields = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let kind = fields.as_ref().and_then(|f| f.kind.as_deref());
    let message = fields
        .as_ref()
        .and_then(|f| f.message.as_deref())
        .unwrap_or("")
        .to_ascii_lowercase();
    if status == 401 || kind == Some("authentication_error") {
        Some(Trouble::InvalidApiKey)
    } else if kind == Some("billing_error") || message.contains("credit balance is too low") {
        Some(Trouble::InsufficientQuota)
    } else if status == 429 || kind == Some("rate_limit_error") {
        Some(Trouble::RateLimitExceeded)
    } else if status == 404 || kind == Some("not_found_error") {
        Some(Trouble::ModelNotFound)
    } else {
        None
    }
}

/// The `error.type` Anthropic uses for errors like each of the Hub's.
fn error_type(error: Refusal) -> &'static str {
    match error {
        Refusal::InvalidAppKey => "authentication_error",
        Refusal::ConnectorRevoked => "permission_error",
        Refusal::InsufficientCredits | Refusal::AppBudgetExceeded => "billing_error",
        Refusal::AppRateLimited => "rate_limit_error",
        Refusal::ModelNotAvailable | Refusal::EndpointNotSupported => "not_found_error",
        Refusal::UpstreamTimeout => "timeout_error",
        Refusal::RequestTooLarge => "request_too_large",
        Refusal::BadRequest => "invalid_request_error",
        Refusal::HubLocked | Refusal::UpstreamConnectionFailed | Refusal::Internal => "api_error",
    }
}

/// The `error` object; the Hub's code sits in `details.error_code`, where the SDK reads a
/// stable cause (`APIStatusError.error_code`).
fn error_fields(error: Refusal, message: &str) -> Value {
    json!({
        "type": error_type(error),
        "message": message,
        "details": {"error_code": error.as_str()},
    })
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
    #[serde(default)]
    has_more: bool,
    last_id: Option<String>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::providers::testing::{TestRequest, feed_in, meter_every_way};
    use secrecy::ExposeSecret;

    const REQUEST: &str = r#"{
  "model": "claude-sonnet-4-5",
  "max_tokens": 1024,
  "system": "You are terse.",
  "messages": [{"role": "user", "content": "Hello, Claude"}],
  "stream": false
}"#;

    const RESPONSE: &str = r#"{
  "model": "claude-sonnet-4-5-20250929",
  "id": "msg_01MkoP42QB7TUf5m2NVVK2kE",
  "type": "message",
  "role": "assistant",
  "content": [{"type": "text", "text": "{\"product_name\": \"Green Tea\", \"price\": 5.50, \"quantity\": 2}"}],
  "stop_reason": "end_turn",
  "stop_sequence": null,
  "usage": {
    "input_tokens": 249,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 26,
    "service_tier": "standard",
    "inference_geo": "not_available"
  }
}"#;

    /// provider-apis §3.3, recorded from the real API.
    const STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_013nnniYDrJDocdy5nrMU7cH","type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":135,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard","inference_geo":"not_available"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"[12345,"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"67890]"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":135,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":10}}

event: message_stop
data: {"type":"message_stop"}

"#;

    fn info(body: &str) -> RequestInfo {
        TestRequest::post("/v1/messages", &[("x-api-key", "whk_a")], body).inspect(&AnthropicApi)
    }

    fn meter(body: &[u8]) -> Metered {
        AnthropicApi.meter_body(&info(REQUEST), body).unwrap()
    }

    #[test]
    fn inspects_either_auth_header() {
        let i = info(REQUEST);
        assert_eq!(i.endpoint, Endpoint::Messages);
        assert_eq!(
            i.app_key.as_ref().map(ExposeSecret::expose_secret),
            Some("whk_a")
        );
        assert_eq!(i.model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(i.max_output_tokens, Some(1024));
        assert!(!i.stream);
        let bearer = TestRequest::post(
            "/v1/messages",
            &[("authorization", "Bearer whk_b")],
            REQUEST,
        )
        .inspect(&AnthropicApi);
        assert_eq!(
            bearer.app_key.as_ref().map(ExposeSecret::expose_secret),
            Some("whk_b")
        );
        let count =
            TestRequest::post("/v1/messages/count_tokens", &[], REQUEST).inspect(&AnthropicApi);
        assert_eq!(count.endpoint, Endpoint::CountTokens);
        let list = TestRequest::get("/v1/models", &[]).inspect(&AnthropicApi);
        assert_eq!(list.endpoint, Endpoint::ListModels);
        let streaming = info(&REQUEST.replace("\"stream\": false", "\"stream\": true"));
        assert!(streaming.stream);
    }

    #[test]
    fn prepare_removes_both_client_credentials() {
        let req = TestRequest::post(
            "/v1/messages",
            &[
                ("x-api-key", "whk_app"),
                ("authorization", "Bearer whk_app"),
                ("anthropic-version", "2023-06-01"),
                ("anthropic-beta", "prompt-caching-2024-07-31"),
                ("content-length", "99"),
            ],
            REQUEST,
        );
        let up = AnthropicApi.prepare(
            &req.proxy(),
            &req.inspect(&AnthropicApi),
            &SecretString::from("sk-ant-stored"),
        );
        assert_eq!(
            up.headers,
            vec![
                ("anthropic-version".to_string(), "2023-06-01".to_string()),
                ("anthropic-beta".into(), "prompt-caching-2024-07-31".into()),
                ("x-api-key".into(), "sk-ant-stored".into()),
            ]
        );
        assert_eq!(up.body, req.body);
        assert!(!up.hide_stream_usage);
    }

    #[test]
    fn meters_the_sample_message() {
        let got = meter(RESPONSE.as_bytes());
        assert_eq!(
            got.usage,
            Usage {
                model: Some("claude-sonnet-4-5-20250929".into()),
                input_tokens: 249,
                output_tokens: 26,
                ..Usage::default()
            }
        );
        assert!(got.complete && !got.estimated);
    }

    #[test]
    fn cache_reads_and_writes_count_as_input() {
        let body = br#"{"model":"claude-haiku-4-5-20251001","usage":{"input_tokens":100,
            "cache_creation_input_tokens":250,"cache_read_input_tokens":1000,
            "cache_creation":{"ephemeral_5m_input_tokens":200,"ephemeral_1h_input_tokens":50},
            "output_tokens":10,"output_tokens_details":{"thinking_tokens":4}}}"#;
        let u = meter(body).usage;
        assert_eq!(
            (
                u.input_tokens,
                u.cached_input_tokens,
                u.cache_write_5m_tokens,
                u.cache_write_1h_tokens
            ),
            (1350, 1000, 200, 50)
        );
        assert_eq!((u.output_tokens, u.reasoning_tokens), (10, 4));
        // Without the breakdown every write is a 5-minute write.
        let body =
            br#"{"usage":{"input_tokens":3,"cache_creation_input_tokens":40,"output_tokens":1}}"#;
        let u = meter(body).usage;
        assert_eq!(
            (
                u.input_tokens,
                u.cache_write_5m_tokens,
                u.cache_write_1h_tokens
            ),
            (43, 40, 0)
        );
    }

    #[test]
    fn count_tokens_is_free() {
        let count =
            TestRequest::post("/v1/messages/count_tokens", &[], REQUEST).inspect(&AnthropicApi);
        let got = AnthropicApi
            .meter_body(&count, br#"{"input_tokens": 14}"#)
            .unwrap();
        assert_eq!(got.usage, Usage::default());
        assert!(!got.estimated);
    }

    #[test]
    fn meters_the_recorded_stream() {
        let i = info(REQUEST);
        let (forwarded, metered) =
            meter_every_way(|| AnthropicApi.stream_meter(&i, false), STREAM.as_bytes());
        assert_eq!(forwarded, STREAM.as_bytes());
        assert_eq!(
            metered.usage,
            Usage {
                model: Some("claude-sonnet-4-5-20250929".into()),
                input_tokens: 135,
                output_tokens: 10,
                ..Usage::default()
            }
        );
        assert!(metered.complete && !metered.estimated && !metered.upstream_error);
        let crlf = STREAM.replace('\n', "\r\n");
        let (_, again) = meter_every_way(|| AnthropicApi.stream_meter(&i, false), crlf.as_bytes());
        assert_eq!(again, metered);
    }

    #[test]
    fn output_is_the_last_message_delta_never_a_sum() {
        let stream = concat!(
            "event: message_start\n",
            r#"data: {"type":"message_start","message":{"model":"claude-haiku-4-5-20251001","usage":{"input_tokens":20,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            "\n\n",
            "event: message_delta\n",
            r#"data: {"type":"message_delta","delta":{},"usage":{"output_tokens":7}}"#,
            "\n\n",
            "event: message_delta\n",
            r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"cache_read_input_tokens":8,"output_tokens":12}}"#,
            "\n\n",
            "event: message_stop\n",
            r#"data: {"type":"message_stop"}"#,
            "\n\n",
        );
        let (_, metered) = meter_every_way(
            || AnthropicApi.stream_meter(&info(REQUEST), false),
            stream.as_bytes(),
        );
        // input 20 from message_start, cache reads overridden to 8 by message_delta.
        assert_eq!(metered.usage.input_tokens, 28);
        assert_eq!(metered.usage.cached_input_tokens, 8);
        assert_eq!(metered.usage.output_tokens, 12);
        assert!(!metered.estimated);
    }

    #[test]
    fn padded_json_and_data_without_a_space_are_read() {
        let stream = "event: message_start\ndata:{\"type\":\"message_start\",  \"message\":{\"usage\":{\"input_tokens\":  9 ,\"output_tokens\":1}}        }\n\n\
                      event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":3}   }\n\n";
        let (_, metered) = feed_in(
            AnthropicApi.stream_meter(&info(REQUEST), false),
            stream.as_bytes(),
            &[1],
        );
        assert_eq!(
            (metered.usage.input_tokens, metered.usage.output_tokens),
            (9, 3)
        );
        assert!(!metered.estimated && !metered.complete);
    }

    #[test]
    fn a_cut_stream_keeps_input_and_estimates_output() {
        let cut = &STREAM[..STREAM.find("event: content_block_stop").unwrap()];
        let i = info(REQUEST);
        let (_, metered) = meter_every_way(|| AnthropicApi.stream_meter(&i, false), cut.as_bytes());
        assert_eq!(metered.usage.input_tokens, 135); // reported by message_start
        assert_eq!(metered.usage.output_tokens, 4); // "[12345," + "67890]": 13 bytes / 4, up
        assert!(metered.estimated && !metered.complete);
        // Cut before message_start: input is the request's estimate.
        let (_, metered) = feed_in(
            AnthropicApi.stream_meter(&i, false),
            b"event: ping\ndata: {}\n\n",
            &[4],
        );
        assert_eq!(metered.usage.input_tokens, i.input_tokens_estimate);
        assert!(metered.estimated);
    }

    #[test]
    fn a_mid_stream_error_is_noted() {
        let stream = "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n";
        let (_, metered) = feed_in(
            AnthropicApi.stream_meter(&info(REQUEST), false),
            stream.as_bytes(),
            &[10],
        );
        assert!(metered.upstream_error && !metered.complete);
    }

    #[test]
    fn classifies_anthropic_errors() {
        let key = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_1"}"#;
        let credit = br#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."},"request_id":"req_2"}"#;
        let missing = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_3"}"#;
        let rate = br#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your organization's rate limit of 30,000 input tokens per minute."},"request_id":"req_4"}"#;
        let model = br#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-foo-1"},"request_id":"req_5"}"#;
        let overloaded = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CZqrbJmikFKpFeY3mHx59"}"#;
        assert_eq!(
            AnthropicApi.classify(401, key),
            Some(Trouble::InvalidApiKey)
        );
        assert_eq!(
            AnthropicApi.classify(400, credit),
            Some(Trouble::InsufficientQuota)
        );
        assert_eq!(AnthropicApi.classify(400, missing), None);
        assert_eq!(
            AnthropicApi.classify(429, rate),
            Some(Trouble::RateLimitExceeded)
        );
        assert_eq!(
            AnthropicApi.classify(404, model),
            Some(Trouble::ModelNotFound)
        );
        assert_eq!(AnthropicApi.classify(529, overloaded), None);
    }

    #[test]
    fn hub_errors_take_anthropics_shape() {
        let v: Value =
            serde_json::from_slice(&AnthropicApi.error_body(Refusal::AppRateLimited, "Slow down."))
                .unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["message"], "Slow down.");
        assert_eq!(v["error"]["details"]["error_code"], "app_rate_limited");
        assert!(v.get("request_id").is_some());
        let event = AnthropicApi.stream_error_event(Refusal::UpstreamTimeout, "timed out");
        let text = std::str::from_utf8(&event).unwrap();
        assert!(
            text.starts_with(
                "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"timeout_error\""
            ),
            "{text}"
        );
    }

    #[test]
    fn lists_models_page_by_page() {
        let key = SecretString::from("sk-ant-x");
        let first = AnthropicApi.model_list_request(&key, None);
        assert_eq!(first.path_and_query, "/v1/models?limit=1000");
        assert!(
            first
                .headers
                .contains(&("x-api-key".into(), "sk-ant-x".into()))
        );
        assert!(
            first
                .headers
                .contains(&("anthropic-version".into(), "2023-06-01".into()))
        );
        let next = AnthropicApi.model_list_request(&key, Some("claude-sonnet-4-5-20250929"));
        assert_eq!(
            next.path_and_query,
            "/v1/models?limit=1000&after_id=claude-sonnet-4-5-20250929"
        );
        let body = br#"{"data": [
            {"type": "model", "id": "claude-opus-4-5-20251101", "display_name": "Claude Opus 4.5", "created_at": "2025-11-24T00:00:00Z"},
            {"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"}],
          "has_more": true, "first_id": "claude-opus-4-5-20251101", "last_id": "claude-sonnet-4-5-20250929"}"#;
        let page = AnthropicApi.parse_model_list(body).unwrap();
        assert_eq!(
            page.ids,
            ["claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929"]
        );
        assert_eq!(page.next.as_deref(), Some("claude-sonnet-4-5-20250929"));
        let last = br#"{"data": [], "has_more": false, "first_id": null, "last_id": null}"#;
        assert_eq!(AnthropicApi.parse_model_list(last).unwrap().next, None);
    }
}
