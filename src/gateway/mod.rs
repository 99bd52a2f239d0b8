//! The gateway: an app's call, in its provider's native API, comes through one front door
//! (canonical path → app key and lock → binding, endpoint policy and limits → bounded body →
//! model, credits and budget), is forwarded with the stored provider key, streamed back as it
//! arrives, metered from the provider's own usage numbers, and recorded.
//!
//! A room of its own: the hub's services never import it. It caches apps and routes for one
//! generation of the hub, and owns the limits, budgets and the usage writer.

mod admit;
mod body;
mod cache;
mod compat_support;
mod forward;
pub mod limits;
mod record;
mod stream;
pub mod target;
mod writer;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::Stream;

use crate::config::GatewayLimits;
use crate::hub::Hub;
use crate::ledger::Surface;
use crate::providers::{self, Provider, Refusal};
use admit::Gate;
use body::BodyBudget;
use cache::Cache;
use limits::{Budgets, RateLimits};
use writer::Writer;

/// The app id Playground requests are recorded under.
pub const PLAYGROUND_APP: &str = "playground";

/// Longest model name the gateway accepts.
pub const MAX_MODEL_BYTES: usize = 256;

/// An app's request as the web layer hands it over, before its body is read.
pub struct Head {
    pub provider: Provider,
    pub method: String,
    /// The path as received, still percent-encoded, with the surface prefix (`/openai`)
    /// removed: e.g. `/v1/chat/completions`.
    pub path: String,
    /// The raw query string without `?` (empty for none).
    pub query: String,
    /// `(lowercase name, value)` pairs.
    pub headers: Vec<(String, String)>,
    /// The body's declared length, when the app declared one.
    pub content_length: Option<u64>,
    /// The API the app called: the provider's own, or the compatible surface on top of it.
    pub surface: Surface,
}

/// Who is calling: an app with its key, or the Hub's own Playground (a signed-in person)
/// on a connection they picked.
pub enum Caller {
    App,
    Playground { connection_id: String },
}

pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

pub enum OutBody {
    Full(Bytes),
    Stream(BodyStream),
}

/// What goes back to the app.
pub struct Outgoing {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: OutBody,
    /// Set when the Hub itself refused the request (or failed inside), with the reason.
    pub refused: Option<Refusal>,
}

/// The gateway's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    cache: Cache,
    rates: RateLimits,
    budgets: Budgets,
    writer: Writer,
    bodies: BodyBudget,
    unauthenticated: Unauthenticated,
    limits: GatewayLimits,
    max_body_bytes: usize,
    /// Calls between arrival and their record being written.
    in_flight: Arc<AtomicUsize>,
}

impl Gateway {
    /// Builds the gateway for `hub` and starts its usage writer, which stops when the last
    /// clone of this gateway (and every stream it is still relaying) is gone.
    pub fn new(hub: Hub) -> Gateway {
        let budgets = Budgets::default();
        let writer = Writer::start(hub.usage_book(), budgets.clone());
        let limits = hub.config().gateway;
        Gateway {
            inner: Arc::new(Inner {
                cache: Cache::default(),
                rates: RateLimits::default(),
                bodies: BodyBudget::new(limits.bodies_in_flight_bytes),
                unauthenticated: Unauthenticated::default(),
                max_body_bytes: hub.config().max_body_bytes,
                limits,
                budgets,
                writer,
                hub,
                in_flight: Arc::default(),
            }),
        }
    }

    fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// Handles one request from start to finish. The body is read only once the caller is
    /// known and allowed; a refused request's body is left unread (a small one is drained
    /// so the connection can be reused).
    pub async fn handle<S, E>(&self, head: Head, mut body: S, caller: Caller) -> Outgoing
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let declared = head.content_length;
        let in_flight = InFlight::enter(&self.inner.in_flight);
        let known = match self.identify(&head, caller, in_flight).await {
            Ok(known) => known,
            Err(out) => {
                if out.refused == Some(Refusal::InvalidAppKey) {
                    self.inner.unauthenticated.note(head.surface);
                }
                body::drain_small(&mut body, declared).await;
                return out;
            }
        };
        let route = match self.admit_head(&head, &known).await {
            Ok(route) => route,
            Err(out) => {
                body::drain_small(&mut body, declared).await;
                return self.record_refusal(&known, None, None, out).await;
            }
        };
        match self
            .admit_body(Gate { known, route }, &head, &mut body)
            .await
        {
            Ok(admitted) => self.forward(&head, admitted).await,
            Err(refused) => {
                let (gate, model, body, out) = *refused;
                self.record_refusal(&gate.known, model, body, out).await
            }
        }
    }

    /// Calls refused before the app was known (no key, or a wrong one), by surface.
    pub fn unauthenticated_calls(&self) -> UnauthenticatedCalls {
        self.inner.unauthenticated.counts()
    }

    /// The Playground's request: built by the Hub itself, so its body is already whole.
    pub async fn handle_playground(
        &self,
        head: Head,
        body: Bytes,
        connection_id: String,
    ) -> Outgoing {
        let chunk = futures_util::stream::iter([Ok::<_, std::io::Error>(body)]);
        self.handle(head, chunk, Caller::Playground { connection_id })
            .await
    }
}

/// Counts a call from its arrival until its record is written (or it turns out to need
/// none), so the record of a call with no other in flight can skip the writer's queue.
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count.clone())
    }

    /// Whether this is the only call in flight.
    pub(crate) fn alone(&self) -> bool {
        self.0.load(Ordering::Acquire) == 1
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Calls without a valid app key, per surface since the Hub started: a number to show, not a
/// row per guess.
#[derive(Default)]
struct Unauthenticated {
    native: AtomicU64,
    compatible: AtomicU64,
}

/// How many calls came without a valid app key, per surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct UnauthenticatedCalls {
    pub native: u64,
    pub compatible: u64,
}

impl Unauthenticated {
    fn note(&self, surface: Surface) {
        let counter = match surface {
            Surface::Native => &self.native,
            Surface::Compatible => &self.compatible,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn counts(&self) -> UnauthenticatedCalls {
        UnauthenticatedCalls {
            native: self.native.load(Ordering::Relaxed),
            compatible: self.compatible.load(Ordering::Relaxed),
        }
    }
}

/// The Hub's own refusal, in the provider's native error shape.
pub fn refusal(provider: Provider, why: Refusal, message: &str) -> Outgoing {
    refusal_with(provider, why, message, None)
}

fn refusal_with(
    provider: Provider,
    why: Refusal,
    message: &str,
    retry_after: Option<u64>,
) -> Outgoing {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(secs) = retry_after {
        headers.push(("retry-after".to_string(), secs.to_string()));
    }
    Outgoing {
        status: why.status(),
        headers,
        body: OutBody::Full(providers::api(provider).error_body(why, message)),
        refused: Some(why),
    }
}

/// The Hub failed inside (its log says why), in the provider's native error shape.
fn internal(provider: Provider, e: impl std::fmt::Display) -> Outgoing {
    tracing::error!(error = %e, "gateway failure");
    Outgoing {
        status: Refusal::Internal.status(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: OutBody::Full(providers::api(provider).internal_error_body()),
        refused: Some(Refusal::Internal),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn hub(dir: &std::path::Path) -> Hub {
        crate::hub::test_hub(dir)
    }

    #[test]
    fn a_call_is_alone_only_while_no_other_is_in_flight() {
        let count = Arc::new(AtomicUsize::new(0));
        let first = InFlight::enter(&count);
        assert!(first.alone());
        let second = InFlight::enter(&count);
        assert!(!first.alone() && !second.alone());
        drop(first);
        assert!(second.alone());
        drop(second);
        assert_eq!(count.load(Ordering::Acquire), 0);
    }

    #[test]
    fn the_usage_writer_stops_with_the_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path());
        let alone = Arc::strong_count(hub.store());
        let gateway = Gateway::new(hub.clone());
        let copy = gateway.clone();
        assert_eq!(
            Arc::strong_count(hub.store()),
            alone + 1,
            "the writer holds the store"
        );
        drop(gateway);
        drop(copy);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(hub.store()) > alone {
            assert!(Instant::now() < deadline, "the writer thread never stopped");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
