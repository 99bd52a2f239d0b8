//! The two primitives of the vault: Argon2id key derivation and XChaCha20-Poly1305 sealing.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{KEY_LEN, NONCE_LEN, TAG_LEN, VaultError};

/// Argon2id cost parameters, stored beside the salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum KdfParamsError {
    #[error("memory cost {0} KiB is outside {MIN_M_KIB}..={MAX_M_KIB} KiB")]
    Memory(u32),
    #[error("time cost {0} is outside 1..={MAX_T}")]
    Time(u32),
    #[error("parallelism {0} is outside 1..={MAX_P}")]
    Lanes(u32),
}

const MIN_M_KIB: u32 = 8;
/// 1 GiB: above this a header is treated as tampered, never honoured.
const MAX_M_KIB: u32 = 1024 * 1024;
const MAX_T: u32 = 16;
const MAX_P: u32 = 16;

impl KdfParams {
    /// The default for new vaults: 64 MiB, 3 passes, 4 lanes.
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 64 * 1024,
        t: 3,
        p: 4,
    };

    /// Cheap parameters for unit tests only.
    pub const TESTING: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    /// Refuses parameters a genuine vault never has, before any memory is reserved.
    pub fn check(&self) -> Result<(), KdfParamsError> {
        if !(MIN_M_KIB..=MAX_M_KIB).contains(&self.m_kib) || self.m_kib < 8 * self.p {
            return Err(KdfParamsError::Memory(self.m_kib));
        }
        if !(1..=MAX_T).contains(&self.t) {
            return Err(KdfParamsError::Time(self.t));
        }
        if !(1..=MAX_P).contains(&self.p) {
            return Err(KdfParamsError::Lanes(self.p));
        }
        Ok(())
    }
}

/// Derives the 32-byte key-encryption key from a passphrase.
pub fn derive_kek(
    passphrase: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    params.check()?;
    let argon = Params::new(params.m_kib, params.t, params.p, Some(KEY_LEN))
        .map_err(|e| VaultError::Kdf(e.to_string()))?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon)
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| VaultError::Kdf(e.to_string()))?;
    Ok(out)
}

/// Seals with a caller-chosen nonce; returns nonce ‖ ciphertext ‖ tag.
pub fn seal(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let body = encrypt(key, nonce, aad, plaintext)?;
    let mut out = Vec::with_capacity(NONCE_LEN + body.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens nonce ‖ ciphertext ‖ tag.
pub fn open(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(());
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    decrypt(key, nonce, aad, body)
}

fn cipher(key: &[u8; KEY_LEN]) -> Result<XChaCha20Poly1305, VaultError> {
    XChaCha20Poly1305::new_from_slice(key).map_err(|_| VaultError::Kdf("bad key length".into()))
}

fn encrypt(
    key: &[u8; KEY_LEN],
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let nonce = nonce.try_into().map_err(|_| VaultError::Random)?;
    cipher(key)?
        .encrypt(
            nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| VaultError::Random)
}

fn decrypt(
    key: &[u8; KEY_LEN],
    nonce: &[u8],
    aad: &[u8],
    body: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ()> {
    let nonce = nonce.try_into().map_err(|_| ())?;
    cipher(key)
        .map_err(|_| ())?
        .decrypt(nonce, Payload { msg: body, aad })
        .map(Zeroizing::new)
        .map_err(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    /// draft-irtf-cfrg-xchacha-03, Appendix A.3.1.
    #[test]
    fn xchacha20_poly1305_known_answer() {
        let key: [u8; 32] =
            unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
                .try_into()
                .unwrap();
        let nonce = unhex("404142434445464748494a4b4c4d4e4f5051525354555657");
        let aad = unhex("50515253c0c1c2c3c4c5c6c7");
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let expected = unhex(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb
             731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452
             2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
             21f9664c97637da9768812f615c68b13b52e
             c0875924c1c7987947deafd8780acf49",
        );
        let body = encrypt(&key, &nonce, &aad, plaintext).unwrap();
        assert_eq!(body, expected);
        let opened = decrypt(&key, &nonce, &aad, &body).unwrap();
        assert_eq!(opened.as_slice(), plaintext);
        assert!(decrypt(&key, &nonce, b"other aad", &body).is_err());
    }

    /// RFC 9106 §5.3: Argon2id with secret and associated data.
    #[test]
    fn argon2id_known_answer() {
        let params = argon2::ParamsBuilder::new()
            .m_cost(32)
            .t_cost(3)
            .p_cost(4)
            .output_len(32)
            .data(argon2::AssociatedData::new(&[4u8; 12]).unwrap())
            .build()
            .unwrap();
        let secret = [3u8; 8];
        let argon =
            Argon2::new_with_secret(&secret, Algorithm::Argon2id, Version::V0x13, params).unwrap();
        let mut out = [0u8; 32];
        argon
            .hash_password_into(&[1u8; 32], &[2u8; 16], &mut out)
            .unwrap();
        assert_eq!(
            hex::encode(out),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
    }

    #[test]
    fn parameter_bounds() {
        assert!(KdfParams::DEFAULT.check().is_ok());
        assert!(
            KdfParams {
                m_kib: 4 * 1024 * 1024,
                t: 3,
                p: 4
            }
            .check()
            .is_err()
        );
        assert!(
            KdfParams {
                m_kib: 65536,
                t: 0,
                p: 4
            }
            .check()
            .is_err()
        );
        assert!(
            KdfParams {
                m_kib: 65536,
                t: 3,
                p: 64
            }
            .check()
            .is_err()
        );
    }
}
