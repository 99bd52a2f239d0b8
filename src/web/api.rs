//! The management API (`/api/v1/...`): JSON in, JSON out, session cookie for auth.

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::auth::{ApiSession, cleared_cookie, session_cookie};
use super::errors::{ApiError, json_error_message};
use super::wiped::WipedJson;

use crate::hub::Hub;

pub async fn healthz(hub: web::Data<Hub>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "locked": hub.is_locked(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

pub async fn status(hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.run(|h| h.status()).await?))
}

#[derive(Deserialize)]
pub struct PassphraseBody {
    passphrase: SecretString,
}

#[derive(Deserialize)]
pub struct SetupBody {
    passphrase: SecretString,
    /// Needed while the Hub listens beyond loopback: the token printed on its console.
    #[serde(default)]
    setup_token: Option<SecretString>,
}

/// Where a request comes from, for the unlock throttle.
pub fn source(req: &HttpRequest) -> crate::hub::Source {
    crate::hub::Source::peer(
        req.peer_addr()
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip()),
    )
}

/// First run over the API: creates the vault and signs in.
pub async fn setup(
    hub: web::Data<Hub>,
    body: WipedJson<SetupBody>,
) -> Result<HttpResponse, ApiError> {
    let SetupBody {
        passphrase,
        setup_token,
    } = body.0;
    let (id, _) = hub
        .run(move |h| h.setup(&passphrase, None, setup_token.as_ref()))
        .await?;
    Ok(HttpResponse::Created()
        .cookie(session_cookie(&id))
        .json(hub.run(|h| h.status()).await?))
}

/// Signs in (unlocking a locked Hub) and sets the session cookie.
pub async fn create_session(
    req: HttpRequest,
    hub: web::Data<Hub>,
    body: WipedJson<PassphraseBody>,
) -> Result<HttpResponse, ApiError> {
    let passphrase = body.0.passphrase;
    let from = source(&req);
    let (id, _) = hub.sign_in(passphrase, from).await?;
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&id))
        .json(hub.run(|h| h.status()).await?))
}

/// Reads and discards a request body the call does not use. A body left unread would make
/// the server drop the keep-alive connection after answering, breaking the client's next
/// request on it.
pub struct Drained;

impl actix_web::FromRequest for Drained {
    type Error = actix_web::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Drained, Self::Error>>>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            body.await?;
            Ok(Drained)
        })
    }
}

pub async fn end_session(hub: web::Data<Hub>, session: ApiSession, _body: Drained) -> HttpResponse {
    hub.sign_out(session.id.as_str());
    HttpResponse::NoContent().cookie(cleared_cookie()).finish()
}

pub async fn lock(
    hub: web::Data<Hub>,
    _session: ApiSession,
    _body: Drained,
) -> Result<HttpResponse, ApiError> {
    hub.lock();
    Ok(HttpResponse::Ok()
        .cookie(cleared_cookie())
        .json(hub.run(|h| h.status()).await?))
}

/// Writes a backup into the data dir: `{path, bytes}`.
pub async fn backup(
    hub: web::Data<Hub>,
    _session: ApiSession,
    _body: Drained,
) -> Result<HttpResponse, ApiError> {
    let copied = hub.run(|h| h.backup_now()).await?;
    Ok(HttpResponse::Created().json(json!({
        "path": copied.path.display().to_string(),
        "bytes": copied.bytes,
    })))
}

#[derive(Deserialize)]
pub struct ChangePassphraseBody {
    current: SecretString,
    new: SecretString,
}

/// Re-wraps the vault under a new passphrase; every session ends.
pub async fn change_passphrase(
    hub: web::Data<Hub>,
    _session: ApiSession,
    body: WipedJson<ChangePassphraseBody>,
) -> Result<HttpResponse, ApiError> {
    let ChangePassphraseBody { current, new } = body.0;
    hub.run(move |h| h.change_passphrase(&current, &new, None))
        .await?;
    Ok(HttpResponse::Ok()
        .cookie(cleared_cookie())
        .json(hub.run(|h| h.status()).await?))
}

/// Bad JSON bodies get the API's error shape instead of actix's plain text.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(256 * 1024)
        .error_handler(|err, _req| {
            let message = json_error_message(&err.to_string());
            let res = HttpResponse::BadRequest()
                .json(json!({"error": {"code": "bad_request", "message": message}}));
            actix_web::error::InternalError::from_response(err, res).into()
        })
}
