//! What the benches share: the real binary started as a child that is killed on drop, a
//! signed-in app key, and percentiles.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub const PASSPHRASE: &str = "benchmark passphrase only";

pub struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `workshop-hub` with `args` and returns it with the base URL it listens on.
pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> (Proc, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_workshop-hub"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.env("RUST_LOG", "warn");
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    (Proc(child), base)
}

/// Signs in to the Hub at `hub` and creates an app: the session cookie and the app key.
pub async fn app_key(client: &reqwest::Client, hub: &str) -> (String, String) {
    let session = client
        .post(format!("{hub}/api/v1/session"))
        .json(&json!({"passphrase": PASSPHRASE}))
        .send()
        .await
        .unwrap();
    let cookie = session.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let app: Value = client
        .post(format!("{hub}/api/v1/apps"))
        .header("cookie", &cookie)
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (cookie, app["key"].as_str().unwrap().to_string())
}

pub fn median(v: Vec<Duration>) -> Duration {
    percentile(v, 0.5)
}

pub fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
