//! The vault header row and the settings table.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, now_rfc3339};
use crate::vault::{KdfParams, SALT_LEN, VAULT_ID_LEN, VaultHeader};

impl Store {
    /// The stored vault header, or `None` on a Hub that was never set up.
    pub fn vault_header(&self) -> Result<Option<VaultHeader>> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT vault_id, kdf_salt, kdf_m_kib, kdf_t, kdf_p, wrapped_dek FROM vault WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((vault_id, salt, m, t, p, wrapped_dek)) = row else {
            return Ok(None);
        };
        let bad = |what: &str| super::StoreError::Damaged {
            path: self.path.clone(),
            detail: format!("the vault record has an invalid {what}"),
        };
        let to_u32 = |v: i64, what: &str| u32::try_from(v).map_err(|_| bad(what));
        Ok(Some(VaultHeader {
            vault_id: <[u8; VAULT_ID_LEN]>::try_from(vault_id.as_slice())
                .map_err(|_| bad("vault id"))?,
            salt: <[u8; SALT_LEN]>::try_from(salt.as_slice()).map_err(|_| bad("salt"))?,
            params: KdfParams {
                m_kib: to_u32(m, "memory cost")?,
                t: to_u32(t, "time cost")?,
                p: to_u32(p, "parallelism")?,
            },
            wrapped_dek,
        }))
    }

    /// Stores the header of a new vault. Fails if one exists: a vault is created once.
    pub fn create_vault_header(&self, header: &VaultHeader) -> Result<()> {
        let now = now_rfc3339();
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT OR IGNORE INTO vault (id, vault_id, kdf_salt, kdf_m_kib, kdf_t, kdf_p, wrapped_dek, created_at, updated_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![
                header.vault_id.as_slice(),
                header.salt.as_slice(),
                header.params.m_kib,
                header.params.t,
                header.params.p,
                header.wrapped_dek,
                now
            ],
        )?;
        if inserted == 0 {
            return Err(super::StoreError::Conflict(
                "this Hub already has a passphrase".into(),
            ));
        }
        Ok(())
    }

    /// Replaces the wrapped data key, salt and parameters in one statement (one transaction),
    /// so an interrupted passphrase change leaves either the old or the new passphrase.
    pub fn replace_vault_header(&self, header: &VaultHeader) -> Result<()> {
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE vault SET kdf_salt = ?1, kdf_m_kib = ?2, kdf_t = ?3, kdf_p = ?4, wrapped_dek = ?5, updated_at = ?6
             WHERE id = 1 AND vault_id = ?7",
            params![
                header.salt.as_slice(),
                header.params.m_kib,
                header.params.t,
                header.params.p,
                header.wrapped_dek,
                now_rfc3339(),
                header.vault_id.as_slice()
            ],
        )?;
        if changed == 1 {
            Ok(())
        } else {
            Err(super::StoreError::NotFound)
        }
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}
