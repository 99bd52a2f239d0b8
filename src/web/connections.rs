//! Connections in the browser (the Connectors page and its forms) and in the JSON API.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::auth::{ApiSession, PageSession};
use super::errors::{ApiError, PageError};
use super::pages::{Layout, blocking, check_csrf, redirect, render};
use crate::hub::connections::{ConnectionView, managed_id, parse_provider};
use crate::hub::{Hub, HubError};
use crate::providers::{self, Provider};

// ---- JSON API ----

pub async fn api_list(hub: web::Data<Hub>, _s: ApiSession) -> Result<HttpResponse, ApiError> {
    let h = hub.clone();
    let list = blocking(move || h.list_connections()).await?;
    Ok(HttpResponse::Ok().json(json!({ "data": list })))
}

pub async fn api_get(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let h = hub.clone();
    let view = blocking(move || h.connection(&id)).await?;
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
    let h = hub.clone();
    let view = blocking(move || h.add_connection(provider, &name, &api_key)).await?;
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
    let h = hub.clone();
    let id = id.into_inner();
    let view = blocking(move || {
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
    let h = hub.clone();
    blocking(move || h.delete_connection(&id)).await?;
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
    let h = hub.clone();
    let view = blocking(move || h.enable_managed(provider)).await?;
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
    error: Option<String>,
    /// The provider whose add form the error belongs to.
    error_provider: Option<Provider>,
    notice: Option<String>,
    /// The connection to show expanded (just added or verified).
    focus: Option<String>,
}

impl ConnectorsPage {
    fn error_for(&self, provider: &Provider) -> bool {
        self.error_provider == Some(*provider)
    }

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
    notice: Option<String>,
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "added" => "Connection added and checked: it can list the provider's models.",
        "added-failed" => {
            "Connection added, but the check failed. The problem and what to do about it are shown on the connection."
        }
        "verified" => "Verified: the connection can list the provider's models.",
        "verify-failed" => {
            "Verification failed. The problem and what to do about it are shown on the connection."
        }
        "renamed" => "Connection renamed.",
        "rotated" => "Key replaced. The connection keeps its apps.",
        "deleted" => "Connection deleted. Its key is gone from the Hub.",
        "disabled" => {
            "Managed connection deleted. Apps bound to it are refused until you enable it again."
        }
        "enabled" => "Managed connection enabled.",
        _ => return None,
    })
}

async fn page(
    hub: &web::Data<Hub>,
    session: &PageSession,
    status: StatusCode,
    error: Option<(Option<Provider>, String)>,
    query: PageQuery,
) -> Result<HttpResponse, PageError> {
    let h = hub.clone();
    let list = blocking(move || h.list_connections()).await?;
    let (error_provider, error) = match error {
        Some((p, e)) => (p, Some(e)),
        None => (None, None),
    };
    render(
        status,
        &ConnectorsPage {
            l: Layout::new(hub, session, "connectors"),
            sections: sections(list),
            offline: hub.config().offline,
            error,
            error_provider,
            notice: query
                .notice
                .as_deref()
                .and_then(notice_text)
                .map(str::to_string),
            focus: query.focus,
        },
    )
}

pub async fn connectors(
    hub: web::Data<Hub>,
    session: PageSession,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    page(&hub, &session, StatusCode::OK, None, query.into_inner()).await
}

/// Re-renders the page with the error of a form, leaving everything else as it was.
async fn form_error(
    hub: &web::Data<Hub>,
    session: &PageSession,
    provider: Option<Provider>,
    e: HubError,
) -> Result<HttpResponse, PageError> {
    let (status, _) = super::errors::classify(&e);
    let query = PageQuery {
        focus: None,
        notice: None,
    };
    page(hub, session, status, Some((provider, e.to_string())), query).await
}

fn back(notice: &str, focus: Option<&str>) -> HttpResponse {
    match focus {
        Some(id) => redirect(&format!("/connectors?notice={notice}&focus={id}#conn-{id}")),
        None => redirect(&format!("/connectors?notice={notice}")),
    }
}

#[derive(Deserialize)]
pub struct AddForm {
    csrf: String,
    provider: String,
    name: String,
    api_key: SecretString,
}

pub async fn add(
    hub: web::Data<Hub>,
    session: PageSession,
    form: web::Form<AddForm>,
) -> Result<HttpResponse, PageError> {
    let AddForm {
        csrf,
        provider,
        name,
        api_key,
    } = form.into_inner();
    check_csrf(&session, &csrf)?;
    let provider = match parse_provider(&provider) {
        Ok(p) => p,
        Err(e) => return form_error(&hub, &session, None, e).await,
    };
    let h = hub.clone();
    match blocking(move || h.add_connection(provider, &name, &api_key)).await {
        Ok(view) => {
            let checked = hub.verify_connection(&view.id).await?;
            let notice = if checked.ok { "added" } else { "added-failed" };
            Ok(back(notice, Some(&view.id)))
        }
        Err(e) => form_error(&hub, &session, Some(provider), e).await,
    }
}

pub async fn verify(
    hub: web::Data<Hub>,
    session: PageSession,
    id: web::Path<String>,
    form: web::Form<super::pages::CsrfForm>,
) -> Result<HttpResponse, PageError> {
    check_csrf(&session, form.token())?;
    let checked = hub.verify_connection(&id).await?;
    let notice = if checked.ok {
        "verified"
    } else {
        "verify-failed"
    };
    Ok(back(notice, Some(&id)))
}

#[derive(Deserialize)]
pub struct RenameForm {
    csrf: String,
    name: String,
}

pub async fn rename(
    hub: web::Data<Hub>,
    session: PageSession,
    id: web::Path<String>,
    form: web::Form<RenameForm>,
) -> Result<HttpResponse, PageError> {
    let RenameForm { csrf, name } = form.into_inner();
    check_csrf(&session, &csrf)?;
    let h = hub.clone();
    let id = id.into_inner();
    let target = id.clone();
    match blocking(move || h.rename_connection(&target, &name)).await {
        Ok(_) => Ok(back("renamed", Some(&id))),
        Err(e) => form_error(&hub, &session, None, e).await,
    }
}

#[derive(Deserialize)]
pub struct RotateForm {
    csrf: String,
    api_key: SecretString,
}

pub async fn rotate(
    hub: web::Data<Hub>,
    session: PageSession,
    id: web::Path<String>,
    form: web::Form<RotateForm>,
) -> Result<HttpResponse, PageError> {
    let RotateForm { csrf, api_key } = form.into_inner();
    check_csrf(&session, &csrf)?;
    let h = hub.clone();
    let id = id.into_inner();
    let target = id.clone();
    match blocking(move || h.rotate_connection_key(&target, &api_key)).await {
        Ok(_) => {
            hub.verify_connection(&id).await?;
            Ok(back("rotated", Some(&id)))
        }
        Err(e) => form_error(&hub, &session, None, e).await,
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
    let h = hub.clone();
    let (connection, apps) = blocking(move || Ok((h.connection(&id)?, h.apps_using(&id)?))).await?;
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
    session: PageSession,
    id: web::Path<String>,
    form: web::Form<super::pages::CsrfForm>,
) -> Result<HttpResponse, PageError> {
    check_csrf(&session, form.token())?;
    let h = hub.clone();
    let target = id.clone();
    let managed = blocking(move || {
        let managed = h.connection(&target)?.is_managed();
        h.delete_connection(&target)?;
        Ok(managed)
    })
    .await?;
    Ok(if managed {
        back("disabled", Some(&id))
    } else {
        back("deleted", None)
    })
}

pub async fn enable(
    hub: web::Data<Hub>,
    session: PageSession,
    provider: web::Path<String>,
    form: web::Form<super::pages::CsrfForm>,
) -> Result<HttpResponse, PageError> {
    check_csrf(&session, form.token())?;
    let provider = parse_provider(&provider)?;
    let h = hub.clone();
    blocking(move || h.enable_managed(provider)).await?;
    Ok(back("enabled", Some(&managed_id(provider))))
}
