//! The command line: `workshop-hub [serve]`, `emulator`, `backup` and `restore`, every flag
//! with an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Workshop Hub: your local AI gateway.
///
/// Connect OpenAI, Anthropic and Google Gemini once, give each app you build its own key,
/// and see what those apps spend. Run it and open the address it prints in your browser.
/// With no provider keys it runs as an offline demo on its built-in emulator.
#[derive(Debug, Parser)]
#[command(name = "workshop-hub", version, about, long_about)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start
pub enum Command {
    /// Run the Hub: the browser pages, the management API and the gateway (the default).
    Serve(ServeArgs),
    /// Run only the provider emulator: OpenAI, Anthropic and Gemini look-alikes, offline.
    Emulator(EmulatorArgs),
    /// Write a consistent copy of the database to FILE (keys stay sealed); safe while the
    /// Hub runs.
    Backup(BackupArgs),
    /// Put a backup in place of the database. Stop the Hub first.
    Restore(RestoreArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. Keep it on 127.0.0.1 unless you know why not.
    #[arg(long, env = "WORKSHOP_HUB_LISTEN", default_value = "127.0.0.1:8420")]
    pub listen: SocketAddr,

    /// Allow a --listen address that is not loopback. Needs --tls-cert and --tls-key (or
    /// --insecure-http); network clients must use the --public-host name or the listen address.
    #[arg(long, env = "WORKSHOP_HUB_ALLOW_NON_LOOPBACK")]
    pub allow_non_loopback: bool,

    /// Serve HTTPS with this certificate chain (PEM file); goes with --tls-key.
    #[arg(long, env = "WORKSHOP_HUB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM file, readable by you only).
    #[arg(long, env = "WORKSHOP_HUB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Listen beyond loopback over plain HTTP: the passphrase and the session cookie then
    /// cross the network unencrypted. Only for a network you trust completely.
    #[arg(long, env = "WORKSHOP_HUB_INSECURE_HTTP")]
    pub insecure_http: bool,

    /// The name network clients reach the Hub by (`hub.example.lan` or `hub.example.lan:8420`);
    /// requests addressed to any other name are refused.
    #[arg(long, env = "WORKSHOP_HUB_PUBLIC_HOST")]
    pub public_host: Option<String>,

    /// Where the database lives [default: the platform data dir, e.g.
    /// ~/.local/share/workshop-hub].
    #[arg(long, env = "WORKSHOP_HUB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Send every provider call, managed and your own keys, to the built-in emulator.
    #[arg(long, env = "WORKSHOP_HUB_OFFLINE")]
    pub offline: bool,

    /// Read the passphrase from this file and create or unlock the vault at start
    /// (headless use). WORKSHOP_HUB_PASSPHRASE does the same from the environment.
    #[arg(long, env = "WORKSHOP_HUB_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// OpenAI API root, without /v1.
    #[arg(
        long,
        env = "WORKSHOP_HUB_OPENAI_BASE_URL",
        default_value = "https://api.openai.com"
    )]
    pub openai_base_url: String,

    /// Anthropic API root, without /v1.
    #[arg(
        long,
        env = "WORKSHOP_HUB_ANTHROPIC_BASE_URL",
        default_value = "https://api.anthropic.com"
    )]
    pub anthropic_base_url: String,

    /// Gemini API root, without /v1beta.
    #[arg(
        long,
        env = "WORKSHOP_HUB_GEMINI_BASE_URL",
        default_value = "https://generativelanguage.googleapis.com"
    )]
    pub gemini_base_url: String,

    /// Seconds an upstream call may take in total (long reasoning calls need minutes).
    #[arg(
        long,
        env = "WORKSHOP_HUB_UPSTREAM_TIMEOUT_SECS",
        default_value_t = 600
    )]
    pub upstream_timeout_secs: u64,

    /// Seconds a streamed answer may stay silent before the Hub gives up on it.
    #[arg(
        long,
        env = "WORKSHOP_HUB_STREAM_IDLE_TIMEOUT_SECS",
        default_value_t = 300
    )]
    pub stream_idle_timeout_secs: u64,

    /// Minutes of inactivity after which a browser session ends.
    #[arg(long, env = "WORKSHOP_HUB_SESSION_IDLE_MINUTES", default_value_t = 60)]
    pub session_idle_minutes: u64,

    /// Largest request body the gateway forwards, in MiB.
    #[arg(long, env = "WORKSHOP_HUB_MAX_BODY_MIB", default_value_t = 32)]
    pub max_body_mib: usize,

    /// Request bodies the gateway holds at once (all apps together), in MiB; more waits.
    #[arg(
        long,
        env = "WORKSHOP_HUB_MAX_BODIES_IN_FLIGHT_MIB",
        default_value_t = 128
    )]
    pub max_bodies_in_flight_mib: usize,

    /// Seconds an app has to send its whole request body.
    #[arg(long, env = "WORKSHOP_HUB_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,

    /// Largest non-streamed answer the gateway takes from a provider, in MiB.
    #[arg(long, env = "WORKSHOP_HUB_MAX_UPSTREAM_BODY_MIB", default_value_t = 64)]
    pub max_upstream_body_mib: usize,

    /// Largest single event of a streamed answer, in MiB.
    #[arg(long, env = "WORKSHOP_HUB_MAX_STREAM_EVENT_MIB", default_value_t = 8)]
    pub max_stream_event_mib: usize,
}

#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "WORKSHOP_HUB_EMULATOR_LISTEN",
        default_value = "127.0.0.1:8421"
    )]
    pub listen: SocketAddr,

    /// Delay before the first byte of every answer, in milliseconds.
    #[arg(long, env = "WORKSHOP_HUB_EMULATOR_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,

    /// Pace streamed answers at this many tokens per second (0 = as fast as possible).
    #[arg(
        long,
        env = "WORKSHOP_HUB_EMULATOR_TOKENS_PER_SECOND",
        default_value_t = 0
    )]
    pub tokens_per_second: u32,

    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "WORKSHOP_HUB_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Allow a --listen address that is not loopback. The emulator records what it receives,
    /// keys included, so keep it on 127.0.0.1 unless you know why not.
    #[arg(long, env = "WORKSHOP_HUB_EMULATOR_ALLOW_NON_LOOPBACK")]
    pub allow_non_loopback: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Where to write the backup (a new file; an existing one is replaced only when complete).
    pub file: PathBuf,

    /// The Hub's data directory [default: the platform data dir].
    #[arg(long, env = "WORKSHOP_HUB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup to restore (made by `workshop-hub backup` or the Settings page).
    pub file: PathBuf,

    /// The Hub's data directory [default: the platform data dir].
    #[arg(long, env = "WORKSHOP_HUB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Replace an existing database (it is moved aside, not deleted).
    #[arg(long)]
    pub force: bool,
}
