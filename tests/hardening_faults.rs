//! Every provider fault, for every provider surface, streamed and not, and an upstream that is
//! not there at all: the app gets the error in its provider's own shape, the usage record and
//! the credits are right (tokens produced before a failure are charged, nothing else is), no
//! credit hold stays behind, and the next normal call works.
//!
//! Each surface gets its own Hub (managed connections with platform keys, so credits are
//! held and settled) pointed at a port where nothing listens; after the unreachable rows an
//! emulator starts on that port and the fault rows run. The table is printed to stderr
//! (`cargo test --test hardening_faults -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::calls::{Books, Received, Surface, call, managed_cost};
use common::door::{Door, native_code as hub_code};
use common::{Emulator, Launch, client};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Every fault the emulator injects, by its `x-emulator-fault` name.
const FAULTS: [&str; 8] = [
    "rate_limit",
    "insufficient_quota",
    "server_error",
    "overloaded",
    "timeout",
    "drop_mid_stream",
    "error_mid_stream",
    "slow",
];
const UNREACHABLE: &str = "unreachable";
/// Long enough for a whole `slow` stream, short enough for the `timeout` rows to be quick.
const UPSTREAM_TIMEOUT_SECS: u64 = 4;

/// What one faulty call did.
#[derive(Debug, Clone)]
struct Row {
    surface: Surface,
    fault: &'static str,
    stream: bool,
    /// The HTTP status the app got.
    status: u16,
    /// The provider's (or the Hub's) error code in the native error the app got, if any.
    native: Option<String>,
    /// The Hub's stable code when the Hub itself refused (in the native shape's details).
    hub_code: Option<String>,
    /// The usage record's `error_code` (`ok` when none).
    code: String,
    charged: i64,
    estimated: bool,
    hold_released: bool,
    books_balance: bool,
    healthy: bool,
    whole: bool,
}

/// How much a row may be charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charge {
    Nothing,
    /// Some tokens were produced (or the whole answer was): more than zero.
    Some,
}

/// What each row must show: the app's status, the record's code and the charge.
fn expected(surface: Surface, fault: &str, stream: bool) -> (u16, &'static str, Charge) {
    let anthropic = surface == Surface::AnthropicMessages;
    match (fault, stream) {
        (UNREACHABLE, _) => (502, "upstream_connection_failed", Charge::Nothing),
        ("rate_limit", _) => (429, "rate_limit_exceeded", Charge::Nothing),
        ("insufficient_quota", _) if anthropic => (400, "insufficient_quota", Charge::Nothing),
        ("insufficient_quota", _) => (429, "insufficient_quota", Charge::Nothing),
        ("server_error", _) => (500, "http_500", Charge::Nothing),
        ("overloaded", _) if anthropic => (529, "http_529", Charge::Nothing),
        ("overloaded", _) => (503, "http_503", Charge::Nothing),
        ("timeout", _) => (504, "upstream_timeout", Charge::Nothing),
        // A whole body cut in half: nothing usable reached the app.
        ("drop_mid_stream", false) => (502, "upstream_connection_failed", Charge::Nothing),
        // A stream cut after some events: the tokens sent so far are charged.
        ("drop_mid_stream", true) => (200, "upstream_stream_cut", Charge::Some),
        ("error_mid_stream", false) if anthropic => (529, "http_529", Charge::Nothing),
        ("error_mid_stream", false) => (503, "http_503", Charge::Nothing),
        // The provider's error event after some text: that text is charged.
        ("error_mid_stream", true) => (200, "upstream_stream_error", Charge::Some),
        ("slow", _) => (200, "ok", Charge::Some),
        other => panic!("no expectation for {other:?}"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The error code inside a native error object, whichever provider's shape it is in.
fn native_code(v: &Value) -> Option<String> {
    let e = &v["error"];
    // OpenAI: {"error":{"message","type","code"}}; Anthropic: {"type":"error","error":{"type",
    // "message"}}; Gemini: {"error":{"code": 503, "status", "message"}}.
    e["message"].as_str()?;
    if v["type"] == "error" {
        return e["type"].as_str().map(str::to_owned);
    }
    if let Some(status) = e["status"].as_str() {
        e["code"].as_u64()?;
        return Some(status.to_owned());
    }
    e["type"].as_str()?;
    Some(
        e["code"]
            .as_str()
            .or(e["type"].as_str())
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The native error an app received: the whole body, or an error event in a stream.
fn native_error(r: &Received) -> Option<String> {
    if let Some(code) = native_code(&r.json()) {
        return Some(code);
    }
    let text = r.text();
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find_map(|v| native_code(&v).or_else(|| responses_error(&v)))
}

/// OpenAI Responses streams report a failure as a typed `error` event.
fn responses_error(v: &Value) -> Option<String> {
    (v["type"] == "error")
        .then(|| v["code"].as_str().map(str::to_owned))
        .flatten()
}

struct Bench {
    door: Door,
    books: Books,
}

impl Bench {
    /// Runs one call and reads back its record and the credits.
    async fn row(&self, surface: Surface, fault: &'static str, stream: bool) -> Row {
        let before = self.books.rows().await.len();
        let f = (fault != UNREACHABLE).then_some(fault);
        let marker = format!("{fault}-{stream}");
        let got = call(
            &self.books.http,
            &self.door.hub.base,
            &self.door.key,
            surface,
            stream,
            &marker,
            f,
        )
        .await;
        let rows = self.books.wait_rows(before + 1).await;
        assert_eq!(
            rows.len(),
            before + 1,
            "{} {fault} stream={stream}: one record per call; got {}",
            surface.name(),
            got.text()
        );
        let record = &rows[0];
        assert_eq!(record["endpoint"], surface.endpoint(stream), "{record}");
        assert_eq!(record["streamed"], stream, "{record}");
        let (hold_released, books_balance) = self.books_after(&rows).await;
        Row {
            surface,
            fault,
            stream,
            status: got.status,
            native: native_error(&got),
            hub_code: hub_code(surface.provider(), &got.json()),
            code: record["error_code"].as_str().unwrap_or("ok").to_string(),
            charged: record["cost_micro_usd"].as_i64().unwrap(),
            estimated: record["estimated"].as_bool().unwrap_or(false),
            hold_released,
            books_balance,
            healthy: false,
            whole: got.whole,
        }
    }

    /// Whether every hold was released and the balance is grants − recorded managed costs.
    async fn books_after(&self, rows: &[Value]) -> (bool, bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let (balance, held) = loop {
            let (balance, held) = self.books.credits().await;
            if held == 0 || Instant::now() > deadline {
                break (balance, held);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let credited = self.books.credited().await;
        (held == 0, balance == credited - managed_cost(rows))
    }

    /// A normal call after a fault: answered, recorded, books right.
    async fn healthy(&self, surface: Surface) -> bool {
        let before = self.books.rows().await.len();
        let ok = call(
            &self.books.http,
            &self.door.hub.base,
            &self.door.key,
            surface,
            false,
            "recovery",
            None,
        )
        .await;
        let rows = self.books.wait_rows(before + 1).await;
        let (released, balanced) = self.books_after(&rows).await;
        ok.status == 200 && rows[0]["error_code"].is_null() && released && balanced
    }
}

async fn run_surface(surface: Surface) -> Vec<Row> {
    let port = free_port();
    let upstream = format!("http://127.0.0.1:{port}");
    let launch = Launch::default()
        .arg("--upstream-timeout-secs")
        .arg(UPSTREAM_TIMEOUT_SECS.to_string())
        .arg("--stream-idle-timeout-secs")
        .arg("2");
    let door = Door::start(&upstream, launch).await;
    let books = Books {
        http: client(),
        base: door.hub.base.clone(),
        cookie: door.cookie.clone(),
    };
    let bench = Bench { door, books };
    let mut rows = Vec::new();
    for stream in [false, true] {
        rows.push(bench.row(surface, UNREACHABLE, stream).await);
    }
    let _emulator = Emulator::start_at(&format!("127.0.0.1:{port}"));
    for row in &mut rows {
        row.healthy = bench.healthy(surface).await;
    }
    for fault in FAULTS {
        for stream in [false, true] {
            let mut row = bench.row(surface, fault, stream).await;
            row.healthy = bench.healthy(surface).await;
            rows.push(row);
        }
    }
    assert_eq!(bench.books.get("/healthz").await["status"], "ok");
    rows
}

fn print_table(rows: &[Row]) {
    eprintln!(
        "\n{:<19} {:<19} {:<6} {:>6} {:<28} {:<27} {:>8} {:<4} {:<8} {:<6} {:<7}",
        "surface",
        "fault",
        "stream",
        "status",
        "native error",
        "record code",
        "charged",
        "est",
        "released",
        "books",
        "healthy"
    );
    for r in rows {
        eprintln!(
            "{:<19} {:<19} {:<6} {:>6} {:<28} {:<27} {:>8} {:<4} {:<8} {:<6} {:<7}",
            r.surface.name(),
            r.fault,
            r.stream,
            r.status,
            r.native.as_deref().unwrap_or("-"),
            r.code,
            r.charged,
            if r.estimated { "yes" } else { "no" },
            r.hold_released,
            r.books_balance,
            r.healthy
        );
    }
    eprintln!("{} fault rows\n", rows.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_of_every_provider_is_reported_charged_right_and_survived() {
    let runs = Surface::ALL.map(|s| tokio::spawn(run_surface(s)));
    let mut rows = Vec::new();
    for run in runs {
        rows.extend(run.await.unwrap());
    }
    print_table(&rows);
    let mut wrong = Vec::new();
    for r in &rows {
        let (status, code, charge) = expected(r.surface, r.fault, r.stream);
        let charged_right = match charge {
            Charge::Nothing => r.charged == 0,
            Charge::Some => r.charged > 0,
        };
        // An app always learns of a failure in its provider's own error shape, either as
        // the body or as an error event in the stream; a cut stream shows as a broken body.
        let told = code == "ok"
            || r.native.is_some()
            || (r.fault == "drop_mid_stream" && r.stream && !r.whole);
        // The Hub's own refusals carry its stable code; provider errors pass through as sent.
        let hub_refused = code.starts_with("upstream_") && r.status >= 400;
        let coded = !hub_refused || r.hub_code.as_deref() == Some(code);
        if r.status != status
            || r.code != code
            || !charged_right
            || !told
            || !coded
            || !r.hold_released
            || !r.books_balance
            || !r.healthy
        {
            wrong.push(format!(
                "{} {} stream={}: want {status} {code} {charge:?}, got {r:?}",
                r.surface.name(),
                r.fault,
                r.stream
            ));
        }
    }
    assert_eq!(rows.len(), Surface::ALL.len() * (FAULTS.len() + 1) * 2);
    assert!(
        wrong.is_empty(),
        "{} rows wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
