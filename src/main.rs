//! The `workshop-hub` binary: parses the command line and runs one subcommand.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use workshop_hub::emulator::EmulatorOptions;

#[derive(Parser)]
#[command(version, about, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the offline emulator of the OpenAI, Anthropic and Gemini APIs on its own.
    Emulator(EmulatorArgs),
}

#[derive(Args)]
struct EmulatorArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "WORKSHOP_HUB_EMULATOR_LISTEN",
        default_value = "127.0.0.1:8421"
    )]
    listen: SocketAddr,
    /// Delay before the first byte of every answer, in milliseconds.
    #[arg(long, env = "WORKSHOP_HUB_EMULATOR_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Pace of streamed tokens; 0 streams as fast as possible.
    #[arg(
        long,
        env = "WORKSHOP_HUB_EMULATOR_TOKENS_PER_SECOND",
        default_value_t = 0
    )]
    tokens_per_second: u32,
    /// HTTP worker threads; 0 means one per core.
    #[arg(long, env = "WORKSHOP_HUB_WORKERS", default_value_t = 0)]
    workers: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Emulator(args) => run_emulator(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("workshop-hub: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_emulator(args: EmulatorArgs) -> Result<(), String> {
    let listener = TcpListener::bind(args.listen).map_err(|e| {
        format!(
            "cannot listen on {} (--listen / WORKSHOP_HUB_EMULATOR_LISTEN): {e}",
            args.listen
        )
    })?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{address}")
        .and_then(|()| stdout.flush())
        .map_err(|e| e.to_string())?;
    let options = EmulatorOptions {
        latency_ms: args.latency_ms,
        tokens_per_second: args.tokens_per_second,
        workers: args.workers,
    };
    workshop_hub::web::emulator::run_standalone(listener, options)
        .await
        .map_err(|e| format!("the emulator stopped: {e}"))
}
