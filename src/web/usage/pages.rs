//! The Usage & Billing page (`/usage`) and its Add credits form (`POST /usage/credits`).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{Days, NaiveDate};
use serde::Deserialize;

use super::chart::{self, Chart};
use super::filters::FilterForm;
use crate::hub::{CreditSummary, FilterParams, Hub, HubError, UsagePage, today};
use crate::ledger::{BilledTo, UsageRecord};
use crate::money::MicroUsd;
use crate::store::{DayRange, GroupBy, LedgerEntry, UsageAggregate, UsageFilter, UsageTotals};
use crate::web::auth::PageSession;
use crate::web::auth::{CsrfForm, Flash, Incoming, flash_key, redirect_with};
use crate::web::errors::PageError;
use crate::web::pages::{Layout, Money, When, render};

/// Days the chart and the spend tables cover unless a range is asked for.
const DAYS: u64 = 30;
/// The most days the chart draws (the latest of a longer range).
const MAX_CHART_DAYS: u64 = 366;
const RECENT_REQUESTS: usize = 25;
const RECENT_LEDGER: usize = 15;

/// One line of a spend table (by app, provider or model).
pub struct SpendRow {
    pub label: String,
    pub requests: String,
    pub errors: i64,
    pub input_tokens: String,
    pub output_tokens: String,
    pub credits: MicroUsd,
    pub provider: MicroUsd,
}

/// One recent request as the page shows it.
pub struct RequestView {
    pub id: i64,
    pub when: When,
    pub app: String,
    pub provider: String,
    pub model: String,
    pub status: i64,
    pub failed: bool,
    pub error_code: String,
    pub input_tokens: String,
    pub output_tokens: String,
    /// `None` when the cost is unknown.
    pub cost: Option<Money>,
    pub billed_by_provider: bool,
    pub estimated: bool,
    pub latency_ms: String,
}

/// One ledger line as the page shows it.
pub struct LedgerView {
    pub when: When,
    pub kind: &'static str,
    pub amount: MicroUsd,
    pub note: String,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsageBillingPage {
    l: Layout,
    credits: CreditSummary,
    flash: Flash,
    max_note: usize,
    chart: Chart,
    range: DayRange,
    form: FilterForm,
    /// The filters as a query string, for the export, the request log and paging links.
    query: String,
    filter_error: Option<String>,
    totals: UsageTotals,
    by_provider: Vec<SpendRow>,
    by_app: Vec<SpendRow>,
    by_model: Vec<SpendRow>,
    requests: Vec<RequestView>,
    older: Option<i64>,
    paged: bool,
    ledger: Vec<LedgerView>,
    has_usage: bool,
}

/// Page links carry numbers only; anything else is ignored rather than refused.
#[derive(Deserialize)]
pub struct UsageQuery {
    before: Option<String>,
}

fn number(text: Option<&str>) -> Option<i64> {
    text.and_then(|t| t.trim().parse().ok())
}

pub async fn usage(
    hub: web::Data<Hub>,
    session: PageSession,
    query: web::Query<UsageQuery>,
    filters: web::Query<FilterParams>,
    flash: Incoming,
) -> Result<HttpResponse, PageError> {
    let before = number(query.before.as_deref());
    show(&hub, &session, before, filters.into_inner(), flash.0).await
}

#[derive(Deserialize)]
pub struct TopUpForm {
    amount: String,
    #[serde(default)]
    note: String,
}

/// Adds credits from the form; a bad amount shows the page again with the message and
/// stores nothing.
pub async fn add_credits(
    hub: web::Data<Hub>,
    form: CsrfForm<TopUpForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { session, form } = form;
    let TopUpForm { amount, note } = form;
    let parsed = MicroUsd::parse_dollars(&amount).map_err(|m| HubError::bad_input("amount", m));
    let n = note.clone();
    let result = match parsed {
        Ok(micro) => hub.run(move |h| h.top_up(micro, &n).map(|_| micro)).await,
        Err(e) => Err(e),
    };
    let key = flash_key(Some(&session));
    match result {
        Ok(added) => {
            let flash = Flash::notice(format!("Added {added} to your credits."));
            Ok(redirect_with("/usage", &flash, key))
        }
        Err(e @ HubError::BadInput { .. }) => {
            let flash = Flash::error("add-credits", "amount", e.to_string())
                .keep("amount", &amount)
                .keep("note", &note);
            Ok(redirect_with("/usage#add-credits", &flash, key))
        }
        Err(e) => Err(e.into()),
    }
}

/// Everything the page reads from the store, fetched in one blocking call.
struct UsageData {
    totals: UsageTotals,
    by_provider: Vec<UsageAggregate>,
    by_app: Vec<UsageAggregate>,
    by_model: Vec<UsageAggregate>,
    daily: Vec<(String, String, MicroUsd)>,
    requests: UsagePage,
    ledger: Vec<LedgerEntry>,
    app_names: HashMap<String, String>,
    has_usage: bool,
}

fn load(hub: &Hub, filter: &UsageFilter, before: Option<i64>) -> Result<UsageData, HubError> {
    Ok(UsageData {
        totals: hub.usage_totals(filter)?,
        by_provider: hub.usage_summary(filter, GroupBy::Provider)?,
        by_app: hub.usage_summary(filter, GroupBy::App)?,
        by_model: hub.usage_summary(filter, GroupBy::Model)?,
        daily: hub.daily_spend(filter)?,
        requests: hub.usage_requests(filter, before, RECENT_REQUESTS)?,
        ledger: hub.ledger_history(None, RECENT_LEDGER)?.0,
        app_names: hub.app_names()?,
        has_usage: hub.store().has_usage()?,
    })
}

/// The filters the page shows, and the filter they make: the last 30 UTC days unless a
/// range is given (a missing start is 30 days before the end). A bad filter falls back to
/// the default, with the reason.
fn page_filter(
    hub: &Hub,
    asked: FilterParams,
    today: NaiveDate,
) -> (FilterParams, UsageFilter, Option<String>) {
    match filled_in(hub, asked, today) {
        Ok((shown, filter)) => (shown, filter, None),
        Err(e) => {
            let (shown, filter) = filled_in(hub, FilterParams::default(), today)
                .unwrap_or_else(|_| (FilterParams::default(), UsageFilter::default()));
            (shown, filter, Some(e.to_string()))
        }
    }
}

fn filled_in(
    hub: &Hub,
    mut asked: FilterParams,
    today: NaiveDate,
) -> Result<(FilterParams, UsageFilter), HubError> {
    let mut filter = hub.usage_filter(&asked)?;
    let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
    let tomorrow = today.checked_add_days(Days::new(1)).unwrap_or(today);
    let to = *filter.to.get_or_insert(midnight(tomorrow));
    let from = *filter
        .from
        .get_or_insert(to - chrono::Duration::days(DAYS as i64));
    if from >= to {
        return Err(HubError::bad_input("from", "`from` must be before `to`."));
    }
    let as_given = |t: chrono::DateTime<chrono::Utc>| {
        if t.time() == chrono::NaiveTime::MIN {
            t.date_naive().to_string()
        } else {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }
    };
    asked.from = Some(as_given(from));
    asked.to = Some(as_given(to));
    Ok((asked, filter))
}

/// The UTC days a filter's range touches, at most [`MAX_CHART_DAYS`] (the latest ones).
fn chart_days(filter: &UsageFilter, today: NaiveDate) -> Vec<NaiveDate> {
    let last = filter
        .to
        .map(|t| (t - chrono::Duration::milliseconds(1)).date_naive())
        .unwrap_or(today);
    let first = filter.from.map_or(last, |f| f.date_naive()).min(last);
    let count = ((last - first).num_days() + 1).clamp(1, MAX_CHART_DAYS as i64);
    days_ending(last, count as u64)
}

async fn show(
    hub: &web::Data<Hub>,
    session: &PageSession,
    before: Option<i64>,
    asked: FilterParams,
    flash: Flash,
) -> Result<HttpResponse, PageError> {
    let last = today();
    let (shown, filter, filter_error) = page_filter(hub, asked, last);
    let days = chart_days(&filter, last);
    let f = filter.clone();
    let data = hub.run(move |h| load(h, &f, before)).await?;
    let names = &data.app_names;
    let form = FilterForm::new("/usage", shown, names);
    let range = DayRange {
        from: days.first().map(|d| d.to_string()).unwrap_or_default(),
        to: days.last().map(|d| d.to_string()).unwrap_or_default(),
    };
    let page = UsageBillingPage {
        l: Layout::new(hub, session, "usage"),
        credits: hub.credit_summary(),
        flash,
        max_note: crate::hub::MAX_NOTE_CHARS,
        chart: chart::daily_by_provider(&days, &data.daily),
        totals: data.totals,
        by_provider: spend_rows(&data.by_provider, |a| provider_name(&a.key)),
        by_app: spend_rows(&data.by_app, |a| app_label(names, &a.key)),
        by_model: spend_rows(&data.by_model, |a| {
            format!("{} · {}", provider_name(&a.key), or_unknown(&a.sub_key))
        }),
        requests: data
            .requests
            .rows
            .iter()
            .map(|r| request_view(names, r))
            .collect(),
        older: data.requests.next_cursor,
        paged: before.is_some(),
        ledger: data.ledger.iter().map(ledger_view).collect(),
        has_usage: data.has_usage,
        query: form.query(),
        form,
        filter_error,
        range,
    };
    render(StatusCode::OK, &page)
}

fn days_ending(last: NaiveDate, count: u64) -> Vec<NaiveDate> {
    (0..count)
        .rev()
        .filter_map(|n| last.checked_sub_days(Days::new(n)))
        .collect()
}

fn spend_rows(rows: &[UsageAggregate], label: impl Fn(&UsageAggregate) -> String) -> Vec<SpendRow> {
    rows.iter()
        .map(|a| SpendRow {
            label: label(a),
            requests: grouped(a.requests),
            errors: a.errors,
            input_tokens: grouped(a.input_tokens),
            output_tokens: grouped(a.output_tokens),
            credits: a.credits,
            provider: a.provider,
        })
        .collect()
}

pub(super) fn request_view(names: &HashMap<String, String>, r: &UsageRecord) -> RequestView {
    RequestView {
        id: r.id,
        when: When::of(&r.started_at_text()),
        app: app_label(names, r.app_id.as_deref().unwrap_or("")),
        provider: r.provider.display_name().to_string(),
        model: or_unknown(r.model.as_deref().unwrap_or("")),
        status: i64::from(r.status),
        failed: r.status >= 400,
        error_code: r.error_code.clone().unwrap_or_default(),
        input_tokens: grouped(count(r.input_tokens)),
        output_tokens: grouped(count(r.output_tokens)),
        cost: r.cost.map(Money::of),
        billed_by_provider: r.billed_to == BilledTo::Provider,
        estimated: r.estimated,
        latency_ms: grouped(count(r.latency_ms)),
    }
}

fn ledger_view(e: &LedgerEntry) -> LedgerView {
    LedgerView {
        when: When::of(&e.at),
        kind: match e.kind.as_str() {
            "grant" => "Grant",
            "topup" => "Top-up",
            "charge" => "Charge",
            _ => "Adjustment",
        },
        amount: e.amount,
        note: e.note.clone().unwrap_or_default(),
    }
}

fn provider_name(name: &str) -> String {
    name.parse::<crate::providers::Provider>()
        .map_or_else(|_| name.to_string(), |p| p.display_name().to_string())
}

fn app_label(names: &HashMap<String, String>, id: &str) -> String {
    match (id, names.get(id)) {
        ("", _) => "No app".to_string(),
        (crate::gateway::PLAYGROUND_APP, _) => "Playground".to_string(),
        (_, Some(name)) => name.clone(),
        (id, None) => format!("{id} (deleted)"),
    }
}

fn or_unknown(s: &str) -> String {
    if s.is_empty() {
        "unknown model".to_string()
    } else {
        s.to_string()
    }
}

/// 1234567 → `1,234,567`.
pub(super) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times_read_well() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(-12_345), "-12,345");
        let w = When::of("2025-03-02T09:00:00.000Z");
        assert_eq!(w.exact, "2025-03-02 09:00:00 UTC");
    }
}
