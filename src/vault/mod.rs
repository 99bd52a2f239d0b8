//! The vault: a passphrase-derived key (Argon2id) wraps a random data key, and the data key
//! seals every stored secret with XChaCha20-Poly1305, bound to its row and field.
//!
//! Nothing here touches the database or the network; the store keeps a [`VaultHeader`] and
//! the sealed bytes, and the rest of the Hub asks an [`UnlockedVault`] to seal and open.

mod crypto;

use std::fmt;

use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

pub use crypto::{KdfParams, KdfParamsError};

/// Length of the random id that names a vault in every ciphertext's associated data.
pub const VAULT_ID_LEN: usize = 16;
pub const SALT_LEN: usize = 16;
pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the passphrase is not correct")]
    WrongPassphrase,
    #[error("the stored vault parameters are not acceptable: {0}")]
    BadParams(#[from] KdfParamsError),
    #[error("a stored secret could not be opened (it was changed or moved to another record)")]
    Tampered,
    #[error("the system random number generator failed")]
    Random,
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

/// What the store keeps about the vault. Public values only: the DEK is wrapped.
#[derive(Clone, PartialEq, Eq)]
pub struct VaultHeader {
    pub vault_id: [u8; VAULT_ID_LEN],
    pub salt: [u8; SALT_LEN],
    pub params: KdfParams,
    /// nonce ‖ ciphertext ‖ tag of the data key under the passphrase key.
    pub wrapped_dek: Vec<u8>,
}

impl fmt::Debug for VaultHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultHeader")
            .field("vault_id", &hex::encode(self.vault_id))
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// The data key in memory: zeroized on drop, never printed.
pub struct UnlockedVault {
    vault_id: [u8; VAULT_ID_LEN],
    dek: SecretBox<[u8; KEY_LEN]>,
}

impl fmt::Debug for UnlockedVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnlockedVault { .. }")
    }
}

/// Creates a new vault under `passphrase`: a fresh vault id, salt and random data key.
pub fn create(
    passphrase: &SecretString,
    params: KdfParams,
) -> Result<(VaultHeader, UnlockedVault), VaultError> {
    let vault_id = random_array::<VAULT_ID_LEN>()?;
    let dek = boxed_key(|key| getrandom::fill(key).map_err(|_| VaultError::Random))?;
    let unlocked = UnlockedVault { vault_id, dek };
    let header = unlocked.wrap_for(passphrase, params)?;
    Ok((header, unlocked))
}

/// Derives the passphrase key and unwraps the data key. The parameters are checked before
/// anything is allocated, so a tampered header cannot make the Hub reserve gigabytes.
pub fn unlock(
    header: &VaultHeader,
    passphrase: &SecretString,
) -> Result<UnlockedVault, VaultError> {
    header.params.check()?;
    let kek = crypto::derive_kek(
        passphrase.expose_secret().as_bytes(),
        &header.salt,
        header.params,
    )?;
    let aad = wrap_aad(&header.vault_id);
    let dek_bytes =
        crypto::open(&kek, &aad, &header.wrapped_dek).map_err(|_| VaultError::WrongPassphrase)?;
    // Copied straight into its zeroized home on the heap: no stack copy of the data key.
    let dek = boxed_key(|key| {
        if dek_bytes.len() != KEY_LEN {
            return Err(VaultError::WrongPassphrase);
        }
        key.copy_from_slice(&dek_bytes);
        Ok(())
    })?;
    Ok(UnlockedVault {
        vault_id: header.vault_id,
        dek,
    })
}

impl UnlockedVault {
    /// Wraps this data key under a (new) passphrase with a fresh salt: the header to store
    /// when the passphrase changes. Sealed secrets stay valid.
    pub fn wrap_for(
        &self,
        passphrase: &SecretString,
        params: KdfParams,
    ) -> Result<VaultHeader, VaultError> {
        params.check()?;
        let salt = random_array::<SALT_LEN>()?;
        let kek = crypto::derive_kek(passphrase.expose_secret().as_bytes(), &salt, params)?;
        let nonce = random_array::<NONCE_LEN>()?;
        let wrapped_dek = crypto::seal(
            &kek,
            &nonce,
            &wrap_aad(&self.vault_id),
            self.dek.expose_secret(),
        )?;
        Ok(VaultHeader {
            vault_id: self.vault_id,
            salt,
            params,
            wrapped_dek,
        })
    }

    /// Seals `plaintext` for the record `row_id`, field `field`.
    pub fn seal(&self, row_id: &str, field: &str, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        self.seal_with_nonce(&random_array::<NONCE_LEN>()?, row_id, field, plaintext)
    }

    /// The same, with a fresh random `nonce` the caller drew (with others, in one draw).
    pub fn seal_with_nonce(
        &self,
        nonce: &[u8; NONCE_LEN],
        row_id: &str,
        field: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        crypto::seal(
            self.dek.expose_secret(),
            nonce,
            &secret_aad(&self.vault_id, row_id, field),
            plaintext,
        )
    }

    /// Opens a secret sealed for exactly this record and field.
    pub fn open(
        &self,
        row_id: &str,
        field: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        crypto::open(
            self.dek.expose_secret(),
            &secret_aad(&self.vault_id, row_id, field),
            sealed,
        )
        .map_err(|_| VaultError::Tampered)
    }

    /// Opens a sealed UTF-8 secret, such as a provider key.
    pub fn open_string(
        &self,
        row_id: &str,
        field: &str,
        sealed: &[u8],
    ) -> Result<SecretString, VaultError> {
        let bytes = self.open(row_id, field, sealed)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::Tampered)?;
        Ok(SecretString::from(text.to_owned()))
    }
}

fn wrap_aad(vault_id: &[u8; VAULT_ID_LEN]) -> Vec<u8> {
    format!("workshop-hub/v1/dek/{}", hex::encode(vault_id)).into_bytes()
}

fn secret_aad(vault_id: &[u8; VAULT_ID_LEN], row_id: &str, field: &str) -> Vec<u8> {
    format!(
        "workshop-hub/v1/secret/{}/{}/{}",
        hex::encode(vault_id),
        row_id.len(),
        row_id
    )
    .into_bytes()
    .into_iter()
    .chain(format!("/{field}").into_bytes())
    .collect()
}

/// A data key filled in place on the heap (zeroized on drop), so no copy of it is left on
/// the stack.
fn boxed_key(
    fill: impl FnOnce(&mut [u8; KEY_LEN]) -> Result<(), VaultError>,
) -> Result<SecretBox<[u8; KEY_LEN]>, VaultError> {
    let mut result = Ok(());
    let key = SecretBox::init_with_mut(|key: &mut [u8; KEY_LEN]| result = fill(key));
    result.map(|()| key)
}

/// Fills an array from the operating system's random source.
pub fn random_array<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| VaultError::Random)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn pass(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn create_unlock_seal_open() {
        let (header, vault) = create(&pass("correct horse battery"), KdfParams::TESTING).unwrap();
        let sealed = vault
            .seal("conn_1", "api_key", b"sk-proj-test-abc")
            .unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"sk-proj-"));
        let again = unlock(&header, &pass("correct horse battery")).unwrap();
        assert_eq!(
            again.open("conn_1", "api_key", &sealed).unwrap().as_slice(),
            b"sk-proj-test-abc"
        );
    }

    #[test]
    fn wrong_passphrase_fails_the_tag() {
        let (header, _) = create(&pass("correct horse battery"), KdfParams::TESTING).unwrap();
        assert!(matches!(
            unlock(&header, &pass("wrong horse battery")),
            Err(VaultError::WrongPassphrase)
        ));
    }

    #[test]
    fn ciphertext_moved_to_another_row_or_field_fails() {
        let (_, vault) = create(&pass("correct horse battery"), KdfParams::TESTING).unwrap();
        let sealed = vault.seal("conn_1", "api_key", b"secret").unwrap();
        assert!(matches!(
            vault.open("conn_2", "api_key", &sealed),
            Err(VaultError::Tampered)
        ));
        assert!(matches!(
            vault.open("conn_1", "other", &sealed),
            Err(VaultError::Tampered)
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(vault.open("conn_1", "api_key", &flipped).is_err());
    }

    #[test]
    fn a_secret_from_another_vault_does_not_open() {
        let (_, a) = create(&pass("first passphrase"), KdfParams::TESTING).unwrap();
        let (_, b) = create(&pass("second passphrase"), KdfParams::TESTING).unwrap();
        let sealed = a.seal("row", "api_key", b"secret").unwrap();
        assert!(b.open("row", "api_key", &sealed).is_err());
    }

    #[test]
    fn rewrap_changes_the_passphrase_and_keeps_secrets() {
        let (_, vault) = create(&pass("old passphrase"), KdfParams::TESTING).unwrap();
        let sealed = vault.seal("row", "api_key", b"secret").unwrap();
        let header = vault
            .wrap_for(&pass("new passphrase"), KdfParams::TESTING)
            .unwrap();
        assert!(unlock(&header, &pass("old passphrase")).is_err());
        let reopened = unlock(&header, &pass("new passphrase")).unwrap();
        assert_eq!(
            reopened.open("row", "api_key", &sealed).unwrap().as_slice(),
            b"secret"
        );
    }

    #[test]
    fn tampered_parameters_are_refused_before_deriving() {
        let (mut header, _) = create(&pass("correct horse battery"), KdfParams::TESTING).unwrap();
        header.params = KdfParams {
            m_kib: 64 * 1024 * 1024,
            t: 3,
            p: 4,
        };
        let started = std::time::Instant::now();
        assert!(matches!(
            unlock(&header, &pass("correct horse battery")),
            Err(VaultError::BadParams(_))
        ));
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
        header.params = KdfParams {
            m_kib: 65536,
            t: 1_000_000,
            p: 4,
        };
        assert!(matches!(
            unlock(&header, &pass("correct horse battery")),
            Err(VaultError::BadParams(_))
        ));
    }

    #[test]
    fn debug_output_reveals_nothing() {
        let (header, vault) = create(&pass("correct horse battery"), KdfParams::TESTING).unwrap();
        assert_eq!(format!("{vault:?}"), "UnlockedVault { .. }");
        let shown = format!("{header:?}");
        assert!(!shown.contains(&hex::encode(&header.wrapped_dek)));
    }
}
