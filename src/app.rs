//! Builds and runs the Hub server from a `Config` and a bound listener.

use std::net::TcpListener;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::hub::{Hub, HubError};
use crate::web::{HostPolicy, Server};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Hub(#[from] HubError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A Hub bound to its port and ready to run.
pub struct Application {
    server: Server,
    port: u16,
    hub: Hub,
}

impl Application {
    /// Binds `config.listen`, opens the data dir and prepares the server.
    pub fn build(config: Config) -> Result<Application, StartError> {
        let listener = TcpListener::bind(config.listen).map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        Self::build_with_listener(config, listener)
    }

    /// Prepares the server on an already bound listener (tests bind port 0).
    pub fn build_with_listener(
        config: Config,
        listener: TcpListener,
    ) -> Result<Application, StartError> {
        let port = listener.local_addr()?.port();
        if !config.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %config.listen,
                "listening on a non-loopback address: anyone who can reach it may try to use this Hub"
            );
        }
        let hosts = HostPolicy::new(config.listen, port);
        let hub = Hub::open(config)?;
        hub.set_local_port(port);
        let gateway = Gateway::new(hub.clone());
        let server = Server::start(hub.clone(), gateway, hosts, listener)?;
        Ok(Application { server, port, hub })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tokio::spawn(sweep_retention(self.hub.clone()));
        self.server.run().await
    }
}

/// How often old request bodies and rows are swept.
const RETENTION_SWEEP: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Deletes what is past its retention, soon after start and then every few minutes, off the
/// async workers.
async fn sweep_retention(hub: Hub) {
    let mut every = tokio::time::interval(RETENTION_SWEEP);
    loop {
        every.tick().await;
        let h = hub.clone();
        match crate::hub::blocking(move || h.apply_retention(chrono::Utc::now())).await {
            Ok((0, 0)) => {}
            Ok((bodies, rows)) => {
                tracing::info!(bodies, rows, "retention: deleted what is past its age")
            }
            Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
        }
    }
}
