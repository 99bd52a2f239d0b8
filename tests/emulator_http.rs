//! In-process HTTP tests of the emulator mounted as in the Hub: wire framing, usage rules,
//! paging, error shapes, determinism and faults for each provider.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use std::sync::Arc;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test as atest};
use serde_json::{Value, json};
use workshop_hub::emulator::text::count_tokens;
use workshop_hub::emulator::{EmuBody, EmuRequest, Emulator, EmulatorOptions};
use workshop_hub::providers::Provider;
use workshop_hub::web::emulator::mount;

const OPENAI_KEY: &str = "sk-proj-testAAAAAAAAAAAAAAAAAAAAT3BlbkFJBBBBBBBBBBBBBBBBBBBB";
const ANTHROPIC_KEY: &str = "sk-ant-api03-testxxxxxxxxxxxxxxxxxxxxAA";
const GEMINI_KEY: &str = "AIzaTestyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy";

async fn app()
-> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error> {
    let emulator = Arc::new(Emulator::new(EmulatorOptions::default()));
    atest::init_service(App::new().configure(|cfg| mount(cfg, emulator))).await
}

struct Reply {
    status: u16,
    headers: actix_web::http::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn call(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut req = match method {
        "GET" => atest::TestRequest::get(),
        _ => atest::TestRequest::post(),
    }
    .uri(uri);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    if let Some(body) = body {
        req = req.set_payload(body.to_string());
    }
    let resp = atest::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = atest::read_body(resp).await;
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn openai_auth() -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {OPENAI_KEY}"))]
}

async fn openai(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    path: &str,
    body: Value,
    extra: &[(&str, &str)],
) -> Reply {
    let auth = format!("Bearer {OPENAI_KEY}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    call(
        app,
        "POST",
        &format!("/emulator/openai{path}"),
        &headers,
        Some(body),
    )
    .await
}

async fn anthropic(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: &str,
) -> Reply {
    let headers = [("x-api-key", key), ("anthropic-version", "2023-06-01")];
    call(
        app,
        method,
        &format!("/emulator/anthropic{path}"),
        &headers,
        body,
    )
    .await
}

async fn gemini(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: &str,
) -> Reply {
    call(
        app,
        method,
        &format!("/emulator/gemini{path}"),
        &[("x-goog-api-key", key)],
        body,
    )
    .await
}

/// `data:` payloads of an SSE body, checking each event is exactly one `data: ` line.
fn data_frames(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "events end with a blank line");
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            assert!(!e.contains('\n'), "one line per event: {e}");
            e.strip_prefix("data: ")
                .expect("`data: ` with the space")
                .to_string()
        })
        .collect()
}

/// `(event name, data)` pairs of a named-event SSE body.
fn named_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (event, data) = e.split_once('\n').unwrap();
            let name = event.strip_prefix("event: ").unwrap().to_string();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str(), "the data type names the event");
            (name, data)
        })
        .collect()
}

fn chat_body(stream: bool, include_usage: Option<bool>) -> Value {
    let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there, emulator"}], "stream": stream});
    if let Some(u) = include_usage {
        body["stream_options"] = json!({"include_usage": u});
    }
    body
}

#[actix_web::test]
async fn openai_chat_stream_usage_only_with_include_usage() {
    let app = app().await;
    let with = openai(
        &app,
        "/v1/chat/completions",
        chat_body(true, Some(true)),
        &[],
    )
    .await;
    assert_eq!(with.status, 200);
    assert!(
        with.headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let frames = data_frames(&with.body);
    assert_eq!(frames.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert!(rest.iter().all(|c| c.get("usage") == Some(&Value::Null)));
    assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "stop");
    let text: String = rest
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"],
        count_tokens(&text)
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["id"] == chunks[0]["id"] && c["model"] == "gpt-4o-mini-2024-07-18")
    );

    for options in [None, Some(false)] {
        let without = openai(&app, "/v1/chat/completions", chat_body(true, options), &[]).await;
        let frames = data_frames(&without.body);
        for f in &frames[..frames.len() - 1] {
            let chunk: Value = serde_json::from_str(f).unwrap();
            assert!(chunk.get("usage").is_none(), "no usage key: {f}");
            assert_ne!(chunk["choices"], json!([]));
        }
    }
}

#[actix_web::test]
async fn openai_chat_is_deterministic_and_counts_match() {
    let app = app().await;
    let a = openai(&app, "/v1/chat/completions", chat_body(false, None), &[])
        .await
        .json();
    let b = openai(&app, "/v1/chat/completions", chat_body(false, None), &[])
        .await
        .json();
    let text = a["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(text, b["choices"][0]["message"]["content"]);
    assert_eq!(a["usage"], b["usage"]);
    assert_eq!(a["usage"]["completion_tokens"], count_tokens(text));
    let streamed = openai(&app, "/v1/chat/completions", chat_body(true, None), &[]).await;
    let joined: String = data_frames(&streamed.body)
        .iter()
        .filter(|f| *f != "[DONE]")
        .filter_map(|f| {
            serde_json::from_str::<Value>(f).unwrap()["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(joined, text, "stream and whole answer agree");
}

#[actix_web::test]
async fn openai_length_and_reasoning() {
    let app = app().await;
    let mut body = chat_body(false, None);
    body["max_completion_tokens"] = json!(4);
    let r = openai(&app, "/v1/chat/completions", body, &[]).await.json();
    assert_eq!(r["choices"][0]["finish_reason"], "length");
    assert_eq!(r["usage"]["completion_tokens"], 4);

    let body = json!({"model": "o3", "messages": [{"role": "user", "content": "why"}], "reasoning_effort": "low"});
    let r = openai(&app, "/v1/chat/completions", body, &[]).await.json();
    let reasoning = r["usage"]["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap();
    let visible = u64::from(count_tokens(
        r["choices"][0]["message"]["content"].as_str().unwrap(),
    ));
    assert!(reasoning > 0);
    assert_eq!(
        r["usage"]["completion_tokens"].as_u64().unwrap(),
        reasoning + visible
    );

    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "why"}], "reasoning_effort": "low"});
    assert_eq!(
        openai(&app, "/v1/chat/completions", body, &[]).await.status,
        400
    );
}

#[actix_web::test]
async fn openai_responses_stream_is_numbered_and_ends_with_usage() {
    let app = app().await;
    let body = json!({"model": "gpt-5-mini", "input": "Tell me a story", "stream": true, "reasoning": {"effort": "medium"}});
    let r = openai(&app, "/v1/responses", body, &[]).await;
    let events = named_events(&r.body);
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i);
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(&names[..2], ["response.created", "response.in_progress"]);
    assert_eq!(*names.last().unwrap(), "response.completed");
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    let usage = &events.last().unwrap().1["response"]["usage"];
    let reasoning = usage["output_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap();
    assert!(reasoning > 0);
    assert_eq!(
        usage["output_tokens"].as_u64().unwrap(),
        reasoning + u64::from(count_tokens(&text))
    );
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|(_, d)| d.get("usage").is_none() && d["response"]["usage"].is_null())
    );
}

#[actix_web::test]
async fn openai_embeddings_honour_dimensions_and_base64() {
    let app = app().await;
    let r = openai(
        &app,
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": ["a", "b c"]}),
        &[],
    )
    .await
    .json();
    assert_eq!(r["data"][0]["embedding"].as_array().unwrap().len(), 1536);
    assert_eq!(r["usage"]["prompt_tokens"], 3);
    let r = openai(&app, "/v1/embeddings", json!({"model": "text-embedding-3-large", "input": "a", "dimensions": 10, "encoding_format": "base64"}), &[]).await.json();
    let b64 = r["data"][0]["embedding"].as_str().unwrap();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
            .len(),
        40
    );
    let too_big = openai(
        &app,
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": "a", "dimensions": 5000}),
        &[],
    )
    .await;
    assert_eq!(too_big.status, 400);
}

#[actix_web::test]
async fn openai_errors_have_all_four_fields() {
    let app = app().await;
    let cases: Vec<(Vec<(&str, String)>, u16, Value)> = vec![
        (vec![], 401, Value::Null),
        (
            vec![(
                "authorization",
                "Bearer sk-proj-invalid-0123456789abcdef".into(),
            )],
            401,
            json!("invalid_api_key"),
        ),
        (
            vec![("authorization", "Bearer sk-ant-api03-wrongprovider".into())],
            401,
            json!("invalid_api_key"),
        ),
        (
            vec![("authorization", "Bearer sk-proj-noquota-0123456789".into())],
            429,
            json!("insufficient_quota"),
        ),
        (
            [
                openai_auth(),
                vec![("x-emulator-fault", "rate_limit".into())],
            ]
            .concat(),
            429,
            json!("rate_limit_exceeded"),
        ),
        (
            [
                openai_auth(),
                vec![("x-emulator-fault", "server_error".into())],
            ]
            .concat(),
            500,
            Value::Null,
        ),
    ];
    for (headers, status, code) in cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = call(
            &app,
            "POST",
            "/emulator/openai/v1/chat/completions",
            &h,
            Some(chat_body(false, None)),
        )
        .await;
        assert_eq!(r.status, status, "{headers:?}");
        let error = &r.json()["error"];
        for field in ["message", "type", "param", "code"] {
            assert!(error.get(field).is_some(), "{field} in {error}");
        }
        assert_eq!(error["code"], code);
    }
    let masked = call(
        &app,
        "GET",
        "/emulator/openai/v1/models",
        &[("authorization", "Bearer sk-proj-invalid-0123456789abcdef")],
        None,
    )
    .await;
    let message = masked.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("sk-proj-") && message.contains("cdef") && !message.contains("0123456789"),
        "{message}"
    );
    let quota = call(
        &app,
        "GET",
        "/emulator/openai/v1/models",
        &[("authorization", "Bearer sk-proj-noquota-1")],
        None,
    )
    .await;
    assert_eq!(quota.headers.get("x-should-retry").unwrap(), "false");
    let mut unknown = chat_body(false, None);
    unknown["model"] = json!("gpt-9");
    let r = openai(&app, "/v1/chat/completions", unknown, &[]).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (404, json!("model_not_found"))
    );
}

#[actix_web::test]
async fn anthropic_stream_order_and_cumulative_usage() {
    let app = app().await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 4000, "stream": true,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "Say hello"}]});
    let r = anthropic(
        &app,
        "POST",
        "/v1/messages",
        Some(body.clone()),
        ANTHROPIC_KEY,
    )
    .await;
    let events = named_events(&r.body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..3],
        ["message_start", "content_block_start", "ping"]
    );
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
    let start = &events[0].1["message"];
    assert_eq!(start["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(start["usage"]["output_tokens"], 1);
    let mut streamed_tokens = 0;
    for (_, data) in &events {
        let delta = &data["delta"];
        for key in ["text", "thinking", "partial_json"] {
            if let Some(t) = delta[key].as_str() {
                streamed_tokens += count_tokens(t);
            }
        }
    }
    assert!(
        events
            .iter()
            .any(|(_, d)| d["delta"]["type"] == "signature_delta")
    );
    let delta = &events[events.len() - 2].1;
    assert_eq!(
        delta["usage"]["output_tokens"], streamed_tokens,
        "cumulative output includes thinking"
    );
    assert_eq!(
        delta["usage"]["input_tokens"],
        start["usage"]["input_tokens"]
    );

    let mut whole = body.clone();
    whole["stream"] = json!(false);
    let m = anthropic(&app, "POST", "/v1/messages", Some(whole), ANTHROPIC_KEY)
        .await
        .json();
    assert_eq!(m["usage"]["output_tokens"], streamed_tokens);
    assert_eq!(m["content"][0]["type"], "thinking");
    let count = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Say hello"}]});
    let counted = anthropic(
        &app,
        "POST",
        "/v1/messages/count_tokens",
        Some(count),
        ANTHROPIC_KEY,
    )
    .await
    .json();
    assert_eq!(counted["input_tokens"], m["usage"]["input_tokens"]);
}

#[actix_web::test]
async fn anthropic_paging_walks_every_model_once() {
    let app = app().await;
    let all = anthropic(&app, "GET", "/v1/models?limit=1000", None, ANTHROPIC_KEY)
        .await
        .json();
    let all_ids: Vec<Value> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(all["has_more"], false);
    let mut seen = Vec::new();
    let mut uri = "/v1/models?limit=3".to_string();
    loop {
        let page = anthropic(&app, "GET", &uri, None, ANTHROPIC_KEY)
            .await
            .json();
        let data = page["data"].as_array().unwrap();
        assert_eq!(page["first_id"], data[0]["id"]);
        assert_eq!(page["last_id"], data[data.len() - 1]["id"]);
        seen.extend(data.iter().map(|m| m["id"].clone()));
        if page["has_more"] == false {
            break;
        }
        uri = format!(
            "/v1/models?limit=3&after_id={}",
            page["last_id"].as_str().unwrap()
        );
    }
    assert_eq!(seen, all_ids);
    let before = anthropic(
        &app,
        "GET",
        &format!(
            "/v1/models?limit=2&before_id={}",
            all_ids[2].as_str().unwrap()
        ),
        None,
        ANTHROPIC_KEY,
    )
    .await
    .json();
    assert_eq!(
        before["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].clone())
            .collect::<Vec<_>>(),
        all_ids[..2]
    );
    assert_eq!(before["has_more"], false);
}

#[actix_web::test]
async fn anthropic_errors_and_required_headers() {
    let app = app().await;
    let msg = json!({"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]});
    let cases = [
        ("sk-ant-api03-revoked", 401, "authentication_error"),
        ("AIzaNotAnthropic", 401, "authentication_error"),
        ("sk-ant-api03-noquota", 400, "invalid_request_error"),
    ];
    for (key, status, kind) in cases {
        let r = anthropic(&app, "POST", "/v1/messages", Some(msg.clone()), key).await;
        assert_eq!(r.status, status, "{key}");
        let body = r.json();
        assert_eq!(
            (body["type"].as_str(), body["error"]["type"].as_str()),
            (Some("error"), Some(kind))
        );
        assert!(body["request_id"].is_string());
    }
    let no_version = call(
        &app,
        "POST",
        "/emulator/anthropic/v1/messages",
        &[("x-api-key", ANTHROPIC_KEY)],
        Some(msg.clone()),
    )
    .await;
    assert_eq!(no_version.status, 400);
    let bearer = call(
        &app,
        "POST",
        "/emulator/anthropic/v1/messages",
        &[
            ("authorization", &format!("Bearer {ANTHROPIC_KEY}")),
            ("anthropic-version", "2026-10-21"),
        ],
        Some(msg.clone()),
    )
    .await;
    assert_eq!(bearer.status, 200);
    let mut no_max = msg.clone();
    no_max.as_object_mut().unwrap().remove("max_tokens");
    assert_eq!(
        anthropic(&app, "POST", "/v1/messages", Some(no_max), ANTHROPIC_KEY)
            .await
            .status,
        400
    );
    for (fault, status) in [
        ("overloaded", 529),
        ("rate_limit", 429),
        ("server_error", 500),
    ] {
        let r = call(
            &app,
            "POST",
            "/emulator/anthropic/v1/messages",
            &[
                ("x-api-key", ANTHROPIC_KEY),
                ("anthropic-version", "2023-06-01"),
                ("x-emulator-fault", fault),
            ],
            Some(msg.clone()),
        )
        .await;
        assert_eq!(r.status, status);
    }
}

#[actix_web::test]
async fn gemini_stream_running_totals_and_finish_on_last() {
    let app = app().await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "Tell me about Warsaw"}]}]});
    let r = gemini(
        &app,
        "POST",
        "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        Some(body.clone()),
        GEMINI_KEY,
    )
    .await;
    assert!(!r.body.contains("event:"));
    let chunks: Vec<Value> = data_frames(&r.body)
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    assert!(chunks.len() > 2);
    let mut text = String::new();
    for (i, chunk) in chunks.iter().enumerate() {
        text.push_str(
            chunk["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap(),
        );
        let u = &chunk["usageMetadata"];
        assert_eq!(
            u["candidatesTokenCount"],
            count_tokens(&text),
            "running total at chunk {i}"
        );
        let total = u["promptTokenCount"].as_u64().unwrap()
            + u["candidatesTokenCount"].as_u64().unwrap()
            + u["thoughtsTokenCount"].as_u64().unwrap();
        assert_eq!(u["totalTokenCount"].as_u64().unwrap(), total);
        assert_eq!(
            chunk["candidates"][0].get("finishReason").is_some(),
            i == chunks.len() - 1
        );
        assert_eq!(chunk["responseId"], chunks[0]["responseId"]);
    }
    let whole = gemini(
        &app,
        "POST",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        Some(body.clone()),
        GEMINI_KEY,
    )
    .await
    .json();
    assert_eq!(
        whole["candidates"][0]["content"]["parts"][0]["text"],
        text.as_str()
    );
    assert_eq!(
        whole["usageMetadata"],
        chunks.last().unwrap()["usageMetadata"]
    );
    let counted = gemini(
        &app,
        "POST",
        "/v1beta/models/gemini-2.5-flash:countTokens",
        Some(body),
        GEMINI_KEY,
    )
    .await
    .json();
    assert_eq!(
        counted["totalTokens"],
        whole["usageMetadata"]["promptTokenCount"]
    );
}

#[actix_web::test]
async fn gemini_paging_and_errors() {
    let app = app().await;
    let mut names = Vec::new();
    let mut uri = "/v1beta/models?pageSize=2".to_string();
    loop {
        let page = gemini(&app, "GET", &uri, None, GEMINI_KEY).await.json();
        names.extend(
            page["models"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["name"].clone()),
        );
        match page.get("nextPageToken") {
            Some(token) => {
                uri = format!(
                    "/v1beta/models?pageSize=2&pageToken={}",
                    token.as_str().unwrap()
                )
            }
            None => break,
        }
    }
    let all = gemini(&app, "GET", "/v1/models?pageSize=1000", None, GEMINI_KEY)
        .await
        .json();
    assert!(all.get("nextPageToken").is_none());
    let all_names: Vec<Value> = all["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].clone())
        .collect();
    assert_eq!(names, all_names);
    assert!(names.len() >= 5);

    let body = json!({"contents": [{"parts": [{"text": "x"}]}]});
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    let cases = [
        (
            GEMINI_KEY.replace("Test", "Invalid"),
            400,
            "INVALID_ARGUMENT",
        ),
        ("AIzaNoquota-noquota".into(), 429, "RESOURCE_EXHAUSTED"),
    ];
    for (key, status, code) in cases {
        let r = gemini(&app, "POST", path, Some(body.clone()), &key).await;
        assert_eq!(r.status, status);
        let error = &r.json()["error"];
        assert_eq!(
            (error["code"].as_u64(), error["status"].as_str()),
            (Some(u64::from(status)), Some(code))
        );
    }
    let invalid = gemini(&app, "POST", path, Some(body.clone()), "AIzaInvalid")
        .await
        .json();
    assert_eq!(invalid["error"]["details"][0]["reason"], "API_KEY_INVALID");
    let missing = call(
        &app,
        "POST",
        &format!("/emulator/gemini{path}"),
        &[],
        Some(body.clone()),
    )
    .await;
    assert_eq!(missing.status, 403);
    let query_key = call(
        &app,
        "POST",
        &format!("/emulator/gemini{path}?key={GEMINI_KEY}"),
        &[],
        Some(body.clone()),
    )
    .await;
    assert_eq!(query_key.status, 200);
    let unknown = gemini(
        &app,
        "POST",
        "/v1beta/models/gemini-9:generateContent",
        Some(body.clone()),
        GEMINI_KEY,
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.json()["error"]["status"].clone()),
        (404, json!("NOT_FOUND"))
    );
    let overloaded = call(
        &app,
        "POST",
        &format!("/emulator/gemini{path}"),
        &[
            ("x-goog-api-key", GEMINI_KEY),
            ("x-emulator-fault", "overloaded"),
        ],
        Some(body),
    )
    .await;
    assert_eq!(
        (
            overloaded.status,
            overloaded.json()["error"]["status"].clone()
        ),
        (503, json!("UNAVAILABLE"))
    );
}

#[actix_web::test]
async fn mount_rejects_unknown_providers_and_has_no_received_listing() {
    let app = app().await;
    let r = call(&app, "GET", "/emulator/azure/v1/models", &[], None).await;
    assert_eq!(r.status, 404);
    let r = call(&app, "GET", "/__emulator/received", &[], None).await;
    assert_eq!(r.status, 404);
}

#[actix_web::test]
async fn dropped_stream_is_cut_not_ended() {
    let app = app().await;
    let req = atest::TestRequest::post()
        .uri("/emulator/openai/v1/chat/completions")
        .insert_header(("authorization", format!("Bearer {OPENAI_KEY}")))
        .insert_header(("x-emulator-fault", "drop_mid_stream"))
        .set_payload(chat_body(true, None).to_string())
        .to_request();
    let resp = atest::call_service(&app, req).await;
    assert_eq!(resp.status(), 200);
    let body = actix_web::body::to_bytes(resp.into_body()).await;
    assert!(
        body.is_err(),
        "the body ends with an error, not a clean end"
    );
}

#[test]
fn timing_options_and_timeout_fault_shape_the_response() {
    let emu = Emulator::new(EmulatorOptions {
        latency_ms: 250,
        tokens_per_second: 10,
        workers: 0,
    });
    let request = |fault: Option<&str>| {
        let mut headers = vec![("authorization".to_string(), format!("Bearer {OPENAI_KEY}"))];
        if let Some(f) = fault {
            headers.push(("x-emulator-fault".into(), f.into()));
        }
        EmuRequest {
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            query: None,
            headers,
            body: chat_body(true, None).to_string().into(),
        }
    };
    let paced = emu.handle(Provider::OpenAi, request(None));
    assert_eq!(paced.first_byte_delay.as_millis(), 250);
    let EmuBody::Stream(stream) = paced.body else {
        panic!("a stream")
    };
    assert_eq!(
        stream.delays[1].as_millis(),
        100,
        "one token at 10 tokens/s"
    );
    assert!(matches!(
        emu.handle(Provider::OpenAi, request(Some("timeout"))).body,
        EmuBody::Never
    ));
    let slow = emu.handle(Provider::OpenAi, request(Some("slow")));
    let EmuBody::Stream(stream) = slow.body else {
        panic!("a stream")
    };
    assert!(stream.delays.iter().all(|d| d.as_millis() == 100));
    let received = emu.received();
    assert_eq!(received.len(), 3);
    assert!(
        received[0]
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v.ends_with(OPENAI_KEY))
    );
}

fn weather_tool_chat() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

#[actix_web::test]
async fn openai_tool_call_fragments_rebuild_the_whole_call() {
    let app = app().await;
    let body = json!({"model": "gpt-4o-mini", "tools": weather_tool_chat(),
        "messages": [{"role": "user", "content": "What is the weather in Oslo?"}]});
    let whole = openai(&app, "/v1/chat/completions", body.clone(), &[])
        .await
        .json();
    let again = openai(&app, "/v1/chat/completions", body.clone(), &[])
        .await
        .json();
    let call = &whole["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Oslo\"}");
    assert_eq!(
        call["function"], again["choices"][0]["message"]["tool_calls"][0]["function"],
        "the same request calls the same tool with the same arguments"
    );
    assert!(whole["choices"][0]["message"]["content"].is_null());
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let frames = data_frames(
        &openai(&app, "/v1/chat/completions", streamed, &[])
            .await
            .body,
    );
    let chunks: Vec<Value> = frames
        .iter()
        .filter(|f| *f != "[DONE]")
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    let fragments: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(fragments[0]["function"]["name"], "get_weather");
    assert!(fragments[0]["id"].as_str().unwrap().starts_with("call_"));
    assert!(
        fragments[1..]
            .iter()
            .all(|f| f.get("id").is_none() && f["function"].get("name").is_none()),
        "later fragments carry only arguments"
    );
    let arguments: String = fragments
        .iter()
        .map(|f| f["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, "{\"city\":\"Oslo\"}");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
}

#[actix_web::test]
async fn anthropic_cache_is_read_back_when_the_breakpoint_moves_on() {
    let app = app().await;
    let long = "The manual of the Workshop Hub says many things. ".repeat(200);
    let marked = |text: &str| json!([{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]);
    let first = json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
        "messages": [{"role": "user", "content": marked(&long)}]});
    let one = anthropic(&app, "POST", "/v1/messages", Some(first), ANTHROPIC_KEY)
        .await
        .json();
    let written = one["usage"]["cache_creation_input_tokens"]
        .as_u64()
        .unwrap();
    assert!(written > 1024);
    // The next turn moves the breakpoint to its own last block; the old prefix is found by lookback.
    let second = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [
        {"role": "user", "content": [{"type": "text", "text": long}]},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": marked("And now?")}]});
    let two = anthropic(&app, "POST", "/v1/messages", Some(second), ANTHROPIC_KEY)
        .await
        .json();
    let usage = &two["usage"];
    assert_eq!(usage["cache_read_input_tokens"].as_u64().unwrap(), written);
    assert!(usage["cache_creation_input_tokens"].as_u64().unwrap() > 0);
    assert!(usage["input_tokens"].as_u64().unwrap() < 10);
}
