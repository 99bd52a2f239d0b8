//! The Hub's services: what pages, the API and the gateway ask for, independent of HTTP.

pub mod apps;
mod auth;
pub mod connections;
mod credits;
mod error;
mod keep;
mod outbound;
mod routing;
mod sessions;
mod usage;

use std::sync::{Arc, OnceLock, RwLock};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::ledger::Credits;
use crate::store::Store;
use crate::vault::UnlockedVault;

pub use auth::{MAX_DELAY as UNLOCK_MAX_DELAY, MIN_PASSPHRASE_LEN, Source, Status};
pub use credits::{CreditSummary, MAX_NOTE_CHARS, MAX_TOP_UP};
pub use error::{HubError, ceil_secs};
pub use keep::{
    BODY_CAP, BODY_DAYS, CapturedBodies, KeepChange, KeepSettings, OpenedBodies, Replay,
};
pub use routing::{AppGate, Route, UsageBook};
pub use sessions::{Session, SessionId};
pub use usage::{
    FilterParams, MAX_PAGE, ModelReach, RequestDetail, Timings, UsagePage, csv_header, csv_line,
    last_days, month_to_date, parse_group_by, parse_range, parse_usage_filter, today,
};

/// The unlocked vault, or `None` while locked.
pub(crate) type VaultSlot = Arc<RwLock<Option<Arc<UnlockedVault>>>>;

/// Shared state of a running Hub. Cheap to clone (everything is behind `Arc`).
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<Store>,
    catalog: &'static Catalog,
    /// Shared with the usage writer, which seals kept bodies with it.
    vault: VaultSlot,
    keep_bodies_days: std::sync::atomic::AtomicU32,
    keep_requests_days: std::sync::atomic::AtomicI64,
    sessions: sessions::Sessions,
    throttle: auth::UnlockThrottle,
    /// The one-time token first-run setup needs while the Hub listens beyond loopback.
    setup_token: std::sync::Mutex<Option<secrecy::SecretString>>,
    credits: Credits,
    http: outbound::Outbound,
    local_port: OnceLock<u16>,
    /// Bumped on every change the gateway may have cached (apps, connections, the lock).
    generation: std::sync::atomic::AtomicU64,
    /// Whether any enabled managed connector is a demo; computed on first need after a change.
    demo: std::sync::Mutex<Option<bool>>,
}

impl Hub {
    /// Opens the store in the configured data dir and, given a headless passphrase,
    /// creates or unlocks the vault.
    pub fn open(mut config: Config) -> Result<Hub, HubError> {
        let passphrase = config.passphrase.take();
        let store = Arc::new(Store::open(&config.data_dir)?);
        let session_idle = config.session_idle;
        let credits = Credits::new(store.ledger_balance()?);
        let http = outbound::Outbound::new(&config)?;
        let catalog = load_catalog(&config)?;
        let hub = Hub {
            inner: Arc::new(Inner {
                config,
                store,
                catalog,
                vault: Arc::new(RwLock::new(None)),
                keep_bodies_days: std::sync::atomic::AtomicU32::new(0),
                keep_requests_days: std::sync::atomic::AtomicI64::new(-1),
                sessions: sessions::Sessions::new(session_idle),
                throttle: auth::UnlockThrottle::default(),
                setup_token: std::sync::Mutex::new(None),
                credits,
                http,
                local_port: OnceLock::new(),
                generation: std::sync::atomic::AtomicU64::new(0),
                demo: std::sync::Mutex::new(None),
            }),
        };
        hub.load_keep_settings()?;
        hub.headless_unlock(passphrase)?;
        if hub.config().network_facing() && hub.store().vault_header()?.is_none() {
            *hub.inner
                .setup_token
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(auth::new_setup_token()?);
        }
        Ok(hub)
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The embedded catalog merged with the user's `prices.json`.
    pub fn catalog(&self) -> &'static Catalog {
        self.inner.catalog
    }

    /// This thread's client for calls to providers (and to the built-in emulator).
    pub fn http(&self) -> reqwest::Client {
        self.inner.http.client()
    }

    /// Tells the Hub the port it listens on, so demo connections can reach the emulator
    /// mounted on the same listener.
    pub fn set_local_port(&self, port: u16) {
        let _ = self.inner.local_port.set(port);
    }

    pub fn local_port(&self) -> Option<u16> {
        self.inner.local_port.get().copied()
    }

    /// True when some enabled managed connector has no platform key, so its answers come
    /// from the built-in emulator (the layout shows a Demo badge).
    pub fn any_demo(&self) -> bool {
        let mut cached = self.inner.demo.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(demo) = *cached {
            return demo;
        }
        let demo = self.list_connections().is_ok_and(|list| {
            list.iter().any(|c| {
                c.is_managed() && c.is_enabled() && c.backing == connections::Backing::Demo
            })
        });
        *cached = Some(demo);
        demo
    }

    /// The credit balance and open holds.
    pub fn credits(&self) -> &Credits {
        &self.inner.credits
    }

    /// The unlocked vault, or `Locked`.
    pub fn vault(&self) -> Result<Arc<UnlockedVault>, HubError> {
        self.inner
            .vault
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(HubError::Locked)
    }

    pub fn is_locked(&self) -> bool {
        self.inner
            .vault
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Writes a backup to `backups/hub-<time>.db` in the data dir (mode 0600). Blocking.
    pub fn backup_now(&self) -> Result<crate::store::backup::Copied, HubError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.config().data_dir.join("backups");
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| HubError::Unexpected(format!("cannot prepare {}: {e}", dir.display())))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let copied = self
            .store()
            .backup_to(&dir.join(format!("hub-{stamp}.db")))?;
        tracing::info!(path = %copied.path.display(), bytes = copied.bytes, "backup written");
        Ok(copied)
    }

    fn set_vault(&self, vault: Option<Arc<UnlockedVault>>) {
        *self.inner.vault.write().unwrap_or_else(|p| p.into_inner()) = vault;
        self.bump_generation();
    }
}

impl Hub {
    /// Runs `f` with this hub on the blocking thread pool: how async callers (pages, the
    /// API) use the hub's SQLite- and Argon2-bound methods without stalling a worker.
    pub async fn run<T, F>(&self, f: F) -> Result<T, HubError>
    where
        F: FnOnce(&Hub) -> Result<T, HubError> + Send + 'static,
        T: Send + 'static,
    {
        let hub = self.clone();
        blocking(move || f(&hub)).await
    }
}

/// A Hub on `dir` with default settings, for unit tests anywhere in the crate.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn test_hub(dir: &std::path::Path) -> Hub {
    use clap::Parser;
    let cli =
        crate::cli::Cli::try_parse_from(["workshop-hub", "--data-dir", dir.to_str().unwrap()])
            .unwrap();
    Hub::open(Config::from_args(&cli.serve).unwrap()).unwrap()
}

/// Runs a blocking call (Argon2id, SQLite) on the blocking thread pool.
pub async fn blocking<T, F>(f: F) -> Result<T, HubError>
where
    F: FnOnce() -> Result<T, HubError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HubError::Unexpected(format!("blocking task: {e}")))?
}

/// The catalog the Hub prices with, loaded once at start. It lives for the whole process,
/// so it is leaked to a `'static` reference that the gateway can hold without cloning.
fn load_catalog(config: &Config) -> Result<&'static Catalog, HubError> {
    let catalog = Catalog::load(&config.data_dir)
        .map_err(|e| HubError::bad_input("prices.json", e.to_string()))?;
    Ok(Box::leak(Box::new(catalog)))
}
