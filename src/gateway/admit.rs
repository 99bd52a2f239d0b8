//! The front door, in order: the canonical path, the lock and the app key, the binding, the
//! endpoint policy and the request rate, all before a byte of the body is read; then the
//! bounded body, the model, tokens per minute, the budget and the credit hold.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use secrecy::ExposeSecret;

use super::body::{BodyError, HeldBody};
use super::limits::{BudgetHold, TokenReservation};
use super::{Caller, Gateway, Head, InFlight, MAX_MODEL_BYTES, Outgoing, PLAYGROUND_APP};
use super::{internal, refusal, refusal_with, target};
use crate::catalog::Model;
use crate::catalog::cost::hold_estimate;
use crate::hub::apps::{parse_key, secret_matches};
use crate::hub::{AppGate, HubError, Route};
use crate::ledger::{BilledTo, Hold, Surface};
use crate::money::MicroUsd;
use crate::providers::{
    self, CLIENT_CREDENTIALS, Endpoint, Provider, ProviderApi, ProxyRequest, Refusal, RequestInfo,
    Trouble,
};

/// Output tokens reserved against a tokens-per-minute limit when neither the request nor the
/// catalog says how many a call may produce.
const DEFAULT_OUTPUT_RESERVE: u64 = 4096;

/// A request whose app is known (its key checked), before anything else is.
pub(super) struct Known {
    pub provider: Provider,
    pub api: &'static dyn ProviderApi,
    /// The canonical path, from the version on (`/v1/chat/completions`).
    pub path: String,
    pub endpoint: Endpoint,
    pub app: Arc<AppGate>,
    pub surface: Surface,
    pub started_at: DateTime<Utc>,
    pub started: Instant,
    pub in_flight: InFlight,
}

/// A request whose caller is known and allowed, before its body is read.
pub(super) struct Gate {
    pub known: Known,
    pub route: Arc<Route>,
}

impl std::ops::Deref for Gate {
    type Target = Known;

    fn deref(&self) -> &Known {
        &self.known
    }
}

/// A request refused once its app was known: what to record it under, the model its body
/// named, the body itself (when it was read), and the answer.
pub(super) type Refused = (Gate, Option<String>, Option<Bytes>, Outgoing);

type Reserved = (
    Option<&'static Model>,
    Option<TokenReservation>,
    Option<BudgetHold>,
    Option<Hold>,
);

/// Who pays: credits on a managed connection, the provider on a BYOK one, nobody for calls
/// that cost nothing by nature (model lists, token counts, stored responses, caches).
fn billed_to(gate: &Gate, endpoint: Endpoint) -> BilledTo {
    if endpoint.is_metered() && !endpoint.is_billable() {
        BilledTo::None
    } else if gate.route.managed {
        BilledTo::Credits
    } else {
        BilledTo::Provider
    }
}

/// A call's trip upstream, as forwarding saw it.
#[derive(Debug, Default)]
pub(super) struct Trip {
    /// From arrival to the first attempt being sent.
    pub queued: Option<Duration>,
    pub attempts: u32,
    /// The provider's id for the call, from the last answer's headers.
    pub request_id: Option<String>,
}

impl Trip {
    /// One more attempt is being sent; the first ends the call's time in the queue.
    pub fn note_attempt(&mut self, arrived: Instant) {
        self.queued.get_or_insert_with(|| arrived.elapsed());
        self.attempts += 1;
    }
}

/// Everything known about a request once it is admitted, for forwarding and recording.
pub(super) struct Admitted {
    pub gate: Gate,
    pub body: HeldBody,
    pub info: RequestInfo,
    pub model: Option<&'static Model>,
    pub billed_to: BilledTo,
    pub hold: Option<Hold>,
    pub budget: Option<BudgetHold>,
    pub tokens: Option<TokenReservation>,
    /// Filled in while forwarding: what the call's page says of its trip upstream.
    pub trip: Trip,
}

impl Gateway {
    /// Who is calling and what: the canonical path, the lock, the app key. A refusal here
    /// comes before the app is known, so it is counted, not recorded.
    pub(super) async fn identify(
        &self,
        head: &Head,
        caller: Caller,
        in_flight: InFlight,
    ) -> Result<Known, Outgoing> {
        let started_at = Utc::now();
        let started = Instant::now();
        let p = head.provider;
        let api = providers::api(p);
        let path = target::canonical_path(&head.path, api.api_versions()).map_err(|why| {
            refusal(
                p,
                Refusal::BadRequest,
                &format!(
                    "Bad request: {why}. Call the provider's API path exactly as its SDK builds it, under the Hub's base URL (see the Apps page)."
                ),
            )
        })?;
        let endpoint = api.endpoint(&head.method, &path);
        if self.hub().is_locked() {
            return Err(locked(p));
        }
        let app = match caller {
            Caller::App => self.authenticate(api, head).await?,
            Caller::Playground { connection_id } => Arc::new(AppGate {
                id: PLAYGROUND_APP.to_string(),
                key_hash: Vec::new(),
                bindings: vec![(p, connection_id)],
                monthly_budget: None,
                rpm_limit: None,
                tpm_limit: None,
            }),
        };
        Ok(Known {
            provider: p,
            api,
            path,
            endpoint,
            app,
            surface: head.surface,
            started_at,
            started,
            in_flight,
        })
    }

    /// Everything else that can refuse a request without reading its body: the key's
    /// placement, the binding, the endpoint policy, the request rate, what is left to spend.
    pub(super) async fn admit_head(
        &self,
        head: &Head,
        known: &Known,
    ) -> Result<Arc<Route>, Outgoing> {
        let p = known.provider;
        if known.app.id != PLAYGROUND_APP {
            refuse_key_elsewhere(known.api, head, &known.path)?;
        }
        let route = self.bound_route(&known.app, p).await?;
        if route.managed && !known.endpoint.is_metered() {
            return Err(refusal(
                p,
                Refusal::EndpointNotSupported,
                "This endpoint is not available on managed connections: use a connection with your own key.",
            ));
        }
        self.inner
            .rates
            .admit_request(&known.app.id, known.app.rpm_limit, now_us())
            .map_err(|wait| rate_limited(p, wait, "requests"))?;
        if known.endpoint.is_billable() {
            self.refuse_when_spent(&known.app, &route, p)?;
        }
        Ok(route)
    }

    /// Refuses a billable call before its body is read when nothing is left to pay with: no
    /// credits for a managed connection, or the app's budget used up. What the call itself
    /// may cost is checked once the body tells.
    fn refuse_when_spent(&self, app: &AppGate, route: &Route, p: Provider) -> Result<(), Outgoing> {
        let credits = self.hub().credits();
        if route.managed && credits.balance() - credits.held() <= MicroUsd::ZERO {
            return Err(refusal(
                p,
                Refusal::InsufficientCredits,
                &format!(
                    "Insufficient Credits: balance {}, with {} held by requests in flight. Add credits in Usage & Billing.",
                    credits.balance(),
                    credits.held()
                ),
            ));
        }
        if let Some(budget) = app.monthly_budget {
            let month = Utc::now().format("%Y-%m").to_string();
            if let Some(over) = self.inner.budgets.exhausted(&app.id, &month, budget) {
                return Err(refusal(
                    p,
                    Refusal::AppBudgetExceeded,
                    &format!(
                        "App budget exceeded: this app spent {} of its {budget} monthly budget ({} more is held by requests in flight). Raise the budget on the Apps page or wait for next month.",
                        over.spent, over.open
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads the body within its bounds, then checks what only the body tells.
    /// Reads the body within its bounds, then checks what only the body tells. A refusal
    /// hands the gate back (with the model, when the body named one) to be recorded.
    pub(super) async fn admit_body<S, E>(
        &self,
        gate: Gate,
        head: &Head,
        body: &mut S,
    ) -> Result<Admitted, Box<Refused>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let limits = &self.inner.limits;
        let read = self
            .inner
            .bodies
            .read(
                body,
                head.content_length,
                self.inner.max_body_bytes,
                limits.body_timeout,
            )
            .await;
        let body = match read {
            Ok(body) => body,
            Err(e) => {
                let out = body_refusal(
                    gate.provider,
                    e,
                    self.inner.max_body_bytes,
                    limits.body_timeout,
                );
                return Err(Box::new((gate, None, None, out)));
            }
        };
        let mut info = gate.api.inspect(&ProxyRequest {
            method: &head.method,
            path: &gate.path,
            query: &head.query,
            headers: &head.headers,
            body: &body.bytes,
        });
        info.endpoint = gate.endpoint;
        match self.charge_ahead(&gate, &info).await {
            Ok((model, tokens, budget, hold)) => Ok(Admitted {
                billed_to: billed_to(&gate, info.endpoint),
                gate,
                body,
                info,
                model,
                hold,
                budget,
                tokens,
                trip: Default::default(),
            }),
            Err(out) => {
                let model = info.model.take();
                Err(Box::new((gate, model, Some(body.bytes.clone()), out)))
            }
        }
    }

    /// The priced model, and the tokens, budget and credits reserved for the request.
    async fn charge_ahead(&self, gate: &Gate, info: &RequestInfo) -> Result<Reserved, Outgoing> {
        let model = self.priced_model(gate, info)?;
        let tokens = self.reserve_tokens(gate, info, model)?;
        let estimate = match (&model, info.endpoint.is_billable()) {
            (Some(m), true) => hold_estimate(m, info.input_tokens_estimate, info.max_output_tokens),
            _ => MicroUsd::ZERO,
        };
        let budget = self
            .reserve_budget(&gate.app, estimate)
            .await
            .map_err(|msg| refusal(gate.provider, Refusal::AppBudgetExceeded, &msg))?;
        let hold = self.hold_credits(gate, estimate)?;
        Ok((model, tokens, budget, hold))
    }

    pub(super) async fn authenticate(
        &self,
        api: &dyn ProviderApi,
        head: &Head,
    ) -> Result<Arc<AppGate>, Outgoing> {
        let p = api.provider();
        let invalid = || {
            refusal(
                p,
                Refusal::InvalidAppKey,
                "Invalid app key: use the whk_… key of one of your apps (Apps page in the Hub) as this SDK's API key.",
            )
        };
        let key = api
            .app_key(&head.headers, &head.query)
            .ok_or_else(invalid)?;
        let (id, secret) = parse_key(key.expose_secret()).ok_or_else(invalid)?;
        let generation = self.hub().generation();
        let app = match self.inner.cache.app(generation, id) {
            Some(app) => app,
            None => match self.hub().app_gate(id).await {
                Ok(Some(app)) => {
                    let app = Arc::new(app);
                    self.inner.cache.keep_app(generation, app.clone());
                    app
                }
                Ok(None) => return Err(invalid()),
                Err(e) => return Err(internal(p, e)),
            },
        };
        if secret_matches(secret, &app.key_hash) {
            Ok(app)
        } else {
            Err(invalid())
        }
    }

    /// The connection this app uses for `provider`, refusing deleted, disabled or absent ones.
    async fn bound_route(&self, app: &AppGate, p: Provider) -> Result<Arc<Route>, Outgoing> {
        let revoked = |why: &str| {
            refusal(
                p,
                Refusal::ConnectorRevoked,
                &format!(
                    "Connector revoked: {why} Bind this app to an active {} connection on the Apps page.",
                    p.display_name()
                ),
            )
        };
        let Some(id) = app.binding(p) else {
            return Err(revoked(&format!(
                "this app has no {} connection.",
                p.display_name()
            )));
        };
        let generation = self.hub().generation();
        let route = match self.inner.cache.route(generation, id) {
            Some(route) => route,
            None => match self.hub().route(id).await {
                Ok(Some(route)) => {
                    let route = Arc::new(route);
                    self.inner.cache.keep_route(generation, route.clone());
                    route
                }
                Ok(None) => return Err(revoked("the connection this app used was deleted.")),
                Err(HubError::Locked) => return Err(locked(p)),
                Err(e) => return Err(internal(p, e)),
            },
        };
        if !route.enabled {
            return Err(revoked(
                "the connection this app uses is deleted (disabled).",
            ));
        }
        Ok(route)
    }

    /// The catalog model the request names: required for billable calls, and priced for
    /// managed ones.
    fn priced_model(
        &self,
        gate: &Gate,
        info: &RequestInfo,
    ) -> Result<Option<&'static Model>, Outgoing> {
        let p = gate.provider;
        let billable = info.endpoint.is_billable();
        let Some(name) = &info.model else {
            if billable {
                return Err(refusal(
                    p,
                    Refusal::BadRequest,
                    "Bad request: the body names no model. Add a \"model\" field.",
                ));
            }
            return Ok(None);
        };
        if name.len() > MAX_MODEL_BYTES {
            return Err(refusal(
                p,
                Refusal::BadRequest,
                &format!(
                    "Bad request: the model name is {} bytes long; model names have at most {MAX_MODEL_BYTES}.",
                    name.len()
                ),
            ));
        }
        let model = self.hub().catalog().resolve(p, name);
        if gate.route.managed && billable && model.is_none() {
            return Err(refusal(
                p,
                Refusal::ModelNotAvailable,
                &self.unpriced_model_message(p, name),
            ));
        }
        Ok(model)
    }

    /// Why a managed call's model cannot be paid for; a model of another provider gets a hint
    /// to the surface that serves it.
    fn unpriced_model_message(&self, p: Provider, name: &str) -> String {
        let elsewhere = Provider::ALL
            .into_iter()
            .filter(|&other| other != p)
            .find(|&other| self.hub().catalog().resolve(other, name).is_some());
        match elsewhere {
            Some(other) => format!(
                "Model not available: {name} is served by {}, not {}. Call it through the OpenAI-compatible base URL /v1 (any model, with this app key) or through /{other}.",
                other.display_name(),
                p.display_name()
            ),
            None => format!(
                "Model not available: {name} has no price in the Hub's catalog, so managed credits cannot pay for it. Pick a model from the Models page, or add its price in prices.json."
            ),
        }
    }

    /// Reserves the request's estimated tokens (its input and the most it may write) under
    /// the app's tokens-per-minute limit; the real count is settled when it is recorded.
    fn reserve_tokens(
        &self,
        gate: &Gate,
        info: &RequestInfo,
        model: Option<&Model>,
    ) -> Result<Option<TokenReservation>, Outgoing> {
        if !info.endpoint.is_billable() {
            return Ok(None);
        }
        let output = info
            .max_output_tokens
            .or(model.map(|m| m.max_output_tokens))
            .unwrap_or(DEFAULT_OUTPUT_RESERVE);
        let tokens = info.input_tokens_estimate.saturating_add(output);
        self.inner
            .rates
            .reserve_tokens(&gate.app.id, gate.app.tpm_limit, tokens, now_us())
            .map_err(|wait| rate_limited(gate.provider, wait, "tokens"))
    }

    async fn reserve_budget(
        &self,
        app: &AppGate,
        estimate: MicroUsd,
    ) -> Result<Option<BudgetHold>, String> {
        let Some(budget) = app.monthly_budget else {
            return Ok(None);
        };
        let month = Utc::now().format("%Y-%m").to_string();
        let budgets = &self.inner.budgets;
        if budgets.needs_load(&app.id, &month) {
            let spent = self
                .hub()
                .month_spend(&app.id)
                .await
                .map_err(|e| e.to_string())?;
            budgets.load(&app.id, &month, spent);
        }
        budgets.reserve(&app.id, budget, estimate).map(Some).map_err(|over| {
            format!(
                "App budget exceeded: this app spent {} of its {} monthly budget ({} more is held by requests in flight); this request may cost up to {}. Raise the budget on the Apps page or wait for next month.",
                over.spent, budget, over.open, estimate
            )
        })
    }

    fn hold_credits(&self, gate: &Gate, estimate: MicroUsd) -> Result<Option<Hold>, Outgoing> {
        if !gate.route.managed || estimate <= MicroUsd::ZERO {
            return Ok(None);
        }
        match self.hub().credits().hold(estimate) {
            Ok(hold) => Ok(Some(hold)),
            Err(short) => {
                self.note_trouble(
                    &gate.route,
                    Trouble::InsufficientCredits,
                    format!(
                        "An app's request needed up to {} with {} available.",
                        short.needed,
                        short.available()
                    ),
                );
                Err(refusal(
                    gate.provider,
                    Refusal::InsufficientCredits,
                    &format!(
                        "Insufficient Credits: balance {}, this request may cost up to {}. Add credits in Usage & Billing.",
                        short.available(),
                        short.needed
                    ),
                ))
            }
        }
    }
}

pub(super) fn locked(p: Provider) -> Outgoing {
    refusal(
        p,
        Refusal::HubLocked,
        "Hub locked: the Workshop Hub is locked. Unlock it in the browser (or start it with WORKSHOP_HUB_PASSPHRASE) and retry.",
    )
}

fn rate_limited(p: Provider, wait: u64, what: &str) -> Outgoing {
    refusal_with(
        p,
        Refusal::AppRateLimited,
        &format!(
            "App rate limit reached: this app's {what}-per-minute limit is used up. Retry in {wait} s, or raise the limit on the Apps page."
        ),
        Some(wait),
    )
}

fn body_refusal(p: Provider, e: BodyError, limit: usize, deadline: Duration) -> Outgoing {
    match e {
        BodyError::TooLarge => refusal(
            p,
            Refusal::RequestTooLarge,
            &format!(
                "Request too large: the body is over {} MiB. Send less, or raise --max-body-mib.",
                limit / (1024 * 1024)
            ),
        ),
        BodyError::TimedOut => refusal(
            p,
            Refusal::BadRequest,
            &format!(
                "Bad request: the request body did not arrive within {} s. Send it at once, or raise --body-timeout-secs.",
                deadline.as_secs()
            ),
        ),
        BodyError::Broken => refusal(
            p,
            Refusal::BadRequest,
            "Bad request: the request body could not be read.",
        ),
    }
}

/// Refuses a request that carries its app key's secret anywhere but a credential header (or
/// Gemini's `key` parameter): such a copy could otherwise travel upstream.
fn refuse_key_elsewhere(api: &dyn ProviderApi, head: &Head, path: &str) -> Result<(), Outgoing> {
    let Some(key) = api.app_key(&head.headers, &head.query) else {
        return Ok(());
    };
    let Some((_, secret)) = parse_key(key.expose_secret()) else {
        return Ok(());
    };
    let in_header = head
        .headers
        .iter()
        .filter(|(name, _)| !CLIENT_CREDENTIALS.contains(&name.as_str()))
        .find(|(_, value)| value.contains(secret))
        .map(|(name, _)| format!("the `{name}` header"));
    let in_query = url::form_urlencoded::parse(head.query.as_bytes())
        .find(|(name, value)| name != "key" && (value.contains(secret) || name.contains(secret)))
        .map(|_| "the query string".to_string());
    let in_path = (path.contains(secret) || head.path.contains(secret)).then(|| "the path".into());
    match in_header.or(in_query).or(in_path) {
        None => Ok(()),
        Some(place) => Err(refusal(
            api.provider(),
            Refusal::BadRequest,
            &format!(
                "Bad request: the app key also appears in {place}. Send it only where the SDK puts the API key."
            ),
        )),
    }
}

/// Microseconds on a monotonic clock, for the rate limits.
fn now_us() -> u128 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    // Start a minute in, so the first requests of a process meet meters that are idle.
    START
        .get_or_init(Instant::now)
        .elapsed()
        .as_micros()
        .saturating_add(60_000_000)
}
