//! Black-box tests of the gateway's front door, for each provider: hostile request targets
//! are refused or metered exactly like the canonical one, managed connections forward only
//! metered endpoints, bodies are read only for known callers, upstream answers are bounded,
//! only allowlisted headers cross in either direction, the app key never travels upstream,
//! and tokens per minute hold under concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::door::{Door, OPENAI_KEY, auth, calls, native_code};
use common::upstream::{Answer, MockUpstream, memory_kib, raw_request};
use common::{Emulator, Launch, client};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// Every class of target that could be read two ways, for a path `/v{n}/…/{last}`.
fn hostile_targets(prefix: &str, path: &str) -> Vec<String> {
    let (version, rest) = path[1..].split_once('/').unwrap();
    let (dir, last) = path.rsplit_once('/').unwrap();
    vec![
        format!("{prefix}/{version}/x/../{rest}"),
        format!("{prefix}/{version}/./{rest}"),
        format!("{prefix}/{version}/x/%2e%2e/{rest}"),
        format!("{prefix}/{version}/x/.%2E/{rest}"),
        format!("{prefix}/{version}//{rest}"),
        format!("{prefix}{path}/"),
        format!("{prefix}{dir}%5C{last}"),
        format!("{prefix}{dir}%2F{last}"),
        format!("{prefix}{dir}%2f{last}"),
        format!("{prefix}{path}%00"),
        format!("{prefix}{path}%zz"),
        format!("{prefix}/{version}/../../admin"),
        format!("{prefix}/{version}/../../api/v1/status"),
        format!("{prefix}/api/v1/status"),
        format!("{prefix}/v9/{rest}"),
    ]
}

/// The same path with one letter of the endpoint name percent-encoded.
fn encoded_letter(prefix: &str, path: &str) -> String {
    let (dir, last) = path.rsplit_once('/').unwrap();
    let at = last.len() - 3;
    let letter = last.as_bytes()[at];
    format!(
        "{prefix}{dir}/{}%{:02x}{}",
        &last[..at],
        letter,
        &last[at + 1..]
    )
}

#[tokio::test]
async fn hostile_paths_are_refused_and_encoded_letters_are_metered_like_the_canonical_path() {
    let emulator = Emulator::start();
    let door = Door::start(&emulator.base, Launch::default()).await;
    for call in calls() {
        let before = emulator.received().await.as_array().unwrap().len();
        let balance = door.balance().await;
        for target in hostile_targets(call.prefix, call.path) {
            let (status, body) = door.raw(&call, &target, &[]).await;
            assert_eq!(status, 400, "{target}");
            assert_eq!(
                native_code(call.provider, &body).as_deref(),
                Some("bad_request"),
                "{target}: {body}"
            );
        }
        assert_eq!(
            emulator.received().await.as_array().unwrap().len(),
            before,
            "{}: nothing refused reached the provider",
            call.provider
        );
        assert_eq!(door.balance().await, balance);

        let canonical = format!("{}{}", call.prefix, call.path);
        let (status, _) = door.raw(&call, &canonical, &[]).await;
        assert_eq!(status, 200, "{canonical}");
        let after_canonical = door.balance().await;
        let canonical_cost = balance - after_canonical;
        assert!(
            canonical_cost > 0,
            "{}: a managed call costs",
            call.provider
        );

        let encoded = encoded_letter(call.prefix, call.path);
        let (status, _) = door.raw(&call, &encoded, &[]).await;
        assert_eq!(status, 200, "{encoded}");
        assert_eq!(
            after_canonical - door.balance().await,
            canonical_cost,
            "{encoded} is charged as the canonical path"
        );
        let rows = door.rows().await;
        assert_eq!(rows[0]["endpoint"], call.endpoint, "{encoded}");
        assert_eq!(rows[0]["cost_micro_usd"], canonical_cost);
    }
    // Over budget, no spelling of the path gets through.
    door.api(
        "PATCH",
        &format!("/api/v1/apps/{}", door.app_id),
        json!({"monthly_budget_micro_usd": 1}),
    )
    .await;
    for call in calls() {
        for target in [
            format!("{}{}", call.prefix, call.path),
            encoded_letter(call.prefix, call.path),
        ] {
            let (status, body) = door.raw(&call, &target, &[]).await;
            assert_eq!(status, 402, "{target}");
            assert_eq!(
                native_code(call.provider, &body).as_deref(),
                Some("app_budget_exceeded")
            );
        }
    }
}

/// Endpoints the Hub cannot meter, per provider.
const UNMETERED: [(&str, &str, &str); 4] = [
    ("openai", "POST", "/openai/v1/images/generations"),
    ("openai", "GET", "/openai/v1/chat/completions"),
    ("anthropic", "POST", "/anthropic/v1/messages/batches"),
    ("gemini", "POST", "/gemini/v1beta/files"),
];

#[tokio::test]
async fn managed_connections_refuse_what_the_hub_cannot_meter_and_byok_records_it() {
    let emulator = Emulator::start();
    let door = Door::start(&emulator.base, Launch::default()).await;
    for (provider, method, target) in UNMETERED {
        let headers = auth(provider, &door.key);
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let res = raw_request(door.hub.port, method, target, &pairs, b"{}").await;
        assert_eq!(res.status, 404, "{method} {target}");
        assert_eq!(
            native_code(provider, &res.json()).as_deref(),
            Some("endpoint_not_supported")
        );
        let message = res.json().to_string();
        assert!(message.contains("use a connection with your own key"));
    }
    assert_eq!(
        emulator.received().await.as_array().unwrap().len(),
        0,
        "no upstream call"
    );

    door.bind_byok().await;
    for (provider, method, target) in UNMETERED {
        let headers = auth(provider, &door.key);
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let res = raw_request(door.hub.port, method, target, &pairs, b"{}").await;
        assert_ne!(
            native_code(provider, &res.json()).as_deref(),
            Some("endpoint_not_supported"),
            "{target} is forwarded on BYOK"
        );
        let path = target.split_once('/').unwrap().1;
        let path = &path[path.find('/').unwrap()..];
        assert!(
            emulator.received_count(path).await >= 1,
            "{target} went to the provider"
        );
        let row = &door.rows().await[0];
        assert_eq!(row["endpoint"], path, "{target}");
        assert_eq!(row["status"], res.status);
        assert_eq!(row["estimated"], true);
        assert_eq!(row["billed_to"], "provider");
        assert!(row["cost_micro_usd"].is_null(), "cost unknown: {row}");
    }
}

#[tokio::test]
async fn unauthenticated_uploads_are_answered_unread_and_memory_stays_flat() {
    let emulator = Emulator::start();
    let door = Door::start(&emulator.base, Launch::default()).await;
    let (rss_before, _) = memory_kib(door.hub.pid());
    let started = Instant::now();
    let mut uploads = Vec::new();
    for i in 0..16 {
        let port = door.hub.port;
        uploads.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let key = if i % 2 == 0 {
                "whk_nosuchap_0123456789abcdef0123456789abcdef".to_string()
            } else {
                String::new()
            };
            let head = format!(
                "POST /openai/v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                32 * 1024 * 1024
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            // Trickle a little of the promised 32 MiB; the answer must not wait for the rest.
            let _ = socket.write_all(&[b' '; 256 * 1024]).await;
            let mut answer = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
                .await
                .unwrap()
                .unwrap();
            common::upstream::parse_response(&answer[..n]).status
        }));
    }
    for upload in uploads {
        assert_eq!(upload.await.unwrap(), 401);
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let (rss_after, _) = memory_kib(door.hub.pid());
    assert!(
        rss_after < rss_before + 40 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
}

fn openai_stream_body() -> Value {
    json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Hi"}]})
}

#[tokio::test]
async fn a_huge_upstream_answer_is_cut_and_recorded() {
    let mock = MockUpstream::start(Answer::Endless {
        head: "HTTP/1.1 200 OK\r\ncontent-type: application/json".into(),
        prefix: br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":""#.to_vec(),
        chunk: vec![b'x'; 64 * 1024],
        total: 200 * 1024 * 1024,
    })
    .await;
    let door = Door::start(
        &mock.base,
        Launch::default()
            .arg("--max-upstream-body-mib")
            .arg("16")
            .arg("--max-stream-event-mib")
            .arg("4"),
    )
    .await;
    let call = &calls()[0];
    let target = format!("{}{}", call.prefix, call.path);
    let (status, body) = door.raw(call, &target, &[]).await;
    assert_eq!(status, 502);
    assert_eq!(
        body["error"]["code"], "upstream_connection_failed",
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too large")
    );
    let row = &door.rows().await[0];
    assert_eq!(row["error_code"], "upstream_too_large");

    mock.set_answer(Answer::Endless {
        head: "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream".into(),
        prefix: br#"data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":""#.to_vec(),
        chunk: vec![b'x'; 64 * 1024],
        total: 200 * 1024 * 1024,
    });
    let res = client()
        .post(door.hub.url("/openai/v1/chat/completions"))
        .bearer_auth(&door.key)
        .json(&openai_stream_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut received = 0usize;
    let mut last = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        received += chunk.len();
        last = chunk.to_vec();
    }
    assert!(
        received < 8 * 1024 * 1024,
        "cut near the 4 MiB cap: {received}"
    );
    let last = String::from_utf8_lossy(&last);
    assert!(last.contains("upstream_connection_failed"), "{last}");
    let row = &door.rows().await[0];
    assert_eq!(row["error_code"], "upstream_too_large");
    let (_, peak) = memory_kib(door.hub.pid());
    assert!(peak < 150 * 1024, "peak memory {peak} KiB");
}

#[tokio::test]
async fn only_allowlisted_headers_cross_and_the_app_key_stays_home() {
    let answer = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;
    let mock = MockUpstream::start(Answer::Whole {
        head: "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id: req_mock\r\nx-ratelimit-remaining-requests: 9\r\nset-cookie: upstream=1\r\naccess-control-allow-origin: *\r\nlocation: https://elsewhere.example/\r\nopenai-organization: org-owner".into(),
        body: answer.to_vec(),
    })
    .await;
    let door = Door::start(&mock.base, Launch::default()).await;
    let secret = door.key.rsplit('_').next().unwrap().to_string();
    let res = client()
        .post(
            door.hub
                .url("/openai/v1/chat/completions?key=x&api-version=1"),
        )
        .bearer_auth(&door.key)
        .header("openai-organization", "org-app")
        .header("x-forwarded-for", "10.1.2.3")
        .header("x-stainless-lang", "python")
        .header("cookie", "whub_session=abc")
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let names: Vec<String> = res.headers().keys().map(|k| k.to_string()).collect();
    for absent in [
        "set-cookie",
        "access-control-allow-origin",
        "location",
        "openai-organization",
    ] {
        assert!(
            !names.contains(&absent.to_string()),
            "{absent} reached the app: {names:?}"
        );
    }
    assert_eq!(res.headers()["x-request-id"], "req_mock");
    assert_eq!(res.headers()["x-ratelimit-remaining-requests"], "9");

    // The key in a place no SDK uses is refused before anything is forwarded.
    let sent = mock.received().len();
    for (name, value) in [
        ("api-key", door.key.clone()),
        ("x-stainless-lang", door.key.clone()),
        ("user-agent", format!("app/{secret}")),
    ] {
        let res = client()
            .post(door.hub.url("/openai/v1/chat/completions"))
            .bearer_auth(&door.key)
            .header(name, value)
            .json(&json!({"model": "gpt-4o-mini", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{name}");
    }
    let res = client()
        .post(
            door.hub
                .url(&format!("/openai/v1/chat/completions?user={secret}")),
        )
        .bearer_auth(&door.key)
        .json(&json!({"model": "gpt-4o-mini", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "the key in the query");
    assert_eq!(
        mock.received().len(),
        sent,
        "refused calls never left the Hub"
    );

    let upstream = String::from_utf8_lossy(&mock.received()[0]).to_ascii_lowercase();
    assert!(
        !upstream.contains(&secret),
        "the app key reached the provider"
    );
    assert!(!upstream.contains("whk_"));
    assert!(
        upstream.starts_with("post /v1/chat/completions http/1.1\r\n"),
        "{upstream}"
    );
    assert!(upstream.contains(&format!(
        "authorization: bearer {}",
        OPENAI_KEY.to_ascii_lowercase()
    )));
    assert!(upstream.contains("x-stainless-lang: python"));
    for absent in ["org-app", "10.1.2.3", "whub_session", "api-version"] {
        assert!(
            !upstream.contains(absent),
            "{absent} went upstream: {upstream}"
        );
    }
}

#[tokio::test]
async fn tokens_per_minute_hold_under_concurrent_calls() {
    let emulator = Emulator::start();
    let door = Door::start(&emulator.base, Launch::default()).await;
    door.api(
        "PATCH",
        &format!("/api/v1/apps/{}", door.app_id),
        json!({"tpm_limit": 100}),
    )
    .await;
    let calls = (0..8).map(|_| {
        client()
            .post(door.hub.url("/openai/v1/chat/completions"))
            .bearer_auth(&door.key)
            .json(&json!({"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}))
            .send()
    });
    let answers = futures_util::future::join_all(calls).await;
    let mut ok = 0;
    for res in answers {
        let res = res.unwrap();
        match res.status().as_u16() {
            200 => ok += 1,
            429 => {
                assert!(res.headers().contains_key("retry-after"));
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["error"]["code"], "app_rate_limited");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1, "a limit that allows one call lets one through");
    assert_eq!(emulator.received_count("/v1/chat/completions").await, 1);

    // Every refusal of a known app is a row with its code; a guessed key is only counted.
    let rows = door.rows().await;
    let refused: Vec<&Value> = rows
        .iter()
        .filter(|r| r["error_code"] == "app_rate_limited")
        .collect();
    assert_eq!(refused.len(), 7);
    for row in refused {
        assert_eq!(row["status"], 429);
        assert_eq!(row["billed_to"], "none");
        assert_eq!(row["cost_micro_usd"], 0);
        assert_eq!(row["app_id"], door.app_id.as_str());
        assert_eq!(row["model"], "gpt-4o-mini");
    }
    let listed = client()
        .get(door.hub.url("/openai/v1/models"))
        .bearer_auth(&door.key)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let row = &door.rows().await[0];
    assert_eq!(row["endpoint"], "list_models");
    assert_eq!(row["billed_to"], "none", "a model list is not billable");
    let before = door.rows().await.len();
    let guess = client()
        .get(door.hub.url("/openai/v1/models"))
        .bearer_auth("whk_nosuchap_0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(guess.status(), 401);
    assert_eq!(door.rows().await.len(), before, "no row per guessed key");
}
