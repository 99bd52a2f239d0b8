//! The gateway surface: `/openai/v1/*`, `/anthropic/v1/*`, `/gemini/v1beta/*`, `/gemini/v1/*`.
//! Turns actix requests into the proxy's terms and its answers back into responses.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::BytesMut;
use futures_util::StreamExt;

use crate::hub::Hub;
use crate::providers::{Provider, Refusal};
use crate::proxy::{self, Incoming, OutBody, Outgoing};

/// Registers the three provider surfaces for every method. Each is a scope on a static
/// prefix, so routing a gateway call needs no pattern matching.
pub fn mount(cfg: &mut web::ServiceConfig) {
    for provider in Provider::ALL {
        cfg.service(web::scope(&format!("/{provider}")).default_service(web::to(
            move |hub, req, payload| handle(provider, hub, req, payload),
        )));
    }
}

/// True when the path is under one of the provider's API versions.
fn known_path(provider: Provider, path: &str) -> bool {
    crate::providers::api(provider)
        .path_prefixes()
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

async fn handle(
    provider: Provider,
    hub: web::Data<Hub>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let prefix_len = provider.as_str().len() + 1;
    let path = req.path().get(prefix_len..).unwrap_or("").to_string();
    if !known_path(provider, &path) {
        return respond(proxy::refusal(
            provider,
            Refusal::BadRequest,
            "Unknown path: point the SDK's base URL at the Hub (see the Apps page for the exact URL).",
        ));
    }
    let limit = hub.config().max_body_bytes;
    let body = match read_body(payload, limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return respond(proxy::refusal(
                provider,
                Refusal::RequestTooLarge,
                &format!(
                    "Request too large: the body is over {} MiB. Send less, or raise --max-body-mib.",
                    limit / (1024 * 1024)
                ),
            ));
        }
        Err(BodyError::Broken) => {
            return respond(proxy::refusal(
                provider,
                Refusal::BadRequest,
                "Bad request: the request body could not be read.",
            ));
        }
    };
    let headers = req
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let incoming = Incoming {
        provider,
        method: req.method().as_str().to_string(),
        path,
        query: Some(req.query_string().to_string()).filter(|q| !q.is_empty()),
        headers,
        body,
    };
    respond(proxy::handle(&hub, incoming).await)
}

enum BodyError {
    TooLarge,
    Broken,
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<bytes::Bytes, BodyError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
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
