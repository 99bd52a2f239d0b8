//! The gateway benchmark: what the Hub adds to a call, side by side with a direct call and
//! with nginx as a plain reverse proxy, all measured in one run on this machine.
//!
//! It starts its own upstreams (nginx answering a canned chat completion and Claude message,
//! and an in-process streamer sending timestamped chunks at a fixed rate), the Hub with a
//! BYOK and a managed connection and an app for each, and drives the load with wrk. It prints
//! a table with ratios and writes it as JSON and Markdown (`target/bench/gateway.{json,md}`).
//!
//!   scripts/bench.sh                 the full run (a few minutes)
//!   scripts/bench.sh --smoke         tiny settings, to prove the bench runs
//!   scripts/bench.sh --litellm       adds LiteLLM's proxy on the same upstream and load
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod hubs;
mod litellm;
mod load;
mod report;
mod upstreams;

use std::path::PathBuf;
use std::time::Duration;

use hubs::HubProc;
use load::{Call, Point, StreamSeen};
use report::{Report, Row, Streaming};
use upstreams::{Nginx, Pace};

/// What the run does, from the command line.
pub struct Opts {
    pub smoke: bool,
    pub litellm: bool,
    /// Record a CPU profile of the Hub (perf) under BYOK load, instead of the full run.
    pub profile: bool,
    pub secs: f64,
    pub concurrency: Vec<usize>,
    pub streams: usize,
    pub pace: Pace,
    pub open_streams: usize,
    pub out: PathBuf,
}

impl Opts {
    fn from_args() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let smoke = args.iter().any(|a| a == "--smoke");
        let litellm = args.iter().any(|a| a == "--litellm");
        let profile = args.iter().any(|a| a == "--profile");
        let out = std::env::var("BENCH_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench"));
        if smoke {
            return Opts {
                smoke,
                litellm,
                profile,
                secs: 1.0,
                concurrency: vec![1, 4],
                streams: 2,
                pace: Pace {
                    chunks: 20,
                    every: Duration::from_millis(2),
                },
                open_streams: 20,
                out,
            };
        }
        Opts {
            smoke,
            litellm,
            profile,
            secs: 5.0,
            concurrency: vec![1, 16, 32],
            streams: 20,
            pace: Pace {
                chunks: 200,
                every: Duration::from_millis(2),
            },
            open_streams: 1000,
            out,
        }
    }
}

const CHAT: &str = r#"{"model":"gpt-4o-mini","max_completion_tokens":16,"messages":[{"role":"user","content":"Say hi"}]}"#;
const CLAUDE: &str = r#"{"model":"claude-haiku-4-5-20251001","max_tokens":16,"messages":[{"role":"user","content":"Say hi"}]}"#;
const CLAUDE_VIA_V1: &str = r#"{"model":"claude-haiku-4-5-20251001","max_tokens":16,"messages":[{"role":"user","content":"Say hi"}]}"#;
const PROVIDER_KEY: &str = "sk-proj-testBenchUpstreamKeyAAAAAAAAAAAAAAAAAAAAAAAA";

fn bearer(url: String, key: &str, body: &str) -> Call {
    Call {
        url,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Authorization".into(), format!("Bearer {key}")),
        ],
        body: body.into(),
    }
}

fn claude(url: String, key: &str) -> Call {
    Call {
        url,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("x-api-key".into(), key.into()),
            ("anthropic-version".into(), "2023-06-01".into()),
        ],
        body: CLAUDE.into(),
    }
}

fn main() {
    workshop_hub::tls::install_crypto_provider();
    let opts = Opts::from_args();
    let work = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut report = Report::new(&opts);

    let nginx = Nginx::start(work.path());
    let hub = runtime.block_on(HubProc::start_with_apps(
        work.path(),
        "whole",
        &nginx.direct,
        &nginx.direct,
    ));
    // BENCH_COMPARE_BIN adds a row for another build of the Hub (BYOK), measured in the
    // same rounds: the fair way to tell what a change to the hot path did.
    let other = match std::env::var("BENCH_COMPARE_BIN") {
        Ok(bin) => Some(runtime.block_on(HubProc::start_bin(
            &bin,
            work.path(),
            "other",
            &nginx.direct,
            &nginx.direct,
        ))),
        Err(_) => None,
    };
    report.idle_rss_kib = hub.idle_rss_kib;
    report.startup = hub.startup;

    if opts.profile {
        let call = bearer(
            format!("{}/openai/v1/chat/completions", hub.base),
            &hub.byok_key,
            CHAT,
        );
        profile(work.path(), &opts, &hub, &call);
        return;
    }
    let mut whole = vec![
        (
            "direct to the upstream",
            bearer(
                format!("{}/v1/chat/completions", nginx.direct),
                PROVIDER_KEY,
                CHAT,
            ),
            None,
        ),
        (
            "nginx as a reverse proxy",
            bearer(
                format!("{}/v1/chat/completions", nginx.proxied),
                PROVIDER_KEY,
                CHAT,
            ),
            None,
        ),
        (
            "Workshop Hub, BYOK",
            bearer(
                format!("{}/openai/v1/chat/completions", hub.base),
                &hub.byok_key,
                CHAT,
            ),
            Some(hub.pid),
        ),
        (
            "Workshop Hub, managed (holds, credits)",
            bearer(
                format!("{}/openai/v1/chat/completions", hub.base),
                &hub.managed_key,
                CHAT,
            ),
            Some(hub.pid),
        ),
        (
            "Workshop Hub, Claude native",
            claude(format!("{}/anthropic/v1/messages", hub.base), &hub.byok_key),
            Some(hub.pid),
        ),
        (
            "Workshop Hub, Claude via /v1 (translated)",
            bearer(
                format!("{}/v1/chat/completions", hub.base),
                &hub.byok_key,
                CLAUDE_VIA_V1,
            ),
            Some(hub.pid),
        ),
    ];
    if let Some(other) = &other {
        whole.push((
            "Workshop Hub, BYOK, BENCH_COMPARE_BIN",
            bearer(
                format!("{}/openai/v1/chat/completions", other.base),
                &other.byok_key,
                CHAT,
            ),
            Some(other.pid),
        ));
    }
    // A short warm-up so connection pools and caches are as in steady use.
    for (_, call, _) in &whole {
        load::wrk(work.path(), call, 4, 1.0, None);
    }
    // The paths take turns, a second each, so a change in the machine's load (a shared
    // virtual machine's neighbours) falls on all of them alike rather than on one row.
    let rounds = opts.secs.round().max(1.0) as usize;
    let mut points: Vec<Vec<Point>> = vec![Vec::new(); whole.len()];
    for &c in &opts.concurrency {
        let mut taken: Vec<Vec<Point>> = vec![Vec::new(); whole.len()];
        for _ in 0..rounds {
            for (i, (_, call, pid)) in whole.iter().enumerate() {
                taken[i].push(load::wrk(
                    work.path(),
                    call,
                    c,
                    opts.secs / rounds as f64,
                    *pid,
                ));
            }
        }
        for (i, rounds) in taken.iter().enumerate() {
            points[i].push(load::merge(rounds));
        }
        eprintln!("measured: concurrency {c}");
    }
    for ((name, _, _), points) in whole.iter().zip(points) {
        report.rows.push(Row::new(name, points));
    }
    if opts.litellm {
        report.litellm = litellm::measure(work.path(), &nginx.direct, &opts);
    }
    drop(hub);
    drop(other);

    report.streaming = Some(runtime.block_on(streaming(work.path(), &opts, &mut report)));
    report.print_and_write(&opts);
    drop(nginx);
}

/// Records the Hub's stacks with `perf` while wrk keeps 16 BYOK calls in flight (or
/// `BENCH_PROFILE_CONNECTIONS`): `perf report -i target/bench/perf.data` shows where the
/// time goes.
fn profile(work: &std::path::Path, opts: &Opts, hub: &HubProc, call: &Call) {
    load::wrk(work, call, 4, 1.0, None);
    std::fs::create_dir_all(&opts.out).unwrap();
    let data = opts.out.join("perf.data");
    // BENCH_PROFILER swaps perf for another tool that attaches with `-p PID`, e.g.
    // `strace -c -f` to count system calls.
    let mut perf = match std::env::var("BENCH_PROFILER") {
        Ok(tool) => {
            let mut words = tool.split_whitespace();
            let mut cmd = std::process::Command::new(words.next().unwrap());
            cmd.args(words);
            cmd
        }
        Err(_) => {
            let mut cmd = std::process::Command::new("perf");
            cmd.args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "1000",
                "--call-graph",
                "dwarf,16384",
                "-o",
            ])
            .arg(&data);
            cmd
        }
    }
    .args(["-p", &hub.pid.to_string()])
    .spawn()
    .expect("the profiler did not start (apt-get install linux-perf)");
    let connections = std::env::var("BENCH_PROFILE_CONNECTIONS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(16);
    let point = load::wrk(work, call, connections, opts.secs, Some(hub.pid));
    let _ = std::process::Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status();
    let _ = perf.wait();
    println!("{point:?}\nprofile: perf report -i {}", data.display());
}

/// Streams through the Hub and straight to the streamer, interleaved, then many at once.
async fn streaming(work: &std::path::Path, opts: &Opts, report: &mut Report) -> Streaming {
    let streamer = upstreams::start_streamer(opts.pace).await;
    let hub = HubProc::start_with_apps(work, "streams", &streamer, &streamer).await;
    let body = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Count"}]}"#;
    let direct = bearer(
        format!("{streamer}/v1/chat/completions"),
        PROVIDER_KEY,
        body,
    );
    let via_hub = bearer(
        format!("{}/openai/v1/chat/completions", hub.base),
        &hub.byok_key,
        body,
    );
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    load::stream_once(&client, &direct).await;
    load::stream_once(&client, &via_hub).await;
    let (mut base, mut gated): (Vec<StreamSeen>, Vec<StreamSeen>) = (Vec::new(), Vec::new());
    for _ in 0..opts.streams {
        base.push(load::stream_once(&client, &direct).await);
        gated.push(load::stream_once(&client, &via_hub).await);
    }
    let mut result = Streaming::from_samples(opts.pace, &base, &gated);
    eprintln!("measured: streaming");

    let many = many_streams(&hub, &via_hub, opts.open_streams, opts.pace.chunks).await;
    result.open_streams = opts.open_streams;
    result.open_streams_completed = many.0;
    result.open_streams_peak_rss_kib = many.1;
    report.stream_hub_idle_rss_kib = hub.idle_rss_kib;
    eprintln!("measured: {} open streams", opts.open_streams);
    result
}

/// Opens `count` streams through the Hub at once: how many completed whole, and the Hub's
/// peak resident memory meanwhile (sampled: its high-water mark would be Argon2's at start-up).
async fn many_streams(hub: &HubProc, call: &Call, count: usize, chunks: usize) -> (usize, u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pid = hub.pid;
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(load::status_kib(pid, "VmRSS"));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let (client, call) = (client.clone(), call.clone());
            tokio::spawn(async move { load::stream_once(&client, &call).await })
        })
        .collect();
    let mut completed = 0;
    for task in tasks {
        if task.await.is_ok_and(|seen| seen.chunks == chunks) {
            completed += 1;
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    (completed, sampler.join().unwrap())
}
