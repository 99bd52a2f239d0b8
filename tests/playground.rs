//! Black-box tests of the Playground: the form without JavaScript, the streaming API the
//! page's script uses, and the usage it leaves behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Launch, PASSPHRASE, TestHub, client, sign_in};
use serde_json::{Value, json};

async fn csrf(hub: &TestHub, cookie: &str) -> String {
    let page = client()
        .get(hub.url("/playground"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Connection and model"));
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// The HTML of a page as a browser with `cookies` gets it.
async fn page_text(hub: &TestHub, path: &str, cookies: &str) -> String {
    let res = client()
        .get(hub.url(path))
        .header("cookie", cookies)
        .send()
        .await
        .unwrap();
    res.text().await.unwrap()
}

#[tokio::test]
async fn the_form_answers_without_javascript_and_is_recorded() {
    let hub = TestHub::start(Launch::default().unlocked());
    let cookie = sign_in(&hub, PASSPHRASE).await;
    let token = csrf(&hub, &cookie).await;
    let res = client()
        .post(hub.url("/playground"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("target", "managed-gemini|gemini-2.5-flash"),
            ("prompt", "Say hello to the playground"),
            ("max_tokens", "300"),
        ])
        .send()
        .await
        .unwrap();
    // Post/redirect/get: the answer is shown by the page the form redirects to, once.
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/playground#answer");
    let flash = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = page_text(&hub, "/playground", &format!("{cookie}; {flash}")).await;
    assert!(
        !page_text(&hub, "/playground", &cookie)
            .await
            .contains("offline emulator"),
        "a reload asks nothing again"
    );
    assert!(
        page.contains("Say hello to the playground"),
        "the reply echoes the prompt"
    );
    assert!(page.contains("offline emulator"));
    let rows: Value = client()
        .get(hub.url("/api/v1/usage/requests"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = &rows["data"][0];
    assert_eq!(row["app_id"], "playground");
    assert_eq!(row["billed_to"], "credits");
    assert!(row["cost_micro_usd"].as_i64().unwrap() > 0);
    let usage = page_text(&hub, "/usage", &cookie).await;
    assert!(usage.contains("Playground"));
}

#[tokio::test]
async fn the_api_streams_the_providers_own_events() {
    let hub = TestHub::start(Launch::default().unlocked());
    let cookie = sign_in(&hub, PASSPHRASE).await;
    let res = client()
        .post(hub.url("/api/v1/playground"))
        .header("cookie", &cookie)
        .json(&json!({"target": "managed-anthropic|claude-haiku-4-5", "prompt": "Hi", "max_tokens": 64}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-workshop-provider"], "anthropic");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = res.text().await.unwrap();
    assert!(body.contains("event: content_block_delta"));
    assert!(body.contains("event: message_stop"));
}

#[tokio::test]
async fn bad_playground_requests_are_explained() {
    let hub = TestHub::start(Launch::default().unlocked());
    let cookie = sign_in(&hub, PASSPHRASE).await;
    for (body, field) in [
        (
            json!({"target": "managed-openai|gpt-4o-mini", "prompt": "  "}),
            "prompt",
        ),
        (json!({"target": "nothing", "prompt": "Hi"}), "target"),
        (
            json!({"target": "managed-openai|gpt-4o-mini", "prompt": "Hi", "max_tokens": 0}),
            "max_tokens",
        ),
    ] {
        let res = client()
            .post(hub.url("/api/v1/playground"))
            .header("cookie", &cookie)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(e["error"]["field"], field);
    }
    // A deleted connector refuses, in the provider's own error shape.
    client()
        .delete(hub.url("/api/v1/connections/managed-openai"))
        .header("cookie", &cookie)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let res = client()
        .post(hub.url("/api/v1/playground"))
        .header("cookie", &cookie)
        .json(&json!({"target": "managed-openai|gpt-4o-mini", "prompt": "Hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // Signed-out callers cannot use it.
    let res = client()
        .post(hub.url("/api/v1/playground"))
        .json(&json!({"target": "managed-anthropic|claude-haiku-4-5", "prompt": "Hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
