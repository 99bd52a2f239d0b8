//! Black-box tests of billing: what each provider's calls are charged, streamed or not,
//! aliases and dated ids, refusals before spending, BYOK kept apart, and the balance, the
//! usage records and the CSV agreeing to the micro-dollar.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Launch, PASSPHRASE, TestHub, client, sign_in};
use serde_json::{Value, json};

struct Billing {
    hub: TestHub,
    cookie: String,
    key: String,
}

impl Billing {
    async fn start() -> Billing {
        let hub = TestHub::start(Launch::default().arg("--offline").unlocked());
        let cookie = sign_in(&hub, PASSPHRASE).await;
        let app = common::create_app(&hub, &cookie, "billing").await;
        Billing {
            key: app["key"].as_str().unwrap().to_string(),
            hub,
            cookie,
        }
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut req = client()
            .request(method.parse().unwrap(), self.hub.url(path))
            .header("cookie", &self.cookie);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    async fn balance(&self) -> i64 {
        self.api("GET", "/api/v1/credits", None).await["balance_micro_usd"]
            .as_i64()
            .unwrap()
    }

    async fn rows(&self) -> Vec<Value> {
        let body = self
            .api("GET", "/api/v1/usage/requests?limit=500", None)
            .await;
        body["data"].as_array().unwrap().clone()
    }

    async fn post(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> (u16, String) {
        let mut req = client().post(self.hub.url(path)).json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn openai(&self, body: Value) -> (u16, String) {
        let auth = format!("Bearer {}", self.key);
        self.post(
            "/openai/v1/chat/completions",
            body,
            &[("authorization", &auth)],
        )
        .await
    }

    async fn anthropic(&self, body: Value) -> (u16, String) {
        self.post(
            "/anthropic/v1/messages",
            body,
            &[
                ("x-api-key", &self.key),
                ("anthropic-version", "2023-06-01"),
            ],
        )
        .await
    }

    async fn gemini(&self, method: &str, body: Value) -> (u16, String) {
        self.post(
            &format!("/gemini/v1beta/models/gemini-2.5-flash:{method}"),
            body,
            &[("x-goog-api-key", &self.key)],
        )
        .await
    }
}

/// cost = Σ tokens × rate ($/M = µUSD per token), rounded up once to the micro-dollar.
fn ceil_cost(parts: &[(i64, f64)]) -> i64 {
    let pico: i64 = parts
        .iter()
        .map(|(t, rate)| t * (rate * 1e6).round() as i64)
        .sum();
    (pico + 999_999) / 1_000_000
}

fn last_sse_json(body: &str, needle: &str) -> Value {
    body.lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data:").map(str::trim))
        .filter(|d| d.contains(needle))
        .find_map(|d| serde_json::from_str(d).ok())
        .unwrap()
}

#[tokio::test]
async fn each_provider_is_charged_its_list_price_streamed_or_not() {
    let b = Billing::start().await;
    let hi = json!([{"role": "user", "content": "Hello, how are you?"}]);

    let (s, body) = b
        .openai(json!({"model": "gpt-4o-mini", "messages": hi}))
        .await;
    assert_eq!(s, 200);
    let u = &serde_json::from_str::<Value>(&body).unwrap()["usage"];
    let openai = ceil_cost(&[
        (u["prompt_tokens"].as_i64().unwrap(), 0.15),
        (u["completion_tokens"].as_i64().unwrap(), 0.60),
    ]);

    let (s, body) = b
        .openai(json!({"model": "gpt-4o-mini", "messages": hi, "stream": true, "stream_options": {"include_usage": true}}))
        .await;
    assert_eq!(s, 200);
    let u = &last_sse_json(&body, "\"usage\":{")["usage"];
    let openai_stream = ceil_cost(&[
        (u["prompt_tokens"].as_i64().unwrap(), 0.15),
        (u["completion_tokens"].as_i64().unwrap(), 0.60),
    ]);

    // Anthropic thinking: output_tokens already include the thinking tokens.
    let (s, body) = b
        .anthropic(
            json!({"model": "claude-sonnet-4-5", "max_tokens": 2000, "messages": hi, "stream": true,
                          "thinking": {"type": "enabled", "budget_tokens": 1024}}),
        )
        .await;
    assert_eq!(s, 200);
    let input = last_sse_json(&body, "message_start")["message"]["usage"]["input_tokens"]
        .as_i64()
        .unwrap();
    let output = last_sse_json(&body, "message_delta")["usage"]["output_tokens"]
        .as_i64()
        .unwrap();
    let anthropic = ceil_cost(&[(input, 3.0), (output, 15.0)]);

    // Gemini: thoughts are billed as output on top of candidates.
    let (s, body) = b
        .gemini(
            "streamGenerateContent?alt=sse",
            json!({"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}),
        )
        .await;
    assert_eq!(s, 200);
    let m = &last_sse_json(&body, "usageMetadata")["usageMetadata"];
    let thoughts = m["thoughtsTokenCount"].as_i64().unwrap_or(0);
    assert!(thoughts > 0, "2.5 models think by default: {m}");
    let gemini = ceil_cost(&[
        (m["promptTokenCount"].as_i64().unwrap(), 0.30),
        (m["candidatesTokenCount"].as_i64().unwrap() + thoughts, 2.50),
    ]);

    let rows = b.rows().await;
    let costs: Vec<i64> = rows
        .iter()
        .rev()
        .map(|r| r["cost_micro_usd"].as_i64().unwrap())
        .collect();
    let expected = vec![openai, openai_stream, anthropic, gemini];
    assert_eq!(costs, expected, "{rows:#?}");
    assert!(
        costs.iter().all(|c| *c > 0),
        "never zero when tokens were produced"
    );
    assert_eq!(
        rows[0]["reasoning_tokens"].as_i64().unwrap(),
        thoughts,
        "Gemini thoughts are recorded as reasoning"
    );
    assert_eq!(b.balance().await, 5_000_000 - expected.iter().sum::<i64>());
}

#[tokio::test]
async fn dated_ids_and_aliases_are_priced_and_unknown_models_spend_nothing() {
    let b = Billing::start().await;
    let hi = json!([{"role": "user", "content": "Hi"}]);
    let (s, _) = b
        .openai(json!({"model": "gpt-4o-mini-2024-07-18", "messages": hi}))
        .await;
    assert_eq!(s, 200);
    let (s, _) = b
        .anthropic(json!({"model": "claude-haiku-4-5-20251001", "max_tokens": 50, "messages": hi}))
        .await;
    assert_eq!(s, 200);
    for r in b.rows().await {
        assert!(r["cost_micro_usd"].as_i64().unwrap() > 0, "{r}");
    }
    let before = b.balance().await;
    let (s, body) = b
        .openai(json!({"model": "gpt-9-ultra", "messages": hi}))
        .await;
    assert_eq!(s, 404);
    assert!(body.contains("model_not_available"), "{body}");
    assert_eq!(b.balance().await, before, "nothing spent");
    let credits = b.api("GET", "/api/v1/credits", None).await;
    assert_eq!(credits["held_micro_usd"], 0);
}

#[tokio::test]
async fn provider_errors_and_refusals_cost_nothing() {
    let b = Billing::start().await;
    let hi = json!([{"role": "user", "content": "Hi"}]);
    let auth = format!("Bearer {}", b.key);
    let (s, _) = b
        .post(
            "/openai/v1/chat/completions",
            json!({"model": "gpt-4o", "messages": hi}),
            &[
                ("authorization", &auth),
                ("x-emulator-fault", "server_error"),
            ],
        )
        .await;
    assert_eq!(s, 500);
    let rows = b.rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], 500);
    assert_eq!(rows[0]["cost_micro_usd"], 0);
    assert_eq!(b.balance().await, 5_000_000);
}

#[tokio::test]
async fn byok_is_recorded_with_its_cost_but_never_touches_credits() {
    let b = Billing::start().await;
    let conn = b
        .api("POST", "/api/v1/connections", Some(json!({"provider": "openai", "name": "mine", "api_key": "sk-proj-testKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})))
        .await;
    let apps = b.api("GET", "/api/v1/apps", None).await;
    let app_id = apps["data"][0]["id"].as_str().unwrap().to_string();
    let hi = json!([{"role": "user", "content": "Hi"}]);
    // One managed call, then the same app on its own key, streamed.
    let (s, _) = b
        .openai(json!({"model": "gpt-4o-mini", "messages": hi}))
        .await;
    assert_eq!(s, 200);
    b.api(
        "PATCH",
        &format!("/api/v1/apps/{app_id}"),
        Some(json!({"connections": {"openai": conn["id"]}})),
    )
    .await;
    let (s, _) = b
        .openai(json!({"model": "gpt-4o-mini", "messages": hi, "stream": true}))
        .await;
    assert_eq!(s, 200);
    let top_up = b
        .api(
            "POST",
            "/api/v1/credits",
            Some(json!({"amount_micro_usd": 1_234_567, "note": "test"})),
        )
        .await;
    assert!(top_up.is_object());
    let rows = b.rows().await;
    assert_eq!(rows.len(), 2);
    let (byok, managed) = (&rows[0], &rows[1]);
    assert_eq!(byok["billed_to"], "provider");
    assert!(
        byok["cost_micro_usd"].as_i64().unwrap() > 0,
        "the estimate is recorded"
    );
    assert_eq!(managed["billed_to"], "credits");
    let managed_cost = managed["cost_micro_usd"].as_i64().unwrap();
    assert_eq!(
        b.balance().await,
        5_000_000 + 1_234_567 - managed_cost,
        "only managed costs are debited"
    );

    // The CSV says the same.
    let csv = client()
        .get(b.hub.url("/api/v1/usage.csv"))
        .header("cookie", &b.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let cost_at = header.iter().position(|h| *h == "cost_micro_usd").unwrap();
    let billed_at = header.iter().position(|h| *h == "billed_to").unwrap();
    let credits_in_csv: i64 = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[billed_at] == "credits")
        .map(|f| f[cost_at].parse::<i64>().unwrap())
        .sum();
    assert_eq!(credits_in_csv, managed_cost);
}
