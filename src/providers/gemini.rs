//! Google Gemini: `x-goog-api-key` or `?key=` keys, the model and streaming named in the path,
//! `usageMetadata` running totals, Google's error shape, and the OpenAI-compatible surface under
//! `/v1beta/openai/` (OpenAI's shapes, Gemini's keys and prices).

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::forward::{
    app_key, bearer_token, bearer_value, header, json_bytes, query_param, query_without_key,
    sse_event, strip_models_prefix, tokens_from_bytes, upstream_headers,
};
use super::meter::{
    Forward, Reported, StreamRules, StreamSeen, body_is_metered, estimate_without_usage, free_call,
    reported_body,
};
use super::sse::SseEvent;
use super::{
    Endpoint, HubError, Metered, ModelListRequest, ModelPage, ParseError, Provider, ProviderApi,
    ProxyRequest, RequestInfo, StreamMeter, Trouble, Upstream, Usage, openai,
};

/// Gemini's half of the proxy.
pub struct GeminiApi;

impl ProviderApi for GeminiApi {
    fn provider(&self) -> Provider {
        Provider::Gemini
    }

    fn inspect(&self, request: &ProxyRequest<'_>) -> RequestInfo {
        let tail = below_version(request.path);
        let mut info = match tail.strip_prefix("/openai") {
            Some(compat) => {
                let mut info =
                    openai::inspect_body(openai::endpoint_of(request.method, compat), request.body);
                info.model = info.model.map(|m| strip_models_prefix(&m).to_owned());
                info
            }
            None => inspect_native(request.method, tail, request.body),
        };
        let query_key = query_param(request.query, "key");
        let key = header(request.headers, "x-goog-api-key")
            .or(query_key.as_deref())
            .or_else(|| bearer_token(request.headers));
        info.app_key = app_key(key);
        info
    }

    fn prepare(
        &self,
        request: &ProxyRequest<'_>,
        info: &RequestInfo,
        stored_key: &SecretString,
    ) -> Upstream {
        let is_compat = is_openai_compatible(info.endpoint);
        let (auth_header, auth_value) = if is_compat {
            ("authorization", bearer_value(stored_key))
        } else {
            ("x-goog-api-key", stored_key.expose_secret().to_owned())
        };
        let (body, hide_stream_usage) = if is_compat {
            openai::prepare_body(info, request.body)
        } else {
            (request.body.clone(), false)
        };
        Upstream {
            query: query_without_key(request.query),
            headers: upstream_headers(request.headers, auth_header, auth_value),
            body,
            hide_stream_usage,
        }
    }

    fn meter_body(&self, info: &RequestInfo, body: &[u8]) -> Option<Metered> {
        if is_openai_compatible(info.endpoint) {
            return openai::meter_body(info, body, |m| strip_models_prefix(m).to_owned());
        }
        if !body_is_metered(info.endpoint) {
            return None;
        }
        if info.endpoint == Endpoint::CountTokens {
            return Some(free_call());
        }
        let parsed: Option<GenerateBody> = serde_json::from_slice(body).ok();
        let served = parsed.as_ref().and_then(|b| b.model_version.clone());
        Some(match parsed.and_then(|b| b.usage_metadata) {
            Some(usage) => reported_body(usage.to_usage(served)),
            // embedContent reports no usage: estimate it from the request.
            None => estimate_without_usage(info, body, served.or_else(|| info.model.clone())),
        })
    }

    fn stream_meter(&self, info: &RequestInfo, hide_usage: bool) -> StreamMeter {
        if is_openai_compatible(info.endpoint) {
            openai::stream_meter(info, hide_usage)
        } else {
            StreamMeter::sse_or_json_array(Box::new(GenerateStream::default()), info)
        }
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

    fn model_list_request(&self, key: &SecretString, cursor: Option<&str>) -> ModelListRequest {
        let mut path_and_query = "/v1beta/models?pageSize=1000".to_owned();
        if let Some(token) = cursor {
            path_and_query.push_str("&pageToken=");
            path_and_query.extend(url::form_urlencoded::byte_serialize(token.as_bytes()));
        }
        ModelListRequest {
            path_and_query,
            headers: vec![("x-goog-api-key".into(), key.expose_secret().to_owned())],
        }
    }

    fn parse_model_list(&self, body: &[u8]) -> Result<ModelPage, ParseError> {
        let page: ModelList = serde_json::from_slice(body)?;
        Ok(ModelPage {
            ids: page
                .models
                .into_iter()
                .map(|m| strip_models_prefix(&m.name).to_owned())
                .collect(),
            next: page.next_page_token.filter(|t| !t.is_empty()),
        })
    }
}

/// The path below `/v1beta` or `/v1`.
fn below_version(path: &str) -> &str {
    ["/v1beta", "/v1"]
        .iter()
        .find_map(|v| {
            path.strip_prefix(v)
                .filter(|t| t.is_empty() || t.starts_with('/'))
        })
        .unwrap_or(path)
}

/// Endpoints only the OpenAI-compatible surface has.
fn is_openai_compatible(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::ChatCompletions | Endpoint::Responses | Endpoint::Embeddings
    )
}

#[derive(Deserialize, Default)]
struct RequestBody {
    #[serde(rename = "generationConfig", alias = "generation_config")]
    generation_config: Option<GenerationConfig>,
}

#[derive(Deserialize, Default)]
struct GenerationConfig {
    #[serde(rename = "maxOutputTokens", alias = "max_output_tokens")]
    max_output_tokens: Option<u64>,
}

/// `/models/{model}:{method}`, `/models` and `/models/{model}`.
fn inspect_native(method: &str, tail: &str, body: &[u8]) -> RequestInfo {
    let (model, endpoint) = match tail.trim_end_matches('/').strip_prefix("/models/") {
        Some(rest) => match rest.split_once(':') {
            Some((model, action)) => (Some(model), action_endpoint(action)),
            None if method.eq_ignore_ascii_case("GET") => (None, Endpoint::ListModels),
            None => (None, Endpoint::Other),
        },
        None if tail.trim_end_matches('/') == "/models" => (None, Endpoint::ListModels),
        None => (None, Endpoint::Other),
    };
    let fields: RequestBody = if endpoint.is_billable() {
        serde_json::from_slice(body).unwrap_or_default()
    } else {
        RequestBody::default()
    };
    RequestInfo {
        endpoint,
        app_key: None,
        model: model.map(|m| strip_models_prefix(m).to_owned()),
        stream: endpoint == Endpoint::StreamGenerateContent,
        max_output_tokens: fields.generation_config.and_then(|g| g.max_output_tokens),
        input_tokens_estimate: tokens_from_bytes(body.len() as u64),
    }
}

fn action_endpoint(action: &str) -> Endpoint {
    match action {
        "generateContent" => Endpoint::GenerateContent,
        "streamGenerateContent" => Endpoint::StreamGenerateContent,
        "countTokens" => Endpoint::CountTokens,
        "embedContent" | "batchEmbedContents" => Endpoint::EmbedContent,
        _ => Endpoint::Other,
    }
}

/// `usageMetadata`. The prompt count includes cached tokens; thoughts are outside candidates.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
}

impl UsageMetadata {
    fn to_usage(&self, model: Option<String>) -> Usage {
        let count = |c: Option<u64>| c.unwrap_or(0);
        let thoughts = count(self.thoughts_token_count);
        Usage {
            model,
            input_tokens: count(self.prompt_token_count)
                .saturating_add(count(self.tool_use_prompt_token_count)),
            cached_input_tokens: count(self.cached_content_token_count),
            output_tokens: count(self.candidates_token_count).saturating_add(thoughts),
            reasoning_tokens: thoughts,
            ..Usage::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateBody {
    usage_metadata: Option<UsageMetadata>,
    model_version: Option<String>,
}

/// `streamGenerateContent` chunks: each carries the running `usageMetadata`; the last wins.
#[derive(Default)]
struct GenerateStream {
    last: Option<UsageMetadata>,
    model: Option<String>,
    finished: bool,
    /// The last usage arrived with or after the `finishReason`, so it covers every token.
    usage_is_final: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamChunk {
    candidates: Option<Vec<Candidate>>,
    usage_metadata: Option<UsageMetadata>,
    model_version: Option<String>,
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    parts: Option<Vec<Part>>,
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
}

impl StreamRules for GenerateStream {
    fn observe(&mut self, _raw: &[u8], event: &SseEvent<'_>, seen: &mut StreamSeen) -> Forward {
        let Ok(chunk) = serde_json::from_slice::<StreamChunk>(&event.data) else {
            return Forward::Keep;
        };
        if chunk.error.is_some() {
            seen.error = true;
            return Forward::Keep;
        }
        seen.note_model(chunk.model_version.as_deref());
        if chunk.model_version.is_some() {
            self.model = chunk.model_version;
        }
        for candidate in chunk.candidates.iter().flatten() {
            let parts = candidate
                .content
                .iter()
                .flat_map(|c| c.parts.iter().flatten());
            parts
                .filter_map(|p| p.text.as_deref())
                .for_each(|t| seen.add_text(t));
            if candidate.finish_reason.is_some() {
                self.finished = true;
                seen.ended = true;
            }
        }
        if let Some(usage) = chunk.usage_metadata {
            self.last = Some(usage);
            self.usage_is_final = self.finished;
            seen.output_reported();
        }
        Forward::Keep
    }

    fn reported(&self) -> Reported {
        match &self.last {
            Some(last) => Reported {
                usage: last.to_usage(self.model.clone()),
                input: last.prompt_token_count.is_some(),
                final_output: self.usage_is_final,
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
    message: Option<String>,
    status: Option<String>,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "@type")]
    kind: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    violations: Vec<QuotaViolation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuotaViolation {
    quota_id: Option<String>,
}

impl ErrorFields {
    fn has_reason(&self, reason: &str) -> bool {
        self.details
            .iter()
            .any(|d| d.reason.as_deref() == Some(reason))
    }

    fn has_detail(&self, type_suffix: &str) -> bool {
        self.details
            .iter()
            .any(|d| d.kind.as_deref().is_some_and(|k| k.ends_with(type_suffix)))
    }

    fn quota_ids(&self) -> impl Iterator<Item = &str> {
        self.details
            .iter()
            .flat_map(|d| d.violations.iter())
            .filter_map(|v| v.quota_id.as_deref())
    }

    /// Gemini sends the same 429 `RESOURCE_EXHAUSTED` for both. A per-day quota, or a quota
    /// message with nothing to retry after, is out of quota (waiting will not help); a per-minute
    /// quota or a `RetryInfo` delay is a rate limit.
    fn exhausted_means_no_quota(&self) -> bool {
        if self.quota_ids().any(|q| q.contains("PerDay")) {
            return true;
        }
        if self.has_detail("RetryInfo") || self.quota_ids().any(|q| q.contains("PerMinute")) {
            return false;
        }
        let message = self.message.as_deref().unwrap_or("").to_ascii_lowercase();
        message.contains("quota") || message.contains("billing")
    }
}

/// Gemini's errors: 400 `API_KEY_INVALID` (and 401, and the 403 of a missing key) a bad key;
/// 429 `RESOURCE_EXHAUSTED` no quota or a rate limit (see above); 404 an unknown model.
fn classify(status: u16, body: &[u8]) -> Option<Trouble> {
    let fields = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let google_status = fields.as_ref().and_then(|f| f.status.as_deref());
    let bad_key = fields.as_ref().is_some_and(|f| {
        f.has_reason("API_KEY_INVALID")
            || f.has_reason("API_KEY_EXPIRED")
            || f.message
                .as_deref()
                .is_some_and(|m| m.contains("API key not valid"))
    });
    if bad_key || status == 401 || status == 403 || google_status == Some("PERMISSION_DENIED") {
        Some(Trouble::InvalidApiKey)
    } else if status == 429 || google_status == Some("RESOURCE_EXHAUSTED") {
        match fields {
            Some(f) if f.exhausted_means_no_quota() => Some(Trouble::InsufficientQuota),
            _ => Some(Trouble::RateLimitExceeded),
        }
    } else if status == 404 || google_status == Some("NOT_FOUND") {
        Some(Trouble::ModelNotFound)
    } else {
        None
    }
}

/// The google.rpc status name for each of the Hub's errors.
fn google_status(error: HubError) -> &'static str {
    match error {
        HubError::HubLocked | HubError::UpstreamConnectionFailed => "UNAVAILABLE",
        HubError::InvalidAppKey => "UNAUTHENTICATED",
        HubError::ConnectorRevoked => "PERMISSION_DENIED",
        HubError::InsufficientCredits | HubError::AppBudgetExceeded | HubError::AppRateLimited => {
            "RESOURCE_EXHAUSTED"
        }
        HubError::ModelNotAvailable => "NOT_FOUND",
        HubError::UpstreamTimeout => "DEADLINE_EXCEEDED",
        HubError::RequestTooLarge | HubError::BadRequest => "INVALID_ARGUMENT",
    }
}

/// Google's error shape with `error` as the only key (the SDK's stream check needs it first);
/// the Hub's code is the `ErrorInfo` reason, upper-cased as Google writes reasons.
fn error_json(error: HubError, message: &str) -> Value {
    json!({"error": {
        "code": error.status(),
        "message": message,
        "status": google_status(error),
        "details": [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": error.as_str().to_ascii_uppercase(),
            "domain": "workshop-hub",
        }],
    }})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelList {
    #[serde(default)]
    models: Vec<ModelEntry>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ModelEntry {
    name: String,
}
