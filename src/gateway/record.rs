//! Recording a request once its answer is known: the usage record (every string bounded),
//! its price, the token reservation settled, and the connection's troubleshooting state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::admit::{Admitted, Known, Trip};
use super::limits::{BudgetHold, TokenReservation};
use super::stream::{Finish, Finishing, StreamEnd};
use super::writer::Job;
use super::{Gateway, InFlight, MAX_MODEL_BYTES, OutBody, Outgoing};
use crate::catalog::Model;
use crate::catalog::cost::cost;
use crate::hub::{CapturedBodies, Route};
use crate::ledger::{BilledTo, Hold, Surface, UsageRecord};
use crate::providers::{Endpoint, Metered, Provider, Trouble};
use crate::store::Outcome;

/// Longest endpoint name kept in a usage record (an unmetered call records its path).
const MAX_ENDPOINT_BYTES: usize = 128;
/// Longest error code kept in a usage record.
const MAX_CODE_BYTES: usize = 64;

/// Longest provider request id kept.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// What is needed to record a request once its answer is known.
pub(super) struct Context {
    gateway: Gateway,
    app_id: String,
    route: Arc<Route>,
    provider: Provider,
    endpoint: Endpoint,
    /// The canonical path, recorded as the endpoint of a call the Hub does not meter.
    path: String,
    requested_model: Option<String>,
    model: Option<&'static Model>,
    streamed: bool,
    status: u16,
    billed_to: BilledTo,
    hold: Option<Hold>,
    budget: Option<BudgetHold>,
    tokens: Option<TokenReservation>,
    /// What the app sent and got back, when bodies are kept: each capped, and whether cut.
    request: Option<(Bytes, bool)>,
    response: Option<(Bytes, bool)>,
    surface: Surface,
    started_at: DateTime<Utc>,
    started: Instant,
    ttfb: Duration,
    trip: Trip,
    in_flight: InFlight,
}

impl Context {
    pub fn new(gateway: Gateway, admitted: Admitted, status: u16, ttfb: Duration) -> Context {
        let Admitted {
            gate,
            info,
            model,
            billed_to,
            hold,
            budget,
            tokens,
            body,
            trip,
        } = admitted;
        let request = gateway
            .hub()
            .keeps_bodies()
            .then(|| CapturedBodies::capped(&body.bytes));
        Context {
            gateway,
            app_id: gate.app.id.clone(),
            provider: gate.provider,
            endpoint: info.endpoint,
            surface: gate.surface,
            started_at: gate.started_at,
            started: gate.started,
            route: gate.route,
            path: gate.known.path,
            requested_model: info.model,
            model,
            streamed: info.stream,
            status,
            billed_to,
            hold,
            budget,
            tokens,
            request,
            response: None,
            ttfb,
            trip,
            in_flight: gate.known.in_flight,
        }
    }

    /// Whether the record keeps bodies (so the caller should hand over the answer's).
    pub fn keeps_bodies(&self) -> bool {
        self.request.is_some()
    }

    /// The answer as the app got it, kept with the record when bodies are kept.
    pub fn with_response(mut self, body: &[u8]) -> Context {
        if self.keeps_bodies() {
            self.response = Some(CapturedBodies::capped(body));
        }
        self
    }

    /// Builds the usage record, prices it, and writes it durably before returning.
    pub async fn finish(self, metered: Option<Metered>, error: Option<String>) {
        let writer = self.gateway.inner.writer.clone();
        let alone = self.in_flight.alone();
        writer.write(self.into_job(metered, error), alone).await;
    }

    fn into_job(self, metered: Option<Metered>, error: Option<String>) -> Job {
        let usage = metered
            .as_ref()
            .map(|m| m.usage.clone())
            .unwrap_or_default();
        let unmetered = self.endpoint == Endpoint::Other;
        let estimated = unmetered || metered.as_ref().is_some_and(|m| m.estimated);
        if error.is_none() && self.status < 400 {
            self.gateway.note_success(&self.route);
        }
        let hub = self.gateway.hub();
        let served = usage.model.clone();
        let model = served
            .as_deref()
            .and_then(|m| hub.catalog().resolve(self.provider, m))
            .or(self.model);
        let cost = match (unmetered, &model) {
            (false, Some(m)) => Some(cost(m, &usage).micro),
            _ => None,
        };
        self.gateway.inner.rates.settle_tokens(
            self.tokens,
            usage.input_tokens.saturating_add(usage.output_tokens),
        );
        let endpoint = endpoint_name(self.endpoint, &self.path);
        let bodies = self.request.map(|(request, request_truncated)| {
            let (response, response_truncated) = self.response.unwrap_or_default();
            CapturedBodies {
                request,
                response,
                request_truncated,
                response_truncated,
            }
        });
        Job {
            bodies,
            usage: UsageRecord {
                id: 0,
                started_at: self.started_at,
                app_id: Some(self.app_id),
                connection_id: Some(self.route.id.clone()),
                provider: self.provider,
                model: served
                    .or(self.requested_model)
                    .map(|m| bounded(&m, MAX_MODEL_BYTES)),
                endpoint,
                streamed: self.streamed,
                status: self.status,
                error_code: error.map(|e| bounded(&e, MAX_CODE_BYTES)),
                input_tokens: usage.input_tokens,
                cached_input_tokens: usage.cached_input_tokens,
                cache_write_tokens: usage.cache_write_tokens(),
                output_tokens: usage.output_tokens,
                reasoning_tokens: usage.reasoning_tokens,
                cost,
                billed_to: self.billed_to,
                estimated,
                latency_ms: self.started.elapsed().as_millis() as u64,
                ttfb_ms: Some(self.ttfb.as_millis() as u64),
                surface: self.surface,
                queued_ms: self.trip.queued.map(|q| q.as_millis() as u64),
                attempts: Some(self.trip.attempts),
                provider_request_id: self
                    .trip
                    .request_id
                    .map(|id| bounded(&id, MAX_REQUEST_ID_BYTES)),
            },
            hold: self.hold,
            budget: self.budget,
            done: None,
        }
    }
}

impl Gateway {
    /// Records a request the Hub refused once its app was known, and passes the answer on.
    pub(super) async fn record_refusal(
        &self,
        known: &Known,
        model: Option<String>,
        request: Option<Bytes>,
        out: Outgoing,
    ) -> Outgoing {
        let code = out.refused.map_or("internal", |why| why.as_str());
        let usage = UsageRecord {
            id: 0,
            started_at: known.started_at,
            app_id: Some(known.app.id.clone()),
            connection_id: known.app.binding(known.provider).map(str::to_owned),
            provider: known.provider,
            model: model.map(|m| bounded(&m, MAX_MODEL_BYTES)),
            endpoint: endpoint_name(known.endpoint, &known.path),
            streamed: false,
            status: out.status,
            error_code: Some(code.to_string()),
            input_tokens: 0,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            cost: Some(crate::money::MicroUsd::ZERO),
            billed_to: BilledTo::None,
            estimated: false,
            latency_ms: known.started.elapsed().as_millis() as u64,
            ttfb_ms: None,
            surface: known.surface,
            queued_ms: None,
            attempts: Some(0),
            provider_request_id: None,
        };
        let bodies = self.hub().keeps_bodies().then(|| {
            let (request, request_truncated) =
                CapturedBodies::capped(request.as_deref().unwrap_or_default());
            let answer = match &out.body {
                OutBody::Full(bytes) => bytes.as_ref(),
                OutBody::Stream(_) => &[],
            };
            let (response, response_truncated) = CapturedBodies::capped(answer);
            CapturedBodies {
                request,
                response,
                request_truncated,
                response_truncated,
            }
        });
        let job = Job {
            usage,
            bodies,
            hold: None,
            budget: None,
            done: None,
        };
        self.inner.writer.write(job, known.in_flight.alone()).await;
        out
    }
}

/// What a usage record calls the endpoint: its name when metered, else its path.
fn endpoint_name(endpoint: Endpoint, path: &str) -> String {
    if endpoint == Endpoint::Other {
        bounded(path, MAX_ENDPOINT_BYTES)
    } else {
        endpoint.as_str().to_string()
    }
}

impl Finish for Context {
    fn finish(mut self: Box<Self>, end: StreamEnd) -> Finishing {
        self.response = end.captured;
        Box::pin((*self).finish(end.metered, end.error))
    }

    fn finish_later(mut self: Box<Self>, end: StreamEnd) {
        self.response = end.captured;
        let writer = self.gateway.inner.writer.clone();
        writer.record_later(self.into_job(end.metered, end.error));
    }
}

impl Gateway {
    /// Shows a provider problem on the connection (as verification would), off the hot path.
    pub(super) fn note_trouble(&self, route: &Route, trouble: Trouble, detail: String) {
        route
            .failing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.hub().note_connection_outcome(
            &route.id,
            Outcome::Failed {
                code: trouble.code().to_string(),
                detail,
            },
        );
    }

    /// Clears a connection's last error after a success, once.
    fn note_success(&self, route: &Route) {
        if route
            .failing
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.hub()
                .note_connection_outcome(&route.id, Outcome::Succeeded);
        }
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn bounded_strings_cut_on_a_character_boundary() {
        assert_eq!(bounded("gpt-4o", 256), "gpt-4o");
        assert_eq!(bounded(&"m".repeat(4 << 20), 256).len(), 256);
        assert_eq!(bounded("aé", 2), "a");
    }
}
