//! The Usage & Billing page (`/usage`) and its Add credits form (`POST /usage/credits`).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{Days, NaiveDate};
use serde::Deserialize;

use super::chart::{self, Chart};
use crate::hub::{CreditSummary, Hub, HubError, UsagePage, last_days, today};
use crate::ledger::{BilledTo, UsageRecord};
use crate::money::MicroUsd;
use crate::store::{DayRange, GroupBy, LedgerEntry, UsageAggregate};
use crate::web::auth::PageSession;
use crate::web::auth::{CsrfForm, Flash, Incoming, flash_key, redirect_with};
use crate::web::errors::PageError;
use crate::web::pages::{Layout, Money, When, render};

/// Days the chart and the spend tables cover.
const DAYS: u64 = 30;
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
    flash: Incoming,
) -> Result<HttpResponse, PageError> {
    let before = number(query.before.as_deref());
    show(&hub, &session, before, flash.0).await
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
    by_provider: Vec<UsageAggregate>,
    by_app: Vec<UsageAggregate>,
    by_model: Vec<UsageAggregate>,
    daily: Vec<(String, String, MicroUsd)>,
    requests: UsagePage,
    ledger: Vec<LedgerEntry>,
    app_names: HashMap<String, String>,
    has_usage: bool,
}

fn load(hub: &Hub, range: &DayRange, before: Option<i64>) -> Result<UsageData, HubError> {
    Ok(UsageData {
        by_provider: hub.usage_summary(range, GroupBy::Provider)?,
        by_app: hub.usage_summary(range, GroupBy::App)?,
        by_model: hub.usage_summary(range, GroupBy::Model)?,
        daily: hub.store().daily_cost_by_provider(range)?,
        requests: hub.usage_requests(
            &crate::store::UsageFilter::default(),
            before,
            RECENT_REQUESTS,
        )?,
        ledger: hub.ledger_history(None, RECENT_LEDGER)?.0,
        app_names: hub.app_names()?,
        has_usage: hub.store().has_usage()?,
    })
}

async fn show(
    hub: &web::Data<Hub>,
    session: &PageSession,
    before: Option<i64>,
    flash: Flash,
) -> Result<HttpResponse, PageError> {
    let last = today();
    let range = last_days(last, DAYS);
    let r = range.clone();
    let data = hub.run(move |h| load(h, &r, before)).await?;
    let names = &data.app_names;
    let page = UsageBillingPage {
        l: Layout::new(hub, session, "usage"),
        credits: hub.credit_summary(),
        flash,
        max_note: crate::hub::MAX_NOTE_CHARS,
        chart: chart::daily_by_provider(&days_ending(last, DAYS), &data.daily),
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
