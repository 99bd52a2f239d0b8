//! What the gateway adds to a request: small non-streamed chat completions at concurrency 1,
//! straight to a standalone emulator (the baseline) and through the Hub to the same emulator,
//! measured in the same run and interleaved so both see the same machine.
//!
//! Run with `cargo bench --bench gateway_overhead` (release build).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Instant;

use serde_json::json;
use support::{PASSPHRASE, app_key, median, ms, percentile, spawn};

const WARMUP: usize = 300;
const SAMPLES: usize = 3000;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    workshop_hub::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (_emu, emulator) = spawn(&["emulator", "--listen", "127.0.0.1:0"], &[]);
    let data = dir.path().join("data");
    let (_hub, hub) = spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--openai-base-url",
            &emulator,
        ],
        &[
            ("WORKSHOP_HUB_PASSPHRASE", PASSPHRASE),
            (
                "WORKSHOP_HUB_MANAGED_OPENAI_KEY",
                "sk-proj-testBenchPlatformKeyAAAAAAAAAAAAAAAAAAAA",
            ),
        ],
    );
    let client = reqwest::Client::new();
    let (_, app_key) = app_key(&client, &hub).await;
    // Plenty of credits so no request is refused.
    let body = json!({"model": "gpt-4o-mini", "max_completion_tokens": 16,
                      "messages": [{"role": "user", "content": "Say hi"}]});
    let direct = format!("{emulator}/v1/chat/completions");
    let via_hub = format!("{hub}/openai/v1/chat/completions");
    let call = |url: String, key: String| {
        let client = client.clone();
        let body = body.clone();
        async move {
            let started = Instant::now();
            let res = client
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.bytes().await.unwrap();
            started.elapsed()
        }
    };
    let provider_key = "sk-proj-testBenchPlatformKeyAAAAAAAAAAAAAAAAAAAA".to_string();
    for _ in 0..WARMUP {
        call(direct.clone(), provider_key.clone()).await;
        call(via_hub.clone(), app_key.clone()).await;
    }
    let mut base = Vec::with_capacity(SAMPLES);
    let mut gated = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        base.push(call(direct.clone(), provider_key.clone()).await);
        gated.push(call(via_hub.clone(), app_key.clone()).await);
    }
    let (b50, g50) = (median(base.clone()), median(gated.clone()));
    let (b90, g90) = (percentile(base, 0.9), percentile(gated, 0.9));
    let added = g50.saturating_sub(b50);
    println!(
        "gateway overhead, non-streamed chat completion, concurrency 1, {SAMPLES} samples each"
    );
    println!(
        "  direct to emulator: median {:>8.3} ms   p90 {:>8.3} ms",
        ms(b50),
        ms(b90)
    );
    println!(
        "  through the Hub:    median {:>8.3} ms   p90 {:>8.3} ms",
        ms(g50),
        ms(g90)
    );
    println!(
        "  added by the Hub:   median {:>8.3} ms   ratio {:.2}x the direct call",
        ms(added),
        ms(g50) / ms(b50)
    );
}
