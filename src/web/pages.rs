//! The Hub's server-rendered pages: first-run setup, unlock, settings, and the layout
//! every page shares.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;

use super::auth::{PageSession, cleared_cookie, session_cookie};
use super::errors::PageError;
use crate::hub::{Hub, HubError, MIN_PASSPHRASE_LEN};
use crate::providers::Provider;

/// What the shared layout (`base.html`) needs.
pub struct Layout {
    pub csrf: String,
    pub active: &'static str,
    pub offline: bool,
    pub version: &'static str,
    /// The credit balance as shown in the sidebar, e.g. `$4.98`.
    pub balance: String,
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
            ("settings", "/settings", "Settings"),
        ]
    }

    pub fn new(hub: &Hub, session: &PageSession, active: &'static str) -> Layout {
        Layout {
            csrf: session.session.csrf_token.clone(),
            active,
            offline: hub.config().offline,
            version: env!("CARGO_PKG_VERSION"),
            balance: hub.credits().balance().to_string(),
            demo: hub.any_demo(),
        }
    }
}

/// Renders a template into an HTML response with the given status.
pub fn render(
    status: actix_web::http::StatusCode,
    page: &impl Template,
) -> Result<HttpResponse, PageError> {
    let html = page.render()?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
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

/// Runs a blocking Hub call (Argon2id, SQLite) off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, HubError>
where
    F: FnOnce() -> Result<T, HubError> + Send + 'static,
    T: Send + 'static,
{
    crate::hub::blocking(f).await
}

pub async fn index(
    hub: web::Data<Hub>,
    session: Option<PageSession>,
) -> Result<HttpResponse, PageError> {
    match session {
        Some(_) => Ok(redirect(HOME)),
        None => Err(PageError::SignIn {
            initialized: hub.status()?.initialized,
        }),
    }
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage<'a> {
    error: Option<&'a str>,
    min_len: usize,
    version: &'static str,
}

pub async fn setup_form(hub: web::Data<Hub>) -> Result<HttpResponse, PageError> {
    if hub.status()?.initialized {
        return Ok(redirect("/unlock"));
    }
    ok(&SetupPage {
        error: None,
        min_len: MIN_PASSPHRASE_LEN,
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Deserialize)]
pub struct SetupForm {
    passphrase: SecretString,
    confirm: SecretString,
}

pub async fn setup_submit(
    hub: web::Data<Hub>,
    form: web::Form<SetupForm>,
) -> Result<HttpResponse, PageError> {
    let SetupForm {
        passphrase,
        confirm,
    } = form.into_inner();
    let h = hub.clone();
    match blocking(move || h.setup(&passphrase, Some(&confirm))).await {
        Ok((id, _)) => Ok(HttpResponse::SeeOther()
            .cookie(session_cookie(&id))
            .insert_header((header::LOCATION, HOME))
            .finish()),
        Err(HubError::AlreadyInitialized) => Ok(redirect("/unlock")),
        Err(e) => {
            let (status, _) = super::errors::classify(&e);
            render(
                status,
                &SetupPage {
                    error: Some(&e.to_string()),
                    min_len: MIN_PASSPHRASE_LEN,
                    version: env!("CARGO_PKG_VERSION"),
                },
            )
        }
    }
}

#[derive(Template)]
#[template(path = "unlock.html")]
struct UnlockPage<'a> {
    error: Option<&'a str>,
    notice: Option<&'a str>,
    locked: bool,
    version: &'static str,
}

#[derive(Deserialize)]
pub struct UnlockQuery {
    changed: Option<String>,
}

pub async fn unlock_form(
    hub: web::Data<Hub>,
    query: web::Query<UnlockQuery>,
) -> Result<HttpResponse, PageError> {
    let status = hub.status()?;
    if !status.initialized {
        return Ok(redirect("/setup"));
    }
    let notice = query
        .changed
        .as_ref()
        .map(|_| "Your passphrase was changed. Sign in with the new one.");
    ok(&UnlockPage {
        error: None,
        notice,
        locked: status.locked,
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Deserialize)]
pub struct UnlockForm {
    passphrase: SecretString,
}

pub async fn unlock_submit(
    hub: web::Data<Hub>,
    form: web::Form<UnlockForm>,
) -> Result<HttpResponse, PageError> {
    let passphrase = form.into_inner().passphrase;
    let h = hub.clone();
    match blocking(move || h.sign_in(&passphrase)).await {
        Ok((id, _)) => Ok(HttpResponse::SeeOther()
            .cookie(session_cookie(&id))
            .insert_header((header::LOCATION, HOME))
            .finish()),
        Err(HubError::NotInitialized) => Ok(redirect("/setup")),
        Err(e) => {
            let (status, _) = super::errors::classify(&e);
            let mut res = render(
                status,
                &UnlockPage {
                    error: Some(&e.to_string()),
                    notice: None,
                    locked: hub.is_locked(),
                    version: env!("CARGO_PKG_VERSION"),
                },
            )?;
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

/// A form that carries nothing but the session's CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

impl CsrfForm {
    pub fn token(&self) -> &str {
        &self.csrf
    }
}

/// Refuses a form whose CSRF token is not this session's.
pub fn check_csrf(session: &PageSession, submitted: &str) -> Result<(), PageError> {
    if session.session.csrf_matches(submitted) {
        Ok(())
    } else {
        Err(PageError::Hub(HubError::bad_input(
            "csrf",
            "This form has expired. Go back, reload the page and try again.",
        )))
    }
}

pub async fn lock(
    hub: web::Data<Hub>,
    session: PageSession,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    check_csrf(&session, &form.csrf)?;
    hub.lock();
    Ok(HttpResponse::SeeOther()
        .cookie(cleared_cookie())
        .insert_header((header::LOCATION, "/unlock"))
        .finish())
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
struct SettingsPage<'a> {
    l: Layout,
    error: Option<&'a str>,
    key_error: Option<(Provider, String)>,
    notice: Option<&'static str>,
    min_len: usize,
    data_dir: String,
    platform_keys: Vec<PlatformKey>,
}

impl SettingsPage<'_> {
    fn key_error_for(&self, p: &Provider) -> Option<&str> {
        match &self.key_error {
            Some((q, e)) if q == p => Some(e),
            _ => None,
        }
    }
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

async fn settings_page(
    hub: &web::Data<Hub>,
    session: &PageSession,
    status: actix_web::http::StatusCode,
    error: Option<&str>,
    key_error: Option<(Provider, String)>,
    notice: Option<&'static str>,
) -> Result<HttpResponse, PageError> {
    let h = hub.clone();
    let keys = blocking(move || platform_keys(&h)).await?;
    render(
        status,
        &SettingsPage {
            l: Layout::new(hub, session, "settings"),
            error,
            key_error,
            notice,
            min_len: MIN_PASSPHRASE_LEN,
            data_dir: hub.config().data_dir.display().to_string(),
            platform_keys: keys,
        },
    )
}

#[derive(Deserialize)]
pub struct SettingsQuery {
    notice: Option<String>,
}

pub async fn settings(
    hub: web::Data<Hub>,
    session: PageSession,
    query: web::Query<SettingsQuery>,
) -> Result<HttpResponse, PageError> {
    let notice = match query.notice.as_deref() {
        Some("key-saved") => Some(
            "Platform key saved. The managed connector now calls the provider and bills your credits.",
        ),
        Some("key-removed") => Some(
            "Platform key removed. The managed connector answers from the built-in emulator again.",
        ),
        _ => None,
    };
    settings_page(
        &hub,
        &session,
        actix_web::http::StatusCode::OK,
        None,
        None,
        notice,
    )
    .await
}

#[derive(Deserialize)]
pub struct PlatformKeyForm {
    csrf: String,
    api_key: SecretString,
}

/// Seals a platform key for a managed connector in the vault.
pub async fn save_platform_key(
    hub: web::Data<Hub>,
    session: PageSession,
    provider: web::Path<String>,
    form: web::Form<PlatformKeyForm>,
) -> Result<HttpResponse, PageError> {
    let PlatformKeyForm { csrf, api_key } = form.into_inner();
    check_csrf(&session, &csrf)?;
    let provider = crate::hub::connections::parse_provider(&provider)?;
    let h = hub.clone();
    let id = crate::hub::connections::managed_id(provider);
    match blocking(move || h.rotate_connection_key(&id, &api_key)).await {
        Ok(_) => Ok(redirect("/settings?notice=key-saved")),
        Err(e) => {
            let (status, _) = super::errors::classify(&e);
            let message = e.to_string();
            settings_page(
                &hub,
                &session,
                status,
                None,
                Some((provider, message)),
                None,
            )
            .await
        }
    }
}

pub async fn remove_platform_key(
    hub: web::Data<Hub>,
    session: PageSession,
    provider: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    check_csrf(&session, form.token())?;
    let provider = crate::hub::connections::parse_provider(&provider)?;
    let h = hub.clone();
    blocking(move || h.clear_platform_key(provider)).await?;
    Ok(redirect("/settings?notice=key-removed"))
}

#[derive(Deserialize)]
pub struct PassphraseForm {
    csrf: String,
    current: SecretString,
    new: SecretString,
    confirm: SecretString,
}

pub async fn change_passphrase(
    hub: web::Data<Hub>,
    session: PageSession,
    form: web::Form<PassphraseForm>,
) -> Result<HttpResponse, PageError> {
    let PassphraseForm {
        csrf,
        current,
        new,
        confirm,
    } = form.into_inner();
    check_csrf(&session, &csrf)?;
    let h = hub.clone();
    match blocking(move || h.change_passphrase(&current, &new, Some(&confirm))).await {
        Ok(()) => Ok(HttpResponse::SeeOther()
            .cookie(cleared_cookie())
            .insert_header((header::LOCATION, "/unlock?changed=1"))
            .finish()),
        Err(e) => {
            let (status, _) = super::errors::classify(&e);
            settings_page(&hub, &session, status, Some(&e.to_string()), None, None).await
        }
    }
}
