//! Black-box test support: starts the real `workshop-hub` binary on a free port with a
//! temporary data dir, and stops it on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod calls;
pub mod door;
pub mod upstream;

pub const PASSPHRASE: &str = "correct horse battery staple";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_workshop-hub")
}

/// A running Hub process.
pub struct TestHub {
    child: Child,
    pub base: String,
    pub port: u16,
    pub data_dir: PathBuf,
    stderr: Arc<Mutex<String>>,
    _tmp: Option<tempfile::TempDir>,
}

#[derive(Default)]
pub struct Launch<'a> {
    pub args: Vec<String>,
    pub envs: Vec<(&'a str, String)>,
    pub data_dir: Option<PathBuf>,
}

impl<'a> Launch<'a> {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn env(mut self, k: &'a str, v: impl Into<String>) -> Self {
        self.envs.push((k, v.into()));
        self
    }
    pub fn data_dir(mut self, d: &Path) -> Self {
        self.data_dir = Some(d.to_path_buf());
        self
    }
    /// Headless unlock with the standard test passphrase.
    pub fn unlocked(self) -> Self {
        self.env("WORKSHOP_HUB_PASSPHRASE", PASSPHRASE)
    }
}

/// Builds the command with a clean environment for the Hub's own variables.
pub fn command(args: &[String], envs: &[(&str, String)], data_dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("WORKSHOP_HUB_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("serve");
    if !args.iter().any(|a| a == "--listen") {
        cmd.arg("--listen").arg("127.0.0.1:0");
    }
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", "info");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

impl TestHub {
    pub fn start(launch: Launch<'_>) -> TestHub {
        let (tmp, dir) = match launch.data_dir.clone() {
            Some(d) => (None, d),
            None => {
                let t = tempfile::tempdir().unwrap();
                let d = t.path().join("data");
                (Some(t), d)
            }
        };
        let mut child = command(&launch.args, &launch.envs, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start workshop-hub");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (scheme, port) = read_listen_line(&mut child, &stderr);
        TestHub {
            child,
            base: format!("{scheme}://127.0.0.1:{port}"),
            port,
            data_dir: dir,
            stderr,
            _tmp: tmp,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn origin(&self) -> String {
        self.base.clone()
    }

    /// Everything the Hub wrote to its log so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process and keeps the data dir (for restart tests).
    pub fn stop_keep_data(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        self.kill();
        (self.data_dir.clone(), self._tmp.take())
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_port(child: &mut Child, stderr: &Arc<Mutex<String>>) -> u16 {
    read_listen_line(child, stderr).1
}

/// The scheme and port of the `listening on SCHEME://ADDR` line the binary prints first.
fn read_listen_line(child: &mut Child, stderr: &Arc<Mutex<String>>) -> (&'static str, u16) {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining so the child never blocks on a full pipe.
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let line = line.trim();
            let (scheme, addr) = [
                ("https", "listening on https://"),
                ("http", "listening on http://"),
            ]
            .into_iter()
            .find_map(|(scheme, prefix)| Some((scheme, line.strip_prefix(prefix)?)))
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log: {}",
                    stderr.lock().unwrap()
                )
            });
            return (scheme, addr.rsplit(':').next().unwrap().parse().unwrap());
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "workshop-hub exited with {status}: {}",
                stderr.lock().unwrap()
            );
        }
        assert!(Instant::now() < deadline, "workshop-hub did not start");
    }
}

/// Runs the binary to completion (for start-up failures) and returns (success, stderr).
pub fn run_to_exit(args: &[String], envs: &[(&str, String)], data_dir: &Path) -> (bool, String) {
    let out = command(args, envs, data_dir)
        .stdout(Stdio::null())
        .output()
        .expect("run workshop-hub");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn client() -> reqwest::Client {
    workshop_hub::tls::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The session cookie value from a response, if it set one.
pub fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("whub_session=") && !v.starts_with("whub_session=;"))
        .map(|v| {
            v["whub_session=".len()..]
                .split(';')
                .next()
                .unwrap()
                .to_string()
        })
        .filter(|v| !v.is_empty())
}

/// Creates an app through the management API; returns its JSON, key included (shown once).
pub async fn create_app(hub: &TestHub, cookie: &str, name: &str) -> serde_json::Value {
    client()
        .post(hub.url("/api/v1/apps"))
        .header("cookie", cookie)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Signs in over the API and returns the cookie header value.
pub async fn sign_in(hub: &TestHub, passphrase: &str) -> String {
    let res = client()
        .post(hub.url("/api/v1/session"))
        .json(&serde_json::json!({"passphrase": passphrase}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "sign in failed");
    format!("whub_session={}", session_cookie(&res).expect("cookie"))
}

/// Sets up a new Hub over the API and returns the cookie header value.
pub async fn set_up(hub: &TestHub) -> String {
    let res = client()
        .post(hub.url("/api/v1/setup"))
        .json(&serde_json::json!({"passphrase": PASSPHRASE}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "setup failed");
    format!("whub_session={}", session_cookie(&res).expect("cookie"))
}

/// A standalone `workshop-hub emulator` on a free port, stopped on drop.
pub struct Emulator {
    child: Child,
    pub base: String,
}

impl Emulator {
    pub fn start() -> Emulator {
        Emulator::start_at("127.0.0.1:0")
    }

    /// An emulator listening on `listen` (a port a test reserved, e.g. one a Hub already
    /// points at).
    pub fn start_at(listen: &str) -> Emulator {
        let mut child = Command::new(bin())
            .args(["emulator", "--listen", listen])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the emulator");
        let port = read_port(&mut child, &Arc::new(Mutex::new(String::new())));
        Emulator {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// What the emulator received, as recorded by `/__emulator/received`.
    pub async fn received(&self) -> serde_json::Value {
        client()
            .get(format!("{}/__emulator/received", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn received_count(&self, path: &str) -> usize {
        self.received()
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"] == path)
            .count()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when a response is a rendered page (what browsers must get, never raw text).
pub fn is_page(res: &reqwest::Response) -> bool {
    res.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}
