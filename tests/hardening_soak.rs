//! A soak: mixed streamed and non-streamed calls of every provider surface through one Hub for
//! a bounded time, on loopback only. No call may fail, resident memory and open file
//! descriptors may not grow past a small bound after warm-up, latency stays where it started,
//! and the books agree with what was served.
//!
//! `WORKSHOP_HUB_SOAK_SECS` sets the duration (default 60; e.g. 1800 for half an hour) and
//! `WORKSHOP_HUB_SOAK_MAX_REQUESTS` caps the number of calls (default 1,000,000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::calls::{Books, Surface, call};
use common::upstream::memory_kib;
use common::{Launch, PASSPHRASE, TestHub, client, create_app, sign_in};
use serde_json::json;

const CLIENTS: usize = 8;
/// Growth allowed after warm-up: SQLite's page cache and allocator arenas settle in steps.
const RSS_GROWTH_KIB: u64 = 24 * 1024;
/// Growth allowed over the second half of the run, when every cache has long settled.
const RSS_LATE_GROWTH_KIB: u64 = 8 * 1024;
const FD_GROWTH: usize = 8;
/// The last window's p99 may be at most this many times the first window's (plus a few
/// milliseconds: two cores are shared with whatever else the machine runs).
const P99_FACTOR: f64 = 4.0;
const P99_SLACK_MS: f64 = 50.0;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn p99(mut ms: Vec<f64>) -> f64 {
    assert!(!ms.is_empty(), "a latency window with no calls");
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() as f64 * 0.99).ceil() as usize).clamp(1, ms.len()) - 1]
}

/// One call's end, seconds since the soak started, and its latency in ms.
type Sample = (f64, f64);

struct Load {
    served: AtomicUsize,
    failures: Mutex<Vec<String>>,
    samples: Mutex<Vec<Sample>>,
    stop: AtomicBool,
    started: Instant,
    max_requests: usize,
}

async fn client_loop(load: Arc<Load>, base: String, key: String, n: usize) {
    let http = client();
    let mut i = n;
    while !load.stop.load(Ordering::Relaxed) {
        if load.served.fetch_add(1, Ordering::SeqCst) >= load.max_requests {
            load.served.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let surface = Surface::ALL[i % Surface::ALL.len()];
        let stream = (i / Surface::ALL.len()) % 2 == 0;
        let got = call(
            &http,
            &base,
            &key,
            surface,
            stream,
            &format!("soak {i}"),
            None,
        )
        .await;
        if got.status != 200 || !got.whole {
            load.failures.lock().unwrap().push(format!(
                "{} stream={stream}: {} {}",
                surface.name(),
                got.status,
                got.text()
            ));
        }
        let at = load.started.elapsed().as_secs_f64();
        let ms = got.elapsed.as_secs_f64() * 1000.0;
        load.samples.lock().unwrap().push((at, ms));
        i += CLIENTS;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_mixed_load_serves_everything_without_growing() {
    let secs = env_number("WORKSHOP_HUB_SOAK_SECS", 60).max(20) as f64;
    let max_requests = env_number("WORKSHOP_HUB_SOAK_MAX_REQUESTS", 1_000_000) as usize;
    let warm_up = (secs * 0.15).max(5.0);
    let window = (secs / 6.0).clamp(5.0, 60.0);

    let hub = TestHub::start(Launch::default().arg("--offline").unlocked());
    let cookie = sign_in(&hub, PASSPHRASE).await;
    let books = Books {
        http: client(),
        base: hub.base.clone(),
        cookie: cookie.clone(),
    };
    // Enough credit for any soak length.
    let (s, _) = books
        .send(
            "POST",
            "/api/v1/credits",
            json!({"amount_micro_usd": 1_000_000_000i64, "note": "soak"}),
        )
        .await;
    assert_eq!(s, 200);
    let key = create_app(&hub, &cookie, "soak").await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let pid = hub.pid();
    let at_start = (memory_kib(pid).0, open_fds(pid));

    let load = Arc::new(Load {
        served: AtomicUsize::new(0),
        failures: Mutex::new(Vec::new()),
        samples: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        started: Instant::now(),
        max_requests,
    });
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client_loop(load.clone(), hub.base.clone(), key.clone(), n)))
        .collect();

    tokio::time::sleep(Duration::from_secs_f64(warm_up)).await;
    let after_warm_up = (memory_kib(pid).0, open_fds(pid));
    let mut peak = after_warm_up;
    let mut trace = Vec::new();
    while load.started.elapsed().as_secs_f64() < secs
        && load.served.load(Ordering::SeqCst) < max_requests
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = (memory_kib(pid).0, open_fds(pid));
        peak = (peak.0.max(now.0), peak.1.max(now.1));
        trace.push((load.served.load(Ordering::SeqCst), now.0));
    }
    load.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let at_end = (memory_kib(pid).0, open_fds(pid));
    let served = load.served.load(Ordering::SeqCst);
    let elapsed = load.started.elapsed().as_secs_f64();

    let samples = load.samples.lock().unwrap().clone();
    let in_window = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, ms)| *ms)
            .collect::<Vec<_>>()
    };
    let first = p99(in_window(warm_up, warm_up + window));
    let last = p99(in_window(elapsed - window, elapsed + 1.0));

    eprintln!(
        "soak: {served} calls in {elapsed:.0} s ({:.0}/s) by {CLIENTS} clients; \
         RSS {} KiB at start, {} KiB after warm-up, {} KiB peak, {} KiB at end; \
         fds {} at start, {} after warm-up, {} peak, {} at end; \
         p99 {first:.1} ms in the first window, {last:.1} ms in the last",
        served as f64 / elapsed,
        at_start.0,
        after_warm_up.0,
        peak.0,
        at_end.0,
        at_start.1,
        after_warm_up.1,
        peak.1,
        at_end.1,
    );

    let step = (trace.len() / 12).max(1);
    let curve: Vec<String> = trace
        .iter()
        .step_by(step)
        .map(|(n, kib)| format!("{n}:{}M", kib / 1024))
        .collect();
    eprintln!("soak: calls:RSS along the way {}", curve.join(" "));

    let half_way = trace[trace.len() / 2].1;
    let failures = load.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {served} calls failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(served >= 500, "the soak was real: {served} calls");
    assert!(
        peak.0 <= after_warm_up.0 + RSS_GROWTH_KIB,
        "RSS grew from {} to {} KiB",
        after_warm_up.0,
        peak.0
    );
    assert!(
        at_end.0 <= half_way + RSS_LATE_GROWTH_KIB,
        "RSS still grew in the second half: {half_way} to {} KiB",
        at_end.0
    );
    assert!(
        peak.1 <= after_warm_up.1 + FD_GROWTH && at_end.1 <= after_warm_up.1 + FD_GROWTH,
        "fds grew from {} to {} (end {})",
        after_warm_up.1,
        peak.1,
        at_end.1
    );
    assert!(
        last <= first * P99_FACTOR + P99_SLACK_MS,
        "p99 went from {first:.1} ms to {last:.1} ms"
    );

    // Every call is in the books, and the credits agree with them.
    let totals = books.get("/api/v1/usage?group_by=provider").await["totals"].clone();
    assert_eq!(totals["requests"], served as u64, "{totals}");
    assert_eq!(totals["errors"], 0, "{totals}");
    let (balance, held) = books.credits().await;
    assert_eq!(held, 0);
    assert_eq!(
        balance,
        books.credited().await - totals["credits_micro_usd"].as_i64().unwrap()
    );
}
