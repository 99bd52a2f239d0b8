//! What can go wrong in a Hub service, in terms a caller can act on.

use std::time::Duration;

use crate::store::StoreError;
use crate::vault::VaultError;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("The Hub is locked. Unlock it with your passphrase.")]
    Locked,
    #[error("The Hub has no passphrase yet. Choose one on the setup page first.")]
    NotInitialized,
    #[error("This Hub already has a passphrase.")]
    AlreadyInitialized,
    #[error("That passphrase is not correct.")]
    WrongPassphrase,
    #[error("Too many wrong passphrases. Try again in {} s.", ceil_secs(*.retry_after))]
    Backoff { retry_after: Duration },
    #[error(
        "Setting up this Hub over the network needs the one-time setup token it printed on its \
         console when it started. Type it in the Setup token field."
    )]
    SetupToken,
    #[error("Sign in to the Hub first.")]
    Unauthenticated,
    #[error("{message}")]
    BadInput {
        field: &'static str,
        message: String,
    },
    #[error("{0} was not found.")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("Something went wrong inside the Hub: {0}")]
    Unexpected(String),
}

/// Whole seconds, rounded up and at least one, as `Retry-After` wants them.
pub fn ceil_secs(d: Duration) -> u64 {
    (d.as_millis().div_ceil(1000) as u64).max(1)
}

impl HubError {
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> HubError {
        HubError::BadInput {
            field,
            message: message.into(),
        }
    }
}

impl From<StoreError> for HubError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => HubError::NotFound("That record"),
            StoreError::Conflict(msg) => HubError::Conflict(msg),
            other => HubError::Unexpected(other.to_string()),
        }
    }
}

impl From<VaultError> for HubError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::WrongPassphrase => HubError::WrongPassphrase,
            other => HubError::Unexpected(other.to_string()),
        }
    }
}
