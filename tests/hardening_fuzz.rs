//! Property tests of everything that reads bytes an app or a provider chose: the request
//! path's canonical form, the SSE splitter, each provider's stream and body usage readers, the
//! request inspection, and model resolution. None may panic on any input; the canonical path is
//! idempotent and never holds a dot segment, an empty segment or an encoded separator; and a
//! stream read in any chunks forwards the same bytes and meters the same usage as read whole.
//!
//! Each property runs `WORKSHOP_HUB_FUZZ_CASES` cases (default 256; e.g. 100000 for a long
//! run): `WORKSHOP_HUB_FUZZ_CASES=100000 cargo test --release --test hardening_fuzz`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::Config;
use workshop_hub::catalog::Catalog;
use workshop_hub::emulator::{EmuBody, EmuRequest, Emulator, EmulatorOptions};
use workshop_hub::gateway::target::canonical_path;
use workshop_hub::providers::sse::SseSplitter;
use workshop_hub::providers::{self, Headers, Metered, Provider, ProxyRequest, RequestInfo};

fn config() -> Config {
    let cases = std::env::var("WORKSHOP_HUB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

const VERSIONS: &[&str] = &["v1", "v1beta"];

/// Path text biased toward what makes canonicalisation hard.
fn path_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("v1".to_string()),
        Just("v1beta".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("%2e".to_string()),
        Just("%2E".to_string()),
        Just("%2f".to_string()),
        Just("%2F".to_string()),
        Just("%5c".to_string()),
        Just("\\".to_string()),
        Just("%".to_string()),
        Just("%00".to_string()),
        Just(":generateContent".to_string()),
        "[a-zA-Z0-9_~-]{1,8}",
        "%[0-9a-fA-F]{2}",
        any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

fn unreserved_escape(c: char) -> Option<String> {
    (c.is_ascii_alphanumeric() || "-._~".contains(c)).then(|| format!("%{:02X}", c as u32))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn canonical_paths_are_clean_and_idempotent(raw in path_text()) {
        if let Ok(canonical) = canonical_path(&raw, VERSIONS) {
            prop_assert!(canonical.starts_with('/'));
            let segments: Vec<&str> = canonical[1..].split('/').collect();
            prop_assert!(segments.len() >= 2);
            prop_assert!(VERSIONS.contains(&segments[0]));
            for s in &segments {
                prop_assert!(!s.is_empty() && *s != "." && *s != "..", "{canonical}");
            }
            let upper = canonical.to_ascii_uppercase();
            prop_assert!(!upper.contains("%2F") && !upper.contains("%5C") && !upper.contains("%2E"));
            prop_assert!(!canonical.contains('\\'));
            prop_assert!(!canonical.bytes().any(|b| b.is_ascii_control()));
            prop_assert_eq!(canonical_path(&canonical, VERSIONS), Ok(canonical.clone()));
        }
    }

    #[test]
    fn escaping_an_unreserved_character_changes_nothing(
        tail in "[a-zA-Z0-9._~-]{1,12}(/[a-zA-Z0-9._~:-]{1,12}){0,3}",
        pick in any::<proptest::sample::Index>(),
    ) {
        let raw = format!("/v1/{tail}");
        let whole = canonical_path(&raw, VERSIONS);
        let chars: Vec<char> = raw.chars().collect();
        let at = 4 + pick.index(chars.len() - 4);
        if let Some(escape) = unreserved_escape(chars[at]) {
            let escaped: String = chars[..at].iter().collect::<String>()
                + &escape
                + &chars[at + 1..].iter().collect::<String>();
            prop_assert_eq!(canonical_path(&escaped, VERSIONS), whole);
        }
    }

    #[test]
    fn sse_splitting_does_not_depend_on_read_sizes(
        stream in sse_text(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
    ) {
        let split = |parts: &[&[u8]]| {
            let mut s = SseSplitter::new();
            let mut events = Vec::new();
            for p in parts {
                s.push(p, |e| events.push(e.to_vec()));
            }
            (events, s.take_pending())
        };
        let whole = split(&[&stream]);
        let parts = cut(&stream, &cuts);
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(split(&refs), whole);
    }

    #[test]
    fn stream_meters_meter_any_bytes_the_same_in_any_chunks(
        which in 0..STREAMS.len(),
        hide in any::<bool>(),
        noise in sse_text(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
    ) {
        let s = &STREAMS[which];
        let whole = meter(s, hide, std::slice::from_ref(&noise));
        prop_assert_eq!(meter(s, hide, &cut(&noise, &cuts)), whole);
    }

    #[test]
    fn real_streams_meter_the_same_in_any_chunks(
        which in 0..STREAMS.len(),
        hide in any::<bool>(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..16),
        damage in proptest::option::of((any::<proptest::sample::Index>(), any::<u8>())),
    ) {
        let s = &STREAMS[which];
        let mut body = real_stream(s);
        let whole = meter(s, hide, &[body.clone()]);
        prop_assert!(whole.1.complete, "{}: a real stream ends cleanly", s.name);
        prop_assert!(whole.1.usage.input_tokens > 0 && whole.1.usage.output_tokens > 0);
        prop_assert_eq!(meter(s, hide, &cut(&body, &cuts)), whole);
        // A damaged byte changes what is metered, never whether the meter survives it, and
        // chunking still does not matter.
        if let Some((at, byte)) = damage {
            let i = at.index(body.len());
            body[i] = byte;
            let damaged = meter(s, hide, &[body.clone()]);
            prop_assert_eq!(meter(s, hide, &cut(&body, &cuts)), damaged);
        }
    }

    #[test]
    fn body_usage_readers_take_any_bytes(which in 0..STREAMS.len(), body in json_ish()) {
        let s = &STREAMS[which];
        let api = providers::api(s.provider);
        let info = inspect(s);
        let _ = api.meter_body(&info, &body);
        let _ = api.classify(400, &body);
        let _ = api.classify(429, &body);
        let _ = api.error_message(&body);
        let _ = api.reply_text(&body);
        let _ = api.parse_model_list(&body);
    }

    #[test]
    fn request_inspection_takes_any_request(
        which in 0..3usize,
        method in prop_oneof![Just("POST".to_string()), Just("GET".to_string()), "[A-Z]{1,7}"],
        path in path_text(),
        query in ".{0,40}",
        headers in proptest::collection::vec(("[a-z-]{1,20}", ".{0,40}"), 0..6),
        body in json_ish(),
    ) {
        let api = providers::api(Provider::ALL[which]);
        let headers: Headers = headers;
        let body = Bytes::from(body);
        let req = ProxyRequest { method: &method, path: &path, query: &query, headers: &headers, body: &body };
        let info = api.inspect(&req);
        let _ = api.app_key(&headers, &query);
        let _ = api.endpoint(&method, &path);
        if info.stream {
            let mut m = api.stream_meter(&info, false);
            let _ = m.feed(body.clone());
            let _ = m.flush();
            let _ = m.finish();
        }
    }

    #[test]
    fn the_model_an_app_names_is_the_model_inspected(
        model in "[a-zA-Z0-9./:_-]{1,40}",
        max in proptest::option::of(0u64..1_000_000),
        stream in any::<bool>(),
    ) {
        let mut body = serde_json::json!({"model": model, "messages": [], "stream": stream});
        if let Some(m) = max {
            body["max_tokens"] = m.into();
        }
        let body = Bytes::from(serde_json::to_vec(&body).unwrap());
        for (provider, path) in [(Provider::OpenAi, "/v1/chat/completions"), (Provider::Anthropic, "/v1/messages")] {
            let req = ProxyRequest { method: "POST", path, query: "", headers: &[], body: &body };
            let info = providers::api(provider).inspect(&req);
            prop_assert_eq!(info.model.as_deref(), Some(model.as_str()));
            prop_assert_eq!(info.stream, stream);
            prop_assert_eq!(info.max_output_tokens, max);
        }
    }

    #[test]
    fn model_resolution_takes_any_name(name in ".{0,60}") {
        let catalog = Catalog::embedded();
        let _ = workshop_hub::compat::resolve_model(catalog, &name);
        for p in Provider::ALL {
            let _ = catalog.resolve(p, &name);
        }
    }
}

/// One streamed call of one provider surface, as the app sends it (prefix removed).
struct StreamCall {
    name: &'static str,
    provider: Provider,
    path: &'static str,
    query: &'static str,
    body: &'static str,
    key: (&'static str, &'static str),
}

const STREAMS: [StreamCall; 5] = [
    StreamCall {
        name: "openai chat",
        provider: Provider::OpenAi,
        path: "/v1/chat/completions",
        query: "",
        body: r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Tell me a story about a lighthouse."}]}"#,
        key: (
            "authorization",
            "Bearer sk-proj-testFuzzKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
    },
    StreamCall {
        name: "openai responses",
        provider: Provider::OpenAi,
        path: "/v1/responses",
        query: "",
        body: r#"{"model":"gpt-4o-mini","stream":true,"input":"Tell me a story about a lighthouse."}"#,
        key: (
            "authorization",
            "Bearer sk-proj-testFuzzKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
    },
    StreamCall {
        name: "anthropic messages",
        provider: Provider::Anthropic,
        path: "/v1/messages",
        query: "",
        body: r#"{"model":"claude-haiku-4-5","max_tokens":200,"stream":true,"messages":[{"role":"user","content":"Tell me a story about a lighthouse."}]}"#,
        key: (
            "x-api-key",
            "sk-ant-api03-testFuzzKeyAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
    },
    StreamCall {
        name: "gemini sse",
        provider: Provider::Gemini,
        path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        query: "alt=sse",
        body: r#"{"contents":[{"role":"user","parts":[{"text":"Tell me a story about a lighthouse."}]}]}"#,
        key: ("x-goog-api-key", "AIzaTestFuzzKeyAAAAAAAAAAAAAAAAAAAAAAAA"),
    },
    StreamCall {
        name: "gemini json array",
        provider: Provider::Gemini,
        path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        query: "",
        body: r#"{"contents":[{"role":"user","parts":[{"text":"Tell me a story about a lighthouse."}]}]}"#,
        key: ("x-goog-api-key", "AIzaTestFuzzKeyAAAAAAAAAAAAAAAAAAAAAAAA"),
    },
];

fn headers_of(s: &StreamCall) -> Headers {
    vec![
        (s.key.0.to_string(), s.key.1.to_string()),
        ("anthropic-version".into(), "2023-06-01".into()),
        ("content-type".into(), "application/json".into()),
    ]
}

fn inspect(s: &StreamCall) -> RequestInfo {
    let headers = headers_of(s);
    let body = Bytes::from_static(s.body.as_bytes());
    providers::api(s.provider).inspect(&ProxyRequest {
        method: "POST",
        path: s.path,
        query: s.query,
        headers: &headers,
        body: &body,
    })
}

/// The emulator's answer to `s`, as the bytes of one stream.
fn real_stream(s: &StreamCall) -> Vec<u8> {
    let emulator = Emulator::new(EmulatorOptions::default());
    let answer = emulator.handle(
        s.provider,
        EmuRequest {
            method: "POST".into(),
            path: s.path.into(),
            query: (!s.query.is_empty()).then(|| s.query.to_string()),
            headers: headers_of(s),
            body: Bytes::from_static(s.body.as_bytes()),
        },
    );
    assert_eq!(answer.status, 200, "{}", s.name);
    match answer.body {
        EmuBody::Stream(stream) => stream.events.concat(),
        EmuBody::Full(body) => body.to_vec(),
        EmuBody::Never => panic!("{}: no answer", s.name),
    }
}

/// Feeds the parts to a fresh meter: what it forwarded and what it metered.
fn meter(s: &StreamCall, hide: bool, parts: &[Vec<u8>]) -> (Vec<u8>, Metered) {
    let info = inspect(s);
    let mut m = providers::api(s.provider).stream_meter(&info, hide);
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&m.feed(Bytes::copy_from_slice(p)));
    }
    out.extend_from_slice(&m.flush());
    (out, m.finish())
}

/// `bytes` cut at the given places.
fn cut(bytes: &[u8], at: &[proptest::sample::Index]) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        return vec![Vec::new()];
    }
    let mut points: Vec<usize> = at.iter().map(|i| i.index(bytes.len())).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}

/// SSE-shaped bytes: events, fields, JSON fragments with usage-like names, line ends of every
/// kind, and stray bytes.
fn sse_text() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"event: message_delta\n".to_vec()),
        Just(b"event: error\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(b"\r\n\r\n".to_vec()),
        Just(b"[DONE]".to_vec()),
        Just(b"[".to_vec()),
        Just(b",".to_vec()),
        Just(b"]".to_vec()),
        Just(br#"{"usage":{"prompt_tokens":7,"completion_tokens":9,"total_tokens":16}}"#.to_vec()),
        Just(br#"{"type":"message_start","message":{"usage":{"input_tokens":5,"output_tokens":1}}}"#.to_vec()),
        Just(br#"{"type":"message_delta","usage":{"output_tokens":12}}"#.to_vec()),
        Just(br#"{"type":"response.completed","response":{"usage":{"input_tokens":3,"output_tokens":4}}}"#.to_vec()),
        Just(br#"{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2}}"#.to_vec()),
        Just(br#"{"choices":[{"delta":{"content":"h\u00e9"}}]}"#.to_vec()),
        Just(br#"{"error":{"message":"x","type":"overloaded_error"}}"#.to_vec()),
        Just(b"\xe2\x82".to_vec()),
        Just(b"\xff".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

/// JSON-like bodies: valid documents of odd shapes, and broken ones.
fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        sse_text(),
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(vec![b'['; 5000]),
        Just(br#"{"usage":{"prompt_tokens":-1,"completion_tokens":1e400}}"#.to_vec()),
        Just(br#"{"usage":{"input_tokens":18446744073709551615,"output_tokens":18446744073709551615}}"#.to_vec()),
        Just(br#"{"usageMetadata":{"promptTokenCount":"7","candidatesTokenCount":null}}"#.to_vec()),
        Just(br#"[{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}]"#.to_vec()),
        Just(br#"{"model":{"nested":true},"stream":"yes","max_tokens":-3,"contents":7}"#.to_vec()),
    ]
}
