//! Fills a Hub data dir with synthetic usage for benchmarks: `seed_usage DIR [ROWS]`.
//! Rows are spread over the last 90 days, three providers, ten apps and both billings,
//! written through the store in large transactions (rows, ledger charges and rollups).

use std::error::Error;
use std::path::PathBuf;

use chrono::{Duration, Utc};
use workshop_hub::ledger::{BilledTo, UsageRecord};
use workshop_hub::money::MicroUsd;
use workshop_hub::providers::Provider;
use workshop_hub::store::Store;

const BATCH: usize = 50_000;
const MODELS: [(Provider, &str); 5] = [
    (Provider::OpenAi, "gpt-4o-mini"),
    (Provider::OpenAi, "gpt-4.1"),
    (Provider::Anthropic, "claude-sonnet-4-5"),
    (Provider::Anthropic, "claude-haiku-4-5"),
    (Provider::Gemini, "gemini-2.5-flash"),
];

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: seed_usage DIR [ROWS]")?);
    let rows: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let store = Store::open(&dir)?;
    // Enough credit that a million charges leave a positive balance.
    store.append_ledger("topup", MicroUsd::from_dollars(1_000_000), "benchmark")?;
    let started = std::time::Instant::now();
    let mut written = 0;
    while written < rows {
        let n = BATCH.min(rows - written);
        let batch: Vec<UsageRecord> = (written..written + n).map(|i| record(i, rows)).collect();
        store.insert_usage_batch(&batch)?;
        written += n;
    }
    println!(
        "seeded {written} usage rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The i-th of `total` rows, oldest first, evenly spread over 90 days up to now.
fn record(i: usize, total: usize) -> UsageRecord {
    let h = mix(i as u64);
    let span_secs = 90 * 24 * 3600_i64;
    let offset = span_secs - span_secs * i as i64 / total.max(1) as i64;
    let (provider, model) = MODELS[(h % 5) as usize];
    let byok = h % 7 == 0;
    let failed = h % 23 == 0;
    let input = 50 + h % 4_000;
    let output = if failed { 0 } else { 20 + (h >> 8) % 1_500 };
    UsageRecord {
        id: 0,
        started_at: Utc::now() - Duration::seconds(offset),
        app_id: Some(format!("app-{}", (h >> 16) % 10)),
        connection_id: Some(if byok {
            format!("byok-{provider}")
        } else {
            format!("managed-{provider}")
        }),
        provider,
        model: Some(model.to_string()),
        endpoint: "/v1/chat/completions".to_string(),
        streamed: h % 2 == 0,
        status: if failed { 429 } else { 200 },
        error_code: failed.then(|| "rate_limit_exceeded".to_string()),
        input_tokens: input,
        cached_input_tokens: 0,
        cache_write_tokens: 0,
        output_tokens: output,
        reasoning_tokens: 0,
        cost: Some(MicroUsd((input + output * 4) as i64 / 5)),
        billed_to: if byok {
            BilledTo::Provider
        } else {
            BilledTo::Credits
        },
        estimated: h % 31 == 0,
        latency_ms: 200 + (h >> 24) % 3_000,
        ttfb_ms: Some(50 + (h >> 32) % 400),
        surface: workshop_hub::ledger::Surface::Native,
        queued_ms: Some(h % 3),
        attempts: Some(1 + u32::from(h % 50 == 0)),
        provider_request_id: Some(format!("req_{h:016x}")),
    }
}

/// A cheap deterministic scramble (splitmix64), so data sets are reproducible.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
