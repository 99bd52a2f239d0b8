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

/// The `Host` values this listener answers to, and from whom.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// Loopback names for the ports the Hub listens on.
    local: Vec<String>,
    /// Names network clients may use: an explicit listen address and `--public-host`.
    public: Vec<String>,
    /// Listening beyond loopback: loopback names then count only from loopback peers, so a
    /// network client cannot pass for a local one by writing `Host: 127.0.0.1:PORT`.
    network_facing: bool,
    /// `https` under TLS.
    scheme: &'static str,
}

impl HostPolicy {
    /// Loopback names for `port`, plus the listen address itself when it is an explicit
    /// non-loopback address the user allowed.
    pub fn new(listen: std::net::SocketAddr, port: u16) -> HostPolicy {
        HostPolicy::with_names(listen, &[port], None, false)
    }

    /// The policy of a Hub listening on `listen` (bound to `ports`), reached from the network
    /// as `public_host`, over TLS or not.
    pub fn with_names(
        listen: std::net::SocketAddr,
        ports: &[u16],
        public_host: Option<&str>,
        tls: bool,
    ) -> HostPolicy {
        let local = ports
            .iter()
            .flat_map(|port| {
                [
                    format!("127.0.0.1:{port}"),
                    format!("localhost:{port}"),
                    format!("[::1]:{port}"),
                ]
            })
            .collect();
        let port = ports.first().copied().unwrap_or(listen.port());
        let ip = listen.ip();
        let mut public = Vec::new();
        if let Some(name) = public_host {
            public.push(name.to_string());
            if !name.contains(':') || name.ends_with(']') {
                public.push(format!("{name}:{port}"));
            }
        }
        if !ip.is_loopback() && !ip.is_unspecified() {
            public.push(std::net::SocketAddr::new(ip, port).to_string());
        }
        HostPolicy {
            local,
            public,
            network_facing: !ip.is_loopback(),
            scheme: if tls { "https" } else { "http" },
        }
    }

    /// True when `host` is one of this Hub's names (from any caller).
    pub fn allows_host(&self, host: &str) -> bool {
        self.local
            .iter()
            .chain(&self.public)
            .any(|h| h.eq_ignore_ascii_case(host))
    }

    /// True when a request from `peer` addressed to `host` may be served.
    pub fn allows(&self, host: &str, peer: Option<std::net::IpAddr>) -> bool {
        if self.public.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return true;
        }
        let local_name = self.local.iter().any(|h| h.eq_ignore_ascii_case(host));
        local_name && (!self.network_facing || peer.is_some_and(|ip| ip.is_loopback()))
    }

    /// True when `origin` (scheme://host:port) is this Hub's own.
    pub fn allows_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix(self.scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .is_some_and(|host| self.allows_host(host.trim_end_matches('/')))
    }

    /// The origin of a Referer URL, checked like an Origin.
    fn allows_referer(&self, referer: &str) -> bool {
        match url::Url::parse(referer) {
            Ok(u) => self.allows_origin(&u.origin().ascii_serialization()),
            Err(_) => false,
        }
    }

    /// The address pages and snippets show: the public name if there is one.
    pub fn primary(&self) -> &str {
        self.public
            .iter()
            .find(|h| h.contains(':'))
            .or(self.local.first())
            .map_or("127.0.0.1", String::as_str)
    }

    /// `scheme://primary`, the root apps and snippets use.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.primary())
    }

    /// True under TLS: cookies are marked `Secure`.
    pub fn is_tls(&self) -> bool {
        self.scheme == "https"
    }

    /// True while the Hub listens beyond loopback.
    pub fn is_network_facing(&self) -> bool {
        self.network_facing
    }
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The one middleware that enforces the baseline.
pub async fn baseline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let surface = Surface::of(req.path());
    if let Some(refusal) = refuse(&req) {
        let (status, code, message) = refusal;
        let mut response = error_response_for(surface, req.path(), status, code, message);
        if status == StatusCode::BAD_REQUEST {
            // Whatever framing was meant, the rest of this connection cannot be trusted.
            response
                .head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
        }
        return Ok(with_headers(req.into_response(response)));
    }
    if surface != Surface::Gateway {
        // The gateway bounds its own bodies (--body-timeout-secs); the Hub's are small.
        if let Some(limit) = hub_body_timeout(&req) {
            limit_body_time(&mut req, limit);
        }
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
    if is_smuggling_shaped(req.headers()) {
        return Some((
            StatusCode::BAD_REQUEST,
            "bad_request",
            "A request may not carry both Content-Length and Transfer-Encoding. Send one of them.",
        ));
    }
    let policy = req.app_data::<web::Data<HostPolicy>>()?;
    if !policy.allows(request_host(req), req.peer_addr().map(|a| a.ip())) {
        return Some((
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            "This Hub only answers requests addressed to it by its own name (127.0.0.1 or \
             localhost on this computer).",
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

/// The name a request is addressed to: the raw `Host` header, or HTTP/2's `:authority`.
/// X-Forwarded-Host and Forwarded are ignored.
pub fn request_host(req: &ServiceRequest) -> &str {
    match req.headers().get(header::HOST) {
        Some(host) => host.to_str().unwrap_or(""),
        None => req.uri().authority().map_or("", |a| a.as_str()),
    }
}

/// Both framings at once is how request smuggling starts: a proxy in front may read the body
/// one way and this server the other. Refused outright, whatever the route.
pub fn is_smuggling_shaped(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers.contains_key(header::CONTENT_LENGTH) && headers.contains_key(header::TRANSFER_ENCODING)
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

/// The longest a page or API request may take to send its body: the gateway's
/// `--body-timeout-secs`, but never more than ten seconds (these bodies are small forms).
const HUB_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn hub_body_timeout(req: &ServiceRequest) -> Option<std::time::Duration> {
    let hub = req.app_data::<web::Data<crate::hub::Hub>>()?;
    Some(hub.config().gateway.body_timeout.min(HUB_BODY_TIMEOUT))
}

/// Cuts a body that has not fully arrived `limit` after the request started: a client
/// trickling a byte a second cannot hold a worker's connection open.
fn limit_body_time(req: &mut ServiceRequest, limit: std::time::Duration) {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + limit;
    let payload = actix_web::HttpMessage::take_payload(req);
    let timed = futures_util::stream::unfold(Some(payload), move |payload| async move {
        let mut payload = payload?;
        match tokio::time::timeout_at(deadline, payload.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(payload))),
            Ok(None) => None,
            Err(_) => {
                let late = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body did not arrive in time",
                );
                Some((Err(actix_web::error::PayloadError::Io(late)), None))
            }
        }
    });
    req.set_payload(actix_web::dev::Payload::Stream {
        payload: Box::pin(timed),
    });
}

/// Under TLS every cookie the Hub sets is `Secure`: the browser never sends it in the clear.
fn secure_cookies(res: &mut ServiceResponse<BoxBody>) {
    let tls = res
        .request()
        .app_data::<web::Data<HostPolicy>>()
        .is_some_and(|p| p.is_tls());
    if !tls {
        return;
    }
    let headers = res.headers_mut();
    let cookies: Vec<HeaderValue> = headers.get_all(header::SET_COOKIE).cloned().collect();
    if cookies.is_empty() {
        return;
    }
    headers.remove(header::SET_COOKIE);
    for cookie in cookies {
        let text = cookie.to_str().unwrap_or_default();
        let secured = if text.to_ascii_lowercase().contains("; secure") {
            cookie.clone()
        } else {
            HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or(cookie.clone())
        };
        headers.append(header::SET_COOKIE, secured);
    }
}

fn with_headers(mut res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    secure_cookies(&mut res);
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

    #[test]
    fn beyond_loopback_only_loopback_peers_may_use_loopback_names() {
        let listen = "0.0.0.0:8443".parse().unwrap_or_else(|_| unreachable!());
        let p = HostPolicy::with_names(listen, &[8443, 40001], Some("hub.example.lan"), true);
        let local = Some(std::net::IpAddr::from([127, 0, 0, 1]));
        let remote = Some(std::net::IpAddr::from([192, 0, 2, 9]));
        assert!(p.allows("127.0.0.1:8443", local));
        assert!(
            p.allows("127.0.0.1:40001", local),
            "the internal loopback listener"
        );
        assert!(
            !p.allows("127.0.0.1:8443", remote),
            "a forged loopback Host"
        );
        assert!(!p.allows("localhost:8443", remote));
        assert!(!p.allows("127.0.0.1:8443", None));
        assert!(p.allows("hub.example.lan:8443", remote));
        assert!(p.allows("HUB.example.lan", remote));
        assert!(!p.allows("evil.example:8443", remote));
        assert!(p.allows_origin("https://hub.example.lan:8443"));
        assert!(
            !p.allows_origin("http://hub.example.lan:8443"),
            "TLS: https origins only"
        );
        assert_eq!(p.base_url(), "https://hub.example.lan:8443");
        assert!(p.is_tls() && p.is_network_facing());
    }

    #[test]
    fn on_loopback_the_peer_does_not_matter() {
        let p = HostPolicy::new(
            "127.0.0.1:8420".parse().unwrap_or_else(|_| unreachable!()),
            8420,
        );
        assert!(p.allows("localhost:8420", None));
        assert_eq!(p.base_url(), "http://127.0.0.1:8420");
        assert!(!p.is_tls());
    }

    #[test]
    fn both_framings_at_once_are_smuggling_shaped() {
        let mut h = actix_web::http::header::HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert!(!is_smuggling_shaped(&h));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert!(is_smuggling_shaped(&h));
    }
}
