//! Usage records, the credit ledger and the daily rollups, written together.

use rusqlite::params;

use super::{Result, Store, now_rfc3339};
use crate::ledger::NewUsage;
use crate::money::MicroUsd;

impl Store {
    /// Writes a batch of usage records in one transaction: each row, its ledger charge when
    /// billed to credits, and the daily rollup. Returns the new row ids in order.
    pub fn insert_usage_batch(&self, records: &[NewUsage]) -> Result<Vec<i64>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut ids = Vec::with_capacity(records.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO usage_records (started_at, day, app_id, connection_id, provider, model,
                    endpoint, streamed, status, error_code, input_tokens, cached_input_tokens,
                    cache_write_tokens, output_tokens, reasoning_tokens, cost_micro_usd, billed_to,
                    estimated, latency_ms, ttfb_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
            )?;
            let mut charge = tx.prepare_cached(
                "INSERT INTO ledger (at, kind, amount_micro_usd, note, usage_id)
                 VALUES (?1, 'charge', ?2, ?3, ?4)",
            )?;
            let mut rollup = tx.prepare_cached(
                "INSERT INTO usage_daily (day, app_id, provider, model, billed_to, requests, errors,
                    input_tokens, output_tokens, cost_micro_usd)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, ?9)
                 ON CONFLICT (day, app_id, provider, model, billed_to) DO UPDATE SET
                    requests = requests + 1,
                    errors = errors + excluded.errors,
                    input_tokens = input_tokens + excluded.input_tokens,
                    output_tokens = output_tokens + excluded.output_tokens,
                    cost_micro_usd = cost_micro_usd + excluded.cost_micro_usd",
            )?;
            for r in records {
                let started = r
                    .started_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let day = r.started_at.format("%Y-%m-%d").to_string();
                insert.execute(params![
                    started,
                    day,
                    r.app_id,
                    r.connection_id,
                    r.provider.as_str(),
                    r.model,
                    r.endpoint,
                    r.streamed,
                    r.status,
                    r.error_code,
                    to_i64(r.input_tokens),
                    to_i64(r.cached_input_tokens),
                    to_i64(r.cache_write_tokens),
                    to_i64(r.output_tokens),
                    to_i64(r.reasoning_tokens),
                    r.cost.map(|c| c.0),
                    r.billed_to.as_str(),
                    r.estimated,
                    to_i64(r.latency_ms),
                    r.ttfb_ms.map(to_i64),
                ])?;
                let id = tx.last_insert_rowid();
                let amount = r.charge();
                if amount > MicroUsd::ZERO {
                    let note = format!(
                        "{} {}",
                        r.provider.as_str(),
                        r.model.as_deref().unwrap_or("request")
                    );
                    charge.execute(params![started, -amount.0, note, id])?;
                }
                rollup.execute(params![
                    day,
                    r.app_id.as_deref().unwrap_or(""),
                    r.provider.as_str(),
                    r.model.as_deref().unwrap_or(""),
                    r.billed_to.as_str(),
                    i64::from(r.status >= 400),
                    to_i64(r.input_tokens),
                    to_i64(r.output_tokens),
                    r.cost.map(|c| c.0).unwrap_or(0),
                ])?;
                ids.push(id);
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// The credit balance: the sum of the append-only ledger.
    pub fn ledger_balance(&self) -> Result<MicroUsd> {
        let sum: i64 = self.conn().query_row(
            "SELECT COALESCE(SUM(amount_micro_usd), 0) FROM ledger",
            [],
            |r| r.get(0),
        )?;
        Ok(MicroUsd(sum))
    }

    /// Appends a top-up (or, with a negative amount and kind `adjustment`, a correction).
    pub fn append_ledger(&self, kind: &str, amount: MicroUsd, note: &str) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO ledger (at, kind, amount_micro_usd, note) VALUES (?1, ?2, ?3, ?4)",
            params![now_rfc3339(), kind, amount.0, note],
        )?;
        Ok(conn.last_insert_rowid())
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
