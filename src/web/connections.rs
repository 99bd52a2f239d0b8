//! Connections in the browser (the Connectors page and its forms) and in the JSON API.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::auth::{ApiSession, CsrfForm, Flash, Incoming, PageSession, flash_key, redirect_with};
use super::errors::{ApiError, PageError};
use super::pages::{Empty, Layout, field_of, render};
use crate::hub::connections::{ConnectionView, managed_id, parse_provider};
use crate::hub::{Hub, HubError};
use crate::providers::{self, Provider};

// ---- JSON API ----

pub async fn api_list(hub: web::Data<Hub>, _s: ApiSession) -> Result<HttpResponse, ApiError> {
    let list = hub.run(move |h| h.list_connections()).await?;
    Ok(HttpResponse::Ok().json(json!({ "data": list })))
}

pub async fn api_get(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = hub.run(move |h| h.connection(&id)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    provider: String,
    name: String,
    api_key: SecretString,
}

/// Adds a BYOK connection and verifies it once; a failed verification keeps the
/// connection and reports the problem on it.
pub async fn api_create(
    hub: web::Data<Hub>,
    _s: ApiSession,
    body: web::Json<NewConnection>,
) -> Result<HttpResponse, ApiError> {
    let NewConnection {
        provider,
        name,
        api_key,
    } = body.into_inner();
    let provider = parse_provider(&provider)?;
    let view = hub
        .run(move |h| h.add_connection(provider, &name, &api_key))
        .await?;
    let verified = hub.verify_connection(&view.id).await?;
    Ok(HttpResponse::Created().json(verified.connection))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionChanges {
    name: Option<String>,
    api_key: Option<SecretString>,
}

/// Renames and/or rotates the key; the id and app bindings stay.
pub async fn api_update(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
    body: web::Json<ConnectionChanges>,
) -> Result<HttpResponse, ApiError> {
    let ConnectionChanges { name, api_key } = body.into_inner();
    if name.is_none() && api_key.is_none() {
        return Err(HubError::bad_input("name", "Send a new name, a new api_key, or both.").into());
    }
    let id = id.into_inner();
    let view = hub
        .run(move |h| {
            if let Some(key) = &api_key {
                // Check the key before renaming, so bad input changes nothing.
                h.rotate_connection_key(&id, key)?;
            }
            match &name {
                Some(n) => h.rename_connection(&id, n),
                None => h.connection(&id),
            }
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn api_delete(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
    _body: super::api::Drained,
) -> Result<HttpResponse, ApiError> {
    hub.run(move |h| h.delete_connection(&id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn api_verify(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
    _body: super::api::Drained,
) -> Result<HttpResponse, ApiError> {
    let result = hub.verify_connection(&id).await?;
    Ok(HttpResponse::Ok().json(result))
}

pub async fn api_enable_managed(
    hub: web::Data<Hub>,
    _s: ApiSession,
    provider: web::Path<String>,
    _body: super::api::Drained,
) -> Result<HttpResponse, ApiError> {
    let provider = parse_provider(&provider)?;
    let view = hub.run(move |h| h.enable_managed(provider)).await?;
    Ok(HttpResponse::Ok().json(view))
}

// ---- Pages ----

/// One provider's section of the page: its managed tile and the user's own connections.
struct ProviderSection {
    provider: Provider,
    managed: Option<ConnectionView>,
    own: Vec<ConnectionView>,
    key_format: &'static str,
}

#[derive(Template)]
#[template(path = "connectors.html")]
struct ConnectorsPage {
    l: Layout,
    sections: Vec<ProviderSection>,
    offline: bool,
    flash: Flash,
    /// The connection to show expanded (just added or verified).
    focus: Option<String>,
}

impl ConnectorsPage {
    fn is_focus(&self, id: &str) -> bool {
        self.focus.as_deref() == Some(id)
    }
}

fn sections(list: Vec<ConnectionView>) -> Vec<ProviderSection> {
    Provider::ALL
        .iter()
        .map(|&provider| {
            let (managed, own): (Vec<_>, Vec<_>) = list
                .iter()
                .filter(|c| c.provider == provider)
                .cloned()
                .partition(|c| c.is_managed());
            ProviderSection {
                provider,
                managed: managed.into_iter().next(),
                own,
                key_format: providers::api(provider).key_format().described,
            }
        })
        .collect()
}

#[derive(Deserialize)]
pub struct PageQuery {
    focus: Option<String>,
}

pub async fn connectors(
    hub: web::Data<Hub>,
    session: PageSession,
    query: web::Query<PageQuery>,
    flash: Incoming,
) -> Result<HttpResponse, PageError> {
    let list = hub.run(move |h| h.list_connections()).await?;
    render(
        StatusCode::OK,
        &ConnectorsPage {
            l: Layout::new(&hub, &session, "connectors"),
            sections: sections(list),
            offline: hub.config().offline,
            flash: flash.0,
            focus: query.into_inner().focus,
        },
    )
}

/// Back to the Connectors page with `flash`, scrolled to `focus` (a connection id) when given.
fn back(session: &PageSession, flash: Flash, focus: Option<&str>) -> HttpResponse {
    let to = match focus {
        Some(id) => format!("/connectors?focus={id}#conn-{id}"),
        None => "/connectors".to_string(),
    };
    redirect_with(&to, &flash, flash_key(Some(session)))
}

/// Back to the page with a form's error beside its field, scrolled to the form.
fn back_to_form(session: &PageSession, form: &str, e: &HubError, name: &str) -> HttpResponse {
    let field = if field_of(e) == "api_key" {
        "api_key"
    } else {
        "name"
    };
    let flash = Flash::error(form, field, e.to_string()).keep("name", name);
    redirect_with(
        &format!("/connectors#{form}"),
        &flash,
        flash_key(Some(session)),
    )
}

/// After a check: a notice when it passed, a failure (styled as one) when it did not.
fn checked_flash(ok: bool, passed: &str, failed: &str) -> Flash {
    if ok {
        Flash::notice(passed)
    } else {
        Flash::error("page", "", failed)
    }
}

#[derive(Deserialize)]
pub struct AddForm {
    provider: String,
    name: String,
    api_key: SecretString,
}

pub async fn add(hub: web::Data<Hub>, form: CsrfForm<AddForm>) -> Result<HttpResponse, PageError> {
    let CsrfForm { session, form } = form;
    let AddForm {
        provider,
        name,
        api_key,
    } = form;
    let provider = parse_provider(&provider)?;
    let typed = name.clone();
    match hub
        .run(move |h| h.add_connection(provider, &name, &api_key))
        .await
    {
        Ok(view) => {
            let checked = hub.verify_connection(&view.id).await?;
            let flash = checked_flash(
                checked.ok,
                "Connection added and checked: it can list the provider's models.",
                "Connection added, but the check failed. The problem and what to do about it are shown on the connection.",
            );
            Ok(back(&session, flash, Some(&view.id)))
        }
        Err(e) => Ok(back_to_form(
            &session,
            &format!("add-{provider}"),
            &e,
            &typed,
        )),
    }
}

pub async fn verify(
    hub: web::Data<Hub>,
    id: web::Path<String>,
    form: CsrfForm<Empty>,
) -> Result<HttpResponse, PageError> {
    let checked = hub.verify_connection(&id).await?;
    let flash = checked_flash(
        checked.ok,
        "Verified: the connection can list the provider's models.",
        "Verification failed. The problem and what to do about it are shown on the connection.",
    );
    Ok(back(&form.session, flash, Some(&id)))
}

#[derive(Deserialize)]
pub struct RenameForm {
    name: String,
}

pub async fn rename(
    hub: web::Data<Hub>,
    id: web::Path<String>,
    form: CsrfForm<RenameForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { session, form } = form;
    let id = id.into_inner();
    let target = id.clone();
    let typed = form.name.clone();
    match hub
        .run(move |h| h.rename_connection(&target, &form.name))
        .await
    {
        Ok(_) => Ok(back(
            &session,
            Flash::notice("Connection renamed."),
            Some(&id),
        )),
        Err(e) => Ok(back_to_form(&session, &format!("rename-{id}"), &e, &typed)),
    }
}

#[derive(Deserialize)]
pub struct RotateForm {
    api_key: SecretString,
}

pub async fn rotate(
    hub: web::Data<Hub>,
    id: web::Path<String>,
    form: CsrfForm<RotateForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { session, form } = form;
    let id = id.into_inner();
    let target = id.clone();
    match hub
        .run(move |h| h.rotate_connection_key(&target, &form.api_key))
        .await
    {
        Ok(_) => {
            let checked = hub.verify_connection(&id).await?;
            let flash = checked_flash(
                checked.ok,
                "Key replaced and checked. The connection keeps its apps.",
                "Key replaced, but the check failed. The problem is shown on the connection.",
            );
            Ok(back(&session, flash, Some(&id)))
        }
        Err(e) => Ok(back_to_form(&session, &format!("rotate-{id}"), &e, "")),
    }
}

#[derive(Template)]
#[template(path = "connection_delete.html")]
struct DeletePage {
    l: Layout,
    connection: ConnectionView,
    apps: Vec<(String, String)>,
}

/// The confirmation step: says what deleting does and which apps lose access.
pub async fn confirm_delete(
    hub: web::Data<Hub>,
    session: PageSession,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let (connection, apps) = hub
        .run(move |h| Ok((h.connection(&id)?, h.apps_using(&id)?)))
        .await?;
    render(
        StatusCode::OK,
        &DeletePage {
            l: Layout::new(&hub, &session, "connectors"),
            connection,
            apps,
        },
    )
}

pub async fn delete(
    hub: web::Data<Hub>,
    id: web::Path<String>,
    form: CsrfForm<Empty>,
) -> Result<HttpResponse, PageError> {
    let target = id.clone();
    let managed = hub
        .run(move |h| {
            let managed = h.connection(&target)?.is_managed();
            h.delete_connection(&target)?;
            Ok(managed)
        })
        .await?;
    Ok(if managed {
        let flash = Flash::notice(
            "Managed connector turned off. Apps bound to it are refused until you turn it on again with Enable.",
        );
        back(&form.session, flash, Some(&id))
    } else {
        let flash = Flash::notice("Connection deleted. Its key is gone from the Hub.");
        back(&form.session, flash, None)
    })
}

pub async fn enable(
    hub: web::Data<Hub>,
    provider: web::Path<String>,
    form: CsrfForm<Empty>,
) -> Result<HttpResponse, PageError> {
    let provider = parse_provider(&provider)?;
    hub.run(move |h| h.enable_managed(provider)).await?;
    let flash = Flash::notice("Managed connector turned on again.");
    Ok(back(&form.session, flash, Some(&managed_id(provider))))
}
