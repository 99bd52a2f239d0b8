//! Turning errors into responses: JSON for the API, native shapes for the gateway, and
//! rendered pages for the browser. One exhaustive mapping from `HubError` to a status.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use serde_json::json;

use crate::hub::HubError;

/// Which surface a path belongs to, which decides how its errors look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Page,
    Api,
    Gateway,
}

impl Surface {
    pub fn of(path: &str) -> Surface {
        if path.starts_with("/api/") || path == "/healthz" {
            Surface::Api
        } else if ["/v1/", "/openai/", "/anthropic/", "/gemini/", "/emulator/"]
            .iter()
            .any(|p| path.starts_with(p))
        {
            Surface::Gateway
        } else {
            Surface::Page
        }
    }
}

/// Status and stable code for each service error. No catch-all arm: a new variant must
/// be decided here.
pub fn classify(e: &HubError) -> (StatusCode, &'static str) {
    match e {
        HubError::Locked => (StatusCode::SERVICE_UNAVAILABLE, "hub_locked"),
        HubError::NotInitialized => (StatusCode::CONFLICT, "not_initialized"),
        HubError::AlreadyInitialized => (StatusCode::CONFLICT, "already_initialized"),
        HubError::WrongPassphrase => (StatusCode::UNAUTHORIZED, "wrong_passphrase"),
        HubError::Backoff { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
        HubError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        HubError::SetupToken => (StatusCode::FORBIDDEN, "setup_token_required"),
        HubError::BadInput { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
        HubError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        HubError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        HubError::Unexpected(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// What the user reads: the error's own words, except for internal failures whose detail
/// belongs in the log only.
fn public_message(e: &HubError) -> String {
    match e {
        HubError::Unexpected(detail) => {
            tracing::error!(error = %detail, "request failed");
            "Something went wrong inside the Hub. The log has the details.".to_string()
        }
        other => other.to_string(),
    }
}

fn retry_after(e: &HubError) -> Option<u64> {
    match e {
        HubError::Backoff { retry_after } => Some(crate::hub::ceil_secs(*retry_after)),
        _ => None,
    }
}

/// An error from a JSON API handler: `{"error":{"code","message"}}`.
#[derive(Debug)]
pub struct ApiError(pub HubError);

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        ApiError(e)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        classify(&self.0).0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = classify(&self.0);
        let mut body = json!({"error": {"code": code, "message": public_message(&self.0)}});
        if let HubError::BadInput { field, .. } = &self.0 {
            body["error"]["field"] = json!(field);
        }
        let mut res = HttpResponse::build(status).json(body);
        if let Some(secs) = retry_after(&self.0) {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

/// An error from a page handler: a rendered error page, or a redirect to sign in.
#[derive(Debug)]
pub enum PageError {
    Hub(HubError),
    /// No valid session: send the browser to setup or unlock.
    SignIn {
        initialized: bool,
    },
}

impl From<HubError> for PageError {
    fn from(e: HubError) -> Self {
        PageError::Hub(e)
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Hub(HubError::Unexpected(format!("template: {e}")))
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::Hub(e) => e.fmt(f),
            PageError::SignIn { .. } => f.write_str("sign in required"),
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::Hub(e) => classify(e).0,
            PageError::SignIn { .. } => StatusCode::SEE_OTHER,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            PageError::SignIn { initialized } => {
                let to = if *initialized { "/unlock" } else { "/setup" };
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, to))
                    .finish()
            }
            PageError::Hub(e) => {
                let (status, _) = classify(e);
                error_page(status, &public_message(e))
            }
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    status: u16,
    message: &'a str,
    version: &'a str,
}

/// Renders the error page; falls back to plain text if the template itself fails.
pub fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let page = ErrorPage {
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        message,
        version: env!("CARGO_PKG_VERSION"),
    };
    match page.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(_) => HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(message.to_string()),
    }
}

/// An error in the shape of the surface the request came in on.
pub fn error_response_for(
    surface: Surface,
    path: &str,
    status: StatusCode,
    code: &'static str,
    message: &str,
) -> HttpResponse {
    match surface {
        Surface::Page => error_page(status, message),
        Surface::Api => {
            HttpResponse::build(status).json(json!({"error": {"code": code, "message": message}}))
        }
        Surface::Gateway => super::gateway_error(path, status, code, message),
    }
}

/// The default service: an unknown path gets a 404 in the shape of its surface.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    let path = req.path();
    error_response_for(
        Surface::of(path),
        path,
        StatusCode::NOT_FOUND,
        "not_found",
        "There is nothing at this address.",
    )
}

/// Names a missing or unknown field, but never echoes submitted values (they may be keys).
pub(crate) fn json_error_message(detail: &str) -> String {
    let field = ["missing field", "unknown field"]
        .iter()
        .find_map(|kind| detail.find(kind).map(|at| &detail[at..]))
        .and_then(|s| s.split(',').next());
    match field {
        Some(f) => format!("The request body does not fit this call: {f}."),
        None => {
            "The request body is not valid JSON for this call: check the field names and types."
                .to_string()
        }
    }
}
