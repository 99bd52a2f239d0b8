//! The HTTP client for calls to providers, one per thread that makes them: a pooled
//! connection is driven by the thread that opened it, so with one pool for every worker a
//! call on one worker would hop to another worker's thread and back for each of its reads
//! and writes.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::HubError;
use crate::config::Config;

/// Clients a thread keeps, for as many Hubs (a test process opens many).
const KEPT_PER_THREAD: usize = 4;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static CLIENTS: RefCell<Vec<(u64, reqwest::Client)>> = const { RefCell::new(Vec::new()) };
}

/// How the Hub's upstream clients are built, and the one used where no thread-local one
/// can be made.
pub(super) struct Outbound {
    id: u64,
    read_timeout: Duration,
    shared: reqwest::Client,
}

impl Outbound {
    pub fn new(config: &Config) -> Result<Outbound, HubError> {
        let read_timeout = config.stream_idle_timeout;
        Ok(Outbound {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            read_timeout,
            shared: build(read_timeout)?,
        })
    }

    /// This thread's client (a cheap handle to it), made on the thread's first call.
    pub fn client(&self) -> reqwest::Client {
        CLIENTS
            .try_with(|clients| {
                let mut clients = clients.borrow_mut();
                if let Some((_, client)) = clients.iter().find(|(id, _)| *id == self.id) {
                    return client.clone();
                }
                let Ok(client) = build(self.read_timeout) else {
                    return self.shared.clone();
                };
                if clients.len() == KEPT_PER_THREAD {
                    clients.remove(0);
                }
                clients.push((self.id, client.clone()));
                client
            })
            .unwrap_or_else(|_| self.shared.clone())
    }
}

/// Per-request timeouts are set by callers; redirects are not followed (a provider API
/// never redirects, and a redirect could carry the key elsewhere).
fn build(read_timeout: Duration) -> Result<reqwest::Client, HubError> {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(read_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("workshop-hub/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HubError::Unexpected(format!("cannot build the HTTP client: {e}")))
}
