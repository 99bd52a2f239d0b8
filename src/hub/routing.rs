//! What the gateway asks of the hub: an app's key hash and limits, where a connection goes
//! and with which key, an app's spend this month, a connection's last outcome, and the book
//! usage records are written to. Each call does its own blocking, off the async workers.
//!
//! The hub knows nothing of the gateway: it bumps a generation counter on every change to
//! apps, connections or the lock, and the gateway drops what it cached under an older one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use secrecy::SecretString;

use super::{CapturedBodies, Hub, HubError, VaultSlot, blocking};
use crate::ledger::{Credits, Hold, UsageRecord};
use crate::money::MicroUsd;
use crate::providers::Provider;
use crate::store::{Outcome, SealedBodies, Store, StoreError};

/// An app as the gateway checks it: the hash of its key secret, its bindings and limits.
#[derive(Debug, Clone)]
pub struct AppGate {
    pub id: String,
    pub key_hash: Vec<u8>,
    /// Per provider, the bound connection id.
    pub bindings: Vec<(Provider, String)>,
    pub monthly_budget: Option<MicroUsd>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
}

impl AppGate {
    pub fn binding(&self, provider: Provider) -> Option<&str> {
        self.bindings
            .iter()
            .find(|(p, _)| *p == provider)
            .map(|(_, c)| c.as_str())
    }
}

/// Where a connection's calls go and with which key.
pub struct Route {
    pub id: String,
    pub managed: bool,
    pub enabled: bool,
    /// The provider root the canonical path is appended to, parsed once for every call on
    /// this route; `None` when it does not parse (its calls then fail as unreachable).
    pub base_url: Option<url::Url>,
    pub key: SecretString,
    /// Calls go to this machine (the built-in emulator, or a stand-in the user started on
    /// loopback): only such an upstream gets the emulator's test headers.
    pub local: bool,
    /// The connection shows a problem from its last call or verification.
    pub failing: AtomicBool,
}

/// Where usage records are committed, their bodies sealed, and credit holds settled.
pub struct UsageBook {
    store: Arc<Store>,
    credits: Credits,
    vault: VaultSlot,
}

impl UsageBook {
    /// Writes the records in one transaction (the caller is the writer's own thread) and
    /// returns their ids, in order.
    pub fn commit<'a>(
        &self,
        records: impl IntoIterator<Item = &'a UsageRecord>,
    ) -> Result<Vec<i64>, HubError> {
        Ok(self.store.insert_usage_batch(records)?)
    }

    /// Seals the bodies captured for the records with these ids and stores them in one
    /// transaction, unless the Hub was locked meanwhile. Done after the records are durable
    /// and their callers answered, so keeping bodies costs the app no time.
    pub fn keep_bodies(&self, bodies: Vec<(i64, CapturedBodies)>) -> Result<(), HubError> {
        if bodies.is_empty() {
            return Ok(());
        }
        let Some(vault) = self.vault.read().unwrap_or_else(|p| p.into_inner()).clone() else {
            return Ok(());
        };
        let sealed: Vec<(i64, SealedBodies)> = bodies
            .iter()
            .map(|(id, b)| Ok((*id, super::keep::seal(&vault, b)?)))
            .collect::<Result<_, HubError>>()?;
        self.store.insert_bodies(&sealed)?;
        Ok(())
    }

    /// Debits `charge` and releases the rest of the hold.
    pub fn settle(&self, hold: Option<Hold>, charge: MicroUsd) {
        self.credits.settle(hold, charge);
    }
}

/// Whether a provider root is on this machine.
fn is_loopback(base: &str) -> bool {
    match url::Url::parse(base)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

impl Hub {
    /// Changes whenever an app, a connection or the lock changes.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    pub(crate) fn bump_generation(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        *self.inner.demo.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The app with id `id`, for checking its key; `None` when there is no such app.
    pub async fn app_gate(&self, id: &str) -> Result<Option<AppGate>, HubError> {
        let hub = self.clone();
        let id = id.to_string();
        blocking(move || {
            let Some(key_hash) = hub.store().app_key_hash(&id)? else {
                return Ok(None);
            };
            let row = match hub.store().app(&id) {
                Ok(row) => row,
                Err(StoreError::NotFound) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            Ok(Some(AppGate {
                bindings: row
                    .bindings
                    .iter()
                    .filter_map(|(p, c)| c.clone().map(|c| (*p, c)))
                    .collect(),
                monthly_budget: row.monthly_budget_micro_usd.map(MicroUsd),
                rpm_limit: row.rpm_limit,
                tpm_limit: row.tpm_limit,
                key_hash,
                id: row.id,
            }))
        })
        .await
    }

    /// Where connection `id` goes; `None` when it was deleted. `Locked` without the vault.
    pub async fn route(&self, id: &str) -> Result<Option<Route>, HubError> {
        let hub = self.clone();
        let id = id.to_string();
        blocking(move || {
            let row = match hub.store().connection(&id) {
                Ok(row) => row,
                Err(StoreError::NotFound) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let target = hub.target(&row)?;
            let local = target.emulated || is_loopback(&target.base);
            Ok(Some(Route {
                id: row.id,
                managed: row.managed,
                enabled: row.enabled,
                base_url: url::Url::parse(&target.base).ok(),
                key: target.key,
                local,
                failing: AtomicBool::new(row.last_error_code.is_some()),
            }))
        })
        .await
    }

    /// What the app spent this UTC month: the figure its budget is checked against.
    pub async fn month_spend(&self, app_id: &str) -> Result<MicroUsd, HubError> {
        let hub = self.clone();
        let id = app_id.to_string();
        blocking(move || Ok(hub.app_month_spend(&id)?.total())).await
    }

    /// Records a connection's latest outcome (a provider error, or success after one) in the
    /// background: the call that saw it does not wait.
    pub fn note_connection_outcome(&self, id: &str, outcome: Outcome) {
        let hub = self.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = hub.store().record_connection_outcome(&id, &outcome) {
                tracing::warn!(error = %e, "could not record a connection's outcome");
            }
        });
    }

    /// The book the gateway's usage writer commits to.
    pub fn usage_book(&self) -> UsageBook {
        UsageBook {
            store: self.store().clone(),
            credits: self.credits().clone(),
            vault: self.inner.vault.clone(),
        }
    }
}
