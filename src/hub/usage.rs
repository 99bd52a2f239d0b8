//! Usage reports: aggregates over whole UTC days, recent requests with cursor paging, the
//! CSV export, an app's spend this month (for budgets) and which connections reach a model.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};

use super::{Hub, HubError};
use crate::catalog::Model;
use crate::catalog::cost::{CostLine, cost_lines};
use crate::ledger::{Surface, USAGE_COLUMNS, UsageRecord, UsageValue};
use crate::providers::Provider;
use crate::store::{
    ConnectionReach, DayRange, GroupBy, LedgerEntry, MonthSpend, StatusFilter, UsageAggregate,
    UsageFilter, UsageTotals,
};

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
    /// Totals of the calls that pass `filter`, grouped as asked.
    pub fn usage_summary(
        &self,
        filter: &UsageFilter,
        group: GroupBy,
    ) -> Result<Vec<UsageAggregate>, HubError> {
        Ok(self.store().usage_aggregates(filter, group)?)
    }

    /// Cost per (UTC day, provider) of the calls that pass `filter`: the spend chart's data.
    pub fn daily_spend(
        &self,
        filter: &UsageFilter,
    ) -> Result<Vec<(String, String, crate::money::MicroUsd)>, HubError> {
        Ok(self.store().daily_cost_by_provider(filter)?)
    }

    /// Usage rows that pass `filter`, newest first, `limit` (at most [`MAX_PAGE`]) after the
    /// `before` cursor.
    pub fn usage_requests(
        &self,
        filter: &UsageFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<UsagePage, HubError> {
        self.usage_page(filter, before, limit.clamp(1, MAX_PAGE))
    }

    fn usage_page(
        &self,
        filter: &UsageFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<UsagePage, HubError> {
        // One row more than asked tells whether another page exists.
        let rows = self.store().usage_page(filter, before, limit + 1)?;
        let (rows, next_cursor) = split_page(rows, limit, |r| r.id);
        Ok(UsagePage { rows, next_cursor })
    }

    /// The filter the parameters ask for, a model name standing for every name the catalog
    /// knows that model by (calls are recorded under the dated id the provider answered with).
    pub fn usage_filter(&self, params: &FilterParams) -> Result<UsageFilter, HubError> {
        let mut filter = parse_usage_filter(params)?;
        if let Some(names) = &mut filter.models {
            let asked = names.clone();
            for provider in Provider::ALL {
                for name in &asked {
                    if let Some(model) = self.catalog().resolve(provider, name) {
                        names.extend(model.names().map(str::to_owned));
                    }
                }
            }
            names.sort();
            names.dedup();
        }
        Ok(filter)
    }

    /// Totals over the rows that pass `filter`.
    pub fn usage_totals(&self, filter: &UsageFilter) -> Result<UsageTotals, HubError> {
        Ok(self.store().usage_totals(filter)?)
    }

    /// One request with its timings and its cost as lines that add up to it.
    pub fn usage_request(&self, id: i64) -> Result<RequestDetail, HubError> {
        let record = self.store().usage_record(id)?;
        let model = record
            .model
            .as_deref()
            .and_then(|m| self.catalog().resolve(record.provider, m));
        let cost_lines = match (model, record.cost) {
            (Some(model), Some(cost)) => cost_lines(model, &record.usage(), cost),
            _ => Vec::new(),
        };
        Ok(RequestDetail {
            timings: Timings {
                queued_ms: record.queued_ms,
                first_byte_ms: record.ttfb_ms,
                total_ms: record.latency_ms,
            },
            retried: record.retried(),
            cost_lines,
            record,
        })
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

    /// The next chunk of the CSV export (no header) of the rows that pass `filter`, newest
    /// first, and the cursor for the chunk after it. Chunks keep memory flat however many
    /// rows there are.
    pub fn usage_csv_chunk(
        &self,
        filter: &UsageFilter,
        before: Option<i64>,
        rows: usize,
    ) -> Result<(Vec<u8>, Option<i64>), HubError> {
        let page = self.usage_page(filter, before, rows.max(1))?;
        let mut out = Vec::with_capacity(page.rows.len() * 160);
        for row in &page.rows {
            out.extend_from_slice(csv_line(row).as_bytes());
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

/// One usage record as a CSV line, columns as in [`csv_header`], numbers exact. Quoting is
/// the `csv` crate's; a text cell that a spreadsheet would run as a formula is neutralised.
pub fn csv_line(r: &UsageRecord) -> String {
    let cells: Vec<String> = r
        .values()
        .iter()
        .map(|value| match value {
            UsageValue::Int(n) => n.to_string(),
            UsageValue::Bool(b) => b.to_string(),
            UsageValue::Text(t) => inert(t),
            UsageValue::Owned(t) => inert(t),
            UsageValue::Null => String::new(),
        })
        .collect();
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::with_capacity(160));
    if writer.write_record(&cells).is_err() {
        return "\n".to_string();
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// A cell that starts like a formula (`=`, `+`, `-`, `@`, tab, carriage return) gets a
/// leading `'`, so a spreadsheet shows it as text instead of running it.
fn inert(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    }
}

/// Reads the request filters of the usage API and pages; absent or empty ones do not narrow.
pub fn parse_usage_filter(params: &FilterParams) -> Result<UsageFilter, HubError> {
    let from = given(&params.from)
        .map(|t| parse_instant("from", t))
        .transpose()?;
    let to = given(&params.to)
        .map(|t| parse_instant("to", t))
        .transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(HubError::bad_input("from", "`from` must be before `to`."));
        }
    }
    let provider = given(&params.provider)
        .map(|p| {
            p.parse::<Provider>()
                .map_err(|e| HubError::bad_input("provider", e.to_string()))
        })
        .transpose()?;
    let surface = given(&params.surface)
        .map(|s| {
            Surface::parse(s).ok_or_else(|| {
                HubError::bad_input("surface", "`surface` must be native or compatible.")
            })
        })
        .transpose()?;
    let status = given(&params.status).map(parse_status).transpose()?;
    Ok(UsageFilter {
        from,
        to,
        app: given(&params.app).map(str::to_owned),
        provider,
        models: given(&params.model).map(|m| vec![m.to_owned()]),
        status,
        surface,
    })
}

/// `ok`, `error`, or one stable error code.
fn parse_status(text: &str) -> Result<StatusFilter, HubError> {
    match text {
        "ok" => Ok(StatusFilter::Ok),
        "error" => Ok(StatusFilter::Error),
        code if code.len() <= 64
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            Ok(StatusFilter::Code(code.to_string()))
        }
        _ => Err(HubError::bad_input(
            "status",
            "`status` must be ok, error, or an error code like app_rate_limited.",
        )),
    }
}

/// A filter value that was given and is not blank.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

/// RFC 3339, or `YYYY-MM-DD` for the start of that UTC day.
fn parse_instant(field: &'static str, text: &str) -> Result<DateTime<Utc>, HubError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            HubError::bad_input(
                field,
                format!(
                    "`{field}` must be a time like 2026-01-31T09:00:00Z or a day like 2026-01-31."
                ),
            )
        })
}

/// The request filters as a query string gives them.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct FilterParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub app: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub status: Option<String>,
    pub surface: Option<String>,
}

/// One request as its page and the API show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestDetail {
    #[serde(flatten)]
    pub record: UsageRecord,
    pub timings: Timings,
    /// Whether a rate limit made the Hub send it more than once (`attempts` says how often).
    pub retried: bool,
    pub cost_lines: Vec<CostLine>,
}

/// Milliseconds from the call's arrival: until it was sent upstream (`None` when it never
/// was), until the first byte of the answer, until the end.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Timings {
    pub queued_ms: Option<u64>,
    pub first_byte_ms: Option<u64>,
    pub total_ms: u64,
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

    fn sample() -> UsageRecord {
        use crate::money::MicroUsd;
        UsageRecord {
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
            queued_ms: None,
            attempts: None,
            provider_request_id: None,
        }
    }

    #[test]
    fn csv_lines_carry_exact_numbers_under_the_header() {
        let row = sample();
        assert_eq!(
            csv_line(&row),
            "42,2025-03-02T09:00:00.000Z,app-1,,anthropic,claude-sonnet-4-5,/v1/messages,true,200,,\
             249,1,2,26,3,1137,credits,false,2450,,native,,,\n"
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
    fn csv_cells_are_quoted_and_formulas_neutralised() {
        let mut row = sample();
        row.model = Some("a,b \"c\"".into());
        assert!(csv_line(&row).contains(",\"a,b \"\"c\"\"\","));
        row.model = Some("=cmd|' /C calc'!A0".into());
        assert!(
            csv_line(&row).contains(",'=cmd|' /C calc'!A0,"),
            "{}",
            csv_line(&row)
        );
        for start in ["+1", "-1", "@SUM(A1)"] {
            row.model = Some(start.into());
            assert!(csv_line(&row).contains(&format!(",'{start},")));
        }
    }

    #[test]
    fn filters_read_dates_statuses_and_names() {
        let f = parse_usage_filter(&FilterParams {
            from: Some("2026-01-31".into()),
            to: Some("2026-02-01T12:00:00Z".into()),
            status: Some("app_rate_limited".into()),
            provider: Some("gemini".into()),
            surface: Some("compatible".into()),
            app: Some(" ".into()),
            ..FilterParams::default()
        })
        .unwrap();
        assert_eq!(f.from.unwrap().to_rfc3339(), "2026-01-31T00:00:00+00:00");
        assert_eq!(
            f.status,
            Some(StatusFilter::Code("app_rate_limited".into()))
        );
        assert_eq!(f.provider, Some(Provider::Gemini));
        assert_eq!(f.app, None, "blank does not narrow");
        for (field, bad) in [
            ("from", "yesterday"),
            ("status", "DROP TABLE"),
            ("provider", "azure"),
            ("surface", "x"),
        ] {
            let mut p = FilterParams::default();
            match field {
                "from" => p.from = Some(bad.into()),
                "status" => p.status = Some(bad.into()),
                "provider" => p.provider = Some(bad.into()),
                _ => p.surface = Some(bad.into()),
            }
            assert!(parse_usage_filter(&p).is_err(), "{field}={bad}");
        }
        let backwards = FilterParams {
            from: Some("2026-02-01".into()),
            to: Some("2026-01-01".into()),
            ..FilterParams::default()
        };
        assert!(parse_usage_filter(&backwards).is_err());
    }
}
