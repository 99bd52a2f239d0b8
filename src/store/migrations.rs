//! The schema as an ordered, append-only list of migrations under `PRAGMA user_version`.
//! A migration that has shipped is never edited: changes are new entries at the end.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    // 1: the vault header and small settings.
    "CREATE TABLE vault (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        vault_id BLOB NOT NULL,
        kdf_salt BLOB NOT NULL,
        kdf_m_kib INTEGER NOT NULL,
        kdf_t INTEGER NOT NULL,
        kdf_p INTEGER NOT NULL,
        wrapped_dek BLOB NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 2: connections (one managed per provider, present and enabled from the start) and apps
    // with their per-provider bindings.
    "CREATE TABLE connections (
        id TEXT PRIMARY KEY,
        provider TEXT NOT NULL CHECK (provider IN ('openai', 'anthropic', 'gemini')),
        kind TEXT NOT NULL CHECK (kind IN ('managed', 'byok')),
        name TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        key_sealed BLOB,
        key_hint TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_verified_at TEXT,
        verified_models TEXT,
        last_error_code TEXT,
        last_error_detail TEXT,
        last_error_at TEXT
    );
    CREATE UNIQUE INDEX connections_name ON connections (provider, name);
    CREATE UNIQUE INDEX connections_one_managed ON connections (provider) WHERE kind = 'managed';
    INSERT INTO connections (id, provider, kind, name, created_at, updated_at) VALUES
        ('managed-openai', 'openai', 'managed', 'OpenAI', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
        ('managed-anthropic', 'anthropic', 'managed', 'Anthropic', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
        ('managed-gemini', 'gemini', 'managed', 'Google Gemini', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
    CREATE TABLE apps (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        key_hash BLOB NOT NULL,
        key_prefix TEXT NOT NULL,
        published INTEGER NOT NULL DEFAULT 0,
        monthly_budget_micro_usd INTEGER,
        rpm_limit INTEGER,
        tpm_limit INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    -- No foreign key to connections: a binding to a deleted connection must stay visible,
    -- so the gateway can answer connector_revoked instead of silently rebinding.
    CREATE TABLE app_bindings (
        app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
        provider TEXT NOT NULL CHECK (provider IN ('openai', 'anthropic', 'gemini')),
        connection_id TEXT,
        PRIMARY KEY (app_id, provider)
    );",
    // 3: usage records, the append-only credit ledger, and daily rollups for fast pages.
    "CREATE TABLE usage_records (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        day TEXT NOT NULL,
        app_id TEXT,
        connection_id TEXT,
        provider TEXT NOT NULL,
        model TEXT,
        endpoint TEXT NOT NULL,
        streamed INTEGER NOT NULL,
        status INTEGER NOT NULL,
        error_code TEXT,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        cached_input_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens INTEGER NOT NULL DEFAULT 0,
        cost_micro_usd INTEGER,
        billed_to TEXT NOT NULL CHECK (billed_to IN ('credits', 'provider')),
        estimated INTEGER NOT NULL DEFAULT 0,
        latency_ms INTEGER NOT NULL DEFAULT 0,
        ttfb_ms INTEGER
    );
    CREATE INDEX usage_by_time ON usage_records (started_at);
    CREATE INDEX usage_by_app ON usage_records (app_id, started_at);
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('grant', 'topup', 'charge', 'adjustment')),
        amount_micro_usd INTEGER NOT NULL,
        note TEXT,
        usage_id INTEGER REFERENCES usage_records (id)
    );
    INSERT INTO ledger (at, kind, amount_micro_usd, note)
        VALUES (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), 'grant', 5000000, 'Welcome credit');
    CREATE TABLE usage_daily (
        day TEXT NOT NULL,
        app_id TEXT NOT NULL DEFAULT '',
        provider TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        billed_to TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cost_micro_usd INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, app_id, provider, model, billed_to)
    );",
    // 4: usage records say which surface a call came through (the provider's native API or
    // the compatible one), and calls that cost nothing by nature are billed to 'none'. SQLite
    // cannot change a CHECK constraint, so the table is rebuilt (foreign keys are off while
    // migrations run, and checked after).
    "CREATE TABLE usage_records_v4 (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        day TEXT NOT NULL,
        app_id TEXT,
        connection_id TEXT,
        provider TEXT NOT NULL,
        model TEXT,
        endpoint TEXT NOT NULL,
        streamed INTEGER NOT NULL,
        status INTEGER NOT NULL,
        error_code TEXT,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        cached_input_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens INTEGER NOT NULL DEFAULT 0,
        cost_micro_usd INTEGER,
        billed_to TEXT NOT NULL CHECK (billed_to IN ('credits', 'provider', 'none')),
        estimated INTEGER NOT NULL DEFAULT 0,
        latency_ms INTEGER NOT NULL DEFAULT 0,
        ttfb_ms INTEGER,
        surface TEXT NOT NULL DEFAULT 'native' CHECK (surface IN ('native', 'compatible'))
    );
    INSERT INTO usage_records_v4 (id, started_at, day, app_id, connection_id, provider, model,
        endpoint, streamed, status, error_code, input_tokens, cached_input_tokens,
        cache_write_tokens, output_tokens, reasoning_tokens, cost_micro_usd, billed_to, estimated,
        latency_ms, ttfb_ms)
    SELECT id, started_at, day, app_id, connection_id, provider, model, endpoint, streamed,
        status, error_code, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens,
        reasoning_tokens, cost_micro_usd, billed_to, estimated, latency_ms, ttfb_ms
    FROM usage_records;
    DROP TABLE usage_records;
    ALTER TABLE usage_records_v4 RENAME TO usage_records;
    CREATE INDEX usage_by_time ON usage_records (started_at);
    CREATE INDEX usage_by_app ON usage_records (app_id, started_at);",
    // 5: request and response bodies, sealed with the vault's data key, kept for a while.
    "CREATE TABLE request_bodies (
        usage_id INTEGER PRIMARY KEY REFERENCES usage_records (id) ON DELETE CASCADE,
        seal_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        request BLOB,
        response BLOB,
        request_truncated INTEGER NOT NULL DEFAULT 0,
        response_truncated INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX request_bodies_by_time ON request_bodies (started_at);",
    // 6: what a request's page says of its trip upstream: how long it waited before being
    // sent, how many attempts it took (retries of rate limits), and the provider's request id.
    // Indexes let the request log's filters page newest first without sorting (an app's or a
    // surface's calls in id order) and find the failures and one error code.
    "ALTER TABLE usage_records ADD COLUMN queued_ms INTEGER;
    ALTER TABLE usage_records ADD COLUMN attempts INTEGER;
    ALTER TABLE usage_records ADD COLUMN provider_request_id TEXT;
    CREATE INDEX usage_by_app_id ON usage_records (app_id);
    CREATE INDEX usage_failed ON usage_records (started_at)
        WHERE status >= 400 OR error_code IS NOT NULL;
    CREATE INDEX usage_by_code ON usage_records (error_code, started_at)
        WHERE error_code IS NOT NULL;
    CREATE INDEX usage_by_surface ON usage_records (surface);",
    // 7: fewer index pages rewritten per call, each a page the log writes and the checkpointer
    // copies back. An app's rows in a time range come from the time index (or the app's rows
    // walked newest first), so the app-and-time index goes. Native calls, most of every log,
    // need no surface index: the compatible surface's rows keep one of their own.
    "DROP INDEX usage_by_app;
    DROP INDEX usage_by_surface;
    CREATE INDEX usage_compatible ON usage_records (surface) WHERE surface = 'compatible';",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies every migration the database has not seen, each in its own transaction.
pub fn apply(conn: &Connection, path: &Path) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    // A migration may rebuild a table others refer to; keys are checked once all have run.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let applied = apply_pending(conn, current, path);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    applied
}

fn apply_pending(conn: &Connection, current: i64, path: &Path) -> Result<()> {
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = broken {
            return Err(StoreError::Damaged {
                path: path.to_path_buf(),
                detail: format!("migration {version} left a broken reference in {table}"),
            });
        }
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}
