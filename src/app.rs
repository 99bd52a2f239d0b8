//! Builds and runs the Hub server from a `Config` and a bound listener.

use std::net::TcpListener;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::hub::{Hub, HubError};
use crate::web::{HostPolicy, Listeners, Server};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
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
        let tls = match &config.tls {
            Some(files) => {
                Some(crate::tls::server_config(&files.cert, &files.key).map_err(StartError::Tls)?)
            }
            None => None,
        };
        // The Hub calls its own emulator over plain HTTP on loopback; when the main listener
        // speaks TLS or is bound to one outside address, that needs a listener of its own.
        let internal = match tls.is_some() || !reaches_loopback(config.listen.ip()) {
            true => Some(TcpListener::bind(("127.0.0.1", 0))?),
            false => None,
        };
        let internal_port = internal.as_ref().map(TcpListener::local_addr).transpose()?;
        let mut ports = vec![port];
        ports.extend(internal_port.map(|a| a.port()));
        let hosts = HostPolicy::with_names(
            config.listen,
            &ports,
            config.public_host.as_deref(),
            tls.is_some(),
        );
        let hub = Hub::open(config)?;
        hub.set_local_port(internal_port.map_or(port, |a| a.port()));
        let gateway = Gateway::new(hub.clone());
        let listeners = Listeners {
            main: listener,
            tls,
            internal,
        };
        let server = Server::start(hub.clone(), gateway, hosts, listeners)?;
        Ok(Application { server, port, hub })
    }

    /// True when the Hub serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.hub.config().tls.is_some()
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

/// True when a listener on `ip` also answers on 127.0.0.1.
fn reaches_loopback(ip: std::net::IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified()
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
