//! The HTTP layer: routes, pages, the JSON API, the proxy surface and middleware.

pub mod emulator;
