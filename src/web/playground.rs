//! The Playground: try a model from the browser. The request goes through the gateway like
//! an app's would (same connection, credits, metering), recorded under "Playground". The
//! form works without JavaScript; with it, the answer streams in as it is generated.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::auth::{
    ApiSession, CsrfForm, Flash, Incoming as IncomingFlash, PageSession, flash_key, redirect_with,
};
use super::errors::{ApiError, PageError};
use super::pages::{Layout, render};
use crate::catalog::ModelKind;
use crate::gateway::{Gateway, Head, OutBody, Outgoing};
use crate::hub::connections::ConnectionView;
use crate::hub::{Hub, HubError, Replay};
use crate::ledger::Surface;
use crate::providers::{self, Conversation, Provider, Role, Turn};

const MAX_PROMPT_CHARS: usize = 20_000;
/// A conversation opened from the request log may be longer than one typed prompt.
const MAX_CONVERSATION_CHARS: usize = 200_000;
const MAX_TURNS: usize = 200;
const MAX_TOKENS_LIMIT: u64 = 4_096;
const DEFAULT_MAX_TOKENS: u64 = 512;

/// One connection and the chat models it can be asked for.
struct TargetGroup {
    label: String,
    options: Vec<(String, String)>,
}

/// What was asked and answered, to show under the form.
struct Exchange {
    model: String,
    reply: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "playground.html")]
struct PlaygroundPage {
    l: Layout,
    groups: Vec<TargetGroup>,
    selected: String,
    prompt: String,
    system: String,
    /// The turns before the prompt, shown, and carried in the form as JSON.
    history: Vec<Turn>,
    history_json: String,
    /// The request log entry the form was filled from, or why it could not be.
    opened_from: Option<i64>,
    open_failed: Option<String>,
    max_tokens: u64,
    exchange: Option<Exchange>,
    /// This Hub's address, for the code snippet the page shows after an answer.
    base_url: String,
}

/// How a connection is named in the picker, so the same model offered by two connections
/// is told apart (and a failing one is marked).
fn connection_label(c: &ConnectionView) -> String {
    let kind = if c.is_managed() {
        format!("managed {}, Hub credits", c.provider.display_name())
    } else {
        format!("{}, your key", c.name)
    };
    format!("{kind}{}", c.picker_warning())
}

fn groups(hub: &Hub, connections: &[ConnectionView]) -> Vec<TargetGroup> {
    connections
        .iter()
        .filter(|c| c.is_enabled())
        .map(|c| {
            let via = connection_label(c);
            TargetGroup {
                label: format!("{} — {via}", c.provider.display_name()),
                options: hub
                    .catalog()
                    .for_provider(c.provider)
                    .filter(|m| m.kind == ModelKind::Chat)
                    .map(|m| {
                        (
                            format!("{}|{}", c.id, m.id),
                            format!("{} · {via}", m.display_name),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Where the page's form starts: empty, as last sent, or filled from a logged request.
#[derive(Default)]
struct Start<'a> {
    form: Option<&'a PlayForm>,
    opened_from: Option<i64>,
    open_failed: Option<String>,
}

async fn page(
    hub: &web::Data<Hub>,
    hosts: &super::HostPolicy,
    session: &PageSession,
    status: StatusCode,
    start: Start<'_>,
    exchange: Option<Exchange>,
) -> Result<HttpResponse, PageError> {
    let connections = hub.run(move |h| h.list_connections()).await?;
    let groups = groups(hub, &connections);
    let form = start.form;
    let selected = form
        .map(|f| f.target.clone())
        .or_else(|| default_target(&groups))
        .unwrap_or_default();
    let history = form
        .and_then(|f| parse_history(&f.history).ok())
        .unwrap_or_default();
    let history_json = form.map(|f| f.history.clone()).unwrap_or_default();
    render(
        status,
        &PlaygroundPage {
            l: Layout::new(hub, session, "playground"),
            groups,
            selected,
            prompt: form.map(|f| f.prompt.clone()).unwrap_or_default(),
            system: form.map(|f| f.system.clone()).unwrap_or_default(),
            history,
            history_json,
            opened_from: start.opened_from,
            open_failed: start.open_failed,
            max_tokens: form
                .and_then(|f| f.max_tokens)
                .unwrap_or(DEFAULT_MAX_TOKENS),
            exchange,
            base_url: hosts.base_url(),
        },
    )
}

/// The earlier turns a form carries as JSON; blank is none.
fn parse_history(text: &str) -> Result<Vec<Turn>, HubError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|_| {
        HubError::bad_input(
            "history",
            "The earlier turns of this conversation could not be read; open the request again.",
        )
    })
}

/// The form filled from a logged request: its connection and model when the picker offers
/// them (else the same model elsewhere), its system prompt, earlier turns and last prompt.
fn replayed_form(replay: Replay, groups: &[TargetGroup]) -> PlayForm {
    let options = || groups.iter().flat_map(|g| g.options.iter()).map(|o| &o.0);
    let same = replay
        .connection_id
        .as_ref()
        .map(|c| format!("{c}|{}", replay.model));
    let suffix = format!("|{}", replay.model);
    let target = options()
        .find(|o| Some(*o) == same.as_ref())
        .or_else(|| options().find(|o| o.ends_with(&suffix)))
        .cloned()
        .unwrap_or_default();
    let mut turns = replay.chat.turns;
    let prompt = match turns.last() {
        Some(t) if t.role == Role::User => turns.pop().map(|t| t.text).unwrap_or_default(),
        _ => String::new(),
    };
    PlayForm {
        target,
        prompt,
        system: replay.chat.system.unwrap_or_default(),
        history: if turns.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&turns).unwrap_or_default()
        },
        max_tokens: None,
    }
}

/// gpt-4o-mini on the managed OpenAI connector when it is on, else the first choice.
fn default_target(groups: &[TargetGroup]) -> Option<String> {
    let all = || groups.iter().flat_map(|g| g.options.iter());
    all()
        .find(|(v, _)| v.ends_with("|gpt-4o-mini"))
        .or_else(|| all().next())
        .map(|(v, _)| v.clone())
}

/// `?request=ID` fills the form from a logged chat request (only filled: nothing is sent).
#[derive(Deserialize)]
pub struct OpenQuery {
    request: Option<String>,
}

pub async fn show(
    hub: web::Data<Hub>,
    hosts: web::Data<super::HostPolicy>,
    session: PageSession,
    query: web::Query<OpenQuery>,
    flash: IncomingFlash,
) -> Result<HttpResponse, PageError> {
    if let Some(id) = query.request.as_deref() {
        return open_request(&hub, &hosts, &session, id).await;
    }
    match from_flash(&flash.0) {
        Some((form, exchange)) => {
            let start = Start {
                form: Some(&form),
                ..Start::default()
            };
            page(
                &hub,
                &hosts,
                &session,
                StatusCode::OK,
                start,
                Some(exchange),
            )
            .await
        }
        None => {
            page(
                &hub,
                &hosts,
                &session,
                StatusCode::OK,
                Start::default(),
                None,
            )
            .await
        }
    }
}

/// The Playground with a logged request's conversation in the form, ready to send again.
async fn open_request(
    hub: &web::Data<Hub>,
    hosts: &super::HostPolicy,
    session: &PageSession,
    id: &str,
) -> Result<HttpResponse, PageError> {
    let id: i64 = id
        .trim()
        .parse()
        .map_err(|_| HubError::bad_input("request", "A request id is a whole number."))?;
    let (replay, connections) = hub
        .run(move |h| Ok((h.replay(id)?, h.list_connections()?)))
        .await?;
    let Some(replay) = replay else {
        let start = Start {
            open_failed: Some(format!(
                "Request {id} cannot be opened here: only chat calls to a known chat model whose bodies were kept can."
            )),
            ..Start::default()
        };
        return page(hub, hosts, session, StatusCode::OK, start, None).await;
    };
    let form = replayed_form(replay, &groups(hub, &connections));
    let start = Start {
        form: Some(&form),
        opened_from: Some(id),
        open_failed: None,
    };
    page(hub, hosts, session, StatusCode::OK, start, None).await
}

/// Cookies above this size may be dropped by the browser; a longer answer is shown on the
/// answer to the form itself instead.
const MAX_FLASH_COOKIE: usize = 3_800;

/// The form and its answer, to show after the redirect (no secrets: a prompt and a reply).
fn to_flash(form: &PlayForm, x: &Exchange) -> Flash {
    let mut flash = Flash {
        form: Some(FORM.to_string()),
        ..Flash::default()
    };
    flash = flash
        .keep("target", &form.target)
        .keep("prompt", &form.prompt)
        .keep("system", &form.system)
        .keep("history", &form.history)
        .keep("model", &x.model);
    if let Some(n) = form.max_tokens {
        flash = flash.keep("max_tokens", &n.to_string());
    }
    if let Some(r) = &x.reply {
        flash = flash.keep("reply", r);
    }
    if let Some(e) = &x.error {
        flash = flash.keep("error", e);
    }
    flash
}

fn from_flash(flash: &Flash) -> Option<(PlayForm, Exchange)> {
    if flash.form.as_deref() != Some(FORM) {
        return None;
    }
    let text = |k: &str| Some(flash.value(FORM, k).to_string()).filter(|v| !v.is_empty());
    let form = PlayForm {
        target: flash.value(FORM, "target").to_string(),
        prompt: flash.value(FORM, "prompt").to_string(),
        system: flash.value(FORM, "system").to_string(),
        history: flash.value(FORM, "history").to_string(),
        max_tokens: flash.value(FORM, "max_tokens").parse().ok(),
    };
    let exchange = Exchange {
        model: flash.value(FORM, "model").to_string(),
        reply: text("reply"),
        error: text("error"),
    };
    Some((form, exchange))
}

const FORM: &str = "playground";

/// Post/redirect/get when the answer fits in the flash cookie; otherwise the page itself.
async fn answer(
    hub: &web::Data<Hub>,
    hosts: &super::HostPolicy,
    session: &PageSession,
    form: &PlayForm,
    exchange: Exchange,
) -> Result<HttpResponse, PageError> {
    let flash = to_flash(form, &exchange);
    let key = flash_key(Some(session));
    if flash.cookie(key).value().len() <= MAX_FLASH_COOKIE {
        return Ok(redirect_with("/playground#answer", &flash, key));
    }
    let start = Start {
        form: Some(form),
        ..Start::default()
    };
    page(hub, hosts, session, StatusCode::OK, start, Some(exchange)).await
}

#[derive(Deserialize)]
pub struct PlayForm {
    target: String,
    prompt: String,
    #[serde(default)]
    system: String,
    /// Earlier turns, as JSON, when the form was opened from the request log.
    #[serde(default)]
    history: String,
    max_tokens: Option<u64>,
}

/// The checked parts of a Playground request.
struct Ask {
    connection_id: String,
    provider: Provider,
    /// The built-in emulator answers: its stream is paced so a person can watch it arrive.
    emulated: bool,
    model: String,
    chat: Conversation,
    max_tokens: u64,
}

fn check(hub: &Hub, form: &PlayForm) -> Result<Ask, HubError> {
    let (connection_id, model) = form
        .target
        .split_once('|')
        .ok_or_else(|| HubError::bad_input("target", "Pick a connection and model."))?;
    let connection = hub.connection(connection_id)?;
    if !connection.is_enabled() {
        return Err(HubError::bad_input(
            "target",
            "That connection is deleted; enable it or pick another.",
        ));
    }
    let prompt = form.prompt.trim();
    if prompt.is_empty() {
        return Err(HubError::bad_input("prompt", "Write a prompt first."));
    }
    if prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(HubError::bad_input(
            "prompt",
            format!("Keep the prompt under {MAX_PROMPT_CHARS} characters."),
        ));
    }
    let chat = conversation(form, prompt)?;
    let max_tokens = form.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if !(1..=MAX_TOKENS_LIMIT).contains(&max_tokens) {
        return Err(HubError::bad_input(
            "max_tokens",
            format!("Max tokens must be between 1 and {MAX_TOKENS_LIMIT}."),
        ));
    }
    Ok(Ask {
        connection_id: connection.id,
        provider: connection.provider,
        emulated: connection.emulated,
        model: model.to_string(),
        chat,
        max_tokens,
    })
}

/// The system prompt, the earlier turns and the prompt, within bounds.
fn conversation(form: &PlayForm, prompt: &str) -> Result<Conversation, HubError> {
    let mut turns = parse_history(&form.history)?;
    turns.push(Turn {
        role: Role::User,
        text: prompt.to_string(),
    });
    let system = Some(form.system.trim().to_string()).filter(|s| !s.is_empty());
    let chars: usize = turns.iter().map(|t| t.text.chars().count()).sum::<usize>()
        + system.as_deref().map_or(0, |s| s.chars().count());
    if turns.len() > MAX_TURNS || chars > MAX_CONVERSATION_CHARS {
        return Err(HubError::bad_input(
            "history",
            format!(
                "This conversation is too long for the Playground (at most {MAX_TURNS} turns and {MAX_CONVERSATION_CHARS} characters)."
            ),
        ));
    }
    Ok(Conversation { system, turns })
}

/// Sends the ask through the gateway, on the connection the person picked.
async fn through_gateway(gateway: &Gateway, ask: &Ask, stream: bool) -> Outgoing {
    let request = providers::api(ask.provider).playground_request(
        &ask.model,
        &ask.chat,
        ask.max_tokens,
        stream,
    );
    let mut headers = request.headers;
    if stream && ask.emulated {
        // Only the Playground asks for this: SDK calls through the Hub stay at full speed.
        headers.push(("x-emulator-fault".into(), "slow".into()));
    }
    let head = Head {
        provider: ask.provider,
        method: "POST".into(),
        path: request.path,
        query: request.query.unwrap_or_default(),
        headers,
        surface: Surface::Native,
        content_length: Some(request.body.len() as u64),
    };
    gateway
        .handle_playground(head, request.body, ask.connection_id.clone())
        .await
}

/// Without JavaScript: ask, wait for the whole answer, show it.
pub async fn ask(
    hub: web::Data<Hub>,
    gateway: web::Data<Gateway>,
    hosts: web::Data<super::HostPolicy>,
    form: CsrfForm<PlayForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { session, form } = form;
    let checked = {
        let f = PlayForm {
            target: form.target.clone(),
            prompt: form.prompt.clone(),
            system: form.system.clone(),
            history: form.history.clone(),
            max_tokens: form.max_tokens,
        };
        hub.run(move |h| check(h, &f)).await
    };
    let ask = match checked {
        Ok(a) => a,
        Err(e) => {
            let exchange = Exchange {
                model: String::new(),
                reply: None,
                error: Some(e.to_string()),
            };
            return answer(&hub, &hosts, &session, &form, exchange).await;
        }
    };
    let out = through_gateway(&gateway, &ask, false).await;
    let body = match out.body {
        OutBody::Full(b) => b,
        OutBody::Stream(_) => bytes::Bytes::new(),
    };
    let api = providers::api(ask.provider);
    let (reply, error) = if out.status < 400 {
        (api.reply_text(&body), None)
    } else {
        (
            None,
            Some(
                api.error_message(&body)
                    .unwrap_or_else(|| "The request failed.".to_string()),
            ),
        )
    };
    let exchange = Exchange {
        model: ask.model.clone(),
        reply,
        error,
    };
    answer(&hub, &hosts, &session, &form, exchange).await
}

/// With JavaScript: the provider's own event stream, passed through as it arrives. The
/// `x-workshop-provider` header tells the page which format to read.
pub async fn stream(
    hub: web::Data<Hub>,
    gateway: web::Data<Gateway>,
    _session: ApiSession,
    body: web::Json<PlayForm>,
) -> Result<HttpResponse, ApiError> {
    let form = body.into_inner();
    let ask = hub.run(move |h| check(h, &form)).await?;
    let out = through_gateway(&gateway, &ask, true).await;
    let mut res = super::proxy::respond(out);
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(ask.provider.as_str()) {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-workshop-provider"),
            v,
        );
    }
    Ok(res)
}
