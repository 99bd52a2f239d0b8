//! A passphrase change killed at any moment leaves exactly one working passphrase.
//!
//! The test re-runs its own binary as a child that changes the passphrase, kills it with
//! SIGKILL after a varying delay, and then checks the database from the parent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use clap::Parser;
use secrecy::SecretString;
use workshop_hub::cli::Cli;
use workshop_hub::config::Config;
use workshop_hub::hub::Hub;
use workshop_hub::store::Store;
use workshop_hub::vault;

const OLD: &str = "the old passphrase";
const NEW: &str = "the new passphrase";
const CHILD_ENV: &str = "WORKSHOP_HUB_TEST_CRASH_CHILD_DIR";

fn hub_for(dir: &std::path::Path, passphrase: &str) -> Hub {
    let cli = Cli::try_parse_from(["workshop-hub", "--data-dir", dir.to_str().unwrap()]).unwrap();
    let mut config = Config::from_args(&cli.serve).unwrap();
    config.passphrase = Some(SecretString::from(passphrase.to_string()));
    Hub::open(config).unwrap()
}

/// The child's part: change the passphrase (it is killed somewhere along the way).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let hub = hub_for(std::path::Path::new(&dir), OLD);
    hub.change_passphrase(
        &SecretString::from(OLD.to_string()),
        &SecretString::from(NEW.to_string()),
        None,
    )
    .unwrap();
    // Stay alive so that late kills land after the change committed.
    std::thread::sleep(Duration::from_secs(10));
}

fn opens_with(dir: &std::path::Path, passphrase: &str) -> bool {
    let store = Store::open(dir).unwrap();
    let header = store.vault_header().unwrap().unwrap();
    vault::unlock(&header, &SecretString::from(passphrase.to_string())).is_ok()
}

#[test]
fn a_killed_passphrase_change_leaves_exactly_one_working_passphrase() {
    let exe = std::env::current_exe().unwrap();
    let mut outcomes = (0, 0);
    for delay_ms in [0u64, 40, 90, 150, 220, 300, 420, 600, 900, 2000, 4000] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        // Create the vault and seal a secret under the old passphrase.
        drop(hub_for(&dir, OLD));
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let old = opens_with(&dir, OLD);
        let new = opens_with(&dir, NEW);
        assert!(
            old ^ new,
            "after a kill at {delay_ms} ms: old={old} new={new}"
        );
        if old {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
    }
    // Early kills keep the old passphrase and late ones the new: both sides were exercised.
    assert!(outcomes.0 >= 1 && outcomes.1 >= 1, "{outcomes:?}");
}
