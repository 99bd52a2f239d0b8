//! The three AI providers the Hub speaks to, and everything specific to each of them.
//!
//! Each provider lives in one file behind [`ProviderApi`]; callers get the right one with
//! [`api`] and never match on provider names themselves. Headers are `(name, value)` pairs with
//! lowercase names, bodies are bytes: nothing here depends on an HTTP framework.

pub mod anthropic;
pub mod chat;
mod forward;
pub mod gemini;
mod meter;
pub mod openai;
pub mod sse;
#[cfg(test)]
mod testing;

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use chat::{Conversation, Role, Turn};
pub use forward::CLIENT_CREDENTIALS;
pub use meter::StreamMeter;

/// One of the providers the Hub can connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    Gemini,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::OpenAi, Provider::Anthropic, Provider::Gemini];

    /// The lowercase name used in URLs, JSON and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
        }
    }

    /// The colour a page draws this provider's figures in.
    pub fn colour(self) -> &'static str {
        match self {
            Provider::OpenAi => "#10a37f",
            Provider::Anthropic => "#d97757",
            Provider::Gemini => "#4285f4",
        }
    }

    /// The name a person reads on a page.
    pub fn display_name(self) -> &'static str {
        match self {
            Provider::OpenAi => "OpenAI",
            Provider::Anthropic => "Anthropic",
            Provider::Gemini => "Google Gemini",
        }
    }
}

/// One value per provider, named by provider: configuration, bindings, changes to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerProvider<T> {
    pub openai: T,
    pub anthropic: T,
    pub gemini: T,
}

impl<T> PerProvider<T> {
    /// The value for each provider from `f`.
    pub fn from_fn(mut f: impl FnMut(Provider) -> T) -> PerProvider<T> {
        PerProvider {
            openai: f(Provider::OpenAi),
            anthropic: f(Provider::Anthropic),
            gemini: f(Provider::Gemini),
        }
    }

    pub fn get(&self, provider: Provider) -> &T {
        match provider {
            Provider::OpenAi => &self.openai,
            Provider::Anthropic => &self.anthropic,
            Provider::Gemini => &self.gemini,
        }
    }

    /// Each provider with its value, in [`Provider::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Provider, &T)> {
        Provider::ALL.into_iter().map(move |p| (p, self.get(p)))
    }
}

impl<T: Serialize> Serialize for PerProvider<T> {
    /// `{"openai": …, "anthropic": …, "gemini": …}`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(Provider::ALL.len()))?;
        for (p, value) in self.iter() {
            map.serialize_entry(p.as_str(), value)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for PerProvider<Option<T>> {
    /// A provider absent from the object is `None`; a present one is `Some` of its value
    /// (so with `T = Option<String>`, `null` is `Some(None)`). Unknown names are refused.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = PerProvider<Option<T>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object keyed by openai, anthropic or gemini")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = PerProvider {
                    openai: None,
                    anthropic: None,
                    gemini: None,
                };
                while let Some(name) = map.next_key::<String>()? {
                    let p: Provider = name.parse().map_err(serde::de::Error::custom)?;
                    let value = Some(map.next_value::<T>()?);
                    match p {
                        Provider::OpenAi => out.openai = value,
                        Provider::Anthropic => out.anthropic = value,
                        Provider::Gemini => out.gemini = value,
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(Visit(std::marker::PhantomData))
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown provider `{0}`: expected openai, anthropic or gemini")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "openai" => Ok(Provider::OpenAi),
            "anthropic" => Ok(Provider::Anthropic),
            "gemini" => Ok(Provider::Gemini),
            other => Err(UnknownProvider(other.to_string())),
        }
    }
}

/// The provider-specific half of the proxy, for one provider.
pub fn api(provider: Provider) -> &'static dyn ProviderApi {
    match provider {
        Provider::OpenAi => &openai::OpenAiApi,
        Provider::Anthropic => &anthropic::AnthropicApi,
        Provider::Gemini => &gemini::GeminiApi,
    }
}

/// Everything the proxy and the connections service need to know about one provider.
pub trait ProviderApi: Send + Sync {
    fn provider(&self) -> Provider;

    /// The API versions a path may start with (`v1`; Gemini's `v1beta` too).
    fn api_versions(&self) -> &'static [&'static str];

    /// What a canonical path (from [`api_versions`](Self::api_versions) on) calls: one of the
    /// endpoints the Hub meters for this provider, or [`Endpoint::Other`].
    fn endpoint(&self, method: &str, path: &str) -> Endpoint;

    /// The app key, from wherever this provider's SDKs put it. Read before the body is.
    fn app_key(&self, headers: &[(String, String)], query: &str) -> Option<SecretString>;

    /// Request headers forwarded upstream: exact lowercase names, or prefixes ending in `-`
    /// (`x-stainless-`). Everything else is dropped; the stored key is added by
    /// [`prepare`](Self::prepare).
    fn forwarded_request_headers(&self) -> &'static [&'static str];

    /// Query parameters forwarded upstream; all others are dropped.
    fn forwarded_query(&self) -> &'static [&'static str];

    /// Response headers passed back to the app besides the common ones (content type,
    /// `retry-after`): request ids, rate-limit and processing-time headers. Same form as
    /// [`forwarded_request_headers`](Self::forwarded_request_headers).
    fn returned_response_headers(&self) -> &'static [&'static str];

    /// Reads what the app asked for: the model, streaming, limits, and the endpoint and key
    /// again (as [`endpoint`](Self::endpoint) and [`app_key`](Self::app_key) would).
    fn inspect(&self, request: &ProxyRequest<'_>) -> RequestInfo;

    /// The query, headers and body to send upstream: every client credential and hop-by-hop
    /// header removed, the stored key set in the provider's own header.
    fn prepare(
        &self,
        request: &ProxyRequest<'_>,
        info: &RequestInfo,
        stored_key: &SecretString,
    ) -> Upstream;

    /// Usage of a complete, successful (2xx) non-streamed response. `None` for endpoints that
    /// are not metered at all (model lists, anything unknown).
    fn meter_body(&self, info: &RequestInfo, body: &[u8]) -> Option<Metered>;

    /// A meter for a successful streamed response. `hide_usage` is [`Upstream::hide_stream_usage`].
    fn stream_meter(&self, info: &RequestInfo, hide_usage: bool) -> StreamMeter;

    /// Which troubleshooting hint an upstream error response deserves, if any.
    fn classify(&self, status: u16, body: &[u8]) -> Option<Trouble>;

    /// The Hub's own refusal in this provider's native error shape (send with `error.status()`).
    fn error_body(&self, error: Refusal, message: &str) -> Bytes;

    /// The same refusal as one SSE event, for a stream that already answered 200.
    /// Most providers frame it as a bare `data:` event; Anthropic names it.
    fn stream_error_event(&self, error: Refusal, message: &str) -> Bytes {
        forward::sse_event(None, &self.error_body(error, message))
    }

    /// The request that lists the models a key can use, starting at `cursor` (from
    /// [`ModelPage::next`]) or at the first page.
    fn model_list_request(&self, key: &SecretString, cursor: Option<&str>) -> ModelListRequest;

    /// One page of the provider's model list.
    fn parse_model_list(&self, body: &[u8]) -> Result<ModelPage, ParseError>;

    /// What this provider's API keys look like.
    fn key_format(&self) -> KeyFormat;

    /// A chat request in this provider's native API, for the Hub's Playground.
    fn playground_request(
        &self,
        model: &str,
        chat: &Conversation,
        max_tokens: u64,
        stream: bool,
    ) -> PlaygroundRequest;

    /// The conversation a kept chat request body asked, to ask it again; `None` for a body
    /// that is not a chat request.
    fn conversation(&self, request: &[u8]) -> Option<Conversation>;

    /// The answer's text spelled out by a kept stream's raw events; `None` when they hold
    /// no text.
    fn assemble_stream(&self, events: &[u8]) -> Option<String>;

    /// The response header this provider puts its own id for a call in, if it sends one.
    fn request_id_header(&self) -> Option<&'static str> {
        None
    }

    /// The reply text of a successful non-streamed answer.
    fn reply_text(&self, body: &[u8]) -> Option<String>;

    /// Ready-to-paste calls through the Hub at `base` with app key `key`, one per SDK.
    fn sdk_snippets(&self, base: &str, key: &str) -> Vec<Snippet>;

    /// The message of an error body in this provider's shape.
    fn error_message(&self, body: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let error = if v.is_array() {
            &v[0]["error"]
        } else {
            &v["error"]
        };
        error["message"].as_str().map(str::to_owned)
    }

    /// The Hub's own failure (a bug or a broken database), in this provider's error shape.
    fn internal_error_body(&self) -> Bytes {
        self.error_body(
            Refusal::Internal,
            "The Hub failed inside; its log has the details.",
        )
    }
}

/// What a snippet is written in; snippets are listed in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Language {
    Python,
    JavaScript,
    Shell,
}

/// One ready-to-paste call through the Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub language: Language,
    /// e.g. `Python · openai`.
    pub label: &'static str,
    pub code: String,
}

/// Whether `name` (lowercase) is in a header allowlist of exact names and `-`-ended prefixes.
pub fn header_allowed(list: &[&str], name: &str) -> bool {
    list.iter().any(|entry| {
        if entry.ends_with('-') {
            name.starts_with(entry)
        } else {
            name == *entry
        }
    })
}

/// A request the Playground sends through the gateway, in the provider's own terms.
#[derive(Debug, Clone)]
pub struct PlaygroundRequest {
    pub path: String,
    pub query: Option<String>,
    pub headers: Headers,
    pub body: Bytes,
}

/// The shape of a provider's API keys, for checking a pasted key before it is stored.
#[derive(Debug, Clone, Copy)]
pub struct KeyFormat {
    /// Accepted prefixes, longest first (the hint shows the one that matched).
    pub prefixes: &'static [&'static str],
    /// Prefixes of other providers' keys that an accepted prefix would also match.
    pub foreign_prefixes: &'static [&'static str],
    /// Exact total length, where the provider fixes it.
    pub exact_len: Option<usize>,
    /// How the format is described to a person, e.g. `sk-proj-… or sk-…`.
    pub described: &'static str,
    /// A key of this shape that the built-in emulator accepts: what demo connections use.
    pub demo_key: &'static str,
}

const MIN_KEY_LEN: usize = 20;
const MAX_KEY_LEN: usize = 512;

impl KeyFormat {
    /// Trims a pasted key (spaces, newlines) and checks it against the format. The error
    /// says what was expected and never repeats the key.
    pub fn check(&self, pasted: &str) -> Result<String, String> {
        let key = pasted.trim();
        let expected = format!("The key should look like {}.", self.described);
        if key.is_empty() {
            return Err(format!("Paste the API key. {expected}"));
        }
        if !self.prefixes.iter().any(|p| key.starts_with(p))
            || self.foreign_prefixes.iter().any(|p| key.starts_with(p))
        {
            return Err(format!(
                "This does not look like a key for this provider. {expected}"
            ));
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "The key contains spaces or characters a key never has; check that it was copied whole. {expected}"
            ));
        }
        let length_ok = match self.exact_len {
            Some(n) => key.len() == n,
            None => (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()),
        };
        if !length_ok {
            return Err(format!(
                "The key has {} characters, which is not a whole key; check that it was copied completely. {expected}",
                key.len()
            ));
        }
        Ok(key.to_string())
    }

    /// The masked form shown on pages: the prefix, an ellipsis and the last four characters.
    pub fn hint(&self, key: &str) -> String {
        let prefix = self
            .prefixes
            .iter()
            .find(|p| key.starts_with(**p))
            .copied()
            .unwrap_or("");
        let tail: String = key
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{prefix}…{tail}")
    }
}

/// Headers as `(lowercase name, value)` pairs.
pub type Headers = Vec<(String, String)>;

/// A request an app sent to the proxy, with the surface prefix (`/openai`, `/anthropic`,
/// `/gemini`) already removed from the path.
#[derive(Debug, Clone, Copy)]
pub struct ProxyRequest<'a> {
    pub method: &'a str,
    /// As called, e.g. `/v1/chat/completions` or `/v1beta/models/gemini-2.5-flash:generateContent`.
    pub path: &'a str,
    /// The raw query string without `?` (empty when there is none).
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a Bytes,
}

/// What kind of call a request is; also the `endpoint` of a usage record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    ChatCompletions,
    Responses,
    Embeddings,
    Messages,
    CountTokens,
    GenerateContent,
    StreamGenerateContent,
    EmbedContent,
    ListModels,
    /// OpenAI's stored responses: retrieve or delete one by id.
    StoredResponse,
    /// Gemini's explicit context caches: create, list, get, update, delete.
    CachedContents,
    Other,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Responses => "responses",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::GenerateContent => "generate_content",
            Endpoint::StreamGenerateContent => "stream_generate_content",
            Endpoint::EmbedContent => "embed_content",
            Endpoint::ListModels => "list_models",
            Endpoint::StoredResponse => "stored_response",
            Endpoint::CachedContents => "cached_contents",
            Endpoint::Other => "other",
        }
    }

    /// Whether a usage record's endpoint name is a chat call: a conversation in, text out.
    pub fn names_chat(name: &str) -> bool {
        [
            Endpoint::ChatCompletions,
            Endpoint::Responses,
            Endpoint::Messages,
            Endpoint::GenerateContent,
            Endpoint::StreamGenerateContent,
        ]
        .iter()
        .any(|e| e.as_str() == name)
    }

    /// Whether calls to this endpoint cost money (and so need a priced model and a hold).
    pub fn is_billable(self) -> bool {
        match self {
            Endpoint::ChatCompletions
            | Endpoint::Responses
            | Endpoint::Embeddings
            | Endpoint::Messages
            | Endpoint::GenerateContent
            | Endpoint::StreamGenerateContent
            | Endpoint::EmbedContent => true,
            Endpoint::CountTokens
            | Endpoint::ListModels
            | Endpoint::StoredResponse
            | Endpoint::CachedContents
            | Endpoint::Other => false,
        }
    }

    /// Whether the Hub knows what calls to this endpoint cost (or that they are free): the
    /// only endpoints a managed connection forwards.
    pub fn is_metered(self) -> bool {
        self != Endpoint::Other
    }

    fn is_embedding(self) -> bool {
        matches!(self, Endpoint::Embeddings | Endpoint::EmbedContent)
    }
}

/// What the proxy learns from an app's request before forwarding it.
#[derive(Debug)]
pub struct RequestInfo {
    pub endpoint: Endpoint,
    /// The app key from wherever this provider's SDKs put it.
    pub app_key: Option<SecretString>,
    /// The requested model, without Gemini's `models/` prefix. `None` when the body names none.
    pub model: Option<String>,
    pub stream: bool,
    /// The output limit the request sets, if it sets one.
    pub max_output_tokens: Option<u64>,
    /// Input tokens for the credit hold and for cut streams: the body's bytes / 4, rounded up.
    /// JSON syntax and field names count too, so this errs high for text; base64 images make it
    /// err much higher, which only makes the hold larger.
    pub input_tokens_estimate: u64,
}

/// What to send upstream. The path is the one the app called.
pub struct Upstream {
    /// The query to send (without `?`; empty for none).
    pub query: String,
    pub headers: Headers,
    pub body: Bytes,
    /// The Hub asked for stream usage the app did not ask for: the meter must hide it.
    pub hide_stream_usage: bool,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Upstream")
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .field("hide_stream_usage", &self.hide_stream_usage)
            .finish_non_exhaustive()
    }
}

/// Token counts of one request, with one meaning for every provider, so cost has one formula.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// The model id the response named (dated id, Gemini `modelVersion`), if it named one.
    pub model: Option<String>,
    /// All prompt tokens: including cache reads and cache writes, and Gemini tool-use prompts.
    pub input_tokens: u64,
    /// The part of `input_tokens` read from a cache.
    pub cached_input_tokens: u64,
    /// The part of `input_tokens` written to a 5-minute cache (Anthropic).
    pub cache_write_5m_tokens: u64,
    /// The part of `input_tokens` written to a 1-hour cache (Anthropic).
    pub cache_write_1h_tokens: u64,
    /// All output tokens, including reasoning (Gemini: candidates + thoughts).
    pub output_tokens: u64,
    /// The part of `output_tokens` spent on reasoning, where the provider says.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Cache writes of both durations (the usage record's `cache_write_tokens`).
    pub fn cache_write_tokens(&self) -> u64 {
        self.cache_write_5m_tokens
            .saturating_add(self.cache_write_1h_tokens)
    }

    /// Input tokens at the plain input rate: neither cache reads nor cache writes.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cached_input_tokens)
            .saturating_sub(self.cache_write_tokens())
    }
}

/// The usage of one response and how much of it the provider actually reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metered {
    pub usage: Usage,
    /// The response reached its normal end (final event, `[DONE]`, `finishReason`).
    pub complete: bool,
    /// Some counts are the Hub's estimate, not the provider's: record it `estimated`.
    pub estimated: bool,
    /// The stream carried an error event from the provider.
    pub upstream_error: bool,
}

/// A page of model ids from a provider's model list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelPage {
    /// Ids as apps call them (Gemini's `models/` prefix removed).
    pub ids: Vec<String>,
    /// Pass to [`ProviderApi::model_list_request`] for the next page; `None` on the last.
    pub next: Option<String>,
}

/// How to ask a provider for its model list (a `GET`).
#[derive(Clone)]
pub struct ModelListRequest {
    /// Appended to the provider's base URL, e.g. `/v1/models?limit=1000`.
    pub path_and_query: String,
    /// Includes the key in the provider's auth header.
    pub headers: Headers,
}

impl fmt::Debug for ModelListRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelListRequest")
            .field("path_and_query", &self.path_and_query)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the provider's answer is not in the shape expected: {0}")]
pub struct ParseError(#[from] serde_json::Error);

/// The troubleshooting hint a connection shows for its last error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trouble {
    InvalidApiKey,
    InsufficientQuota,
    RateLimitExceeded,
    ModelNotFound,
    ConnectionFailed,
    InsufficientCredits,
}

impl Trouble {
    pub const ALL: [Trouble; 6] = [
        Trouble::InvalidApiKey,
        Trouble::InsufficientQuota,
        Trouble::RateLimitExceeded,
        Trouble::ModelNotFound,
        Trouble::ConnectionFailed,
        Trouble::InsufficientCredits,
    ];

    /// The title a person reads.
    pub fn title(self) -> &'static str {
        match self {
            Trouble::InvalidApiKey => "Invalid API key",
            Trouble::InsufficientQuota => "Insufficient quota",
            Trouble::RateLimitExceeded => "Rate limit exceeded",
            Trouble::ModelNotFound => "Model not found",
            Trouble::ConnectionFailed => "Connection Failed",
            Trouble::InsufficientCredits => "Insufficient Credits",
        }
    }

    /// A stable code for storage and JSON.
    pub fn code(self) -> &'static str {
        match self {
            Trouble::InvalidApiKey => "invalid_api_key",
            Trouble::InsufficientQuota => "insufficient_quota",
            Trouble::RateLimitExceeded => "rate_limit_exceeded",
            Trouble::ModelNotFound => "model_not_found",
            Trouble::ConnectionFailed => "connection_failed",
            Trouble::InsufficientCredits => "insufficient_credits",
        }
    }

    pub fn from_code(code: &str) -> Option<Trouble> {
        Trouble::ALL.into_iter().find(|t| t.code() == code)
    }

    /// What to do about it, in plain words.
    pub fn fix(self) -> &'static str {
        match self {
            Trouble::InvalidApiKey => {
                "The provider rejected this key. Check that the whole key was copied, with no \
                 spaces, that it has the provider's format, and that it was not revoked; then \
                 rotate it here."
            }
            Trouble::InsufficientQuota => {
                "The provider account has no credit or quota left. Add credit or set up billing \
                 with the provider, then try again."
            }
            Trouble::RateLimitExceeded => {
                "The provider is limiting how fast this key may call it. Wait a moment and try \
                 again, and check the rate limits of your plan with the provider."
            }
            Trouble::ModelNotFound => {
                "The provider does not offer this model to this key. Check the key's model \
                 access with the provider, or pick one of the models Verify lists."
            }
            Trouble::ConnectionFailed => {
                "The Hub could not reach the provider. Check the network connection and the \
                 provider base URL in the settings, then try again."
            }
            Trouble::InsufficientCredits => {
                "The Hub's credit balance cannot cover this request. Add credits in Usage & \
                 Billing."
            }
        }
    }

    /// The hint for one of the Hub's own refusals, where there is one.
    pub fn for_hub_error(error: Refusal) -> Option<Trouble> {
        match error {
            Refusal::UpstreamConnectionFailed | Refusal::UpstreamTimeout => {
                Some(Trouble::ConnectionFailed)
            }
            Refusal::InsufficientCredits => Some(Trouble::InsufficientCredits),
            Refusal::HubLocked
            | Refusal::InvalidAppKey
            | Refusal::ConnectorRevoked
            | Refusal::AppBudgetExceeded
            | Refusal::AppRateLimited
            | Refusal::ModelNotAvailable
            | Refusal::EndpointNotSupported
            | Refusal::RequestTooLarge
            | Refusal::BadRequest
            | Refusal::Internal => None,
        }
    }
}

/// The reasons the proxy itself refuses a request (DESIGN §2, "Errors the proxy itself raises").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    HubLocked,
    InvalidAppKey,
    ConnectorRevoked,
    InsufficientCredits,
    AppBudgetExceeded,
    AppRateLimited,
    ModelNotAvailable,
    EndpointNotSupported,
    UpstreamConnectionFailed,
    UpstreamTimeout,
    RequestTooLarge,
    BadRequest,
    /// Not a refusal but the Hub's own failure; never in [`Refusal::ALL`].
    Internal,
}

impl Refusal {
    pub const ALL: [Refusal; 12] = [
        Refusal::HubLocked,
        Refusal::InvalidAppKey,
        Refusal::ConnectorRevoked,
        Refusal::InsufficientCredits,
        Refusal::AppBudgetExceeded,
        Refusal::AppRateLimited,
        Refusal::ModelNotAvailable,
        Refusal::EndpointNotSupported,
        Refusal::UpstreamConnectionFailed,
        Refusal::UpstreamTimeout,
        Refusal::RequestTooLarge,
        Refusal::BadRequest,
    ];

    /// The HTTP status to answer with.
    pub fn status(self) -> u16 {
        match self {
            Refusal::HubLocked => 503,
            Refusal::InvalidAppKey => 401,
            Refusal::ConnectorRevoked => 403,
            Refusal::InsufficientCredits | Refusal::AppBudgetExceeded => 402,
            Refusal::AppRateLimited => 429,
            Refusal::ModelNotAvailable | Refusal::EndpointNotSupported => 404,
            Refusal::UpstreamConnectionFailed => 502,
            Refusal::UpstreamTimeout => 504,
            Refusal::RequestTooLarge => 413,
            Refusal::BadRequest => 400,
            Refusal::Internal => 500,
        }
    }

    /// The stable code apps and tests see.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::HubLocked => "hub_locked",
            Refusal::InvalidAppKey => "invalid_app_key",
            Refusal::ConnectorRevoked => "connector_revoked",
            Refusal::InsufficientCredits => "insufficient_credits",
            Refusal::AppBudgetExceeded => "app_budget_exceeded",
            Refusal::AppRateLimited => "app_rate_limited",
            Refusal::ModelNotAvailable => "model_not_available",
            Refusal::EndpointNotSupported => "endpoint_not_supported",
            Refusal::UpstreamConnectionFailed => "upstream_connection_failed",
            Refusal::UpstreamTimeout => "upstream_timeout",
            Refusal::RequestTooLarge => "request_too_large",
            Refusal::BadRequest => "bad_request",
            Refusal::Internal => "internal",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use testing::TestRequest;

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>().ok(), Some(p));
        }
        assert!("azure".parse::<Provider>().is_err());
    }

    #[test]
    fn per_provider_values_are_named_by_provider() {
        let v = PerProvider::from_fn(|p| p.as_str().len());
        assert_eq!(*v.get(Provider::Anthropic), 9);
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"openai": 6, "anthropic": 9, "gemini": 6})
        );
        let changes: PerProvider<Option<Option<String>>> =
            serde_json::from_str(r#"{"openai": "conn-1", "gemini": null}"#).unwrap();
        assert_eq!(changes.openai, Some(Some("conn-1".to_string())));
        assert_eq!(changes.anthropic, None, "absent: unchanged");
        assert_eq!(changes.gemini, Some(None), "null: no access");
        assert!(serde_json::from_str::<PerProvider<Option<u8>>>(r#"{"azure": 1}"#).is_err());
    }

    #[test]
    fn each_provider_meters_exactly_its_endpoint_table() {
        use Endpoint::*;
        let cases = [
            (
                Provider::OpenAi,
                "POST",
                "/v1/chat/completions",
                ChatCompletions,
            ),
            (Provider::OpenAi, "GET", "/v1/chat/completions", Other),
            (Provider::OpenAi, "POST", "/v1/responses", Responses),
            (
                Provider::OpenAi,
                "GET",
                "/v1/responses/resp_1",
                StoredResponse,
            ),
            (
                Provider::OpenAi,
                "DELETE",
                "/v1/responses/resp_1",
                StoredResponse,
            ),
            (
                Provider::OpenAi,
                "GET",
                "/v1/responses/resp_1/input_items",
                Other,
            ),
            (Provider::OpenAi, "POST", "/v1/embeddings", Embeddings),
            (Provider::OpenAi, "GET", "/v1/models", ListModels),
            (Provider::OpenAi, "GET", "/v1/models/gpt-4o", ListModels),
            (Provider::OpenAi, "DELETE", "/v1/models/ft:gpt-4o:x", Other),
            (Provider::OpenAi, "POST", "/v1/completions", Other),
            (Provider::OpenAi, "POST", "/v1/images/generations", Other),
            (Provider::OpenAi, "POST", "/v1/files", Other),
            (Provider::OpenAi, "POST", "/v1/batches", Other),
            (Provider::Anthropic, "POST", "/v1/messages", Messages),
            (
                Provider::Anthropic,
                "POST",
                "/v1/messages/count_tokens",
                CountTokens,
            ),
            (Provider::Anthropic, "POST", "/v1/messages/batches", Other),
            (Provider::Anthropic, "GET", "/v1/models", ListModels),
            (
                Provider::Anthropic,
                "GET",
                "/v1/models/claude-sonnet-4-5",
                ListModels,
            ),
            (Provider::Anthropic, "POST", "/v1/complete", Other),
            (
                Provider::Gemini,
                "POST",
                "/v1beta/models/gemini-2.5-flash:generateContent",
                GenerateContent,
            ),
            (
                Provider::Gemini,
                "POST",
                "/v1/models/gemini-2.5-flash:streamGenerateContent",
                StreamGenerateContent,
            ),
            (
                Provider::Gemini,
                "POST",
                "/v1beta/models/gemini-2.5-flash:countTokens",
                CountTokens,
            ),
            (
                Provider::Gemini,
                "POST",
                "/v1beta/models/text-embedding-004:embedContent",
                EmbedContent,
            ),
            (
                Provider::Gemini,
                "POST",
                "/v1beta/models/text-embedding-004:batchEmbedContents",
                EmbedContent,
            ),
            (
                Provider::Gemini,
                "GET",
                "/v1beta/models/gemini-2.5-flash:generateContent",
                Other,
            ),
            (
                Provider::Gemini,
                "POST",
                "/v1beta/models/gemini-2.5-flash:predict",
                Other,
            ),
            (Provider::Gemini, "GET", "/v1beta/models", ListModels),
            (
                Provider::Gemini,
                "GET",
                "/v1beta/models/gemini-2.5-flash",
                ListModels,
            ),
            (
                Provider::Gemini,
                "POST",
                "/v1beta/cachedContents",
                CachedContents,
            ),
            (
                Provider::Gemini,
                "DELETE",
                "/v1beta/cachedContents/c1",
                CachedContents,
            ),
            (Provider::Gemini, "POST", "/v1beta/files", Other),
            (
                Provider::Gemini,
                "POST",
                "/v1beta/tunedModels/x:generateContent",
                Other,
            ),
            (
                Provider::Gemini,
                "POST",
                "/v1beta/openai/chat/completions",
                ChatCompletions,
            ),
        ];
        for (provider, method, path, endpoint) in cases {
            assert_eq!(
                api(provider).endpoint(method, path),
                endpoint,
                "{provider} {method} {path}"
            );
        }
    }

    #[test]
    fn each_provider_has_its_api() {
        for p in Provider::ALL {
            assert_eq!(api(p).provider(), p);
        }
    }

    /// The app key in every place any SDK puts one; none of it may reach the provider.
    fn request_carrying_the_app_key_everywhere(path: &'static str) -> TestRequest {
        let key = "whk_abcd1234_0123456789abcdef0123456789abcdef";
        TestRequest {
            method: "POST",
            path,
            query: "alt=sse&key=whk_abcd1234_0123456789abcdef0123456789abcdef",
            headers: [
                ("authorization", format!("Bearer {key}")),
                ("x-api-key", key.into()),
                ("x-goog-api-key", key.into()),
                ("cookie", format!("whk_session={key}")),
                ("proxy-authorization", format!("Basic {key}")),
                ("content-type", "application/json".into()),
            ]
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
            body: Bytes::from_static(br#"{"model":"m","stream":true}"#),
        }
    }

    #[test]
    fn no_client_credential_reaches_the_provider() {
        let cases = [
            (
                Provider::OpenAi,
                "/v1/chat/completions",
                "authorization",
                "Bearer stored-key",
            ),
            (
                Provider::Anthropic,
                "/v1/messages",
                "x-api-key",
                "stored-key",
            ),
            (
                Provider::Gemini,
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                "x-goog-api-key",
                "stored-key",
            ),
        ];
        for (provider, path, auth_header, auth_value) in cases {
            let req = request_carrying_the_app_key_everywhere(path);
            let api = api(provider);
            let info = req.inspect(api);
            assert!(info.app_key.is_some(), "{provider}");
            let up = api.prepare(&req.proxy(), &info, &SecretString::from("stored-key"));
            for (name, value) in &up.headers {
                assert!(
                    !value.contains("whk_"),
                    "{provider}: {name} leaks the app key"
                );
            }
            assert!(
                !up.query.contains("whk_"),
                "{provider}: the query leaks the app key"
            );
            let with_key: Vec<&(String, String)> = up
                .headers
                .iter()
                .filter(|(_, v)| v.contains("stored-key"))
                .collect();
            assert_eq!(
                with_key,
                [&(auth_header.to_string(), auth_value.to_string())],
                "{provider}"
            );
        }
    }

    #[test]
    fn hub_errors_have_their_contract_statuses() {
        let expected = [
            ("hub_locked", 503),
            ("invalid_app_key", 401),
            ("connector_revoked", 403),
            ("insufficient_credits", 402),
            ("app_budget_exceeded", 402),
            ("app_rate_limited", 429),
            ("model_not_available", 404),
            ("endpoint_not_supported", 404),
            ("upstream_connection_failed", 502),
            ("upstream_timeout", 504),
            ("request_too_large", 413),
            ("bad_request", 400),
        ];
        let actual: Vec<(&str, u16)> = Refusal::ALL
            .iter()
            .map(|e| (e.as_str(), e.status()))
            .collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn every_hub_error_names_its_code_in_every_shape() {
        for provider in Provider::ALL {
            for error in Refusal::ALL {
                let body: serde_json::Value =
                    serde_json::from_slice(&api(provider).error_body(error, "What to do next."))
                        .unwrap();
                let code = match provider {
                    Provider::OpenAi => body["error"]["code"].as_str().map(str::to_owned),
                    Provider::Anthropic => body["error"]["details"]["error_code"]
                        .as_str()
                        .map(str::to_owned),
                    Provider::Gemini => body["error"]["details"][0]["reason"]
                        .as_str()
                        .map(str::to_ascii_lowercase),
                };
                assert_eq!(code.as_deref(), Some(error.as_str()), "{provider} {error}");
                assert_eq!(body["error"]["message"], "What to do next.");
                let event = api(provider).stream_error_event(error, "x");
                assert!(event.ends_with(b"\n\n") && event.windows(5).any(|w| w == b"data:"));
            }
        }
    }

    #[test]
    fn troubles_read_as_the_pages_show_them() {
        let titles: Vec<&str> = Trouble::ALL.iter().map(|t| t.title()).collect();
        assert_eq!(
            titles,
            [
                "Invalid API key",
                "Insufficient quota",
                "Rate limit exceeded",
                "Model not found",
                "Connection Failed",
                "Insufficient Credits"
            ]
        );
        for t in Trouble::ALL {
            assert_eq!(Trouble::from_code(t.code()), Some(t));
            assert!(!t.fix().is_empty());
        }
        assert!(
            Trouble::InsufficientCredits
                .fix()
                .contains("Usage & Billing")
        );
        assert_eq!(
            Trouble::for_hub_error(Refusal::UpstreamTimeout),
            Some(Trouble::ConnectionFailed)
        );
        assert_eq!(
            Trouble::for_hub_error(Refusal::InsufficientCredits),
            Some(Trouble::InsufficientCredits)
        );
        assert_eq!(Trouble::for_hub_error(Refusal::BadRequest), None);
    }

    #[test]
    fn usage_parts_never_underflow() {
        let u = Usage {
            input_tokens: 10,
            cached_input_tokens: 8,
            cache_write_5m_tokens: 5,
            ..Usage::default()
        };
        assert_eq!(u.uncached_input_tokens(), 0);
        assert_eq!(u.cache_write_tokens(), 5);
    }
}
