//! TLS for outbound provider calls: rustls with the ring provider, installed once.

/// Installs the process-wide rustls provider. Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
