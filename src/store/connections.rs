//! Connections: managed and bring-your-own-key rows, their sealed keys and their last
//! verification outcome.

use rusqlite::{OptionalExtension, Row, params};

use super::{Result, Store, StoreError, now_rfc3339};
use crate::providers::Provider;

/// A connection row as stored. The sealed key never leaves the store except to be opened
/// by the vault.
#[derive(Debug, Clone)]
pub struct ConnectionRow {
    pub id: String,
    pub provider: Provider,
    pub managed: bool,
    pub name: String,
    pub enabled: bool,
    pub key_hint: Option<String>,
    pub has_key: bool,
    pub created_at: String,
    pub last_verified_at: Option<String>,
    pub verified_models: Option<Vec<String>>,
    pub last_error_code: Option<String>,
    pub last_error_detail: Option<String>,
    pub last_error_at: Option<String>,
}

const COLUMNS: &str = "id, provider, kind, name, enabled, key_hint, key_sealed IS NOT NULL, \
    created_at, last_verified_at, verified_models, last_error_code, last_error_detail, last_error_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ConnectionRow> {
    let provider: String = r.get(1)?;
    let models: Option<String> = r.get(9)?;
    Ok(ConnectionRow {
        id: r.get(0)?,
        provider: provider.parse().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Text,
                format!("unknown provider {provider}").into(),
            )
        })?,
        managed: r.get::<_, String>(2)? == "managed",
        name: r.get(3)?,
        enabled: r.get(4)?,
        key_hint: r.get(5)?,
        has_key: r.get(6)?,
        created_at: r.get(7)?,
        last_verified_at: r.get(8)?,
        verified_models: models.and_then(|m| serde_json::from_str(&m).ok()),
        last_error_code: r.get(10)?,
        last_error_detail: r.get(11)?,
        last_error_at: r.get(12)?,
    })
}

/// What a verification or a proxied call found out about a connection.
#[derive(Debug, Clone)]
pub enum Outcome {
    Verified {
        models: Vec<String>,
    },
    Failed {
        code: String,
        detail: String,
    },
    /// A later success through the gateway clears the last error.
    Succeeded,
}

impl Store {
    pub fn connections(&self) -> Result<Vec<ConnectionRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM connections ORDER BY provider, kind DESC, name COLLATE NOCASE"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn connection(&self, id: &str) -> Result<ConnectionRow> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {COLUMNS} FROM connections WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?
        .ok_or(StoreError::NotFound)
    }

    /// The sealed key of a connection, if it has one.
    pub fn connection_key(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let conn = self.conn();
        conn.query_row(
            "SELECT key_sealed FROM connections WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(StoreError::NotFound)
    }

    /// Adds a BYOK connection with its sealed key. Names are unique per provider.
    pub fn insert_connection(
        &self,
        id: &str,
        provider: Provider,
        name: &str,
        key_sealed: &[u8],
        key_hint: &str,
    ) -> Result<ConnectionRow> {
        let now = now_rfc3339();
        let result = self.conn().execute(
            "INSERT INTO connections (id, provider, kind, name, enabled, key_sealed, key_hint, created_at, updated_at)
             VALUES (?1, ?2, 'byok', ?3, 1, ?4, ?5, ?6, ?6)",
            params![id, provider.as_str(), name, key_sealed, key_hint, now],
        );
        map_unique(result, provider, name)?;
        self.connection(id)
    }

    pub fn rename_connection(&self, id: &str, provider: Provider, name: &str) -> Result<()> {
        let result = self.conn().execute(
            "UPDATE connections SET name = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, name, now_rfc3339()],
        );
        if map_unique(result, provider, name)? == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Replaces the sealed key (rotation, or a managed platform key); the id, name and
    /// bindings stay. The previous verification no longer applies.
    pub fn replace_connection_key(
        &self,
        id: &str,
        key_sealed: Option<&[u8]>,
        key_hint: Option<&str>,
    ) -> Result<()> {
        let changed = self.conn().execute(
            "UPDATE connections SET key_sealed = ?2, key_hint = ?3, updated_at = ?4,
                last_verified_at = NULL, verified_models = NULL,
                last_error_code = NULL, last_error_detail = NULL, last_error_at = NULL
             WHERE id = ?1",
            params![id, key_sealed, key_hint, now_rfc3339()],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        self.checkpoint_truncate()
    }

    pub fn set_connection_enabled(&self, id: &str, enabled: bool) -> Result<()> {
        let changed = self.conn().execute(
            "UPDATE connections SET enabled = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, enabled, now_rfc3339()],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Deletes a BYOK connection and its sealed key, then truncates the WAL so the key's
    /// bytes are gone from the log too (secure_delete zeroes the freed pages).
    pub fn delete_connection(&self, id: &str) -> Result<()> {
        let changed = self.conn().execute(
            "DELETE FROM connections WHERE id = ?1 AND kind = 'byok'",
            [id],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        self.checkpoint_truncate()
    }

    /// Records a verification or gateway outcome. Errors stay until a later success.
    pub fn record_connection_outcome(&self, id: &str, outcome: &Outcome) -> Result<()> {
        let now = now_rfc3339();
        let conn = self.conn();
        match outcome {
            Outcome::Verified { models } => conn.execute(
                "UPDATE connections SET last_verified_at = ?2, verified_models = ?3,
                    last_error_code = NULL, last_error_detail = NULL, last_error_at = NULL
                 WHERE id = ?1",
                params![id, now, serde_json::to_string(models).unwrap_or_default()],
            )?,
            Outcome::Failed { code, detail } => conn.execute(
                "UPDATE connections SET last_error_code = ?2, last_error_detail = ?3, last_error_at = ?4
                 WHERE id = ?1",
                params![id, code, detail, now],
            )?,
            Outcome::Succeeded => conn.execute(
                "UPDATE connections SET last_error_code = NULL, last_error_detail = NULL, last_error_at = NULL
                 WHERE id = ?1 AND last_error_code IS NOT NULL",
                params![id],
            )?,
        };
        Ok(())
    }
}

/// Turns a unique-index violation into a clear conflict.
fn map_unique(result: rusqlite::Result<usize>, provider: Provider, name: &str) -> Result<usize> {
    match result {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::Conflict(format!(
                "There is already a {} connection named “{name}”. Choose another name.",
                provider.display_name()
            )))
        }
        other => Ok(other?),
    }
}
