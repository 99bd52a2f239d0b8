//! Static files compiled into the binary, served from a fixed set (no path joining).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Static;

/// Serves `/static/{file}`. Names are looked up in the embedded set only; the version
/// query string (`?v=…`) busts caches on upgrade, so files may be cached for long.
pub async fn serve(path: web::Path<String>) -> HttpResponse {
    let name = path.into_inner();
    match Static::get(&name) {
        Some(file) => HttpResponse::Ok()
            .content_type(content_type(&name))
            .insert_header((header::CACHE_CONTROL, "public, max-age=604800, immutable"))
            .body(file.data.into_owned()),
        None => super::errors::error_page(
            actix_web::http::StatusCode::NOT_FOUND,
            "There is no such file.",
        ),
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}
