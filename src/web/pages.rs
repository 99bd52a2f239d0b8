//! The Hub's server-rendered pages: first-run setup, unlock, settings, and the layout
//! every page shares.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;

use super::auth::{
    CsrfForm, DEVICE_COOKIE, Flash, Incoming, PageSession, cleared_cookie, device_cookie,
    flash_key, redirect_with, session_cookie, shown,
};
use super::errors::PageError;
use super::wiped::WipedForm;
use crate::hub::{Hub, HubError, MIN_PASSPHRASE_LEN};
use crate::providers::Provider;

/// What the shared layout (`base.html`) needs.
pub struct Layout {
    pub csrf: String,
    pub active: &'static str,
    pub offline: bool,
    pub version: &'static str,
    /// The credit balance as shown in the sidebar, e.g. `$4.98`.
    pub balance: Money,
    /// Some managed connector answers from the emulator (no platform key).
    pub demo: bool,
}

impl Layout {
    /// Sidebar entries as (key, href, label), only for pages that exist.
    pub fn nav(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &[
            ("connectors", "/connectors", "Connectors"),
            ("apps", "/apps", "Apps"),
            ("models", "/models", "Models"),
            ("playground", "/playground", "Playground"),
            ("usage", "/usage", "Usage & Billing"),
            ("requests", "/requests", "Requests"),
            ("settings", "/settings", "Settings"),
        ]
    }

    pub fn new(hub: &Hub, session: &PageSession, active: &'static str) -> Layout {
        Layout {
            csrf: session.session.csrf_token.clone(),
            active,
            offline: hub.config().offline,
            version: env!("CARGO_PKG_VERSION"),
            balance: Money::of(hub.credits().balance()),
            demo: hub.any_demo(),
        }
    }
}

/// An amount as pages show it: to the cent, with the exact amount for a hover title.
#[derive(Debug, Clone)]
pub struct Money {
    pub cents: String,
    pub exact: String,
}

impl Money {
    pub fn of(m: impl std::borrow::Borrow<crate::money::MicroUsd>) -> Money {
        let m = *m.borrow();
        Money {
            cents: to_cents(m.0),
            exact: m.to_string(),
        }
    }
}

/// `$14.999153` → `$15.00`; a non-zero amount under half a cent shows as `<$0.01`.
fn to_cents(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let abs = micro.unsigned_abs();
    let cents = (abs + 5_000) / 10_000;
    if abs > 0 && cents == 0 {
        return format!("{sign}<$0.01");
    }
    format!("{sign}${}.{:02}", group_thousands(cents / 100), cents % 100)
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A moment as pages show it: relative ("5 min ago"), with the exact time for a title
/// (UTC here; the page's script turns it into the browser's local time).
#[derive(Debug, Clone)]
pub struct When {
    pub relative: String,
    pub exact: String,
    pub iso: String,
}

impl When {
    /// From an RFC 3339 timestamp; text that is not one is shown as it is.
    pub fn of(rfc3339: &str) -> When {
        match chrono::DateTime::parse_from_rfc3339(rfc3339) {
            Ok(t) => {
                let t = t.with_timezone(&chrono::Utc);
                When {
                    relative: relative_to(t, chrono::Utc::now()),
                    exact: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                    iso: t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                }
            }
            Err(_) => When {
                relative: rfc3339.to_string(),
                exact: rfc3339.to_string(),
                iso: String::new(),
            },
        }
    }
}

fn relative_to(t: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (now - t).num_seconds();
    match secs {
        s if s < 45 => "just now".to_string(),
        s if s < 3_600 => format!("{} min ago", (s + 30) / 60),
        s if s < 86_400 => format!("{} h ago", s / 3_600),
        s if s < 7 * 86_400 => match s / 86_400 {
            1 => "yesterday".to_string(),
            d => format!("{d} days ago"),
        },
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

/// Renders a template into an HTML response with the given status. The page shows any
/// flash it was given, so the flash cookie is removed with it.
pub fn render(
    status: actix_web::http::StatusCode,
    page: &impl Template,
) -> Result<HttpResponse, PageError> {
    let html = page.render()?;
    Ok(shown(
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(html),
    ))
}

fn ok(page: &impl Template) -> Result<HttpResponse, PageError> {
    render(actix_web::http::StatusCode::OK, page)
}

pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

/// The page a signed-in person lands on.
pub const HOME: &str = "/connectors";

/// Where a new Hub's first session starts.
pub const WELCOME: &str = "/welcome";

pub async fn index(
    hub: web::Data<Hub>,
    session: Option<PageSession>,
) -> Result<HttpResponse, PageError> {
    match session {
        Some(_) => Ok(redirect(HOME)),
        None => Err(PageError::SignIn {
            initialized: hub.run(|h| h.status()).await?.initialized,
        }),
    }
}

/// A form with nothing in it but the CSRF token (checked by `CsrfForm`).
#[derive(Deserialize)]
pub struct Empty {}

/// The field of a service error, for putting the message beside it.
pub fn field_of(e: &HubError) -> &'static str {
    match e {
        HubError::BadInput { field, .. } => field,
        _ => "",
    }
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    flash: Flash,
    min_len: usize,
    /// The Hub listens beyond loopback: the form asks for the console's setup token.
    needs_token: bool,
    version: &'static str,
}

pub async fn setup_form(hub: web::Data<Hub>, flash: Incoming) -> Result<HttpResponse, PageError> {
    if hub.run(|h| h.status()).await?.initialized {
        return Ok(redirect("/unlock"));
    }
    ok(&SetupPage {
        flash: flash.0,
        min_len: MIN_PASSPHRASE_LEN,
        needs_token: hub.setup_token_required(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Deserialize)]
pub struct SetupForm {
    passphrase: SecretString,
    confirm: SecretString,
    #[serde(default)]
    setup_token: Option<SecretString>,
}

pub async fn setup_submit(
    hub: web::Data<Hub>,
    form: WipedForm<SetupForm>,
) -> Result<HttpResponse, PageError> {
    let SetupForm {
        passphrase,
        confirm,
        setup_token,
    } = form.0;
    match hub
        .run(move |h| h.setup(&passphrase, Some(&confirm), setup_token.as_ref()))
        .await
    {
        Ok((id, _)) => {
            let mut res = HttpResponse::SeeOther()
                .cookie(session_cookie(&id))
                .insert_header((header::LOCATION, WELCOME))
                .finish();
            remember_device(&hub, &mut res).await;
            Ok(res)
        }
        Err(HubError::AlreadyInitialized) => Ok(redirect("/unlock")),
        Err(e) => {
            let field = match (&e, field_of(&e)) {
                (HubError::SetupToken, _) => "setup_token",
                (_, "confirm") => "confirm",
                _ => "passphrase",
            };
            let flash = Flash::error("setup", field, e.to_string());
            Ok(redirect_with("/setup", &flash, flash_key(None)))
        }
    }
}

/// Gives the browser that just signed in a device cookie, so its later unlocks have a
/// throttle lane of their own. Best effort: sign-in works without it.
async fn remember_device(hub: &Hub, res: &mut HttpResponse) {
    match hub.run(|h| h.new_device()).await {
        Ok(token) => {
            let _ = res.add_cookie(&device_cookie(&token));
        }
        Err(e) => tracing::warn!(error = %e, "could not remember this browser for unlocking"),
    }
}

#[derive(Template)]
#[template(path = "unlock.html")]
struct UnlockPage {
    flash: Flash,
    locked: bool,
    version: &'static str,
}

pub async fn unlock_form(hub: web::Data<Hub>, flash: Incoming) -> Result<HttpResponse, PageError> {
    let status = hub.run(|h| h.status()).await?;
    if !status.initialized {
        return Ok(redirect("/setup"));
    }
    ok(&UnlockPage {
        flash: flash.0,
        locked: status.locked,
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Deserialize)]
pub struct UnlockForm {
    passphrase: SecretString,
}

pub async fn unlock_submit(
    req: HttpRequest,
    hub: web::Data<Hub>,
    form: WipedForm<UnlockForm>,
) -> Result<HttpResponse, PageError> {
    let passphrase = form.0.passphrase;
    let device = match req.cookie(DEVICE_COOKIE) {
        Some(c) => {
            let token = c.value().to_string();
            hub.run(move |h| h.device_source(&token)).await?
        }
        None => None,
    };
    let from = device.unwrap_or_else(|| super::api::source(&req));
    match hub.sign_in(passphrase, from).await {
        Ok((id, _)) => {
            let mut res = HttpResponse::SeeOther()
                .cookie(session_cookie(&id))
                .insert_header((header::LOCATION, HOME))
                .finish();
            if device.is_none() {
                remember_device(&hub, &mut res).await;
            }
            Ok(res)
        }
        Err(HubError::NotInitialized) => Ok(redirect("/setup")),
        Err(e) => {
            let flash = Flash::error("unlock", "passphrase", e.to_string());
            let mut res = redirect_with("/unlock", &flash, flash_key(None));
            if let HubError::Backoff { retry_after } = e {
                if let Ok(v) =
                    header::HeaderValue::from_str(&crate::hub::ceil_secs(retry_after).to_string())
                {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            Ok(res)
        }
    }
}

pub async fn lock(hub: web::Data<Hub>, form: CsrfForm<Empty>) -> Result<HttpResponse, PageError> {
    let _ = form.form;
    hub.lock();
    let flash = Flash::notice("The Hub is locked. Apps get a “locked” error until you unlock it.");
    let mut res = redirect_with("/unlock", &flash, flash_key(None));
    let _ = res.add_cookie(&cleared_cookie());
    Ok(res)
}

#[derive(Template)]
#[template(path = "welcome.html")]
struct WelcomePage {
    l: Layout,
    base_url: String,
    /// Managed connectors that are on and answered by the emulator, by display name.
    demo: Vec<&'static str>,
    /// Managed connectors that are on with a platform key.
    live: Vec<&'static str>,
    balance: Money,
}

/// The first page after setup: what already works and the next three steps.
pub async fn welcome(
    hub: web::Data<Hub>,
    hosts: web::Data<super::HostPolicy>,
    session: PageSession,
) -> Result<HttpResponse, PageError> {
    let connections = hub.run(move |h| h.list_connections()).await?;
    let on = |emulated: bool| -> Vec<&'static str> {
        Provider::ALL
            .iter()
            .filter(|&&p| {
                connections.iter().any(|c| {
                    c.provider == p && c.is_managed() && c.is_enabled() && c.emulated == emulated
                })
            })
            .map(|p| p.display_name())
            .collect()
    };
    let (demo, live) = (on(true), on(false));
    ok(&WelcomePage {
        l: Layout::new(&hub, &session, "welcome"),
        base_url: hosts.base_url(),
        demo,
        live,
        balance: Money::of(hub.credits().balance()),
    })
}

/// A managed connector's platform key as Settings shows it.
struct PlatformKey {
    provider: Provider,
    hint: Option<String>,
    /// Set by `WORKSHOP_HUB_MANAGED_*_KEY`: the page cannot change it.
    from_env: bool,
    format: &'static str,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    l: Layout,
    flash: Flash,
    min_len: usize,
    data_dir: String,
    platform_keys: Vec<PlatformKey>,
    keep: crate::hub::KeepSettings,
    body_days: &'static [u32],
}

fn platform_keys(hub: &Hub) -> Result<Vec<PlatformKey>, HubError> {
    let connections = hub.list_connections()?;
    Ok(Provider::ALL
        .iter()
        .map(|&p| {
            let managed = connections
                .iter()
                .find(|c| c.provider == p && c.is_managed());
            PlatformKey {
                provider: p,
                hint: managed.and_then(|c| c.key_hint.clone()),
                from_env: hub.config().managed_keys.get(p).is_some(),
                format: crate::providers::api(p).key_format().described,
            }
        })
        .collect())
}

/// The Settings page: platform keys, what requests keep, lock, passphrase.
pub async fn settings(
    hub: web::Data<Hub>,
    session: PageSession,
    flash: Incoming,
) -> Result<HttpResponse, PageError> {
    let keys = hub.run(platform_keys).await?;
    ok(&SettingsPage {
        l: Layout::new(&hub, &session, "settings"),
        flash: flash.0,
        min_len: MIN_PASSPHRASE_LEN,
        data_dir: hub.config().data_dir.display().to_string(),
        platform_keys: keys,
        keep: hub.keep_settings(),
        body_days: &crate::hub::BODY_DAYS,
    })
}

#[derive(Deserialize)]
pub struct KeepForm {
    keep_bodies_days: String,
    #[serde(default)]
    keep_requests_days: String,
}

/// How long request bodies and rows are kept; a blank row retention means forever.
pub async fn save_keep_settings(
    hub: web::Data<Hub>,
    form: CsrfForm<KeepForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { session, form } = form;
    let parsed = parse_keep(&form);
    let result = match parsed {
        Ok(change) => hub.run(move |h| h.change_keep_settings(change)).await,
        Err(e) => Err(e),
    };
    let flash = match result {
        Ok(_) => Flash::notice("Saved how long requests are kept."),
        Err(e) => Flash::error("keep", "keep_requests_days", e.to_string())
            .keep("keep_requests_days", &form.keep_requests_days),
    };
    Ok(redirect_with(
        "/settings#keep",
        &flash,
        flash_key(Some(&session)),
    ))
}

fn parse_keep(form: &KeepForm) -> Result<crate::hub::KeepChange, HubError> {
    let bodies =
        form.keep_bodies_days.trim().parse().map_err(|_| {
            HubError::bad_input("keep_bodies_days", "Pick how long bodies are kept.")
        })?;
    let requests = match form.keep_requests_days.trim() {
        "" => None,
        days => Some(days.parse().map_err(|_| {
            HubError::bad_input(
                "keep_requests_days",
                "Days are a whole number; leave it blank to keep requests for ever.",
            )
        })?),
    };
    Ok(crate::hub::KeepChange {
        keep_bodies_days: Some(bodies),
        keep_requests_days: Some(requests),
    })
}

#[derive(Deserialize)]
pub struct PlatformKeyForm {
    api_key: SecretString,
}

/// Seals a platform key for a managed connector in the vault.
pub async fn save_platform_key(
    hub: web::Data<Hub>,
    provider: web::Path<String>,
    form: CsrfForm<PlatformKeyForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { session, form } = form;
    let provider = crate::hub::connections::parse_provider(&provider)?;
    let id = crate::hub::connections::managed_id(provider);
    let flash = match hub
        .run(move |h| h.rotate_connection_key(&id, &form.api_key))
        .await
    {
        Ok(_) => Flash::notice(
            "Platform key saved. The managed connector now calls the provider and bills your credits.",
        ),
        Err(e) => Flash::error(&format!("platform-{provider}"), "api_key", e.to_string()),
    };
    let to = format!("/settings#platform-{provider}");
    Ok(redirect_with(&to, &flash, flash_key(Some(&session))))
}

pub async fn remove_platform_key(
    hub: web::Data<Hub>,
    provider: web::Path<String>,
    form: CsrfForm<Empty>,
) -> Result<HttpResponse, PageError> {
    let provider = crate::hub::connections::parse_provider(&provider)?;
    hub.run(move |h| h.clear_platform_key(provider)).await?;
    let flash = Flash::notice(
        "Platform key removed. The managed connector answers from the built-in emulator again.",
    );
    let to = format!("/settings#platform-{provider}");
    Ok(redirect_with(&to, &flash, flash_key(Some(&form.session))))
}

/// Settings → Back up now: writes a backup into the data dir and says where.
pub async fn backup(hub: web::Data<Hub>, form: CsrfForm<Empty>) -> Result<HttpResponse, PageError> {
    let flash = match hub.run(|h| h.backup_now()).await {
        Ok(copied) => Flash::notice(format!(
            "Backup written to {} ({} KiB). To restore it, stop the Hub and run: workshop-hub restore {}",
            copied.path.display(),
            copied.bytes.div_ceil(1024),
            copied.path.display()
        )),
        Err(e) => Flash::error("page", "", e.to_string()),
    };
    Ok(redirect_with(
        "/settings#backup",
        &flash,
        flash_key(Some(&form.session)),
    ))
}

#[derive(Deserialize)]
pub struct PassphraseForm {
    current: SecretString,
    new: SecretString,
    confirm: SecretString,
}

pub async fn change_passphrase(
    hub: web::Data<Hub>,
    form: CsrfForm<PassphraseForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { session, form } = form;
    let PassphraseForm {
        current,
        new,
        confirm,
    } = form;
    match hub
        .run(move |h| h.change_passphrase(&current, &new, Some(&confirm)))
        .await
    {
        Ok(()) => {
            let flash = Flash::notice("Your passphrase was changed. Sign in with the new one.");
            let mut res = redirect_with("/unlock", &flash, flash_key(None));
            let _ = res.add_cookie(&cleared_cookie());
            Ok(res)
        }
        Err(e) => {
            let field = match &e {
                HubError::WrongPassphrase | HubError::Backoff { .. } => "current",
                other => match field_of(other) {
                    "confirm" => "confirm",
                    _ => "new",
                },
            };
            let flash = Flash::error("passphrase", field, e.to_string());
            Ok(redirect_with(
                "/settings#passphrase",
                &flash,
                flash_key(Some(&session)),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_shows_cents_and_keeps_the_exact_amount() {
        let m = Money::of(crate::money::MicroUsd(14_999_153));
        assert_eq!(m.cents, "$15.00");
        assert_eq!(m.exact, "$14.999153");
        assert_eq!(to_cents(1_137), "<$0.01");
        assert_eq!(to_cents(0), "$0.00");
        assert_eq!(to_cents(-2_500_000), "-$2.50");
        assert_eq!(to_cents(1_234_567_890_000), "$1,234,567.89");
    }

    #[test]
    fn times_read_as_relative_with_the_exact_moment_kept() {
        let now = chrono::Utc::now();
        let at = |secs: i64| relative_to(now - chrono::Duration::seconds(secs), now);
        assert_eq!(at(10), "just now");
        assert_eq!(at(5 * 60), "5 min ago");
        assert_eq!(at(3 * 3_600), "3 h ago");
        assert_eq!(at(30 * 3_600), "yesterday");
        assert_eq!(at(3 * 86_400), "3 days ago");
        let w = When::of("2026-01-02T03:04:05Z");
        assert_eq!(w.exact, "2026-01-02 03:04:05 UTC");
        assert_eq!(w.iso, "2026-01-02T03:04:05Z");
    }
}
