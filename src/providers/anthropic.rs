//! Anthropic: `x-api-key` or `Authorization: Bearer` keys, Messages usage with its separate cache
//! counts, `message_start` + cumulative `message_delta` stream usage, and Anthropic's error shape.

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::forward::{
    app_key, bearer_token, header, json_bytes, sse_event, tokens_from_bytes, upstream_headers,
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

/// The API version the Hub itself uses for model lists.
const API_VERSION: &str = "2023-06-01";

/// Anthropic's half of the proxy.
pub struct AnthropicApi;

impl ProviderApi for AnthropicApi {
    fn provider(&self) -> Provider {
        Provider::Anthropic
    }

    fn inspect(&self, request: &ProxyRequest<'_>) -> RequestInfo {
        let fields: RequestBody = serde_json::from_slice(request.body).unwrap_or_default();
        let key = header(request.headers, "x-api-key").or_else(|| bearer_token(request.headers));
        RequestInfo {
            endpoint: endpoint_of(request.method, request.path),
            app_key: app_key(key),
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
            query: request.query.to_owned(),
            headers: upstream_headers(
                request.headers,
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

    fn error_body(&self, error: HubError, message: &str) -> Bytes {
        json_bytes(&json!({
            "type": "error",
            "error": error_fields(error, message),
            // The Hub's own refusals never reached Anthropic, so there is no request id.
            "request_id": null,
        }))
    }

    fn stream_error_event(&self, error: HubError, message: &str) -> Bytes {
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
}

fn endpoint_of(method: &str, path: &str) -> Endpoint {
    let tail = path.strip_prefix("/v1").unwrap_or(path);
    match tail.trim_end_matches('/') {
        "/messages" => Endpoint::Messages,
        "/messages/count_tokens" => Endpoint::CountTokens,
        t if method.eq_ignore_ascii_case("GET")
            && (t == "/models" || t.starts_with("/models/")) =>
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
fn error_type(error: HubError) -> &'static str {
    match error {
        HubError::InvalidAppKey => "authentication_error",
        HubError::ConnectorRevoked => "permission_error",
        HubError::InsufficientCredits | HubError::AppBudgetExceeded => "billing_error",
        HubError::AppRateLimited => "rate_limit_error",
        HubError::ModelNotAvailable => "not_found_error",
        HubError::UpstreamTimeout => "timeout_error",
        HubError::RequestTooLarge => "request_too_large",
        HubError::BadRequest => "invalid_request_error",
        HubError::HubLocked | HubError::UpstreamConnectionFailed => "api_error",
    }
}

/// The `error` object; the Hub's code sits in `details.error_code`, where the SDK reads a
/// stable cause (`APIStatusError.error_code`).
fn error_fields(error: HubError, message: &str) -> Value {
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
