//! Native calls through the Hub for the hardening suites: each provider surface's text call,
//! streamed or not, with an optional emulator fault, read to the end (or to where the
//! connection broke), plus the management reads the suites check the books with.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::door::auth;

/// Every page the owner opens from the sidebar and the welcome, for the escaping and leak scans.
pub const OWNER_PAGES: [&str; 9] = [
    "/",
    "/connectors",
    "/apps",
    "/models",
    "/playground",
    "/usage",
    "/requests",
    "/settings",
    "/welcome",
];

/// One native text endpoint of one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    OpenAiChat,
    OpenAiResponses,
    AnthropicMessages,
    GeminiGenerate,
}

impl Surface {
    pub const ALL: [Surface; 4] = [
        Surface::OpenAiChat,
        Surface::OpenAiResponses,
        Surface::AnthropicMessages,
        Surface::GeminiGenerate,
    ];

    pub fn provider(self) -> &'static str {
        match self {
            Surface::OpenAiChat | Surface::OpenAiResponses => "openai",
            Surface::AnthropicMessages => "anthropic",
            Surface::GeminiGenerate => "gemini",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Surface::OpenAiChat => "openai chat",
            Surface::OpenAiResponses => "openai responses",
            Surface::AnthropicMessages => "anthropic messages",
            Surface::GeminiGenerate => "gemini generate",
        }
    }

    /// The path on the Hub, surface prefix included.
    pub fn path(self, stream: bool) -> &'static str {
        match (self, stream) {
            (Surface::OpenAiChat, _) => "/openai/v1/chat/completions",
            (Surface::OpenAiResponses, _) => "/openai/v1/responses",
            (Surface::AnthropicMessages, _) => "/anthropic/v1/messages",
            (Surface::GeminiGenerate, false) => {
                "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
            }
            (Surface::GeminiGenerate, true) => {
                "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
            }
        }
    }

    /// A short prompt carrying `marker`, asking for at most `max` output tokens.
    pub fn body(self, stream: bool, marker: &str, max: u64) -> Value {
        let prompt = format!("Tell me about {marker}, briefly.");
        match self {
            Surface::OpenAiChat => {
                let mut b = json!({"model": "gpt-4o-mini", "max_tokens": max, "stream": stream,
                    "messages": [{"role": "user", "content": prompt}]});
                if stream {
                    b["stream_options"] = json!({"include_usage": true});
                }
                b
            }
            Surface::OpenAiResponses => {
                json!({"model": "gpt-4o-mini", "max_output_tokens": max, "stream": stream, "input": prompt})
            }
            Surface::AnthropicMessages => json!({"model": "claude-haiku-4-5", "max_tokens": max,
                "stream": stream, "messages": [{"role": "user", "content": prompt}]}),
            Surface::GeminiGenerate => {
                json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}],
                "generationConfig": {"maxOutputTokens": max}})
            }
        }
    }

    /// The usage record's `endpoint` for this call.
    pub fn endpoint(self, stream: bool) -> &'static str {
        match (self, stream) {
            (Surface::OpenAiChat, _) => "chat_completions",
            (Surface::OpenAiResponses, _) => "responses",
            (Surface::AnthropicMessages, _) => "messages",
            (Surface::GeminiGenerate, false) => "generate_content",
            (Surface::GeminiGenerate, true) => "stream_generate_content",
        }
    }
}

/// What an app received from one call.
#[derive(Debug, Clone)]
pub struct Received {
    pub status: u16,
    pub body: Vec<u8>,
    /// The body was read to its end without the connection breaking.
    pub whole: bool,
    /// Headers as received, for the leak scans.
    pub head: String,
    pub elapsed: Duration,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends one call with `key` and reads the answer as far as it goes.
pub async fn call(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    surface: Surface,
    stream: bool,
    marker: &str,
    fault: Option<&str>,
) -> Received {
    let mut req = http
        .post(format!("{base}{}", surface.path(stream)))
        .body(serde_json::to_vec(&surface.body(stream, marker, 12)).unwrap());
    for (name, value) in auth(surface.provider(), key) {
        req = req.header(name, value);
    }
    if let Some(f) = fault {
        req = req.header("x-emulator-fault", f);
    }
    read_all(req).await
}

/// Sends `req` and reads the whole answer, noting whether the body broke off.
pub async fn read_all(req: reqwest::RequestBuilder) -> Received {
    let started = Instant::now();
    let res = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return Received {
                status: 0,
                body: e.to_string().into_bytes(),
                whole: false,
                head: String::new(),
                elapsed: started.elapsed(),
            };
        }
    };
    let status = res.status().as_u16();
    let head = res
        .headers()
        .iter()
        .map(|(n, v)| format!("{n}: {}\r\n", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let mut body = Vec::new();
    let mut whole = true;
    let mut chunks = res.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(c) => body.extend_from_slice(&c),
            Err(_) => {
                whole = false;
                break;
            }
        }
    }
    Received {
        status,
        body,
        whole,
        head,
        elapsed: started.elapsed(),
    }
}

/// The management API, signed in.
#[derive(Clone)]
pub struct Books {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: String,
}

impl Books {
    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn send(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        self.try_send(method, path, body).await.unwrap()
    }

    /// [`send`](Self::send) for a Hub that may be gone: `None` when the connection failed.
    pub async fn try_send(&self, method: &str, path: &str, body: Value) -> Option<(u16, Value)> {
        let res = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .json(&body)
            .send()
            .await
            .ok()?;
        let status = res.status().as_u16();
        Some((status, res.json().await.unwrap_or(Value::Null)))
    }

    /// `(balance, held)` in micro-USD.
    pub async fn credits(&self) -> (i64, i64) {
        let c = self.get("/api/v1/credits").await;
        (
            c["balance_micro_usd"].as_i64().unwrap(),
            c["held_micro_usd"].as_i64().unwrap(),
        )
    }

    /// Every usage record (newest first), following the cursor.
    pub async fn rows(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut path = "/api/v1/usage/requests?limit=500".to_string();
        loop {
            let page = self.get(&path).await;
            out.extend(page["data"].as_array().unwrap().iter().cloned());
            match next_cursor(&page) {
                Some(c) => path = format!("/api/v1/usage/requests?limit=500&cursor={c}"),
                None => return out,
            }
        }
    }

    /// Waits until there are `n` usage records (they are written just after the answer).
    pub async fn wait_rows(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rows = self.rows().await;
            if rows.len() >= n || Instant::now() > deadline {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sum of the grants and top-ups in the credit ledger (every page of it).
    pub async fn credited(&self) -> i64 {
        let mut total = 0;
        let mut path = "/api/v1/credits/ledger?limit=500".to_string();
        loop {
            let page = self.get(&path).await;
            total += page["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "grant" || e["kind"] == "topup")
                .map(|e| e["amount_micro_usd"].as_i64().unwrap())
                .sum::<i64>();
            match next_cursor(&page) {
                Some(c) => path = format!("/api/v1/credits/ledger?limit=500&cursor={c}"),
                None => return total,
            }
        }
    }
}

/// A page's cursor for the next one (a number), if there is a next one.
fn next_cursor(page: &Value) -> Option<String> {
    match &page["next_cursor"] {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// What the records say managed calls cost.
pub fn managed_cost(rows: &[Value]) -> i64 {
    rows.iter()
        .filter(|r| r["billed_to"] == "credits")
        .map(|r| r["cost_micro_usd"].as_i64().unwrap())
        .sum()
}
