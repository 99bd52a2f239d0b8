//! Runs the subcommands: the Hub server and the standalone emulator.

use std::io::Write;
use std::net::TcpListener;

use crate::app::Application;
use crate::cli::{BackupArgs, EmulatorArgs, RestoreArgs, ServeArgs};
use crate::config::{Config, data_dir_or_default};
use crate::store::{DB_FILE, Store, backup};

/// Tells scripts and tests where the server listens: one line on stdout.
fn announce(port: u16, ip: std::net::IpAddr, scheme: &str) {
    let host = if ip.is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        ip
    };
    let addr = std::net::SocketAddr::new(host, port);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {scheme}://{addr}");
    let _ = out.flush();
}

pub fn serve(args: ServeArgs) -> Result<(), String> {
    let config = Config::from_args(&args).map_err(|e| e.to_string())?;
    let ip = config.listen.ip();
    let runtime = runtime()?;
    runtime.block_on(async move {
        let app = Application::build(config).map_err(|e| e.to_string())?;
        announce(app.port(), ip, if app.is_tls() { "https" } else { "http" });
        if let Some(token) = app.hub().setup_token() {
            // On the console only (never the log): whoever started the Hub can read it.
            use secrecy::ExposeSecret;
            eprintln!(
                "setup token: {}  (setting this Hub up from the network needs it, once)",
                token.expose_secret()
            );
        }
        tracing::info!(
            port = app.port(),
            "Workshop Hub is running; open the address above in your browser"
        );
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

pub fn emulator(args: EmulatorArgs) -> Result<(), String> {
    if !args.listen.ip().is_loopback() && !args.allow_non_loopback {
        return Err(format!(
            "--listen {} is not a loopback address; the emulator records what it receives, \
             keys included. Use 127.0.0.1, or add --allow-non-loopback \
             (WORKSHOP_HUB_EMULATOR_ALLOW_NON_LOOPBACK=1) if you really mean it",
            args.listen
        ));
    }
    let listener = TcpListener::bind(args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let options = crate::emulator::EmulatorOptions {
        latency_ms: args.latency_ms,
        tokens_per_second: args.tokens_per_second,
        workers: args.workers,
    };
    let hosts = crate::web::HostPolicy::new(args.listen, port);
    runtime()?.block_on(async move {
        announce(port, args.listen.ip(), "http");
        crate::web::emulator::run_standalone(listener, options, hosts)
            .await
            .map_err(|e| e.to_string())
    })
}

/// `workshop-hub backup FILE`: a consistent copy, safe while the Hub runs.
pub fn backup(args: BackupArgs) -> Result<(), String> {
    let data_dir = data_dir_or_default(args.data_dir.as_deref()).map_err(|e| e.to_string())?;
    let copied =
        backup::backup(&data_dir.join(DB_FILE), &args.file).map_err(|e| format!("backup: {e}"))?;
    println!(
        "backed up {} to {} ({} bytes; provider keys stay sealed under your passphrase)",
        data_dir.display(),
        copied.path.display(),
        copied.bytes
    );
    Ok(())
}

/// `workshop-hub restore FILE [--force]`: checks the backup, puts it in place, and opens it
/// once to be sure this version can run it.
pub fn restore(args: RestoreArgs) -> Result<(), String> {
    let data_dir = data_dir_or_default(args.data_dir.as_deref()).map_err(|e| e.to_string())?;
    let (copied, aside) =
        backup::restore(&args.file, &data_dir, args.force).map_err(|e| format!("restore: {e}"))?;
    Store::open(&data_dir).map_err(|e| format!("restore: the restored database: {e}"))?;
    println!(
        "restored {} into {} ({} bytes); start the Hub and unlock it with the passphrase the \
         backup was made under",
        args.file.display(),
        data_dir.display(),
        copied.bytes
    );
    if let Some(aside) = aside {
        println!("the previous database was moved to {}", aside.display());
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}
