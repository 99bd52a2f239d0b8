//! kill -9 at the worst moments, then a restart: the database passes `PRAGMA integrity_check`,
//! every answer an app fully received has its usage record, the balance is the grants and
//! top-ups less the recorded managed costs, the vault unlocks, and a key being rotated when the
//! process died is either the old one or the new one, whole.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::calls::{Books, Surface, call, managed_cost, read_all};
use common::{Emulator, Launch, PASSPHRASE, TestHub, client, create_app, sign_in};
use rusqlite::{Connection, OpenFlags};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Opens the Hub's database read-only, as it was left, and runs SQLite's own check.
fn integrity(dir: &Path) -> String {
    let db = Connection::open_with_flags(
        dir.join("hub.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    db.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap()
}

fn start(dir: &Path, launch: Launch<'static>) -> TestHub {
    TestHub::start(launch.data_dir(dir).unlocked())
}

async fn books(hub: &TestHub) -> Books {
    Books {
        http: client(),
        base: hub.base.clone(),
        cookie: sign_in(hub, PASSPHRASE).await,
    }
}

/// Kills the Hub with SIGKILL (what `Child::kill` sends) and checks the file it left.
fn kill_and_check(hub: TestHub, dir: &Path, round: &str) {
    drop(hub);
    assert_eq!(integrity(dir), "ok", "{round}: integrity after kill -9");
}

/// Restarts without a passphrase in the environment: the vault is locked until the owner's
/// passphrase unlocks it over the API.
async fn unlocks_after_restart(dir: &Path) {
    let hub = TestHub::start(Launch::default().arg("--offline").data_dir(dir));
    let status = read_all(client().get(hub.url("/api/v1/status")))
        .await
        .json();
    assert_eq!(status["locked"], true, "{status}");
    let b = books(&hub).await;
    assert_eq!(b.get("/api/v1/status").await["locked"], false);
}

/// One client of the mixed load: its own app, alternating surfaces and streaming, counting
/// the answers it fully received (status 200 and the body read to its end).
async fn client_loop(base: String, key: String, n: usize, received: Arc<AtomicUsize>) {
    let http = client();
    for i in 0.. {
        let surface = Surface::ALL[(i + n) % Surface::ALL.len()];
        let stream = (i + n) % 2 == 0;
        let got = call(
            &http,
            &base,
            &key,
            surface,
            stream,
            &format!("c{n}-{i}"),
            None,
        )
        .await;
        if got.status == 200 && got.whole {
            received.fetch_add(1, Ordering::SeqCst);
        } else {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hub_killed_under_mixed_load_loses_no_answered_call_and_no_credit() {
    const CLIENTS: usize = 6;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut apps: Vec<(String, String)> = Vec::new();
    let mut received: Vec<usize> = vec![0; CLIENTS];
    let mut top_ups = 0;
    for (round, kill_after_ms) in [250u64, 600, 1100].into_iter().enumerate() {
        let hub = start(&dir, Launch::default().arg("--offline"));
        let b = books(&hub).await;
        if apps.is_empty() {
            for n in 0..CLIENTS {
                let app = create_app(&hub, &b.cookie, &format!("load {n}")).await;
                apps.push((
                    app["id"].as_str().unwrap().into(),
                    app["key"].as_str().unwrap().into(),
                ));
            }
        }
        let (s, _) = b
            .send(
                "POST",
                "/api/v1/credits",
                json!({"amount_micro_usd": 250_000, "note": format!("round {round}")}),
            )
            .await;
        assert_eq!(s, 200, "top-up");
        top_ups += 250_000;
        let counters: Vec<Arc<AtomicUsize>> = (0..CLIENTS)
            .map(|_| Arc::new(AtomicUsize::new(0)))
            .collect();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|n| {
                tokio::spawn(client_loop(
                    hub.base.clone(),
                    apps[n].1.clone(),
                    n,
                    counters[n].clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        kill_and_check(hub, &dir, &format!("load round {round}"));
        for t in tasks {
            t.await.unwrap();
        }
        for (n, c) in counters.iter().enumerate() {
            received[n] += c.load(Ordering::SeqCst);
        }
    }

    let hub = start(&dir, Launch::default().arg("--offline"));
    let b = books(&hub).await;
    let rows = b.rows().await;
    let rounds = 3;
    for (n, (id, _)) in apps.iter().enumerate() {
        let ok = rows
            .iter()
            .filter(|r| r["app_id"] == id.as_str() && r["error_code"].is_null())
            .count();
        // At most one call per client and round was in flight when the process died.
        assert!(
            ok >= received[n] && ok <= received[n] + rounds,
            "client {n}: {} answers fully received, {ok} ok records",
            received[n]
        );
    }
    let (balance, held) = b.credits().await;
    assert_eq!(held, 0, "no hold survives a restart");
    assert_eq!(b.credited().await, 5_000_000 + top_ups);
    assert_eq!(balance, 5_000_000 + top_ups - managed_cost(&rows));
    let total: usize = received.iter().sum();
    assert!(total >= 20, "the load was real: {total} answers");
    eprintln!(
        "crash under load: {rounds} kill -9 survived, {total} answers fully received, {} records",
        rows.len()
    );
    drop(hub);
    unlocks_after_restart(&dir).await;
}

/// A test key whose last four characters are its number, so its hint names it.
fn rotation_key(i: usize) -> String {
    format!("sk-proj-testRotationKeyAAAAAAAAAAAAAAAAAAAAAAAAAA{i:04}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_key_rotation_killed_midway_leaves_the_old_or_the_new_key_whole() {
    let emulator = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let launch = || {
        Launch::default()
            .arg("--openai-base-url")
            .arg(&emulator.base)
    };
    let mut next = 0usize;
    let (mut conn_id, mut app_key) = (String::new(), String::new());
    let mut outcomes = Vec::new();
    for (round, kill_after_ms) in [30u64, 120, 260, 450].into_iter().enumerate() {
        let hub = start(&dir, launch());
        let b = books(&hub).await;
        if conn_id.is_empty() {
            let (_, conn) = b
                .send(
                    "POST",
                    "/api/v1/connections",
                    json!({"provider": "openai", "name": "rotated", "api_key": rotation_key(next)}),
                )
                .await;
            conn_id = conn["id"].as_str().unwrap().into();
            let app = create_app(&hub, &b.cookie, "rotation").await;
            app_key = app["key"].as_str().unwrap().into();
            b.send(
                "PATCH",
                &format!("/api/v1/apps/{}", app["id"].as_str().unwrap()),
                json!({"connections": {"openai": conn_id}}),
            )
            .await;
        }
        let acked = Arc::new(AtomicUsize::new(next));
        let (b2, id, a2) = (b.clone(), conn_id.clone(), acked.clone());
        let churn = tokio::spawn(async move {
            let mut i = a2.load(Ordering::SeqCst);
            loop {
                i += 1;
                let sent = b2
                    .try_send(
                        "PATCH",
                        &format!("/api/v1/connections/{id}"),
                        json!({"api_key": rotation_key(i)}),
                    )
                    .await;
                if sent.map(|(s, _)| s) != Some(200) {
                    return;
                }
                a2.store(i, Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        kill_and_check(hub, &dir, &format!("connection rotation round {round}"));
        churn.await.unwrap();
        let last_acked = acked.load(Ordering::SeqCst);

        let hub = start(&dir, launch());
        let b = books(&hub).await;
        let conn = b.get(&format!("/api/v1/connections/{conn_id}")).await;
        let hint = conn["key_hint"].as_str().unwrap().to_string();
        let stored: usize = hint[hint.len() - 4..].parse().unwrap();
        assert!(
            stored == last_acked || stored == last_acked + 1,
            "round {round}: key {stored} stored, {last_acked} acknowledged"
        );
        // The key the provider gets is the one the hint names: nothing half-written.
        let got = call(
            &b.http,
            &hub.base,
            &app_key,
            Surface::OpenAiChat,
            false,
            "after rotation",
            None,
        )
        .await;
        assert_eq!(got.status, 200, "{}", got.text());
        let sent = emulator.received().await;
        let auth = sent.as_array().unwrap().last().unwrap()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == "authorization")
            .map(|h| h[1].as_str().unwrap().to_string())
            .unwrap();
        assert_eq!(auth, format!("Bearer {}", rotation_key(stored)));
        outcomes.push(stored - last_acked);
        next = stored;
        drop(hub);
    }
    eprintln!("connection rotation: 4 kill -9 survived, in-flight rotation kept {outcomes:?}");
    unlocks_after_restart(&dir).await;
}

/// The stored hash of an app key, read from the database file.
fn stored_app_key_hash(dir: &Path, app_id: &str) -> Vec<u8> {
    let db =
        Connection::open_with_flags(dir.join("hub.db"), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    db.query_row("SELECT key_hash FROM apps WHERE id = ?1", [app_id], |r| {
        r.get(0)
    })
    .unwrap()
}

fn hash_of(key: &str) -> Vec<u8> {
    let secret = key.rsplit('_').next().unwrap();
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_app_key_rotation_killed_midway_leaves_one_working_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut app_id = String::new();
    let mut keys: Vec<String> = Vec::new();
    let mut last_known_won = 0;
    for (round, kill_after_ms) in [30u64, 120, 260, 450].into_iter().enumerate() {
        let hub = start(&dir, Launch::default().arg("--offline"));
        let b = books(&hub).await;
        if app_id.is_empty() {
            let app = create_app(&hub, &b.cookie, "rotated app").await;
            app_id = app["id"].as_str().unwrap().into();
            keys.push(app["key"].as_str().unwrap().into());
        }
        let issued = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b2, id, i2, s2) = (b.clone(), app_id.clone(), issued.clone(), stop.clone());
        let churn = tokio::spawn(async move {
            while !s2.load(Ordering::SeqCst) {
                let Some((200, body)) = b2
                    .try_send("POST", &format!("/api/v1/apps/{id}/rotate-key"), json!({}))
                    .await
                else {
                    return;
                };
                i2.lock()
                    .unwrap()
                    .push(body["key"].as_str().unwrap().to_string());
            }
        });
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        kill_and_check(hub, &dir, &format!("app rotation round {round}"));
        churn.await.unwrap();
        stop.store(true, Ordering::SeqCst);
        keys.extend(issued.lock().unwrap().drain(..));

        let stored = stored_app_key_hash(&dir, &app_id);
        assert_eq!(stored.len(), 32, "a whole SHA-256 is stored");
        let hub = start(&dir, Launch::default().arg("--offline"));
        let http = client();
        let mut working = Vec::new();
        // The first key and the last few issued: enough to see that exactly one works.
        let tried = (0..keys.len()).filter(|i| *i == 0 || i + 4 >= keys.len());
        for (i, key) in tried.map(|i| (i, &keys[i])) {
            let got = call(
                &http,
                &hub.base,
                key,
                Surface::OpenAiChat,
                false,
                "which key",
                None,
            )
            .await;
            assert!(
                got.status == 200 || got.status == 401,
                "{}: {}",
                got.status,
                got.text()
            );
            if got.status == 200 {
                working.push(i);
            }
        }
        let known = keys.iter().position(|k| hash_of(k) == stored);
        match known {
            // The last acknowledged key is the stored one, and the only one that works.
            Some(i) => {
                assert_eq!(i, keys.len() - 1, "round {round}: an older key is stored");
                assert_eq!(working, vec![i], "round {round}");
                last_known_won += 1;
            }
            // The rotation in flight committed before its answer was sent: no key issued
            // before it works any more.
            None => assert!(working.is_empty(), "round {round}: {working:?}"),
        }
        // A fresh rotation gives a working key again.
        let b = books(&hub).await;
        let (_, body) = b
            .send(
                "POST",
                &format!("/api/v1/apps/{app_id}/rotate-key"),
                json!({}),
            )
            .await;
        keys.push(body["key"].as_str().unwrap().into());
        drop(hub);
    }
    assert!(last_known_won >= 1, "the known-key side was exercised");
    eprintln!(
        "app key rotation: 4 kill -9 survived, {} keys issued, the last acknowledged key stored in {last_known_won} rounds",
        keys.len()
    );
}
