//! What translation adds to a call: the same small Claude request at concurrency 1, natively
//! through the Hub (`/anthropic/v1/messages`) and in OpenAI's dialect through the compatible
//! surface (`/v1/chat/completions`), whole and streamed, to the Hub's built-in emulator,
//! interleaved so both see the same machine.
//!
//! Run with `cargo bench --bench compat_overhead` (release build).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{PASSPHRASE, ms, percentile, spawn};

const WARMUP: usize = 200;
const SAMPLES: usize = 2000;

/// An app key on a Hub with enough credits that no request is refused.
async fn funded_app_key(client: &reqwest::Client, hub: &str) -> String {
    let (cookie, key) = support::app_key(client, hub).await;
    client
        .post(format!("{hub}/api/v1/credits"))
        .header("cookie", &cookie)
        .json(&json!({"amount_micro_usd": 1_000_000_000, "note": "bench"}))
        .send()
        .await
        .unwrap();
    key
}

struct Route {
    url: String,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

async fn call(client: &reqwest::Client, route: &Route) -> Duration {
    let started = Instant::now();
    let mut req = client.post(&route.url).json(&route.body);
    for (k, v) in &route.headers {
        req = req.header(*k, v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();
    started.elapsed()
}

async fn compare(client: &reqwest::Client, native: &Route, compat: &Route, what: &str) {
    for _ in 0..WARMUP {
        call(client, native).await;
        call(client, compat).await;
    }
    let mut base = Vec::with_capacity(SAMPLES);
    let mut translated = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        base.push(call(client, native).await);
        translated.push(call(client, compat).await);
    }
    let (b50, t50) = (
        percentile(base.clone(), 0.5),
        percentile(translated.clone(), 0.5),
    );
    let (b99, t99) = (percentile(base, 0.99), percentile(translated, 0.99));
    println!("{what}, concurrency 1, {SAMPLES} samples each");
    println!(
        "  native (/anthropic):  median {:>8.3} ms   p99 {:>8.3} ms",
        ms(b50),
        ms(b99)
    );
    println!(
        "  translated (/v1):     median {:>8.3} ms   p99 {:>8.3} ms",
        ms(t50),
        ms(t99)
    );
    println!(
        "  added by translation: median {:>8.3} ms   p99 {:>8.3} ms",
        ms(t50) - ms(b50),
        ms(t99) - ms(b99)
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    workshop_hub::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_hub, hub) = spawn(
        &[
            "serve",
            "--offline",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[("WORKSHOP_HUB_PASSPHRASE", PASSPHRASE)],
    );
    let client = reqwest::Client::new();
    let key = funded_app_key(&client, &hub).await;
    for stream in [false, true] {
        let native = Route {
            url: format!("{hub}/anthropic/v1/messages"),
            body: json!({"model": "claude-haiku-4-5", "max_tokens": 16, "stream": stream,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}]}),
            headers: vec![
                ("x-api-key", key.clone()),
                ("anthropic-version", "2023-06-01".into()),
            ],
        };
        let compat = Route {
            url: format!("{hub}/v1/chat/completions"),
            body: json!({"model": "claude-haiku-4-5", "max_tokens": 16, "stream": stream,
                "messages": [{"role": "user", "content": "Say hi"}]}),
            headers: vec![("authorization", format!("Bearer {key}"))],
        };
        let what = if stream {
            "streamed Claude message"
        } else {
            "whole Claude message"
        };
        compare(&client, &native, &compat, what).await;
    }
}
