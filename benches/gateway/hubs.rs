//! The Hub under test: started as the real release binary on a fresh data directory, given a
//! BYOK connection per provider and a managed one, an app on each, and enough credits; then
//! restarted so start-up can be timed locked and unlocked (the difference is Argon2).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::PROVIDER_KEY;
use super::load::status_kib;

const PASSPHRASE: &str = "benchmark passphrase only";
const PLATFORM_KEY: &str = "sk-proj-testBenchPlatformKeyAAAAAAAAAAAAAAAAAAAA";

/// Start-up, from spawning the process to its `listening on` line.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Startup {
    /// Started locked: everything but the key derivation.
    pub locked_ms: f64,
    /// Started with the passphrase in the environment: unlocking included.
    pub unlocked_ms: f64,
    /// The difference: the Argon2 key derivation.
    pub argon2_ms: f64,
}

pub struct HubProc {
    child: Child,
    pub base: String,
    pub pid: u32,
    pub byok_key: String,
    pub managed_key: String,
    pub idle_rss_kib: u64,
    pub startup: Startup,
}

impl Drop for HubProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns the Hub and waits for its address; the child and how long that took.
fn spawn(
    bin: &str,
    data: &Path,
    openai: &str,
    anthropic: &str,
    unlocked: bool,
) -> (Child, String, Duration) {
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args([
            "--openai-base-url",
            openai,
            "--anthropic-base-url",
            anthropic,
        ])
        .env("WORKSHOP_HUB_MANAGED_OPENAI_KEY", PLATFORM_KEY)
        .env("RUST_LOG", "warn")
        .env_remove("WORKSHOP_HUB_PASSPHRASE")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if unlocked {
        cmd.env("WORKSHOP_HUB_PASSPHRASE", PASSPHRASE);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let took = started.elapsed();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the Hub did not start: {line:?}"))
        .to_string();
    (child, base, took)
}

/// The Hub binary to measure: this build's, or `BENCH_HUB_BIN` (another build, e.g. one
/// with debug info for a profile).
pub fn hub_bin() -> String {
    std::env::var("BENCH_HUB_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_workshop-hub").to_string())
}

impl HubProc {
    /// A Hub whose OpenAI and Anthropic connections reach `openai` and `anthropic`.
    pub async fn start_with_apps(
        work: &Path,
        name: &str,
        openai: &str,
        anthropic: &str,
    ) -> HubProc {
        HubProc::start_bin(&hub_bin(), work, name, openai, anthropic).await
    }

    /// The same, running the binary at `bin`.
    pub async fn start_bin(
        bin: &str,
        work: &Path,
        name: &str,
        openai: &str,
        anthropic: &str,
    ) -> HubProc {
        let data = work.join(format!("hub-{name}"));
        let (mut first, base, _) = spawn(bin, &data, openai, anthropic, true);
        let (byok_key, managed_key) = set_up(&base).await;
        let _ = first.kill();
        let _ = first.wait();

        let (mut locked, _, locked_took) = spawn(bin, &data, openai, anthropic, false);
        let _ = locked.kill();
        let _ = locked.wait();
        let (child, base, unlocked_took) = spawn(bin, &data, openai, anthropic, true);
        let pid = child.id();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss_kib = status_kib(pid, "VmRSS");
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        HubProc {
            child,
            base,
            pid,
            byok_key,
            managed_key,
            idle_rss_kib,
            startup: Startup {
                locked_ms: ms(locked_took),
                unlocked_ms: ms(unlocked_took),
                argon2_ms: ms(unlocked_took.saturating_sub(locked_took)),
            },
        }
    }
}

/// Signs in, adds BYOK connections, creates a BYOK app and a managed app, and tops up the
/// credits: the two app keys.
async fn set_up(hub: &str) -> (String, String) {
    let client = reqwest::Client::new();
    let cookie = session(&client, hub).await;
    let post = |path: &str, body: Value| {
        client
            .post(format!("{hub}{path}"))
            .header("cookie", &cookie)
            .json(&body)
            .send()
    };
    let mut bound = serde_json::Map::new();
    for provider in ["openai", "anthropic"] {
        let conn: Value = post(
            "/api/v1/connections",
            json!({"provider": provider, "name": format!("bench {provider}"), "api_key": key_for(provider)}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert!(
            conn["id"].is_string(),
            "adding the {provider} connection failed: {conn}"
        );
        bound.insert(provider.into(), conn["id"].clone());
    }
    let byok: Value = post("/api/v1/apps", json!({"name": "bench byok"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patched = client
        .patch(format!(
            "{hub}/api/v1/apps/{}",
            byok["id"].as_str().unwrap()
        ))
        .header("cookie", &cookie)
        .json(&json!({"connections": bound}))
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success(), "binding the BYOK app failed");
    let managed: Value = post("/api/v1/apps", json!({"name": "bench managed"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let topped = post(
        "/api/v1/credits",
        json!({"amount_micro_usd": 1_000_000_000, "note": "bench"}),
    )
    .await
    .unwrap();
    assert!(topped.status().is_success(), "the top-up failed");
    (
        byok["key"].as_str().unwrap().to_string(),
        managed["key"].as_str().unwrap().to_string(),
    )
}

/// A fake key of the shape each provider's keys have.
fn key_for(provider: &str) -> &'static str {
    match provider {
        "anthropic" => "sk-ant-api03-testBenchUpstreamKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        _ => PROVIDER_KEY,
    }
}

async fn session(client: &reqwest::Client, hub: &str) -> String {
    let res = client
        .post(format!("{hub}/api/v1/session"))
        .json(&json!({"passphrase": PASSPHRASE}))
        .send()
        .await
        .unwrap();
    res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}
