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

/// The text of the element with `id` (its first text, up to the next tag).
fn text_of(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let rest = &html[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap();
    unescape(&rest[open..open + close])
}

/// The value of attribute `attr` of the element with `id`.
fn attr_of(html: &str, id: &str, attr: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let tag_start = html[..start].rfind('<').unwrap();
    let tag_end = start + html[start..].find('>').unwrap();
    let tag = &html[tag_start..tag_end];
    let value = tag.split(&format!("{attr}=\"")).nth(1).unwrap();
    unescape(&value[..value.find('"').unwrap()])
}

/// HTML character references back to text.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';').map(|e| at + e);
        let entity = end.map(|e| &rest[at + 1..e]);
        let decoded = match entity {
            Some("amp") => Some('&'),
            Some("lt") => Some('<'),
            Some("gt") => Some('>'),
            Some("quot") => Some('"'),
            Some(e) if e.starts_with('#') => e[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match (decoded, end) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

async fn page(door: &Door, path: &str) -> String {
    let res = get(door, path).await;
    assert_eq!(res.status(), 200, "{path}");
    res.text().await.unwrap()
}

/// Sends `body` to `path` as `provider`'s app holding `key` would; (status, body bytes).
async fn send(door: &Door, provider: &str, key: &str, path: &str, body: &Value) -> (u16, Vec<u8>) {
    let headers = auth(provider, key);
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let bytes = serde_json::to_vec(body).unwrap();
    let res = raw_request(door.hub.port, "POST", path, &pairs, &bytes).await;
    (res.status, res.body)
}

/// What the rows of a page add up to: (requests, input, output, paid from credits).
fn sums(rows: &[Value]) -> (i64, i64, i64, i64) {
    let int = |r: &Value, k: &str| r[k].as_i64().unwrap_or(0);
    (
        rows.len() as i64,
        rows.iter().map(|r| int(r, "input_tokens")).sum(),
        rows.iter().map(|r| int(r, "output_tokens")).sum(),
        rows.iter()
            .filter(|r| r["billed_to"] == "credits")
            .map(|r| int(r, "cost_micro_usd"))
            .sum(),
    )
}

#[tokio::test]
async fn usage_and_billing_totals_chart_and_exports_follow_the_filters() {
    let emulator = Emulator::start();
    let door = Door::start(&emulator.base, Launch::default()).await;
    let second = door
        .api("POST", "/api/v1/apps", json!({"name": "second app"}))
        .await;
    let (second_id, second_key) = (
        second["id"].as_str().unwrap().to_string(),
        second["key"].as_str().unwrap().to_string(),
    );
    for index in 0..3 {
        assert_eq!(call(&door, index, &[]).await, 200);
    }
    assert_eq!(
        call(&door, 2, &[("x-emulator-fault", "server_error")]).await,
        500
    );
    let (status, _) = send(
        &door,
        "openai",
        &second_key,
        "/openai/v1/chat/completions",
        &calls()[0].body,
    )
    .await;
    assert_eq!(status, 200);

    let today = chrono::Utc::now().date_naive();
    let yesterday = today - chrono::Duration::days(1);
    let tomorrow = today + chrono::Duration::days(1);
    let an_hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let first = &door.app_id;
    for (query, expected, providers_charged) in [
        (format!("app={first}"), 4, 3),
        (format!("app={second_id}"), 1, 1),
        (format!("app={first}&provider=anthropic"), 1, 1),
        (format!("app={first}&status=error"), 1, 0),
        (format!("app={first}&from={yesterday}&to={tomorrow}"), 4, 3),
        (format!("from={an_hour_ago}&model=gpt-4o-mini"), 2, 1),
        (format!("from={yesterday}&to={today}"), 0, 0),
    ] {
        let rows = requests(&door, &query).await["data"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(rows.len(), expected, "{query}");
        let (count, input, output, credits) = sums(&rows);

        // The page's totals are the filtered rows' sums.
        let html = page(&door, &format!("/usage?{query}")).await;
        assert_eq!(
            text_of(&html, "total-requests"),
            count.to_string(),
            "{query}"
        );
        assert_eq!(
            text_of(&html, "total-tokens"),
            format!("{input} / {output}"),
            "{query}"
        );
        // One chart segment per provider that cost something in the period.
        assert_eq!(
            html.matches("<rect class=\"bar\"").count(),
            providers_charged,
            "{query}"
        );
        // The exports carry the same filters and hold the same calls.
        let csv_link = attr_of(&html, "export-csv", "href");
        let csv = get(&door, &csv_link).await.text().await.unwrap();
        assert_eq!(csv.lines().count() as i64, 1 + count, "{csv_link}");
        let json_link = attr_of(&html, "export-json", "href");
        let exported = door.api("GET", &json_link, Value::Null).await;
        assert_eq!(exported["totals"]["requests"], count, "{json_link}");
        assert_eq!(
            exported["totals"]["credits_micro_usd"], credits,
            "{json_link}"
        );
        assert_eq!(exported["totals"]["input_tokens"], input, "{json_link}");
    }

    // The aggregates API narrows alike (its days include `to`).
    for query in [
        format!("app={first}"),
        format!("app={second_id}&provider=openai"),
        format!("app={first}&status=ok"),
    ] {
        let rows = requests(&door, &query).await["data"]
            .as_array()
            .unwrap()
            .clone();
        let (count, input, output, credits) = sums(&rows);
        for group in ["day", "app", "provider", "model"] {
            let usage = door
                .api(
                    "GET",
                    &format!("/api/v1/usage?{query}&group_by={group}"),
                    Value::Null,
                )
                .await;
            let totals = &usage["totals"];
            assert_eq!(totals["requests"], count, "{query} by {group}: {usage}");
            assert_eq!(totals["input_tokens"], input, "{query} by {group}");
            assert_eq!(totals["output_tokens"], output, "{query} by {group}");
            assert_eq!(totals["credits_micro_usd"], credits, "{query} by {group}");
        }
    }

    // A bad filter is explained on the page, which falls back to the last 30 days.
    let html = page(&door, "/usage?from=someday").await;
    assert!(text_of(&html, "filter-error").contains("from"), "{html}");
    assert_eq!(text_of(&html, "total-requests"), "5");
}

#[tokio::test]
async fn a_requests_page_shows_its_queue_time_retries_and_provider_id() {
    let emulator = Emulator::start();
    let door = Door::start(&emulator.base, Launch::default()).await;
    for index in 0..3 {
        assert_eq!(call(&door, index, &[]).await, 200);
    }
    assert_eq!(
        call(&door, 0, &[("x-emulator-fault", "rate_limit")]).await,
        429
    );
    door.api(
        "PATCH",
        &format!("/api/v1/apps/{}", door.app_id),
        json!({"monthly_budget_micro_usd": 1}),
    )
    .await;
    assert_eq!(call(&door, 1, &[]).await, 402);
    let rows = requests(&door, "").await["data"]
        .as_array()
        .unwrap()
        .clone();
    let detail = |id: &Value| {
        let id = id.clone();
        let door = &door;
        async move {
            door.api("GET", &format!("/api/v1/usage/requests/{id}"), Value::Null)
                .await
        }
    };

    // Oldest first: the three answered calls, the retried one, the refusal.
    let answered: Vec<&Value> = rows.iter().rev().take(3).collect();
    for (row, id_start) in answered.iter().zip([Some("req_"), Some("req_011C"), None]) {
        let d = detail(&row["id"]).await;
        assert_eq!(d["attempts"], 1, "{d}");
        assert_eq!(d["retried"], false);
        let queued = d["timings"]["queued_ms"].as_u64().unwrap();
        assert!(queued <= d["timings"]["total_ms"].as_u64().unwrap(), "{d}");
        match id_start {
            Some(start) => assert!(
                d["provider_request_id"]
                    .as_str()
                    .unwrap()
                    .starts_with(start),
                "{d}"
            ),
            None => assert!(d["provider_request_id"].is_null(), "{d}"),
        }
    }
    let retried = detail(&rows[1]["id"]).await;
    assert_eq!(retried["status"], 429);
    assert_eq!(
        retried["attempts"], 3,
        "a managed rate limit is retried twice"
    );
    assert_eq!(retried["retried"], true);
    let html = page(&door, &format!("/requests/{}", rows[1]["id"])).await;
    assert!(
        text_of(&html, "retried").starts_with("yes: sent 3 times"),
        "{html}"
    );
    assert!(text_of(&html, "provider-request-id").starts_with("req_"));
    assert!(text_of(&html, "timing-queued").ends_with(" ms "), "{html}");

    let refused = detail(&rows[0]["id"]).await;
    assert_eq!(refused["error_code"], "app_budget_exceeded");
    assert_eq!(refused["attempts"], 0);
    assert!(refused["timings"]["queued_ms"].is_null());
    let html = page(&door, &format!("/requests/{}", rows[0]["id"])).await;
    assert_eq!(
        text_of(&html, "timing-queued"),
        "never sent to the provider"
    );

    // The new columns are in the CSV under their names.
    let lines = csv(&door, "").await;
    assert!(
        lines[0].ends_with(",queued_ms,attempts,provider_request_id"),
        "{}",
        lines[0]
    );
    assert!(lines[2].contains(",3,req_"), "{}", lines[2]);
}

/// The reply text of a whole (non-streamed) answer, in each provider's shape.
fn whole_reply(kind: &str, body: &Value) -> String {
    match kind {
        "chat" => body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string(),
        "responses" => body["output"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|o| o["content"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["type"] == "output_text")
            .map(|c| c["text"].as_str().unwrap().to_string())
            .collect(),
        "messages" => body["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "text")
            .map(|b| b["text"].as_str().unwrap().to_string())
            .collect(),
        _ => body["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["thought"] != true)
            .filter_map(|p| p["text"].as_str())
            .collect(),
    }
}

#[tokio::test]
async fn a_kept_stream_is_shown_as_its_assembled_answer_beside_its_events() {
    let emulator = Emulator::start();
    let door = Door::start(&emulator.base, Launch::default()).await;
    let ask = "Tell me about tide pools";
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ask}]});
    let responses = json!({"model": "gpt-4o-mini", "input": ask});
    let messages = json!({"model": "claude-haiku-4-5", "max_tokens": 200, "messages": [{"role": "user", "content": ask}]});
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": ask}]}]});
    let with_stream = |body: &Value| {
        let mut b = body.clone();
        b["stream"] = json!(true);
        b
    };
    let cases = [
        (
            "chat",
            "openai",
            "/openai/v1/chat/completions",
            chat.clone(),
            with_stream(&chat),
        ),
        (
            "responses",
            "openai",
            "/openai/v1/responses",
            responses.clone(),
            with_stream(&responses),
        ),
        (
            "messages",
            "anthropic",
            "/anthropic/v1/messages",
            messages.clone(),
            with_stream(&messages),
        ),
        (
            "gemini",
            "gemini",
            "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
            gemini.clone(),
            gemini.clone(),
        ),
    ];
    for (kind, provider, path, whole, streamed) in cases {
        let (status, body) = send(&door, provider, &door.key, path, &whole).await;
        assert_eq!(status, 200, "{kind}");
        let expected = whole_reply(kind, &serde_json::from_slice(&body).unwrap());
        assert!(!expected.is_empty(), "{kind}");
        let stream_path = if kind == "gemini" {
            "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse".to_string()
        } else {
            path.to_string()
        };
        let (status, events) = send(&door, provider, &door.key, &stream_path, &streamed).await;
        assert_eq!(status, 200, "{kind} stream");
        assert!(
            String::from_utf8_lossy(&events).contains("data: "),
            "{kind}"
        );

        let row = requests(&door, "").await["data"][0].clone();
        assert_eq!(row["streamed"], true, "{kind}: {row}");
        let detail = detail_with_bodies(&door, &row["id"]).await;
        assert_eq!(
            detail["bodies"]["assembled_answer"], expected,
            "{kind}: the stream spells out the same answer"
        );
        let html = page(&door, &format!("/requests/{}", row["id"])).await;
        assert_eq!(text_of(&html, "assembled-answer"), expected, "{kind}");
        assert!(html.contains("<details id=\"raw-events\">"), "{kind}");
        assert!(html.contains("data: "), "{kind}: the raw events are there");
        // The request is pretty-printed.
        assert!(text_of(&html, "request-body").contains("{\n  \""), "{kind}");
    }
    // A whole answer is pretty-printed, with no stream section.
    let whole = requests(&door, "").await["data"][1].clone();
    assert_eq!(whole["streamed"], false);
    detail_with_bodies(&door, &whole["id"]).await;
    let html = page(&door, &format!("/requests/{}", whole["id"])).await;
    assert!(!html.contains("raw-events"));
    assert!(
        text_of(&html, "response-body").starts_with("{\n  \""),
        "{html}"
    );
}

#[tokio::test]
async fn a_logged_chat_opens_in_the_playground_and_runs_again() {
    let emulator = Emulator::start();
    let door = Door::start(&emulator.base, Launch::default()).await;
    let conversation = json!([
        {"role": "system", "content": "You answer like a <pirate> & briefly"},
        {"role": "user", "content": "Name a \"sea\" creature"},
        {"role": "assistant", "content": "The octopus."},
        {"role": "user", "content": "And another one?"},
    ]);
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "system": "You answer like a <pirate> & briefly", "messages": conversation.as_array().unwrap()[1..]});
    let (status, _) = send(
        &door,
        "anthropic",
        &door.key,
        "/anthropic/v1/messages",
        &body,
    )
    .await;
    assert_eq!(status, 200);
    let row = requests(&door, "").await["data"][0].clone();
    let id = row["id"].clone();
    detail_with_bodies(&door, &id).await;

    let detail = page(&door, &format!("/requests/{id}")).await;
    assert_eq!(
        attr_of(&detail, "open-in-playground", "href"),
        format!("/playground?request={id}")
    );
    let play = page(&door, &format!("/playground?request={id}")).await;
    assert!(play.contains("id=\"opened-from\""), "{play}");
    assert!(
        play.contains("<option value=\"managed-anthropic|claude-haiku-4-5\" selected>"),
        "the same connection and model are picked"
    );
    assert_eq!(
        text_of(&play, "system-prompt"),
        "You answer like a <pirate> & briefly"
    );
    let prompt_at = play.find("name=\"prompt\"").unwrap();
    let prompt_html = &play[prompt_at..];
    let prompt = unescape(
        &prompt_html[prompt_html.find('>').unwrap() + 1..prompt_html.find("</textarea>").unwrap()],
    );
    assert_eq!(prompt, "And another one?");
    let history_at =
        play.find("name=\"history\" value=\"").unwrap() + "name=\"history\" value=\"".len();
    let history = unescape(&play[history_at..history_at + play[history_at..].find('"').unwrap()]);
    assert_eq!(
        serde_json::from_str::<Value>(&history).unwrap(),
        json!([{"role": "user", "text": "Name a \"sea\" creature"}, {"role": "assistant", "text": "The octopus."}])
    );
    assert!(play.contains("id=\"history\"") && play.contains("The octopus."));

    // Sending the form asks the same conversation again, through the Playground.
    let csrf_at = play.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = &play[csrf_at..csrf_at + play[csrf_at..].find('"').unwrap()];
    let res = client()
        .post(door.hub.url("/playground"))
        .header("cookie", &door.cookie)
        .header("origin", door.hub.origin())
        .form(&[
            ("csrf", csrf),
            ("target", "managed-anthropic|claude-haiku-4-5"),
            ("prompt", prompt.as_str()),
            ("system", "You answer like a <pirate> & briefly"),
            ("history", history.as_str()),
            ("max_tokens", "100"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let again = requests(&door, "").await["data"][0].clone();
    assert_eq!(again["app_id"], "playground");
    assert_ne!(again["id"], id);
    let sent = detail_with_bodies(&door, &again["id"]).await;
    let sent: Value = serde_json::from_str(sent["bodies"]["request"].as_str().unwrap()).unwrap();
    assert_eq!(sent["system"], body["system"]);
    assert_eq!(sent["messages"], body["messages"]);
    assert_eq!(sent["model"], "claude-haiku-4-5");

    // Not a chat call: nothing to open.
    let (status, _) = send(
        &door,
        "openai",
        &door.key,
        "/openai/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": "tide pools"}),
    )
    .await;
    assert_eq!(status, 200);
    let embedding = requests(&door, "").await["data"][0].clone();
    assert_eq!(embedding["endpoint"], "embeddings");
    detail_with_bodies(&door, &embedding["id"]).await;
    let html = page(&door, &format!("/requests/{}", embedding["id"])).await;
    assert!(!html.contains("open-in-playground"));
    let play = page(&door, &format!("/playground?request={}", embedding["id"])).await;
    assert!(
        text_of(&play, "open-failed").contains("cannot be opened"),
        "{play}"
    );
}
