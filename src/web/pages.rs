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

/// What the shared layout (`base.html`) needs.
pub struct Layout {
    pub csrf: String,
    pub active: &'static str,
    pub offline: bool,
    pub version: &'static str,
    /// The credit balance as shown in the sidebar, e.g. `$4.98`.
    pub balance: String,
}

impl Layout {
    /// Sidebar entries as (key, href, label), only for pages that exist.
    pub fn nav(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &[
            ("models", "/models", "Models"),
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
pub const HOME: &str = "/settings";

/// Runs a blocking Hub call (Argon2id, SQLite) off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, HubError>
where
    F: FnOnce() -> Result<T, HubError> + Send + 'static,
    T: Send + 'static,
{
    web::block(f)
        .await
        .map_err(|e| HubError::Unexpected(format!("blocking task: {e}")))?
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

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
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

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage<'a> {
    l: Layout,
    error: Option<&'a str>,
    min_len: usize,
    data_dir: String,
}

pub async fn settings(
    hub: web::Data<Hub>,
    session: PageSession,
) -> Result<HttpResponse, PageError> {
    ok(&SettingsPage {
        l: Layout::new(&hub, &session, "settings"),
        error: None,
        min_len: MIN_PASSPHRASE_LEN,
        data_dir: hub.config().data_dir.display().to_string(),
    })
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
            render(
                status,
                &SettingsPage {
                    l: Layout::new(&hub, &session, "settings"),
                    error: Some(&e.to_string()),
                    min_len: MIN_PASSPHRASE_LEN,
                    data_dir: hub.config().data_dir.display().to_string(),
                },
            )
        }
    }
}
