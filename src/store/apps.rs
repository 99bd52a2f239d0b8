//! Apps: their hashed keys, limits and per-provider connection bindings.

use rusqlite::{OptionalExtension, Row, params};

use super::{Result, Store, StoreError, now_rfc3339};
use crate::providers::Provider;

/// An app row with its bindings. The key is stored only as a SHA-256 of its secret.
#[derive(Debug, Clone)]
pub struct AppRow {
    pub id: String,
    pub name: String,
    pub key_prefix: String,
    pub published: bool,
    pub monthly_budget_micro_usd: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub created_at: String,
    /// Per provider: the bound connection id, or `None` for no access.
    pub bindings: [(Provider, Option<String>); 3],
}

impl AppRow {
    pub fn binding(&self, provider: Provider) -> Option<&str> {
        self.bindings
            .iter()
            .find(|(p, _)| *p == provider)
            .and_then(|(_, c)| c.as_deref())
    }
}

/// The editable fields of an app; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AppChanges {
    pub name: Option<String>,
    pub published: Option<bool>,
    pub monthly_budget_micro_usd: Option<Option<i64>>,
    pub rpm_limit: Option<Option<i64>>,
    pub tpm_limit: Option<Option<i64>>,
    pub bindings: Vec<(Provider, Option<String>)>,
}

const COLUMNS: &str = "id, name, key_prefix, published, monthly_budget_micro_usd, rpm_limit, \
    tpm_limit, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AppRow> {
    Ok(AppRow {
        id: r.get(0)?,
        name: r.get(1)?,
        key_prefix: r.get(2)?,
        published: r.get(3)?,
        monthly_budget_micro_usd: r.get(4)?,
        rpm_limit: r.get(5)?,
        tpm_limit: r.get(6)?,
        created_at: r.get(7)?,
        bindings: Provider::ALL.map(|p| (p, None)),
    })
}

impl Store {
    fn load_bindings(&self, conn: &rusqlite::Connection, app: &mut AppRow) -> Result<()> {
        let mut stmt = conn
            .prepare_cached("SELECT provider, connection_id FROM app_bindings WHERE app_id = ?1")?;
        let rows = stmt.query_map([&app.id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        for row in rows {
            let (provider, connection) = row?;
            if let Ok(p) = provider.parse::<Provider>() {
                if let Some(slot) = app.bindings.iter_mut().find(|(q, _)| *q == p) {
                    slot.1 = connection;
                }
            }
        }
        Ok(())
    }

    pub fn apps(&self) -> Result<Vec<AppRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM apps ORDER BY created_at, name"
        ))?;
        let mut apps = stmt
            .query_map([], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for app in &mut apps {
            self.load_bindings(&conn, app)?;
        }
        Ok(apps)
    }

    pub fn app(&self, id: &str) -> Result<AppRow> {
        let conn = self.conn();
        let mut app = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM apps WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?
            .ok_or(StoreError::NotFound)?;
        self.load_bindings(&conn, &mut app)?;
        Ok(app)
    }

    /// The stored hash of an app's key secret, for the gateway's key check.
    pub fn app_key_hash(&self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn()
            .query_row("SELECT key_hash FROM apps WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Creates an app with its key hash and bindings in one transaction.
    pub fn insert_app(
        &self,
        id: &str,
        name: &str,
        key_hash: &[u8],
        key_prefix: &str,
        changes: &AppChanges,
    ) -> Result<AppRow> {
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let now = now_rfc3339();
            tx.execute(
                "INSERT INTO apps (id, name, key_hash, key_prefix, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![id, name, key_hash, key_prefix, now],
            )?;
            apply_changes(&tx, id, changes)?;
            tx.commit()?;
        }
        self.app(id)
    }

    pub fn update_app(&self, id: &str, changes: &AppChanges) -> Result<AppRow> {
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let exists: Option<i64> = tx
                .query_row("SELECT 1 FROM apps WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            apply_changes(&tx, id, changes)?;
            tx.commit()?;
        }
        self.app(id)
    }

    pub fn replace_app_key(&self, id: &str, key_hash: &[u8], key_prefix: &str) -> Result<()> {
        let changed = self.conn().execute(
            "UPDATE apps SET key_hash = ?2, key_prefix = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, key_hash, key_prefix, now_rfc3339()],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// When each app last made a request, by app id (RFC 3339 UTC).
    pub fn apps_last_used(&self) -> Result<std::collections::HashMap<String, String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT app_id, MAX(started_at) FROM usage_records
             WHERE app_id IS NOT NULL GROUP BY app_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn delete_app(&self, id: &str) -> Result<()> {
        let changed = self
            .conn()
            .execute("DELETE FROM apps WHERE id = ?1", [id])?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Apps bound to a connection, as (id, name).
    pub fn apps_bound_to(&self, connection_id: &str) -> Result<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT a.id, a.name FROM apps a JOIN app_bindings b ON b.app_id = a.id
             WHERE b.connection_id = ?1 ORDER BY a.name",
        )?;
        let rows = stmt.query_map([connection_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn apply_changes(tx: &rusqlite::Transaction<'_>, id: &str, c: &AppChanges) -> Result<()> {
    let now = now_rfc3339();
    if let Some(name) = &c.name {
        tx.execute(
            "UPDATE apps SET name = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, name, now],
        )?;
    }
    if let Some(published) = c.published {
        tx.execute(
            "UPDATE apps SET published = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, published, now],
        )?;
    }
    if let Some(budget) = c.monthly_budget_micro_usd {
        tx.execute(
            "UPDATE apps SET monthly_budget_micro_usd = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, budget, now],
        )?;
    }
    if let Some(rpm) = c.rpm_limit {
        tx.execute(
            "UPDATE apps SET rpm_limit = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, rpm, now],
        )?;
    }
    if let Some(tpm) = c.tpm_limit {
        tx.execute(
            "UPDATE apps SET tpm_limit = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, tpm, now],
        )?;
    }
    for (provider, connection) in &c.bindings {
        tx.execute(
            "INSERT INTO app_bindings (app_id, provider, connection_id) VALUES (?1, ?2, ?3)
             ON CONFLICT (app_id, provider) DO UPDATE SET connection_id = excluded.connection_id",
            params![id, provider.as_str(), connection],
        )?;
    }
    Ok(())
}
