//! Load and what it measures: wrk for whole calls (requests/s, p50, p99), a streaming client
//! that reads each chunk's send time to tell its delay, and a process's CPU time and memory
//! from `/proc`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use super::upstreams::now_us;

/// One call shape: where it goes, with which headers and body.
#[derive(Clone)]
pub struct Call {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Point {
    pub connections: usize,
    pub requests: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub errors: u64,
    /// CPU time the measured process spent per request, when one was named.
    pub cpu_us_per_request: Option<f64>,
    /// Times the measured process's threads went to sleep or were preempted, per request:
    /// each hand-off between threads costs a wake-up.
    pub switches_per_request: Option<f64>,
}

/// Runs wrk against `call` for `secs` with `connections` open; `pid` is the process whose
/// CPU time per request to report.
pub fn wrk(work: &Path, call: &Call, connections: usize, secs: f64, pid: Option<u32>) -> Point {
    let script = work.join(format!("call-{}.lua", now_us()));
    std::fs::write(&script, lua(call)).unwrap();
    let threads = connections.clamp(1, 2);
    let cpu_before = pid.map(cpu_time);
    let switches_before = pid.map(context_switches);
    let out = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{}s", secs.ceil().max(1.0) as u64),
            "--timeout",
            "10s",
            "-s",
            script.to_str().unwrap(),
            &call.url,
        ])
        .output()
        .expect("wrk did not run (scripts/bench.sh installs it)");
    let cpu_after = pid.map(cpu_time);
    let switches_after = pid.map(context_switches);
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .unwrap_or_else(|| panic!("wrk printed no figures: {text}"));
    let f: Vec<f64> = line
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let requests = f[0] as u64;
    let cpu_us_per_request = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if requests > 0 => Some((b - a).as_secs_f64() * 1e6 / requests as f64),
        _ => None,
    };
    let switches_per_request = match (switches_before, switches_after) {
        (Some(a), Some(b)) if requests > 0 => Some(b.saturating_sub(a) as f64 / requests as f64),
        _ => None,
    };
    Point {
        connections,
        requests,
        rps: requests as f64 / (f[1] / 1e6),
        p50_us: f[2],
        p99_us: f[3],
        errors: f[4] as u64,
        cpu_us_per_request,
        switches_per_request,
    }
}

/// One point from several rounds of the same load: their requests and errors added, the
/// medians of their rates and percentiles, the CPU time and switches per request over all.
pub fn merge(rounds: &[Point]) -> Point {
    let median = |f: fn(&Point) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(f).collect();
        percentile(&mut v, 0.5)
    };
    let requests: u64 = rounds.iter().map(|p| p.requests).sum();
    let per_request = |f: fn(&Point) -> Option<f64>| {
        let total: Option<f64> = rounds
            .iter()
            .map(|p| f(p).map(|v| v * p.requests as f64))
            .sum();
        total.filter(|_| requests > 0).map(|t| t / requests as f64)
    };
    Point {
        connections: rounds.first().map_or(0, |p| p.connections),
        requests,
        rps: median(|p| p.rps),
        p50_us: median(|p| p.p50_us),
        p99_us: median(|p| p.p99_us),
        errors: rounds.iter().map(|p| p.errors).sum(),
        cpu_us_per_request: per_request(|p| p.cpu_us_per_request),
        switches_per_request: per_request(|p| p.switches_per_request),
    }
}

fn lua(call: &Call) -> String {
    let mut s = String::from("wrk.method = \"POST\"\n");
    s += &format!("wrk.body = [==[{}]==]\n", call.body);
    for (name, value) in &call.headers {
        s += &format!("wrk.headers[\"{name}\"] = [==[{value}]==]\n");
    }
    if std::env::var_os("BENCH_SHOW_ERRORS").is_some() {
        // Slows wrk down (every body goes through Lua), so only when asked.
        s += r#"
local shown = false
function response(status, headers, body)
  if status >= 300 and not shown then
    shown = true
    io.stderr:write("first error: " .. status .. " " .. body .. "\n")
  end
end
"#;
    }
    s += r#"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"#;
    s
}

/// User plus system CPU time of `pid` so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks())
}

/// Voluntary and involuntary context switches of every thread of `pid` so far (threads that
/// ended meanwhile are not counted).
pub fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A line of `/proc/PID/status` in KiB, e.g. `VmRSS` or `VmHWM`.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One stream as the client saw it.
pub struct StreamSeen {
    /// From sending the request to the first chunk's bytes.
    pub first_byte: Duration,
    /// Each timestamped chunk's delay: arrival minus the time the upstream sent it.
    pub delays_us: Vec<f64>,
    /// Reads that carried more than one timestamped chunk.
    pub coalesced_reads: usize,
    pub chunks: usize,
}

/// Sends one streamed chat completion and reads it to the end.
pub async fn stream_once(client: &reqwest::Client, call: &Call) -> StreamSeen {
    let mut req = client.post(&call.url).body(call.body.clone());
    for (name, value) in &call.headers {
        req = req.header(name, value);
    }
    let started = Instant::now();
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "stream refused");
    let mut body = res.bytes_stream();
    let mut seen = StreamSeen {
        first_byte: Duration::ZERO,
        delays_us: Vec::new(),
        coalesced_reads: 0,
        chunks: 0,
    };
    let mut pending = String::new();
    while let Some(bytes) = body.next().await {
        let bytes = bytes.unwrap();
        let arrived = now_us();
        if seen.first_byte.is_zero() {
            seen.first_byte = started.elapsed();
        }
        pending.push_str(&String::from_utf8_lossy(&bytes));
        let mut in_this_read = 0;
        while let Some(at) = pending.find("\"content\":\"t") {
            let digits: String = pending[at + 12..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if !pending[at + 12 + digits.len()..].starts_with('"') {
                break; // the rest of this chunk is still on its way
            }
            let sent: u64 = digits.parse().unwrap();
            seen.delays_us.push(arrived.saturating_sub(sent) as f64);
            in_this_read += 1;
            pending.drain(..at + 12 + digits.len());
        }
        if in_this_read > 1 {
            seen.coalesced_reads += 1;
        }
        seen.chunks += in_this_read;
    }
    seen
}

pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}
