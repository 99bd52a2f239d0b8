//! Translating a native event stream into OpenAI's chunk stream as it arrives: a wrapper that
//! splits the gateway's (already metered) body into events and hands each to a provider's
//! translator, and the chunk framing both translators share. The end of the answer (finish
//! chunk, usage, `[DONE]`) is sent once the native stream has ended, after the gateway has
//! recorded the call.

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::error::stream_error;
use crate::gateway::BodyStream;
use crate::providers::sse::{SseSplitter, parse_event};

/// One provider's native events → OpenAI chunks.
pub trait Translator: Send + 'static {
    /// One native event (its `event:` name and `data:`), writing any chunks to `out`.
    fn event(&mut self, name: Option<&str>, data: &[u8], out: &mut Vec<u8>);
    /// The native stream ended cleanly: the finish chunk, usage and `[DONE]`, or an error when
    /// the answer never finished.
    fn end(&mut self, out: &mut Vec<u8>);
}

struct State {
    upstream: BodyStream,
    splitter: SseSplitter,
    translator: Box<dyn Translator>,
    over: bool,
}

/// Wraps `upstream` so the app receives OpenAI chunks.
pub fn translate(upstream: BodyStream, translator: Box<dyn Translator>) -> BodyStream {
    let state = State {
        upstream,
        splitter: SseSplitter::new(),
        translator,
        over: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        if st.over {
            return None;
        }
        loop {
            let mut out = Vec::new();
            match st.upstream.next().await {
                Some(Ok(bytes)) => {
                    let translator = &mut st.translator;
                    st.splitter.push(&bytes, |raw| {
                        let ev = parse_event(raw);
                        if !ev.is_empty() {
                            translator.event(ev.name, &ev.data, &mut out);
                        }
                    });
                }
                Some(Err(_)) => {
                    out = stream_error(
                        "upstream_stream_cut",
                        "The provider's stream was cut before the answer finished; what was sent is recorded as estimated usage. Retry the request.",
                    );
                    st.over = true;
                }
                None => {
                    st.translator.end(&mut out);
                    st.over = true;
                }
            }
            if !out.is_empty() || st.over {
                return Some((Ok(Bytes::from(out)), st));
            }
        }
    }))
}

/// The identity every chunk of one answer repeats, and their framing.
pub struct Chunks {
    pub id: String,
    pub model: String,
    pub created: i64,
    pub include_usage: bool,
}

impl Chunks {
    pub fn new(model: &str, include_usage: bool) -> Chunks {
        Chunks {
            id: format!("chatcmpl-{}", uuid_like()),
            model: model.to_string(),
            created: super::now_secs(),
            include_usage,
        }
    }

    /// `data: {…choices:[{index, delta, finish_reason}]}`.
    pub fn delta(&self, out: &mut Vec<u8>, index: u64, delta: Value, finish: Option<&str>) {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        frame(out, &chunk);
    }

    /// The usage chunk (only when asked for) and `[DONE]`.
    pub fn close(&self, out: &mut Vec<u8>, usage: Value) {
        if self.include_usage {
            frame(
                out,
                &json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage,
                }),
            );
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

fn frame(out: &mut Vec<u8>, value: &Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(value.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// A unique-enough id for chunks and generated tool calls.
pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = chrono::Utc::now().timestamp_micros();
    format!("{t:x}{n:04x}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;

    /// Runs `translator` over `input` (raw SSE bytes, possibly cut into reads anywhere) and
    /// returns each `data:` payload the app would see.
    pub fn run(
        translator: Box<dyn Translator>,
        reads: Vec<Result<&'static [u8], ()>>,
    ) -> Vec<String> {
        let items: Vec<Result<Bytes, std::io::Error>> = reads
            .into_iter()
            .map(|r| {
                r.map(Bytes::from_static)
                    .map_err(|_| std::io::Error::other("cut"))
            })
            .collect();
        let upstream: BodyStream = Box::pin(futures_util::stream::iter(items));
        let body = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let mut all = Vec::new();
                let mut s = translate(upstream, translator);
                while let Some(b) = s.next().await {
                    all.extend_from_slice(&b.unwrap());
                }
                all
            });
        String::from_utf8(body)
            .unwrap()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: ").map(str::to_string))
            .collect()
    }

    pub fn json_chunks(data: &[String]) -> Vec<Value> {
        data.iter()
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }
}
