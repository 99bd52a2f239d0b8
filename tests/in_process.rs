//! In-process handler tests: the whole actix application driven through
//! `actix_web::test`, without a socket or a child process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use clap::Parser;
use secrecy::SecretString;
use serde_json::{Value, json};
use workshop_hub::cli::Cli;
use workshop_hub::config::Config;
use workshop_hub::emulator::{Emulator, EmulatorOptions};
use workshop_hub::gateway::Gateway;
use workshop_hub::hub::Hub;
use workshop_hub::web::{self, HostPolicy};

const HOST: &str = "127.0.0.1:8420";
const PASSPHRASE: &str = "correct horse battery staple";

fn hub(dir: &std::path::Path, unlocked: bool) -> Hub {
    let cli = Cli::try_parse_from(["workshop-hub", "--data-dir", dir.to_str().unwrap()]).unwrap();
    let mut config = Config::from_args(&cli.serve).unwrap();
    if unlocked {
        config.passphrase = Some(SecretString::from(PASSPHRASE.to_string()));
    }
    Hub::open(config).unwrap()
}

macro_rules! app {
    ($hub:expr) => {{
        let hub = $hub;
        test::init_service(web::app(
            hub.clone(),
            Gateway::new(hub),
            HostPolicy::new(HOST.parse().unwrap(), 8420),
            Arc::new(Emulator::new(EmulatorOptions::default())),
        ))
        .await
    }};
}

fn cookie_of<B>(res: &actix_web::dev::ServiceResponse<B>) -> String {
    let set = res.headers().get("set-cookie").unwrap().to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

#[actix_web::test]
async fn first_run_setup_through_the_form_signs_in() {
    let dir = tempfile::tempdir().unwrap();
    let app = app!(hub(dir.path(), false));
    let page = TestRequest::get()
        .uri("/setup")
        .insert_header(("host", HOST))
        .to_request();
    let res = test::call_service(&app, page).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(html.contains("cannot be recovered"));

    let mismatch = TestRequest::post()
        .uri("/setup")
        .insert_header(("host", HOST))
        .set_form([
            ("passphrase", PASSPHRASE),
            ("confirm", "something else entirely"),
        ])
        .to_request();
    let res = test::call_service(&app, mismatch).await;
    // Post/redirect/get: the error comes back on the form page, beside the field.
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers().get("location").unwrap(), "/setup");
    let again = TestRequest::get()
        .uri("/setup")
        .insert_header(("host", HOST))
        .insert_header(("cookie", cookie_of(&res)))
        .to_request();
    let html = String::from_utf8(
        test::read_body(test::call_service(&app, again).await)
            .await
            .to_vec(),
    )
    .unwrap();
    assert!(html.contains("id=\"setup-confirm-error\""), "{html}");
    assert!(html.contains("differ"), "{html}");

    let submit = TestRequest::post()
        .uri("/setup")
        .insert_header(("host", HOST))
        .set_form([("passphrase", PASSPHRASE), ("confirm", PASSPHRASE)])
        .to_request();
    let res = test::call_service(&app, submit).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers().get("location").unwrap(), "/welcome");
    let cookie = cookie_of(&res);
    let connectors = TestRequest::get()
        .uri("/connectors")
        .insert_header(("host", HOST))
        .insert_header(("cookie", cookie))
        .to_request();
    let res = test::call_service(&app, connectors).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[actix_web::test]
async fn the_host_check_applies_to_every_surface() {
    let dir = tempfile::tempdir().unwrap();
    let app = app!(hub(dir.path(), true));
    for path in [
        "/healthz",
        "/api/v1/status",
        "/setup",
        "/openai/v1/models",
        "/emulator/openai/v1/models",
    ] {
        let req = TestRequest::get()
            .uri(path)
            .insert_header(("host", "attacker.example:8420"))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST, "{path}");
    }
}

#[actix_web::test]
async fn the_api_manages_connections_and_apps() {
    let dir = tempfile::tempdir().unwrap();
    let app = app!(hub(dir.path(), true));
    let sign_in = TestRequest::post()
        .uri("/api/v1/session")
        .insert_header(("host", HOST))
        .set_json(json!({"passphrase": PASSPHRASE}))
        .to_request();
    let res = test::call_service(&app, sign_in).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = cookie_of(&res);

    let create = TestRequest::post()
        .uri("/api/v1/apps")
        .insert_header(("host", HOST))
        .insert_header(("cookie", cookie.clone()))
        .set_json(json!({"name": "Recipe bot", "rpm_limit": 30, "connections": {"gemini": null}}))
        .to_request();
    let created: Value = test::call_and_read_body_json(&app, create).await;
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("whk_{}_", created["id"].as_str().unwrap())));
    assert_eq!(created["connections"]["openai"], "managed-openai");
    assert_eq!(created["connections"]["gemini"], Value::Null);
    assert_eq!(created["rpm_limit"], 30);

    let list = TestRequest::get()
        .uri("/api/v1/apps")
        .insert_header(("host", HOST))
        .insert_header(("cookie", cookie.clone()))
        .to_request();
    let listed: Value = test::call_and_read_body_json(&app, list).await;
    assert!(
        !listed.to_string().contains(key),
        "the key is shown only once"
    );

    let bad = TestRequest::patch()
        .uri(&format!("/api/v1/apps/{}", created["id"].as_str().unwrap()))
        .insert_header(("host", HOST))
        .insert_header(("cookie", cookie))
        .set_json(json!({"connections": {"openai": "managed-anthropic"}}))
        .to_request();
    let res = test::call_service(&app, bad).await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "a binding must match its provider"
    );
}
