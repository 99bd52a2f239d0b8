//! Safeguards a user relies on without seeing them: the owner's passphrase still works while
//! another process keeps guessing; requests framed two ways at once are refused on every
//! surface; a trickled body is cut in bounded time; the standalone emulator stays a local
//! tool that shows received keys only to local callers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use common::upstream::{parse_response, raw_request};
use common::{Launch, PASSPHRASE, TestHub, client};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use workshop_hub::emulator::{Emulator, EmulatorOptions};
use workshop_hub::hub::UNLOCK_MAX_DELAY;
use workshop_hub::web::HostPolicy;

const OPENAI_KEY: &str = "sk-proj-testSafeguardsAAAAAAAAAAAAAAAA";

async fn sign_in_status(hub: &TestHub, passphrase: &str) -> u16 {
    client()
        .post(hub.url("/api/v1/session"))
        .json(&json!({"passphrase": passphrase}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_owner_signs_in_within_a_bounded_wait_while_another_process_keeps_guessing() {
    let hub = Arc::new(TestHub::start(Launch::default().unlocked()));
    let stop = Arc::new(AtomicBool::new(false));
    let guesses = Arc::new(AtomicUsize::new(0));
    // The guesser: one wrong passphrase after another, from the same address as the owner.
    let guesser = {
        let (hub, stop, guesses) = (hub.clone(), stop.clone(), guesses.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let status = sign_in_status(&hub, "a wrong guess, again").await;
                assert!(status == 401 || status == 429, "guess answered {status}");
                guesses.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Let its failures pile up until the pause between attempts is at its longest.
    let warm = Instant::now();
    while guesses.load(Ordering::Relaxed) < 6 {
        assert!(warm.elapsed() < Duration::from_secs(60), "guesser stalled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut waits = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        let status = sign_in_status(&hub, PASSPHRASE).await;
        let waited = started.elapsed();
        assert_eq!(
            status, 200,
            "the right passphrase is accepted, after {waited:?}"
        );
        waits.push(waited);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let during = guesses.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    guesser.await.unwrap();
    // Its slot (at most one guess ahead), its own, and two Argon2id runs on a busy machine.
    let bound = UNLOCK_MAX_DELAY * 2 + Duration::from_secs(4);
    for w in &waits {
        assert!(*w < bound, "owner waited {w:?}, bound {bound:?}");
    }
    println!(
        "unlock while guessing: the owner waited {:?} and {:?} (bound {:?}); the guesser made {} \
         guesses in {:?} ({:.2}/s)",
        waits[0],
        waits[1],
        bound,
        during,
        warm.elapsed(),
        during as f64 / warm.elapsed().as_secs_f64()
    );
    assert!(
        (during as f64 / warm.elapsed().as_secs_f64()) < 2.0,
        "the guesser is slowed down"
    );
}

/// The routes of every surface: Hub API and pages, both gateway surfaces, the mounted emulator.
const EVERY_SURFACE: [(&str, &str); 7] = [
    ("POST", "/api/v1/session"),
    ("POST", "/unlock"),
    ("GET", "/healthz"),
    ("POST", "/openai/v1/chat/completions"),
    ("POST", "/anthropic/v1/messages"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/emulator/openai/v1/chat/completions"),
];

#[tokio::test]
async fn a_request_with_both_content_length_and_transfer_encoding_is_refused_everywhere() {
    let hub = TestHub::start(Launch::default().unlocked());
    for (method, path) in EVERY_SURFACE {
        // `raw_request` sends Content-Length; the chunked body is what a smuggler would send.
        let res = raw_request(
            hub.port,
            method,
            path,
            &[
                ("transfer-encoding", "chunked"),
                ("content-type", "application/json"),
            ],
            b"0\r\n\r\n",
        )
        .await;
        assert_eq!(res.status, 400, "{method} {path}: {}", res.head);
        let text = String::from_utf8_lossy(&res.body);
        assert!(
            text.contains("Content-Length and Transfer-Encoding"),
            "{path}: {text}"
        );
        assert!(
            res.head.to_ascii_lowercase().contains("connection: close"),
            "{path}: the connection is closed after the refusal: {}",
            res.head
        );
    }
    let emulator = common::Emulator::start();
    let port: u16 = emulator.base.rsplit(':').next().unwrap().parse().unwrap();
    let res = raw_request(
        port,
        "POST",
        "/v1/chat/completions",
        &[("transfer-encoding", "chunked")],
        b"0\r\n\r\n",
    )
    .await;
    assert_eq!(res.status, 400, "the standalone emulator too: {}", res.head);
}

/// Sends the head of a request promising `len` bytes, then one byte every `every` until the
/// server answers or closes; returns (seconds until then, the response).
async fn trickle(port: u16, path: &str, content_type: &str, every: Duration) -> (Duration, u16) {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: {content_type}\r\n\
         content-length: 200\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            n = socket.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(every) => {
                if socket.write_all(b"a").await.is_err() {
                    // Keep reading what the server said before it closed.
                    let _ = tokio::time::timeout(Duration::from_secs(2), socket.read_to_end(&mut got)).await;
                    break;
                }
            }
        }
        assert!(started.elapsed() < Duration::from_secs(40), "never cut");
    }
    (started.elapsed(), parse_response(&got).status)
}

#[tokio::test]
async fn a_body_trickled_a_byte_at_a_time_is_cut_in_bounded_time_on_hub_routes() {
    let hub = TestHub::start(
        Launch::default()
            .unlocked()
            .arg("--body-timeout-secs")
            .arg("2"),
    );
    for (path, content_type) in [
        ("/api/v1/session", "application/json"),
        ("/unlock", "application/x-www-form-urlencoded"),
    ] {
        let (took, status) =
            trickle(hub.port, path, content_type, Duration::from_millis(400)).await;
        assert!(
            took < Duration::from_secs(5),
            "{path}: the connection stayed open {took:?}"
        );
        assert!(
            status == 0 || (400..500).contains(&status),
            "{path}: answered {status}"
        );
        println!("trickled body on {path}: cut after {took:?} (status {status})");
    }
    // The Hub is still answering.
    let health = client().get(hub.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn the_standalone_emulator_will_not_listen_beyond_loopback_without_the_flag() {
    let out = std::process::Command::new(common::bin())
        .args(["emulator", "--listen", "0.0.0.0:0"])
        .env_remove("WORKSHOP_HUB_EMULATOR_ALLOW_NON_LOOPBACK")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-non-loopback"), "{stderr}");
}

#[tokio::test]
async fn the_standalone_emulator_answers_only_its_own_name_and_shows_keys_only_locally() {
    let emulator = common::Emulator::start();
    let port: u16 = emulator.base.rsplit(':').next().unwrap().parse().unwrap();
    let models = client()
        .get(format!("{}/v1/models", emulator.base))
        .bearer_auth(OPENAI_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    // A DNS-rebinding page would send its own name as Host: nothing is answered.
    for path in ["/v1/models", "/__emulator/received"] {
        // By hand: `raw_request` always writes the right Host line.
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nhost: rebind.evil.example:{port}\r\nauthorization: Bearer {OPENAI_KEY}\r\nconnection: close\r\n\r\n"
        );
        socket.write_all(req.as_bytes()).await.unwrap();
        let mut all = Vec::new();
        socket.read_to_end(&mut all).await.unwrap();
        let res = parse_response(&all);
        assert_eq!(res.status, 421, "{path}: {}", res.head);
        assert!(!String::from_utf8_lossy(&res.body).contains(OPENAI_KEY));
    }
    // The local caller with the right Host sees what arrived, key included.
    let received = emulator.received().await;
    let text = received.to_string();
    assert!(
        text.contains(OPENAI_KEY),
        "a local caller sees the key: {text}"
    );
}

fn standalone_app_parts() -> (
    actix_web::web::Data<Emulator>,
    actix_web::web::Data<HostPolicy>,
) {
    (
        actix_web::web::Data::new(Emulator::new(EmulatorOptions::default())),
        actix_web::web::Data::new(HostPolicy::new("192.0.2.2:8421".parse().unwrap(), 8421)),
    )
}

#[actix_web::test]
async fn an_emulator_on_the_network_shows_no_credentials_to_network_callers() {
    let (emulator, hosts) = standalone_app_parts();
    let app =
        test::init_service(workshop_hub::web::emulator::standalone_app(emulator, hosts)).await;
    let remote: std::net::SocketAddr = "192.0.2.9:40000".parse().unwrap();
    let local: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let call = TestRequest::get()
        .uri("/v1/models?key=AIzaTestSafeguardsQuery")
        .insert_header(("host", "192.0.2.2:8421"))
        .insert_header(("authorization", format!("Bearer {OPENAI_KEY}")))
        .peer_addr(remote)
        .to_request();
    assert_eq!(
        test::call_service(&app, call).await.status(),
        StatusCode::OK
    );

    let forged = TestRequest::get()
        .uri("/__emulator/received")
        .insert_header(("host", "127.0.0.1:8421"))
        .peer_addr(remote)
        .to_request();
    assert_eq!(
        test::call_service(&app, forged).await.status(),
        StatusCode::MISDIRECTED_REQUEST,
        "a network caller cannot pass for a local one"
    );
    let from_network = TestRequest::get()
        .uri("/__emulator/received")
        .insert_header(("host", "192.0.2.2:8421"))
        .peer_addr(remote)
        .to_request();
    let body: Value = test::read_body_json(test::call_service(&app, from_network).await).await;
    let text = body.to_string();
    assert!(text.contains("[redacted]"), "{text}");
    assert!(
        !text.contains(OPENAI_KEY) && !text.contains("AIzaTestSafeguardsQuery"),
        "{text}"
    );

    let from_here = TestRequest::get()
        .uri("/__emulator/received")
        .insert_header(("host", "127.0.0.1:8421"))
        .peer_addr(local)
        .to_request();
    let body: Value = test::read_body_json(test::call_service(&app, from_here).await).await;
    assert!(
        body.to_string().contains(OPENAI_KEY),
        "the local caller sees it"
    );
}

/// A page unlock with `cookie`; returns (status, Location, elapsed).
async fn page_unlock(
    hub: &TestHub,
    passphrase: &str,
    cookie: Option<&str>,
) -> (u16, String, Duration) {
    let mut req = client()
        .post(hub.url("/unlock"))
        .form(&[("passphrase", passphrase)]);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let started = Instant::now();
    let res = req.send().await.unwrap();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (res.status().as_u16(), location, started.elapsed())
}

#[tokio::test]
async fn a_browser_that_unlocked_before_is_not_slowed_by_a_flood_of_guesses_from_its_address() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let hub = TestHub::start(Launch::default().data_dir(&data).unlocked());
    let res = client()
        .post(hub.url("/unlock"))
        .form(&[("passphrase", PASSPHRASE)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let device = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("whub_device="))
        .expect("a browser that unlocked gets a device cookie");
    assert!(
        device.contains("Path=/unlock") && device.contains("HttpOnly"),
        "{device}"
    );
    let device = device.split(';').next().unwrap().to_string();
    drop(hub);

    // After a restart, locked, while a dozen guessers flood the same address.
    let hub = Arc::new(TestHub::start(Launch::default().data_dir(&data)));
    let stop = Arc::new(AtomicBool::new(false));
    // Each guesser gives up on a guess after 2 s and sends the next: the address's queue
    // stays full.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let guessers: Vec<_> = (0..12)
        .map(|_| {
            let (hub, stop, impatient) = (hub.clone(), stop.clone(), impatient.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let sent = impatient
                        .post(hub.url("/api/v1/session"))
                        .json(&json!({"passphrase": "a wrong guess, again"}))
                        .send()
                        .await;
                    if let Ok(res) = sent {
                        let status = res.status().as_u16();
                        assert!(status == 401 || status == 429, "guess answered {status}");
                        if status == 429 {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (status, location, owner) = page_unlock(&hub, PASSPHRASE, Some(&device)).await;
    // Success goes on into the Hub; any refusal comes back to /unlock with its message.
    assert_eq!(status, 303);
    assert_ne!(location, "/unlock", "the owner's browser unlocks");
    // The same passphrase without the cookie, and with a forged one, get the address's lane:
    // refused, or not answered within 3 s.
    let started = Instant::now();
    let stranger = impatient
        .post(hub.url("/api/v1/session"))
        .json(&json!({"passphrase": PASSPHRASE}))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    let stranger_wait = started.elapsed();
    let started = Instant::now();
    let forged_location = impatient
        .post(hub.url("/unlock"))
        .header("cookie", "whub_device=0123456789abcdef")
        .form(&[("passphrase", PASSPHRASE)])
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .map_or("(no answer)".to_string(), |r| {
            r.headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        });
    let forged = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for g in guessers {
        g.await.unwrap();
    }
    println!(
        "flood of 12 guessers: the owner's browser unlocked in {owner:?}; the same passphrase \
         without the device cookie: {stranger} after {stranger_wait:?}; with a forged one: \
         {forged_location} after {forged:?}"
    );
    assert!(owner < Duration::from_secs(3), "the owner waited {owner:?}");
    assert!(
        stranger == 429 || stranger_wait >= Duration::from_secs(3),
        "without the cookie the flood's lane applies: {stranger} after {stranger_wait:?}"
    );
    assert!(
        forged_location == "/unlock" || forged >= Duration::from_secs(3),
        "a forged device cookie is just the address's lane"
    );
}

#[tokio::test]
async fn request_headers_trickled_a_byte_at_a_time_are_cut_in_bounded_time() {
    let hub = TestHub::start(Launch::default().unlocked());
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", hub.port))
        .await
        .unwrap();
    socket
        .write_all(format!("GET /healthz HTTP/1.1\r\nhost: 127.0.0.1:{}\r\n", hub.port).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let cut = loop {
        tokio::select! {
            n = socket.read(&mut buf) => break n.map_or(true, |n| n == 0 || buf[..n].starts_with(b"HTTP/1.1 4")),
            _ = tokio::time::sleep(Duration::from_millis(300)) => {
                if socket.write_all(b"x").await.is_err() {
                    break true;
                }
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never cut");
    };
    let took = started.elapsed();
    println!("trickled request head: cut after {took:?}");
    assert!(
        cut,
        "the head was never completed, so no success may come back"
    );
    assert!(
        took < Duration::from_secs(8),
        "the connection stayed open {took:?}"
    );
}
