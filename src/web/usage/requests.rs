//! The request log in the browser: `/requests` (every call, newest first, with filters that
//! also drive its totals and CSV export) and `/requests/{id}` (one call: timings, tokens,
//! cost lines that add up to its cost, and its bodies when kept).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::filters::FilterForm;
use super::pages::{RequestView, count, grouped, request_view};
use crate::catalog::cost::CostLine;
use crate::gateway::{Gateway, UnauthenticatedCalls};
use crate::hub::{FilterParams, HubError, OpenedBodies, RequestDetail};
use crate::store::UsageTotals;
use crate::web::auth::PageSession;
use crate::web::errors::PageError;
use crate::web::pages::{Layout, Money, render};

const PAGE_ROWS: usize = 50;

#[derive(Deserialize)]
pub struct Paging {
    before: Option<String>,
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
