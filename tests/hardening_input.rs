//! Hostile input, as a table: malformed and truncated JSON, invalid UTF-8, deep nesting, huge
//! headers and query strings, smuggling-shaped framing, SQL metacharacters in every field and
//! filter, path traversal on static files, odd proxy paths, unknown routes and methods. Each
//! is answered with a 4xx and a message that says what is wrong (never a 5xx, never a dropped
//! connection), the Hub keeps answering, and what it stores is unchanged. Names full of markup
//! and CRLF are then stored as given and escaped on every page.
//!
//! The table is printed to stderr (`-- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::calls::Books;
use common::upstream::{RawResponse, raw_request};
use common::{Launch, PASSPHRASE, TestHub, client, create_app, sign_in};
use serde_json::{Value, json};

/// What an input must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A 4xx with a message.
    Refused,
    /// A 2xx (a legal value that matches nothing, or is stored as given), or a 4xx.
    Handled,
}

struct Case {
    what: String,
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    want: Want,
}

fn case(what: impl Into<String>, method: &'static str, target: impl Into<String>) -> Case {
    Case {
        what: what.into(),
        method,
        target: target.into(),
        headers: Vec::new(),
        body: Vec::new(),
        want: Want::Refused,
    }
}

impl Case {
    fn header(mut self, name: &str, value: impl Into<String>) -> Case {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    fn json_body(self, body: impl Into<Vec<u8>>) -> Case {
        let mut c = self.header("content-type", "application/json");
        c.body = body.into();
        c
    }
    fn handled(mut self) -> Case {
        self.want = Want::Handled;
        self
    }
}

/// Bodies no JSON reader should accept.
fn bad_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty body", Vec::new()),
        ("not JSON", b"hello there".to_vec()),
        (
            "truncated JSON",
            br#"{"model": "gpt-4o-mini", "messages": [{"role": "us"#.to_vec(),
        ),
        ("unclosed string", br#"{"model": "gpt-4o"#.to_vec()),
        (
            "invalid UTF-8",
            b"{\"model\": \"\xff\xfe\xfd\", \"name\": \"\xc3\x28\"}".to_vec(),
        ),
        ("100k nested arrays", vec![b'['; 100_000]),
        (
            "100k nested objects",
            "{\"a\":".repeat(100_000).into_bytes(),
        ),
        ("a JSON array, not an object", b"[1, 2, 3]".to_vec()),
        ("a JSON number", b"42".to_vec()),
        ("NUL bytes", b"{\"model\": \"gpt\0-4o\"\0}".to_vec()),
        (
            "trailing garbage",
            br#"{"model": "gpt-4o-mini"} {"#.to_vec(),
        ),
    ]
}

/// SQL metacharacters, for every field and filter.
const SQL: [&str; 6] = [
    "' OR '1'='1",
    "x'; DROP TABLE apps; --",
    "\" OR \"\"=\"",
    "1; SELECT * FROM vault",
    "%' --",
    "\\'; --",
];

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn proxy_cases(key: &str) -> Vec<Case> {
    let surfaces = [
        (
            "openai",
            "/openai/v1/chat/completions",
            "authorization",
            format!("Bearer {key}"),
        ),
        (
            "anthropic",
            "/anthropic/v1/messages",
            "x-api-key",
            key.to_string(),
        ),
        (
            "gemini",
            "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
            "x-goog-api-key",
            key.to_string(),
        ),
        (
            "compatible",
            "/v1/chat/completions",
            "authorization",
            format!("Bearer {key}"),
        ),
    ];
    let mut out = Vec::new();
    for (name, path, auth, value) in &surfaces {
        for (what, body) in bad_bodies() {
            out.push(
                case(format!("{name}: {what}"), "POST", *path)
                    .header(auth, value.clone())
                    .header("anthropic-version", "2023-06-01")
                    .json_body(body),
            );
        }
        for sql in SQL {
            out.push(
                case(format!("{name}: model {sql}"), "POST", *path)
                    .header(auth, value.clone())
                    .header("anthropic-version", "2023-06-01")
                    .json_body(
                        serde_json::to_vec(&json!({"model": sql, "max_tokens": 5,
                            "messages": [{"role": "user", "content": sql}]}))
                        .unwrap(),
                    ),
            );
        }
        // A multi-byte character where a dated model id has its date once crashed the
        // handler (the app got no answer at all).
        for model in ["a€€€€", "ab€€€", "gpt-4o-€€-07-18"] {
            out.push(
                case(format!("{name}: model {model}"), "POST", *path)
                    .header(auth, value.clone())
                    .header("anthropic-version", "2023-06-01")
                    .json_body(
                        serde_json::to_vec(&json!({"model": model, "max_tokens": 5,
                            "messages": [{"role": "user", "content": "hi"}]}))
                        .unwrap(),
                    ),
            );
        }
        out.push(
            case(format!("{name}: key with SQL"), "POST", *path)
                .header(auth, format!("Bearer whk_x'OR'1'='1_{}", "a".repeat(32)))
                .json_body(&b"{}"[..]),
        );
    }
    for target in [
        "/openai/v1/../v1/chat/completions",
        "/openai/v1/%2e%2e/v1/chat/completions",
        "/openai/v1/chat%2Fcompletions",
        "/openai/v1//chat/completions",
        "/openai/v1/chat\\completions",
        "/openai/v1/chat/completions%00",
        "/openai/v1/chat/%zzcompletions",
        "/openai/v2/chat/completions",
        "/gemini/v1beta/models/..%2f..%2fetc:generateContent",
        "/anthropic/v1/./messages",
    ] {
        out.push(
            case(format!("proxy path {target}"), "POST", target)
                .header("authorization", format!("Bearer {key}"))
                .json_body(&br#"{"model":"gpt-4o-mini","messages":[]}"#[..]),
        );
    }
    out
}

fn api_cases(cookie: &str, app_id: &str) -> Vec<Case> {
    let mut out = Vec::new();
    let writes = [
        ("POST", "/api/v1/apps".to_string()),
        ("PATCH", format!("/api/v1/apps/{app_id}")),
        ("POST", "/api/v1/connections".to_string()),
        ("POST", "/api/v1/credits".to_string()),
        ("PATCH", "/api/v1/settings".to_string()),
        ("POST", "/api/v1/session".to_string()),
        ("POST", "/api/v1/setup".to_string()),
        ("POST", "/api/v1/passphrase".to_string()),
    ];
    for (method, path) in &writes {
        for (what, body) in bad_bodies() {
            out.push(
                case(format!("{method} {path}: {what}"), method, path.clone())
                    .header("cookie", cookie)
                    .json_body(body),
            );
        }
        out.push(
            case(
                format!("{method} {path}: form, not JSON"),
                method,
                path.clone(),
            )
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .handled_body(b"name=x".to_vec()),
        );
    }
    // Typed fields given the wrong types or hostile values.
    let typed = [
        json!({"amount_micro_usd": "1000", "note": "x"}),
        json!({"amount_micro_usd": -5, "note": "x"}),
        json!({"amount_micro_usd": 1e300, "note": "x"}),
        json!({"amount_micro_usd": i64::MAX, "note": "x"}),
    ];
    for body in typed {
        out.push(
            case(
                format!("POST /api/v1/credits {body}"),
                "POST",
                "/api/v1/credits",
            )
            .header("cookie", cookie)
            .json_body(serde_json::to_vec(&body).unwrap()),
        );
    }
    for sql in SQL {
        out.push(
            case(
                format!("connection provider {sql}"),
                "POST",
                "/api/v1/connections",
            )
            .header("cookie", cookie)
            .json_body(
                serde_json::to_vec(
                    &json!({"provider": sql, "name": "x", "api_key": "sk-proj-testAAAA"}),
                )
                .unwrap(),
            ),
        );
        out.push(
            case(
                format!("app id {sql}"),
                "GET",
                format!("/api/v1/apps/{}", enc(sql)),
            )
            .header("cookie", cookie),
        );
        out.push(
            case(
                format!("delete app id {sql}"),
                "DELETE",
                format!("/api/v1/apps/{}", enc(sql)),
            )
            .header("cookie", cookie)
            .header("content-type", "application/json"),
        );
        out.push(
            case(
                format!("usage request id {sql}"),
                "GET",
                format!("/api/v1/usage/requests/{}", enc(sql)),
            )
            .header("cookie", cookie),
        );
        for filter in [
            "app", "provider", "model", "status", "surface", "from", "to", "cursor", "limit",
        ] {
            out.push(
                case(
                    format!("usage filter {filter}={sql}"),
                    "GET",
                    format!("/api/v1/usage/requests?{filter}={}", enc(sql)),
                )
                .header("cookie", cookie)
                .handled(),
            );
            out.push(
                case(
                    format!("/requests filter {filter}={sql}"),
                    "GET",
                    format!("/requests?{filter}={}", enc(sql)),
                )
                .header("cookie", cookie)
                .handled(),
            );
        }
        for group in ["group_by", "from", "to"] {
            out.push(
                case(
                    format!("usage {group}={sql}"),
                    "GET",
                    format!("/api/v1/usage?{group}={}", enc(sql)),
                )
                .header("cookie", cookie)
                .handled(),
            );
            out.push(
                case(
                    format!("usage.csv {group}={sql}"),
                    "GET",
                    format!("/api/v1/usage.csv?{group}={}", enc(sql)),
                )
                .header("cookie", cookie)
                .handled(),
            );
        }
    }
    out
}

fn static_and_route_cases(cookie: &str) -> Vec<Case> {
    let mut out = Vec::new();
    for target in [
        "/static/../Cargo.toml",
        "/static/../../etc/passwd",
        "/static/..%2fCargo.toml",
        "/static/..%2F..%2Fetc%2Fpasswd",
        "/static/%2e%2e/Cargo.toml",
        "/static/%2e%2e%2fCargo.toml",
        "/static/%252e%252e%252fCargo.toml",
        "/static/..\\Cargo.toml",
        "/static/..%5cCargo.toml",
        "/static/%c0%ae%c0%ae/Cargo.toml",
        "/static/....//Cargo.toml",
        "/static/app.css%00.png",
        "/static//etc/passwd",
        "/static/%00",
        "/static/",
        "/static/nope.css",
    ] {
        out.push(case(format!("static {target}"), "GET", target));
    }
    for (method, target) in [
        ("GET", "/nope"),
        ("GET", "/api/v1/nope"),
        ("GET", "/api/v2/apps"),
        ("DELETE", "/"),
        ("PUT", "/api/v1/apps"),
        ("PATCH", "/healthz"),
        ("TRACE", "/"),
        ("OPTIONS", "/api/v1/apps"),
        ("PROPFIND", "/"),
        ("GET", "/openai"),
        ("GET", "/openai/v1"),
        ("GET", "/emulator/nope/v1/models"),
        ("POST", "/usage/credits"),
        ("GET", "/apps/..%2f..%2fsettings"),
        ("GET", "/requests/not-a-number"),
        ("GET", "/requests/99999999999999999999999"),
        ("GET", "/apps/nope"),
    ] {
        out.push(case(format!("{method} {target}"), method, target).header("cookie", cookie));
    }
    out.push(
        case("a 64 KiB header", "GET", "/api/v1/apps")
            .header("cookie", cookie)
            .header("x-huge", "a".repeat(64 * 1024))
            .handled(),
    );
    out.push(
        case("a 1 MiB header", "GET", "/api/v1/apps")
            .header("cookie", cookie)
            .header("x-huge", "a".repeat(1024 * 1024)),
    );
    let mut many = case("300 headers", "GET", "/api/v1/apps").header("cookie", cookie);
    for i in 0..300 {
        many = many.header(&format!("x-h{i}"), "v");
    }
    out.push(many);
    out.push(
        case(
            "a 100 KB query string",
            "GET",
            format!("/api/v1/usage/requests?model={}", "a".repeat(100_000)),
        )
        .header("cookie", cookie),
    );
    out.push(case(
        "a 100 KB path",
        "GET",
        format!("/static/{}", "a".repeat(100_000)),
    ));
    out.push(
        case(
            "a 20 KB proxy path",
            "POST",
            format!("/openai/v1/{}", "a/".repeat(10_000)),
        )
        .json_body(&b"{}"[..]),
    );
    out.push(
        case(
            "Content-Length and Transfer-Encoding together",
            "POST",
            "/api/v1/apps",
        )
        .header("cookie", cookie)
        .header("transfer-encoding", "chunked")
        .json_body(&b"0\r\n\r\n"[..]),
    );
    out.push(
        case("a cookie 8 KB long", "GET", "/api/v1/apps")
            .header("cookie", format!("whub_session={}", "A".repeat(8 * 1024))),
    );
    out.push(
        case("session cookie with SQL", "GET", "/api/v1/apps")
            .header("cookie", format!("whub_session={}", enc(SQL[0]))),
    );
    out
}

impl Case {
    fn handled_body(self, body: Vec<u8>) -> Case {
        let mut c = self;
        c.body = body;
        c
    }
}

/// Whether a refusal says what is wrong: a JSON error with a message, or a rendered page.
fn has_message(r: &RawResponse) -> bool {
    let v = r.json();
    let json_message = [
        &v["error"]["message"],
        &v[0]["error"]["message"],
        &v["message"],
    ]
    .iter()
    .any(|m| m.as_str().is_some_and(|s| s.len() > 5));
    let page = r
        .head
        .to_ascii_lowercase()
        .contains("content-type: text/html")
        && String::from_utf8_lossy(&r.body).contains("<main");
    let plain = r
        .head
        .to_ascii_lowercase()
        .contains("content-type: text/plain")
        && r.body.len() > 5;
    json_message || page || plain || parser_refusal(r)
}

/// The HTTP parser's own refusals (too many headers, a request line over its limit) come
/// before any route and carry their message in the status line alone.
fn parser_refusal(r: &RawResponse) -> bool {
    let reason = r
        .head
        .lines()
        .next()
        .unwrap_or("")
        .splitn(3, ' ')
        .nth(2)
        .unwrap_or("");
    r.body.is_empty() && matches!(r.status, 400 | 414 | 431) && reason.len() > 5
}

/// What the Hub stores that hostile input must not change.
async fn snapshot(b: &Books) -> Value {
    let rows = b.rows().await;
    json!({
        "apps": b.get("/api/v1/apps").await,
        "connections": b.get("/api/v1/connections").await,
        "credits": b.get("/api/v1/credits").await,
        "settings": b.get("/api/v1/settings").await,
        "ok_rows": rows.iter().filter(|r| r["error_code"].is_null()).count(),
        "charged": rows.iter().map(|r| r["cost_micro_usd"].as_i64().unwrap()).sum::<i64>(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_input_gets_a_clear_4xx_and_changes_nothing() {
    let hub = TestHub::start(Launch::default().arg("--offline").unlocked());
    let cookie = sign_in(&hub, PASSPHRASE).await;
    let app = create_app(&hub, &cookie, "target").await;
    let (key, app_id) = (
        app["key"].as_str().unwrap().to_string(),
        app["id"].as_str().unwrap().to_string(),
    );
    let b = Books {
        http: client(),
        base: hub.base.clone(),
        cookie: cookie.clone(),
    };
    // One real call, so there are records for the filters to (not) find.
    let ok = common::calls::call(
        &b.http,
        &hub.base,
        &key,
        common::calls::Surface::OpenAiChat,
        false,
        "baseline",
        None,
    )
    .await;
    assert_eq!(ok.status, 200);
    let before = snapshot(&b).await;

    let mut cases = proxy_cases(&key);
    cases.extend(api_cases(&cookie, &app_id));
    cases.extend(static_and_route_cases(&cookie));
    let mut wrong = Vec::new();
    let mut table = Vec::new();
    for c in &cases {
        let headers: Vec<(&str, &str)> = c
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let r = raw_request(hub.port, c.method, &c.target, &headers, &c.body).await;
        let refused = (400..500).contains(&r.status);
        let fine = match c.want {
            Want::Refused => refused && has_message(&r),
            Want::Handled => (200..300).contains(&r.status) || (refused && has_message(&r)),
        };
        let leaked = String::from_utf8_lossy(&r.body).contains("[package]")
            || String::from_utf8_lossy(&r.body).contains("root:x:0");
        if !fine || leaked {
            wrong.push(format!(
                "{}: {} {:?}",
                c.what,
                r.status,
                String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
            ));
        }
        table.push((c.what.clone(), r.status, fine && !leaked));
        // The Hub is still there after every input.
        if r.status == 0 || r.status >= 500 {
            let health = client().get(hub.url("/healthz")).send().await;
            assert!(health.is_ok(), "the Hub died after {}", c.what);
        }
    }
    eprintln!("\n{:<70} {:>6} ok", "hostile input", "status");
    for (what, status, fine) in &table {
        let shown: String = what.chars().take(70).collect();
        eprintln!(
            "{:<70} {status:>6} {fine}",
            shown.escape_debug().to_string()
        );
    }
    eprintln!("{} hostile inputs tried\n", table.len());
    assert!(
        wrong.is_empty(),
        "{} inputs mishandled:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    let after = snapshot(&b).await;
    assert_eq!(before, after, "hostile input changed what is stored");
    // A filter is a value, never SQL: it finds exactly the records of the model so named
    // (the refusals above recorded it), never the real call's.
    for sql in SQL {
        let page = b
            .get(&format!("/api/v1/usage/requests?model={}", enc(sql)))
            .await;
        let rows = page["data"].as_array().unwrap();
        assert!(rows.iter().all(|r| r["model"] == sql), "{sql}: {page}");
    }
}

/// Names as hostile as they come: markup, quotes, CRLF, SQL.
const NAMES: [&str; 4] = [
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(2)>",
    "a\r\nSet-Cookie: whub_session=evil",
    "Robert'); DROP TABLE apps;--",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_names_are_stored_as_given_and_escaped_on_every_page() {
    let hub = TestHub::start(Launch::default().arg("--offline").unlocked());
    let cookie = sign_in(&hub, PASSPHRASE).await;
    let b = Books {
        http: client(),
        base: hub.base.clone(),
        cookie: cookie.clone(),
    };
    let mut app_ids = Vec::new();
    let mut stored = 0;
    for (i, name) in NAMES.iter().enumerate() {
        let (s, app) = b.send("POST", "/api/v1/apps", json!({"name": name})).await;
        assert!(s == 201 || s == 200 || s == 400, "app {name:?}: {s} {app}");
        if s < 300 {
            assert_eq!(app["name"], *name, "stored as given");
            app_ids.push(app["id"].as_str().unwrap().to_string());
            // A call, so the name shows in the usage pages too.
            let got = common::calls::call(
                &b.http,
                &hub.base,
                app["key"].as_str().unwrap(),
                common::calls::Surface::AnthropicMessages,
                false,
                "names",
                None,
            )
            .await;
            assert_eq!(got.status, 200);
            stored += 1;
        }
        let (s, conn) = b
            .send(
                "POST",
                "/api/v1/connections",
                json!({"provider": "openai", "name": name,
                       "api_key": format!("sk-proj-testHostileName{i}AAAAAAAAAAAAAAAAAAAAAAAA")}),
            )
            .await;
        assert!(s < 300 || s == 400, "connection {name:?}: {s} {conn}");
        if s < 300 {
            assert_eq!(conn["name"], *name);
        }
    }
    assert!(stored >= 3, "the markup names are legal and stored");
    let apps = b.get("/api/v1/apps").await;
    assert_eq!(
        apps["data"].as_array().map_or(0, Vec::len),
        stored,
        "the apps table is whole: {apps}"
    );
    let rows = b.rows().await;
    let mut pages: Vec<String> = common::calls::OWNER_PAGES
        .iter()
        .map(|p| p.to_string())
        .collect();
    pages.extend(app_ids.iter().map(|id| format!("/apps/{id}")));
    pages.extend(
        rows.iter()
            .map(|r| format!("/requests/{}", r["id"].as_i64().unwrap())),
    );
    let mut escaped_seen = 0;
    for page in &pages {
        let res = client()
            .get(hub.url(page))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let cookies: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect();
        assert!(
            !cookies.iter().any(|c| c.contains("evil")),
            "{page}: a name became a header"
        );
        let html = res.text().await.unwrap();
        assert!(status < 500, "{page}: {status}");
        for raw in ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"] {
            assert!(!html.contains(raw), "{page} shows {raw} unescaped");
        }
        // The name's text is there, and (checked above) never as a tag: escaped.
        if html.contains("alert(1)") {
            escaped_seen += 1;
        }
    }
    assert!(
        escaped_seen >= 3,
        "the escaped name shows on the pages that list apps ({escaped_seen})"
    );
    eprintln!(
        "hostile names: {} names on {} pages, escaped where shown on {escaped_seen}",
        NAMES.len(),
        pages.len()
    );
}
