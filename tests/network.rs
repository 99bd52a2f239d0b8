//! Beyond loopback: a network client cannot pass for a local one with a forged `Host`, a fresh
//! Hub cannot be claimed without the setup token from its console, HTTPS serves with the
//! given certificate and every cookie is `Secure`, and demo connections still reach the
//! built-in emulator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use clap::Parser;
use common::{Launch, PASSPHRASE, TestHub};
use serde_json::{Value, json};
use workshop_hub::cli::Cli;
use workshop_hub::config::Config;
use workshop_hub::emulator::{Emulator, EmulatorOptions};
use workshop_hub::gateway::Gateway;
use workshop_hub::hub::Hub;
use workshop_hub::web::{self, HostPolicy};

const PORT: u16 = 8443;
const PUBLIC: &str = "hub.example.lan:8443";
const REMOTE: &str = "192.0.2.9:50000";
const LOCAL: &str = "127.0.0.1:50000";

/// A fresh Hub configured to listen on every interface over plain HTTP, named `hub.example.lan`.
fn network_hub(dir: &Path) -> Hub {
    let cli = Cli::try_parse_from([
        "workshop-hub",
        "--data-dir",
        dir.to_str().unwrap(),
        "--listen",
        "0.0.0.0:8443",
        "--allow-non-loopback",
        "--insecure-http",
        "--public-host",
        "hub.example.lan",
    ])
    .unwrap();
    Hub::open(Config::from_args(&cli.serve).unwrap()).unwrap()
}

macro_rules! network_app {
    ($hub:expr) => {{
        let hub = $hub;
        test::init_service(web::app(
            hub.clone(),
            Gateway::new(hub),
            HostPolicy::with_names(
                "0.0.0.0:8443".parse().unwrap(),
                &[PORT],
                Some("hub.example.lan"),
                false,
            ),
            Arc::new(Emulator::new(EmulatorOptions::default())),
        ))
        .await
    }};
}

fn setup_request(host: &str, peer: &str, token: Option<&str>) -> actix_http::Request {
    let mut body = json!({"passphrase": PASSPHRASE});
    if let Some(t) = token {
        body["setup_token"] = json!(t);
    }
    TestRequest::post()
        .uri("/api/v1/setup")
        .insert_header(("host", host))
        .peer_addr(peer.parse().unwrap())
        .set_json(body)
        .to_request()
}

#[actix_web::test]
async fn a_network_client_cannot_pass_for_a_local_one_with_a_forged_host() {
    let dir = tempfile::tempdir().unwrap();
    let app = network_app!(network_hub(dir.path()));
    for host in ["127.0.0.1:8443", "localhost:8443", "[::1]:8443"] {
        let forged = TestRequest::get()
            .uri("/api/v1/status")
            .insert_header(("host", host))
            .peer_addr(REMOTE.parse().unwrap())
            .to_request();
        let res = test::call_service(&app, forged).await;
        assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
    }
    for (host, peer) in [(PUBLIC, REMOTE), ("127.0.0.1:8443", LOCAL), (PUBLIC, LOCAL)] {
        let fine = TestRequest::get()
            .uri("/api/v1/status")
            .insert_header(("host", host))
            .peer_addr(peer.parse().unwrap())
            .to_request();
        assert_eq!(
            test::call_service(&app, fine).await.status(),
            StatusCode::OK,
            "{host} from {peer}"
        );
    }
    let rebinding = TestRequest::get()
        .uri("/api/v1/status")
        .insert_header(("host", "evil.example:8443"))
        .peer_addr(LOCAL.parse().unwrap())
        .to_request();
    assert_eq!(
        test::call_service(&app, rebinding).await.status(),
        StatusCode::MISDIRECTED_REQUEST
    );
}

#[actix_web::test]
async fn setup_beyond_loopback_needs_the_one_time_token_from_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let hub = network_hub(dir.path());
    assert!(hub.setup_token_required());
    let token = {
        use secrecy::ExposeSecret;
        hub.setup_token().unwrap().expose_secret().to_string()
    };
    assert_eq!(token.len(), 32, "128 random bits in hex");
    let app = network_app!(hub.clone());

    // Without it, or with a wrong one, from the network or even from this machine: refused.
    for (peer, given) in [
        (REMOTE, None),
        (REMOTE, Some("0123456789abcdef0123456789abcdef")),
        (LOCAL, None),
    ] {
        let res = test::call_service(&app, setup_request(PUBLIC, peer, given)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{peer} {given:?}");
        let body: Value = test::read_body_json(res).await;
        assert_eq!(body["error"]["code"], "setup_token_required");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("console")
        );
    }
    // The page asks for it.
    let page = TestRequest::get()
        .uri("/setup")
        .insert_header(("host", PUBLIC))
        .peer_addr(REMOTE.parse().unwrap())
        .to_request();
    let html = test::read_body(test::call_service(&app, page).await).await;
    assert!(String::from_utf8_lossy(&html).contains("name=\"setup_token\""));

    let res = test::call_service(&app, setup_request(PUBLIC, REMOTE, Some(&token))).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(!hub.setup_token_required(), "used once, then gone");
    let again = test::call_service(&app, setup_request(PUBLIC, REMOTE, Some(&token))).await;
    assert_eq!(again.status(), StatusCode::CONFLICT, "the Hub is claimed");
}

#[actix_web::test]
async fn on_loopback_setup_needs_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let cli =
        Cli::try_parse_from(["workshop-hub", "--data-dir", dir.path().to_str().unwrap()]).unwrap();
    let hub = Hub::open(Config::from_args(&cli.serve).unwrap()).unwrap();
    assert!(!hub.setup_token_required());
    let app = test::init_service(web::app(
        hub.clone(),
        Gateway::new(hub),
        HostPolicy::new("127.0.0.1:8420".parse().unwrap(), 8420),
        Arc::new(Emulator::new(EmulatorOptions::default())),
    ))
    .await;
    let res = test::call_service(&app, setup_request("127.0.0.1:8420", LOCAL, None)).await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

/// A test CA and a certificate it signed for `localhost` and 127.0.0.1, made with the
/// `openssl` command line. Returns (ca.pem, cert.pem, key.pem).
fn test_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command line is needed to make a test certificate");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
    ca.extend(["-subj", "/CN=Workshop Hub test CA"]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

fn trusting(ca: &Path) -> reqwest::Client {
    workshop_hub::tls::install_crypto_provider();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn setup_token_from(log: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix("setup token: "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no setup token on the console: {log}"))
        .to_string()
}

#[tokio::test]
async fn beyond_loopback_the_hub_serves_https_with_secure_cookies_and_a_console_token() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificate(tmp.path());
    let hub = TestHub::start(
        Launch::default()
            .arg("--listen")
            .arg("0.0.0.0:0")
            .arg("--allow-non-loopback")
            .arg("--tls-cert")
            .arg(cert.to_str().unwrap())
            .arg("--tls-key")
            .arg(key.to_str().unwrap())
            .arg("--public-host")
            .arg("localhost"),
    );
    assert!(hub.base.starts_with("https://"), "{}", hub.base);
    let https = trusting(&ca);
    let base = format!("https://localhost:{}", hub.port);

    // Plain HTTP to the TLS port gets no answer from the Hub.
    let plain = common::client()
        .get(format!("http://127.0.0.1:{}/healthz", hub.port))
        .send()
        .await;
    assert!(
        plain.map_or(true, |r| r.status() != 200),
        "plain HTTP must not be served"
    );

    let log = hub.log();
    let token = setup_token_from(&log);
    assert!(
        log.lines()
            .filter(|l| l.contains(&token))
            .all(|l| l.starts_with("setup token: ")),
        "the token is on the console line only, never in the structured log"
    );
    let refused = https
        .post(format!("{base}/api/v1/setup"))
        .json(&json!({"passphrase": PASSPHRASE}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let res = https
        .post(format!("{base}/api/v1/setup"))
        .json(&json!({"passphrase": PASSPHRASE, "setup_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(!cookies.is_empty());
    for c in &cookies {
        assert!(c.contains("; Secure"), "not Secure: {c}");
        assert!(c.contains("HttpOnly"), "{c}");
    }
    let cookie = cookies[0].split(';').next().unwrap().to_string();

    // The demo connection reaches the built-in emulator although the listener speaks TLS.
    let app: Value = https
        .post(format!("{base}/api/v1/apps"))
        .header("cookie", &cookie)
        .json(&json!({"name": "over tls"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = app["key"].as_str().unwrap();
    let answer = https
        .post(format!("{base}/openai/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert!(body["choices"][0]["message"]["content"].is_string());
    // Snippets show the public https address.
    let page = https
        .get(format!("{base}/welcome"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("https://localhost:{}", hub.port)),
        "{page}"
    );
}

#[test]
fn beyond_loopback_without_tls_or_the_acknowledgement_does_not_start() {
    let tmp = tempfile::tempdir().unwrap();
    let args: Vec<String> = ["--listen", "0.0.0.0:0", "--allow-non-loopback"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (ok, stderr) = common::run_to_exit(&args, &[], &tmp.path().join("d"));
    assert!(!ok);
    assert!(
        stderr.contains("--tls-cert") && stderr.contains("--insecure-http"),
        "{stderr}"
    );
    let mut bad_tls = args.clone();
    bad_tls.extend(
        [
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    bad_tls.extend(["--public-host".to_string(), "hub.test".to_string()]);
    let (ok, stderr) = common::run_to_exit(&bad_tls, &[], &tmp.path().join("d"));
    assert!(!ok);
    assert!(
        stderr.contains("--tls-cert /nonexistent/cert.pem"),
        "{stderr}"
    );
}
