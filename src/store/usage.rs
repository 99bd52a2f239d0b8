//! Usage records, the credit ledger and the daily rollups, written together.

use rusqlite::types::{ToSql, ToSqlOutput};
use rusqlite::{OptionalExtension, params, params_from_iter};

use super::{Result, Store, now_rfc3339};
use crate::ledger::{USAGE_COLUMNS, UsageRecord, UsageValue};
use crate::money::MicroUsd;

/// A call's request and response bodies as stored: sealed for the row `seal_id`, fields
/// `request` and `response`, and whether each was cut at the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBodies {
    pub seal_id: String,
    pub request: Option<Vec<u8>>,
    pub response: Option<Vec<u8>>,
    pub request_truncated: bool,
    pub response_truncated: bool,
}

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

/// `INSERT INTO usage_records (day, <every column but id>) VALUES (?1, …)`, built once.
fn insert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let columns = &USAGE_COLUMNS[1..];
        let marks: Vec<String> = (1..=columns.len() + 1).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO usage_records (day, {}) VALUES ({})",
            columns.join(", "),
            marks.join(", ")
        )
    })
}

impl Store {
    /// Writes a batch of usage records in one transaction: each row, its ledger charge when
    /// billed to credits, and the daily rollup (one update per day, app, provider, model and
    /// payer in the batch). Returns the new row ids in order.
    pub fn insert_usage_batch<'a>(
        &self,
        records: impl IntoIterator<Item = &'a UsageRecord>,
    ) -> Result<Vec<i64>> {
        let records = records.into_iter();
        let mut conn = self.usage_conn();
        let tx = conn.transaction()?;
        let mut ids = Vec::with_capacity(records.size_hint().0);
        {
            let mut insert = tx.prepare_cached(insert_sql())?;
            let mut charge = tx.prepare_cached(
                "INSERT INTO ledger (at, kind, amount_micro_usd, note, usage_id)
                 VALUES (?1, 'charge', ?2, ?3, ?4)",
            )?;
            let mut rollup = tx.prepare_cached(
                "INSERT INTO usage_daily (day, app_id, provider, model, billed_to, requests, errors,
                    input_tokens, output_tokens, cost_micro_usd)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (day, app_id, provider, model, billed_to) DO UPDATE SET
                    requests = requests + excluded.requests,
                    errors = errors + excluded.errors,
                    input_tokens = input_tokens + excluded.input_tokens,
                    output_tokens = output_tokens + excluded.output_tokens,
                    cost_micro_usd = cost_micro_usd + excluded.cost_micro_usd",
            )?;
            let mut daily = DailyTotals::default();
            for r in records {
                let started = r.started_at_text();
                // The UTC day is the stamp's first ten characters (`YYYY-MM-DD`).
                let day = started.get(..10).unwrap_or_default().to_string();
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
                daily.add(day, r);
                ids.push(id);
            }
            for (key, t) in &daily.rows {
                rollup.execute(params![
                    key.day,
                    key.app_id,
                    key.provider,
                    key.model,
                    key.billed_to,
                    t.requests,
                    t.errors,
                    t.input_tokens,
                    t.output_tokens,
                    t.cost,
                ])?;
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Stores sealed bodies for usage records already written, in one transaction.
    pub fn insert_bodies(&self, bodies: &[(i64, SealedBodies)]) -> Result<()> {
        if bodies.is_empty() {
            return Ok(());
        }
        let mut conn = self.usage_conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO request_bodies (usage_id, seal_id, started_at, request, response,
                    request_truncated, response_truncated)
                 SELECT id, ?2, started_at, ?3, ?4, ?5, ?6 FROM usage_records WHERE id = ?1",
            )?;
            for (id, b) in bodies {
                insert.execute(params![
                    id,
                    b.seal_id,
                    b.request,
                    b.response,
                    b.request_truncated,
                    b.response_truncated
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The sealed bodies of usage record `usage_id`, if they were kept.
    pub fn request_bodies(&self, usage_id: i64) -> Result<Option<SealedBodies>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT seal_id, request, response, request_truncated, response_truncated
                 FROM request_bodies WHERE usage_id = ?1",
                [usage_id],
                |r| {
                    Ok(SealedBodies {
                        seal_id: r.get(0)?,
                        request: r.get(1)?,
                        response: r.get(2)?,
                        request_truncated: r.get(3)?,
                        response_truncated: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Deletes bodies of calls that started before `cutoff` (RFC 3339); returns how many.
    pub fn delete_bodies_before(&self, cutoff: &str) -> Result<usize> {
        Ok(self
            .conn()
            .execute("DELETE FROM request_bodies WHERE started_at < ?1", [cutoff])?)
    }

    /// Deletes usage records (and their bodies) that started before `cutoff`. The daily
    /// totals and the ledger stay as they are: ledger lines only lose their link to the row.
    pub fn delete_usage_before(&self, cutoff: &str) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE ledger SET usage_id = NULL WHERE usage_id IN
                (SELECT id FROM usage_records WHERE started_at < ?1)",
            [cutoff],
        )?;
        tx.execute(
            "DELETE FROM request_bodies WHERE usage_id IN
                (SELECT id FROM usage_records WHERE started_at < ?1)",
            [cutoff],
        )?;
        let deleted = tx.execute("DELETE FROM usage_records WHERE started_at < ?1", [cutoff])?;
        tx.commit()?;
        Ok(deleted)
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

/// A batch's additions to the daily rollup, one row per key (a batch has few).
#[derive(Default)]
struct DailyTotals<'a> {
    rows: Vec<(DailyKey<'a>, DailySums)>,
}

#[derive(PartialEq, Eq)]
struct DailyKey<'a> {
    day: String,
    app_id: &'a str,
    provider: &'a str,
    model: &'a str,
    billed_to: &'a str,
}

#[derive(Default)]
struct DailySums {
    requests: i64,
    errors: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost: i64,
}

impl<'a> DailyTotals<'a> {
    fn add(&mut self, day: String, r: &'a UsageRecord) {
        let key = DailyKey {
            day,
            app_id: r.app_id.as_deref().unwrap_or(""),
            provider: r.provider.as_str(),
            model: r.model.as_deref().unwrap_or(""),
            billed_to: r.billed_to.as_str(),
        };
        let at = match self.rows.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                self.rows.push((key, DailySums::default()));
                self.rows.len() - 1
            }
        };
        let sums = &mut self.rows[at].1;
        sums.requests += 1;
        sums.errors += i64::from(r.status >= 400 || r.error_code.is_some());
        sums.input_tokens = sums.input_tokens.saturating_add(to_i64(r.input_tokens));
        sums.output_tokens = sums.output_tokens.saturating_add(to_i64(r.output_tokens));
        sums.cost = sums.cost.saturating_add(r.cost.map(|c| c.0).unwrap_or(0));
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
