//! Google Gemini: `x-goog-api-key` or `?key=` keys, the model and streaming named in the path,
//! `usageMetadata` running totals, Google's error shape, and the OpenAI-compatible surface under
//! `/v1beta/openai/` (OpenAI's shapes, Gemini's keys and prices).

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::chat::{content_text, non_empty, stream_values};
use super::forward::{
    allowed_query, app_key, bearer_token, bearer_value, header, json_bytes, query_param,
    strip_models_prefix, tokens_from_bytes, upstream_headers,
};
use super::meter::{
    Forward, Reported, StreamRules, StreamSeen, body_is_metered, estimate_without_usage, free_call,
    reported_body,
};
use super::sse::SseEvent;
use super::{
    Conversation, Endpoint, KeyFormat, Language, Metered, ModelListRequest, ModelPage, ParseError,
    PlaygroundRequest, Provider, ProviderApi, ProxyRequest, Refusal, RequestInfo, Role, Snippet,
    StreamMeter, Trouble, Upstream, Usage, openai,
};

/// Gemini's half of the proxy.
pub struct GeminiApi;

impl ProviderApi for GeminiApi {
    fn provider(&self) -> Provider {
        Provider::Gemini
    }

    fn api_versions(&self) -> &'static [&'static str] {
        &["v1beta", "v1"]
    }

    fn endpoint(&self, method: &str, path: &str) -> Endpoint {
        let tail = below_version(path);
        match tail.strip_prefix("/openai") {
            Some(compat) => openai::endpoint_of(method, compat),
            None => native_endpoint(method, tail).1,
        }
    }

    fn app_key(&self, headers: &[(String, String)], query: &str) -> Option<SecretString> {
        let query_key = query_param(query, "key");
        let key = header(headers, "x-goog-api-key")
            .or(query_key.as_deref())
            .or_else(|| bearer_token(headers));
        app_key(key)
    }

    fn forwarded_request_headers(&self) -> &'static [&'static str] {
        &[
            "content-type",
            "accept",
            "user-agent",
            "x-goog-api-client",
            "x-stainless-",
        ]
    }

    fn forwarded_query(&self) -> &'static [&'static str] {
        &[
            "alt",
            "pageSize",
            "pageToken",
            "updateMask",
            "include[]",
            "stream",
            "limit",
            "after",
            "order",
        ]
    }

    fn returned_response_headers(&self) -> &'static [&'static str] {
        &["x-request-id", "x-ratelimit-", "x-should-retry"]
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
        info.app_key = self.app_key(request.headers, request.query);
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
            query: allowed_query(request.query, self.forwarded_query()),
            headers: upstream_headers(
                request.headers,
                self.forwarded_request_headers(),
                auth_header,
                auth_value,
            ),
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

    fn error_body(&self, error: Refusal, message: &str) -> Bytes {
        json_bytes(&error_json(error, message))
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

    fn key_format(&self) -> KeyFormat {
        KeyFormat {
            prefixes: &["AIza"],
            foreign_prefixes: &[],
            exact_len: Some(39),
            demo_key: "AIzaWorkshopHubDemoKey00000000000000000",
            described: "AIza… (39 characters)",
        }
    }

    fn playground_request(
        &self,
        model: &str,
        chat: &Conversation,
        max_tokens: u64,
        stream: bool,
    ) -> PlaygroundRequest {
        let contents: Vec<Value> = chat
            .turns
            .iter()
            .map(|t| {
                let role = match t.role {
                    Role::User => "user",
                    Role::Assistant => "model",
                };
                json!({"role": role, "parts": [{"text": t.text}]})
            })
            .collect();
        let mut body = json!({
            "contents": contents,
            "generationConfig": {"maxOutputTokens": max_tokens},
        });
        if let Some(system) = &chat.system {
            body["systemInstruction"] = json!({"parts": [{"text": system}]});
        }
        let (method, query) = if stream {
            ("streamGenerateContent", Some("alt=sse".to_string()))
        } else {
            ("generateContent", None)
        };
        PlaygroundRequest {
            path: format!("/v1beta/models/{model}:{method}"),
            query,
            headers: vec![("content-type".into(), "application/json".into())],
            body: json_bytes(&body),
        }
    }

    fn sdk_snippets(&self, base: &str, key: &str) -> Vec<Snippet> {
        vec![
            Snippet {
                language: Language::Python,
                label: "Python · google-genai",
                code: format!(
                    "from google import genai\nfrom google.genai import types\n\nclient = genai.Client(api_key=\"{key}\",\n    http_options=types.HttpOptions(base_url=\"{base}/gemini\"))\nreply = client.models.generate_content(model=\"gemini-2.5-flash\", contents=\"Hello!\")\nprint(reply.text)"
                ),
            },
            Snippet {
                language: Language::JavaScript,
                label: "JavaScript · @google/genai",
                code: format!(
                    "import {{ GoogleGenAI }} from \"@google/genai\";\n\nconst ai = new GoogleGenAI({{ apiKey: \"{key}\", httpOptions: {{ baseUrl: \"{base}/gemini\" }} }});\nconst reply = await ai.models.generateContent({{ model: \"gemini-2.5-flash\", contents: \"Hello!\" }});\nconsole.log(reply.text);"
                ),
            },
        ]
    }

    fn reply_text(&self, body: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let text: String = v["candidates"][0]["content"]["parts"]
            .as_array()?
            .iter()
            .filter(|p| p["thought"] != true)
            .filter_map(|p| p["text"].as_str())
            .collect();
        Some(text)
    }

    /// `systemInstruction` and `contents` (roles `user` and `model`).
    fn conversation(&self, request: &[u8]) -> Option<Conversation> {
        let v: Value = serde_json::from_slice(request).ok()?;
        let mut chat = Conversation::default();
        chat.add_system(content_text(&v["systemInstruction"]["parts"]));
        match &v["contents"] {
            Value::Array(contents) => {
                for c in contents {
                    let text = content_text(&c["parts"]);
                    match c["role"].as_str() {
                        Some("model") => chat.push(Role::Assistant, text),
                        _ => chat.push(Role::User, text),
                    }
                }
            }
            Value::String(text) => chat.push(Role::User, text.clone()),
            _ => return None,
        }
        chat.non_empty()
    }

    /// The text parts (not thoughts) of each chunk's first candidate.
    fn assemble_stream(&self, events: &[u8]) -> Option<String> {
        let mut text = String::new();
        for (_, v) in stream_values(events) {
            let parts = v["candidates"][0]["content"]["parts"].as_array();
            for part in parts.into_iter().flatten() {
                if part["thought"] != true {
                    text.push_str(part["text"].as_str().unwrap_or_default());
                }
            }
        }
        non_empty(text)
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

/// The model and endpoint of a native path below the version: `/models/{model}:{method}`
/// (POST), `/models` and `/models/{model}` (GET), `/cachedContents[/{id}]` (any method).
fn native_endpoint<'a>(method: &str, tail: &'a str) -> (Option<&'a str>, Endpoint) {
    let post = method.eq_ignore_ascii_case("POST");
    let get = method.eq_ignore_ascii_case("GET");
    if tail == "/models" {
        return (
            None,
            if get {
                Endpoint::ListModels
            } else {
                Endpoint::Other
            },
        );
    }
    if tail == "/cachedContents"
        || tail
            .strip_prefix("/cachedContents/")
            .is_some_and(|id| !id.contains('/'))
    {
        return (None, Endpoint::CachedContents);
    }
    match tail.strip_prefix("/models/") {
        Some(rest) if !rest.contains('/') => match rest.split_once(':') {
            Some((model, action)) if post => (Some(model), action_endpoint(action)),
            None if get => (None, Endpoint::ListModels),
            _ => (None, Endpoint::Other),
        },
        _ => (None, Endpoint::Other),
    }
}

fn inspect_native(method: &str, tail: &str, body: &[u8]) -> RequestInfo {
    let (model, endpoint) = native_endpoint(method, tail);
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
fn google_status(error: Refusal) -> &'static str {
    match error {
        Refusal::HubLocked | Refusal::UpstreamConnectionFailed => "UNAVAILABLE",
        Refusal::InvalidAppKey => "UNAUTHENTICATED",
        Refusal::ConnectorRevoked => "PERMISSION_DENIED",
        Refusal::InsufficientCredits | Refusal::AppBudgetExceeded | Refusal::AppRateLimited => {
            "RESOURCE_EXHAUSTED"
        }
        Refusal::ModelNotAvailable | Refusal::EndpointNotSupported => "NOT_FOUND",
        Refusal::Internal => "INTERNAL",
        Refusal::UpstreamTimeout => "DEADLINE_EXCEEDED",
        Refusal::RequestTooLarge | Refusal::BadRequest => "INVALID_ARGUMENT",
    }
}

/// Google's error shape with `error` as the only key (the SDK's stream check needs it first);
/// the Hub's code is the `ErrorInfo` reason, upper-cased as Google writes reasons.
fn error_json(error: Refusal, message: &str) -> Value {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::providers::testing::{TestRequest, feed_in, meter_every_way};

    const REQUEST: &str = r#"{"contents":[{"role":"user","parts":[{"text":"What is the capital of France?"}]}],
 "systemInstruction":{"parts":[{"text":"You are a helpful assistant."}]},
 "generationConfig":{"temperature":0,"maxOutputTokens":1024,"thinkingConfig":{"thinkingBudget":0}}}"#;

    const RESPONSE: &str = r#"{
  "candidates": [
    {
      "content": {"parts": [{"text": "The capital of France is **Paris**.\n"}], "role": "model"},
      "finishReason": "STOP",
      "avgLogprobs": -0.021610861023267109
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 7,
    "candidatesTokenCount": 9,
    "totalTokenCount": 16,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 7}],
    "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 9}]
  },
  "modelVersion": "gemini-2.0-flash",
  "responseId": "ictQaKDzD_6ShMIPm7P8iAY"
}"#;

    /// provider-apis §4.4, recorded (text shortened as there).
    const STREAM: &str = r#"data: {"candidates": [{"content": {"parts": [{"text": "Warsaw (Polish: Warszawa), located in central Poland …"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 15,"candidatesTokenCount": 38,"totalTokenCount": 1357,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 15}],"thoughtsTokenCount": 1304},"modelVersion": "gemini-2.5-flash","responseId": "g6eJafflLZKRkdUPoZCXmA0"}

data: {"candidates": [{"content": {"parts": [{"text": " reconstruction. It's a vibrant metropolis …"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 15,"candidatesTokenCount": 87,"totalTokenCount": 1406,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 15}],"thoughtsTokenCount": 1304},"modelVersion": "gemini-2.5-flash","responseId": "g6eJafflLZKRkdUPoZCXmA0"}

data: {"candidates": [{"content": {"parts": [{"text": " it buzzes with the energy of a modern European capital."}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 15,"candidatesTokenCount": 935,"totalTokenCount": 2254,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 15}],"thoughtsTokenCount": 1304},"modelVersion": "gemini-2.5-flash","responseId": "g6eJafflLZKRkdUPoZCXmA0"}

"#;

    const STREAM_PATH: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";

    fn stream_info() -> RequestInfo {
        TestRequest::post(STREAM_PATH, &[("x-goog-api-key", "whk_g")], REQUEST)
            .with_query("alt=sse")
            .inspect(&GeminiApi)
    }

    fn final_usage() -> Usage {
        Usage {
            model: Some("gemini-2.5-flash".into()),
            input_tokens: 15,
            output_tokens: 935 + 1304,
            reasoning_tokens: 1304,
            ..Usage::default()
        }
    }

    #[test]
    fn inspects_the_path_and_every_key_place() {
        let i = stream_info();
        assert_eq!(i.endpoint, Endpoint::StreamGenerateContent);
        assert!(i.stream);
        assert_eq!(i.model.as_deref(), Some("gemini-2.5-flash"));
        assert_eq!(i.max_output_tokens, Some(1024));
        assert_eq!(
            i.app_key.as_ref().map(ExposeSecret::expose_secret),
            Some("whk_g")
        );
        let by_query =
            TestRequest::post("/v1/models/gemini-2.5-flash:generateContent", &[], REQUEST)
                .with_query("key=whk_q");
        let i = by_query.inspect(&GeminiApi);
        assert_eq!(i.endpoint, Endpoint::GenerateContent);
        assert!(!i.stream);
        assert_eq!(
            i.app_key.as_ref().map(ExposeSecret::expose_secret),
            Some("whk_q")
        );
        let cases = [
            (
                "POST",
                "/v1beta/models/gemini-2.5-flash:countTokens",
                Endpoint::CountTokens,
            ),
            (
                "POST",
                "/v1beta/models/gemini-embedding-001:embedContent",
                Endpoint::EmbedContent,
            ),
            (
                "POST",
                "/v1beta/models/gemini-embedding-001:batchEmbedContents",
                Endpoint::EmbedContent,
            ),
            ("GET", "/v1beta/models", Endpoint::ListModels),
            ("GET", "/v1/models/gemini-2.5-pro", Endpoint::ListModels),
            (
                "POST",
                "/v1beta/tunedModels/x:generateContent",
                Endpoint::Other,
            ),
            (
                "POST",
                "/v1beta/openai/chat/completions",
                Endpoint::ChatCompletions,
            ),
        ];
        for (method, path, endpoint) in cases {
            let req = TestRequest {
                method,
                ..TestRequest::post(path, &[], "{}")
            };
            assert_eq!(req.inspect(&GeminiApi).endpoint, endpoint, "{path}");
        }
    }

    #[test]
    fn prepare_drops_the_key_from_header_and_query() {
        let req = TestRequest::post(
            STREAM_PATH,
            &[
                ("x-goog-api-key", "whk_g"),
                ("content-type", "application/json"),
            ],
            REQUEST,
        )
        .with_query("key=whk_g&alt=sse");
        let up = GeminiApi.prepare(
            &req.proxy(),
            &req.inspect(&GeminiApi),
            &SecretString::from("AIzaStored"),
        );
        assert_eq!(up.query, "alt=sse");
        assert_eq!(
            up.headers,
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("x-goog-api-key".into(), "AIzaStored".into()),
            ]
        );
        assert_eq!(up.body, req.body);
    }

    #[test]
    fn meters_generate_content_bodies() {
        let info = TestRequest::post(
            "/v1beta/models/gemini-2.0-flash:generateContent",
            &[],
            REQUEST,
        )
        .inspect(&GeminiApi);
        let got = GeminiApi.meter_body(&info, RESPONSE.as_bytes()).unwrap();
        assert_eq!(
            got.usage,
            Usage {
                model: Some("gemini-2.0-flash".into()),
                input_tokens: 7,
                output_tokens: 9,
                ..Usage::default()
            }
        );
        assert!(!got.estimated);
        let thinking = br#"{"usageMetadata":{"promptTokenCount":640,"candidatesTokenCount":16,"totalTokenCount":712,"promptTokensDetails":[{"modality":"TEXT","tokenCount":640}],"thoughtsTokenCount":56}}"#;
        let u = GeminiApi.meter_body(&info, thinking).unwrap().usage;
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.reasoning_tokens),
            (640, 72, 56)
        );
        let cached_tools = br#"{"usageMetadata":{"promptTokenCount":1000,"cachedContentTokenCount":800,"toolUsePromptTokenCount":50,"candidatesTokenCount":10}}"#;
        let u = GeminiApi.meter_body(&info, cached_tools).unwrap().usage;
        assert_eq!(
            (u.input_tokens, u.cached_input_tokens, u.output_tokens),
            (1050, 800, 10)
        );
    }

    #[test]
    fn embed_content_is_estimated_and_count_tokens_free() {
        let req = TestRequest::post(
            "/v1beta/models/gemini-embedding-001:embedContent",
            &[],
            r#"{"content":{"parts":[{"text":"The food was delicious"}]}}"#,
        );
        let info = req.inspect(&GeminiApi);
        let got = GeminiApi
            .meter_body(&info, br#"{"embedding":{"values":[0.1,0.2]}}"#)
            .unwrap();
        assert!(got.estimated);
        assert_eq!(got.usage.input_tokens, (req.body.len() as u64).div_ceil(4));
        assert_eq!(got.usage.output_tokens, 0);
        assert_eq!(got.usage.model.as_deref(), Some("gemini-embedding-001"));
        let count = TestRequest::post("/v1beta/models/gemini-2.5-flash:countTokens", &[], REQUEST)
            .inspect(&GeminiApi);
        let got = GeminiApi
            .meter_body(&count, br#"{"totalTokens": 7}"#)
            .unwrap();
        assert_eq!(got.usage, Usage::default());
        assert!(!got.estimated);
    }

    #[test]
    fn meters_the_recorded_stream_by_its_last_total() {
        let info = stream_info();
        let (forwarded, metered) =
            meter_every_way(|| GeminiApi.stream_meter(&info, false), STREAM.as_bytes());
        assert_eq!(forwarded, STREAM.as_bytes());
        assert_eq!(metered.usage, final_usage());
        assert!(metered.complete && !metered.estimated);
        let crlf = STREAM.replace('\n', "\r\n");
        let (_, again) = meter_every_way(|| GeminiApi.stream_meter(&info, false), crlf.as_bytes());
        assert_eq!(again, metered);
    }

    #[test]
    fn a_cut_stream_keeps_the_last_total() {
        let info = stream_info();
        let cut: String = STREAM.split_inclusive("\n\n").take(2).collect();
        let (_, metered) = meter_every_way(|| GeminiApi.stream_meter(&info, false), cut.as_bytes());
        assert_eq!(
            (metered.usage.input_tokens, metered.usage.output_tokens),
            (15, 87 + 1304)
        );
        assert!(metered.estimated && !metered.complete);
    }

    #[test]
    fn a_json_array_stream_meters_the_same() {
        let objects: Vec<&str> = STREAM
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.trim_start_matches("data: "))
            .collect();
        let array = format!("[{}]", objects.join(",\r\n"));
        let info = stream_info();
        let (forwarded, metered) =
            meter_every_way(|| GeminiApi.stream_meter(&info, false), array.as_bytes());
        assert_eq!(forwarded, array.as_bytes());
        assert_eq!(metered.usage, final_usage());
        assert!(metered.complete && !metered.estimated);
    }

    #[test]
    fn a_mid_stream_error_is_noted() {
        let stream = "data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded. Please try again later.\", \"status\": \"UNAVAILABLE\"}}\n\n";
        let (_, metered) = feed_in(
            GeminiApi.stream_meter(&stream_info(), false),
            stream.as_bytes(),
            &[3],
        );
        assert!(metered.upstream_error && metered.estimated);
    }

    const QUOTA_429: &str = r#"{"error": {"code": 429,
  "message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
  "status": "RESOURCE_EXHAUSTED",
  "details": [
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
     "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                     "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                     "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                     "quotaValue": "10"}]},
    {"@type": "type.googleapis.com/google.rpc.Help",
     "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31s"}]}}"#;

    #[test]
    fn classifies_gemini_errors() {
        let bad_key = br#"{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
  "details": [
    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
     "metadata": {"service": "generativelanguage.googleapis.com"}},
    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": "API key not valid. Please pass a valid API key."}
  ]}}"#;
        let no_key = br#"{"error": {"code": 403, "message": "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", "status": "PERMISSION_DENIED"}}"#;
        let no_model = br#"{"error": {"code": 404, "message": "models/gemini-pro is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.", "status": "NOT_FOUND"}}"#;
        let bad_json = br#"{"error": {"code": 400, "message": "Invalid JSON payload received. Unknown name \"x\": Cannot find field.", "status": "INVALID_ARGUMENT"}}"#;
        let overloaded = br#"{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}"#;
        assert_eq!(
            GeminiApi.classify(400, bad_key),
            Some(Trouble::InvalidApiKey)
        );
        assert_eq!(
            GeminiApi.classify(403, no_key),
            Some(Trouble::InvalidApiKey)
        );
        assert_eq!(
            GeminiApi.classify(404, no_model),
            Some(Trouble::ModelNotFound)
        );
        assert_eq!(GeminiApi.classify(400, bad_json), None);
        assert_eq!(GeminiApi.classify(503, overloaded), None);
        // The per-minute sample with a retry delay: wait and retry.
        assert_eq!(
            GeminiApi.classify(429, QUOTA_429.as_bytes()),
            Some(Trouble::RateLimitExceeded)
        );
        // A per-day quota: waiting a minute will not help.
        let daily = QUOTA_429.replace("PerMinute", "PerDay");
        assert_eq!(
            GeminiApi.classify(429, daily.as_bytes()),
            Some(Trouble::InsufficientQuota)
        );
        // The quota message with nothing to retry after.
        let bare = r#"{"error": {"code": 429, "message": "You exceeded your current quota, please check your plan and billing details.", "status": "RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(
            GeminiApi.classify(429, bare.as_bytes()),
            Some(Trouble::InsufficientQuota)
        );
        let plain = r#"{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]}}"#;
        assert_eq!(
            GeminiApi.classify(429, plain.as_bytes()),
            Some(Trouble::RateLimitExceeded)
        );
    }

    #[test]
    fn hub_errors_take_googles_shape() {
        let body = GeminiApi.error_body(Refusal::ModelNotAvailable, "No such model in the Hub.");
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.starts_with("{\"error\":"), "{text}");
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert_eq!(
            v,
            json!({"error": {"code": 404, "message": "No such model in the Hub.", "status": "NOT_FOUND",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "MODEL_NOT_AVAILABLE", "domain": "workshop-hub"}]}})
        );
        let event = GeminiApi.stream_error_event(Refusal::UpstreamTimeout, "timed out");
        assert!(event.starts_with(b"data: {\"error\":{\"code\":504,"));
        assert!(event.ends_with(b"}\n\n"));
    }

    #[test]
    fn lists_models_by_page_token() {
        let key = SecretString::from("AIzaX");
        let req = GeminiApi.model_list_request(&key, Some("tok/1"));
        assert_eq!(
            req.path_and_query,
            "/v1beta/models?pageSize=1000&pageToken=tok%2F1"
        );
        assert_eq!(
            req.headers,
            vec![("x-goog-api-key".to_string(), "AIzaX".to_string())]
        );
        let body = br#"{"models": [{"name": "models/gemini-2.5-flash", "version": "001"}, {"name": "models/gemini-2.5-pro"}], "nextPageToken": "abc"}"#;
        let page = GeminiApi.parse_model_list(body).unwrap();
        assert_eq!(page.ids, ["gemini-2.5-flash", "gemini-2.5-pro"]);
        assert_eq!(page.next.as_deref(), Some("abc"));
        assert_eq!(
            GeminiApi.parse_model_list(b"{}").unwrap(),
            ModelPage::default()
        );
    }

    #[test]
    fn the_openai_compatible_surface_uses_openai_shapes() {
        let body = r#"{"model":"models/gemini-2.5-flash","messages":[],"stream":true}"#;
        let req = TestRequest::post(
            "/v1beta/openai/chat/completions",
            &[("authorization", "Bearer whk_c")],
            body,
        );
        let info = req.inspect(&GeminiApi);
        assert_eq!(info.model.as_deref(), Some("gemini-2.5-flash"));
        assert_eq!(
            info.app_key.as_ref().map(ExposeSecret::expose_secret),
            Some("whk_c")
        );
        let up = GeminiApi.prepare(&req.proxy(), &info, &SecretString::from("AIzaStored"));
        assert_eq!(
            up.headers,
            vec![("authorization".to_string(), "Bearer AIzaStored".to_string())]
        );
        assert!(up.hide_stream_usage);
        let got = GeminiApi
            .meter_body(&info, br#"{"model":"models/gemini-2.5-flash","usage":{"prompt_tokens":4,"completion_tokens":6}}"#)
            .unwrap();
        assert_eq!(got.usage.model.as_deref(), Some("gemini-2.5-flash"));
        assert_eq!((got.usage.input_tokens, got.usage.output_tokens), (4, 6));
    }
}
