//! The gateway surface: `/openai/v1/*`, `/anthropic/v1/*`, `/gemini/v1beta/*`, `/gemini/v1/*`.
//! Turns actix requests into the gateway's terms (the head now, the body as a stream it reads
//! only once it admits the caller) and its answers back into responses.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::gateway::{Caller, Gateway, Head, OutBody, Outgoing};
use crate::ledger::Surface;
use crate::providers::Provider;

/// Registers the three provider surfaces for every method. Each is a scope on a static
/// prefix, so routing a gateway call needs no pattern matching.
pub fn mount(cfg: &mut web::ServiceConfig) {
    for provider in Provider::ALL {
        cfg.service(web::scope(&format!("/{provider}")).default_service(web::to(
            move |gateway, req, payload| handle(provider, gateway, req, payload),
        )));
    }
}

async fn handle(
    provider: Provider,
    gateway: web::Data<Gateway>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let head = head(provider, &req);
    respond(gateway.handle(head, payload, Caller::App).await)
}

/// The request line and headers, with the path as received (still percent-encoded).
fn head(provider: Provider, req: &HttpRequest) -> Head {
    let raw = req.uri().path();
    let prefix_len = provider.as_str().len() + 1;
    let content_length = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Head {
        provider,
        method: req.method().as_str().to_string(),
        path: raw.get(prefix_len..).unwrap_or("").to_string(),
        query: req.query_string().to_string(),
        headers: req
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        surface: Surface::Native,
        content_length,
    }
}

pub fn respond(out: Outgoing) -> HttpResponse {
    let status = StatusCode::from_u16(out.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut builder = HttpResponse::build(status);
    for (name, value) in &out.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            builder.append_header((n, v));
        }
    }
    match out.body {
        OutBody::Full(bytes) => builder.body(bytes),
        OutBody::Stream(stream) => builder.streaming(stream),
    }
}
