//! The compatible surface's routes: `POST /v1/chat/completions`, `GET /v1/models`,
//! `POST /v1/embeddings`, and an OpenAI-shaped 404 for any other `/v1/*` path. The
//! translation itself lives in `compat/`; this file only speaks HTTP.

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;

use super::proxy::respond;
use crate::compat::{self, Call};
use crate::gateway::Gateway;
use crate::hub::Hub;
use crate::providers::Refusal;

pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .route("/chat/completions", web::post().to(chat))
            .route("/models", web::get().to(models))
            .route("/models/{id:.+}", web::get().to(model))
            .route("/embeddings", web::post().to(embeddings))
            .default_service(web::to(not_found)),
    );
}

/// Which `POST` of the surface a request is.
#[derive(Clone, Copy)]
enum Post {
    Chat,
    Embeddings,
}

async fn chat(
    hub: web::Data<Hub>,
    gateway: web::Data<Gateway>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    post(Post::Chat, hub, gateway, req, payload).await
}

async fn embeddings(
    hub: web::Data<Hub>,
    gateway: web::Data<Gateway>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    post(Post::Embeddings, hub, gateway, req, payload).await
}

async fn post(
    kind: Post,
    hub: web::Data<Hub>,
    gateway: web::Data<Gateway>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let call = match call(&hub, &req, payload).await {
        Ok(call) => call,
        Err(refused) => return refused,
    };
    respond(match kind {
        Post::Chat => compat::chat(&gateway, hub.catalog(), call).await,
        Post::Embeddings => compat::embeddings(&gateway, hub.catalog(), call).await,
    })
}

async fn models(
    hub: web::Data<Hub>,
    gateway: web::Data<Gateway>,
    req: HttpRequest,
) -> HttpResponse {
    respond(compat::models(&gateway, hub.catalog(), &headers(&req)).await)
}

async fn model(
    hub: web::Data<Hub>,
    gateway: web::Data<Gateway>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    respond(compat::model(&gateway, hub.catalog(), &headers(&req), &id).await)
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    respond(compat::not_found(req.path()))
}

fn headers(req: &HttpRequest) -> Vec<(String, String)> {
    req.headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// The request's headers and its body, read up to the Hub's body limit.
async fn call(
    hub: &Hub,
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<Call, HttpResponse> {
    let limit = hub.config().max_body_bytes;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            respond(compat::openai_error(
                400,
                Refusal::BadRequest.as_str(),
                "Bad request: the request body could not be read.",
                None,
            ))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(respond(compat::openai_error(
                413,
                Refusal::RequestTooLarge.as_str(),
                &format!(
                    "Request too large: the body is over {} MiB. Send less, or raise --max-body-mib.",
                    limit / (1024 * 1024)
                ),
                None,
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Call {
        headers: headers(req),
        body: body.freeze(),
    })
}
