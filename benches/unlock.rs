//! How long unlocking takes with the default Argon2id parameters (64 MiB, t=3, p=4), next to
//! opening one sealed secret once unlocked, measured in the same run.
//!
//! Run with `cargo bench --bench unlock`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use secrecy::SecretString;
use workshop_hub::vault::{self, KdfParams};

const RUNS: usize = 11;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let passphrase = SecretString::from("benchmark passphrase only".to_string());
    let (header, unlocked) = vault::create(&passphrase, KdfParams::DEFAULT).unwrap();
    let sealed = unlocked
        .seal(
            "conn_bench",
            "api_key",
            b"sk-proj-testBenchAAAAAAAAAAAAAAAAAAAA",
        )
        .unwrap();
    let unlock: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            vault::unlock(&header, &passphrase).unwrap();
            t.elapsed()
        })
        .collect();
    let open: Vec<Duration> = (0..RUNS * 100)
        .map(|_| {
            let t = Instant::now();
            unlocked.open("conn_bench", "api_key", &sealed).unwrap();
            t.elapsed()
        })
        .collect();
    let (u, o) = (median(unlock), median(open));
    println!(
        "vault unlock, default parameters {:?}, median of {RUNS}",
        KdfParams::DEFAULT
    );
    println!(
        "  unlock (Argon2id + unwrap):  {:>9.1} ms",
        u.as_secs_f64() * 1e3
    );
    println!(
        "  open one sealed key:         {:>9.4} ms",
        o.as_secs_f64() * 1e3
    );
    println!(
        "  ratio unlock / open:         {:>9.0}x",
        u.as_secs_f64() / o.as_secs_f64()
    );
}
