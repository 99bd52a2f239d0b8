//! Black-box tests of the request log: every call of a known app is a row (refusals and
//! provider errors with their codes), filters narrow the rows, the totals and the CSV alike,
//! and a request's cost lines add up to its recorded cost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::door::{Door, auth, calls};
use common::upstream::raw_request;
use common::{Emulator, Launch, client};
use serde_json::{Value, json};

async fn call(door: &Door, index: usize, extra: &[(&str, &str)]) -> u16 {
    let call = &calls()[index];
    let target = format!("{}{}", call.prefix, call.path);
    door.raw(call, &target, extra).await.0
}

async fn requests(door: &Door, query: &str) -> Value {
    door.api(
        "GET",
        &format!("/api/v1/usage/requests?limit=500&{query}"),
        Value::Null,
    )
    .await
}

/// A signed-in GET of a management path.
async fn get(door: &Door, path: &str) -> reqwest::Response {
    client()
        .get(door.hub.url(path))
        .header("cookie", &door.cookie)
        .send()
        .await
        .unwrap()
}

async fn csv(door: &Door, query: &str) -> Vec<String> {
    let res = get(door, &format!("/api/v1/usage.csv?{query}")).await;
    assert_eq!(res.status(), 200, "{query}");
    res.text()
        .await
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn failures_and_refusals_are_rows_and_filters_narrow_rows_totals_and_csv_alike() {
    let emulator = Emulator::start();
    let door = Door::start(&emulator.base, Launch::default()).await;
    assert_eq!(call(&door, 0, &[]).await, 200);
    assert_eq!(call(&door, 1, &[]).await, 200);
    assert_eq!(
        call(&door, 2, &[("x-emulator-fault", "server_error")]).await,
        500
    );
    door.api(
        "PATCH",
        &format!("/api/v1/apps/{}", door.app_id),
        json!({"monthly_budget_micro_usd": 1}),
    )
    .await;
    assert_eq!(call(&door, 0, &[]).await, 402);

    let all = requests(&door, "").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 4);
    assert_eq!(all["totals"]["requests"], 4);
    assert_eq!(all["totals"]["errors"], 2);
    let refused = &all["data"][0];
    assert_eq!(refused["error_code"], "app_budget_exceeded");
    assert_eq!(refused["status"], 402);
    assert_eq!(refused["surface"], "native");
    let failed = &all["data"][1];
    assert_eq!(failed["provider"], "gemini");
    assert_eq!(failed["status"], 500);

    for (query, expected) in [
        ("status=ok", 2),
        ("status=error", 2),
        ("status=app_budget_exceeded", 1),
        ("provider=anthropic", 1),
        ("provider=openai&status=ok", 1),
        (&format!("app={}", door.app_id), 4),
        ("app=no-such-app", 0),
        ("surface=compatible", 0),
        ("model=claude-sonnet-4-5", 1),
        ("from=2000-01-01&to=2001-01-01", 0),
    ] {
        let page = requests(&door, query).await;
        let rows = page["data"].as_array().unwrap();
        assert_eq!(rows.len(), expected, "{query}");
        assert_eq!(
            page["totals"]["requests"], expected,
            "{query}: totals follow"
        );
        let lines = csv(&door, query).await;
        assert_eq!(lines.len(), 1 + expected, "{query}: the CSV follows");
    }
    let lines = csv(&door, "status=error").await;
    assert!(lines[1].contains("app_budget_exceeded"), "{}", lines[1]);

    for bad in ["status=DROP%20TABLE", "from=yesterday", "provider=azure"] {
        let res = get(&door, &format!("/api/v1/usage/requests?{bad}")).await;
        assert_eq!(res.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn a_requests_cost_lines_add_up_to_its_cost() {
    let emulator = Emulator::start();
    let door = Door::start(&emulator.base, Launch::default()).await;
    for index in 0..3 {
        assert_eq!(call(&door, index, &[]).await, 200);
    }
    let rows = requests(&door, "").await["data"]
        .as_array()
        .unwrap()
        .clone();
    for row in rows {
        let detail = door
            .api(
                "GET",
                &format!("/api/v1/usage/requests/{}", row["id"]),
                Value::Null,
            )
            .await;
        let cost = detail["cost_micro_usd"].as_i64().unwrap();
        assert!(cost > 0);
        let lines = detail["cost_lines"].as_array().unwrap();
        let sum: i64 = lines.iter().map(|l| l["micro_usd"].as_i64().unwrap()).sum();
        assert_eq!(sum, cost, "{detail}");
        let input = lines.iter().find(|l| l["what"] == "input").unwrap();
        assert_eq!(input["tokens"], row["input_tokens"]);
        assert_eq!(detail["timings"]["total_ms"], row["latency_ms"]);
    }
    let missing = get(&door, "/api/v1/usage/requests/999999").await;
    assert_eq!(missing.status(), 404);
    // A model list is labelled as such: not billable, nothing to add up.
    let headers = auth("openai", &door.key);
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let listed = raw_request(door.hub.port, "GET", "/openai/v1/models", &pairs, b"").await;
    assert_eq!(listed.status, 200);
    let row = &requests(&door, "").await["data"][0];
    assert_eq!(row["endpoint"], "list_models");
    assert_eq!(row["billed_to"], "none");
    let detail = door
        .api(
            "GET",
            &format!("/api/v1/usage/requests/{}", row["id"]),
            Value::Null,
        )
        .await;
    assert_eq!(detail["cost_lines"], json!([]));
}

/// Every file of the database: the main file, the write-ahead log and its index.
fn database_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["hub.db", "hub.db-wal", "hub.db-shm"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            all.extend(bytes);
        }
    }
    all
}

/// A request's detail once its bodies are stored: they are sealed and written just after the
/// usage record, so the app's answer never waits for them.
async fn detail_with_bodies(door: &Door, id: &Value) -> Value {
    for _ in 0..100 {
        let detail = door
            .api("GET", &format!("/api/v1/usage/requests/{id}"), Value::Null)
            .await;
        if detail.get("bodies").is_some() {
            return detail;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("request {id} never had its bodies kept");
}

#[tokio::test]
async fn bodies_are_sealed_at_rest_and_shown_only_unlocked() {
    let emulator = Emulator::start();
    let door = Door::start(&emulator.base, Launch::default()).await;
    let settings = door.api("GET", "/api/v1/settings", Value::Null).await;
    assert_eq!(
        settings,
        json!({"keep_bodies_days": 7, "keep_requests_days": null})
    );
    const MARKER: &str = "plaintext-marker-7f3a91";
    for stream in [false, true] {
        let res = client()
            .post(door.hub.url("/openai/v1/chat/completions"))
            .bearer_auth(&door.key)
            .json(&json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": format!("Repeat {MARKER}")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
    }
    let rows = requests(&door, "").await["data"]
        .as_array()
        .unwrap()
        .clone();
    for row in &rows {
        let detail = detail_with_bodies(&door, &row["id"]).await;
        let bodies = &detail["bodies"];
        assert!(
            bodies["request"].as_str().unwrap().contains(MARKER),
            "{detail}"
        );
        assert!(!bodies["response"].as_str().unwrap().is_empty());
        assert_eq!(bodies["request_truncated"], false);
    }
    let streamed = detail_with_bodies(&door, &rows[0]["id"]).await;
    assert!(
        streamed["bodies"]["response"]
            .as_str()
            .unwrap()
            .contains("data: ")
    );
    let on_disk = database_bytes(&door.hub.data_dir);
    assert!(!on_disk.is_empty());
    assert!(
        !on_disk
            .windows(MARKER.len())
            .any(|w| w == MARKER.as_bytes()),
        "the marker is in the database files in plaintext"
    );

    // Bad values change nothing; turning bodies off keeps none for new calls.
    for bad in [
        json!({"keep_bodies_days": 3}),
        json!({"keep_requests_days": 0}),
        json!({"nope": 1}),
    ] {
        let res = client()
            .patch(door.hub.url("/api/v1/settings"))
            .header("cookie", &door.cookie)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    let off = door
        .api(
            "PATCH",
            "/api/v1/settings",
            json!({"keep_bodies_days": 0, "keep_requests_days": 30}),
        )
        .await;
    assert_eq!(
        off,
        json!({"keep_bodies_days": 0, "keep_requests_days": 30})
    );
    assert_eq!(call(&door, 0, &[]).await, 200);
    let newest = &requests(&door, "").await["data"][0];
    let detail = door
        .api(
            "GET",
            &format!("/api/v1/usage/requests/{}", newest["id"]),
            Value::Null,
        )
        .await;
    assert!(detail.get("bodies").is_none(), "{detail}");

    // Locked, nothing is shown.
    door.api("POST", "/api/v1/lock", json!({})).await;
    let res = get(&door, &format!("/api/v1/usage/requests/{}", rows[0]["id"])).await;
    assert!(res.status().is_client_error() || res.status().is_server_error());
    assert!(!res.text().await.unwrap().contains(MARKER));
}
