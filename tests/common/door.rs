//! A Hub for black-box gateway tests: managed connections backed by platform keys against an
//! upstream of the test's choosing, one app, and each provider's canonical call.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::upstream::raw_request;
use super::{Launch, PASSPHRASE, TestHub, client, sign_in};

pub const OPENAI_KEY: &str = "sk-proj-testPlatformKeyAAAAAAAAAAAAAAAAAAAAAAAA";
pub const ANTHROPIC_KEY: &str = "sk-ant-api03-testPlatformKeyAAAAAAAAAAAAAAAAAAAA";
pub const GEMINI_KEY: &str = "AIzaTestPlatformKeyAAAAAAAAAAAAAAAAAAAA";

/// One provider's canonical call and how an app authenticates it.
pub struct Call {
    pub provider: &'static str,
    /// The surface prefix (`/openai`) and the path below it.
    pub prefix: &'static str,
    pub path: &'static str,
    pub body: Value,
    /// What the metered endpoint is called in a usage record.
    pub endpoint: &'static str,
}

pub fn calls() -> [Call; 3] {
    [
        Call {
            provider: "openai",
            prefix: "/openai",
            path: "/v1/chat/completions",
            body: json!({"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "Hello there"}]}),
            endpoint: "chat_completions",
        },
        Call {
            provider: "anthropic",
            prefix: "/anthropic",
            path: "/v1/messages",
            body: json!({"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "Hello there"}]}),
            endpoint: "messages",
        },
        Call {
            provider: "gemini",
            prefix: "/gemini",
            path: "/v1beta/models/gemini-2.5-flash:generateContent",
            body: json!({"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}], "generationConfig": {"maxOutputTokens": 16}}),
            endpoint: "generate_content",
        },
    ]
}

/// The headers carrying `key` where this provider's SDK puts it.
pub fn auth(provider: &str, key: &str) -> Vec<(String, String)> {
    let mut h = match provider {
        "openai" => vec![("authorization".to_string(), format!("Bearer {key}"))],
        "anthropic" => vec![
            ("x-api-key".to_string(), key.to_string()),
            ("anthropic-version".to_string(), "2023-06-01".to_string()),
        ],
        _ => vec![("x-goog-api-key".to_string(), key.to_string())],
    };
    h.push(("content-type".to_string(), "application/json".to_string()));
    h
}

/// The Hub's stable code in a refusal, in whichever native shape.
pub fn native_code(provider: &str, body: &Value) -> Option<String> {
    match provider {
        "openai" => body["error"]["code"].as_str().map(str::to_owned),
        "anthropic" => body["error"]["details"]["error_code"]
            .as_str()
            .map(str::to_owned),
        _ => body["error"]["details"][0]["reason"]
            .as_str()
            .map(str::to_ascii_lowercase),
    }
}

/// A Hub whose managed connections use platform keys against `upstream`, and one app.
pub struct Door {
    pub hub: TestHub,
    pub cookie: String,
    pub key: String,
    pub app_id: String,
}

impl Door {
    pub async fn start(upstream: &str, extra: Launch<'_>) -> Door {
        let mut launch = extra
            .arg("--openai-base-url")
            .arg(upstream)
            .arg("--anthropic-base-url")
            .arg(upstream)
            .arg("--gemini-base-url")
            .arg(upstream)
            .env("WORKSHOP_HUB_MANAGED_OPENAI_KEY", OPENAI_KEY)
            .env("WORKSHOP_HUB_MANAGED_ANTHROPIC_KEY", ANTHROPIC_KEY)
            .env("WORKSHOP_HUB_MANAGED_GEMINI_KEY", GEMINI_KEY);
        launch = launch.unlocked();
        let hub = TestHub::start(launch);
        let cookie = sign_in(&hub, PASSPHRASE).await;
        let mut door = Door {
            hub,
            cookie,
            key: String::new(),
            app_id: String::new(),
        };
        let created = door
            .api("POST", "/api/v1/apps", json!({"name": "front door"}))
            .await;
        door.key = created["key"].as_str().unwrap().to_string();
        door.app_id = created["id"].as_str().unwrap().to_string();
        door
    }

    pub async fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let mut req = client()
            .request(method.parse().unwrap(), self.hub.url(path))
            .header("cookie", &self.cookie);
        if method != "GET" {
            req = req.json(&body);
        }
        req.send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    pub async fn balance(&self) -> i64 {
        self.api("GET", "/api/v1/credits", Value::Null).await["balance_micro_usd"]
            .as_i64()
            .unwrap()
    }

    pub async fn rows(&self) -> Vec<Value> {
        self.api("GET", "/api/v1/usage/requests?limit=500", Value::Null)
            .await["data"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Sends `target` to the Hub byte for byte, as `provider`'s app would.
    pub async fn raw(&self, call: &Call, target: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let headers = auth(call.provider, &self.key);
        let mut pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        pairs.extend_from_slice(extra);
        let body = serde_json::to_vec(&call.body).unwrap();
        let res = raw_request(self.hub.port, "POST", target, &pairs, &body).await;
        (res.status, res.json())
    }

    pub async fn bind_byok(&self) {
        let keys = [
            ("openai", "sk-proj-testByokKeyAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            (
                "anthropic",
                "sk-ant-api03-testByokKeyAAAAAAAAAAAAAAAAAAAAAAA",
            ),
            ("gemini", "AIzaTestByokKeyAAAAAAAAAAAAAAAAAAAAAAAA"),
        ];
        let mut bindings = serde_json::Map::new();
        for (provider, key) in keys {
            let conn = self
                .api(
                    "POST",
                    "/api/v1/connections",
                    json!({"provider": provider, "name": format!("my {provider}"), "api_key": key}),
                )
                .await;
            bindings.insert(provider.to_string(), conn["id"].clone());
        }
        self.api(
            "PATCH",
            &format!("/api/v1/apps/{}", self.app_id),
            json!({ "connections": bindings }),
        )
        .await;
    }
}
