//! Black-box tests of connectors: managed and own-key connections over the JSON API,
//! verification against the emulator, bad input, and keys never stored in plaintext.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Launch, PASSPHRASE, TestHub, client, sign_in};
use serde_json::{Value, json};

const OPENAI_KEY: &str = "sk-proj-testKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1234";
const ANTHROPIC_KEY: &str = "sk-ant-api03-testKeyBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB5678";
const GEMINI_KEY: &str = "AIzaTestCCCCCCCCCCCCCCCCCCCCCCCCCCC9012";

struct Api {
    hub: TestHub,
    cookie: String,
}

impl Api {
    async fn start(launch: Launch<'_>) -> Api {
        let hub = TestHub::start(launch.unlocked());
        let cookie = sign_in(&hub, PASSPHRASE).await;
        Api { hub, cookie }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = client()
            .request(method.parse().unwrap(), self.hub.url(path))
            .header("cookie", &self.cookie);
        if method != "GET" {
            req = req.json(&body.unwrap_or(json!({})));
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn list(&self) -> Vec<Value> {
        let (status, body) = self.call("GET", "/api/v1/connections", None).await;
        assert_eq!(status, 200);
        body["data"].as_array().unwrap().clone()
    }

    async fn add(&self, provider: &str, name: &str, key: &str) -> (u16, Value) {
        self.call(
            "POST",
            "/api/v1/connections",
            Some(json!({"provider": provider, "name": name, "api_key": key})),
        )
        .await
    }
}

#[tokio::test]
async fn a_new_hub_has_three_managed_connections_on_in_demo() {
    let api = Api::start(Launch::default()).await;
    let list = api.list().await;
    let managed: Vec<&Value> = list.iter().filter(|c| c["kind"] == "managed").collect();
    assert_eq!(managed.len(), 3);
    for c in managed {
        assert_eq!(c["status"], "active");
        assert_eq!(c["backing"], "demo");
        assert!(c["key_hint"].is_null());
        for field in [
            "id",
            "provider",
            "kind",
            "name",
            "status",
            "key_hint",
            "created_at",
            "last_verified_at",
            "last_error",
        ] {
            assert!(c.get(field).is_some(), "missing {field}");
        }
    }
    // Verifying a demo connection lists the emulator's models for that provider.
    let (status, body) = api
        .call("POST", "/api/v1/connections/managed-anthropic/verify", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    let models = body["models"].as_array().unwrap();
    assert!(
        models.iter().any(|m| m == "claude-sonnet-4-5-20250929"),
        "{models:?}"
    );
    assert!(body["connection"]["last_verified_at"].is_string());
}

#[tokio::test]
async fn own_keys_are_added_verified_renamed_rotated_and_deleted() {
    let api = Api::start(Launch::default().arg("--offline")).await;
    let (status, conn) = api
        .add("openai", "Work", &format!("  {OPENAI_KEY}\n"))
        .await;
    assert_eq!(status, 201, "{conn}");
    assert_eq!(conn["kind"], "byok");
    assert_eq!(conn["key_hint"], "sk-proj-…1234");
    assert!(
        conn["last_verified_at"].is_string(),
        "verified once on add: {conn}"
    );
    assert!(conn["last_error"].is_null());
    let id = conn["id"].as_str().unwrap().to_string();

    // Several connections per provider; names unique per provider only.
    assert_eq!(
        api.add(
            "openai",
            "Personal",
            "sk-proj-testKeyDDDDDDDDDDDDDDDDDDDDDDDDDDDD"
        )
        .await
        .0,
        201
    );
    assert_eq!(api.add("anthropic", "Work", ANTHROPIC_KEY).await.0, 201);
    assert_eq!(api.add("gemini", "Work", GEMINI_KEY).await.0, 201);

    let (status, renamed) = api
        .call(
            "PATCH",
            &format!("/api/v1/connections/{id}"),
            Some(json!({"name": "Team"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(renamed["name"], "Team");

    let rotated_key = "sk-proj-testKeyEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE9999";
    let (status, rotated) = api
        .call(
            "PATCH",
            &format!("/api/v1/connections/{id}"),
            Some(json!({"api_key": rotated_key})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(rotated["id"], id.as_str(), "rotation keeps the id");
    assert_eq!(rotated["key_hint"], "sk-proj-…9999");

    let (status, _) = api
        .call("DELETE", &format!("/api/v1/connections/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .call("GET", &format!("/api/v1/connections/{id}"), None)
        .await;
    assert_eq!(status, 404);
    // No response ever carried a key.
    let everything = serde_json::to_string(&api.list().await).unwrap();
    for key in [OPENAI_KEY, rotated_key, ANTHROPIC_KEY, GEMINI_KEY] {
        assert!(!everything.contains(key));
    }
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let api = Api::start(Launch::default()).await;
    assert_eq!(api.add("openai", "Work", OPENAI_KEY).await.0, 201);
    let before = api.list().await;
    let long_name = "n".repeat(65);
    let long_key = format!("sk-proj-{}", "A".repeat(600));
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (
            "openai",
            "Other",
            "sk-ant-api03-testKeyBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
            "sk-proj-",
        ),
        ("anthropic", "Other", OPENAI_KEY, "sk-ant-"),
        ("gemini", "Other", "AIzaTooShort", "AIza"),
        ("openai", "   ", OPENAI_KEY, "name"),
        (
            "openai",
            "Work",
            "sk-proj-testKeyZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "already",
        ),
        ("azure", "Other", OPENAI_KEY, "unknown provider"),
        ("openai", &long_name, OPENAI_KEY, "64"),
        ("openai", "Other", &long_key, "longer"),
        (
            "openai",
            "Other",
            "sk-proj-has spaces inside the key 12345",
            "copied",
        ),
    ];
    for (provider, name, key, hint) in cases {
        let (status, body) = api.add(provider, name, key).await;
        assert!(
            status == 400 || status == 409,
            "{provider}/{name}: {status} {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(hint), "{message} should mention {hint}");
        assert!(
            !message.contains(key) || key.len() < 8,
            "the key is never echoed"
        );
    }
    // Oversized JSON and wrong field types are refused before the service sees them.
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/connections",
            Some(json!({"provider": "openai", "name": "x".repeat(300_000), "api_key": OPENAI_KEY})),
        )
        .await;
    assert!(status == 400 || status == 413, "{status}");
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/connections",
            Some(json!({"provider": "openai", "name": 5, "api_key": OPENAI_KEY})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = api
        .call(
            "PATCH",
            "/api/v1/connections/managed-openai",
            Some(json!({"api_key": "not a key"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(api.list().await, before, "stored data unchanged");
}

#[tokio::test]
async fn deleting_a_managed_connection_disables_it_and_enable_restores_it() {
    let api = Api::start(Launch::default()).await;
    let (status, _) = api
        .call("DELETE", "/api/v1/connections/managed-gemini", None)
        .await;
    assert_eq!(status, 204);
    let (_, gemini) = api
        .call("GET", "/api/v1/connections/managed-gemini", None)
        .await;
    assert_eq!(gemini["status"], "disabled");
    let (status, gemini) = api
        .call("POST", "/api/v1/connections/managed/gemini", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(gemini["status"], "active");
    let (status, _) = api
        .call("POST", "/api/v1/connections/managed/azure", None)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn verification_shows_each_troubleshooting_case() {
    let api = Api::start(Launch::default().arg("--offline")).await;
    let cases = [
        (
            "openai",
            "sk-proj-testinvalidKeyAAAAAAAAAAAAAAAAAAAAAAAA",
            "Invalid API key",
        ),
        (
            "anthropic",
            "sk-ant-api03-testrevokedKeyAAAAAAAAAAAAAAAAAAAAAAAA",
            "Invalid API key",
        ),
        (
            "gemini",
            "AIzaTestinvalidAAAAAAAAAAAAAAAAAAAAAAAA",
            "Invalid API key",
        ),
        (
            "openai",
            "sk-proj-testnoquotaKeyAAAAAAAAAAAAAAAAAAAAAAAA",
            "Insufficient quota",
        ),
        (
            "anthropic",
            "sk-ant-api03-testnoquotaKeyAAAAAAAAAAAAAAAAAAAAAAAA",
            "Insufficient quota",
        ),
        (
            "gemini",
            "AIzaTestnoquotaAAAAAAAAAAAAAAAAAAAAAAAA",
            "Insufficient quota",
        ),
    ];
    for (i, (provider, key, title)) in cases.iter().enumerate() {
        let (status, conn) = api.add(provider, &format!("case {i}"), key).await;
        assert_eq!(status, 201, "a failed check keeps the connection");
        assert_eq!(
            conn["last_error"]["title"], *title,
            "{provider} {key}: {conn}"
        );
        assert!(!conn["last_error"]["fix"].as_str().unwrap().is_empty());
        assert!(conn["last_error"]["at"].is_string());
        let (status, verified) = api
            .call(
                "POST",
                &format!(
                    "/api/v1/connections/{}/verify",
                    conn["id"].as_str().unwrap()
                ),
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(verified["ok"], false);
    }
}

#[tokio::test]
async fn an_unreachable_provider_is_a_connection_failure_until_a_later_success() {
    let api = Api::start(
        Launch::default()
            .arg("--openai-base-url")
            .arg("http://127.0.0.1:9"),
    )
    .await;
    let (status, conn) = api.add("openai", "Work", OPENAI_KEY).await;
    assert_eq!(status, 201);
    assert_eq!(conn["last_error"]["title"], "Connection Failed");
    assert_eq!(conn["last_error"]["code"], "connection_failed");
}

#[tokio::test]
async fn the_database_never_holds_a_plaintext_key() {
    let api = Api::start(Launch::default().arg("--offline")).await;
    let keys = [OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY];
    let mut ids = Vec::new();
    for (provider, key) in ["openai", "anthropic", "gemini"].iter().zip(keys) {
        let (status, conn) = api.add(provider, "Mine", key).await;
        assert_eq!(status, 201);
        ids.push(conn["id"].as_str().unwrap().to_string());
    }
    let rotated = "sk-proj-testKeyRotatedRRRRRRRRRRRRRRRRRRRRRRRRRR7777";
    api.call(
        "PATCH",
        &format!("/api/v1/connections/{}", ids[0]),
        Some(json!({"api_key": rotated})),
    )
    .await;
    let platform = "sk-ant-api03-testPlatformPPPPPPPPPPPPPPPPPPPPPPPPPPPPPP";
    api.call(
        "PATCH",
        "/api/v1/connections/managed-anthropic",
        Some(json!({"api_key": platform})),
    )
    .await;
    let scan = |when: &str| {
        for file in ["hub.db", "hub.db-wal", "hub.db-shm"] {
            let path = api.hub.data_dir.join(file);
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for key in keys.iter().chain([&rotated, &platform]) {
                // Any 16-byte run of a key would betray it.
                let needle = &key.as_bytes()[..16.min(key.len())];
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{when}: {file} holds part of a key"
                );
                assert!(
                    !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                    "{when}: {file} holds {key}"
                );
            }
        }
    };
    scan("after adding and rotating");
    for id in &ids {
        api.call("DELETE", &format!("/api/v1/connections/{id}"), None)
            .await;
    }
    scan("after deleting");
    let log = api.hub.log();
    for key in keys.iter().chain([&rotated, &platform]) {
        assert!(!log.contains(&key[..16]), "the log holds part of {key}");
    }
    let wal = std::fs::metadata(api.hub.data_dir.join("hub.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(wal, 0, "deleting truncates the write-ahead log");
}

#[tokio::test]
async fn connections_survive_a_restart_and_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let api = Api::start(Launch::default().arg("--offline").data_dir(&data)).await;
    let (_, conn) = api.add("gemini", "Studio", GEMINI_KEY).await;
    api.call("DELETE", "/api/v1/connections/managed-openai", None)
        .await;
    let before = api.list().await;
    drop(api);
    // Restart without a passphrase: locked until someone signs in.
    let hub = TestHub::start(Launch::default().arg("--offline").data_dir(&data));
    let cookie = sign_in(&hub, PASSPHRASE).await;
    let api = Api { hub, cookie };
    assert_eq!(api.list().await, before);
    let (status, verified) = api
        .call(
            "POST",
            &format!(
                "/api/v1/connections/{}/verify",
                conn["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        verified["ok"], true,
        "the key opens again after unlock: {verified}"
    );
}

#[tokio::test]
async fn connections_need_a_session() {
    let hub = TestHub::start(Launch::default().unlocked());
    let res = client()
        .get(hub.url("/api/v1/connections"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client().get(hub.url("/connectors")).send().await.unwrap();
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn the_connectors_page_shows_the_labels_people_know() {
    let api = Api::start(Launch::default()).await;
    api.add("openai", "Work", OPENAI_KEY).await;
    let page = client()
        .get(api.hub.url("/connectors"))
        .header("cookie", &api.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for label in [
        "AI Models",
        "Managed connectors",
        "Delete Connection",
        "OpenAI (your API key)",
        "Anthropic (your API key)",
        "Google Gemini (your API key)",
        "Connection Name",
        "API Key",
        "Add Connection",
        "Demo: answers come from the built-in emulator",
        "sk-proj-…1234",
    ] {
        assert!(page.contains(label), "page lacks {label}");
    }
    assert!(!page.contains(OPENAI_KEY));
}
