//! Black-box tests of the gateway: durability of usage records, cut and abandoned streams,
//! upstream failures and retries, and credit holds under concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Launch, PASSPHRASE, TestHub, client, sign_in};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// A Hub with one app; calls go through the gateway with the app's key.
struct Gateway {
    hub: TestHub,
    cookie: String,
    key: String,
    app_id: String,
}

impl Gateway {
    async fn start(launch: Launch<'_>) -> Gateway {
        let hub = TestHub::start(launch.unlocked());
        let cookie = sign_in(&hub, PASSPHRASE).await;
        let created = common::create_app(&hub, &cookie, "test app").await;
        Gateway {
            key: created["key"].as_str().unwrap().to_string(),
            app_id: created["id"].as_str().unwrap().to_string(),
            hub,
            cookie,
        }
    }

    fn chat(&self, body: Value) -> reqwest::RequestBuilder {
        client()
            .post(self.hub.url("/openai/v1/chat/completions"))
            .bearer_auth(&self.key)
            .json(&body)
    }

    async fn api(&self, method: &str, path: &str, body: Value) -> Value {
        client()
            .request(method.parse().unwrap(), self.hub.url(path))
            .header("cookie", &self.cookie)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    fn records(&self) -> Vec<Value> {
        records_in(&self.hub.data_dir)
    }
}

/// Usage records straight from the database file.
fn records_in(dir: &std::path::Path) -> Vec<Value> {
    let conn = rusqlite::Connection::open(dir.join("hub.db")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT id, provider, model, streamed, status, error_code, input_tokens, output_tokens,
                    cost_micro_usd, billed_to, estimated FROM usage_records ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(json!({
            "id": r.get::<_, i64>(0)?, "provider": r.get::<_, String>(1)?,
            "model": r.get::<_, Option<String>>(2)?, "streamed": r.get::<_, bool>(3)?,
            "status": r.get::<_, i64>(4)?, "error_code": r.get::<_, Option<String>>(5)?,
            "input_tokens": r.get::<_, i64>(6)?, "output_tokens": r.get::<_, i64>(7)?,
            "cost": r.get::<_, Option<i64>>(8)?, "billed_to": r.get::<_, String>(9)?,
            "estimated": r.get::<_, bool>(10)?,
        }))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn ledger_sum(dir: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("hub.db")).unwrap();
    conn.query_row("SELECT SUM(amount_micro_usd) FROM ledger", [], |r| r.get(0))
        .unwrap()
}

fn hello(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "Hello there"}]})
}

#[tokio::test]
async fn a_completed_response_survives_kill_9() {
    let gw = Gateway::start(Launch::default()).await;
    let res = gw.chat(hello(false)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let text = gw
        .chat(hello(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("[DONE]"));
    assert!(
        !gw.hub.log().contains(&gw.key[4..]),
        "the app key never reaches the log"
    );
    let dir = gw.hub.data_dir.clone();
    let (_dir, _tmp) = gw.hub.stop_keep_data(); // SIGKILL, no clean shutdown
    let records = records_in(&dir);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0]["input_tokens"], body["usage"]["prompt_tokens"]);
    assert_eq!(
        records[0]["output_tokens"],
        body["usage"]["completion_tokens"]
    );
    assert_eq!(records[1]["streamed"], true);
    assert_eq!(records[1]["estimated"], false);
    let costs: i64 = records.iter().map(|r| r["cost"].as_i64().unwrap()).sum();
    assert!(costs > 0);
    assert_eq!(
        ledger_sum(&dir),
        5_000_000 - costs,
        "the ledger matches the records"
    );
}

#[tokio::test]
async fn a_stream_cut_upstream_is_recorded_as_estimated() {
    let gw = Gateway::start(Launch::default()).await;
    let res = gw
        .chat(hello(true))
        .header("x-emulator-fault", "drop_mid_stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut got = Vec::new();
    let mut cut = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => got.extend_from_slice(&c),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(cut, "the app sees the cut, not a clean end");
    assert!(!String::from_utf8_lossy(&got).contains("[DONE]"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = gw.records();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["estimated"], true);
    assert!(
        r["output_tokens"].as_i64().unwrap() > 0,
        "charged what was produced: {r}"
    );
    assert!(r["cost"].as_i64().unwrap() > 0);
    assert!(r["error_code"].is_string());
}

#[tokio::test]
async fn a_client_that_goes_away_stops_the_stream_and_is_still_recorded() {
    let gw = Gateway::start(Launch::default()).await;
    let started = Instant::now();
    let res = gw
        .chat(
            json!({"model": "gpt-4o-mini", "stream": true, "max_completion_tokens": 200,
                     "messages": [{"role": "user", "content": "Tell me a long story"}]}),
        )
        .header("x-emulator-fault", "slow")
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(body); // the app hangs up after the first chunk
    // The whole answer would take 200 events × 100 ms = 20 s; the record appears at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    let record = loop {
        if let Some(r) = gw.records().into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "no record after the client left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(record["error_code"], "client_disconnected");
    assert_eq!(record["estimated"], true);
    assert!(record["output_tokens"].as_i64().unwrap() < 200);
    let credits: Value = client()
        .get(gw.hub.url("/api/v1/credits"))
        .header("cookie", &gw.cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(credits["held_micro_usd"], 0, "no hold outlives its request");
}

#[tokio::test]
async fn upstream_failures_get_the_hubs_own_codes() {
    let gw = Gateway::start(Launch::default().arg("--upstream-timeout-secs").arg("1")).await;
    let res = gw
        .chat(hello(false))
        .header("x-emulator-fault", "timeout")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 504);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");

    let gw = Gateway::start(
        Launch::default()
            .arg("--openai-base-url")
            .arg("http://127.0.0.1:9"),
    )
    .await;
    let conn = gw
        .api("POST", "/api/v1/connections", json!({"provider": "openai", "name": "mine", "api_key": "sk-proj-testKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}))
        .await;
    gw.api(
        "PATCH",
        &format!("/api/v1/apps/{}", gw.app_id),
        json!({"connections": {"openai": conn["id"]}}),
    )
    .await;
    let res = gw.chat(hello(false)).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_connection_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Check the network")
    );
}

#[tokio::test]
async fn managed_rate_limits_are_retried_but_quota_errors_are_not() {
    let emulator = common::Emulator::start();
    let gw = Gateway::start(
        Launch::default()
            .arg("--openai-base-url")
            .arg(emulator.base.clone())
            .env(
                "WORKSHOP_HUB_MANAGED_OPENAI_KEY",
                "sk-proj-testPlatformKeyAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
    )
    .await;
    let started = Instant::now();
    let res = gw
        .chat(hello(false))
        .header("x-emulator-fault", "rate_limit")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        429,
        "after the retries the provider's 429 passes through"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "retries honour retry-after"
    );
    assert_eq!(emulator.received_count("/v1/chat/completions").await, 3);
    let res = gw
        .chat(hello(false))
        .header("x-emulator-fault", "insufficient_quota")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(
        emulator.received_count("/v1/chat/completions").await,
        4,
        "quota errors are never retried"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "insufficient_quota",
        "the provider's error passes unchanged"
    );
}

#[tokio::test]
async fn concurrent_holds_never_spend_credits_the_hub_does_not_have() {
    let gw = Gateway::start(Launch::default()).await;
    // gpt-4o output is $10/M: 50,000 max tokens hold $0.50 (plus a little input).
    let body = json!({"model": "gpt-4o", "max_tokens": 50_000,
                      "messages": [{"role": "user", "content": "Hi"}]});
    let calls = (0..50).map(|_| {
        gw.chat(body.clone())
            .header("x-emulator-fault", "slow")
            .send()
    });
    let results = futures_util::future::join_all(calls).await;
    let mut ok = 0;
    let mut refused = 0;
    for r in results {
        let r = r.unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            402 => {
                let b: Value = r.json().await.unwrap();
                assert_eq!(b["error"]["code"], "insufficient_credits");
                assert!(
                    b["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("Add credits")
                );
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok + refused, 50);
    assert!((1..=9).contains(&ok), "at most what $5.00 covers ran: {ok}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = gw.records();
    let charged: i64 = records.iter().filter_map(|r| r["cost"].as_i64()).sum();
    let balance = ledger_sum(&gw.hub.data_dir);
    assert!(balance >= 0);
    assert_eq!(
        balance,
        5_000_000 - charged,
        "ledger = grant − recorded costs"
    );
}
