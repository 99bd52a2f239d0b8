//! Usage reports: aggregates over whole UTC days, recent requests with cursor paging, the
//! CSV export, an app's spend this month (for budgets) and which connections reach a model.

use std::collections::HashMap;
use std::fmt::Write;

use chrono::{Datelike, Days, NaiveDate, Utc};

use super::{Hub, HubError};
use crate::catalog::Model;
use crate::ledger::{USAGE_COLUMNS, UsageRecord, UsageValue};
use crate::store::{ConnectionReach, DayRange, GroupBy, LedgerEntry, MonthSpend, UsageAggregate};

/// The longest range the usage reports accept, in days.
pub const MAX_RANGE_DAYS: u64 = 3660;
/// The most usage rows one page returns.
pub const MAX_PAGE: usize = 500;

/// The header line of the CSV export: the usage record's column names.
pub fn csv_header() -> String {
    let mut line = USAGE_COLUMNS.join(",");
    line.push('\n');
    line
}

/// A page of usage rows and the cursor that continues after it (`None` at the end).
#[derive(Debug, Clone)]
pub struct UsagePage {
    pub rows: Vec<UsageRecord>,
    pub next_cursor: Option<i64>,
}

/// A model and the enabled connections through which apps can call it.
#[derive(Debug, Clone)]
pub struct ModelReach {
    pub model: &'static Model,
    /// (connection id, connection name)
    pub reachable_via: Vec<(String, String)>,
}

/// Today in UTC, the calendar the rollups are keyed by.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The `days` days ending with `last`, both included.
pub fn last_days(last: NaiveDate, days: u64) -> DayRange {
    let first = last
        .checked_sub_days(Days::new(days.saturating_sub(1)))
        .unwrap_or(last);
    DayRange {
        from: first.to_string(),
        to: last.to_string(),
    }
}

/// From the first of `day`'s month to `day`.
pub fn month_to_date(day: NaiveDate) -> DayRange {
    DayRange {
        from: day.with_day(1).unwrap_or(day).to_string(),
        to: day.to_string(),
    }
}

/// Reads `from`/`to` as `YYYY-MM-DD`; missing ends default to the 30 days up to `today`.
pub fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
) -> Result<DayRange, HubError> {
    let to = match to {
        Some(t) => parse_day("to", t)?,
        None => today,
    };
    let from = match from {
        Some(f) => parse_day("from", f)?,
        None => to.checked_sub_days(Days::new(29)).unwrap_or(to),
    };
    if from > to {
        return Err(HubError::bad_input(
            "from",
            format!("`from` ({from}) is after `to` ({to})."),
        ));
    }
    if (to - from).num_days() >= MAX_RANGE_DAYS as i64 {
        return Err(HubError::bad_input(
            "from",
            format!("Ask for at most {MAX_RANGE_DAYS} days at a time."),
        ));
    }
    Ok(DayRange {
        from: from.to_string(),
        to: to.to_string(),
    })
}

fn parse_day(field: &'static str, text: &str) -> Result<NaiveDate, HubError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        HubError::bad_input(
            field,
            format!("`{field}` must be a date like 2025-01-31 (UTC days)."),
        )
    })
}

/// Reads `group_by`; `day` when absent.
pub fn parse_group_by(text: Option<&str>) -> Result<GroupBy, HubError> {
    match text.map(str::trim) {
        None | Some("day") => Ok(GroupBy::Day),
        Some("app") => Ok(GroupBy::App),
        Some("provider") => Ok(GroupBy::Provider),
        Some("model") => Ok(GroupBy::Model),
        Some(_) => Err(HubError::bad_input(
            "group_by",
            "`group_by` must be one of day, app, provider or model.",
        )),
    }
}

impl Hub {
    pub fn usage_summary(
        &self,
        range: &DayRange,
        group: GroupBy,
    ) -> Result<Vec<UsageAggregate>, HubError> {
        Ok(self.store().usage_aggregates(range, group)?)
    }

    /// Usage rows newest first, `limit` (at most [`MAX_PAGE`]) after the `before` cursor.
    pub fn usage_requests(&self, before: Option<i64>, limit: usize) -> Result<UsagePage, HubError> {
        self.usage_page(before, limit.clamp(1, MAX_PAGE))
    }

    fn usage_page(&self, before: Option<i64>, limit: usize) -> Result<UsagePage, HubError> {
        // One row more than asked tells whether another page exists.
        let rows = self.store().usage_page(before, limit + 1)?;
        let (rows, next_cursor) = split_page(rows, limit, |r| r.id);
        Ok(UsagePage { rows, next_cursor })
    }

    /// Ledger lines newest first, `limit` (at most [`MAX_PAGE`]) after the `before` cursor,
    /// and the cursor for the next page.
    pub fn ledger_history(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(Vec<LedgerEntry>, Option<i64>), HubError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = self.store().ledger_page(before, limit + 1)?;
        Ok(split_page(rows, limit, |e| e.id))
    }

    /// App names by id, for labelling usage rows.
    pub fn app_names(&self) -> Result<HashMap<String, String>, HubError> {
        Ok(self.store().app_names()?)
    }

    /// The next chunk of the CSV export (no header), newest rows first, and the cursor for
    /// the chunk after it. Chunks keep memory flat however many rows there are.
    pub fn usage_csv_chunk(
        &self,
        before: Option<i64>,
        rows: usize,
    ) -> Result<(String, Option<i64>), HubError> {
        let page = self.usage_page(before, rows.max(1))?;
        let mut out = String::with_capacity(page.rows.len() * 160);
        for row in &page.rows {
            out.push_str(&csv_line(row));
        }
        Ok((out, page.next_cursor))
    }

    /// What `app_id` has spent in the current UTC month, from the daily rollups: the
    /// figure a monthly budget is checked against.
    pub fn app_month_spend(&self, app_id: &str) -> Result<MonthSpend, HubError> {
        Ok(self.store().app_spend(app_id, &month_to_date(today()))?)
    }

    /// Every catalog model with the enabled connections that reach it.
    pub fn models_with_reach(&self) -> Result<Vec<ModelReach>, HubError> {
        let connections = self.store().connection_reach()?;
        let catalog = self.catalog();
        Ok(catalog
            .all()
            .iter()
            .map(|model| ModelReach {
                model,
                reachable_via: connections
                    .iter()
                    .filter(|c| self.connection_reaches(c, model))
                    .map(|c| (c.id.clone(), c.name.clone()))
                    .collect(),
            })
            .collect())
    }

    /// An enabled connection of the model's provider reaches it, unless a verification
    /// listed the key's models and this one was not among them.
    fn connection_reaches(&self, connection: &ConnectionReach, model: &Model) -> bool {
        if !connection.enabled || connection.provider != model.provider.as_str() {
            return false;
        }
        match &connection.verified_models {
            None => true,
            Some(listed) => listed.iter().any(|name| {
                self.catalog()
                    .resolve(model.provider, name)
                    .is_some_and(|m| m.id == model.id)
            }),
        }
    }
}

/// Cuts a list fetched with one extra row down to `limit`; the cursor is the last kept
/// row's id when the extra row showed that more exist.
fn split_page<T>(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> i64) -> (Vec<T>, Option<i64>) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(id) } else { None };
    (rows, next)
}

/// One usage record as a CSV line, columns as in [`csv_header`], numbers exact.
pub fn csv_line(r: &UsageRecord) -> String {
    let mut line = String::with_capacity(160);
    for (i, value) in r.values().iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        match value {
            UsageValue::Int(n) => {
                let _ = write!(line, "{n}");
            }
            UsageValue::Bool(b) => {
                let _ = write!(line, "{b}");
            }
            UsageValue::Text(t) => line.push_str(&csv_field(t)),
            UsageValue::Owned(t) => line.push_str(&csv_field(t)),
            UsageValue::Null => {}
        }
    }
    line.push('\n');
    line
}

/// Quotes a field that holds a comma, quote or line break (RFC 4180).
fn csv_field(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\"")).into()
    } else {
        value.into()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn ranges_are_whole_days_and_checked() {
        let today = day("2025-03-10");
        let r = parse_range(None, None, today).unwrap();
        assert_eq!(
            (r.from.as_str(), r.to.as_str()),
            ("2025-02-09", "2025-03-10")
        );
        let r = parse_range(Some("2025-01-01"), Some("2025-01-01"), today).unwrap();
        assert_eq!(
            (r.from.as_str(), r.to.as_str()),
            ("2025-01-01", "2025-01-01")
        );
        assert!(parse_range(Some("2025-01-02"), Some("2025-01-01"), today).is_err());
        assert!(parse_range(Some("2025-1-2x"), None, today).is_err());
        assert!(parse_range(Some("1990-01-01"), Some("2025-01-01"), today).is_err());
        assert_eq!(month_to_date(today).from, "2025-03-01");
        assert_eq!(last_days(today, 30).from, "2025-02-09");
    }

    #[test]
    fn group_by_names() {
        assert_eq!(parse_group_by(None).unwrap(), GroupBy::Day);
        assert_eq!(parse_group_by(Some("model")).unwrap(), GroupBy::Model);
        assert!(parse_group_by(Some("week")).is_err());
    }

    #[test]
    fn csv_lines_carry_exact_numbers_under_the_header() {
        use crate::money::MicroUsd;
        let row = UsageRecord {
            id: 42,
            started_at: "2025-03-02T09:00:00Z".parse().unwrap(),
            app_id: Some("app-1".into()),
            connection_id: None,
            provider: crate::providers::Provider::Anthropic,
            model: Some("claude-sonnet-4-5".into()),
            endpoint: "/v1/messages".into(),
            streamed: true,
            status: 200,
            error_code: None,
            input_tokens: 249,
            cached_input_tokens: 1,
            cache_write_tokens: 2,
            output_tokens: 26,
            reasoning_tokens: 3,
            cost: Some(MicroUsd(1_137)),
            billed_to: crate::ledger::BilledTo::Credits,
            estimated: false,
            latency_ms: 2_450,
            ttfb_ms: None,
            surface: crate::ledger::Surface::Native,
        };
        assert_eq!(
            csv_line(&row),
            "42,2025-03-02T09:00:00.000Z,app-1,,anthropic,claude-sonnet-4-5,/v1/messages,true,200,,\
             249,1,2,26,3,1137,credits,false,2450,,native\n"
        );
        assert_eq!(
            csv_header().trim_end().split(',').count(),
            csv_line(&row).trim_end().split(',').count()
        );
        assert!(csv_header().starts_with("id,started_at,app_id,"));
        let json = serde_json::to_value(&row).unwrap();
        let names: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(names, USAGE_COLUMNS, "the JSON row has the CSV's columns");
        assert_eq!(json["cost_micro_usd"], 1_137);
        assert!(json["ttfb_ms"].is_null());
    }

    #[test]
    fn csv_fields_with_commas_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
