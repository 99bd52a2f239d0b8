//! The gateway: an app's call, in its provider's native API, is checked (app key, binding,
//! limits, credits), forwarded with the stored provider key, streamed back as it arrives,
//! metered from the provider's own usage numbers, and recorded.

pub mod limits;
mod recorder;
mod stream;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use secrecy::SecretString;

use crate::catalog::cost::{cost, hold_estimate};
use crate::hub::apps::{parse_key, secret_matches};
use crate::hub::{Hub, HubError};
use crate::ledger::{BilledTo, Hold, NewUsage};
use crate::money::MicroUsd;
use crate::providers::{
    self, Endpoint, Metered, Provider, ProviderApi, ProxyRequest, Refusal, RequestInfo, Trouble,
};
use crate::store::Outcome;
use limits::{BudgetHold, Budgets, RateLimits};
pub use recorder::{Job, Recorder};

/// Managed connections retry an upstream rate limit this many times, before any byte has
/// gone to the app.
const MAX_RATE_LIMIT_RETRIES: u32 = 2;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(20);

/// An app's request as the web layer hands it over.
pub struct Incoming {
    pub provider: Provider,
    pub method: String,
    /// The provider path, e.g. `/v1/chat/completions` (the `/openai` prefix removed).
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

pub enum OutBody {
    Full(Bytes),
    Stream(BodyStream),
}

/// What goes back to the app.
pub struct Outgoing {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: OutBody,
}

/// The gateway's shared state: a cache of app keys and connection targets, rate limits,
/// budgets and the usage writer.
#[derive(Default)]
pub struct GatewayState {
    cache: RwLock<Cache>,
    pub(crate) rates: RateLimits,
    pub(crate) budgets: Budgets,
    recorder: OnceLock<Recorder>,
}

#[derive(Default)]
struct Cache {
    apps: HashMap<String, Arc<AppAuth>>,
    connections: HashMap<String, Arc<ConnTarget>>,
}

struct AppAuth {
    id: String,
    key_hash: Vec<u8>,
    bindings: HashMap<Provider, String>,
    monthly_budget: Option<MicroUsd>,
    rpm: Option<i64>,
    tpm: Option<i64>,
}

struct ConnTarget {
    id: String,
    managed: bool,
    enabled: bool,
    base: String,
    key: SecretString,
    has_error: std::sync::atomic::AtomicBool,
}

impl GatewayState {
    /// Forgets cached keys and targets (after any change to apps or connections, and on lock).
    pub fn invalidate(&self) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.apps.clear();
        cache.connections.clear();
    }

    pub fn start_recorder(&self, hub: &Hub) {
        let _ = self.recorder.get_or_init(|| Recorder::start(hub.clone()));
    }

    fn recorder(&self, hub: &Hub) -> Recorder {
        self.recorder
            .get_or_init(|| Recorder::start(hub.clone()))
            .clone()
    }
}

/// The Hub's own refusal, in the provider's native error shape.
pub fn refusal(provider: Provider, why: Refusal, message: &str) -> Outgoing {
    refusal_with(provider, why, message, None)
}

fn refusal_with(
    provider: Provider,
    why: Refusal,
    message: &str,
    retry_after: Option<u64>,
) -> Outgoing {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(secs) = retry_after {
        headers.push(("retry-after".to_string(), secs.to_string()));
    }
    Outgoing {
        status: why.status(),
        headers,
        body: OutBody::Full(providers::api(provider).error_body(why, message)),
    }
}

/// Everything known about a request once it is admitted, for metering and recording.
struct Admitted {
    provider: Provider,
    app: Arc<AppAuth>,
    connection: Arc<ConnTarget>,
    info: RequestInfo,
    model: Option<crate::catalog::Model>,
    billed_to: BilledTo,
    hold: Option<Hold>,
    budget: Option<BudgetHold>,
    started_at: DateTime<Utc>,
    started: Instant,
}

/// Who is calling: an app with its key, or the Hub's own Playground (a signed-in person)
/// on a connection they picked.
pub enum Caller {
    AppKey,
    Playground { connection_id: String },
}

/// The app id Playground requests are recorded under.
pub const PLAYGROUND_APP: &str = "playground";

/// Handles one proxied request from an app, from start to finish.
pub async fn handle(hub: &Hub, req: Incoming) -> Outgoing {
    handle_as(hub, req, Caller::AppKey).await
}

/// Handles one request for `caller`: the same checks, forwarding, metering and record.
pub async fn handle_as(hub: &Hub, req: Incoming, caller: Caller) -> Outgoing {
    let api = providers::api(req.provider);
    let started_at = Utc::now();
    let started = Instant::now();
    let request = ProxyRequest {
        method: &req.method,
        path: &req.path,
        query: req.query.as_deref().unwrap_or(""),
        headers: &req.headers,
        body: &req.body,
    };
    let info = api.inspect(&request);
    let admitted = match admit(hub, &req, caller, info, started_at, started).await {
        Ok(a) => a,
        Err(out) => return out,
    };
    forward(hub, api, &request, admitted).await
}

/// Checks everything that can refuse a request before anything is sent upstream.
async fn admit(
    hub: &Hub,
    req: &Incoming,
    caller: Caller,
    info: RequestInfo,
    started_at: DateTime<Utc>,
    started: Instant,
) -> Result<Admitted, Outgoing> {
    let p = req.provider;
    if hub.is_locked() {
        return Err(refusal(
            p,
            Refusal::HubLocked,
            "Hub locked: the Workshop Hub is locked. Unlock it in the browser (or start it with WORKSHOP_HUB_PASSPHRASE) and retry.",
        ));
    }
    let app = match caller {
        Caller::AppKey => authenticate(hub, &info).await?.ok_or_else(|| {
            refusal(
                p,
                Refusal::InvalidAppKey,
                "Invalid app key: use the whk_… key of one of your apps (Apps page in the Hub) as this SDK's API key.",
            )
        })?,
        Caller::Playground { connection_id } => Arc::new(AppAuth {
            id: PLAYGROUND_APP.to_string(),
            key_hash: Vec::new(),
            bindings: HashMap::from([(p, connection_id)]),
            monthly_budget: None,
            rpm: None,
            tpm: None,
        }),
    };
    let connection = bound_connection(hub, &app, p).await?;
    let model = match (&info.model, info.endpoint.is_billable()) {
        (Some(name), _) => hub.catalog().resolve(p, name).cloned(),
        (None, true) => {
            return Err(refusal(
                p,
                Refusal::BadRequest,
                "Bad request: the body names no model. Add a \"model\" field.",
            ));
        }
        (None, false) => None,
    };
    let billed_to = if connection.managed {
        BilledTo::Credits
    } else {
        BilledTo::Provider
    };
    if connection.managed && info.endpoint.is_billable() && model.is_none() {
        let name = info.model.as_deref().unwrap_or("");
        return Err(refusal(
            p,
            Refusal::ModelNotAvailable,
            &format!(
                "Model not available: {name} has no price in the Hub's catalog, so managed credits cannot pay for it. Pick a model from the Models page, or add its price in prices.json."
            ),
        ));
    }
    let now_secs = started_at.timestamp().max(0) as u64;
    if let Err(wait) = hub
        .gateway()
        .rates
        .admit(&app.id, app.rpm, app.tpm, now_secs)
    {
        return Err(refusal_with(
            p,
            Refusal::AppRateLimited,
            &format!(
                "App rate limit reached: this app's per-minute limit is used up. Retry in {wait} s, or raise the limit on the Apps page."
            ),
            Some(wait),
        ));
    }
    let estimate = match (&model, info.endpoint.is_billable()) {
        (Some(m), true) => hold_estimate(m, info.input_tokens_estimate, info.max_output_tokens),
        _ => MicroUsd::ZERO,
    };
    let budget = reserve_budget(hub, &app, estimate)
        .await
        .map_err(|msg| refusal(p, Refusal::AppBudgetExceeded, &msg))?;
    let hold = if connection.managed && estimate > MicroUsd::ZERO {
        match hub.credits().hold(estimate) {
            Ok(h) => Some(h),
            Err(short) => {
                note_trouble(
                    hub,
                    &connection,
                    Trouble::InsufficientCredits,
                    format!(
                        "An app's request needed up to {} with {} available.",
                        short.needed,
                        short.available()
                    ),
                );
                return Err(refusal(
                    p,
                    Refusal::InsufficientCredits,
                    &format!(
                        "Insufficient Credits: balance {}, this request may cost up to {}. Add credits in Usage & Billing.",
                        short.available(),
                        short.needed
                    ),
                ));
            }
        }
    } else {
        None
    };
    Ok(Admitted {
        provider: p,
        app,
        connection,
        info,
        model,
        billed_to,
        hold,
        budget,
        started_at,
        started,
    })
}

async fn authenticate(hub: &Hub, info: &RequestInfo) -> Result<Option<Arc<AppAuth>>, Outgoing> {
    use secrecy::ExposeSecret;
    let Some(key) = &info.app_key else {
        return Ok(None);
    };
    let Some((id, secret)) = parse_key(key.expose_secret()) else {
        return Ok(None);
    };
    let app = match cached_app(hub, id) {
        Some(app) => app,
        None => match load_app(hub, id).await {
            Ok(Some(app)) => app,
            Ok(None) => return Ok(None),
            Err(e) => return Err(internal(e)),
        },
    };
    Ok(secret_matches(secret, &app.key_hash).then_some(app))
}

fn internal(e: HubError) -> Outgoing {
    tracing::error!(error = %e, "gateway failure");
    Outgoing {
        status: 500,
        headers: vec![("content-type".into(), "application/json".into())],
        body: OutBody::Full(Bytes::from_static(
            br#"{"error":{"message":"The Hub failed inside; its log has the details.","type":"server_error","param":null,"code":"internal"}}"#,
        )),
    }
}

fn cached_app(hub: &Hub, id: &str) -> Option<Arc<AppAuth>> {
    let cache = hub
        .gateway()
        .cache
        .read()
        .unwrap_or_else(|p| p.into_inner());
    cache.apps.get(id).cloned()
}

async fn load_app(hub: &Hub, id: &str) -> Result<Option<Arc<AppAuth>>, HubError> {
    let h = hub.clone();
    let id = id.to_string();
    crate::hub::blocking(move || {
        let Some(hash) = h.store().app_key_hash(&id)? else {
            return Ok(None);
        };
        let row = h.store().app(&id)?;
        let app = Arc::new(AppAuth {
            bindings: row
                .bindings
                .iter()
                .filter_map(|(p, c)| c.clone().map(|c| (*p, c)))
                .collect(),
            monthly_budget: row.monthly_budget_micro_usd.map(MicroUsd),
            rpm: row.rpm_limit,
            tpm: row.tpm_limit,
            key_hash: hash,
            id: row.id,
        });
        h.gateway()
            .cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apps
            .insert(id, app.clone());
        Ok(Some(app))
    })
    .await
}

/// The connection this app uses for `provider`, refusing deleted, disabled or absent ones.
async fn bound_connection(
    hub: &Hub,
    app: &AppAuth,
    p: Provider,
) -> Result<Arc<ConnTarget>, Outgoing> {
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
    let Some(id) = app.bindings.get(&p) else {
        return Err(revoked(&format!(
            "this app has no {} connection.",
            p.display_name()
        )));
    };
    let cached = {
        let cache = hub
            .gateway()
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner());
        cache.connections.get(id).cloned()
    };
    let target = match cached {
        Some(t) => t,
        None => match load_connection(hub, id).await {
            Ok(Some(t)) => t,
            Ok(None) => return Err(revoked("the connection this app used was deleted.")),
            Err(HubError::Locked) => {
                return Err(refusal(
                    p,
                    Refusal::HubLocked,
                    "Hub locked: unlock the Workshop Hub and retry.",
                ));
            }
            Err(e) => return Err(internal(e)),
        },
    };
    if !target.enabled {
        return Err(revoked(
            "the connection this app uses is deleted (disabled).",
        ));
    }
    Ok(target)
}

async fn load_connection(hub: &Hub, id: &str) -> Result<Option<Arc<ConnTarget>>, HubError> {
    let h = hub.clone();
    let id = id.to_string();
    crate::hub::blocking(move || {
        let row = match h.store().connection(&id) {
            Ok(row) => row,
            Err(crate::store::StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let target = h.target(&row)?;
        let conn = Arc::new(ConnTarget {
            id: row.id.clone(),
            managed: row.managed,
            enabled: row.enabled,
            base: target.base,
            key: target.key,
            has_error: std::sync::atomic::AtomicBool::new(row.last_error_code.is_some()),
        });
        h.gateway()
            .cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .connections
            .insert(id, conn.clone());
        Ok(Some(conn))
    })
    .await
}

async fn reserve_budget(
    hub: &Hub,
    app: &AppAuth,
    estimate: MicroUsd,
) -> Result<Option<BudgetHold>, String> {
    let Some(budget) = app.monthly_budget else {
        return Ok(None);
    };
    let month = Utc::now().format("%Y-%m").to_string();
    let budgets = &hub.gateway().budgets;
    if budgets.needs_load(&app.id, &month) {
        let h = hub.clone();
        let id = app.id.clone();
        let spent = crate::hub::blocking(move || Ok(h.app_month_spend(&id)?.total()))
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

/// Sends the request upstream (retrying managed rate limits) and relays the answer.
async fn forward(
    hub: &Hub,
    api: &dyn ProviderApi,
    request: &ProxyRequest<'_>,
    admitted: Admitted,
) -> Outgoing {
    let upstream = api.prepare(request, &admitted.info, &admitted.connection.key);
    let mut url = format!("{}{}", admitted.connection.base, request.path);
    if !upstream.query.is_empty() {
        url.push('?');
        url.push_str(&upstream.query);
    }
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut attempt = 0;
    let response = loop {
        let mut builder = hub
            .http()
            .request(method.clone(), &url)
            .timeout(hub.config().upstream_timeout)
            .body(upstream.body.clone());
        for (name, value) in &upstream.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => return upstream_failed(hub, api.provider(), admitted, e).await,
        };
        if response.status().as_u16() == 429
            && admitted.connection.managed
            && attempt < MAX_RATE_LIMIT_RETRIES
        {
            let wait = retry_wait(response.headers(), attempt);
            let status = response.status().as_u16();
            let headers = response_headers(response.headers());
            let body = response.bytes().await.unwrap_or_default();
            if api.classify(status, &body) == Some(Trouble::RateLimitExceeded) {
                attempt += 1;
                tracing::info!(
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "upstream rate limit; retrying"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            return relay_error(hub, api, admitted, status, headers, body).await;
        }
        break response;
    };
    let status = response.status().as_u16();
    let headers = response_headers(response.headers());
    if status >= 400 {
        let body = response.bytes().await.unwrap_or_default();
        return relay_error(hub, api, admitted, status, headers, body).await;
    }
    if admitted.info.stream {
        let meter = api.stream_meter(&admitted.info, upstream.hide_stream_usage);
        let ttfb = admitted.started.elapsed();
        let body = stream::metered(
            hub.clone(),
            response,
            meter,
            admitted.into_context(status, ttfb),
        );
        return Outgoing {
            status,
            headers,
            body: OutBody::Stream(body),
        };
    }
    let ttfb = admitted.started.elapsed();
    let body = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return upstream_failed(hub, api.provider(), admitted, e).await,
    };
    let metered = api.meter_body(&admitted.info, &body);
    let ctx = admitted.into_context(status, ttfb);
    ctx.finish(hub, metered, None).await;
    Outgoing {
        status,
        headers,
        body: OutBody::Full(body),
    }
}

/// The wait before retrying an upstream 429: its `retry-after`, else a short backoff.
fn retry_wait(headers: &reqwest::header::HeaderMap, attempt: u32) -> Duration {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let from_ms = header("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|ms| ms / 1000.0);
    let from_s = header("retry-after").and_then(|v| v.parse::<f64>().ok());
    match from_ms.or(from_s) {
        Some(secs) if secs >= 0.0 => Duration::from_secs_f64(secs).min(MAX_RETRY_WAIT),
        _ => Duration::from_millis(500 * (1 << attempt)),
    }
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

fn response_headers(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect()
}

/// Passes a provider error through unchanged, updates the connection's troubleshooting
/// state and records the request.
async fn relay_error(
    hub: &Hub,
    api: &dyn ProviderApi,
    admitted: Admitted,
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
) -> Outgoing {
    let trouble = api.classify(status, &body);
    let code = trouble
        .map(|t| t.code().to_string())
        .unwrap_or_else(|| format!("http_{status}"));
    if let Some(t) = trouble {
        note_trouble(
            hub,
            &admitted.connection,
            t,
            format!("The provider answered HTTP {status} to an app's request."),
        );
    }
    let ttfb = admitted.started.elapsed();
    let ctx = admitted.into_context(status, ttfb);
    ctx.finish(hub, None, Some(code)).await;
    let headers = if headers.is_empty() {
        vec![("content-type".to_string(), "application/json".to_string())]
    } else {
        headers
    };
    Outgoing {
        status,
        headers,
        body: OutBody::Full(body),
    }
}

async fn upstream_failed(
    hub: &Hub,
    p: Provider,
    admitted: Admitted,
    e: reqwest::Error,
) -> Outgoing {
    let (why, message) = if e.is_timeout() {
        (
            Refusal::UpstreamTimeout,
            "Upstream timeout: the provider did not answer in time. Retry; for long reasoning calls raise --upstream-timeout-secs.",
        )
    } else {
        (
            Refusal::UpstreamConnectionFailed,
            "Upstream connection failed: the Hub could not reach the provider. Check the network and the provider base URL, then retry.",
        )
    };
    tracing::warn!(provider = %p, error = %why.as_str(), "upstream call failed");
    note_trouble(
        hub,
        &admitted.connection,
        Trouble::ConnectionFailed,
        format!("Connection failed: {message}"),
    );
    let elapsed = admitted.started.elapsed();
    let ctx = admitted.into_context(why.status(), elapsed);
    ctx.finish(hub, None, Some(why.as_str().to_string())).await;
    refusal(p, why, message)
}

/// Shows a provider problem on the connection (as verification would), off the hot path.
fn note_trouble(hub: &Hub, connection: &ConnTarget, trouble: Trouble, detail: String) {
    connection
        .has_error
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let h = hub.clone();
    let id = connection.id.clone();
    tokio::task::spawn_blocking(move || {
        let outcome = Outcome::Failed {
            code: trouble.code().to_string(),
            detail,
        };
        if let Err(e) = h.store().record_connection_outcome(&id, &outcome) {
            tracing::warn!(error = %e, "could not record a connection problem");
        }
    });
}

/// Clears a connection's last error after a success, once.
fn note_success(hub: &Hub, connection: &ConnTarget) {
    if connection
        .has_error
        .swap(false, std::sync::atomic::Ordering::Relaxed)
    {
        let h = hub.clone();
        let id = connection.id.clone();
        tokio::task::spawn_blocking(move || {
            let _ = h
                .store()
                .record_connection_outcome(&id, &Outcome::Succeeded);
        });
    }
}

/// What is needed to record a request once its answer is known.
pub(crate) struct Context {
    app_id: String,
    connection: Arc<ConnTarget>,
    provider: Provider,
    endpoint: Endpoint,
    requested_model: Option<String>,
    model: Option<crate::catalog::Model>,
    streamed: bool,
    status: u16,
    billed_to: BilledTo,
    hold: Option<Hold>,
    budget: Option<BudgetHold>,
    started_at: DateTime<Utc>,
    started: Instant,
    ttfb: Duration,
}

impl Admitted {
    fn into_context(self, status: u16, ttfb: Duration) -> Context {
        Context {
            app_id: self.app.id.clone(),
            provider: self.provider,
            connection: self.connection,
            endpoint: self.info.endpoint,
            requested_model: self.info.model,
            model: self.model,
            streamed: self.info.stream,
            status,
            billed_to: self.billed_to,
            hold: self.hold,
            budget: self.budget,
            started_at: self.started_at,
            started: self.started,
            ttfb,
        }
    }
}

impl Context {
    /// Builds the usage record, prices it, and writes it durably before returning.
    pub(crate) async fn finish(
        self,
        hub: &Hub,
        metered: Option<Metered>,
        error_code: Option<String>,
    ) {
        let job = self.into_job(hub, metered, error_code);
        hub.gateway().recorder(hub).record(job).await;
    }

    /// The same, without waiting (from a dropped stream).
    pub(crate) fn finish_later(
        self,
        hub: &Hub,
        metered: Option<Metered>,
        error_code: Option<String>,
    ) {
        let job = self.into_job(hub, metered, error_code);
        hub.gateway().recorder(hub).record_later(job);
    }

    fn into_job(self, hub: &Hub, metered: Option<Metered>, error_code: Option<String>) -> Job {
        let usage = metered
            .as_ref()
            .map(|m| m.usage.clone())
            .unwrap_or_default();
        let estimated = metered.as_ref().is_some_and(|m| m.estimated);
        if error_code.is_none() && self.status < 400 {
            note_success(hub, &self.connection);
        }
        let served = usage.model.clone();
        let model = served
            .as_deref()
            .and_then(|m| hub.catalog().resolve(self.provider, m).cloned())
            .or(self.model);
        let cost = model.as_ref().map(|m| cost(m, &usage).micro);
        let now_secs = Utc::now().timestamp().max(0) as u64;
        hub.gateway().rates.add_tokens(
            &self.app_id,
            usage.input_tokens + usage.output_tokens,
            now_secs,
        );
        Job {
            usage: NewUsage {
                started_at: self.started_at,
                app_id: Some(self.app_id),
                connection_id: Some(self.connection.id.clone()),
                provider: self.provider,
                model: served.or(self.requested_model),
                endpoint: self.endpoint.as_str().to_string(),
                streamed: self.streamed,
                status: self.status,
                error_code,
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
            },
            hold: self.hold,
            budget: self.budget,
            done: None,
        }
    }
}
