//! The `workshop-hub` binary: parse the command line and run one subcommand.

use clap::Parser;
use workshop_hub::cli::{Cli, Command};

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
