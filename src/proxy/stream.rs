//! Relays a streamed answer chunk by chunk as it arrives, metering a parsed copy. When the
//! provider's stream ends, the usage record is committed before the app's response ends; a
//! cut upstream ends the app's response with an error; an app that goes away cancels the
//! upstream call (the upstream body is dropped) and its partial usage is still recorded.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{BodyStream, Context};
use crate::hub::Hub;
use crate::providers::StreamMeter;

type Upstream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;
type Finishing = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Wraps an upstream streaming response into the body sent to the app.
pub(crate) fn metered(
    hub: Hub,
    response: reqwest::Response,
    meter: StreamMeter,
    ctx: Context,
) -> BodyStream {
    Box::pin(Metered {
        hub,
        upstream: Box::pin(response.bytes_stream()),
        state: Some((meter, ctx)),
        finishing: None,
        tail: None,
        end_with_error: false,
    })
}

struct Metered {
    hub: Hub,
    upstream: Upstream,
    /// The meter and record context while the stream is live.
    state: Option<(StreamMeter, Context)>,
    /// The commit of the usage record, once the upstream has ended.
    finishing: Option<Finishing>,
    /// Bytes the meter held back until the end, sent after the commit.
    tail: Option<Bytes>,
    end_with_error: bool,
}

impl Metered {
    /// Starts recording once the upstream ended (cleanly or not).
    fn begin_finish(&mut self, error_code: Option<String>) {
        if let Some((mut meter, ctx)) = self.state.take() {
            let tail = meter.flush();
            if !tail.is_empty() {
                self.tail = Some(tail);
            }
            let metered = meter.finish();
            let error_code = error_code.or_else(|| {
                if metered.upstream_error {
                    Some("upstream_stream_error".to_string())
                } else if !metered.complete {
                    Some("stream_incomplete".to_string())
                } else {
                    None
                }
            });
            let hub = self.hub.clone();
            self.finishing = Some(Box::pin(async move {
                ctx.finish(&hub, Some(metered), error_code).await;
            }));
        }
    }
}

impl Stream for Metered {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(finishing) = self.finishing.as_mut() {
                if finishing.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.finishing = None;
                if let Some(tail) = self.tail.take() {
                    return Poll::Ready(Some(Ok(tail)));
                }
                if self.end_with_error {
                    self.end_with_error = false;
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "the provider's stream was cut",
                    ))));
                }
                return Poll::Ready(None);
            }
            if self.state.is_none() {
                return Poll::Ready(None);
            }
            match self.upstream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let out = match self.state.as_mut() {
                        Some((meter, _)) => meter.feed(chunk),
                        None => chunk,
                    };
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let code = if e.is_timeout() {
                        "upstream_timeout"
                    } else {
                        "upstream_stream_cut"
                    };
                    tracing::warn!(error = code, "upstream stream ended early");
                    self.end_with_error = true;
                    self.begin_finish(Some(code.to_string()));
                }
                Poll::Ready(None) => self.begin_finish(None),
            }
        }
    }
}

impl Drop for Metered {
    /// The app went away before the end: record what was used so far, without waiting.
    fn drop(&mut self) {
        if let Some((meter, ctx)) = self.state.take() {
            let metered = meter.finish();
            ctx.finish_later(
                &self.hub,
                Some(metered),
                Some("client_disconnected".to_string()),
            );
        }
    }
}
