//! The Hub's services: what pages, the API and the gateway ask for, independent of HTTP.

mod auth;
mod error;
mod sessions;

use std::sync::{Arc, RwLock};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::ledger::Credits;
use crate::store::Store;
use crate::vault::UnlockedVault;

pub use auth::{MIN_PASSPHRASE_LEN, Status};
pub use error::{HubError, ceil_secs};
pub use sessions::{Session, SessionId};

/// Shared state of a running Hub. Cheap to clone (everything is behind `Arc`).
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<Store>,
    catalog: &'static Catalog,
    vault: RwLock<Option<Arc<UnlockedVault>>>,
    sessions: sessions::Sessions,
    throttle: auth::UnlockThrottle,
    credits: Credits,
}

impl Hub {
    /// Opens the store in the configured data dir and, given a headless passphrase,
    /// creates or unlocks the vault.
    pub fn open(config: Config) -> Result<Hub, HubError> {
        let store = Arc::new(Store::open(&config.data_dir)?);
        let session_idle = config.session_idle;
        let credits = Credits::new(store.ledger_balance()?);
        let hub = Hub {
            inner: Arc::new(Inner {
                config,
                store,
                catalog: Catalog::embedded(),
                vault: RwLock::new(None),
                sessions: sessions::Sessions::new(session_idle),
                throttle: auth::UnlockThrottle::default(),
                credits,
            }),
        };
        hub.headless_unlock()?;
        Ok(hub)
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    pub fn catalog(&self) -> &'static Catalog {
        self.inner.catalog
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

    fn set_vault(&self, vault: Option<Arc<UnlockedVault>>) {
        *self.inner.vault.write().unwrap_or_else(|p| p.into_inner()) = vault;
    }
}
