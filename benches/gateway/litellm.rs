//! LiteLLM's proxy on the same upstream and load, for comparison (`--litellm`): installed
//! into a venv under `target/bench` on first use, run with one worker and no database.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::load::{self, Call, Point};
use super::upstreams::free_port;
use super::{CHAT, Opts};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The key callers present to LiteLLM (obviously not a real one).
const MASTER_KEY: &str = "sk-litellm-test-bench-master-key";

/// LiteLLM at the middle concurrency (16 in a full run), or `None` when it cannot be
/// installed or started here.
pub fn measure(work: &Path, upstream: &str, opts: &Opts) -> Option<Point> {
    let litellm = install(&opts.out)?;
    let port = free_port();
    let config = work.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      \
             model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      \
             api_key: sk-proj-testBenchUpstreamKey\n"
        ),
    )
    .ok()?;
    let log = std::fs::File::create(opts.out.join("litellm.log")).ok()?;
    let child = Command::new(&litellm)
        .args([
            "--config",
            config.to_str()?,
            "--port",
            &port.to_string(),
            "--num_workers",
            "1",
        ])
        // Offline: its own price map, not the one it would download at start-up.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        // It refuses to start without a key of its own for callers (as the Hub has app keys).
        .env("LITELLM_MASTER_KEY", MASTER_KEY)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .ok()?;
    let mut proxy = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = proxy.0.try_wait() {
            eprintln!(
                "LiteLLM exited ({status}); left out (see {})",
                opts.out.join("litellm.log").display()
            );
            return None;
        }
        if Instant::now() > deadline {
            eprintln!(
                "LiteLLM did not start within two minutes; left out (see {})",
                opts.out.join("litellm.log").display()
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let call = Call {
        url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Authorization".into(), format!("Bearer {MASTER_KEY}")),
        ],
        body: CHAT.into(),
    };
    let mid = if opts.concurrency.contains(&16) {
        16
    } else {
        *opts.concurrency.last()?
    };
    load::wrk(work, &call, 4, 2.0, None);
    let point = load::wrk(work, &call, mid, opts.secs, None);
    eprintln!("measured: LiteLLM");
    Some(point)
}

/// The `litellm` command from a venv of its own, installed with pip when missing.
fn install(out: &Path) -> Option<std::path::PathBuf> {
    let venv = out.join("litellm-venv");
    let bin = venv.join("bin/litellm");
    if bin.exists() {
        return Some(bin);
    }
    eprintln!("installing LiteLLM's proxy into {} (once)", venv.display());
    let made = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()
        .ok()?;
    let pip = venv.join("bin/pip");
    let installed = made.success()
        && Command::new(pip)
            .args(["install", "--quiet", "litellm[proxy]"])
            .status()
            .ok()?
            .success();
    if installed && bin.exists() {
        Some(bin)
    } else {
        eprintln!("LiteLLM could not be installed; left out");
        None
    }
}
