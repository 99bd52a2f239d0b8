//! Apps in the browser (the Apps page: create, show the key once with snippets, bind
//! connections, limits) and in the JSON API.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::HostPolicy;
use super::auth::{ApiSession, CsrfForm, Flash, Incoming, PageSession, flash_key, redirect_with};
use super::errors::{ApiError, PageError};
use super::pages::{Empty, Layout, Money, When, field_of, render};
use crate::hub::apps::{AppInput, AppView, BindingInput};
use crate::hub::connections::ConnectionView;
use crate::hub::{Hub, HubError};
use crate::money::MicroUsd;
use crate::providers::{self, Provider, Snippet};

// ---- JSON API ----

pub async fn api_list(hub: web::Data<Hub>, _s: ApiSession) -> Result<HttpResponse, ApiError> {
    let apps = hub.run(move |h| h.list_apps()).await?;
    Ok(HttpResponse::Ok().json(json!({ "data": apps })))
}

pub async fn api_get(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.run(move |h| h.app(&id)).await?))
}

/// Creates an app; the response carries its key, the only time it is ever shown.
pub async fn api_create(
    hub: web::Data<Hub>,
    _s: ApiSession,
    body: web::Json<AppInput>,
) -> Result<HttpResponse, ApiError> {
    let created = hub.run(move |h| h.create_app(body.into_inner())).await?;
    Ok(HttpResponse::Created().json(created))
}

pub async fn api_update(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
    body: web::Json<AppInput>,
) -> Result<HttpResponse, ApiError> {
    let app = hub
        .run(move |h| h.update_app(&id, body.into_inner()))
        .await?;
    Ok(HttpResponse::Ok().json(app))
}

pub async fn api_delete(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
    _body: super::api::Drained,
) -> Result<HttpResponse, ApiError> {
    hub.run(move |h| h.delete_app(&id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn api_rotate(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
    _body: super::api::Drained,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.run(move |h| h.rotate_app_key(&id)).await?))
}

// ---- Pages ----

/// One app in the list.
struct AppRowView {
    app: AppView,
    /// Per provider: what it is bound to, in a few words.
    bindings: Vec<(Provider, String)>,
    month_spend: Money,
    last_used: Option<When>,
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    l: Layout,
    rows: Vec<AppRowView>,
    flash: Flash,
}

/// The connection picker for one provider of one app.
struct BindingChoice {
    provider: Provider,
    current: Option<String>,
    /// The bound connection no longer exists or is turned off.
    revoked: bool,
    /// The bound connection's last call or check failed.
    failing: Option<String>,
    options: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "app.html")]
struct AppPage {
    l: Layout,
    app: AppView,
    bindings: Vec<BindingChoice>,
    /// Published and bound to an own key: visitors spend on the user's account.
    spends_own_key: bool,
    budget_dollars: String,
    month_spend: Money,
    flash: Flash,
}

impl AppPage {
    /// What the settings form shows in `name`: what was typed before an error, else the app's.
    fn field(&self, name: &str, saved: &str) -> String {
        if self.flash.error_for("settings").is_some() {
            self.flash.value("settings", name).to_string()
        } else {
            saved.to_string()
        }
    }
}

/// What a confirmation page asks about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    NewKey,
    Delete,
}

#[derive(Template)]
#[template(path = "app_confirm.html")]
struct ConfirmPage {
    l: Layout,
    app: AppView,
    action: Action,
}

#[derive(Template)]
#[template(path = "app_key.html")]
struct KeyPage {
    l: Layout,
    app: AppView,
    /// The key and its snippets, or `None` when it was already shown.
    key: Option<(String, Vec<(&'static str, String)>)>,
    base_url: String,
}

fn connection_label(c: &ConnectionView) -> String {
    let base = if c.is_managed() {
        format!("Managed {} (Hub credits)", c.provider.display_name())
    } else {
        format!(
            "{} (your key {})",
            c.name,
            c.key_hint.as_deref().unwrap_or("")
        )
    };
    format!("{base}{}", c.picker_warning())
}

fn binding_choices(app: &AppView, connections: &[ConnectionView]) -> Vec<BindingChoice> {
    Provider::ALL
        .iter()
        .map(|&p| {
            let current = app.connections.get(p).clone();
            let bound = current
                .as_deref()
                .and_then(|id| connections.iter().find(|c| c.id == id && c.is_enabled()));
            BindingChoice {
                provider: p,
                revoked: current.is_some() && bound.is_none(),
                failing: bound
                    .filter(|c| c.is_failing())
                    .map(ConnectionView::health_label),
                options: connections
                    .iter()
                    .filter(|c| c.provider == p && c.is_enabled())
                    .map(|c| (c.id.clone(), connection_label(c)))
                    .collect(),
                current,
            }
        })
        .collect()
}

/// "Managed", "Work account", "no access" or "turned off" for one provider of an app.
fn binding_summary(app: &AppView, p: Provider, connections: &[ConnectionView]) -> String {
    match app.connections.get(p).as_deref() {
        None => "no access".to_string(),
        Some(id) => match connections.iter().find(|c| c.id == id) {
            Some(c) if !c.is_enabled() => "turned off".to_string(),
            Some(c) if c.is_failing() => format!(
                "{} ⚠ failing",
                if c.is_managed() { "managed" } else { &c.name }
            ),
            Some(c) if c.is_managed() => "managed".to_string(),
            Some(c) => c.name.clone(),
            None => "deleted".to_string(),
        },
    }
}

fn spends_own_key(app: &AppView, connections: &[ConnectionView]) -> bool {
    app.published
        && Provider::ALL.iter().any(|&p| {
            app.connections
                .get(p)
                .as_deref()
                .is_some_and(|id| connections.iter().any(|c| c.id == id && !c.is_managed()))
        })
}

fn list_rows(hub: &Hub) -> Result<Vec<AppRowView>, HubError> {
    let connections = hub.list_connections()?;
    let last_used = hub.apps_last_used()?;
    hub.list_apps()?
        .into_iter()
        .map(|app| {
            Ok(AppRowView {
                bindings: Provider::ALL
                    .iter()
                    .map(|&p| (p, binding_summary(&app, p, &connections)))
                    .collect(),
                month_spend: Money::of(hub.app_month_spend(&app.id)?.total()),
                last_used: last_used.get(&app.id).map(|t| When::of(t)),
                app,
            })
        })
        .collect()
}

pub async fn apps(
    hub: web::Data<Hub>,
    session: PageSession,
    flash: Incoming,
) -> Result<HttpResponse, PageError> {
    let rows = hub.run(list_rows).await?;
    render(
        StatusCode::OK,
        &AppsPage {
            l: Layout::new(&hub, &session, "apps"),
            rows,
            flash: flash.0,
        },
    )
}

pub async fn show(
    hub: web::Data<Hub>,
    session: PageSession,
    id: web::Path<String>,
    flash: Incoming,
) -> Result<HttpResponse, PageError> {
    let (app, connections, spend) = hub
        .run(move |h| {
            Ok((
                h.app(&id)?,
                h.list_connections()?,
                h.app_month_spend(&id)?.total(),
            ))
        })
        .await?;
    let budget_dollars = app
        .monthly_budget_micro_usd
        .map(|b| dollars_for_input(MicroUsd(b)))
        .unwrap_or_default();
    render(
        StatusCode::OK,
        &AppPage {
            l: Layout::new(&hub, &session, "apps"),
            bindings: binding_choices(&app, &connections),
            spends_own_key: spends_own_key(&app, &connections),
            budget_dollars,
            month_spend: Money::of(spend),
            app,
            flash: flash.0,
        },
    )
}

/// Sends the browser to the page that shows the app's new key once, carrying a tag of the
/// key just issued (never the key) so that page can tell it has not been shown yet.
fn to_key_page(hub: &Hub, session: &PageSession, id: &str) -> Result<HttpResponse, HubError> {
    let flash = Flash {
        reveal: Some(hub.app_key_tag(id)?),
        ..Flash::default()
    };
    Ok(redirect_with(
        &format!("/apps/{id}/key"),
        &flash,
        flash_key(Some(session)),
    ))
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
}

/// Creates an app and sends the browser on to its key (post/redirect/get, so reloading
/// never makes a second app).
pub async fn create(
    hub: web::Data<Hub>,
    form: CsrfForm<CreateForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { session, form } = form;
    let typed = form.name.clone();
    let input = AppInput {
        name: Some(form.name),
        ..AppInput::default()
    };
    let created = hub
        .run(move |h| h.create_app(input).map(|c| c.app.id))
        .await;
    match created {
        Ok(id) => Ok(to_key_page(&hub, &session, &id)?),
        Err(e) => {
            let flash = Flash::error("new-app", "name", e.to_string()).keep("name", &typed);
            Ok(redirect_with(
                "/apps#new-app",
                &flash,
                flash_key(Some(&session)),
            ))
        }
    }
}

/// The key page: shows a key issued just before, once. The key itself is made here, at
/// the first visit after the form, so it never has to be kept anywhere; a reload finds the
/// tag spent and says so.
pub async fn key(
    hub: web::Data<Hub>,
    hosts: web::Data<HostPolicy>,
    session: PageSession,
    id: web::Path<String>,
    flash: Incoming,
) -> Result<HttpResponse, PageError> {
    let tag = flash.0.reveal;
    let (app, key) = hub
        .run(move |h| {
            let fresh = tag.is_some_and(|t| h.app_key_tag(&id).is_ok_and(|now| now == t));
            if fresh {
                let issued = h.rotate_app_key(&id)?;
                Ok((issued.app, Some(issued.key)))
            } else {
                Ok((h.app(&id)?, None))
            }
        })
        .await?;
    let base_url = hosts.base_url();
    let key = key.map(|k| {
        let k = k.expose_secret().to_string();
        (k.clone(), snippets(&base_url, &k))
    });
    render(
        StatusCode::OK,
        &KeyPage {
            l: Layout::new(&hub, &session, "apps"),
            app,
            key,
            base_url,
        },
    )
}

/// Asks before a destructive step, on a page of its own (no JavaScript needed):
/// `/apps/{id}/rotate-key` for a new key, `/apps/{id}/delete` for deleting the app.
pub async fn confirm(
    hub: web::Data<Hub>,
    session: PageSession,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (id, step) = path.into_inner();
    let action = match step.as_str() {
        "rotate-key" => Action::NewKey,
        "delete" => Action::Delete,
        _ => return Err(HubError::NotFound("That page").into()),
    };
    let app = hub.run(move |h| h.app(&id)).await?;
    render(
        StatusCode::OK,
        &ConfirmPage {
            l: Layout::new(&hub, &session, "apps"),
            app,
            action,
        },
    )
}

pub async fn rotate(
    hub: web::Data<Hub>,
    id: web::Path<String>,
    form: CsrfForm<Empty>,
) -> Result<HttpResponse, PageError> {
    let target = id.clone();
    // The old key stops working now; the key page issues the one that is shown.
    hub.run(move |h| h.rotate_app_key(&target).map(|_| ()))
        .await?;
    Ok(to_key_page(&hub, &form.session, &id)?)
}

pub async fn delete(
    hub: web::Data<Hub>,
    id: web::Path<String>,
    form: CsrfForm<Empty>,
) -> Result<HttpResponse, PageError> {
    let name = hub
        .run(move |h| {
            let name = h.app(&id)?.name;
            h.delete_app(&id)?;
            Ok(name)
        })
        .await?;
    let flash = Flash::notice(format!("App “{name}” deleted. Its key no longer works."));
    Ok(redirect_with(
        "/apps",
        &flash,
        flash_key(Some(&form.session)),
    ))
}

/// The settings form of one app. Empty limit fields mean "no limit".
#[derive(Deserialize)]
pub struct SettingsForm {
    name: String,
    published: Option<String>,
    budget_dollars: String,
    rpm_limit: String,
    tpm_limit: String,
    openai: String,
    anthropic: String,
    gemini: String,
}

impl SettingsForm {
    /// What was typed, to put back after an error (no secrets in this form).
    fn kept(&self, flash: Flash) -> Flash {
        flash
            .keep("name", &self.name)
            .keep("budget_dollars", &self.budget_dollars)
            .keep("rpm_limit", &self.rpm_limit)
            .keep("tpm_limit", &self.tpm_limit)
    }
}

pub async fn save(
    hub: web::Data<Hub>,
    id: web::Path<String>,
    form: CsrfForm<SettingsForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { session, form } = form;
    let id = id.into_inner();
    let result = match settings_input(&form) {
        Ok(input) => {
            let target = id.clone();
            hub.run(move |h| h.update_app(&target, input)).await
        }
        Err(e) => Err(e),
    };
    let flash = match result {
        Ok(_) => Flash::notice("App saved."),
        Err(e) => {
            let field = match field_of(&e) {
                "monthly_budget_micro_usd" => "budget_dollars",
                "connections" => "connections",
                other => other,
            };
            form.kept(Flash::error("settings", field, e.to_string()))
        }
    };
    let to = format!("/apps/{id}#settings");
    Ok(redirect_with(&to, &flash, flash_key(Some(&session))))
}

/// `12.5` style for a form field (no `$`), exact.
fn dollars_for_input(m: MicroUsd) -> String {
    m.to_string().trim_start_matches('$').to_string()
}

/// The SDK snippets for an app key, each with the right base URL for this Hub: every
/// provider's Python, then JavaScript, then the shell.
pub fn snippets(base: &str, key: &str) -> Vec<(&'static str, String)> {
    let mut all: Vec<Snippet> = Provider::ALL
        .iter()
        .flat_map(|&p| providers::api(p).sdk_snippets(base, key))
        .collect();
    all.sort_by_key(|s| s.language);
    all.into_iter().map(|s| (s.label, s.code)).collect()
}

fn settings_input(form: &SettingsForm) -> Result<AppInput, HubError> {
    let binding = |v: &str| Some(Some(v.to_string()).filter(|s| !s.is_empty()));
    Ok(AppInput {
        name: Some(form.name.clone()),
        published: Some(form.published.is_some()),
        monthly_budget_micro_usd: Some(optional_dollars(&form.budget_dollars)?.map(|m| m.0)),
        rpm_limit: Some(optional_count("rpm_limit", &form.rpm_limit)?),
        tpm_limit: Some(optional_count("tpm_limit", &form.tpm_limit)?),
        connections: Some(BindingInput {
            openai: binding(&form.openai),
            anthropic: binding(&form.anthropic),
            gemini: binding(&form.gemini),
        }),
    })
}

fn optional_count(field: &'static str, text: &str) -> Result<Option<i64>, HubError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<i64>()
        .map(Some)
        .map_err(|_| HubError::bad_input(field, "Limits are whole numbers, or empty for no limit."))
}

fn optional_dollars(text: &str) -> Result<Option<MicroUsd>, HubError> {
    let t = text.trim().trim_start_matches('$');
    if t.is_empty() {
        return Ok(None);
    }
    MicroUsd::parse_dollars(t)
        .map(Some)
        .map_err(|why| HubError::bad_input("monthly_budget_micro_usd", format!("Budget: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_use_the_hub_base_urls() {
        let s = snippets("http://127.0.0.1:8420", "whk_x");
        let all: String = s.iter().map(|(_, t)| t.as_str()).collect();
        assert!(all.contains("base_url=\"http://127.0.0.1:8420/openai/v1\""));
        assert!(all.contains("base_url=\"http://127.0.0.1:8420/anthropic\""));
        assert!(all.contains("base_url=\"http://127.0.0.1:8420/gemini\""));
        assert!(all.contains("Authorization: Bearer whk_x"));
    }
}
