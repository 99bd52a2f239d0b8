//! The bench's figures: a table per path and concurrency, the streaming and memory figures,
//! and the ratios the targets are stated in, printed and written as JSON and Markdown.

use std::fmt::Write as _;
use std::process::Command;

use serde::Serialize;

use super::Opts;
use super::hubs::Startup;
use super::load::{Point, StreamSeen, percentile};
use super::upstreams::Pace;

#[derive(Serialize)]
pub struct Row {
    pub name: String,
    pub points: Vec<Point>,
}

impl Row {
    pub fn new(name: &str, points: Vec<Point>) -> Row {
        Row {
            name: name.into(),
            points,
        }
    }

    fn at(&self, connections: usize) -> Option<&Point> {
        self.points.iter().find(|p| p.connections == connections)
    }
}

/// Streams straight to the streamer and through the Hub, and many open at once.
#[derive(Serialize, Default)]
pub struct Streaming {
    pub chunks_per_stream: usize,
    pub chunk_every_ms: f64,
    pub streams_each: usize,
    pub direct_first_byte_p50_us: f64,
    pub hub_first_byte_p50_us: f64,
    pub direct_chunk_delay_p50_us: f64,
    pub direct_chunk_delay_p99_us: f64,
    pub hub_chunk_delay_p50_us: f64,
    pub hub_chunk_delay_p99_us: f64,
    /// Reads that carried more than one chunk (a sign of coalescing), direct and via the Hub.
    pub direct_coalesced_reads: usize,
    pub hub_coalesced_reads: usize,
    pub hub_chunks_received: usize,
    pub open_streams: usize,
    pub open_streams_completed: usize,
    pub open_streams_peak_rss_kib: u64,
}

impl Streaming {
    pub fn from_samples(pace: Pace, base: &[StreamSeen], gated: &[StreamSeen]) -> Streaming {
        let first = |s: &[StreamSeen]| {
            let mut v: Vec<f64> = s.iter().map(|x| x.first_byte.as_secs_f64() * 1e6).collect();
            percentile(&mut v, 0.5)
        };
        let delays = |s: &[StreamSeen]| -> Vec<f64> {
            s.iter().flat_map(|x| x.delays_us.iter().copied()).collect()
        };
        let (mut d, mut h) = (delays(base), delays(gated));
        Streaming {
            chunks_per_stream: pace.chunks,
            chunk_every_ms: pace.every.as_secs_f64() * 1000.0,
            streams_each: base.len(),
            direct_first_byte_p50_us: first(base),
            hub_first_byte_p50_us: first(gated),
            direct_chunk_delay_p50_us: percentile(&mut d, 0.5),
            direct_chunk_delay_p99_us: percentile(&mut d, 0.99),
            hub_chunk_delay_p50_us: percentile(&mut h, 0.5),
            hub_chunk_delay_p99_us: percentile(&mut h, 0.99),
            direct_coalesced_reads: base.iter().map(|s| s.coalesced_reads).sum(),
            hub_coalesced_reads: gated.iter().map(|s| s.coalesced_reads).sum(),
            hub_chunks_received: gated.iter().map(|s| s.chunks).sum(),
            ..Streaming::default()
        }
    }
}

/// One target: what it says, the figure, and whether it was met.
#[derive(Serialize)]
pub struct Check {
    pub what: String,
    pub figure: String,
    /// `None` for a figure reported without a target.
    pub met: Option<bool>,
}

#[derive(Serialize)]
pub struct Report {
    pub machine: String,
    pub date: String,
    pub smoke: bool,
    pub seconds_per_point: f64,
    pub rows: Vec<Row>,
    pub litellm: Option<Point>,
    pub streaming: Option<Streaming>,
    pub idle_rss_kib: u64,
    pub stream_hub_idle_rss_kib: u64,
    pub startup: Startup,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(opts: &Opts) -> Report {
        Report {
            machine: machine(),
            date: shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            smoke: opts.smoke,
            seconds_per_point: opts.secs,
            rows: Vec::new(),
            litellm: None,
            streaming: None,
            idle_rss_kib: 0,
            stream_hub_idle_rss_kib: 0,
            startup: Startup::default(),
            checks: Vec::new(),
        }
    }

    fn row(&self, prefix: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name.starts_with(prefix))
    }

    /// Works out the ratios the targets name.
    fn check(&mut self, opts: &Opts) {
        let low = opts.concurrency[0];
        let high = *opts.concurrency.last().unwrap();
        let mid = if opts.concurrency.contains(&16) {
            16
        } else {
            high
        };
        let mut checks = Vec::new();
        let (Some(direct), Some(nginx), Some(hub)) = (
            self.row("direct"),
            self.row("nginx"),
            self.row("Workshop Hub, BYOK"),
        ) else {
            return;
        };
        if let (Some(n), Some(h), Some(d)) = (nginx.at(high), hub.at(high), direct.at(high)) {
            checks.push(ratio_check(
                &format!("c={high}: throughput Hub / nginx ≥ 0.5"),
                h.rps / n.rps,
                |r| r >= 0.5,
            ));
            checks.push(ratio_check(
                &format!("c={high}: p99 Hub / nginx ≤ 3"),
                h.p99_us / n.p99_us,
                |r| r <= 3.0,
            ));
            checks.push(info(
                &format!("c={high}: throughput Hub / direct"),
                format!("{:.2}", h.rps / d.rps),
            ));
        }
        if let (Some(n), Some(h), Some(d)) = (nginx.at(low), hub.at(low), direct.at(low)) {
            let (hub_added, nginx_added) = (h.p50_us - d.p50_us, n.p50_us - d.p50_us);
            checks.push(Check {
                what: format!("c={low}: added median, Hub / nginx ≤ 3"),
                figure: format!(
                    "{:.2} ({hub_added:.0} µs vs {nginx_added:.0} µs)",
                    hub_added / nginx_added.max(1.0)
                ),
                met: Some(hub_added <= 3.0 * nginx_added.max(1.0)),
            });
            checks.push(Check {
                what: format!("c={low}: Hub p99 ≤ 2 ms"),
                figure: format!("{:.2} ms", h.p99_us / 1000.0),
                met: Some(h.p99_us <= 2000.0),
            });
        }
        if let (Some(l), Some(h)) = (self.litellm, hub.at(mid)) {
            checks.push(ratio_check(
                &format!("c={mid}: throughput Hub / LiteLLM ≥ 300"),
                h.rps / l.rps.max(f64::MIN_POSITIVE),
                |r| r >= 300.0,
            ));
        }
        if let Some(managed) = self.row("Workshop Hub, managed") {
            if let (Some(m), Some(b)) = (managed.at(high), hub.at(high)) {
                checks.push(ratio_check(
                    &format!("c={high}: managed throughput / BYOK ≥ 0.9"),
                    m.rps / b.rps,
                    |r| r >= 0.9,
                ));
            }
            if let (Some(m), Some(b)) = (managed.at(low), hub.at(low)) {
                checks.push(ratio_check(
                    &format!("c={low}: managed median / BYOK ≤ 1.1"),
                    m.p50_us / b.p50_us,
                    |r| r <= 1.1,
                ));
            }
        }
        if let (Some(native), Some(translated)) = (
            self.row("Workshop Hub, Claude native")
                .and_then(|r| r.at(low)),
            self.row("Workshop Hub, Claude via /v1")
                .and_then(|r| r.at(low)),
        ) {
            let added = translated.p50_us - native.p50_us;
            checks.push(Check {
                what: format!("c={low}: translated median − native ≤ 100 µs"),
                figure: format!("{added:.0} µs"),
                met: Some(added <= 100.0),
            });
        }
        if let Some(s) = &self.streaming {
            let ttfb = s.hub_first_byte_p50_us - s.direct_first_byte_p50_us;
            checks.push(Check {
                what: "streaming: added time to first byte (p50) < 1 ms".into(),
                figure: format!("{ttfb:.0} µs"),
                met: Some(ttfb < 1000.0),
            });
            let chunk = s.hub_chunk_delay_p99_us - s.direct_chunk_delay_p99_us;
            checks.push(Check {
                what: "streaming: added per-chunk delay (p99) < 1 ms".into(),
                figure: format!(
                    "{chunk:.0} µs (p50 {:.0} µs)",
                    s.hub_chunk_delay_p50_us - s.direct_chunk_delay_p50_us
                ),
                met: Some(chunk < 1000.0),
            });
            checks.push(Check {
                what: "streaming: every chunk arrives on its own (no coalescing)".into(),
                figure: format!(
                    "{} of {} chunks; reads with >1 chunk: Hub {}, direct {}",
                    s.hub_chunks_received,
                    s.chunks_per_stream * s.streams_each,
                    s.hub_coalesced_reads,
                    s.direct_coalesced_reads
                ),
                met: Some(
                    s.hub_chunks_received == s.chunks_per_stream * s.streams_each
                        && s.hub_coalesced_reads <= s.direct_coalesced_reads + 1,
                ),
            });
            let mib = s.open_streams_peak_rss_kib as f64 / 1024.0;
            checks.push(Check {
                what: format!(
                    "{} concurrent streams all complete, peak RSS < 150 MiB",
                    s.open_streams
                ),
                figure: format!("{} completed, {mib:.1} MiB", s.open_streams_completed),
                met: Some(s.open_streams_completed == s.open_streams && mib < 150.0),
            });
        }
        let idle = self.idle_rss_kib as f64 / 1024.0;
        checks.push(Check {
            what: "idle RSS < 30 MiB".into(),
            figure: format!("{idle:.1} MiB"),
            met: Some(idle < 30.0),
        });
        checks.push(info(
            "start-up (locked / unlocked / Argon2)",
            format!(
                "{:.0} ms / {:.0} ms / {:.0} ms",
                self.startup.locked_ms, self.startup.unlocked_ms, self.startup.argon2_ms
            ),
        ));
        self.checks = checks;
    }

    fn markdown(&self, opts: &Opts) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Measured {} on {} ({} s per point{}).\n",
            self.date,
            self.machine,
            self.seconds_per_point,
            if self.smoke { ", smoke settings" } else { "" }
        );
        let mut head = String::from("| path |");
        let mut rule = String::from("|---|");
        for c in &opts.concurrency {
            let _ = write!(head, " c={c} req/s | c={c} p50 | c={c} p99 |");
            rule += "---:|---:|---:|";
        }
        head += " Hub CPU/req | Hub switches/req at c=1 |";
        rule += "---:|---:|";
        let _ = writeln!(md, "{head}\n{rule}");
        let mut rows: Vec<(&str, &[Point])> = self
            .rows
            .iter()
            .map(|r| (r.name.as_str(), r.points.as_slice()))
            .collect();
        let litellm = self.litellm.map(|p| [p]);
        if let Some(l) = &litellm {
            rows.push(("LiteLLM proxy (1 worker, no database)", l.as_slice()));
        }
        for (name, points) in rows {
            let _ = write!(md, "| {name} |");
            for c in &opts.concurrency {
                match points.iter().find(|p| p.connections == *c) {
                    Some(p) => {
                        let _ = write!(
                            md,
                            " {:.0}{} | {} | {} |",
                            p.rps,
                            if p.errors > 0 {
                                format!(" ({} errors)", p.errors)
                            } else {
                                String::new()
                            },
                            micros(p.p50_us),
                            micros(p.p99_us)
                        );
                    }
                    None => md += " – | – | – |",
                }
            }
            let last = points.last();
            let cpu = last.and_then(|p| p.cpu_us_per_request);
            let switches = points.first().and_then(|p| p.switches_per_request);
            let _ = writeln!(
                md,
                " {} | {} |",
                cpu.map_or("–".into(), |c| format!("{c:.0} µs")),
                switches.map_or("–".into(), |s| format!("{s:.1}"))
            );
        }
        if let Some(s) = &self.streaming {
            let _ = writeln!(
                md,
                "\nStreams of {} chunks, one every {} ms, {} each way: first byte p50 {} direct, {} via the Hub; \
                 per-chunk delay p50/p99 {}/{} direct, {}/{} via the Hub.",
                s.chunks_per_stream,
                s.chunk_every_ms,
                s.streams_each,
                micros(s.direct_first_byte_p50_us),
                micros(s.hub_first_byte_p50_us),
                micros(s.direct_chunk_delay_p50_us),
                micros(s.direct_chunk_delay_p99_us),
                micros(s.hub_chunk_delay_p50_us),
                micros(s.hub_chunk_delay_p99_us),
            );
        }
        md += "\n| target | figure | met |\n|---|---|---|\n";
        for c in &self.checks {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                c.what,
                c.figure,
                match c.met {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "–",
                }
            );
        }
        md
    }

    pub fn print_and_write(mut self, opts: &Opts) {
        self.check(opts);
        let md = self.markdown(opts);
        println!("{md}");
        std::fs::create_dir_all(&opts.out).unwrap();
        std::fs::write(opts.out.join("gateway.md"), &md).unwrap();
        let json = serde_json::to_string_pretty(&self).unwrap();
        std::fs::write(opts.out.join("gateway.json"), json).unwrap();
        println!("written: {}/gateway.{{md,json}}", opts.out.display());
    }
}

fn ratio_check(what: &str, ratio: f64, ok: impl Fn(f64) -> bool) -> Check {
    Check {
        what: what.into(),
        figure: format!("{ratio:.2}"),
        met: Some(ok(ratio)),
    }
}

fn info(what: &str, figure: String) -> Check {
    Check {
        what: what.into(),
        figure,
        met: None,
    }
}

fn micros(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|x| x.1.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

fn shell(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
