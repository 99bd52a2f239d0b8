//! The security baseline applied to every route: only requests addressed to this listener
//! on loopback, state changes only from the Hub's own origin, JSON API calls only as JSON,
//! and protective headers on every response.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, web};

use super::errors::{Surface, error_response_for};

/// The `Host` values this listener answers to.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    allowed: Vec<String>,
}

impl HostPolicy {
    /// Loopback names for `port`, plus the listen address itself when it is an explicit
    /// non-loopback address the user allowed.
    pub fn new(listen: std::net::SocketAddr, port: u16) -> HostPolicy {
        let mut allowed = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ];
        let ip = listen.ip();
        if !ip.is_loopback() && !ip.is_unspecified() {
            allowed.push(std::net::SocketAddr::new(ip, port).to_string());
        }
        HostPolicy { allowed }
    }

    pub fn allows_host(&self, host: &str) -> bool {
        self.allowed.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// True when `origin` (scheme://host:port) is this Hub's own.
    pub fn allows_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|host| self.allows_host(host.trim_end_matches('/')))
    }

    /// The origin of a Referer URL, checked like an Origin.
    fn allows_referer(&self, referer: &str) -> bool {
        match url::Url::parse(referer) {
            Ok(u) => self.allows_origin(&u.origin().ascii_serialization()),
            Err(_) => false,
        }
    }

    /// The address pages and snippets show (the first allowed host).
    pub fn primary(&self) -> &str {
        &self.allowed[0]
    }
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The one middleware that enforces the baseline.
pub async fn baseline(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let surface = Surface::of(req.path());
    if let Some(refusal) = refuse(&req) {
        let (status, code, message) = refusal;
        let response = error_response_for(surface, req.path(), status, code, message);
        return Ok(with_headers(req.into_response(response)));
    }
    let res = next.call(req).await?.map_into_boxed_body();
    let res = if surface == Surface::Page {
        as_error_page(res)
    } else {
        res
    };
    Ok(with_headers(res))
}

/// Browser routes never show raw text: an error that is not already a page (a form or query
/// the extractors could not read, say) is rendered as one.
fn as_error_page(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if status.as_u16() < 400 || is_html {
        return res;
    }
    let message = match status.as_u16() {
        400 => "The form could not be read. Go back, reload the page and try again.",
        404 => "There is nothing at this address.",
        405 => "This page cannot be used that way.",
        413 => "What was sent is too large.",
        _ => "Something went wrong. The Hub's log has the details.",
    };
    res.into_response(super::errors::error_page(status, message))
}

type Refusal = (StatusCode, &'static str, &'static str);

fn refuse(req: &ServiceRequest) -> Option<Refusal> {
    let policy = req.app_data::<web::Data<HostPolicy>>()?;
    // Judged on the raw Host header only: X-Forwarded-Host and Forwarded are ignored.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !policy.allows_host(host) {
        return Some((
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            "This Hub only answers requests addressed to it on 127.0.0.1 or localhost.",
        ));
    }
    if is_state_changing(req.method()) {
        if !same_origin(req, policy) {
            return Some((
                StatusCode::FORBIDDEN,
                "cross_origin",
                "This request came from another site and was refused.",
            ));
        }
        if req.path().starts_with("/api/") && !is_json(req) {
            return Some((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "json_required",
                "Send the request body as JSON with Content-Type: application/json.",
            ));
        }
    }
    None
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `Origin` decides when present; otherwise `Referer`; with neither (scripts, SDKs) the
/// request is judged by its credentials alone. Browsers send `Origin: null` on form posts
/// from pages with `Referrer-Policy: no-referrer`; such a request passes only when the
/// browser also vouches with `Sec-Fetch-Site: same-origin`. A cross-site fetch
/// metadata header is refused whatever else the request says.
fn same_origin(req: &ServiceRequest, policy: &HostPolicy) -> bool {
    let headers = req.headers();
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return false;
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        return match origin.to_str() {
            Ok("null") => fetch_site == Some("same-origin"),
            Ok(o) => policy.allows_origin(o),
            Err(_) => false,
        };
    }
    if let Some(referer) = headers.get(header::REFERER) {
        return referer.to_str().is_ok_and(|r| policy.allows_referer(r));
    }
    true
}

fn is_json(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn with_headers(mut res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// Logs each request without its query string, body or any header.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let method = req.method().clone();
    let path = req.path().to_string();
    let started = std::time::Instant::now();
    let res = next.call(req).await?;
    tracing::info!(
        target: "workshop_hub::http",
        %method,
        path = %path,
        status = res.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_policy_accepts_only_loopback_names_for_the_port() {
        let p = HostPolicy::new(
            "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
            8420,
        );
        assert!(p.allows_host("127.0.0.1:8420"));
        assert!(p.allows_host("localhost:8420"));
        assert!(p.allows_host("LOCALHOST:8420"));
        assert!(p.allows_host("[::1]:8420"));
        assert!(!p.allows_host("127.0.0.1:8421"));
        assert!(!p.allows_host("evil.example:8420"));
        assert!(!p.allows_host("localhost"));
        assert!(!p.allows_host(""));
        assert!(p.allows_origin("http://localhost:8420"));
        assert!(!p.allows_origin("https://localhost:8420"));
        assert!(!p.allows_origin("http://evil.example"));
        assert!(!p.allows_origin("null"));
        assert!(p.allows_referer("http://127.0.0.1:8420/settings?x=1"));
        assert!(!p.allows_referer("http://127.0.0.1.evil.example:8420/"));
    }
}
