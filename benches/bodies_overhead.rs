//! What keeping request and response bodies adds to the gateway's latency: the same small
//! chat completion (whole and streamed) at concurrency 1, straight to a standalone emulator
//! (the baseline), through a Hub keeping bodies for 7 days and through one keeping none,
//! interleaved in the same run so all three see the same machine.
//!
//! Run with `cargo bench --bench bodies_overhead` (release build).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{PASSPHRASE, Proc, app_key, median, ms, percentile, spawn};

const WARMUP: usize = 200;
const SAMPLES: usize = 2000;
const PLATFORM_KEY: &str = "sk-proj-testBenchPlatformKeyAAAAAAAAAAAAAAAAAAAA";

/// A Hub on `emulator` keeping bodies for `days` (0 = off), with its app key.
async fn hub(
    client: &reqwest::Client,
    emulator: &str,
    days: u32,
) -> (Proc, tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (proc, base) = spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--openai-base-url",
            emulator,
        ],
        &[
            ("WORKSHOP_HUB_PASSPHRASE", PASSPHRASE),
            ("WORKSHOP_HUB_MANAGED_OPENAI_KEY", PLATFORM_KEY),
        ],
    );
    let (cookie, key) = app_key(client, &base).await;
    let settings: Value = client
        .patch(format!("{base}/api/v1/settings"))
        .header("cookie", &cookie)
        .json(&json!({"keep_bodies_days": days}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["keep_bodies_days"], days);
    (proc, dir, base, key)
}

async fn call(client: &reqwest::Client, url: &str, key: &str, body: &Value) -> Duration {
    let started = Instant::now();
    let res = client
        .post(url)
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();
    started.elapsed()
}

/// Medians of the three lanes, interleaved: (direct, bodies kept, bodies off) and p90s.
async fn measure(
    client: &reqwest::Client,
    lanes: [(&str, &str); 3],
    body: &Value,
) -> [(Duration, Duration); 3] {
    for _ in 0..WARMUP {
        for (url, key) in lanes {
            call(client, url, key, body).await;
        }
    }
    let mut samples: [Vec<Duration>; 3] = Default::default();
    for _ in 0..SAMPLES {
        for (lane, (url, key)) in lanes.iter().enumerate() {
            samples[lane].push(call(client, url, key, body).await);
        }
    }
    samples.map(|s| (median(s.clone()), percentile(s, 0.9)))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    workshop_hub::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    let (_emu, emulator) = spawn(&["emulator", "--listen", "127.0.0.1:0"], &[]);
    let (_kept_hub, _kept_dir, kept, kept_key) = hub(&client, &emulator, 7).await;
    let (_off_hub, _off_dir, off, off_key) = hub(&client, &emulator, 0).await;
    let whole = json!({"model": "gpt-4o-mini", "max_completion_tokens": 16,
                       "messages": [{"role": "user", "content": "Say hi"}]});
    let mut streamed = whole.clone();
    streamed["stream"] = json!(true);
    let direct = format!("{emulator}/v1/chat/completions");
    let kept = format!("{kept}/openai/v1/chat/completions");
    let off = format!("{off}/openai/v1/chat/completions");
    println!("bodies kept (7 days) vs not kept (0), concurrency 1, {SAMPLES} samples per lane");
    for (what, body) in [("whole", &whole), ("streamed", &streamed)] {
        let [(d50, d90), (k50, k90), (o50, o90)] = measure(
            &client,
            [
                (&direct, PLATFORM_KEY),
                (&kept, &kept_key),
                (&off, &off_key),
            ],
            body,
        )
        .await;
        let (added_kept, added_off) = (k50.saturating_sub(d50), o50.saturating_sub(d50));
        println!("  {what} chat completion");
        println!(
            "    direct:      median {:>7.3} ms  p90 {:>7.3} ms",
            ms(d50),
            ms(d90)
        );
        println!(
            "    bodies off:  median {:>7.3} ms  p90 {:>7.3} ms  added {:>7.3} ms",
            ms(o50),
            ms(o90),
            ms(added_off)
        );
        println!(
            "    bodies kept: median {:>7.3} ms  p90 {:>7.3} ms  added {:>7.3} ms",
            ms(k50),
            ms(k90),
            ms(added_kept)
        );
        println!(
            "    keeping bodies adds {:+.1}% to the gateway's added latency",
            (ms(added_kept) - ms(added_off)) / ms(added_off).max(f64::EPSILON) * 100.0
        );
    }
}
