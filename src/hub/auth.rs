//! First-run setup, unlock with back-off, lock, passphrase change and browser sessions.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{Hub, HubError, Session, SessionId};
use crate::vault;

pub const MIN_PASSPHRASE_LEN: usize = 10;
const MAX_PASSPHRASE_LEN: usize = 1024;
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What `GET /api/v1/status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub initialized: bool,
    pub locked: bool,
    pub offline: bool,
    pub version: &'static str,
}

/// Serialises unlock attempts and spaces out failures: after the n-th wrong passphrase in
/// a row, the next attempt must wait 2^(n-1) seconds (capped at five minutes).
#[derive(Default)]
pub(super) struct UnlockThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    failures: u32,
    next_allowed: Option<Instant>,
}

impl ThrottleState {
    fn check(&self, now: Instant) -> Result<(), HubError> {
        match self.next_allowed {
            Some(at) if at > now => Err(HubError::Backoff {
                retry_after: (at - now).max(Duration::from_secs(1)),
            }),
            _ => Ok(()),
        }
    }

    fn record(&mut self, ok: bool, now: Instant) {
        if ok {
            *self = ThrottleState::default();
        } else {
            self.failures = self.failures.saturating_add(1);
            let delay = Duration::from_secs(1u64 << (self.failures - 1).min(16)).min(MAX_BACKOFF);
            self.next_allowed = Some(now + delay);
        }
    }
}

impl Hub {
    pub fn status(&self) -> Result<Status, HubError> {
        Ok(Status {
            initialized: self.store().vault_header()?.is_some(),
            locked: self.is_locked(),
            offline: self.config().offline,
            version: env!("CARGO_PKG_VERSION"),
        })
    }

    /// First run: creates the vault under `passphrase`, unlocks it and signs the caller in.
    /// Blocking (Argon2id): call from a blocking thread.
    pub fn setup(
        &self,
        passphrase: &SecretString,
        confirmation: Option<&SecretString>,
    ) -> Result<(SessionId, Session), HubError> {
        check_new_passphrase(passphrase, confirmation)?;
        let _one_at_a_time = self.inner.throttle.state.lock();
        if self.store().vault_header()?.is_some() {
            return Err(HubError::AlreadyInitialized);
        }
        let (header, unlocked) = vault::create(passphrase, self.config().kdf)?;
        self.store().create_vault_header(&header)?;
        self.set_vault(Some(Arc::new(unlocked)));
        tracing::info!("vault created and unlocked");
        self.inner.sessions.create()
    }

    /// Checks the passphrase, unlocks the vault if it is locked, and starts a session.
    /// Blocking (Argon2id): call from a blocking thread.
    pub fn sign_in(&self, passphrase: &SecretString) -> Result<(SessionId, Session), HubError> {
        let mut throttle = self
            .inner
            .throttle
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        throttle.check(Instant::now())?;
        let header = self
            .store()
            .vault_header()?
            .ok_or(HubError::NotInitialized)?;
        match vault::unlock(&header, passphrase) {
            Ok(unlocked) => {
                throttle.record(true, Instant::now());
                if self.is_locked() {
                    self.set_vault(Some(Arc::new(unlocked)));
                    tracing::info!("vault unlocked");
                }
                self.inner.sessions.create()
            }
            Err(vault::VaultError::WrongPassphrase) => {
                throttle.record(false, Instant::now());
                tracing::warn!(
                    failures = throttle.failures,
                    "unlock refused: wrong passphrase"
                );
                Err(HubError::WrongPassphrase)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Forgets the data key and ends every session.
    pub fn lock(&self) {
        self.set_vault(None);
        self.inner.sessions.end_all();
        tracing::info!("vault locked; all sessions ended");
    }

    /// Re-wraps the data key under a new passphrase in one transaction and ends every
    /// session. Blocking (Argon2id, twice).
    pub fn change_passphrase(
        &self,
        current: &SecretString,
        new: &SecretString,
        confirmation: Option<&SecretString>,
    ) -> Result<(), HubError> {
        check_new_passphrase(new, confirmation)?;
        let mut throttle = self
            .inner
            .throttle
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        throttle.check(Instant::now())?;
        let header = self
            .store()
            .vault_header()?
            .ok_or(HubError::NotInitialized)?;
        let unlocked = match vault::unlock(&header, current) {
            Ok(v) => v,
            Err(vault::VaultError::WrongPassphrase) => {
                throttle.record(false, Instant::now());
                return Err(HubError::WrongPassphrase);
            }
            Err(other) => return Err(other.into()),
        };
        throttle.record(true, Instant::now());
        let new_header = unlocked.wrap_for(new, self.config().kdf)?;
        self.store().replace_vault_header(&new_header)?;
        self.inner.sessions.end_all();
        tracing::info!("passphrase changed; all sessions ended");
        Ok(())
    }

    /// The session behind a cookie value, refreshed; `None` when unknown or expired.
    pub fn session(&self, id: &str) -> Option<(SessionId, Session)> {
        if self.is_locked() {
            return None;
        }
        self.inner.sessions.touch(id)
    }

    pub fn sign_out(&self, id: &str) {
        self.inner.sessions.end(id);
    }

    /// Headless start: a passphrase from the environment or a file creates the vault on the
    /// first start and unlocks it on every start.
    pub(super) fn headless_unlock(&self) -> Result<(), HubError> {
        let Some(passphrase) = self.config().passphrase.clone() else {
            return Ok(());
        };
        match self.store().vault_header()? {
            None => {
                check_new_passphrase(&passphrase, None)?;
                let (header, unlocked) = vault::create(&passphrase, self.config().kdf)?;
                self.store().create_vault_header(&header)?;
                self.set_vault(Some(Arc::new(unlocked)));
                tracing::info!("vault created and unlocked from the configured passphrase");
            }
            Some(header) => {
                let unlocked = vault::unlock(&header, &passphrase)?;
                self.set_vault(Some(Arc::new(unlocked)));
                tracing::info!("vault unlocked from the configured passphrase");
            }
        }
        Ok(())
    }
}

fn check_new_passphrase(
    passphrase: &SecretString,
    confirmation: Option<&SecretString>,
) -> Result<(), HubError> {
    let text = passphrase.expose_secret();
    let chars = text.chars().count();
    if chars < MIN_PASSPHRASE_LEN {
        return Err(HubError::bad_input(
            "passphrase",
            format!("Choose a passphrase of at least {MIN_PASSPHRASE_LEN} characters."),
        ));
    }
    if chars > MAX_PASSPHRASE_LEN {
        return Err(HubError::bad_input(
            "passphrase",
            format!("A passphrase can have at most {MAX_PASSPHRASE_LEN} characters."),
        ));
    }
    if let Some(again) = confirmation {
        if again.expose_secret() != text {
            return Err(HubError::bad_input(
                "confirm",
                "The two passphrases differ. Type the same passphrase twice.",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn back_off_grows_and_resets() {
        let mut t = ThrottleState::default();
        let now = Instant::now();
        assert!(t.check(now).is_ok());
        t.record(false, now);
        let Err(HubError::Backoff { retry_after }) = t.check(now) else {
            panic!("expected back-off")
        };
        assert_eq!(retry_after, Duration::from_secs(1));
        t.record(false, now);
        t.record(false, now);
        let Err(HubError::Backoff { retry_after }) = t.check(now) else {
            panic!("expected back-off")
        };
        assert_eq!(retry_after, Duration::from_secs(4));
        assert!(t.check(now + Duration::from_secs(5)).is_ok());
        t.record(true, now);
        assert!(t.check(now).is_ok());
    }

    #[test]
    fn new_passphrases_are_checked() {
        let short = SecretString::from("short".to_string());
        assert!(check_new_passphrase(&short, None).is_err());
        let ok = SecretString::from("long enough passphrase".to_string());
        let other = SecretString::from("another long passphrase".to_string());
        assert!(check_new_passphrase(&ok, Some(&ok)).is_ok());
        assert!(check_new_passphrase(&ok, Some(&other)).is_err());
    }
}
