//! The request log in the browser: `/requests` (every call, newest first, with filters that
//! also drive its totals and CSV export) and `/requests/{id}` (one call: timings, tokens,
//! cost lines that add up to its cost, and its bodies when kept).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::pages::{RequestView, count, grouped, request_view};
use crate::catalog::cost::CostLine;
use crate::gateway::{Gateway, UnauthenticatedCalls};
use crate::hub::{FilterParams, HubError, OpenedBodies, RequestDetail};
use crate::providers::Provider;
use crate::store::UsageTotals;
use crate::web::auth::PageSession;
use crate::web::errors::PageError;
use crate::web::pages::{Layout, Money, render};

const PAGE_ROWS: usize = 50;

/// The status choices of the filter: any, ok, error, then the Hub's own codes.
const STATUS_CHOICES: [&str; 13] = [
    "ok",
    "error",
    "app_rate_limited",
    "app_budget_exceeded",
    "insufficient_credits",
    "model_not_available",
    "endpoint_not_supported",
    "connector_revoked",
    "request_too_large",
    "bad_request",
    "upstream_connection_failed",
    "upstream_timeout",
    "client_disconnected",
];

#[derive(Deserialize)]
pub struct Paging {
    before: Option<String>,
}

/// The filter form the request log and Usage & Billing share.
pub(super) struct FilterForm {
    pub action: &'static str,
    pub filters: FilterParams,
    /// (id, name), by name.
    pub apps: Vec<(String, String)>,
    pub providers: Vec<(&'static str, &'static str)>,
    pub statuses: &'static [&'static str],
}

impl FilterForm {
    pub fn new(
        action: &'static str,
        filters: FilterParams,
        names: &HashMap<String, String>,
    ) -> FilterForm {
        let mut apps: Vec<(String, String)> = names
            .iter()
            .map(|(id, n)| (id.clone(), n.clone()))
            .collect();
        apps.sort_by_key(|a| a.1.to_lowercase());
        FilterForm {
            action,
            filters,
            apps,
            providers: Provider::ALL
                .iter()
                .map(|p| (p.as_str(), p.display_name()))
                .collect(),
            statuses: &STATUS_CHOICES,
        }
    }

    /// The filters as a query string, for export and paging links.
    pub fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(filter_pairs(&self.filters))
            .finish()
    }
}

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage {
    l: Layout,
    form: FilterForm,
    rows: Vec<RequestView>,
    totals: UsageTotals,
    credits: Money,
    provider_cost: Money,
    unauthenticated: UnauthenticatedCalls,
    /// The filters as a query string, for the export and paging links.
    query: String,
    older: Option<i64>,
    error: Option<String>,
}

/// Every call, newest first, narrowed by the filters.
pub async fn list(
    hub: web::Data<crate::hub::Hub>,
    gateway: web::Data<Gateway>,
    session: PageSession,
    filters: web::Query<FilterParams>,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, PageError> {
    let filters = filters.into_inner();
    let before = paging
        .before
        .as_deref()
        .and_then(|b| b.parse().ok())
        .filter(|&b: &i64| b > 0);
    let f = filters.clone();
    let found = hub
        .run(move |h| {
            let names = h.app_names()?;
            let listed = h.usage_filter(&f).and_then(|filter| {
                Ok((
                    h.usage_requests(&filter, before, PAGE_ROWS)?,
                    h.usage_totals(&filter)?,
                ))
            });
            Ok((names, listed))
        })
        .await?;
    let (names, listed) = found;
    let (rows, totals, older, error) = match listed {
        Ok((page, totals)) => {
            let rows = page.rows.iter().map(|r| request_view(&names, r)).collect();
            (rows, totals, page.next_cursor, None)
        }
        Err(e @ HubError::BadInput { .. }) => (
            Vec::new(),
            UsageTotals::default(),
            None,
            Some(e.to_string()),
        ),
        Err(e) => return Err(e.into()),
    };
    let form = FilterForm::new("/requests", filters, &names);
    let page = RequestsPage {
        l: Layout::new(&hub, &session, "requests"),
        credits: Money::of(totals.credits),
        provider_cost: Money::of(totals.provider),
        unauthenticated: gateway.unauthenticated_calls(),
        query: form.query(),
        form,
        rows,
        totals,
        older,
        error,
    };
    render(StatusCode::OK, &page)
}

fn filter_pairs(f: &FilterParams) -> Vec<(&'static str, String)> {
    [
        ("from", &f.from),
        ("to", &f.to),
        ("app", &f.app),
        ("provider", &f.provider),
        ("model", &f.model),
        ("status", &f.status),
        ("surface", &f.surface),
    ]
    .into_iter()
    .filter_map(|(k, v)| {
        v.as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (k, v.to_string()))
    })
    .collect()
}

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage {
    l: Layout,
    r: RequestView,
    detail: RequestDetail,
    lines: Vec<LineView>,
    total: Money,
    bodies: Option<BodiesView>,
    /// A chat call whose request can be opened in the Playground.
    replayable: bool,
}

/// Kept bodies as the page shows them: JSON pretty-printed, a stream as the answer it
/// spelled out with its raw events beside it.
struct BodiesView {
    request: Option<String>,
    response: Option<String>,
    request_truncated: bool,
    response_truncated: bool,
    assembled_answer: Option<String>,
    /// The response is a stream's raw events (shown collapsed).
    events: bool,
}

impl BodiesView {
    fn of(b: OpenedBodies, streamed: bool) -> BodiesView {
        BodiesView {
            request: b.request.as_deref().map(pretty),
            response: if streamed {
                b.response
            } else {
                b.response.as_deref().map(pretty)
            },
            request_truncated: b.request_truncated,
            response_truncated: b.response_truncated,
            assembled_answer: b.assembled_answer,
            events: streamed,
        }
    }
}

/// JSON indented for reading; anything else as it was.
fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string())
}

struct LineView {
    what: &'static str,
    tokens: String,
    price: String,
    amount: Money,
}

impl From<&CostLine> for LineView {
    fn from(l: &CostLine) -> LineView {
        LineView {
            what: l.what,
            tokens: grouped(count(l.tokens)),
            price: format!("${}", l.price_per_million),
            amount: Money::of(crate::money::MicroUsd(l.micro_usd)),
        }
    }
}

/// One call: what it was, when, what it cost line by line, and its bodies when kept.
pub async fn show(
    hub: web::Data<crate::hub::Hub>,
    session: PageSession,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let id: i64 = id
        .trim()
        .parse()
        .map_err(|_| HubError::bad_input("id", "A request id is a whole number."))?;
    let (detail, bodies, replayable, names) = hub
        .run(move |h| {
            let detail = h.usage_request(id)?;
            let bodies = h.request_bodies(&detail.record)?;
            let replayable = bodies.is_some() && h.replay(id)?.is_some();
            Ok((detail, bodies, replayable, h.app_names()?))
        })
        .await?;
    let page = RequestPage {
        l: Layout::new(&hub, &session, "requests"),
        r: request_view(&names, &detail.record),
        lines: detail.cost_lines.iter().map(LineView::from).collect(),
        total: Money::of(detail.record.cost.unwrap_or_default()),
        bodies: bodies.map(|b| BodiesView::of(b, detail.record.streamed)),
        replayable,
        detail,
    };
    render(StatusCode::OK, &page)
}
