//! Metering streamed responses: events are cut from the reads, each provider's rules read the
//! usage out of them, and what the provider never reported is estimated.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

use super::forward::tokens_from_bytes;
use super::sse::{SseEvent, SseSplitter, parse_event};
use super::{Endpoint, Metered, RequestInfo, Usage};

/// What happens to one event when the meter rewrites the stream.
pub(crate) enum Forward {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

/// What the provider has reported so far.
#[derive(Debug, Default)]
pub(crate) struct Reported {
    pub usage: Usage,
    /// `usage.input_tokens` and the cache counts come from the provider.
    pub input: bool,
    /// The output count is the provider's final one.
    pub final_output: bool,
}

/// What the meter has seen of the stream, apart from the provider's own counts.
#[derive(Debug, Default)]
pub(crate) struct StreamSeen {
    /// UTF-8 bytes of generated text since the provider last reported an output count.
    text_bytes_unreported: u64,
    model: Option<String>,
    pub ended: bool,
    pub error: bool,
}

impl StreamSeen {
    pub fn add_text(&mut self, text: &str) {
        self.text_bytes_unreported = self.text_bytes_unreported.saturating_add(text.len() as u64);
    }

    /// The provider's output count now covers all text seen so far.
    pub fn output_reported(&mut self) {
        self.text_bytes_unreported = 0;
    }

    pub fn note_model(&mut self, model: Option<&str>) {
        if self.model.is_none() {
            self.model = model.filter(|m| !m.is_empty()).map(str::to_owned);
        }
    }
}

/// One provider's reading of its stream events.
pub(crate) trait StreamRules: Send {
    /// Reads one complete event (`raw` is its bytes as received). The answer matters only when
    /// the meter rewrites the stream.
    fn observe(&mut self, raw: &[u8], event: &SseEvent<'_>, seen: &mut StreamSeen) -> Forward;

    fn reported(&self) -> Reported;
}

/// How the body is framed into events.
enum Framing {
    /// Gemini streams are SSE with `alt=sse` and a JSON array without; the first byte tells.
    Undecided,
    Sse(SseSplitter),
    /// Gemini's `streamGenerateContent` without `alt=sse`: one JSON array, streamed.
    JsonArray(JsonArraySplitter),
}

/// Meters one streamed response while it is forwarded to the app.
///
/// Call [`feed`](Self::feed) with every read and send what it returns at once; at the end call
/// [`flush`](Self::flush) and send that too, then [`finish`](Self::finish).
pub struct StreamMeter {
    framing: Framing,
    rules: Box<dyn StreamRules>,
    seen: StreamSeen,
    rewrite: bool,
    input_estimate: u64,
}

impl StreamMeter {
    pub(crate) fn sse(rules: Box<dyn StreamRules>, info: &RequestInfo, rewrite: bool) -> Self {
        Self::new(Framing::Sse(SseSplitter::new()), rules, info, rewrite)
    }

    /// SSE or a streamed JSON array, whichever the body turns out to be (never rewritten).
    pub(crate) fn sse_or_json_array(rules: Box<dyn StreamRules>, info: &RequestInfo) -> Self {
        Self::new(Framing::Undecided, rules, info, false)
    }

    fn new(
        framing: Framing,
        rules: Box<dyn StreamRules>,
        info: &RequestInfo,
        rewrite: bool,
    ) -> Self {
        StreamMeter {
            framing,
            rules,
            seen: StreamSeen::default(),
            rewrite,
            input_estimate: info.input_tokens_estimate,
        }
    }

    /// Meters one read and returns the bytes to send to the app now: the read itself when the
    /// stream is not rewritten (no copy), else the complete events it finished, rewritten.
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        self.decide_framing(&chunk);
        let mut out = BytesMut::new();
        let (rules, seen, rewrite) = (&mut self.rules, &mut self.seen, self.rewrite);
        let mut on_event = |raw: &[u8], event: SseEvent<'_>| {
            let forward = rules.observe(raw, &event, seen);
            if rewrite {
                emit(&mut out, raw, forward);
            }
        };
        match &mut self.framing {
            Framing::Sse(splitter) => splitter.push(&chunk, |raw| on_event(raw, parse_event(raw))),
            Framing::JsonArray(splitter) => splitter.push(&chunk, |object| {
                let event = SseEvent {
                    name: None,
                    data: Cow::Borrowed(object),
                };
                on_event(object, event);
            }),
            Framing::Undecided => {}
        }
        if self.rewrite { out.freeze() } else { chunk }
    }

    /// Bytes held for an event that has not ended yet: what one endless event would grow.
    pub fn pending_len(&self) -> usize {
        match &self.framing {
            Framing::Sse(splitter) => splitter.pending().len(),
            Framing::JsonArray(splitter) => splitter.current.len(),
            Framing::Undecided => 0,
        }
    }

    fn decide_framing(&mut self, chunk: &[u8]) {
        if let Framing::Undecided = self.framing {
            match chunk.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'[') => self.framing = Framing::JsonArray(JsonArraySplitter::default()),
                Some(_) => self.framing = Framing::Sse(SseSplitter::new()),
                None => {} // only whitespace so far: nothing to meter in it
            }
        }
    }

    /// At the end of the body: meters an event left without its blank line and returns the
    /// bytes still held back (only ever non-empty when the stream is rewritten).
    pub fn flush(&mut self) -> Bytes {
        let tail = match &mut self.framing {
            Framing::Sse(splitter) => splitter.take_pending(),
            Framing::JsonArray(_) | Framing::Undecided => Vec::new(),
        };
        if tail.iter().all(u8::is_ascii_whitespace) {
            return if self.rewrite {
                Bytes::from(tail)
            } else {
                Bytes::new()
            };
        }
        let event = parse_event(&tail);
        let forward = self.rules.observe(&tail, &event, &mut self.seen);
        let mut out = BytesMut::new();
        if self.rewrite {
            emit(&mut out, &tail, forward);
        }
        out.freeze()
    }

    /// The usage of the stream. What the provider did not report is estimated: input from the
    /// request's estimate, output from the text seen since the last reported count
    /// (see [`tokens_from_bytes`]).
    pub fn finish(mut self) -> Metered {
        self.flush();
        let reported = self.rules.reported();
        let mut usage = reported.usage;
        if usage.model.is_none() {
            usage.model = self.seen.model.take();
        }
        if !reported.input {
            usage.input_tokens = usage.input_tokens.max(self.input_estimate);
        }
        if !reported.final_output {
            let unreported = tokens_from_bytes(self.seen.text_bytes_unreported);
            usage.output_tokens = usage.output_tokens.saturating_add(unreported);
        }
        Metered {
            usage,
            complete: self.seen.ended,
            estimated: !(reported.input && reported.final_output),
            upstream_error: self.seen.error,
        }
    }
}

fn emit(out: &mut BytesMut, raw: &[u8], forward: Forward) {
    match forward {
        Forward::Keep => out.extend_from_slice(raw),
        Forward::Drop => {}
        Forward::Replace(bytes) => out.extend_from_slice(&bytes),
    }
}

/// A stand-in for a billable response that carried no usage: input from the request's estimate,
/// output from the response's size (none for embeddings). Always marked estimated.
pub(crate) fn estimate_without_usage(
    info: &RequestInfo,
    body: &[u8],
    model: Option<String>,
) -> Metered {
    let output_tokens = if info.endpoint.is_embedding() {
        0
    } else {
        tokens_from_bytes(body.len() as u64)
    };
    Metered {
        usage: Usage {
            model,
            input_tokens: info.input_tokens_estimate,
            output_tokens,
            ..Usage::default()
        },
        complete: true,
        estimated: true,
        upstream_error: false,
    }
}

/// The usage of a free call (token counting): zero, and exact.
pub(crate) fn free_call() -> Metered {
    Metered {
        complete: true,
        ..Metered::default()
    }
}

/// A provider-reported usage of a complete body.
pub(crate) fn reported_body(usage: Usage) -> Metered {
    Metered {
        usage,
        complete: true,
        estimated: false,
        upstream_error: false,
    }
}

/// Whether the endpoint is one whose bodies a provider meters with counts (`None` otherwise).
pub(crate) fn body_is_metered(endpoint: Endpoint) -> bool {
    endpoint.is_billable() || endpoint == Endpoint::CountTokens
}

/// Cuts the top-level objects out of a streamed JSON array (`[{…},\r\n{…}]`).
#[derive(Debug, Default)]
struct JsonArraySplitter {
    current: Vec<u8>,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl JsonArraySplitter {
    fn push(&mut self, chunk: &[u8], mut on_object: impl FnMut(&[u8])) {
        for &byte in chunk {
            if self.depth == 0 && byte != b'{' {
                continue; // `[`, `,`, `]` and whitespace between the objects
            }
            self.current.push(byte);
            if self.in_string {
                match (self.escaped, byte) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        on_object(&self.current);
                        self.current.clear();
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn json_array_objects_survive_any_split() {
        let body = br#"[{"a": "x}{\"]", "b": [1, {"c": 2}]}
,
{"d": 3}]"#;
        let mut whole = Vec::new();
        JsonArraySplitter::default().push(body, |o| whole.push(o.to_vec()));
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[1], br#"{"d": 3}"#.to_vec());
        for cut in 0..=body.len() {
            let mut splitter = JsonArraySplitter::default();
            let mut objects = Vec::new();
            splitter.push(&body[..cut], |o| objects.push(o.to_vec()));
            splitter.push(&body[cut..], |o| objects.push(o.to_vec()));
            assert_eq!(objects, whole, "cut at {cut}");
        }
    }
}
