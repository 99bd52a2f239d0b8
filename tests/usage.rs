//! Black-box tests of credits, usage reports, the CSV export, the model catalog and the
//! Usage & Billing and Models pages, against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use common::{Launch, PASSPHRASE, TestHub, client, run_to_exit, sign_in};
use serde_json::{Value, json};
use workshop_hub::ledger::{BilledTo, UsageRecord};
use workshop_hub::money::MicroUsd;
use workshop_hub::providers::Provider;
use workshop_hub::store::Store;

/// A headless-unlocked Hub with a signed-in cookie.
async fn signed_in(launch: Launch<'_>) -> (TestHub, String) {
    let hub = TestHub::start(launch.unlocked());
    let cookie = sign_in(&hub, PASSPHRASE).await;
    (hub, cookie)
}

async fn get_json(hub: &TestHub, cookie: &str, path: &str) -> (u16, Value) {
    let res = client()
        .get(hub.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn get_text(hub: &TestHub, cookie: &str, path: &str) -> (u16, String) {
    let res = client()
        .get(hub.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn balance(hub: &TestHub, cookie: &str) -> i64 {
    let (status, body) = get_json(hub, cookie, "/api/v1/credits").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["available_micro_usd"].as_i64().unwrap(),
        body["balance_micro_usd"].as_i64().unwrap() - body["held_micro_usd"].as_i64().unwrap()
    );
    body["balance_micro_usd"].as_i64().unwrap()
}

async fn post_top_up(hub: &TestHub, cookie: &str, body: Value) -> (u16, Value) {
    let res = client()
        .post(hub.url("/api/v1/credits"))
        .header("cookie", cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn a_top_up_changes_the_balance_exactly() {
    let (hub, cookie) = signed_in(Launch::default()).await;
    assert_eq!(balance(&hub, &cookie).await, 5_000_000);
    let (status, body) = post_top_up(
        &hub,
        &cookie,
        json!({"amount_micro_usd": 2_500_001, "note": "for the demo"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance_micro_usd"], 7_500_001);
    assert_eq!(balance(&hub, &cookie).await, 7_500_001);

    let (_, credits) = get_json(&hub, &cookie, "/api/v1/credits").await;
    let newest = &credits["ledger"][0];
    assert_eq!(newest["kind"], "topup");
    assert_eq!(newest["amount_micro_usd"], 2_500_001);
    assert_eq!(newest["note"], "for the demo");
    assert_eq!(credits["ledger"][1]["kind"], "grant");

    // The balance is the ledger's sum, so it survives a restart.
    let (dir, tmp) = hub.stop_keep_data();
    let again = TestHub::start(Launch::default().unlocked().data_dir(&dir));
    let cookie = sign_in(&again, PASSPHRASE).await;
    assert_eq!(balance(&again, &cookie).await, 7_500_001);
    drop(tmp);
}

#[tokio::test]
async fn bad_top_ups_leave_the_balance_unchanged() {
    let (hub, cookie) = signed_in(Launch::default()).await;
    let bad = [
        json!({"amount_micro_usd": 0}),
        json!({"amount_micro_usd": -1_000_000}),
        json!({"amount_micro_usd": 10_000_000_001_i64}),
        json!({"amount_micro_usd": 1e30}),
        json!({"amount_micro_usd": 2.5}),
        json!({"amount_micro_usd": "1000000"}),
        json!({"amount_micro_usd": 1_000_000, "note": "x".repeat(201)}),
        json!({"note": "no amount"}),
    ];
    for body in bad {
        let (status, answer) = post_top_up(&hub, &cookie, body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], "bad_request", "{answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    // The largest single top-up is accepted…
    let (status, _) = post_top_up(
        &hub,
        &cookie,
        json!({"amount_micro_usd": 10_000_000_000_i64}),
    )
    .await;
    assert_eq!(status, 200);
    let after_max = balance(&hub, &cookie).await;
    assert_eq!(after_max, 10_005_000_000);
    // …and a form-encoded body is not JSON.
    let res = client()
        .post(hub.url("/api/v1/credits"))
        .header("cookie", &cookie)
        .form(&[("amount_micro_usd", "1000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    // Without a session nothing happens either.
    let res = client()
        .post(hub.url("/api/v1/credits"))
        .json(&json!({"amount_micro_usd": 1_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(balance(&hub, &cookie).await, after_max);
}

struct Seeded {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    /// What the seeded rows charged to credits.
    charged: i64,
}

fn usage(at: DateTime<Utc>, app: Option<&str>, provider: Provider, model: &str) -> UsageRecord {
    UsageRecord {
        id: 0,
        started_at: at,
        app_id: app.map(str::to_string),
        connection_id: Some(format!("managed-{provider}")),
        provider,
        model: Some(model.to_string()),
        endpoint: "/v1/chat/completions".into(),
        streamed: false,
        status: 200,
        error_code: None,
        input_tokens: 0,
        cached_input_tokens: 0,
        cache_write_tokens: 0,
        output_tokens: 0,
        reasoning_tokens: 0,
        cost: Some(MicroUsd::ZERO),
        billed_to: BilledTo::Credits,
        estimated: false,
        latency_ms: 0,
        ttfb_ms: None,
        surface: workshop_hub::ledger::Surface::Native,
        queued_ms: None,
        attempts: None,
        provider_request_id: None,
    }
}

/// Four requests from the last two days: a managed OpenAI call from the "Recipe bot" app,
/// a streamed Anthropic call cut short (estimated), a BYOK Gemini call billed by the
/// provider, and a rate-limited call without an app.
fn seed() -> Seeded {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir).unwrap();
    let now = Utc::now();
    let yesterday = now - Duration::days(1);
    let records = vec![
        UsageRecord {
            id: 0,
            input_tokens: 19,
            cached_input_tokens: 3,
            output_tokens: 10,
            cost: Some(MicroUsd(9)),
            latency_ms: 812,
            ttfb_ms: Some(120),
            surface: workshop_hub::ledger::Surface::Native,
            queued_ms: None,
            attempts: None,
            provider_request_id: None,
            ..usage(
                yesterday,
                Some("app-recipes"),
                Provider::OpenAi,
                "gpt-4o-mini",
            )
        },
        UsageRecord {
            id: 0,
            streamed: true,
            endpoint: "/v1/messages".into(),
            input_tokens: 249,
            cache_write_tokens: 40,
            output_tokens: 26,
            reasoning_tokens: 5,
            cost: Some(MicroUsd(1_137)),
            estimated: true,
            latency_ms: 2_450,
            ttfb_ms: Some(300),
            surface: workshop_hub::ledger::Surface::Native,
            queued_ms: None,
            attempts: None,
            provider_request_id: None,
            ..usage(
                now - Duration::minutes(30),
                Some("app-recipes"),
                Provider::Anthropic,
                "claude-sonnet-4-5",
            )
        },
        UsageRecord {
            id: 0,
            connection_id: Some("byok-gemini-1".into()),
            endpoint: "/v1beta/models/gemini-2.5-flash:generateContent".into(),
            input_tokens: 15,
            output_tokens: 2_239,
            cost: Some(MicroUsd(5_602)),
            billed_to: BilledTo::Provider,
            latency_ms: 1_900,
            ..usage(
                now - Duration::minutes(20),
                Some("app-notes"),
                Provider::Gemini,
                "gemini-2.5-flash",
            )
        },
        UsageRecord {
            id: 0,
            status: 429,
            error_code: Some("rate_limit_exceeded".into()),
            cost: None,
            latency_ms: 45,
            ..usage(
                now - Duration::minutes(10),
                None,
                Provider::OpenAi,
                "gpt-4o",
            )
        },
    ];
    store.insert_usage_batch(&records).unwrap();
    let db = rusqlite::Connection::open(store.path()).unwrap();
    db.execute(
        "INSERT INTO apps (id, name, key_hash, key_prefix, created_at, updated_at)
         VALUES ('app-recipes', 'Recipe bot', x'00', 'whk_recipes', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')",
        [],
    )
    .unwrap();
    Seeded {
        _tmp: tmp,
        dir,
        charged: 9 + 1_137,
    }
}

async fn seeded_hub() -> (Seeded, TestHub, String) {
    let seeded = seed();
    let (hub, cookie) = signed_in(Launch::default().data_dir(&seeded.dir)).await;
    (seeded, hub, cookie)
}

#[tokio::test]
async fn usage_aggregates_split_cost_by_who_bills_it() {
    let (seeded, hub, cookie) = seeded_hub().await;
    assert_eq!(balance(&hub, &cookie).await, 5_000_000 - seeded.charged);

    let (status, by_model) = get_json(&hub, &cookie, "/api/v1/usage?group_by=model").await;
    assert_eq!(status, 200, "{by_model}");
    assert_eq!(by_model["group_by"], "model");
    let rows = by_model["data"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    // Largest total cost first: the BYOK Gemini call.
    assert_eq!(rows[0]["provider"], "gemini");
    assert_eq!(rows[0]["model"], "gemini-2.5-flash");
    assert_eq!(rows[0]["credits_micro_usd"], 0);
    assert_eq!(rows[0]["provider_micro_usd"], 5_602);
    assert_eq!(rows[0]["output_tokens"], 2_239);
    assert_eq!(by_model["totals"]["requests"], 4);
    assert_eq!(by_model["totals"]["errors"], 1);
    assert_eq!(by_model["totals"]["credits_micro_usd"], 1_146);
    assert_eq!(by_model["totals"]["provider_micro_usd"], 5_602);
    assert_eq!(by_model["totals"]["input_tokens"], 19 + 249 + 15);

    let (_, by_app) = get_json(&hub, &cookie, "/api/v1/usage?group_by=app").await;
    let recipes = by_app["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["app_id"] == "app-recipes")
        .unwrap();
    assert_eq!(recipes["app_name"], "Recipe bot");
    assert_eq!(recipes["requests"], 2);
    assert_eq!(recipes["credits_micro_usd"], 1_146);
    assert!(
        by_app["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["app_id"].is_null())
    );

    let (_, by_provider) = get_json(&hub, &cookie, "/api/v1/usage?group_by=provider").await;
    let openai = by_provider["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["provider"] == "openai")
        .unwrap();
    assert_eq!(openai["requests"], 2);
    assert_eq!(openai["errors"], 1);
    assert_eq!(openai["credits_micro_usd"], 9);

    // Days: the default range is the last 30 UTC days.
    let (_, by_day) = get_json(&hub, &cookie, "/api/v1/usage").await;
    assert_eq!(by_day["group_by"], "day");
    let total: i64 = by_day["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 4);
    assert_eq!(by_day["to"], Utc::now().date_naive().to_string());

    // A range without usage is empty, not an error.
    let (status, old) =
        get_json(&hub, &cookie, "/api/v1/usage?from=2020-01-01&to=2020-01-31").await;
    assert_eq!(status, 200);
    assert_eq!(old["data"], json!([]));
    assert_eq!(old["totals"]["requests"], 0);
}

#[tokio::test]
async fn bad_usage_queries_are_explained() {
    let (hub, cookie) = signed_in(Launch::default()).await;
    for (query, needle) in [
        ("group_by=week", "group_by"),
        ("from=2025-13-01", "from"),
        ("to=yesterday", "to"),
        ("from=2025-02-01&to=2025-01-01", "after"),
    ] {
        let (status, body) = get_json(&hub, &cookie, &format!("/api/v1/usage?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{query}: {body}"
        );
    }
    let (status, body) = get_json(&hub, &cookie, "/api/v1/usage/requests?cursor=abc").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cursor")
    );
}

#[tokio::test]
async fn requests_page_newest_first_and_the_csv_matches() {
    let (_seeded, hub, cookie) = seeded_hub().await;
    let mut rows = Vec::new();
    let mut path = "/api/v1/usage/requests?limit=3".to_string();
    loop {
        let (status, page) = get_json(&hub, &cookie, &path).await;
        assert_eq!(status, 200, "{page}");
        rows.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_i64() {
            Some(c) => path = format!("/api/v1/usage/requests?limit=3&cursor={c}"),
            None => break,
        }
    }
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![4, 3, 2, 1]);
    let anthropic = &rows[2];
    assert_eq!(anthropic["provider"], "anthropic");
    assert_eq!(anthropic["model"], "claude-sonnet-4-5");
    assert_eq!(anthropic["endpoint"], "/v1/messages");
    assert_eq!(anthropic["streamed"], true);
    assert_eq!(anthropic["status"], 200);
    assert_eq!(anthropic["error_code"], Value::Null);
    assert_eq!(anthropic["input_tokens"], 249);
    assert_eq!(anthropic["cache_write_tokens"], 40);
    assert_eq!(anthropic["reasoning_tokens"], 5);
    assert_eq!(anthropic["cost_micro_usd"], 1_137);
    assert_eq!(anthropic["billed_to"], "credits");
    assert_eq!(anthropic["estimated"], true);
    assert_eq!(anthropic["latency_ms"], 2_450);
    assert_eq!(anthropic["ttfb_ms"], 300);
    assert_eq!(rows[1]["billed_to"], "provider");
    assert_eq!(rows[0]["cost_micro_usd"], Value::Null);
    assert_eq!(rows[0]["app_id"], Value::Null);
    assert!(
        DateTime::parse_from_rfc3339(rows[0]["started_at"].as_str().unwrap()).is_ok(),
        "{}",
        rows[0]["started_at"]
    );

    let res = client()
        .get(hub.url("/api/v1/usage.csv"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let disposition = res.headers()["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(header.len(), workshop_hub::ledger::USAGE_COLUMNS.len());
    assert_eq!(lines.len(), 1 + rows.len());
    for (line, row) in lines[1..].iter().zip(&rows) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        for (name, cell) in header.iter().zip(cells) {
            let expected = match &row[*name] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(cell, expected, "column {name} of row {}", row["id"]);
        }
    }
}

#[tokio::test]
async fn the_usage_page_shows_credits_chart_and_requests() {
    let (seeded, hub, cookie) = seeded_hub().await;
    let (status, html) = get_text(&hub, &cookie, "/usage").await;
    assert_eq!(status, 200);
    let balance = MicroUsd(5_000_000 - seeded.charged).to_string();
    assert_eq!(balance, "$4.998854");
    // To the cent on the page, the exact amount on hover.
    assert!(
        html.contains(&format!(
            "<strong id=\"balance\"><span class=\"money\" title=\"Exactly {balance}\">$5.00</span></strong>"
        )),
        "{html}"
    );
    assert!(html.contains("<svg"));
    // Three providers spent on the last two days: at least three bar segments, one legend.
    assert!(html.matches("<rect").count() >= 3 + 3, "{html}");
    assert!(html.contains("Google Gemini"));
    assert!(html.contains("Recipe bot"));
    assert!(html.contains("claude-sonnet-4-5"));
    assert!(html.contains("rate_limit_exceeded"));
    assert!(html.contains("billed by provider"));
    assert!(html.contains(">estimated<"));
    assert!(html.contains("$0.005602"));
    // The export covers the period shown: the last 30 UTC days.
    let first = (Utc::now().date_naive() - Duration::days(29)).to_string();
    let tomorrow = (Utc::now().date_naive() + Duration::days(1)).to_string();
    assert!(
        html.contains(&format!(
            "href=\"/api/v1/usage.csv?from={first}&#38;to={tomorrow}\""
        )),
        "{html}"
    );
    assert!(!html.contains("No requests yet"));
    assert!(!html.contains(" style="), "the CSP forbids inline styles");
    // The sidebar lists the page and marks it current.
    assert!(html.contains("<a href=\"/usage\" aria-current=\"page\">Usage &#38; Billing</a>"));
    assert!(html.contains("id=\"request-4\"") && html.contains("id=\"request-1\""));

    // Older requests page by id; a mangled link is ignored, not an error.
    let (status, older) = get_text(&hub, &cookie, "/usage?before=3").await;
    assert_eq!(status, 200);
    assert!(older.contains("Older requests"));
    assert!(older.contains("id=\"request-2\"") && !older.contains("id=\"request-3\""));
    let (status, _) = get_text(&hub, &cookie, "/usage?before=abc&added=x").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_empty_hub_shows_a_friendly_usage_page() {
    let (hub, cookie) = signed_in(Launch::default()).await;
    let (status, html) = get_text(&hub, &cookie, "/usage").await;
    assert_eq!(status, 200);
    assert!(html.contains("No requests yet"));
    assert!(html.contains("No spend in this period"));
    assert!(html.contains(
        "<strong id=\"balance\"><span class=\"money\" title=\"Exactly $5.00\">$5.00</span></strong>"
    ));
    assert!(html.contains("Welcome credit"));
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_add_credits_form_parses_dollars_exactly() {
    let (hub, cookie) = signed_in(Launch::default()).await;
    let (_, html) = get_text(&hub, &cookie, "/usage").await;
    let csrf = csrf_of(&html);
    let post = |amount: &'static str, csrf: String| {
        let hub_url = hub.url("/usage/credits");
        let cookie = cookie.clone();
        async move {
            client()
                .post(hub_url)
                .header("cookie", cookie)
                .form(&[("csrf", csrf.as_str()), ("amount", amount), ("note", "")])
                .send()
                .await
                .unwrap()
        }
    };
    // Post/redirect/get: the answer is a redirect carrying a one-time flash cookie.
    let follow = |res: reqwest::Response| {
        let hub = &hub;
        let cookie = cookie.clone();
        async move {
            assert_eq!(res.status(), 303);
            let set = res.headers()["set-cookie"].to_str().unwrap();
            let flash = set.split(';').next().unwrap();
            let (_, html) = get_text(hub, &format!("{cookie}; {flash}"), "/usage").await;
            (
                res.headers()["location"].to_str().unwrap().to_string(),
                html,
            )
        }
    };
    let (location, html) = follow(post("2.50", csrf.clone()).await).await;
    assert_eq!(location, "/usage");
    assert_eq!(balance(&hub, &cookie).await, 7_500_000);
    assert!(html.contains("Added $2.50 to your credits."));

    for (amount, message) in [
        ("abc", "not an amount"),
        ("0", "above zero"),
        ("-5", "not an amount"),
        ("10000.01", "at most $10000.00"),
        ("0.0000001", "six decimals"),
    ] {
        let (location, html) = follow(post(amount, csrf.clone()).await).await;
        assert_eq!(location, "/usage#add-credits", "{amount}");
        assert!(html.contains(message), "{amount}: {html}");
        assert!(html.contains("role=\"alert\""));
        assert!(
            html.contains(&format!("value=\"{amount}\"")),
            "typed amount kept: {amount}"
        );
    }
    assert_eq!(post("1", "forged".into()).await.status(), 400);
    assert_eq!(balance(&hub, &cookie).await, 7_500_000);
}

#[tokio::test]
async fn the_models_page_and_api_list_prices_per_million() {
    let (hub, cookie) = signed_in(Launch::default()).await;
    let (status, html) = get_text(&hub, &cookie, "/models").await;
    assert_eq!(status, 200);
    let row = html
        .split("<tr id=\"model-openai-gpt-4o-mini\">")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(row.contains("<code>gpt-4o-mini</code>"), "{row}");
    assert!(row.contains("<td class=\"num\">$0.15</td>"), "{row}");
    assert!(row.contains("<td class=\"num\">$0.60</td>"), "{row}");
    assert!(row.contains("128,000"));
    assert!(row.contains("2027-01-14"));
    assert!(
        row.contains("OpenAI"),
        "reachable via the managed connection: {row}"
    );
    assert!(html.contains("Prompts over 200,000 tokens"));

    let (status, models) = get_json(&hub, &cookie, "/api/v1/models").await;
    assert_eq!(status, 200);
    let mini = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "gpt-4o-mini")
        .unwrap();
    assert_eq!(mini["provider"], "openai");
    assert_eq!(mini["aliases"], json!(["gpt-4o-mini-2024-07-18"]));
    assert_eq!(mini["context_window"], 128_000);
    assert_eq!(mini["max_output_tokens"], 16_384);
    assert_eq!(
        mini["price"],
        json!({"input": 0.15, "cached_input": 0.075, "cache_write_5m": null, "cache_write_1h": null, "output": 0.6})
    );
    assert_eq!(
        mini["reachable_via"],
        json!([{"id": "managed-openai", "name": "OpenAI"}])
    );
    let sonnet = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "claude-sonnet-4-5")
        .unwrap();
    assert_eq!(sonnet["price"]["cache_write_1h"], 6.0);
    assert_eq!(sonnet["long_context"]["threshold_tokens"], 200_000);
    assert_eq!(sonnet["long_context"]["price"]["output"], 22.5);
}

#[tokio::test]
async fn disabled_and_unverified_connections_do_not_reach_models() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir).unwrap();
    let db = rusqlite::Connection::open(store.path()).unwrap();
    db.execute_batch(
        "UPDATE connections SET enabled = 0 WHERE id = 'managed-gemini';
         INSERT INTO connections (id, provider, kind, name, enabled, created_at, updated_at, verified_models)
         VALUES ('byok-1', 'openai', 'byok', 'My OpenAI key', 1, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z',
                 '[\"gpt-4o-2024-08-06\", \"o3\"]');",
    )
    .unwrap();
    drop(db);
    drop(store);
    let (hub, cookie) = signed_in(Launch::default().data_dir(&dir)).await;
    let (_, models) = get_json(&hub, &cookie, "/api/v1/models").await;
    let reach = |id: &str| {
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()["reachable_via"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(reach("gpt-4o"), vec!["managed-openai", "byok-1"]);
    assert_eq!(reach("gpt-4o-mini"), vec!["managed-openai"]);
    assert_eq!(reach("gemini-2.5-flash"), Vec::<String>::new());
}

#[tokio::test]
async fn pages_and_api_require_sign_in() {
    let hub = TestHub::start(Launch::default().unlocked());
    for path in ["/usage", "/models"] {
        let res = client().get(hub.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(res.headers()["location"], "/unlock", "{path}");
    }
    let res = client()
        .post(hub.url("/usage/credits"))
        .form(&[("csrf", "x"), ("amount", "5")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    for path in [
        "/api/v1/credits",
        "/api/v1/credits/ledger",
        "/api/v1/usage",
        "/api/v1/usage/requests",
        "/api/v1/usage.csv",
        "/api/v1/models",
    ] {
        let res = client().get(hub.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated", "{path}");
    }
}

fn write_prices(dir: &Path, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("prices.json"), text).unwrap();
}

#[test]
fn a_bad_prices_file_stops_the_start_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    write_prices(
        &dir,
        r#"{"openai": [{"id": "gpt-x", "context_window": 1000, "max_output_tokens": 100,
             "price": {"input": -1, "output": 2}}]}"#,
    );
    let (ok, stderr) = run_to_exit(&[], &[("WORKSHOP_HUB_PASSPHRASE", PASSPHRASE.into())], &dir);
    assert!(!ok);
    assert!(
        stderr.contains("prices.json: model openai/gpt-x: input must be a price of 0 or more"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn prices_json_overrides_and_adds_models() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    write_prices(
        &dir,
        r#"{"_about": "my prices",
            "openai": [{"id": "gpt-4o-mini", "served_as": "gpt-4o-mini-2024-07-18",
                        "aliases": ["gpt-4o-mini-2024-07-18"], "context_window": 128000,
                        "max_output_tokens": 16384, "price": {"input": 0.2, "output": 0.9}}],
            "gemini": [{"id": "gemini-3-pro-preview", "context_window": 1048576,
                        "max_output_tokens": 65536, "price": {"input": 2, "cached_input": 0.2, "output": 12}}]}"#,
    );
    let (hub, cookie) = signed_in(Launch::default().data_dir(&dir)).await;
    let (_, models) = get_json(&hub, &cookie, "/api/v1/models").await;
    let find = |id: &str| {
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(find("gpt-4o-mini")["price"]["input"], 0.2);
    assert_eq!(find("gpt-4o-mini")["price"]["cached_input"], Value::Null);
    assert_eq!(find("gemini-3-pro-preview")["price"]["output"], 12.0);
    assert_eq!(find("gemini-3-pro-preview")["provider"], "gemini");
    assert_eq!(find("gpt-4o")["price"]["input"], 2.5);
    let (_, html) = get_text(&hub, &cookie, "/models").await;
    assert!(html.contains("<tr id=\"model-gemini-gemini-3-pro-preview\">"));
}
