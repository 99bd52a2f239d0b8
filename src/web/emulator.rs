//! Serves the emulator over HTTP, standalone (all three APIs at `/`) or mounted in the Hub
//! under `/emulator/{provider}/…`.

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures_util::Stream;

use crate::emulator::{
    EmuBody, EmuRequest, EmuResponse, EmuStream, Emulator, EmulatorOptions, detect_provider,
};
use crate::providers::Provider;

/// The largest request body the emulator reads (long prompts, batch embeddings).
const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// A pause before cutting a dropped stream, so the events before the cut reach the client.
const CUT_PAUSE: Duration = Duration::from_millis(20);

/// Runs the standalone emulator on `listener` until the process stops. All three APIs are
/// served at `/` (the provider is told apart by headers and path) and
/// `GET /__emulator/received` lists the last requests with their headers. Like the Hub, it
/// answers only requests addressed to it by name (`hosts`), so a web page on another site
/// cannot reach it through DNS rebinding; callers from other machines see no credentials.
pub async fn run_standalone(
    listener: TcpListener,
    options: EmulatorOptions,
    hosts: super::HostPolicy,
) -> io::Result<()> {
    let emulator = web::Data::new(Emulator::new(options));
    let hosts = web::Data::new(hosts);
    let workers = match options.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    HttpServer::new(move || standalone_app(emulator.clone(), hosts.clone()))
        .workers(workers)
        .listen(listener)?
        .run()
        .await
}

/// The standalone emulator's application (also driven in-process by tests).
pub fn standalone_app(
    emulator: web::Data<Emulator>,
    hosts: web::Data<super::HostPolicy>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(emulator)
        .app_data(hosts)
        .app_data(web::PayloadConfig::new(BODY_LIMIT))
        .route("/__emulator/received", web::get().to(received))
        .default_service(web::to(standalone))
        .wrap(actix_web::middleware::from_fn(guard))
}

/// The standalone emulator's front door: the Hub's Host rule and its refusal of requests
/// framed two ways at once.
async fn guard(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let host = super::security::request_host(&req);
    let peer = req.peer_addr().map(|a| a.ip());
    let allowed = req
        .app_data::<web::Data<super::HostPolicy>>()
        .is_some_and(|p| p.allows(host, peer));
    let refusal = if super::security::is_smuggling_shaped(req.headers()) {
        Some((
            StatusCode::BAD_REQUEST,
            "A request may not carry both Content-Length and Transfer-Encoding.",
        ))
    } else if !allowed {
        Some((
            StatusCode::MISDIRECTED_REQUEST,
            "The emulator only answers requests addressed to it by its own address.",
        ))
    } else {
        None
    };
    match refusal {
        Some((status, message)) => {
            let mut res = HttpResponse::build(status).json(serde_json::json!({
                "error": {"code": "refused", "message": message}
            }));
            res.head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
            Ok(req.into_response(res))
        }
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

/// Registers `/emulator/{provider}/{tail:.*}` (openai, anthropic or gemini; every method) for
/// use inside the Hub. There is no received-requests listing here: the Hub never echoes keys.
pub fn mount(cfg: &mut web::ServiceConfig, emulator: Arc<Emulator>) {
    cfg.service(
        web::resource("/emulator/{provider}/{tail:.*}")
            .app_data(web::Data::from(emulator))
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .default_service(web::to(mounted)),
    );
}

/// What arrived, with credentials only for a caller on this machine.
async fn received(req: HttpRequest, emulator: web::Data<Emulator>) -> HttpResponse {
    let local = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
    let list = emulator.received();
    if local {
        HttpResponse::Ok().json(list)
    } else {
        HttpResponse::Ok().json(list.iter().map(|r| r.redacted()).collect::<Vec<_>>())
    }
}

async fn standalone(req: HttpRequest, body: Bytes, emulator: web::Data<Emulator>) -> HttpResponse {
    let request = emu_request(&req, req.path().to_string(), body);
    let provider = detect_provider(&request.path, request.query.as_deref(), &request.headers);
    respond(emulator.handle(provider, request)).await
}

async fn mounted(req: HttpRequest, body: Bytes, emulator: web::Data<Emulator>) -> HttpResponse {
    let provider = req
        .match_info()
        .get("provider")
        .and_then(|p| p.parse::<Provider>().ok());
    let Some(provider) = provider else {
        return HttpResponse::NotFound()
            .json(serde_json::json!({"error": {"code": "not_found", "message": "Unknown emulated provider: use openai, anthropic or gemini."}}));
    };
    let tail = req.match_info().get("tail").unwrap_or_default();
    let request = emu_request(&req, format!("/{tail}"), body);
    respond(emulator.handle(provider, request)).await
}

fn emu_request(req: &HttpRequest, path: String, body: Bytes) -> EmuRequest {
    let query = req.query_string();
    EmuRequest {
        method: req.method().as_str().to_string(),
        path,
        query: (!query.is_empty()).then(|| query.to_string()),
        headers: req
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect(),
        body,
    }
}

async fn respond(response: EmuResponse) -> HttpResponse {
    if !response.first_byte_delay.is_zero() {
        tokio::time::sleep(response.first_byte_delay).await;
    }
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    for (name, value) in &response.headers {
        builder.insert_header((name.as_str(), value.as_str()));
    }
    match response.body {
        EmuBody::Full(bytes) => builder.body(bytes),
        EmuBody::Stream(stream) => builder.streaming(paced(stream)),
        EmuBody::Never => std::future::pending().await,
    }
}

struct Pacing {
    events: std::vec::IntoIter<Bytes>,
    delays: Vec<Duration>,
    drop_after: Option<usize>,
    sent: usize,
}

/// Each event as its own chunk after its delay; a dropped stream ends with an error, which
/// makes the server close the connection without the final chunk.
fn paced(stream: EmuStream) -> impl Stream<Item = Result<Bytes, io::Error>> {
    let state = Pacing {
        events: stream.events.into_iter(),
        delays: stream.delays,
        drop_after: stream.drop_after,
        sent: 0,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.drop_after == Some(state.sent) {
            state.drop_after = None;
            state.events = Vec::new().into_iter();
            tokio::time::sleep(CUT_PAUSE).await;
            let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "emulated dropped stream");
            return Some((Err(cut), state));
        }
        let event = state.events.next()?;
        if let Some(delay) = state.delays.get(state.sent).filter(|d| !d.is_zero()) {
            tokio::time::sleep(*delay).await;
        }
        state.sent += 1;
        Some((Ok(event), state))
    })
}
