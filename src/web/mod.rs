//! The HTTP layer: the route table, pages, the JSON API, the gateway surface and the
//! middleware. The only module that knows about actix-web.

pub mod api;
pub mod assets;
pub mod auth;
pub mod emulator;
pub mod errors;
pub mod models;
pub mod pages;
pub mod security;
pub mod usage;

use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, web};
use serde_json::json;

use crate::hub::Hub;
pub use security::HostPolicy;

/// Registers every route of the Hub.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(api::json_config())
        .app_data(web::FormConfig::default().limit(64 * 1024))
        .route("/healthz", web::get().to(api::healthz))
        .route("/static/{file}", web::get().to(assets::serve))
        .service(
            web::scope("/api/v1")
                .route("/status", web::get().to(api::status))
                .route("/setup", web::post().to(api::setup))
                .route("/session", web::post().to(api::create_session))
                .route("/session", web::delete().to(api::end_session))
                .route("/lock", web::post().to(api::lock))
                .route("/passphrase", web::post().to(api::change_passphrase))
                .route("/credits", web::get().to(usage::api::credits))
                .route("/credits", web::post().to(usage::api::top_up))
                .route("/credits/ledger", web::get().to(usage::api::ledger))
                .route("/usage", web::get().to(usage::api::usage))
                .route("/usage/requests", web::get().to(usage::api::requests))
                .route("/usage.csv", web::get().to(usage::api::usage_csv))
                .route("/models", web::get().to(models::list)),
        )
        .route("/", web::get().to(pages::index))
        .route("/setup", web::get().to(pages::setup_form))
        .route("/setup", web::post().to(pages::setup_submit))
        .route("/unlock", web::get().to(pages::unlock_form))
        .route("/unlock", web::post().to(pages::unlock_submit))
        .route("/lock", web::post().to(pages::lock))
        .route("/models", web::get().to(models::page))
        .route("/usage", web::get().to(usage::pages::usage))
        .route("/usage/credits", web::post().to(usage::pages::add_credits))
        .route("/settings", web::get().to(pages::settings))
        .route(
            "/settings/passphrase",
            web::post().to(pages::change_passphrase),
        );
}

/// Builds the actix application for a Hub: state, middleware and routes.
pub fn app(
    hub: Hub,
    hosts: HostPolicy,
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
        .app_data(web::Data::new(hub))
        .app_data(web::Data::new(hosts))
        .configure(routes)
        .default_service(web::to(errors::not_found))
        .wrap(from_fn(security::baseline))
        .wrap(from_fn(security::access_log))
}

/// An error on the gateway surface, in a neutral JSON shape.
pub fn gateway_error(_path: &str, status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": message}}))
}
