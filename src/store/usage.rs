//! Usage records, the credit ledger and the daily rollups, written together.

use rusqlite::types::{ToSql, ToSqlOutput};
use rusqlite::{params, params_from_iter};

use super::{Result, Store, now_rfc3339};
use crate::ledger::{USAGE_COLUMNS, UsageRecord, UsageValue};
use crate::money::MicroUsd;

impl ToSql for UsageValue<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            UsageValue::Int(n) => ToSqlOutput::from(*n),
            UsageValue::Text(t) => ToSqlOutput::from(*t),
            UsageValue::Owned(t) => ToSqlOutput::from(t.as_str()),
            UsageValue::Bool(b) => ToSqlOutput::from(*b),
            UsageValue::Null => ToSqlOutput::from(rusqlite::types::Null),
        })
    }
}

/// `INSERT INTO usage_records (day, <every column but id>) VALUES (?1, …)`.
fn insert_sql() -> String {
    let columns = &USAGE_COLUMNS[1..];
    let marks: Vec<String> = (1..=columns.len() + 1).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO usage_records (day, {}) VALUES ({})",
        columns.join(", "),
        marks.join(", ")
    )
}

impl Store {
    /// Writes a batch of usage records in one transaction: each row, its ledger charge when
    /// billed to credits, and the daily rollup. Returns the new row ids in order.
    pub fn insert_usage_batch(&self, records: &[UsageRecord]) -> Result<Vec<i64>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut ids = Vec::with_capacity(records.len());
        {
            let mut insert = tx.prepare_cached(&insert_sql())?;
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
                let started = r.started_at_text();
                let day = r.started_at.format("%Y-%m-%d").to_string();
                let values = r.values();
                insert.execute(params_from_iter(
                    std::iter::once(UsageValue::Text(&day)).chain(values.into_iter().skip(1)),
                ))?;
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
