//! The offline stand-in for the OpenAI, Anthropic and Gemini APIs.
//!
//! Plain Rust with no HTTP server: a request goes in as an [`EmuRequest`] and comes out as an
//! [`EmuResponse`] whose body is whole, a list of paced stream events, or never answered. The
//! `web` layer turns these into real HTTP. Each provider lives in its own file behind
//! [`EmulatedApi`]; this file only checks keys, applies faults and timing, and keeps a short
//! record of what arrived.

pub mod anthropic;
pub mod cache;
pub mod faults;
pub mod gemini;
pub mod media;
pub mod openai;
pub mod schema;
pub mod stops;
pub mod text;
pub mod tools;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::catalog::Catalog;
use crate::providers::Provider;
use faults::{DROP_AFTER_EVENTS, FAULT_HEADER, Fault, KeyStatus, SLOW_BODY_MS, SLOW_EVENT_MS};

/// How many received requests are kept for inspection.
pub const RECEIVED_CAPACITY: usize = 100;

/// Timing and serving options. All zero means "as fast as possible".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmulatorOptions {
    /// Delay before the first byte of every answer.
    pub latency_ms: u64,
    /// Pace of streamed tokens; 0 sends them all at once.
    pub tokens_per_second: u32,
    /// HTTP worker threads for the standalone server; 0 means one per core.
    pub workers: usize,
}

/// A request as the emulator sees it. Header names are lowercase.
#[derive(Debug, Clone, Default)]
pub struct EmuRequest {
    pub method: String,
    /// The path from the API root, e.g. `/v1/chat/completions`.
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl EmuRequest {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter called `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| percent_decode(v))
        })
    }

    /// The bearer token of the `authorization` header.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }

    fn is(&self, method: &str) -> bool {
        self.method.eq_ignore_ascii_case(method)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok()),
            _ => None,
        };
        match (decoded, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An answer: status, headers, and a body.
#[derive(Debug, Clone)]
pub struct EmuResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Wait this long before sending anything.
    pub first_byte_delay: Duration,
    pub body: EmuBody,
}

#[derive(Debug, Clone)]
pub enum EmuBody {
    Full(Bytes),
    Stream(EmuStream),
    /// Never answer (the `timeout` fault).
    Never,
}

/// Stream events, each sent as its own chunk after its delay.
#[derive(Debug, Clone, Default)]
pub struct EmuStream {
    pub events: Vec<Bytes>,
    /// The wait before each event; missing entries mean no wait.
    pub delays: Vec<Duration>,
    /// Cut the connection (no clean end) after this many events.
    pub drop_after: Option<usize>,
}

/// One request as it arrived, for tests that check which headers reached the emulator.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedRequest {
    pub provider: Provider,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// Headers that carry credentials: never shown to a caller from another machine.
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "cookie",
];

impl ReceivedRequest {
    /// The same record with every credential (auth headers, a `key` query parameter)
    /// replaced by `[redacted]`.
    pub fn redacted(&self) -> ReceivedRequest {
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| {
                let secret = CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str());
                let value = if secret {
                    "[redacted]".to_string()
                } else {
                    value.clone()
                };
                (name.clone(), value)
            })
            .collect();
        let query = self.query.as_deref().map(|q| {
            q.split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("key") => format!("{k}=[redacted]"),
                    _ => pair.to_string(),
                })
                .collect::<Vec<_>>()
                .join("&")
        });
        ReceivedRequest {
            headers,
            query,
            ..self.clone()
        }
    }
}

/// The errors every emulated provider can answer with, each in its own wire shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    MissingKey,
    InvalidKey(String),
    NoQuota,
    RateLimited,
    ServerError,
    Overloaded,
    ModelNotFound(String),
    BadRequest(String),
    /// A 400 that names the request field at fault.
    Invalid {
        param: String,
        message: String,
    },
    NotFound,
}

impl ApiError {
    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

/// A successful answer before timing and faults are applied.
#[derive(Debug)]
pub enum Reply {
    Json(Vec<u8>),
    Sse(Vec<SseEvent>),
}

/// One server-sent event and the tokens it carries (for pacing).
#[derive(Debug)]
pub struct SseEvent {
    pub bytes: Bytes,
    pub tokens: u32,
}

impl SseEvent {
    /// `data: <json>` framing (OpenAI Chat, Gemini).
    pub fn data(json: &Value, tokens: u32) -> SseEvent {
        SseEvent {
            bytes: Bytes::from(format!("data: {json}\n\n")),
            tokens,
        }
    }

    /// `event: <name>` plus `data: <json>` framing (Anthropic, OpenAI Responses).
    pub fn named(name: &str, json: &Value, tokens: u32) -> SseEvent {
        SseEvent {
            bytes: Bytes::from(format!("event: {name}\ndata: {json}\n\n")),
            tokens,
        }
    }

    pub fn raw(text: &'static str) -> SseEvent {
        SseEvent {
            bytes: Bytes::from_static(text.as_bytes()),
            tokens: 0,
        }
    }
}

/// Per-request helpers shared by the providers.
pub struct Cx<'a> {
    pub ids: &'a IdGen,
    pub now: i64,
}

/// Everything one provider's emulation knows: its routes, key header and error shapes.
pub trait EmulatedApi: Send + Sync {
    /// Checks headers the provider requires before it even looks at the key.
    fn check_request(&self, _req: &EmuRequest) -> Result<(), ApiError> {
        Ok(())
    }
    fn key_status(&self, req: &EmuRequest) -> KeyStatus;
    fn route(&self, req: &EmuRequest, cx: &Cx) -> Result<Reply, ApiError>;
    /// The status, extra headers and body of an error.
    fn error(&self, err: &ApiError, cx: &Cx) -> (u16, Vec<(String, String)>, Value);
    /// Headers every answer carries (request ids and the like).
    fn common_headers(&self, cx: &Cx) -> Vec<(String, String)>;
    /// Headers only successful answers carry (the rate-limit state, as the real services send).
    fn success_headers(&self, _cx: &Cx) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The error event a stream ends with under the `error_mid_stream` fault.
    fn mid_stream_error(&self, req: &EmuRequest, cx: &Cx) -> SseEvent;
    fn json_content_type(&self) -> &'static str;
    fn sse_content_type(&self) -> &'static str;
}

/// Fresh ids: a random start mixed with a counter, so they differ per process and request.
#[derive(Debug)]
pub struct IdGen {
    base: u64,
    counter: AtomicU64,
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl IdGen {
    fn new() -> IdGen {
        let mut seed = [0u8; 8];
        let base = match getrandom::fill(&mut seed) {
            Ok(()) => u64::from_le_bytes(seed),
            Err(_) => chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64,
        };
        IdGen {
            base,
            counter: AtomicU64::new(0),
        }
    }

    /// `prefix` followed by `len` base-62 characters.
    pub fn next(&self, prefix: &str, len: usize) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut rng = text::Rng::new(self.base ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut id = String::with_capacity(prefix.len() + len);
        id.push_str(prefix);
        for _ in 0..len {
            id.push(BASE62[rng.below(62) as usize] as char);
        }
        id
    }
}

/// The emulator: three provider APIs, timing options and the record of received requests.
pub struct Emulator {
    options: EmulatorOptions,
    openai: openai::OpenAiApi,
    anthropic: anthropic::AnthropicApi,
    gemini: gemini::GeminiApi,
    ids: IdGen,
    received: Mutex<VecDeque<ReceivedRequest>>,
}

impl Emulator {
    pub fn new(options: EmulatorOptions) -> Emulator {
        let catalog = Catalog::embedded();
        Emulator {
            options,
            openai: openai::OpenAiApi::new(catalog),
            anthropic: anthropic::AnthropicApi::new(catalog),
            gemini: gemini::GeminiApi::new(catalog),
            ids: IdGen::new(),
            received: Mutex::new(VecDeque::with_capacity(RECEIVED_CAPACITY)),
        }
    }

    pub fn options(&self) -> EmulatorOptions {
        self.options
    }

    /// Answers one request as `provider` would.
    pub fn handle(&self, provider: Provider, req: EmuRequest) -> EmuResponse {
        self.record(provider, &req);
        let api = self.api(provider);
        let cx = Cx {
            ids: &self.ids,
            now: chrono::Utc::now().timestamp(),
        };
        let fault = req.header(FAULT_HEADER).and_then(Fault::parse);
        match answer(api, &req, &cx, fault) {
            Ok(_) if fault == Some(Fault::Timeout) => self.never(),
            Ok(Reply::Json(_)) if fault == Some(Fault::ErrorMidStream) => {
                self.error_response(api, &cx, &ApiError::Overloaded)
            }
            Ok(Reply::Sse(mut events)) if fault == Some(Fault::ErrorMidStream) => {
                events.truncate(DROP_AFTER_EVENTS);
                events.push(api.mid_stream_error(&req, &cx));
                self.shape(api, &cx, Reply::Sse(events), fault)
            }
            Ok(reply) => self.shape(api, &cx, reply, fault),
            Err(err) => self.error_response(api, &cx, &err),
        }
    }

    /// The requests received so far, oldest first (at most [`RECEIVED_CAPACITY`]).
    pub fn received(&self) -> Vec<ReceivedRequest> {
        match self.received.lock() {
            Ok(list) => list.iter().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().iter().cloned().collect(),
        }
    }

    fn api(&self, provider: Provider) -> &dyn EmulatedApi {
        match provider {
            Provider::OpenAi => &self.openai,
            Provider::Anthropic => &self.anthropic,
            Provider::Gemini => &self.gemini,
        }
    }

    fn record(&self, provider: Provider, req: &EmuRequest) {
        let entry = ReceivedRequest {
            provider,
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            headers: req.headers.clone(),
        };
        let mut list = match self.received.lock() {
            Ok(list) => list,
            Err(poisoned) => poisoned.into_inner(),
        };
        if list.len() >= RECEIVED_CAPACITY {
            list.pop_front();
        }
        list.push_back(entry);
    }

    fn latency(&self) -> Duration {
        Duration::from_millis(self.options.latency_ms)
    }

    fn never(&self) -> EmuResponse {
        EmuResponse {
            status: 200,
            headers: Vec::new(),
            first_byte_delay: Duration::ZERO,
            body: EmuBody::Never,
        }
    }

    fn error_response(&self, api: &dyn EmulatedApi, cx: &Cx, err: &ApiError) -> EmuResponse {
        let (status, extra, body) = api.error(err, cx);
        let mut headers = api.common_headers(cx);
        headers.push(("content-type".into(), api.json_content_type().into()));
        headers.extend(extra);
        EmuResponse {
            status,
            headers,
            first_byte_delay: self.latency(),
            body: EmuBody::Full(Bytes::from(body.to_string())),
        }
    }

    /// Applies latency, token pacing and the stream faults to a successful reply.
    fn shape(
        &self,
        api: &dyn EmulatedApi,
        cx: &Cx,
        reply: Reply,
        fault: Option<Fault>,
    ) -> EmuResponse {
        let mut headers = api.common_headers(cx);
        headers.extend(api.success_headers(cx));
        let mut first_byte_delay = self.latency();
        let body = match reply {
            Reply::Json(body) => {
                headers.push(("content-type".into(), api.json_content_type().into()));
                match fault {
                    Some(Fault::DropMidStream) => EmuBody::Stream(half_then_cut(body)),
                    Some(Fault::Slow) => {
                        first_byte_delay += Duration::from_millis(SLOW_BODY_MS);
                        EmuBody::Full(Bytes::from(body))
                    }
                    _ => EmuBody::Full(Bytes::from(body)),
                }
            }
            Reply::Sse(events) => {
                headers.push(("content-type".into(), api.sse_content_type().into()));
                headers.push(("cache-control".into(), "no-cache".into()));
                EmuBody::Stream(self.pace(events, fault))
            }
        };
        EmuResponse {
            status: 200,
            headers,
            first_byte_delay,
            body,
        }
    }

    fn pace(&self, events: Vec<SseEvent>, fault: Option<Fault>) -> EmuStream {
        let tps = u64::from(self.options.tokens_per_second);
        let delays = match fault {
            Some(Fault::Slow) => vec![Duration::from_millis(SLOW_EVENT_MS); events.len()],
            _ if tps > 0 => events
                .iter()
                .map(|e| Duration::from_micros(u64::from(e.tokens) * 1_000_000 / tps))
                .collect(),
            _ => Vec::new(),
        };
        let drop_after = (fault == Some(Fault::DropMidStream))
            .then_some(DROP_AFTER_EVENTS.min(events.len().saturating_sub(1)));
        EmuStream {
            events: events.into_iter().map(|e| e.bytes).collect(),
            delays,
            drop_after,
        }
    }
}

/// A whole JSON body sent as two chunks with the connection cut after the first.
fn half_then_cut(body: Vec<u8>) -> EmuStream {
    let mut first = Bytes::from(body);
    let _rest = first.split_off(first.len() / 2);
    EmuStream {
        events: vec![first],
        delays: Vec::new(),
        drop_after: Some(1),
    }
}

/// Runs the checks every provider shares, then the provider's own routing.
fn answer(
    api: &dyn EmulatedApi,
    req: &EmuRequest,
    cx: &Cx,
    fault: Option<Fault>,
) -> Result<Reply, ApiError> {
    api.check_request(req)?;
    match api.key_status(req) {
        KeyStatus::Missing => return Err(ApiError::MissingKey),
        KeyStatus::Invalid(key) => return Err(ApiError::InvalidKey(key)),
        KeyStatus::NoQuota => return Err(ApiError::NoQuota),
        KeyStatus::Accepted => {}
    }
    match fault {
        Some(Fault::RateLimit) => Err(ApiError::RateLimited),
        Some(Fault::InsufficientQuota) => Err(ApiError::NoQuota),
        Some(Fault::ServerError) => Err(ApiError::ServerError),
        Some(Fault::Overloaded) => Err(ApiError::Overloaded),
        Some(Fault::Timeout) => Ok(Reply::Json(Vec::new())),
        Some(Fault::DropMidStream | Fault::Slow | Fault::ErrorMidStream) | None => {
            api.route(req, cx)
        }
    }
}

/// Which provider a request to the standalone server (all APIs at `/`) is meant for.
pub fn detect_provider(path: &str, query: Option<&str>, headers: &[(String, String)]) -> Provider {
    let has = |name: &str| headers.iter().any(|(n, _)| n == name);
    let key_in_query = query.is_some_and(|q| q.split('&').any(|p| p.starts_with("key=")));
    let gemini_path =
        path.starts_with("/v1beta/") || path.rsplit('/').next().is_some_and(|s| s.contains(':'));
    if has("x-goog-api-key") || key_in_query || gemini_path {
        Provider::Gemini
    } else if has("anthropic-version") || has("x-api-key") {
        Provider::Anthropic
    } else {
        Provider::OpenAi
    }
}

/// Parses a JSON request body; the provider turns the error into its own shape.
pub fn parse_json(req: &EmuRequest) -> Result<Value, ApiError> {
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::BadRequest(format!("The request body is not valid JSON: {e}")))
}

pub fn json_bytes(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// `YYYY-MM-DD` → unix seconds at midnight UTC (0 when malformed).
pub fn date_to_unix(date: &str) -> i64 {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp())
        .unwrap_or(0)
}

/// A deterministic unit vector for `input`, `dims` long.
pub fn embedding(input: &str, dims: usize) -> Vec<f32> {
    let mut rng = text::Rng::new(text::seed_of(input.as_bytes()));
    let mut v: Vec<f32> = (0..dims).map(|_| rng.unit()).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn detects_providers_on_the_shared_root() {
        assert_eq!(
            detect_provider("/v1/models", None, &h(&[("x-goog-api-key", "AIza")])),
            Provider::Gemini
        );
        assert_eq!(
            detect_provider("/v1/models", Some("key=AIza"), &[]),
            Provider::Gemini
        );
        assert_eq!(
            detect_provider("/v1beta/models", None, &[]),
            Provider::Gemini
        );
        assert_eq!(
            detect_provider("/v1/models/gemini-2.5-flash:generateContent", None, &[]),
            Provider::Gemini
        );
        assert_eq!(
            detect_provider(
                "/v1/messages",
                None,
                &h(&[("anthropic-version", "2023-06-01")])
            ),
            Provider::Anthropic
        );
        assert_eq!(
            detect_provider("/v1/messages", None, &h(&[("x-api-key", "k")])),
            Provider::Anthropic
        );
        assert_eq!(
            detect_provider(
                "/v1/chat/completions",
                None,
                &h(&[("authorization", "Bearer sk")])
            ),
            Provider::OpenAi
        );
    }

    #[test]
    fn query_params_are_decoded() {
        let req = EmuRequest {
            query: Some("alt=sse&key=AIza%2Dx&pageToken=a+b".into()),
            ..Default::default()
        };
        assert_eq!(req.query_param("key").as_deref(), Some("AIza-x"));
        assert_eq!(req.query_param("pageToken").as_deref(), Some("a b"));
        assert_eq!(req.query_param("nope"), None);
    }

    #[test]
    fn received_requests_are_bounded() {
        let emu = Emulator::new(EmulatorOptions::default());
        for i in 0..(RECEIVED_CAPACITY + 5) {
            let req = EmuRequest {
                method: "GET".into(),
                path: format!("/v1/models/{i}"),
                ..Default::default()
            };
            emu.handle(Provider::OpenAi, req);
        }
        let got = emu.received();
        assert_eq!(got.len(), RECEIVED_CAPACITY);
        assert_eq!(got[0].path, "/v1/models/5");
    }

    #[test]
    fn embeddings_are_unit_length_and_deterministic() {
        let a = embedding("hello", 16);
        assert_eq!(a, embedding("hello", 16));
        assert_ne!(a, embedding("hullo", 16));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }

    #[test]
    fn ids_differ() {
        let ids = IdGen::new();
        assert_ne!(ids.next("msg_", 24), ids.next("msg_", 24));
        assert_eq!(ids.next("msg_", 24).len(), 28);
    }

    #[test]
    fn redacted_records_keep_everything_but_credentials() {
        let r = ReceivedRequest {
            provider: Provider::Gemini,
            method: "POST".into(),
            path: "/v1beta/models".into(),
            query: Some("alt=sse&key=AIzaTestSecret&x=1".into()),
            headers: vec![
                ("authorization".into(), "Bearer sk-proj-testSecret".into()),
                ("X-Goog-Api-Key".into(), "AIzaTestSecret".into()),
                ("x-marker".into(), "kept".into()),
            ],
        };
        let shown = serde_json::to_string(&r.redacted()).unwrap();
        assert!(!shown.contains("Secret"), "{shown}");
        assert!(shown.contains("kept") && shown.contains("alt=sse") && shown.contains("x=1"));
    }
}
