//! The read side of usage and credits: ledger history, aggregates from the daily rollups,
//! recent usage rows with cursor paging, month spend for budgets, and which connections
//! can reach a provider's models.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, params};

use super::filter::Source;
use super::{Result, Store, StoreError, UsageFilter};
use crate::ledger::{BilledTo, Surface, USAGE_COLUMNS, UsageRecord};
use crate::money::MicroUsd;

/// One line of the credit ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub amount: MicroUsd,
    pub note: Option<String>,
    pub usage_id: Option<i64>,
}

/// What usage is grouped by. Rollups are keyed by UTC day, so every range is whole days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    App,
    Provider,
    Model,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::App => "app",
            GroupBy::Provider => "provider",
            GroupBy::Model => "model",
        }
    }

    /// The columns selected as (key, second key); `''` where there is none.
    fn key_columns(self, source: &Source) -> (&'static str, &'static str) {
        match self {
            GroupBy::Day => ("d.day", "''"),
            GroupBy::App => (source.app, "''"),
            GroupBy::Provider => ("d.provider", "''"),
            GroupBy::Model => ("d.provider", source.model),
        }
    }
}

/// Totals of one group of usage over a range of days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageAggregate {
    /// The day, app id, or provider grouped by; the provider when grouped by model.
    pub key: String,
    /// The model when grouped by model; empty otherwise.
    pub sub_key: String,
    /// The app's name when grouped by app and the app still exists.
    pub app_name: Option<String>,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Cost of requests billed to the Hub's credits.
    pub credits: MicroUsd,
    /// Estimated cost of requests the provider bills directly (BYOK).
    pub provider: MicroUsd,
}

impl UsageAggregate {
    pub fn total_cost(&self) -> MicroUsd {
        self.credits + self.provider
    }
}

/// A whole-day range, both ends included, as `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRange {
    pub from: String,
    pub to: String,
}

/// Totals over filtered usage records: requests, failures, tokens and spend by who bills it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UsageTotals {
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    #[serde(rename = "credits_micro_usd")]
    pub credits: MicroUsd,
    #[serde(rename = "provider_micro_usd")]
    pub provider: MicroUsd,
}

/// What one app spent in a month, split by who bills it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonthSpend {
    pub credits: MicroUsd,
    pub provider: MicroUsd,
}

impl MonthSpend {
    pub fn total(&self) -> MicroUsd {
        self.credits + self.provider
    }
}

/// A connection as far as model reachability is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionReach {
    pub id: String,
    pub provider: String,
    pub kind: String,
    pub name: String,
    pub enabled: bool,
    /// The models a verification listed, when one has run (a JSON list in the table).
    pub verified_models: Option<Vec<String>>,
}

impl Store {
    /// Ledger lines newest first, `limit` of them, older than the `before` id when given.
    pub fn ledger_page(&self, before: Option<i64>, limit: usize) -> Result<Vec<LedgerEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, kind, amount_micro_usd, note, usage_id FROM ledger
             WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![cursor_bound(before), sql_limit(limit)], |r| {
            Ok(LedgerEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                kind: r.get(2)?,
                amount: MicroUsd(r.get(3)?),
                note: r.get(4)?,
                usage_id: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Usage totals over the calls that pass `filter`, grouped as asked. Days come in order;
    /// other groups by total cost, largest first.
    pub fn usage_aggregates(
        &self,
        filter: &UsageFilter,
        group: GroupBy,
    ) -> Result<Vec<UsageAggregate>> {
        let source = filter.source();
        let (key, sub_key) = group.key_columns(&source);
        let order = match group {
            GroupBy::Day => "k",
            _ => "SUM(COALESCE(d.cost_micro_usd, 0)) DESC, k, sk",
        };
        let sql = format!(
            "SELECT {key} AS k, {sub_key} AS sk, MAX(a.name),
                {}, {}, SUM(d.input_tokens), SUM(d.output_tokens),
                COALESCE(SUM(CASE WHEN d.billed_to = 'credits' THEN d.cost_micro_usd END), 0),
                COALESCE(SUM(CASE WHEN d.billed_to = 'provider' THEN d.cost_micro_usd END), 0)
             FROM {} d LEFT JOIN apps a ON a.id = d.app_id
             WHERE 1 = 1{}
             GROUP BY k, sk
             ORDER BY {order}",
            source.requests, source.errors, source.table, source.conditions
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(source.values), |r| {
            Ok(UsageAggregate {
                key: r.get(0)?,
                sub_key: r.get(1)?,
                app_name: r.get(2)?,
                requests: r.get(3)?,
                errors: r.get(4)?,
                input_tokens: r.get(5)?,
                output_tokens: r.get(6)?,
                credits: MicroUsd(r.get(7)?),
                provider: MicroUsd(r.get(8)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Total cost per (day, provider) of the calls that pass `filter`, both billings
    /// together: the chart's data.
    pub fn daily_cost_by_provider(
        &self,
        filter: &UsageFilter,
    ) -> Result<Vec<(String, String, MicroUsd)>> {
        let source = filter.source();
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT d.day, d.provider, COALESCE(SUM(d.cost_micro_usd), 0) FROM {} d
             WHERE 1 = 1{} GROUP BY d.day, d.provider ORDER BY d.day, d.provider",
            source.table, source.conditions
        ))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(source.values), |r| {
            Ok((r.get(0)?, r.get(1)?, MicroUsd(r.get(2)?)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Usage rows that pass `filter`, newest first, `limit` of them, older than the `before`
    /// id when given. Paging by id returns every row exactly once even while new rows arrive.
    pub fn usage_page(
        &self,
        filter: &UsageFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<UsageRecord>> {
        let (conditions, mut values) = filter.paging_conditions();
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&page_sql(&conditions))?;
        values.insert(0, Value::Integer(cursor_bound(before)));
        values.push(Value::Integer(sql_limit(limit)));
        let rows = stmt.query_map(rusqlite::params_from_iter(values), usage_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One usage record by id.
    pub fn usage_record(&self, id: i64) -> Result<UsageRecord> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM usage_records WHERE id = ?1",
            USAGE_COLUMNS.join(", ")
        ))?;
        stmt.query_row([id], usage_row)
            .optional()?
            .ok_or(StoreError::NotFound)
    }

    /// Totals over the calls that pass `filter`, from the rollups when they can answer it.
    pub fn usage_totals(&self, filter: &UsageFilter) -> Result<UsageTotals> {
        let source = filter.source();
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT COALESCE({}, 0), COALESCE({}, 0),
                COALESCE(SUM(d.input_tokens), 0), COALESCE(SUM(d.output_tokens), 0),
                COALESCE(SUM(CASE WHEN d.billed_to = 'credits' THEN d.cost_micro_usd END), 0),
                COALESCE(SUM(CASE WHEN d.billed_to = 'provider' THEN d.cost_micro_usd END), 0)
             FROM {} d WHERE 1 = 1{}",
            source.requests, source.errors, source.table, source.conditions
        ))?;
        let totals = stmt.query_row(rusqlite::params_from_iter(source.values), |r| {
            Ok(UsageTotals {
                requests: r.get(0)?,
                errors: r.get(1)?,
                input_tokens: r.get(2)?,
                output_tokens: r.get(3)?,
                credits: MicroUsd(r.get(4)?),
                provider: MicroUsd(r.get(5)?),
            })
        })?;
        Ok(totals)
    }

    /// Whether any usage was ever recorded (cheap: one index probe).
    pub fn has_usage(&self) -> Result<bool> {
        let found: Option<i64> =
            self.conn()
                .query_row("SELECT MAX(id) FROM usage_records", [], |r| r.get(0))?;
        Ok(found.is_some())
    }

    /// What `app_id` spent over `range` (for budgets: the current month so far), from the
    /// daily rollups.
    pub fn app_spend(&self, app_id: &str, range: &DayRange) -> Result<MonthSpend> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT
                COALESCE(SUM(CASE WHEN billed_to = 'credits' THEN cost_micro_usd END), 0),
                COALESCE(SUM(CASE WHEN billed_to = 'provider' THEN cost_micro_usd END), 0)
             FROM usage_daily WHERE app_id = ?1 AND day >= ?2 AND day <= ?3",
        )?;
        let spend = stmt.query_row(params![app_id, range.from, range.to], |r| {
            Ok(MonthSpend {
                credits: MicroUsd(r.get(0)?),
                provider: MicroUsd(r.get(1)?),
            })
        })?;
        Ok(spend)
    }

    /// App names by id, for labelling usage.
    pub fn app_names(&self) -> Result<HashMap<String, String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT id, name FROM apps")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every connection with what decides which models it reaches.
    pub fn connection_reach(&self) -> Result<Vec<ConnectionReach>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, provider, kind, name, enabled, verified_models FROM connections
             ORDER BY provider, kind DESC, name",
        )?;
        let rows = stmt.query_map([], |r| {
            let verified: Option<String> = r.get(5)?;
            Ok(ConnectionReach {
                id: r.get(0)?,
                provider: r.get(1)?,
                kind: r.get(2)?,
                name: r.get(3)?,
                enabled: r.get(4)?,
                verified_models: verified.and_then(|v| serde_json::from_str(&v).ok()),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A usage record from a row selected with [`USAGE_COLUMNS`], in their order.
fn usage_row(r: &Row<'_>) -> rusqlite::Result<UsageRecord> {
    let provider: String = r.get(4)?;
    let billed_to: String = r.get(16)?;
    let started_at: String = r.get(1)?;
    let surface: String = r.get(20)?;
    Ok(UsageRecord {
        id: r.get(0)?,
        started_at: chrono::DateTime::parse_from_rfc3339(&started_at)
            .map_err(|e| conversion(1, e))?
            .with_timezone(&chrono::Utc),
        app_id: r.get(2)?,
        connection_id: r.get(3)?,
        provider: provider.parse().map_err(|e| conversion(4, e))?,
        model: r.get(5)?,
        endpoint: r.get(6)?,
        streamed: r.get(7)?,
        status: r.get(8)?,
        error_code: r.get(9)?,
        input_tokens: unsigned(r.get(10)?),
        cached_input_tokens: unsigned(r.get(11)?),
        cache_write_tokens: unsigned(r.get(12)?),
        output_tokens: unsigned(r.get(13)?),
        reasoning_tokens: unsigned(r.get(14)?),
        cost: r.get::<_, Option<i64>>(15)?.map(MicroUsd),
        billed_to: BilledTo::parse(&billed_to)
            .ok_or_else(|| conversion(16, format!("unknown billed_to {billed_to}")))?,
        estimated: r.get(17)?,
        latency_ms: unsigned(r.get(18)?),
        ttfb_ms: r.get::<_, Option<i64>>(19)?.map(unsigned),
        surface: Surface::parse(&surface)
            .ok_or_else(|| conversion(20, format!("unknown surface {surface}")))?,
        queued_ms: r.get::<_, Option<i64>>(21)?.map(unsigned),
        attempts: r
            .get::<_, Option<i64>>(22)?
            .map(|a| u32::try_from(a).unwrap_or(0)),
        provider_request_id: r.get(23)?,
    })
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn conversion(
    column: usize,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, e.into())
}

/// A cursor as an exclusive upper bound on ids; no cursor means from the newest.
fn cursor_bound(before: Option<i64>) -> i64 {
    before.unwrap_or(i64::MAX)
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A page of usage rows under `conditions` (from [`UsageFilter::paging_conditions`]).
fn page_sql(conditions: &str) -> String {
    format!(
        "SELECT {} FROM usage_records WHERE id < ?{conditions} ORDER BY id DESC LIMIT ?",
        USAGE_COLUMNS.join(", ")
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::ledger::{BilledTo, UsageRecord};
    use crate::providers::Provider;

    /// How SQLite would read a page of the request log under `filter`.
    fn page_plan(store: &Store, filter: &UsageFilter) -> String {
        let (conditions, mut values) = filter.paging_conditions();
        values.insert(0, rusqlite::types::Value::Integer(i64::MAX));
        values.push(rusqlite::types::Value::Integer(50));
        let conn = store.conn();
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", page_sql(&conditions)))
            .unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values), |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("; ")
    }

    #[test]
    fn the_request_log_pages_an_app_or_the_compatible_surface_through_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let app = UsageFilter {
            app: Some("app-1".into()),
            ..UsageFilter::default()
        };
        let plan = page_plan(&store, &app);
        assert!(plan.contains("usage_by_app_id"), "{plan}");
        let compatible = UsageFilter {
            surface: Some(crate::ledger::Surface::Compatible),
            ..UsageFilter::default()
        };
        let plan = page_plan(&store, &compatible);
        assert!(plan.contains("usage_compatible"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    struct R<'a> {
        at: &'a str,
        app: Option<&'a str>,
        provider: Provider,
        model: &'a str,
        billed: BilledTo,
        cost: i64,
        status: u16,
        input: u64,
        output: u64,
    }

    fn record(r: R<'_>) -> UsageRecord {
        UsageRecord {
            id: 0,
            started_at: at(r.at),
            app_id: r.app.map(str::to_string),
            connection_id: Some(format!("managed-{}", r.provider)),
            provider: r.provider,
            model: Some(r.model.to_string()),
            endpoint: "/v1/chat/completions".into(),
            streamed: false,
            status: r.status,
            error_code: (r.status >= 400).then(|| "rate_limit_exceeded".to_string()),
            input_tokens: r.input,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: r.output,
            reasoning_tokens: 0,
            cost: Some(MicroUsd(r.cost)),
            billed_to: r.billed,
            estimated: false,
            latency_ms: 100,
            ttfb_ms: Some(40),
            surface: crate::ledger::Surface::Native,
            queued_ms: None,
            attempts: None,
            provider_request_id: None,
        }
    }

    /// Five records over two days, two apps, two providers, both billings, one error.
    fn seeded() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let base = R {
            at: "2025-03-01T10:00:00Z",
            app: Some("app-a"),
            provider: Provider::OpenAi,
            model: "gpt-4o-mini",
            billed: BilledTo::Credits,
            cost: 100,
            status: 200,
            input: 10,
            output: 5,
        };
        store
            .insert_usage_batch(&[
                record(R { ..base }),
                record(R {
                    at: "2025-03-01T23:59:59Z",
                    cost: 250,
                    input: 20,
                    output: 7,
                    ..base
                }),
                record(R {
                    at: "2025-03-02T00:00:00Z",
                    app: Some("app-b"),
                    provider: Provider::Anthropic,
                    model: "claude-haiku-4-5",
                    cost: 1_000,
                    input: 100,
                    output: 50,
                    ..base
                }),
                record(R {
                    at: "2025-03-02T08:00:00Z",
                    app: Some("app-b"),
                    billed: BilledTo::Provider,
                    cost: 40,
                    input: 3,
                    output: 1,
                    ..base
                }),
                record(R {
                    at: "2025-03-02T09:00:00Z",
                    app: None,
                    status: 429,
                    cost: 0,
                    input: 0,
                    output: 0,
                    ..base
                }),
            ])
            .unwrap();
        (dir, store)
    }

    /// A daily rollup row: day, app, billed to, requests, errors, input, output, cost.
    type DailyRow = (String, String, String, i64, i64, i64, i64, i64);

    fn daily_rows(store: &Store) -> Vec<DailyRow> {
        let conn = store.conn();
        let mut stmt = conn
            .prepare(
                "SELECT day, app_id, billed_to, requests, errors, input_tokens, output_tokens,
                    cost_micro_usd FROM usage_daily ORDER BY day, app_id, billed_to",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn a_batch_adds_each_daily_row_once_with_all_its_records() {
        let (_dir, store) = seeded();
        let s = |v: &str| v.to_string();
        let first = (s("2025-03-01"), s("app-a"), s("credits"), 2, 0, 30, 12, 350);
        assert_eq!(
            daily_rows(&store)[0],
            first,
            "two records of one batch, one row"
        );
        assert_eq!(daily_rows(&store).len(), 4);
        let again = R {
            at: "2025-03-01T12:00:00Z",
            app: Some("app-a"),
            provider: Provider::OpenAi,
            model: "gpt-4o-mini",
            billed: BilledTo::Credits,
            cost: 1,
            status: 500,
            input: 1,
            output: 1,
        };
        store.insert_usage_batch(&[record(again)]).unwrap();
        assert_eq!(
            daily_rows(&store)[0],
            (s("2025-03-01"), s("app-a"), s("credits"), 3, 1, 31, 13, 351),
            "a later batch adds to the same row"
        );
    }

    fn range(from: &str, to: &str) -> DayRange {
        DayRange {
            from: from.into(),
            to: to.into(),
        }
    }

    /// Whole UTC days, both ends included.
    fn days(from: &str, last: &str) -> UsageFilter {
        let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        UsageFilter::whole_days(day(from), day(last))
    }

    /// (key, sub_key, requests, errors, input, output, credits, provider)
    type Flat = (String, String, i64, i64, i64, i64, i64, i64);

    fn flat(rows: &[UsageAggregate]) -> Vec<Flat> {
        rows.iter()
            .map(|a| {
                (
                    a.key.clone(),
                    a.sub_key.clone(),
                    a.requests,
                    a.errors,
                    a.input_tokens,
                    a.output_tokens,
                    a.credits.0,
                    a.provider.0,
                )
            })
            .collect()
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn aggregates_by_day() {
        let (_d, store) = seeded();
        let rows = store
            .usage_aggregates(&days("2025-03-01", "2025-03-02"), GroupBy::Day)
            .unwrap();
        assert_eq!(
            flat(&rows),
            vec![
                (s("2025-03-01"), s(""), 2, 0, 30, 12, 350, 0),
                (s("2025-03-02"), s(""), 3, 1, 103, 51, 1_000, 40),
            ]
        );
        // Ranges are whole days, both ends included.
        let one = store
            .usage_aggregates(&days("2025-03-02", "2025-03-02"), GroupBy::Day)
            .unwrap();
        assert_eq!(one.len(), 1);
        assert!(
            store
                .usage_aggregates(&days("2025-03-03", "2025-03-31"), GroupBy::Day)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn aggregates_by_app_provider_and_model() {
        let (_d, store) = seeded();
        let r = days("2025-03-01", "2025-03-02");
        assert_eq!(
            flat(&store.usage_aggregates(&r, GroupBy::App).unwrap()),
            vec![
                (s("app-b"), s(""), 2, 0, 103, 51, 1_000, 40),
                (s("app-a"), s(""), 2, 0, 30, 12, 350, 0),
                (s(""), s(""), 1, 1, 0, 0, 0, 0),
            ]
        );
        assert_eq!(
            flat(&store.usage_aggregates(&r, GroupBy::Provider).unwrap()),
            vec![
                (s("anthropic"), s(""), 1, 0, 100, 50, 1_000, 0),
                (s("openai"), s(""), 4, 1, 33, 13, 350, 40),
            ]
        );
        assert_eq!(
            flat(&store.usage_aggregates(&r, GroupBy::Model).unwrap()),
            vec![
                (
                    s("anthropic"),
                    s("claude-haiku-4-5"),
                    1,
                    0,
                    100,
                    50,
                    1_000,
                    0
                ),
                (s("openai"), s("gpt-4o-mini"), 4, 1, 33, 13, 350, 40),
            ]
        );
        let chart = store.daily_cost_by_provider(&r).unwrap();
        assert_eq!(
            chart,
            vec![
                (s("2025-03-01"), s("openai"), MicroUsd(350)),
                (s("2025-03-02"), s("anthropic"), MicroUsd(1_000)),
                (s("2025-03-02"), s("openai"), MicroUsd(40)),
            ]
        );
    }

    #[test]
    fn rollups_and_rows_give_the_same_totals() {
        let (_d, store) = seeded();
        let whole = days("2025-03-01", "2025-03-02");
        // Every seeded call is native: the surface filter narrows nothing, but only the rows
        // can answer it.
        let rows = UsageFilter {
            surface: Some(Surface::Native),
            ..whole.clone()
        };
        for group in [
            GroupBy::Day,
            GroupBy::App,
            GroupBy::Provider,
            GroupBy::Model,
        ] {
            assert_eq!(
                store.usage_aggregates(&whole, group).unwrap(),
                store.usage_aggregates(&rows, group).unwrap(),
                "{group:?}"
            );
        }
        assert_eq!(
            store.daily_cost_by_provider(&whole).unwrap(),
            store.daily_cost_by_provider(&rows).unwrap()
        );
        let totals = store.usage_totals(&whole).unwrap();
        assert_eq!(totals, store.usage_totals(&rows).unwrap());
        assert_eq!((totals.requests, totals.errors), (5, 1));
        assert_eq!((totals.credits.0, totals.provider.0), (1_350, 40));

        // An app and a day narrow both alike.
        let app_b = UsageFilter {
            app: Some("app-b".into()),
            ..days("2025-03-02", "2025-03-02")
        };
        let app_b_rows = UsageFilter {
            surface: Some(Surface::Native),
            ..app_b.clone()
        };
        let narrowed = store.usage_totals(&app_b).unwrap();
        assert_eq!(narrowed, store.usage_totals(&app_b_rows).unwrap());
        assert_eq!((narrowed.requests, narrowed.credits.0), (2, 1_000));
        // A time within a day is answered from the rows.
        let from_nine = UsageFilter {
            from: Some(at("2025-03-02T08:30:00Z")),
            ..UsageFilter::default()
        };
        assert_eq!(store.usage_totals(&from_nine).unwrap().requests, 1);
    }

    #[test]
    fn cursor_paging_returns_every_row_once_newest_first() {
        let (_d, store) = seeded();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .usage_page(&UsageFilter::default(), cursor, 2)
                .unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2);
            cursor = page.last().map(|r| r.id);
            seen.extend(page);
        }
        let ids: Vec<i64> = seen.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![5, 4, 3, 2, 1]);
        assert_eq!(seen[0].started_at_text(), "2025-03-02T09:00:00.000Z");
        assert_eq!(seen[0].status, 429);
        assert_eq!(seen[0].app_id, None);
        assert_eq!(seen[1].billed_to, BilledTo::Provider);
        assert_eq!(seen[2].cost, Some(MicroUsd(1_000)));
        assert_eq!(seen[2].ttfb_ms, Some(40));
        assert!(store.has_usage().unwrap());
    }

    #[test]
    fn the_ledger_sums_grant_top_ups_and_charges() {
        let (_d, store) = seeded();
        store
            .append_ledger("topup", MicroUsd(2_500_000), "more")
            .unwrap();
        // Grant 5.00 + top-up 2.50 − charges (100 + 250 + 1,000; BYOK and the error cost nothing).
        assert_eq!(
            store.ledger_balance().unwrap(),
            MicroUsd(5_000_000 + 2_500_000 - 1_350)
        );
        let all = store.ledger_page(None, 100).unwrap();
        let kinds: Vec<&str> = all.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, vec!["topup", "charge", "charge", "charge", "grant"]);
        assert_eq!(all[1].amount, MicroUsd(-1_000));
        assert_eq!(all[1].usage_id, Some(3));
        let older = store.ledger_page(Some(all[1].id), 2).unwrap();
        assert_eq!(
            older.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![all[2].id, all[3].id]
        );
        let sum: i64 = all.iter().map(|e| e.amount.0).sum();
        assert_eq!(MicroUsd(sum), store.ledger_balance().unwrap());
    }

    #[test]
    fn app_spend_counts_only_that_app_in_the_range() {
        let (_d, store) = seeded();
        let march = range("2025-03-01", "2025-03-31");
        assert_eq!(
            store.app_spend("app-b", &march).unwrap(),
            MonthSpend {
                credits: MicroUsd(1_000),
                provider: MicroUsd(40)
            }
        );
        assert_eq!(
            store.app_spend("app-a", &march).unwrap().total(),
            MicroUsd(350)
        );
        let april = range("2025-04-01", "2025-04-30");
        assert_eq!(
            store.app_spend("app-a", &april).unwrap().total(),
            MicroUsd::ZERO
        );
        assert_eq!(
            store.app_spend("nobody", &march).unwrap(),
            MonthSpend::default()
        );
    }

    #[test]
    fn connections_report_what_they_reach() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .conn()
            .execute(
                "UPDATE connections SET verified_models = '[\"gpt-4o-mini-2024-07-18\"]'
                 WHERE id = 'managed-openai'",
                [],
            )
            .unwrap();
        let reach = store.connection_reach().unwrap();
        assert_eq!(reach.len(), 3);
        let openai = reach.iter().find(|c| c.provider == "openai").unwrap();
        assert_eq!(
            openai.verified_models,
            Some(vec!["gpt-4o-mini-2024-07-18".to_string()])
        );
        assert!(reach.iter().all(|c| c.enabled && c.kind == "managed"));
    }
}
