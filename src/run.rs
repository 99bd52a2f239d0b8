//! Runs the subcommands: the Hub server and the standalone emulator.

use std::io::Write;
use std::net::TcpListener;

use crate::app::Application;
use crate::cli::{EmulatorArgs, ServeArgs};
use crate::config::Config;

/// Tells scripts and tests where the server listens: one line on stdout.
fn announce(port: u16, ip: std::net::IpAddr) {
    let host = if ip.is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        ip
    };
    let addr = std::net::SocketAddr::new(host, port);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on http://{addr}");
    let _ = out.flush();
}

pub fn serve(args: ServeArgs) -> Result<(), String> {
    let config = Config::from_args(&args).map_err(|e| e.to_string())?;
    let ip = config.listen.ip();
    let runtime = runtime()?;
    runtime.block_on(async move {
        let app = Application::build(config).map_err(|e| e.to_string())?;
        announce(app.port(), ip);
        tracing::info!(
            port = app.port(),
            "Workshop Hub is running; open the address above in your browser"
        );
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

pub fn emulator(args: EmulatorArgs) -> Result<(), String> {
    let listener = TcpListener::bind(args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let options = crate::emulator::EmulatorOptions {
        latency_ms: args.latency_ms,
        tokens_per_second: args.tokens_per_second,
        workers: args.workers,
    };
    runtime()?.block_on(async move {
        announce(port, args.listen.ip());
        crate::web::emulator::run_standalone(listener, options)
            .await
            .map_err(|e| e.to_string())
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}
