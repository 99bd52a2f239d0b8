//! No secret escapes. A whole journey with known fake keys (setup with a passphrase, BYOK
//! connections for all three providers, verify, an app, calls that work and calls that fail,
//! rotations of every key, lock and unlock, a passphrase change, a kill -9 mid-call) and then
//! every byte it produced is scanned: each HTTP response's head and body, the log at `trace`,
//! the database with its WAL and SHM files (while running and after the crash), and what the
//! process wrote up to its death. No provider key, passphrase or app secret may be there, in
//! plain text, hex or base64.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use base64::Engine;
use common::calls::{Received, Surface, call, read_all};
use common::{Emulator, Launch, TestHub, client, session_cookie};
use serde_json::{Value, json};

const PASSPHRASE: &str = "leak canary passphrase 7f3a9c";
const NEW_PASSPHRASE: &str = "second leak canary passphrase 41d2e8";

fn provider_keys(round: usize) -> [(&'static str, String); 3] {
    [
        (
            "openai",
            format!("sk-proj-testLeakCanary{round}OpenAiQx7Vb2Nc9Lm4Tz8Rw1Ks5Hd"),
        ),
        (
            "anthropic",
            format!("sk-ant-api03-testLeakCanary{round}AnthropicPp3Jf6Yx0Gv"),
        ),
        (
            "gemini",
            format!("AIzaTestLeakCanary{round}GeminiWq2Er4Ty6Ui8Op"),
        ),
    ]
}

/// Every form a secret could be written in.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    let mut out = vec![
        secret.as_bytes().to_vec(),
        hex::encode(secret).into_bytes(),
        hex::encode_upper(secret).into_bytes(),
    ];
    // Inside a longer base64 text the key's own characters sit at one of three alignments;
    // the middle of each encoding does not depend on what came before or after.
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        for pad in 0..3 {
            let mut bytes = vec![0u8; pad];
            bytes.extend_from_slice(secret.as_bytes());
            let enc = engine.encode(&bytes);
            out.push(enc.as_bytes()[4..enc.len() - 4].to_vec());
        }
    }
    out
}

/// The secrets and everything scanned for them.
#[derive(Default)]
struct Scan {
    secrets: Vec<(String, Vec<Vec<u8>>)>,
    bytes: usize,
    sources: usize,
    found: Vec<String>,
}

impl Scan {
    fn secret(&mut self, label: impl Into<String>, secret: &str) {
        self.secrets.push((label.into(), forms(secret)));
    }

    /// Scans `bytes` for every secret except those named in `allowed` (an app key is shown
    /// once, on purpose, where it is created).
    fn scan_except(&mut self, source: &str, bytes: &[u8], allowed: &[&str]) {
        self.bytes += bytes.len();
        self.sources += 1;
        for (label, forms) in &self.secrets {
            if allowed.contains(&label.as_str()) {
                continue;
            }
            if forms
                .iter()
                .any(|f| bytes.windows(f.len()).any(|w| w == f.as_slice()))
            {
                self.found.push(format!("{label} in {source}"));
            }
        }
    }

    fn scan(&mut self, source: &str, bytes: &[u8]) {
        self.scan_except(source, bytes, &[]);
    }

    fn response(&mut self, what: &str, r: &Received) {
        self.scan(&format!("{what} (head)"), r.head.as_bytes());
        self.scan(&format!("{what} (body)"), &r.body);
    }

    /// The database and its WAL and SHM files, as they are now.
    fn data_files(&mut self, dir: &Path, when: &str) {
        for name in ["hub.db", "hub.db-wal", "hub.db-shm"] {
            if let Ok(bytes) = std::fs::read(dir.join(name)) {
                self.scan(&format!("{name} {when}"), &bytes);
            }
        }
    }

    /// A backup file written by `workshop-hub backup FILE`.
    fn backup(&mut self, dir: &Path) {
        let file = dir.parent().unwrap().join("leak-check.backup");
        let out = std::process::Command::new(common::bin())
            .arg("backup")
            .arg(&file)
            .arg("--data-dir")
            .arg(dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "backup failed: {stderr}");
        self.scan("backup stderr", &out.stderr);
        self.scan("backup stdout", &out.stdout);
        self.scan("backup file", &std::fs::read(&file).unwrap());
    }
}

/// The session cookie a sign-in answer set.
fn cookie_of(r: &Received) -> String {
    let value = r
        .head
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: whub_session="))
        .find(|v| !v.starts_with(';'))
        .unwrap();
    format!("whub_session={}", value.split(';').next().unwrap())
}

/// A signed-in browser-like client of the management API that keeps every answer.
struct Journey<'a> {
    hub: &'a TestHub,
    cookie: String,
    http: reqwest::Client,
    answers: Vec<(String, Received)>,
}

impl Journey<'_> {
    async fn send(&mut self, method: &str, path: &str, body: Option<Value>) -> Received {
        let mut req = self
            .http
            .request(method.parse().unwrap(), self.hub.url(path))
            .header("cookie", &self.cookie)
            .header("origin", self.hub.origin());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = read_all(req).await;
        self.answers.push((format!("{method} {path}"), r.clone()));
        r
    }

    async fn get(&mut self, path: &str) -> Received {
        self.send("GET", path, None).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_key_passphrase_or_app_secret_is_anywhere_after_a_whole_journey() {
    let emulator = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let launch = || {
        Launch::default()
            .arg("--openai-base-url")
            .arg(&emulator.base)
            .arg("--anthropic-base-url")
            .arg(&emulator.base)
            .arg("--gemini-base-url")
            .arg(&emulator.base)
            .data_dir(&dir)
            .env("RUST_LOG", "trace")
    };
    let mut scan = Scan::default();
    scan.secret("passphrase", PASSPHRASE);
    scan.secret("new passphrase", NEW_PASSPHRASE);
    for round in 0..2 {
        for (provider, key) in provider_keys(round) {
            scan.secret(format!("{provider} key {round}"), &key);
        }
    }

    let hub = TestHub::start(launch());
    let http = client();
    let setup = http
        .post(hub.url("/api/v1/setup"))
        .json(&json!({"passphrase": PASSPHRASE}))
        .send()
        .await
        .unwrap();
    assert_eq!(setup.status(), 201);
    let cookie = format!("whub_session={}", session_cookie(&setup).unwrap());
    let mut j = Journey {
        hub: &hub,
        cookie,
        http: http.clone(),
        answers: Vec::new(),
    };

    // BYOK connections for every provider, verified, and an app bound to them.
    let mut bindings = serde_json::Map::new();
    let mut conn_ids = Vec::new();
    for (provider, key) in provider_keys(0) {
        let r = j
            .send(
                "POST",
                "/api/v1/connections",
                Some(
                    json!({"provider": provider, "name": format!("my {provider}"), "api_key": key}),
                ),
            )
            .await;
        assert!(r.status < 300, "{}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_string();
        let v = j
            .send(
                "POST",
                &format!("/api/v1/connections/{id}/verify"),
                Some(json!({})),
            )
            .await;
        assert_eq!(v.status, 200, "verify {provider}: {}", v.text());
        bindings.insert(provider.to_string(), json!(id));
        conn_ids.push(id);
    }
    let created = j
        .send("POST", "/api/v1/apps", Some(json!({"name": "leaky?"})))
        .await;
    let app = created.json();
    let app_id = app["id"].as_str().unwrap().to_string();
    let mut app_keys = vec![app["key"].as_str().unwrap().to_string()];
    j.send(
        "PATCH",
        &format!("/api/v1/apps/{app_id}"),
        Some(json!({"connections": bindings})),
    )
    .await;

    // Calls that work, streamed and not, and calls that fail in every way a provider can.
    let mut calls: Vec<(String, Received)> = Vec::new();
    for surface in Surface::ALL {
        for stream in [false, true] {
            for fault in [
                None,
                Some("server_error"),
                Some("drop_mid_stream"),
                Some("rate_limit"),
            ] {
                let r = call(
                    &http,
                    &hub.base,
                    &app_keys[0],
                    surface,
                    stream,
                    "leak",
                    fault,
                )
                .await;
                if fault.is_none() {
                    assert_eq!(r.status, 200, "{} {stream}: {}", surface.name(), r.text());
                }
                calls.push((
                    format!("{} stream={stream} fault={fault:?}", surface.name()),
                    r,
                ));
            }
        }
    }
    // A wrong app key, and the app key in Gemini's query parameter.
    calls.push((
        "wrong app key".into(),
        call(
            &http,
            &hub.base,
            "whk_nope_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            Surface::OpenAiChat,
            false,
            "x",
            None,
        )
        .await,
    ));
    calls.push((
        "app key in ?key=".into(),
        read_all(
            http.post(hub.url(&format!(
                "/gemini/v1beta/models/gemini-2.5-flash:generateContent?key={}",
                app_keys[0]
            )))
            .json(&Surface::GeminiGenerate.body(false, "query key", 8)),
        )
        .await,
    ));

    // Rotate every provider key (once to a key the provider refuses), then the app key.
    for (i, (provider, key)) in provider_keys(1).into_iter().enumerate() {
        // Same length (Gemini keys have exactly 39 characters), refused by the provider.
        let bad = key.replace("LeakCanary", "invalidCan");
        scan.secret(format!("{provider} invalid key"), &bad);
        let r = j
            .send(
                "PATCH",
                &format!("/api/v1/connections/{}", conn_ids[i]),
                Some(json!({"api_key": bad})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let surface = [
            Surface::OpenAiChat,
            Surface::AnthropicMessages,
            Surface::GeminiGenerate,
        ][i];
        let refused = call(
            &http,
            &hub.base,
            &app_keys[0],
            surface,
            false,
            "bad key",
            None,
        )
        .await;
        assert!(
            refused.status == 401 || refused.status == 400 || refused.status == 403,
            "{}",
            refused.text()
        );
        calls.push((format!("{provider} with an invalid key"), refused));
        j.send(
            "POST",
            &format!("/api/v1/connections/{}/verify", conn_ids[i]),
            Some(json!({})),
        )
        .await;
        let r = j
            .send(
                "PATCH",
                &format!("/api/v1/connections/{}", conn_ids[i]),
                Some(json!({"api_key": key})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let rotated = j
        .send(
            "POST",
            &format!("/api/v1/apps/{app_id}/rotate-key"),
            Some(json!({})),
        )
        .await;
    app_keys.push(rotated.json()["key"].as_str().unwrap().to_string());
    let after = call(
        &http,
        &hub.base,
        &app_keys[1],
        Surface::AnthropicMessages,
        true,
        "rotated",
        None,
    )
    .await;
    assert_eq!(after.status, 200);
    calls.push(("after rotation".into(), after));

    // Every page and read the owner can open.
    let rows = j.get("/api/v1/usage/requests?limit=500").await.json();
    let ids: Vec<i64> = rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    for path in common::calls::OWNER_PAGES.iter().chain(&[
        "/api/v1/status",
        "/api/v1/connections",
        "/api/v1/apps",
        "/api/v1/credits",
        "/api/v1/credits/ledger",
        "/api/v1/usage",
        "/api/v1/usage.csv",
        "/api/v1/settings",
        "/api/v1/models",
        "/healthz",
    ]) {
        j.get(path).await;
    }
    j.get(&format!("/apps/{app_id}")).await;
    for id in &conn_ids {
        j.get(&format!("/api/v1/connections/{id}")).await;
    }
    for id in ids.iter().take(40) {
        j.get(&format!("/requests/{id}")).await;
        j.get(&format!("/api/v1/usage/requests/{id}")).await;
    }

    // Lock, unlock, change the passphrase, sign in with the new one.
    j.send("POST", "/api/v1/lock", Some(json!({}))).await;
    let unlocked = j
        .send(
            "POST",
            "/api/v1/session",
            Some(json!({"passphrase": PASSPHRASE})),
        )
        .await;
    assert_eq!(unlocked.status, 200);
    j.cookie = cookie_of(&unlocked);
    let changed = j
        .send(
            "POST",
            "/api/v1/passphrase",
            Some(json!({"current": PASSPHRASE, "new": NEW_PASSPHRASE})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text());
    let again = j
        .send(
            "POST",
            "/api/v1/session",
            Some(json!({"passphrase": NEW_PASSPHRASE})),
        )
        .await;
    assert_eq!(again.status, 200);
    j.cookie = cookie_of(&again);
    // A wrong guess last: failed unlocks slow the next ones down.
    let wrong = j
        .send(
            "POST",
            "/api/v1/session",
            Some(json!({"passphrase": "not it"})),
        )
        .await;
    assert!(
        wrong.status == 401 || wrong.status == 429,
        "{}",
        wrong.text()
    );
    j.get("/connectors").await;

    // The files as the running Hub has them, then a kill -9 in the middle of a stream.
    scan.data_files(&dir, "while running");
    let (base, key) = (hub.base.clone(), app_keys[1].clone());
    let streaming = tokio::spawn(async move {
        let http = client();
        call(
            &http,
            &base,
            &key,
            Surface::OpenAiChat,
            true,
            "killed",
            Some("slow"),
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let answers = std::mem::take(&mut j.answers);
    drop(j);
    let mut hub = hub;
    hub.kill();
    let log = hub.log();
    drop(hub);
    calls.push(("cut by the kill".into(), streaming.await.unwrap()));
    scan.data_files(&dir, "after kill -9");
    scan.scan("log at trace, through the kill -9", log.as_bytes());
    let trace_bytes = log.len();

    for (i, k) in app_keys.iter().enumerate() {
        scan.secret(format!("app key {i}"), k.rsplit('_').next().unwrap());
    }
    for (what, r) in &answers {
        // The app key is shown once where it is made; nowhere else.
        let allowed: &[&str] = if what.ends_with("/rotate-key") || what == "POST /api/v1/apps" {
            &["app key 0", "app key 1"]
        } else {
            &[]
        };
        scan.scan_except(&format!("{what} (head)"), r.head.as_bytes(), allowed);
        scan.scan_except(&format!("{what} (body)"), &r.body, allowed);
    }
    for (what, r) in &calls {
        scan.response(what, r);
    }
    // The scanner itself finds a secret where one is: the app key in the answer that made it.
    let mut probe = Scan {
        secrets: scan.secrets.clone(),
        ..Scan::default()
    };
    probe.scan(
        "the create answer",
        &answers
            .iter()
            .find(|(w, _)| w == "POST /api/v1/apps")
            .unwrap()
            .1
            .body,
    );
    assert_eq!(
        probe.found,
        vec!["app key 0 in the create answer".to_string()]
    );
    assert!(log.contains("TRACE"), "the log was at trace level");

    // A restart after the crash: the log of recovering and unlocking too.
    let hub = TestHub::start(launch().env("WORKSHOP_HUB_PASSPHRASE", NEW_PASSPHRASE));
    let health = read_all(http.get(hub.url("/healthz"))).await;
    assert!(
        health.text().contains("\"locked\":false"),
        "{}",
        health.text()
    );
    scan.response("healthz after restart", &health);
    scan.backup(&dir);
    let log = hub.log();
    drop(hub);
    scan.scan("log after restart", log.as_bytes());
    scan.data_files(&dir, "after restart");

    eprintln!(
        "leak scan: {} bytes (log at trace {} bytes) from {} sources ({} answers, {} calls), {} secrets in {} forms each; backup scanned",
        scan.bytes,
        trace_bytes,
        scan.sources,
        answers.len(),
        calls.len(),
        scan.secrets.len(),
        forms(PASSPHRASE).len(),
    );
    assert!(scan.bytes > 100_000, "the journey produced real output");
    assert!(
        scan.found.is_empty(),
        "secrets found:\n{}",
        scan.found.join("\n")
    );
}
