//! Apps in the browser (the Apps page: create, show the key once with snippets, bind
//! connections, limits) and in the JSON API.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::HostPolicy;
use super::auth::{ApiSession, PageSession};
use super::errors::{ApiError, PageError};
use super::pages::{Layout, blocking, check_csrf, redirect, render};
use crate::hub::apps::{AppInput, AppView, AppWithKey, BindingInput};
use crate::hub::connections::ConnectionView;
use crate::hub::{Hub, HubError};
use crate::money::MicroUsd;
use crate::providers::Provider;

// ---- JSON API ----

pub async fn api_list(hub: web::Data<Hub>, _s: ApiSession) -> Result<HttpResponse, ApiError> {
    let h = hub.clone();
    let apps = blocking(move || h.list_apps()).await?;
    Ok(HttpResponse::Ok().json(json!({ "data": apps })))
}

pub async fn api_get(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let h = hub.clone();
    Ok(HttpResponse::Ok().json(blocking(move || h.app(&id)).await?))
}

/// Creates an app; the response carries its key, the only time it is ever shown.
pub async fn api_create(
    hub: web::Data<Hub>,
    _s: ApiSession,
    body: web::Json<AppInput>,
) -> Result<HttpResponse, ApiError> {
    let h = hub.clone();
    let created = blocking(move || h.create_app(body.into_inner())).await?;
    Ok(HttpResponse::Created().json(created))
}

pub async fn api_update(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
    body: web::Json<AppInput>,
) -> Result<HttpResponse, ApiError> {
    let h = hub.clone();
    let app = blocking(move || h.update_app(&id, body.into_inner())).await?;
    Ok(HttpResponse::Ok().json(app))
}

pub async fn api_delete(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
    _body: super::api::Drained,
) -> Result<HttpResponse, ApiError> {
    let h = hub.clone();
    blocking(move || h.delete_app(&id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn api_rotate(
    hub: web::Data<Hub>,
    _s: ApiSession,
    id: web::Path<String>,
    _body: super::api::Drained,
) -> Result<HttpResponse, ApiError> {
    let h = hub.clone();
    Ok(HttpResponse::Ok().json(blocking(move || h.rotate_app_key(&id)).await?))
}

// ---- Pages ----

/// One app on the page, with what its bindings mean.
struct AppCard {
    app: AppView,
    bindings: Vec<BindingChoice>,
    /// Published and bound to an own key: visitors spend on the user's account.
    spends_own_key: bool,
    budget_dollars: String,
}

/// The connection picker for one provider of one app.
struct BindingChoice {
    provider: Provider,
    current: Option<String>,
    /// The bound connection no longer exists or is disabled.
    revoked: bool,
    options: Vec<(String, String)>,
}

/// The key of an app just created or re-keyed, with ready-to-paste snippets.
struct NewKey {
    app_name: String,
    key: String,
    snippets: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    l: Layout,
    cards: Vec<AppCard>,
    new_key: Option<NewKey>,
    error: Option<String>,
    notice: Option<&'static str>,
}

fn binding_choices(app: &AppView, connections: &[ConnectionView]) -> Vec<BindingChoice> {
    Provider::ALL
        .iter()
        .map(|&p| {
            let current = app.connections.get(p).clone();
            let revoked = current
                .as_deref()
                .is_some_and(|id| !connections.iter().any(|c| c.id == id && c.is_enabled()));
            BindingChoice {
                provider: p,
                revoked,
                options: connections
                    .iter()
                    .filter(|c| c.provider == p && c.is_enabled())
                    .map(|c| {
                        let label = if c.is_managed() {
                            format!("Managed {} (Hub credits)", p.display_name())
                        } else {
                            format!(
                                "{} (your key {})",
                                c.name,
                                c.key_hint.as_deref().unwrap_or("")
                            )
                        };
                        (c.id.clone(), label)
                    })
                    .collect(),
                current,
            }
        })
        .collect()
}

fn card(app: AppView, connections: &[ConnectionView]) -> AppCard {
    let bindings = binding_choices(&app, connections);
    let spends_own_key = app.published
        && Provider::ALL.iter().any(|&p| {
            app.connections
                .get(p)
                .as_deref()
                .is_some_and(|id| connections.iter().any(|c| c.id == id && !c.is_managed()))
        });
    let budget_dollars = app
        .monthly_budget_micro_usd
        .map(|b| dollars_for_input(MicroUsd(b)))
        .unwrap_or_default();
    AppCard {
        app,
        bindings,
        spends_own_key,
        budget_dollars,
    }
}

/// `12.5` style for a form field (no `$`), exact.
fn dollars_for_input(m: MicroUsd) -> String {
    m.to_string().trim_start_matches('$').to_string()
}

/// The SDK snippets for an app key, each with the right base URL for this Hub.
pub fn snippets(base: &str, key: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Python · openai",
            format!(
                "from openai import OpenAI\n\nclient = OpenAI(base_url=\"{base}/openai/v1\", api_key=\"{key}\")\nreply = client.chat.completions.create(\n    model=\"gpt-4o-mini\",\n    messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n)\nprint(reply.choices[0].message.content)"
            ),
        ),
        (
            "Python · anthropic",
            format!(
                "import anthropic\n\nclient = anthropic.Anthropic(base_url=\"{base}/anthropic\", api_key=\"{key}\")\nreply = client.messages.create(\n    model=\"claude-haiku-4-5\", max_tokens=256,\n    messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n)\nprint(reply.content[0].text)"
            ),
        ),
        (
            "Python · google-genai",
            format!(
                "from google import genai\nfrom google.genai import types\n\nclient = genai.Client(api_key=\"{key}\",\n    http_options=types.HttpOptions(base_url=\"{base}/gemini\"))\nreply = client.models.generate_content(model=\"gemini-2.5-flash\", contents=\"Hello!\")\nprint(reply.text)"
            ),
        ),
        (
            "JavaScript · openai",
            format!(
                "import OpenAI from \"openai\";\n\nconst client = new OpenAI({{ baseURL: \"{base}/openai/v1\", apiKey: \"{key}\" }});\nconst reply = await client.chat.completions.create({{\n  model: \"gpt-4o-mini\",\n  messages: [{{ role: \"user\", content: \"Hello!\" }}],\n}});\nconsole.log(reply.choices[0].message.content);"
            ),
        ),
        (
            "JavaScript · @anthropic-ai/sdk",
            format!(
                "import Anthropic from \"@anthropic-ai/sdk\";\n\nconst client = new Anthropic({{ baseURL: \"{base}/anthropic\", apiKey: \"{key}\" }});\nconst reply = await client.messages.create({{\n  model: \"claude-haiku-4-5\", max_tokens: 256,\n  messages: [{{ role: \"user\", content: \"Hello!\" }}],\n}});\nconsole.log(reply.content[0].text);"
            ),
        ),
        (
            "JavaScript · @google/genai",
            format!(
                "import {{ GoogleGenAI }} from \"@google/genai\";\n\nconst ai = new GoogleGenAI({{ apiKey: \"{key}\", httpOptions: {{ baseUrl: \"{base}/gemini\" }} }});\nconst reply = await ai.models.generateContent({{ model: \"gemini-2.5-flash\", contents: \"Hello!\" }});\nconsole.log(reply.text);"
            ),
        ),
        (
            "curl",
            format!(
                "curl {base}/openai/v1/chat/completions \\\n  -H \"Authorization: Bearer {key}\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"gpt-4o-mini\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'"
            ),
        ),
    ]
}

#[derive(Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "saved" => "App saved.",
        "deleted" => "App deleted. Its key no longer works.",
        _ => return None,
    })
}

async fn page(
    hub: &web::Data<Hub>,
    hosts: &HostPolicy,
    session: &PageSession,
    status: StatusCode,
    new_key: Option<AppWithKey>,
    error: Option<String>,
    notice: Option<&'static str>,
) -> Result<HttpResponse, PageError> {
    let h = hub.clone();
    let (apps, connections) = blocking(move || Ok((h.list_apps()?, h.list_connections()?))).await?;
    let base = format!("http://{}", hosts.primary());
    let new_key = new_key.map(|created| {
        let key = created.key.expose_secret().to_string();
        NewKey {
            app_name: created.app.name.clone(),
            snippets: snippets(&base, &key),
            key,
        }
    });
    render(
        status,
        &AppsPage {
            l: Layout::new(hub, session, "apps"),
            cards: apps.into_iter().map(|a| card(a, &connections)).collect(),
            new_key,
            error,
            notice,
        },
    )
}

pub async fn apps(
    hub: web::Data<Hub>,
    hosts: web::Data<HostPolicy>,
    session: PageSession,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let notice = query.notice.as_deref().and_then(notice_text);
    page(&hub, &hosts, &session, StatusCode::OK, None, None, notice).await
}

async fn with_error(
    hub: &web::Data<Hub>,
    hosts: &HostPolicy,
    session: &PageSession,
    e: HubError,
) -> Result<HttpResponse, PageError> {
    let (status, _) = super::errors::classify(&e);
    page(hub, hosts, session, status, None, Some(e.to_string()), None).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf: String,
    name: String,
}

/// Creates an app and shows its key once, on the page that answers the form (no redirect,
/// so the key never sits in a URL or the browser history).
pub async fn create(
    hub: web::Data<Hub>,
    hosts: web::Data<HostPolicy>,
    session: PageSession,
    form: web::Form<CreateForm>,
) -> Result<HttpResponse, PageError> {
    let CreateForm { csrf, name } = form.into_inner();
    check_csrf(&session, &csrf)?;
    let h = hub.clone();
    let input = AppInput {
        name: Some(name),
        ..AppInput::default()
    };
    match blocking(move || h.create_app(input)).await {
        Ok(created) => {
            page(
                &hub,
                &hosts,
                &session,
                StatusCode::OK,
                Some(created),
                None,
                None,
            )
            .await
        }
        Err(e) => with_error(&hub, &hosts, &session, e).await,
    }
}

pub async fn rotate(
    hub: web::Data<Hub>,
    hosts: web::Data<HostPolicy>,
    session: PageSession,
    id: web::Path<String>,
    form: web::Form<super::pages::CsrfForm>,
) -> Result<HttpResponse, PageError> {
    check_csrf(&session, form.token())?;
    let h = hub.clone();
    match blocking(move || h.rotate_app_key(&id)).await {
        Ok(rotated) => {
            page(
                &hub,
                &hosts,
                &session,
                StatusCode::OK,
                Some(rotated),
                None,
                None,
            )
            .await
        }
        Err(e) => with_error(&hub, &hosts, &session, e).await,
    }
}

pub async fn delete(
    hub: web::Data<Hub>,
    session: PageSession,
    id: web::Path<String>,
    form: web::Form<super::pages::CsrfForm>,
) -> Result<HttpResponse, PageError> {
    check_csrf(&session, form.token())?;
    let h = hub.clone();
    blocking(move || h.delete_app(&id)).await?;
    Ok(redirect("/apps?notice=deleted"))
}

/// The settings form of one app. Empty limit fields mean "no limit".
#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: String,
    name: String,
    published: Option<String>,
    budget_dollars: String,
    rpm_limit: String,
    tpm_limit: String,
    openai: String,
    anthropic: String,
    gemini: String,
}

pub async fn save(
    hub: web::Data<Hub>,
    hosts: web::Data<HostPolicy>,
    session: PageSession,
    id: web::Path<String>,
    form: web::Form<SettingsForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    check_csrf(&session, &form.csrf)?;
    let input = match settings_input(&form) {
        Ok(i) => i,
        Err(e) => return with_error(&hub, &hosts, &session, e).await,
    };
    let h = hub.clone();
    match blocking(move || h.update_app(&id, input)).await {
        Ok(_) => Ok(redirect("/apps?notice=saved")),
        Err(e) => with_error(&hub, &hosts, &session, e).await,
    }
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
