//! Black-box tests of the compatible surface (`/v1`): Claude and Gemini models in OpenAI's
//! dialect cost exactly what the same call costs natively, streamed or not; a cut translated
//! stream is recorded as estimated; cached tokens are counted once; errors and the Hub's own
//! refusals come back in OpenAI's shape with their status, code and `retry-after`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::upstream::{Answer, MockUpstream};
use common::{Launch, PASSPHRASE, TestHub, client, sign_in};
use serde_json::{Value, json};

struct Hub {
    hub: TestHub,
    cookie: String,
    key: String,
    app_id: String,
}

impl Hub {
    async fn start(launch: Launch<'_>) -> Hub {
        let hub = TestHub::start(launch.unlocked());
        let cookie = sign_in(&hub, PASSPHRASE).await;
        let app = common::create_app(&hub, &cookie, "compat").await;
        Hub {
            key: app["key"].as_str().unwrap().to_string(),
            app_id: app["id"].as_str().unwrap().to_string(),
            hub,
            cookie,
        }
    }

    async fn offline() -> Hub {
        Hub::start(Launch::default().arg("--offline")).await
    }

    async fn rows(&self) -> Vec<Value> {
        let body: Value = client()
            .get(self.hub.url("/api/v1/usage/requests?limit=500"))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"].as_array().unwrap().clone()
    }

    async fn newest_row(&self) -> Value {
        self.rows().await[0].clone()
    }

    /// A POST with the app key in `header` (`authorization` gets `Bearer`).
    async fn post(
        &self,
        path: &str,
        header: &str,
        body: &Value,
        extra: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let value = if header == "authorization" {
            format!("Bearer {}", self.key)
        } else {
            self.key.clone()
        };
        let mut req = client()
            .post(self.hub.url(path))
            .header(header, value)
            .json(body);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (status, headers, res.text().await.unwrap())
    }

    async fn v1(
        &self,
        body: &Value,
        extra: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        self.post("/v1/chat/completions", "authorization", body, extra)
            .await
    }
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 60, "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
        "messages": [{"role": "user", "content": "Tell me about lighthouses"}]})
}

/// The native body the translation produces for [`chat`], so the emulator answers alike.
fn anthropic_native(stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 60,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Tell me about lighthouses"}]}],
        "stream": stream})
}

fn gemini_native() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "Tell me about lighthouses"}]}],
        "generationConfig": {"maxOutputTokens": 60}})
}

/// The `data:` payloads of an SSE body.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| {
            e.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_string)
        })
        .collect()
}

fn usage_of_stream(body: &str) -> Value {
    let data = sse_data(body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{body}");
    let last: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(last["choices"], json!([]));
    last["usage"].clone()
}

fn same_metering(compat: &Value, native: &Value) {
    for field in [
        "input_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cost_micro_usd",
        "estimated",
        "provider",
        "billed_to",
    ] {
        assert_eq!(
            compat[field], native[field],
            "{field}: {compat} vs {native}"
        );
    }
    assert!(compat["cost_micro_usd"].as_i64().unwrap() > 0);
    assert_eq!(compat["surface"], "compatible");
    assert_eq!(native["surface"], "native");
}

fn told_is_billed(usage: &Value, row: &Value) {
    assert_eq!(usage["prompt_tokens"], row["input_tokens"], "{usage} {row}");
    assert_eq!(usage["completion_tokens"], row["output_tokens"]);
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"],
        row["cached_input_tokens"]
    );
    assert_eq!(
        usage["completion_tokens_details"]["reasoning_tokens"],
        row["reasoning_tokens"]
    );
}

#[tokio::test]
async fn claude_through_v1_costs_what_it_costs_natively() {
    let h = Hub::offline().await;
    for stream in [false, true] {
        let (status, _, body) = h.v1(&chat("claude-sonnet-4-5", stream), &[]).await;
        assert_eq!(status, 200, "{body}");
        let compat_row = h.newest_row().await;
        let usage = if stream {
            usage_of_stream(&body)
        } else {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["object"], "chat.completion");
            assert!(
                !v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(v["choices"][0]["finish_reason"], "length");
            v["usage"].clone()
        };
        told_is_billed(&usage, &compat_row);
        assert_eq!(compat_row["streamed"], stream);
        let (status, _, native_body) = h
            .post(
                "/anthropic/v1/messages",
                "x-api-key",
                &anthropic_native(stream),
                &[("anthropic-version", "2023-06-01")],
            )
            .await;
        assert_eq!(status, 200, "{native_body}");
        same_metering(&compat_row, &h.newest_row().await);
    }
}

#[tokio::test]
async fn gemini_through_v1_costs_what_it_costs_natively() {
    let h = Hub::offline().await;
    for stream in [false, true] {
        let (status, _, body) = h.v1(&chat("gemini-2.5-flash", stream), &[]).await;
        assert_eq!(status, 200, "{body}");
        let compat_row = h.newest_row().await;
        let usage = if stream {
            let chunks = sse_data(&body);
            let first: Value = serde_json::from_str(&chunks[0]).unwrap();
            assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
            usage_of_stream(&body)
        } else {
            serde_json::from_str::<Value>(&body).unwrap()["usage"].clone()
        };
        told_is_billed(&usage, &compat_row);
        let path = if stream {
            "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        } else {
            "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
        };
        let (status, _, native_body) = h.post(path, "x-goog-api-key", &gemini_native(), &[]).await;
        assert_eq!(status, 200, "{native_body}");
        same_metering(&compat_row, &h.newest_row().await);
    }
}

#[tokio::test]
async fn a_translated_stream_cut_halfway_is_recorded_as_estimated_and_raised() {
    let h = Hub::offline().await;
    let (status, _, body) = h
        .v1(
            &chat("claude-sonnet-4-5", true),
            &[("x-emulator-fault", "drop_mid_stream")],
        )
        .await;
    assert_eq!(status, 200);
    let data = sse_data(&body);
    assert!(!data.contains(&"[DONE]".to_string()), "{body}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_cut", "{body}");
    let row = h.newest_row().await;
    assert_eq!(row["estimated"], true, "{row}");
    assert_eq!(row["surface"], "compatible");
    assert!(row["input_tokens"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn cached_tokens_are_counted_once_and_cost_what_they_cost_natively() {
    let answer = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":4000,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":0},"output_tokens":85}}"#;
    let mock = MockUpstream::start(Answer::Whole {
        head: "HTTP/1.1 200 OK\r\ncontent-type: application/json".into(),
        body: answer.to_vec(),
    })
    .await;
    let h = Hub::start(
        Launch::default()
            .arg("--anthropic-base-url")
            .arg(&mock.base)
            .env("WORKSHOP_HUB_MANAGED_ANTHROPIC_KEY", "sk-ant-api03-test-compat-0000000000000000000000000000000000000000000000000000000000000000000000000000000000-AAAAAAAA"),
    )
    .await;
    let (status, _, body) = h.v1(&chat("claude-sonnet-4-5", false), &[]).await;
    assert_eq!(status, 200, "{body}");
    let usage = serde_json::from_str::<Value>(&body).unwrap()["usage"].clone();
    assert_eq!(usage["prompt_tokens"], 4112);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 4000);
    assert_eq!(usage["prompt_tokens_details"]["cache_write_tokens"], 100);
    assert_eq!(usage["completion_tokens"], 85);
    let compat_row = h.newest_row().await;
    assert_eq!(compat_row["input_tokens"], 4112);
    assert_eq!(compat_row["cached_input_tokens"], 4000);
    assert_eq!(compat_row["cache_write_tokens"], 100);
    let (status, _, _) = h
        .post(
            "/anthropic/v1/messages",
            "x-api-key",
            &anthropic_native(false),
            &[("anthropic-version", "2023-06-01")],
        )
        .await;
    assert_eq!(status, 200);
    same_metering(&compat_row, &h.newest_row().await);
}

#[tokio::test]
async fn provider_errors_keep_status_code_and_retry_after_in_openai_shape() {
    let h = Hub::offline().await;
    for (model, fault, status) in [
        ("claude-sonnet-4-5", "rate_limit", 429),
        ("claude-sonnet-4-5", "overloaded", 503),
        ("gemini-2.5-flash", "rate_limit", 429),
        ("gemini-2.5-flash", "server_error", 500),
    ] {
        let (got, headers, body) = h
            .v1(&chat(model, false), &[("x-emulator-fault", fault)])
            .await;
        assert_eq!(got, status, "{model} {fault}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            !v["error"]["message"].as_str().unwrap().is_empty(),
            "{body}"
        );
        assert!(v["error"]["code"].is_string(), "{body}");
        if status == 429 {
            assert!(
                headers.get("retry-after").is_some(),
                "{model}: no retry-after"
            );
            assert_eq!(v["error"]["type"], "rate_limit_error");
        }
    }
}

#[tokio::test]
async fn the_hubs_refusals_come_in_openai_shape() {
    let h = Hub::offline().await;
    let code = |body: &str| serde_json::from_str::<Value>(body).unwrap()["error"]["code"].clone();
    let (status, _, body) = h.v1(&chat("mystery-model", false), &[]).await;
    assert_eq!((status, code(&body)), (404, json!("model_not_available")));
    assert!(body.contains("provider/model"), "{body}");
    let bad_key = client()
        .post(h.hub.url("/v1/chat/completions"))
        .bearer_auth("whk_nobody00_00000000000000000000000000000000")
        .json(&chat("claude-sonnet-4-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 401);
    assert_eq!(
        code(&bad_key.text().await.unwrap()),
        json!("invalid_app_key")
    );
    let mut odd = chat("claude-sonnet-4-5", false);
    odd["logit_bias"] = json!({"50256": -100});
    let (status, _, body) = h.v1(&odd, &[]).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["param"], "logit_bias");
    let res = client()
        .get(h.hub.url("/v1/assistants"))
        .bearer_auth(&h.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        code(&res.text().await.unwrap()),
        json!("endpoint_not_supported")
    );
    let limited = client()
        .patch(h.hub.url(&format!("/api/v1/apps/{}", h.app_id)))
        .header("cookie", &h.cookie)
        .json(&json!({"rpm_limit": 1}))
        .send()
        .await
        .unwrap();
    assert!(limited.status().is_success());
    let _ = h.v1(&chat("claude-sonnet-4-5", false), &[]).await;
    let (status, headers, body) = h.v1(&chat("gemini-2.5-flash", false), &[]).await;
    assert_eq!(
        (status, code(&body)),
        (429, json!("app_rate_limited")),
        "{body}"
    );
    assert!(headers.get("retry-after").is_some());
}

#[tokio::test]
async fn models_list_what_the_app_reaches_and_embeddings_work_for_gemini() {
    let h = Hub::offline().await;
    let res = client()
        .get(h.hub.url("/v1/models"))
        .bearer_auth(&h.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in ["claude-sonnet-4-5", "gemini-2.5-flash", "gpt-4o-mini"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let unauth = client().get(h.hub.url("/v1/models")).send().await.unwrap();
    assert_eq!(unauth.status(), 401);
    let (status, _, body) = h
        .post(
            "/v1/embeddings",
            "authorization",
            &json!({"model": "gemini-embedding-001", "input": ["one", "two"]}),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert!(v["data"][1]["embedding"].as_array().unwrap().len() > 8);
    let row = h.newest_row().await;
    assert_eq!(row["surface"], "compatible");
    assert_eq!(row["provider"], "gemini");
    assert_eq!(v["usage"]["prompt_tokens"], row["input_tokens"]);
}

#[tokio::test]
async fn a_native_surface_points_a_foreign_model_to_v1() {
    let h = Hub::offline().await;
    let (status, _, body) = h
        .post(
            "/openai/v1/chat/completions",
            "authorization",
            &json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "model_not_available");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(
            "served by Anthropic, not OpenAI. Call it through the OpenAI-compatible base URL /v1"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn openai_models_go_through_v1_natively() {
    let h = Hub::offline().await;
    let (status, _, body) = h.v1(&chat("openai/gpt-4o-mini", false), &[]).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let row = h.newest_row().await;
    assert_eq!(row["surface"], "compatible");
    assert_eq!(row["provider"], "openai");
    told_is_billed(&v["usage"], &row);
}
