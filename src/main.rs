//! The `workshop-hub` binary: parse the command line and run one subcommand.

use clap::Parser;
use workshop_hub::cli::{Cli, Command};

/// jemalloc instead of the system allocator: the gateway allocates on its workers and frees
/// on the usage writer's thread, which glibc's arenas handle slowly. Allocations above its
/// oversize threshold (the vault's Argon2 block) go back to the system as soon as they are
/// freed, so the idle Hub stays small.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    workshop_hub::telemetry::init();
    workshop_hub::tls::install_crypto_provider();
    let result = match cli.command {
        Some(Command::Emulator(args)) => workshop_hub::run::emulator(args),
        Some(Command::Serve(args)) => workshop_hub::run::serve(args),
        Some(Command::Backup(args)) => workshop_hub::run::backup(args),
        Some(Command::Restore(args)) => workshop_hub::run::restore(args),
        None => workshop_hub::run::serve(cli.serve),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("workshop-hub: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
