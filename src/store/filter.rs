//! Which usage records a request list, an export or a total covers, and the SQL that selects
//! them. Values are always bound, never spliced into the statement.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use rusqlite::types::Value;

use crate::ledger::Surface;
use crate::providers::Provider;

/// What a call's outcome must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusFilter {
    /// Answered below 400, with no error code.
    Ok,
    /// Anything else: the provider's errors and the Hub's own refusals.
    Error,
    /// One stable error code (`app_rate_limited`, `invalid_api_key`, `http_500`…).
    Code(String),
}

/// A filter over usage records; every field narrows, `None` does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    pub app: Option<String>,
    pub provider: Option<Provider>,
    /// Any of these names (a model's id, dated id and aliases).
    pub models: Option<Vec<String>>,
    pub status: Option<StatusFilter>,
    pub surface: Option<Surface>,
}

/// What totals over a filter are read from: the daily rollups when the filter speaks only of
/// whole UTC days, apps, providers and models (one row per day and group, and they outlive
/// the retention of request rows), else the request rows themselves.
pub(super) struct Source {
    /// The table, aliased `d`.
    pub table: &'static str,
    pub requests: &'static str,
    pub errors: &'static str,
    /// The app id, `''` for none.
    pub app: &'static str,
    /// The model, `''` for none.
    pub model: &'static str,
    /// `AND …` conditions and their values, in order.
    pub conditions: String,
    pub values: Vec<Value>,
}

/// The condition a call counts as failed by, in the request rows and the rollups alike.
pub(super) const FAILED: &str = "(status >= 400 OR error_code IS NOT NULL)";

impl UsageFilter {
    /// Every call on the UTC days `from` to `last`, both included.
    pub fn whole_days(from: NaiveDate, last: NaiveDate) -> UsageFilter {
        let next = last.checked_add_days(Days::new(1)).unwrap_or(last);
        UsageFilter {
            from: Some(from.and_time(NaiveTime::MIN).and_utc()),
            to: Some(next.and_time(NaiveTime::MIN).and_utc()),
            ..UsageFilter::default()
        }
    }

    /// Where totals over this filter come from, with its conditions for that table.
    pub(super) fn source(&self) -> Source {
        match self.rollup_conditions() {
            Some((conditions, values)) => Source {
                table: "usage_daily",
                requests: "SUM(d.requests)",
                errors: "SUM(d.errors)",
                app: "d.app_id",
                model: "d.model",
                conditions,
                values,
            },
            None => {
                let (conditions, values) = self.conditions();
                Source {
                    table: "usage_records",
                    requests: "COUNT(*)",
                    errors: "SUM(CASE WHEN d.status >= 400 OR d.error_code IS NOT NULL THEN 1 ELSE 0 END)",
                    app: "COALESCE(d.app_id, '')",
                    model: "COALESCE(d.model, '')",
                    conditions,
                    values,
                }
            }
        }
    }

    /// The conditions over `usage_daily`, when the rollups can answer this filter exactly.
    fn rollup_conditions(&self) -> Option<(String, Vec<Value>)> {
        if self.status.is_some() || self.surface.is_some() {
            return None;
        }
        let day = |t: &DateTime<Utc>| (t.time() == NaiveTime::MIN).then(|| t.date_naive());
        let from = self.from.as_ref().map(day);
        let to = self.to.as_ref().map(day);
        if from == Some(None) || to == Some(None) {
            return None;
        }
        let mut sql = String::new();
        let mut values = Vec::new();
        let text = |d: NaiveDate| Value::Text(d.to_string());
        if let Some(Some(from)) = from {
            sql.push_str(" AND d.day >= ?");
            values.push(text(from));
        }
        if let Some(Some(to)) = to {
            sql.push_str(" AND d.day < ?");
            values.push(text(to));
        }
        if let Some(app) = &self.app {
            sql.push_str(" AND d.app_id = ?");
            values.push(Value::Text(app.clone()));
        }
        if let Some(provider) = self.provider {
            sql.push_str(" AND d.provider = ?");
            values.push(Value::Text(provider.as_str().into()));
        }
        if let Some(models) = &self.models {
            let (marks, names) = name_list(models);
            sql.push_str(&format!(" AND d.model IN ({marks})"));
            values.extend(names);
        }
        Some((sql, values))
    }

    /// `AND …` conditions over `usage_records` and their values, in order.
    pub(super) fn conditions(&self) -> (String, Vec<Value>) {
        self.conditions_with("started_at")
    }

    /// The conditions for a page of rows newest first. Over a range longer than a day the
    /// time index would gather and sort every row in it, so the rows are walked newest id
    /// first instead (`+started_at` keeps SQLite off that index) and the page's limit stops
    /// the walk early; a short range is read through the index.
    pub(super) fn paging_conditions(&self) -> (String, Vec<Value>) {
        let end = self.to.unwrap_or_else(Utc::now);
        let wide = self
            .from
            .is_none_or(|from| end - from > chrono::Duration::days(1));
        self.conditions_with(if wide { "+started_at" } else { "started_at" })
    }

    fn conditions_with(&self, time: &str) -> (String, Vec<Value>) {
        let mut sql = String::new();
        let mut values = Vec::new();
        let mut add = |condition: &str, value: Vec<Value>| {
            sql.push_str(" AND ");
            sql.push_str(condition);
            values.extend(value);
        };
        let stamp =
            |t: &DateTime<Utc>| Value::Text(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        if let Some(from) = &self.from {
            add(&format!("{time} >= ?"), vec![stamp(from)]);
        }
        if let Some(to) = &self.to {
            add(&format!("{time} < ?"), vec![stamp(to)]);
        }
        if let Some(app) = &self.app {
            add("app_id = ?", vec![Value::Text(app.clone())]);
        }
        if let Some(provider) = self.provider {
            add("provider = ?", vec![Value::Text(provider.as_str().into())]);
        }
        if let Some(models) = &self.models {
            let (marks, names) = name_list(models);
            add(&format!("model IN ({marks})"), names);
        }
        match &self.status {
            Some(StatusFilter::Ok) => add("status < 400 AND error_code IS NULL", vec![]),
            Some(StatusFilter::Error) => add(FAILED, vec![]),
            Some(StatusFilter::Code(code)) => {
                add("error_code = ?", vec![Value::Text(code.clone())])
            }
            None => {}
        }
        if let Some(surface) = self.surface {
            // Spelled out, not bound: SQLite uses the compatible surface's partial index
            // only for a condition it can match against the index's own at prepare time.
            add(&format!("surface = '{}'", surface.as_str()), vec![]);
        }
        (sql, values)
    }
}

/// `?, ?, …` for a list of names and their values; an empty list matches nothing.
fn name_list(models: &[String]) -> (String, Vec<Value>) {
    let mut names: Vec<Value> = models.iter().map(|m| Value::Text(m.clone())).collect();
    if names.is_empty() {
        names.push(Value::Null);
    }
    (vec!["?"; names.len()].join(", "), names)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pages_over_a_long_range_walk_ids_and_short_ones_use_the_time_index() {
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        let month = UsageFilter::whole_days(day("2026-01-01"), day("2026-01-30"));
        assert!(month.paging_conditions().0.contains("+started_at >= ?"));
        let one_day = UsageFilter::whole_days(day("2026-01-01"), day("2026-01-01"));
        let (sql, values) = one_day.paging_conditions();
        assert!(
            sql.contains(" AND started_at >= ? AND started_at < ?"),
            "{sql}"
        );
        assert_eq!(values.len(), 2);
        assert_eq!(one_day.conditions(), one_day.paging_conditions());
        // Totals keep the index either way.
        assert!(!month.conditions().0.contains('+'));
    }
}
