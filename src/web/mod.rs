//! The HTTP layer: the route table, pages, the JSON API, the gateway surface and the
//! middleware. The only module that knows about actix-web.

pub mod api;
pub mod apps;
pub mod assets;
pub mod auth;
pub mod compat;
pub mod connections;
pub mod emulator;
pub mod errors;
pub mod models;
pub mod pages;
pub mod playground;
pub mod proxy;
pub mod security;
pub mod usage;
pub mod wiped;

use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, web};
use serde_json::json;

use crate::gateway::Gateway;
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
                .route("/backup", web::post().to(api::backup))
                .route("/connections", web::get().to(connections::api_list))
                .route("/connections", web::post().to(connections::api_create))
                .route(
                    "/connections/managed/{provider}",
                    web::post().to(connections::api_enable_managed),
                )
                .route("/connections/{id}", web::get().to(connections::api_get))
                .route(
                    "/connections/{id}",
                    web::patch().to(connections::api_update),
                )
                .route(
                    "/connections/{id}",
                    web::delete().to(connections::api_delete),
                )
                .route(
                    "/connections/{id}/verify",
                    web::post().to(connections::api_verify),
                )
                .route("/apps", web::get().to(apps::api_list))
                .route("/apps", web::post().to(apps::api_create))
                .route("/apps/{id}", web::get().to(apps::api_get))
                .route("/apps/{id}", web::patch().to(apps::api_update))
                .route("/apps/{id}", web::delete().to(apps::api_delete))
                .route("/apps/{id}/rotate-key", web::post().to(apps::api_rotate))
                .route("/credits", web::get().to(usage::api::credits))
                .route("/credits", web::post().to(usage::api::top_up))
                .route("/credits/ledger", web::get().to(usage::api::ledger))
                .route("/usage", web::get().to(usage::api::usage))
                .route("/usage/requests", web::get().to(usage::api::requests))
                .route("/usage/requests/{id}", web::get().to(usage::api::request))
                .route("/settings", web::get().to(usage::api::settings))
                .route("/settings", web::patch().to(usage::api::change_settings))
                .route("/usage.csv", web::get().to(usage::api::usage_csv))
                .route("/models", web::get().to(models::list))
                .route("/playground", web::post().to(playground::stream)),
        )
        .route("/", web::get().to(pages::index))
        .route("/setup", web::get().to(pages::setup_form))
        .route("/setup", web::post().to(pages::setup_submit))
        .route("/unlock", web::get().to(pages::unlock_form))
        .route("/unlock", web::post().to(pages::unlock_submit))
        .route("/lock", web::post().to(pages::lock))
        .route("/welcome", web::get().to(pages::welcome))
        .route("/connectors", web::get().to(connections::connectors))
        .route("/connectors/add", web::post().to(connections::add))
        .route(
            "/connectors/managed/{provider}/enable",
            web::post().to(connections::enable),
        )
        .route(
            "/connectors/{id}/verify",
            web::post().to(connections::verify),
        )
        .route(
            "/connectors/{id}/rename",
            web::post().to(connections::rename),
        )
        .route(
            "/connectors/{id}/rotate",
            web::post().to(connections::rotate),
        )
        .route(
            "/connectors/{id}/delete",
            web::get().to(connections::confirm_delete),
        )
        .route(
            "/connectors/{id}/delete",
            web::post().to(connections::delete),
        )
        .route("/apps", web::get().to(apps::apps))
        .route("/apps", web::post().to(apps::create))
        .route("/apps/{id}", web::get().to(apps::show))
        .route("/apps/{id}", web::post().to(apps::save))
        .route("/apps/{id}/key", web::get().to(apps::key))
        .route("/apps/{id}/rotate-key", web::post().to(apps::rotate))
        .route("/apps/{id}/delete", web::post().to(apps::delete))
        .route("/apps/{id}/{step}", web::get().to(apps::confirm))
        .route("/models", web::get().to(models::page))
        .route("/usage", web::get().to(usage::pages::usage))
        .route("/requests", web::get().to(usage::requests::list))
        .route("/requests/{id}", web::get().to(usage::requests::show))
        .route("/usage/credits", web::post().to(usage::pages::add_credits))
        .route("/playground", web::get().to(playground::show))
        .route("/playground", web::post().to(playground::ask))
        .route("/settings", web::get().to(pages::settings))
        .route(
            "/settings/platform-key/{provider}",
            web::post().to(pages::save_platform_key),
        )
        .route(
            "/settings/platform-key/{provider}/remove",
            web::post().to(pages::remove_platform_key),
        )
        .route("/settings/keep", web::post().to(pages::save_keep_settings))
        .route("/settings/backup", web::post().to(pages::backup))
        .route(
            "/settings/passphrase",
            web::post().to(pages::change_passphrase),
        );
}

/// Builds the actix application for a Hub: state, middleware and routes.
pub fn app(
    hub: Hub,
    gateway: Gateway,
    hosts: HostPolicy,
    emulator: std::sync::Arc<crate::emulator::Emulator>,
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
        .app_data(web::Data::new(gateway))
        .app_data(web::Data::new(hosts))
        // The gateway first: app calls are the hot path and match on a static prefix.
        .configure(proxy::mount)
        .configure(compat::mount)
        .configure(routes)
        .configure(|cfg| emulator::mount(cfg, emulator))
        .default_service(web::to(errors::not_found))
        .wrap(from_fn(security::baseline))
        .wrap(from_fn(security::access_log))
}

/// The Hub's HTTP server, bound and ready to run.
pub struct Server(actix_web::dev::Server);

/// Where the Hub listens: the main listener (TLS when configured) and, when the Hub must
/// reach its own emulator another way, a plain loopback one.
pub struct Listeners {
    pub main: std::net::TcpListener,
    pub tls: Option<rustls::ServerConfig>,
    pub internal: Option<std::net::TcpListener>,
}

impl Server {
    /// Serves the Hub on its listeners, with the built-in emulator mounted beside it.
    pub fn start(
        hub: Hub,
        gateway: Gateway,
        hosts: HostPolicy,
        listeners: Listeners,
    ) -> std::io::Result<Server> {
        let emulator = std::sync::Arc::new(crate::emulator::Emulator::new(
            crate::emulator::EmulatorOptions::default(),
        ));
        let server = actix_web::HttpServer::new(move || {
            app(
                hub.clone(),
                gateway.clone(),
                hosts.clone(),
                emulator.clone(),
            )
        })
        .on_connect(no_delay);
        let server = match listeners.tls {
            Some(tls) => server.listen_rustls_0_23(listeners.main, tls)?,
            None => server.listen(listeners.main)?,
        };
        let server = match listeners.internal {
            Some(internal) => server.listen(internal)?,
            None => server,
        };
        Ok(Server(server.shutdown_timeout(5).run()))
    }

    pub async fn run(self) -> std::io::Result<()> {
        self.0.await
    }
}

/// Streams go out in small writes; with Nagle's algorithm on, the last one can wait for the
/// client's delayed acknowledgement (about 40 ms) before it leaves.
fn no_delay(connection: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
    }
}

/// An error on the gateway surface, in a neutral JSON shape.
pub fn gateway_error(_path: &str, status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": message}}))
}
