//! Backup and restore: `workshop-hub backup FILE` and Settings → Back up now make a checked,
//! consistent copy with keys still sealed; `workshop-hub restore FILE` refuses to overwrite
//! without `--force`, and the restored Hub unlocks with the same passphrase and serves the
//! same apps through the same connections. A backup killed half way leaves the live database
//! intact and no partial file under the backup's name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Emulator, Launch, PASSPHRASE, TestHub, client, sign_in};
use serde_json::{Value, json};

const BYOK_KEY: &str = "sk-proj-testBackupByokKeyAAAAAAAAAAAAAAAA";

fn run(args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(common::bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("WORKSHOP_HUB_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn backup_cli(file: &Path, data_dir: &Path) -> (bool, String) {
    run(&[
        "backup",
        file.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ])
}

fn restore_cli(file: &Path, data_dir: &Path, force: bool) -> (bool, String) {
    let mut args = vec![
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    if force {
        args.push("--force");
    }
    run(&args)
}

fn integrity(path: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

async fn api(hub: &TestHub, cookie: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let mut req = client()
        .request(method.parse().unwrap(), hub.url(path))
        .header("cookie", cookie);
    if method != "GET" {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn chat(hub: &TestHub, key: &str) -> u16 {
    client()
        .post(hub.url("/openai/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn hub_on(dir: &Path, emulator: &Emulator) -> TestHub {
    TestHub::start(
        Launch::default()
            .data_dir(dir)
            .unlocked()
            .arg("--openai-base-url")
            .arg(&emulator.base),
    )
}

#[tokio::test]
async fn a_restored_hub_unlocks_with_the_same_passphrase_and_serves_the_same_apps() {
    let emulator = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let hub = hub_on(&live, &emulator);
    let cookie = sign_in(&hub, PASSPHRASE).await;
    let (_, conn) = api(
        &hub,
        &cookie,
        "POST",
        "/api/v1/connections",
        json!({"provider": "openai", "name": "mine", "api_key": BYOK_KEY}),
    )
    .await;
    let (_, app) = api(
        &hub,
        &cookie,
        "POST",
        "/api/v1/apps",
        json!({"name": "kept"}),
    )
    .await;
    let app_key = app["key"].as_str().unwrap().to_string();
    let (status, _) = api(
        &hub,
        &cookie,
        "PATCH",
        &format!("/api/v1/apps/{}", app["id"].as_str().unwrap()),
        json!({"connections": {"openai": conn["id"]}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(chat(&hub, &app_key).await, 200);

    // Backed up while the Hub runs.
    let file = tmp.path().join("hub-backup.db");
    let (ok, out) = backup_cli(&file, &live);
    assert!(ok, "{out}");
    assert_eq!(integrity(&file), "ok");
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        !bytes
            .windows(BYOK_KEY.len())
            .any(|w| w == BYOK_KEY.as_bytes()),
        "the provider key stays sealed in the backup"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(hub);

    // Not over an existing Hub without --force; into a new place, yes.
    let (ok, out) = restore_cli(&file, &live, false);
    assert!(!ok && out.contains("--force"), "{out}");
    let restored = tmp.path().join("restored");
    let (ok, out) = restore_cli(&file, &restored, false);
    assert!(ok, "{out}");

    // The restored Hub opens with the same passphrase and works as before.
    let hub = hub_on(&restored, &emulator);
    let cookie = sign_in(&hub, PASSPHRASE).await;
    let (_, conns) = api(&hub, &cookie, "GET", "/api/v1/connections", Value::Null).await;
    assert!(
        conns.to_string().contains(conn["id"].as_str().unwrap()),
        "{conns}"
    );
    let before = emulator.received_count("/v1/chat/completions").await;
    assert_eq!(
        chat(&hub, &app_key).await,
        200,
        "the old app key still works"
    );
    assert_eq!(
        emulator.received_count("/v1/chat/completions").await,
        before + 1,
        "the call went through the restored connection to the emulator"
    );
    let received = emulator.received().await.to_string();
    assert!(
        received.contains(BYOK_KEY),
        "with the restored, unsealed key"
    );
    drop(hub);

    // With --force the old database is moved aside, not lost.
    let (ok, out) = restore_cli(&file, &live, true);
    assert!(ok, "{out}");
    assert!(out.contains("moved to"), "{out}");
    let aside: Vec<PathBuf> = std::fs::read_dir(&live)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("before-restore"))
        .collect();
    assert!(!aside.is_empty());

    // A damaged file is never restored.
    let junk = tmp.path().join("junk.db");
    std::fs::write(&junk, vec![7u8; 10_000]).unwrap();
    let (ok, out) = restore_cli(&junk, &tmp.path().join("other"), false);
    assert!(!ok && out.contains("damaged"), "{out}");
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn settings_back_up_now_writes_a_checked_copy_into_the_data_dir() {
    let hub = TestHub::start(Launch::default().unlocked());
    let cookie = sign_in(&hub, PASSPHRASE).await;
    let settings = client()
        .get(hub.url("/settings"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(settings.contains("action=\"/settings/backup\""));
    let forged = client()
        .post(hub.url("/settings/backup"))
        .header("cookie", &cookie)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let cross_site = client()
        .post(hub.url("/settings/backup"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .form(&[("csrf", csrf_of(&settings))])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert!(
        !hub.data_dir.join("backups").exists(),
        "nothing written yet"
    );

    let res = client()
        .post(hub.url("/settings/backup"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf_of(&settings))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let flash_page = client()
        .get(hub.url("/settings"))
        .header(
            "cookie",
            format!(
                "{cookie}; {}",
                res.headers()
                    .get_all("set-cookie")
                    .iter()
                    .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        flash_page.contains("Backup written to"),
        "the page says where"
    );
    let written: Vec<PathBuf> = std::fs::read_dir(hub.data_dir.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(integrity(&written[0]), "ok");
    assert!(flash_page.contains(&written[0].display().to_string()));

    // The same over the API.
    let (status, body) = api(&hub, &cookie, "POST", "/api/v1/backup", json!({})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(integrity(Path::new(body["path"].as_str().unwrap())), "ok");
}

#[test]
fn a_backup_killed_half_way_leaves_the_live_database_intact_and_no_false_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    // A real Hub database, made large enough that copying it takes a while.
    drop(workshop_hub::store::Store::open(&live).unwrap());
    let db = live.join(workshop_hub::store::DB_FILE);
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE test_padding (b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 96)
             INSERT INTO test_padding SELECT randomblob(1024 * 1024) FROM n;",
        )
        .unwrap();
    }
    let file = tmp.path().join("killed.db");
    let partial = workshop_hub::store::backup::partial_name(&file);
    let mut cut_mid_copy = 0;
    let mut finished = 0;
    for delay_ms in [30u64, 80, 150, 250, 400, 5000] {
        let _ = std::fs::remove_file(&file);
        let mut child = Command::new(common::bin())
            .args([
                "backup",
                file.to_str().unwrap(),
                "--data-dir",
                live.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(delay_ms) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_eq!(
            integrity(&db),
            "ok",
            "the live database after a kill at {delay_ms} ms"
        );
        if file.exists() {
            assert_eq!(
                integrity(&file),
                "ok",
                "a file under the backup's name is a whole backup"
            );
            finished += 1;
        } else if partial.exists() {
            cut_mid_copy += 1;
        }
    }
    println!("backup killed: {cut_mid_copy} times mid-copy, {finished} finished first");
    assert!(cut_mid_copy >= 1, "no kill landed during the copy");
    assert!(finished >= 1, "the last, unhurried backup completes");
    // The next backup replaces a partial one left by a kill.
    let (ok, out) = backup_cli(&file, &live);
    assert!(ok, "{out}");
    assert!(!partial.exists());
}
