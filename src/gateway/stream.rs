//! Relays a streamed answer chunk by chunk as it arrives, metering a parsed copy. It works on
//! any byte stream, so it is tested without a network. When the provider's stream ends, the
//! usage record is committed before the app's response ends; a cut upstream ends the app's
//! response with an error; an event larger than the cap is cut with the provider's own error
//! event; an app that goes away cancels the upstream call (the upstream body is dropped) and
//! its partial usage is still recorded.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::providers::{Metered, StreamMeter};

/// Why an upstream stream ended before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Timeout,
    Broken,
}

impl Cut {
    /// The error code of the usage record.
    fn code(self) -> &'static str {
        match self {
            Cut::Timeout => "upstream_timeout",
            Cut::Broken => "upstream_stream_cut",
        }
    }
}

pub type Finishing = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How a relayed stream ended: its usage, an error code, and what was relayed (when asked).
pub struct StreamEnd {
    pub metered: Option<Metered>,
    pub error: Option<String>,
    /// The bytes sent to the app, up to the capture cap, and whether they were cut.
    pub captured: Option<(Bytes, bool)>,
}

/// What happens with the usage once the stream is over.
pub trait Finish: Send + 'static {
    /// The stream reached its end (or was cut): record, and let the app's response end after.
    fn finish(self: Box<Self>, end: StreamEnd) -> Finishing;
    /// The app went away: record without anyone waiting.
    fn finish_later(self: Box<Self>, end: StreamEnd);
}

/// The bounds and the error event of one relayed stream.
pub struct Relay {
    /// Metering rules, or `None` to pass an unmetered body through as it is.
    pub meter: Option<StreamMeter>,
    /// Largest event the meter may hold while waiting for its end.
    pub max_event_bytes: usize,
    /// Sent to the app in place of an oversize event, in the provider's own stream framing.
    pub oversize_event: Bytes,
    /// Keep a copy of up to this many relayed bytes for the record (`None`: keep nothing).
    pub capture: Option<usize>,
}

/// Wraps an upstream body into the body sent to the app.
pub fn metered<S>(
    upstream: S,
    relay: Relay,
    finish: Box<dyn Finish>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, Cut>> + Send + Unpin + 'static,
{
    MeteredStream {
        upstream,
        live: Some((relay.meter, finish)),
        max_event_bytes: relay.max_event_bytes,
        oversize_event: Some(relay.oversize_event),
        capture: relay.capture.map(|cap| Capture {
            bytes: BytesMut::new(),
            cap,
            cut: false,
        }),
        finishing: None,
        tail: None,
        end_with_error: false,
    }
}

struct MeteredStream<S> {
    upstream: S,
    /// The meter and what records the usage, while the stream is live.
    live: Option<(Option<StreamMeter>, Box<dyn Finish>)>,
    max_event_bytes: usize,
    oversize_event: Option<Bytes>,
    capture: Option<Capture>,
    /// The commit of the usage record, once the upstream has ended.
    finishing: Option<Finishing>,
    /// Bytes sent after the commit: what the meter held back, or the oversize error event.
    tail: Option<Bytes>,
    end_with_error: bool,
}

/// A copy of what was relayed, up to a cap.
struct Capture {
    bytes: BytesMut,
    cap: usize,
    cut: bool,
}

impl Capture {
    fn keep(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        if chunk.len() > room {
            self.cut = true;
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
}

impl<S> MeteredStream<S> {
    fn end(&mut self, metered: Option<Metered>, error: Option<String>) -> StreamEnd {
        StreamEnd {
            metered,
            error,
            captured: self.capture.take().map(|c| (c.bytes.freeze(), c.cut)),
        }
    }

    /// Starts recording once the upstream ended (cleanly or not).
    fn begin_finish(&mut self, error: Option<String>) {
        let Some((meter, finish)) = self.live.take() else {
            return;
        };
        let metered = meter.map(|mut meter| {
            let tail = meter.flush();
            if !tail.is_empty() {
                self.tail = Some(tail);
            }
            meter.finish()
        });
        let error = error.or_else(|| match &metered {
            Some(m) if m.upstream_error => Some("upstream_stream_error".to_string()),
            Some(m) if !m.complete => Some("stream_incomplete".to_string()),
            _ => None,
        });
        let end = self.end(metered, error);
        self.finishing = Some(finish.finish(end));
    }

    /// An event grew past the cap: stop reading, record, and tell the app in its own terms.
    fn cut_oversize(&mut self) {
        tracing::warn!(
            max_bytes = self.max_event_bytes,
            "a streamed event was over the cap"
        );
        if let Some((meter, finish)) = self.live.take() {
            let metered = meter.map(StreamMeter::finish);
            let end = self.end(metered, Some("upstream_too_large".into()));
            self.finishing = Some(finish.finish(end));
        }
        self.tail = self.oversize_event.take();
    }

    /// What comes after the commit: the tail, then an error for a cut stream, then the end.
    fn after_finish(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if let Some(tail) = self.tail.take() {
            return Some(Ok(tail));
        }
        if self.end_with_error {
            self.end_with_error = false;
            return Some(Err(std::io::Error::other("the provider's stream was cut")));
        }
        None
    }
}

impl<S> Stream for MeteredStream<S>
where
    S: Stream<Item = Result<Bytes, Cut>> + Unpin,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(finishing) = self.finishing.as_mut() {
                if finishing.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.finishing = None;
            }
            if self.live.is_none() {
                return Poll::Ready(self.after_finish());
            }
            match self.upstream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let max = self.max_event_bytes;
                    let (out, oversize) = match self.live.as_mut() {
                        Some((Some(meter), _)) => {
                            let out = meter.feed(chunk);
                            (out, meter.pending_len() > max)
                        }
                        _ => (chunk, false),
                    };
                    if oversize {
                        self.cut_oversize();
                        continue;
                    }
                    if !out.is_empty() {
                        if let Some(capture) = self.capture.as_mut() {
                            capture.keep(&out);
                        }
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(Some(Err(cut))) => {
                    tracing::warn!(error = cut.code(), "upstream stream ended early");
                    self.end_with_error = true;
                    self.begin_finish(Some(cut.code().to_string()));
                }
                Poll::Ready(None) => self.begin_finish(None),
            }
        }
    }
}

impl<S> Drop for MeteredStream<S> {
    /// The app went away before the end: record what was used so far, without waiting.
    fn drop(&mut self) {
        if let Some((meter, finish)) = self.live.take() {
            let metered = meter.map(StreamMeter::finish);
            let end = self.end(metered, Some("client_disconnected".to_string()));
            finish.finish_later(end);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::stream;

    use super::*;
    use crate::providers::{self, Provider, ProviderApi, RequestInfo};

    type Seen = Arc<Mutex<Vec<(Option<Metered>, Option<String>, bool)>>>;

    /// Records what the stream reported, and whether anyone waited for it.
    struct Probe(Seen);

    impl Finish for Probe {
        fn finish(self: Box<Self>, end: StreamEnd) -> Finishing {
            self.0.lock().unwrap().push((end.metered, end.error, true));
            Box::pin(async {})
        }
        fn finish_later(self: Box<Self>, end: StreamEnd) {
            self.0.lock().unwrap().push((end.metered, end.error, false));
        }
    }

    fn openai_chat(stream_body: &str) -> (RequestInfo, &'static dyn ProviderApi) {
        let api = providers::api(Provider::OpenAi);
        let body = Bytes::from(stream_body.to_string());
        let headers = vec![("authorization".to_string(), "Bearer whk_x".to_string())];
        let info = api.inspect(&providers::ProxyRequest {
            method: "POST",
            path: "/v1/chat/completions",
            query: "",
            headers: &headers,
            body: &body,
        });
        (info, api)
    }

    fn relay(api: &dyn ProviderApi, info: &RequestInfo, hide: bool, max: usize) -> Relay {
        Relay {
            meter: Some(api.stream_meter(info, hide)),
            max_event_bytes: max,
            oversize_event: Bytes::from_static(b"data: {\"error\":\"too large\"}\n\n"),
            capture: None,
        }
    }

    async fn run(
        parts: Vec<Result<Bytes, Cut>>,
        relay: Relay,
    ) -> (Vec<Result<Bytes, String>>, Seen) {
        let seen = Seen::default();
        let out = metered(stream::iter(parts), relay, Box::new(Probe(seen.clone())));
        let got = out.map(|r| r.map_err(|e| e.to_string())).collect().await;
        (got, seen)
    }

    const CHUNK: &str = "data: {\"id\":\"c\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there\"}}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"id\":\"c\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    fn ok(s: &str) -> Result<Bytes, Cut> {
        Ok(Bytes::from(s.to_string()))
    }

    fn text(got: &[Result<Bytes, String>]) -> String {
        got.iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[tokio::test]
    async fn usage_the_app_did_not_ask_for_is_metered_and_hidden() {
        let (info, api) = openai_chat(r#"{"model":"gpt-4o-mini","stream":true}"#);
        let (got, seen) = run(
            vec![ok(CHUNK), ok(USAGE), ok(DONE)],
            relay(api, &info, true, 1 << 20),
        )
        .await;
        let sent = text(&got);
        assert!(!sent.contains("prompt_tokens"), "usage hidden: {sent}");
        assert!(
            !sent.contains("\"usage\""),
            "null usage removed too: {sent}"
        );
        assert!(sent.contains("Hello there") && sent.ends_with(DONE));
        let seen = seen.lock().unwrap();
        let (metered, error, waited) = &seen[0];
        let m = metered.as_ref().unwrap();
        assert_eq!((m.usage.input_tokens, m.usage.output_tokens), (9, 2));
        assert!(!m.estimated && error.is_none() && *waited);
    }

    #[tokio::test]
    async fn usage_the_app_asked_for_passes_through_byte_for_byte() {
        let (info, api) = openai_chat(r#"{"model":"gpt-4o-mini","stream":true}"#);
        let all = format!("{CHUNK}{USAGE}{DONE}");
        // Split mid-event, to show the relay never waits for whole events to forward.
        let (a, b) = all.split_at(37);
        let (got, seen) = run(vec![ok(a), ok(b)], relay(api, &info, false, 1 << 20)).await;
        assert_eq!(text(&got), all);
        assert_eq!(got.len(), 2, "each read goes on as it came");
        let m = seen.lock().unwrap()[0].0.clone().unwrap();
        assert_eq!(m.usage.output_tokens, 2);
    }

    #[tokio::test]
    async fn a_cut_stream_ends_in_an_error_and_is_recorded_as_estimated() {
        let (info, api) = openai_chat(r#"{"model":"gpt-4o-mini","stream":true}"#);
        let (got, seen) = run(
            vec![ok(CHUNK), Err(Cut::Broken)],
            relay(api, &info, false, 1 << 20),
        )
        .await;
        assert!(got.last().unwrap().is_err(), "the app sees the cut");
        let seen = seen.lock().unwrap();
        let (metered, error, _) = &seen[0];
        assert_eq!(error.as_deref(), Some("upstream_stream_cut"));
        let m = metered.as_ref().unwrap();
        assert!(m.estimated);
        assert_eq!(
            m.usage.output_tokens, 3,
            "\"Hello there\" is 11 bytes: 3 tokens"
        );
    }

    #[tokio::test]
    async fn an_app_that_goes_away_is_still_recorded() {
        let (info, api) = openai_chat(r#"{"model":"gpt-4o-mini","stream":true}"#);
        let seen = Seen::default();
        let mut out = Box::pin(metered(
            stream::iter(vec![ok(CHUNK)]).chain(stream::pending()),
            relay(api, &info, false, 1 << 20),
            Box::new(Probe(seen.clone())),
        ));
        assert!(out.next().await.unwrap().is_ok());
        drop(out);
        let seen = seen.lock().unwrap();
        let (metered, error, waited) = &seen[0];
        assert_eq!(error.as_deref(), Some("client_disconnected"));
        assert!(!waited);
        assert_eq!(metered.as_ref().unwrap().usage.output_tokens, 3);
    }

    #[tokio::test]
    async fn an_endless_event_is_cut_at_the_cap() {
        let (info, api) = openai_chat(r#"{"model":"gpt-4o-mini","stream":true}"#);
        let endless = stream::iter(
            std::iter::once(ok("data: {\"choices\":[{\"delta\":{\"content\":\""))
                .chain(std::iter::repeat_with(|| ok(&"x".repeat(1024))).take(1000)),
        );
        let seen = Seen::default();
        let out = metered(
            endless,
            relay(api, &info, false, 16 * 1024),
            Box::new(Probe(seen.clone())),
        );
        let got: Vec<_> = out.collect().await;
        let relayed: usize = got
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(Bytes::len)
            .sum();
        assert!(
            relayed < 40 * 1024,
            "stopped near the cap, not after 1 MB: {relayed}"
        );
        let last = got.last().unwrap().as_ref().unwrap();
        assert_eq!(
            last,
            &Bytes::from_static(b"data: {\"error\":\"too large\"}\n\n")
        );
        assert_eq!(
            seen.lock().unwrap()[0].1.as_deref(),
            Some("upstream_too_large")
        );
    }

    #[tokio::test]
    async fn an_unmetered_body_passes_through_and_is_recorded() {
        let relay = Relay {
            meter: None,
            max_event_bytes: 1,
            oversize_event: Bytes::new(),
            capture: None,
        };
        let (got, seen) = run(vec![ok("abc"), ok("def")], relay).await;
        assert_eq!(text(&got), "abcdef");
        let seen = seen.lock().unwrap();
        assert!(seen[0].0.is_none() && seen[0].1.is_none());
    }
}
