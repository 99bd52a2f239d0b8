//! `/api/v1/credits`, `/api/v1/usage`, `/api/v1/usage/requests` and `/api/v1/usage.csv`.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::PageQuery;
use crate::gateway::Gateway;
use crate::hub::{
    FilterParams, Hub, HubError, KeepChange, csv_header, parse_group_by, parse_range, today,
};
use crate::ledger::UsageRecord;
use crate::money::MicroUsd;
use crate::store::{DayRange, GroupBy, LedgerEntry, UsageAggregate, UsageFilter};
use crate::web::auth::ApiSession;
use crate::web::errors::ApiError;

/// How many ledger lines `GET /api/v1/credits` includes.
const RECENT_LEDGER: usize = 10;
/// Rows per chunk of the CSV export.
const CSV_CHUNK_ROWS: usize = 2_000;

/// The balance, open holds, what is available, and the latest ledger lines.
pub async fn credits(hub: web::Data<Hub>, _session: ApiSession) -> Result<HttpResponse, ApiError> {
    let (ledger, next_cursor) = hub
        .run(move |h| h.ledger_history(None, RECENT_LEDGER))
        .await?;
    let mut body = json!(hub.credit_summary());
    body["ledger"] = ledger_json(&ledger);
    body["ledger_next_cursor"] = json!(next_cursor);
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopUpBody {
    amount_micro_usd: i64,
    #[serde(default)]
    note: String,
}

/// A local top-up: `{amount_micro_usd, note}` → the new balance.
pub async fn top_up(
    hub: web::Data<Hub>,
    _session: ApiSession,
    body: web::Json<TopUpBody>,
) -> Result<HttpResponse, ApiError> {
    let TopUpBody {
        amount_micro_usd,
        note,
    } = body.into_inner();
    hub.run(move |h| h.top_up(MicroUsd(amount_micro_usd), &note))
        .await?;
    Ok(HttpResponse::Ok().json(hub.credit_summary()))
}

/// The ledger, newest first, with cursor paging.
pub async fn ledger(
    hub: web::Data<Hub>,
    _session: ApiSession,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (cursor, limit) = (query.cursor()?, query.limit(50)?);
    let (entries, next_cursor) = hub.run(move |h| h.ledger_history(cursor, limit)).await?;
    Ok(HttpResponse::Ok().json(json!({"data": ledger_json(&entries), "next_cursor": next_cursor})))
}

#[derive(Deserialize)]
pub struct GroupQuery {
    group_by: Option<String>,
}

/// Usage totals over whole UTC days (`from` and `to` both included), grouped by day, app,
/// provider or model, narrowed by the request log's other filters.
pub async fn usage(
    hub: web::Data<Hub>,
    _session: ApiSession,
    filters: web::Query<FilterParams>,
    group: web::Query<GroupQuery>,
) -> Result<HttpResponse, ApiError> {
    let range = parse_range(filters.from.as_deref(), filters.to.as_deref(), today())?;
    let group = parse_group_by(group.group_by.as_deref())?;
    let mut filter = hub.usage_filter(&FilterParams {
        from: None,
        to: None,
        ..filters.into_inner()
    })?;
    let days = whole_days(&range)?;
    (filter.from, filter.to) = (days.from, days.to);
    let rows = hub.run(move |h| h.usage_summary(&filter, group)).await?;
    let totals = rows.iter().fold(UsageAggregate::default(), add_aggregate);
    Ok(HttpResponse::Ok().json(json!({
        "from": range.from,
        "to": range.to,
        "group_by": group.as_str(),
        "data": rows.iter().map(|a| aggregate_json(group, a)).collect::<Vec<_>>(),
        "totals": totals_json(&totals),
    })))
}

/// The filter for every call on the days of `range`.
fn whole_days(range: &DayRange) -> Result<UsageFilter, HubError> {
    let day = |d: &str| {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| HubError::bad_input("from", "Days look like 2025-01-31."))
    };
    Ok(UsageFilter::whole_days(day(&range.from)?, day(&range.to)?))
}

/// Usage rows that pass the filters, newest first; `cursor` continues from a page's
/// `next_cursor`. Also the totals over every row that passes, and the calls without a valid
/// app key (counted, never rows).
pub async fn requests(
    hub: web::Data<Hub>,
    gateway: web::Data<Gateway>,
    _session: ApiSession,
    page: web::Query<PageQuery>,
    filters: web::Query<FilterParams>,
) -> Result<HttpResponse, ApiError> {
    let (cursor, limit) = (page.cursor()?, page.limit(50)?);
    let filter = hub.usage_filter(&filters)?;
    let (page, totals) = hub
        .run(move |h| {
            Ok((
                h.usage_requests(&filter, cursor, limit)?,
                h.usage_totals(&filter)?,
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "data": page.rows.iter().map(usage_row_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
        "totals": totals,
        "unauthenticated_calls": gateway.unauthenticated_calls(),
    })))
}

/// One request: its row, timings, and cost lines that add up to its cost.
pub async fn request(
    hub: web::Data<Hub>,
    _session: ApiSession,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = id
        .trim()
        .parse()
        .map_err(|_| HubError::bad_input("id", "A request id is a whole number."))?;
    let (detail, bodies) = hub
        .run(move |h| {
            let detail = h.usage_request(id)?;
            let bodies = h.request_bodies(&detail.record)?;
            Ok((detail, bodies))
        })
        .await?;
    let mut body = json!(detail);
    if let Some(bodies) = bodies {
        body["bodies"] = json!(bodies);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// How long request bodies and rows are kept.
pub async fn settings(hub: web::Data<Hub>, _session: ApiSession) -> HttpResponse {
    HttpResponse::Ok().json(hub.keep_settings())
}

/// Changes how long request bodies and rows are kept.
pub async fn change_settings(
    hub: web::Data<Hub>,
    _session: ApiSession,
    change: web::Json<KeepChange>,
) -> Result<HttpResponse, ApiError> {
    let change = change.into_inner();
    let settings = hub.run(move |h| h.change_keep_settings(change)).await?;
    Ok(HttpResponse::Ok().json(settings))
}

/// Where the CSV export is: the header, then chunks of rows, then the end.
enum CsvState {
    Header,
    Rows(Option<i64>),
    Done,
}

/// The usage rows that pass the filters as CSV, newest first, streamed in chunks so memory
/// stays flat.
pub async fn usage_csv(
    hub: web::Data<Hub>,
    _session: ApiSession,
    filters: web::Query<FilterParams>,
) -> Result<HttpResponse, ApiError> {
    let filter = std::sync::Arc::new(hub.usage_filter(&filters)?);
    let stream = futures_util::stream::unfold(CsvState::Header, move |state| {
        let hub = hub.clone();
        let filter = filter.clone();
        async move { next_csv_chunk(hub, filter, state).await }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"workshop-hub-usage.csv\"",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream))
}

async fn next_csv_chunk(
    hub: web::Data<Hub>,
    filter: std::sync::Arc<UsageFilter>,
    state: CsvState,
) -> Option<(Result<Bytes, actix_web::Error>, CsvState)> {
    match state {
        CsvState::Header => Some((Ok(Bytes::from(csv_header())), CsvState::Rows(None))),
        CsvState::Rows(cursor) => {
            let chunk = hub
                .run(move |h| h.usage_csv_chunk(&filter, cursor, CSV_CHUNK_ROWS))
                .await;
            match chunk {
                Ok((text, _)) if text.is_empty() => None,
                Ok((text, next)) => Some((
                    Ok(Bytes::from(text)),
                    next.map_or(CsvState::Done, |c| CsvState::Rows(Some(c))),
                )),
                Err(e) => Some((Err(ApiError(e).into()), CsvState::Done)),
            }
        }
        CsvState::Done => None,
    }
}

/// A usage row in the management API's shape: every column by its name.
pub fn usage_row_json(r: &UsageRecord) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

fn ledger_json(entries: &[LedgerEntry]) -> Value {
    entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": e.at,
                "kind": e.kind,
                "amount_micro_usd": e.amount,
                "note": e.note,
                "usage_id": e.usage_id,
            })
        })
        .collect()
}

/// One group's totals, named by what it was grouped by.
fn aggregate_json(group: GroupBy, a: &UsageAggregate) -> Value {
    let mut v = totals_json(a);
    let or_null = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
    match group {
        GroupBy::Day => v["day"] = json!(a.key),
        GroupBy::App => {
            v["app_id"] = or_null(&a.key);
            v["app_name"] = json!(a.app_name);
        }
        GroupBy::Provider => v["provider"] = json!(a.key),
        GroupBy::Model => {
            v["provider"] = json!(a.key);
            v["model"] = or_null(&a.sub_key);
        }
    }
    v
}

fn totals_json(a: &UsageAggregate) -> Value {
    json!({
        "requests": a.requests,
        "errors": a.errors,
        "input_tokens": a.input_tokens,
        "output_tokens": a.output_tokens,
        "credits_micro_usd": a.credits,
        "provider_micro_usd": a.provider,
        "cost_micro_usd": a.total_cost(),
    })
}

fn add_aggregate(mut sum: UsageAggregate, a: &UsageAggregate) -> UsageAggregate {
    sum.requests += a.requests;
    sum.errors += a.errors;
    sum.input_tokens += a.input_tokens;
    sum.output_tokens += a.output_tokens;
    sum.credits += a.credits;
    sum.provider += a.provider;
    sum
}
